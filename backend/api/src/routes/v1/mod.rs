//! `/api/v1`: one module per resource. Handlers parse, call one service function and map the
//! result; they never touch the database or build error bodies themselves.

pub mod api_keys;
pub mod applications;
pub mod attempts;
pub mod auth;
pub mod billing;
pub mod endpoints;
pub mod event_types;
pub mod filters;
pub mod messages;
pub mod payload;
pub mod replay;
pub mod sources;
pub mod transforms;
pub mod usage;

use actix_web::web;
use hookline_types::{AppId, EndpointId, IdOrUid};

/// Registers every `/api/v1` route. Adding a route: write the handler with its `#[utoipa::path]`,
/// register it here, list it in `routes::openapi::ApiDoc`, and give it a case in the e2e
/// isolation test (which fails for any route it does not know).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/auth/signup", web::post().to(auth::signup))
            .route("/auth/login", web::post().to(auth::login))
            .route("/auth/logout", web::post().to(auth::logout))
            .route("/auth/me", web::get().to(auth::me))
            .route("/api-key", web::get().to(api_keys::list))
            .route("/api-key", web::post().to(api_keys::create))
            .route("/api-key/{id}", web::delete().to(api_keys::revoke))
            .route("/event-type", web::get().to(event_types::list))
            .route("/event-type", web::post().to(event_types::create))
            .route("/event-type/{name}", web::get().to(event_types::get))
            .route("/event-type/{name}", web::patch().to(event_types::patch))
            .route("/event-type/{name}", web::delete().to(event_types::delete))
            .route("/filter/test", web::post().to(filters::test))
            .route("/transform/test", web::post().to(transforms::test))
            .route("/app", web::get().to(applications::list))
            .route("/app", web::post().to(applications::create))
            .route("/app/{app}", web::get().to(applications::get))
            .route("/app/{app}", web::patch().to(applications::patch))
            .route("/app/{app}", web::delete().to(applications::delete))
            .route("/app/{app}/endpoint", web::get().to(endpoints::list))
            .route("/app/{app}/endpoint", web::post().to(endpoints::create))
            .route("/app/{app}/endpoint/{ep}", web::get().to(endpoints::get))
            .route("/app/{app}/endpoint/{ep}", web::patch().to(endpoints::patch))
            .route("/app/{app}/endpoint/{ep}", web::delete().to(endpoints::delete))
            .route("/app/{app}/endpoint/{ep}/secret", web::get().to(endpoints::get_secret))
            .route("/app/{app}/endpoint/{ep}/secret/rotate", web::post().to(endpoints::rotate_secret))
            .route("/app/{app}/msg", web::get().to(messages::list))
            .route("/app/{app}/msg", web::post().to(messages::create))
            .route("/app/{app}/endpoint/{ep}/test", web::post().to(endpoints::send_test))
            .route("/app/{app}/msg/{msg}", web::get().to(messages::get))
            .route("/app/{app}/msg/{msg}/attempt", web::get().to(attempts::list_by_message))
            .route("/app/{app}/msg/{msg}/delivery", web::get().to(attempts::deliveries_by_message))
            .route("/app/{app}/msg/{msg}/payload-fetch", web::get().to(payload::list_fetches))
            .route("/app/{app}/msg/{msg}/payload", web::get().to(messages::download_payload))
            .route("/app/{app}/payload-fetch", web::get().to(payload::list_app_fetches))
            .route("/payload/{msg}", web::get().to(payload::fetch))
            .route("/app/{app}/attempt", web::get().to(attempts::list))
            .route("/app/{app}/attempt/{attempt}", web::get().to(attempts::get))
            .route("/msg/broadcast", web::post().to(messages::broadcast))
            .route("/msg/broadcast/{id}", web::get().to(messages::get_broadcast))
            .route("/app/{app}/msg/{msg}/endpoint/{ep}/resend", web::post().to(replay::resend))
            .route("/app/{app}/msg/{msg}/content", web::delete().to(replay::expunge_content))
            .route("/app/{app}/endpoint/{ep}/recover", web::post().to(replay::recover))
            .route("/app/{app}/endpoint/{ep}/replay-missing", web::post().to(replay::replay_missing))
            .route("/app/{app}/endpoint/{ep}/stats", web::get().to(replay::stats))
            .route("/stats", web::get().to(replay::tenant_stats))
            .route("/app/{app}/portal-token", web::post().to(replay::portal_token))
            .route("/job/{id}", web::get().to(replay::get_job))
            .route("/job/{id}/cancel", web::post().to(replay::cancel_job))
            .route("/billing", web::get().to(billing::get))
            .route("/billing/checkout", web::post().to(billing::checkout))
            .route("/billing/portal", web::post().to(billing::portal))
            .route("/source", web::get().to(sources::list))
            .route("/source", web::post().to(sources::create))
            .route("/source/{src}", web::get().to(sources::get))
            .route("/source/{src}", web::patch().to(sources::patch))
            .route("/source/{src}", web::delete().to(sources::delete))
            .route("/source/{src}/token/rotate", web::post().to(sources::rotate_token))
            .route("/source/{src}/test-request", web::post().to(sources::test_request))
            .route("/source/{src}/request", web::get().to(sources::list_requests))
            .route("/usage", web::get().to(usage::tenant))
            .route("/app/{app}/usage", web::get().to(usage::application)),
    );
}

pub(crate) fn app_ref(segment: &str) -> IdOrUid<AppId> {
    IdOrUid::<AppId>::parse(segment)
}

pub(crate) fn endpoint_ref(segment: &str) -> IdOrUid<EndpointId> {
    IdOrUid::<EndpointId>::parse(segment)
}
