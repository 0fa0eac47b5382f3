//! `/api/v1/source`: inbound sources (receiving webhooks) and their request logs.

use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{
    Context,
    sources::{manage, requests},
};
use hookline_types::{
    ErrorBody, IdOrUid, ListResponse, SourceId, SourceIn, SourceOut, SourcePatch, SourceRequestId,
    SourceRequestOut, SourceTestRequestOut,
};

use crate::{auth::Auth, error::ApiResult, idempotency::carries_secret, json::Json, query::QueryParams};

fn source_ref(segment: &str) -> IdOrUid<SourceId> {
    IdOrUid::<SourceId>::parse(segment)
}

/// List inbound sources.
///
/// Oldest first; pass the response's `iterator` back as `?iterator=` for the next page until
/// `done` is true. Needs the `read` scope; portal tokens get 404. Each source includes its
/// `ingest_url`, which is a credential.
#[utoipa::path(get, path = "/api/v1/source", operation_id = "v1.source.list", tag = "Source",
    params(("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query)),
    responses((status = 200, description = "One page", body = ListResponse<SourceOut>), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(req.query_string(), &["limit", "iterator"])?;
    let page = query.page(SourceId::PREFIX)?;
    Ok(carries_secret(HttpResponse::Ok().json(manage::list(&ctx, &principal, &page).await?)))
}

/// Create an inbound source: a public ingest URL whose verified requests become messages of
/// the application `app`. The answer carries the ingest URL (a credential).
///
/// Needs the `write` scope and a plan that includes inbound sources; portal tokens get 404.
/// `verification` is the provider's scheme (secrets are write-only); `event_type` and `event_id`
/// come from a header (`{"header": "X-GitHub-Event"}`) or a JSON pointer into the body
/// (`{"pointer": "/type"}`), and `event_type` may be `{"fixed": "…"}`. `rate_limit` and `burst`
/// are 1 to 100000, `max_body_bytes` at most the plan's payload limit. The response is not kept
/// for `Idempotency-Key` replay (a repeat answers 409).
#[utoipa::path(post, path = "/api/v1/source", operation_id = "v1.source.create", tag = "Source",
    request_body(content = SourceIn, example = json!({
        "name": "GitHub",
        "uid": "github-acme",
        "app": "acme-prod",
        "verification": {"type": "github", "secret": "gh-webhook-secret-4f9c2a7e81d3"},
        "event_type": {"header": "X-GitHub-Event"},
        "forward_headers": ["X-GitHub-Hook-ID"],
        "rate_limit": 50,
        "burst": 100
    })),
    responses(
        (status = 201, description = "Created", body = SourceOut),
        (status = 403, description = "plan_feature_missing or plan_limit_reached", body = ErrorBody),
        (status = 409, description = "uid_taken: another source has this uid", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    Json(input): Json<SourceIn>,
) -> ApiResult<HttpResponse> {
    Ok(carries_secret(HttpResponse::Created().json(manage::create(&ctx, &principal, input).await?)))
}

/// Get a source by id or uid.
///
/// Needs the `read` scope; portal tokens get 404. Includes the `ingest_url` (a credential) and
/// the verification without its secrets; `verification.secrets` counts the secrets accepted
/// (more than one during a rotation).
#[utoipa::path(get, path = "/api/v1/source/{src}", operation_id = "v1.source.get", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid", example = "src_01KGHKP4R010DD3YRST4CHN5KN")),
    responses((status = 200, description = "The source", body = SourceOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(carries_secret(HttpResponse::Ok().json(manage::get(&ctx, &principal, &source_ref(&path)).await?)))
}

/// Update a source. A new secret for the same scheme leaves the previous one valid for 24 hours.
///
/// Needs the `write` scope; portal tokens get 404. Absent fields keep their value and null clears
/// (a null `event_type` goes back to `source.<name>.received`); the checks are those of creation.
/// A new `app` applies to the requests received from then on; earlier messages stay where they
/// are.
#[utoipa::path(patch, path = "/api/v1/source/{src}", operation_id = "v1.source.patch", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid", example = "src_01KGHKP4R010DD3YRST4CHN5KN")),
    request_body(content = SourcePatch, example = json!({
        "verification": {"type": "github", "secret": "gh-webhook-secret-9b17d0c35e42"},
        "rate_limit": 100,
        "burst": null
    })),
    responses((status = 200, description = "Updated", body = SourceOut), (status = 404, body = ErrorBody), (status = 409, description = "uid_taken: another source has this uid", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
    Json(patch): Json<SourcePatch>,
) -> ApiResult<HttpResponse> {
    Ok(carries_secret(
        HttpResponse::Ok().json(manage::patch(&ctx, &principal, &source_ref(&path), patch).await?),
    ))
}

/// Delete a source with its request log; the messages it created stay.
///
/// Needs the `write` scope; portal tokens get 404. Its ingest URL stops answering (404), and its
/// ordering state is deleted too.
#[utoipa::path(delete, path = "/api/v1/source/{src}", operation_id = "v1.source.delete", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid", example = "src_01KGHKP4R010DD3YRST4CHN5KN")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    manage::delete(&ctx, &principal, &source_ref(&path)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Issue a new ingest URL; the previous one keeps working for 24 hours.
///
/// Needs the `write` scope; portal tokens get 404. No body. Only one previous URL is kept, so
/// rotating again within the 24 hours ends the older one at once. The response is not kept for
/// `Idempotency-Key` replay (a repeat answers 409).
#[utoipa::path(post, path = "/api/v1/source/{src}/token/rotate", operation_id = "v1.source.rotate-token", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid", example = "src_01KGHKP4R010DD3YRST4CHN5KN")),
    responses((status = 200, description = "The source with its new ingest URL", body = SourceOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_token(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(carries_secret(
        HttpResponse::Ok().json(manage::rotate_token(&ctx, &principal, &source_ref(&path)).await?),
    ))
}

/// A request signed now with the source's current secret, and a `curl` line that sends it.
///
/// Nothing is sent: run the `curl` line, within the scheme's timestamp tolerance, to try the
/// source end to end. Needs the `write` scope, as the answer carries valid signatures; portal
/// tokens get 404. For a Standard Webhooks `v1a` source Hookline holds only the public key, so
/// the request is unsigned and `unsigned` says why.
#[utoipa::path(post, path = "/api/v1/source/{src}/test-request", operation_id = "v1.source.test-request", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid", example = "src_01KGHKP4R010DD3YRST4CHN5KN")),
    responses((status = 200, description = "The request", body = SourceTestRequestOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn test_request(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(carries_secret(
        HttpResponse::Ok().json(manage::test_request(&ctx, &principal, &source_ref(&path)).await?),
    ))
}

/// The requests a source received, newest first, with what became of each.
///
/// Needs the `read` scope; portal tokens get 404. Rows are written in the background shortly
/// after each request, rejected requests at most 10 per second per source. Bodies are kept only
/// for stale and rejected requests (up to 64 KiB), and the values of verification and credential
/// headers are redacted. Pass the response's `iterator` back as `?iterator=` until `done` is true.
#[utoipa::path(get, path = "/api/v1/source/{src}/request", operation_id = "v1.source.request.list", tag = "Source",
    params(
        ("src" = String, Path, description = "Source id or uid", example = "src_01KGHKP4R010DD3YRST4CHN5KN"),
        ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query),
        ("outcome" = Option<String>, Query, description = "accepted, duplicate, stale, rejected or handshake", pattern = "^(accepted|duplicate|stale|rejected|handshake)$"),
        ("after" = Option<String>, Query, description = "RFC 3339 time: received at or after"),
        ("before" = Option<String>, Query, description = "RFC 3339 time: received before"),
    ),
    responses((status = 200, description = "One page", body = ListResponse<SourceRequestOut>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_requests(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(req.query_string(), &["limit", "iterator", "outcome", "after", "before"])?;
    let page = query.page(SourceRequestId::PREFIX)?;
    let (after, before) = query.time_range()?;
    let filter = requests::RequestFilter { outcome: query.one("outcome")?, after, before };
    Ok(HttpResponse::Ok().json(requests::list(&ctx, &principal, &source_ref(&path), &filter, &page).await?))
}
