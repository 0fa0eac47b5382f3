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
#[utoipa::path(post, path = "/api/v1/source", operation_id = "v1.source.create", tag = "Source",
    request_body = SourceIn,
    responses(
        (status = 201, description = "Created", body = SourceOut),
        (status = 403, description = "plan_feature_missing or plan_limit_reached", body = ErrorBody),
        (status = 409, description = "The uid is taken", body = ErrorBody),
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
#[utoipa::path(get, path = "/api/v1/source/{src}", operation_id = "v1.source.get", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid")),
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
#[utoipa::path(patch, path = "/api/v1/source/{src}", operation_id = "v1.source.patch", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid")),
    request_body = SourcePatch,
    responses((status = 200, description = "Updated", body = SourceOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
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
#[utoipa::path(delete, path = "/api/v1/source/{src}", operation_id = "v1.source.delete", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid")),
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
#[utoipa::path(post, path = "/api/v1/source/{src}/token/rotate", operation_id = "v1.source.rotate-token", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid")),
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
#[utoipa::path(post, path = "/api/v1/source/{src}/test-request", operation_id = "v1.source.test-request", tag = "Source",
    params(("src" = String, Path, description = "Source id or uid")),
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
#[utoipa::path(get, path = "/api/v1/source/{src}/request", operation_id = "v1.source.request.list", tag = "Source",
    params(
        ("src" = String, Path, description = "Source id or uid"),
        ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query),
        ("outcome" = Option<String>, Query, description = "accepted, duplicate, stale, rejected or handshake"),
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
