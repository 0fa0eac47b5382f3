//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! wire types' `ToSchema` derives. `e2e` compares the served document with the committed
//! `openapi.json` at the repository root, so a contract change is always a visible diff.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{health, ingest, metrics, v1};

mod contract;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (hl_live_… or hl_test_…)"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hookline API",
        description = "Send webhooks reliably and observably. Authenticate with `Authorization: Bearer <API key>`. \
                       Errors are `{code, detail, errors?}` (5xx also `request_id`); lists are `{data, iterator, done}`; \
                       every POST honours `Idempotency-Key`; every response carries `X-Request-Id` (the caller's, \
                       or a new one).",
        license(name = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    // Named only by query parameters, which utoipa does not collect.
    components(schemas(hookline_types::schema::DeliveryState)),
    paths(
        health::healthz,
        health::readyz,
        metrics::metrics,
        v1::auth::signup,
        v1::auth::login,
        v1::auth::logout,
        v1::auth::me,
        v1::api_keys::list,
        v1::api_keys::create,
        v1::api_keys::revoke,
        v1::event_types::list,
        v1::event_types::create,
        v1::event_types::get,
        v1::event_types::patch,
        v1::event_types::delete,
        v1::applications::list,
        v1::applications::create,
        v1::applications::get,
        v1::applications::patch,
        v1::applications::delete,
        v1::endpoints::list,
        v1::endpoints::create,
        v1::endpoints::get,
        v1::endpoints::patch,
        v1::endpoints::delete,
        v1::endpoints::get_secret,
        v1::endpoints::rotate_secret,
        v1::filters::test,
        v1::transforms::test,
        v1::messages::create,
        v1::messages::list,
        v1::messages::get,
        v1::messages::download_payload,
        v1::endpoints::send_test,
        v1::attempts::list_by_message,
        v1::attempts::deliveries_by_message,
        v1::payload::list_fetches,
        v1::payload::list_app_fetches,
        v1::payload::fetch,
        v1::attempts::list,
        v1::attempts::get,
        v1::messages::broadcast,
        v1::messages::get_broadcast,
        v1::replay::resend,
        v1::replay::expunge_content,
        v1::replay::recover,
        v1::replay::replay_missing,
        v1::replay::stats,
        v1::replay::tenant_stats,
        v1::replay::portal_token,
        v1::replay::get_job,
        v1::replay::cancel_job,
        v1::usage::tenant,
        v1::usage::application,
        v1::billing::get,
        v1::billing::checkout,
        v1::billing::portal,
        v1::billing::stripe_webhook,
        v1::sources::list,
        v1::sources::create,
        v1::sources::get,
        v1::sources::patch,
        v1::sources::delete,
        v1::sources::rotate_token,
        v1::sources::test_request,
        v1::sources::list_requests,
        ingest::ingest,
        ingest::handshake,
    )
)]
pub struct ApiDoc;

/// The generated document completed with what the middleware adds to every route
/// ([`contract`]).
pub fn document_value() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    contract::complete(&mut doc);
    doc
}

/// The document as served: pretty JSON with a trailing newline, byte-for-byte what is committed.
pub fn document() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let mut json =
            serde_json::to_string_pretty(&document_value()).expect("the OpenAPI document serializes");
        json.push('\n');
        json
    });
    &DOCUMENT
}

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}

/// The API reference viewer's script (Scalar), pinned to one release and its SHA-384 (Subresource
/// Integrity): a changed file at that address is refused by the browser, and the page's
/// Content-Security-Policy allows no other script. To upgrade: `npm pack
/// @scalar/api-reference@<version>`, then `openssl dgst -sha384 -binary
/// package/dist/browser/standalone.js | openssl base64 -A`.
pub const VIEWER_SCRIPT: &str =
    "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.4/dist/browser/standalone.js";
pub const VIEWER_INTEGRITY: &str = "sha384-hwB9WroDTpZaI38gr+u9CXA6ksz5gUYgD2GxXazKl/agT1L2GWUiRFWGJYNiFu4Q";

/// An interactive viewer (Scalar) over `/api/openapi.json`. The viewer's script comes from a CDN
/// (pinned, see [`VIEWER_SCRIPT`]), so it needs a browser with internet access; the document
/// itself is always served locally.
pub async fn docs() -> HttpResponse {
    let page = format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Hookline API reference</title>
</head>
<body>
  <noscript>The interactive reference needs JavaScript. The raw document is at <a href="/api/openapi.json">/api/openapi.json</a>.</noscript>
  <script id="api-reference" type="application/json" data-url="/api/openapi.json"></script>
  <script src="{VIEWER_SCRIPT}" integrity="{VIEWER_INTEGRITY}" crossorigin="anonymous"></script>
</body>
</html>
"#
    );
    let csp = format!(
        "default-src 'none'; script-src {VIEWER_SCRIPT}; style-src 'unsafe-inline' https://cdn.jsdelivr.net; \
         font-src data: https://cdn.jsdelivr.net; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CONTENT_SECURITY_POLICY, csp))
        .body(page)
}
