use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, tenancy::api_keys};
use hookline_types::{ApiKeyCreatedOut, ApiKeyId, ApiKeyIn, ApiKeyOut, ErrorBody, ListResponse};

use crate::{
    auth::Auth,
    error::{ApiError, ApiResult},
    json::Json,
    query::QueryParams,
};

/// List the organization's API keys (never the keys themselves).
///
/// Needs the `admin` scope; portal tokens get 404. Newest first, revoked keys included; pass the
/// response's `iterator` back as `?iterator=` for the next page until `done` is true. Each key
/// shows its `prefix` (its first 12 characters) and `last_used_at` (updated at most once a
/// minute).
#[utoipa::path(get, path = "/api/v1/api-key", operation_id = "v1.api_key.list", tag = "API key",
    params(("limit" = Option<u64>, Query, description = "1 to 250, default 50"), ("iterator" = Option<String>, Query)),
    responses((status = 200, description = "One page", body = ListResponse<ApiKeyOut>), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(req.query_string(), &["limit", "iterator"])?;
    let page = query.page(ApiKeyId::PREFIX)?;
    Ok(HttpResponse::Ok().json(api_keys::list(&ctx, &principal, &page).await?))
}

/// Create an API key. The response is the only time the key is shown.
///
/// Needs the `admin` scope, and a key cannot be given a scope its creator lacks (403
/// `insufficient_scope`). `scopes` defaults to `["admin"]`; `mode: test` only makes the key
/// start with `hl_test_` instead of `hl_live_`; `expires_at` must be in the future. The response
/// is not kept for `Idempotency-Key` replay: a repeat answers 409 `idempotency_secret_not_replayed`.
#[utoipa::path(post, path = "/api/v1/api-key", operation_id = "v1.api_key.create", tag = "API key",
    request_body(content = ApiKeyIn, example = json!({
        "name": "CI deploys",
        "scopes": ["write"],
        "mode": "live",
        "expires_at": "2028-01-01T00:00:00Z"
    })),
    responses((status = 201, description = "Created", body = ApiKeyCreatedOut), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    Json(input): Json<ApiKeyIn>,
) -> ApiResult<HttpResponse> {
    let created = api_keys::create(&ctx, &principal, input).await?;
    Ok(crate::idempotency::carries_secret(HttpResponse::Created().json(created)))
}

/// Revoke an API key: it stops working immediately.
///
/// Needs the `admin` scope. Returns the key with `revoked_at` set; revoking a revoked key is not
/// an error and returns it unchanged. Other API processes may still accept it for a few seconds
/// (their key cache lives 5 seconds).
#[utoipa::path(delete, path = "/api/v1/api-key/{id}", operation_id = "v1.api_key.revoke", tag = "API key",
    params(("id" = String, Path, example = "key_01KEKGDZH0WXWCBYB6WK952SWA")),
    responses((status = 200, description = "Revoked", body = ApiKeyOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = ApiKeyId::parse(&path).map_err(|_| ApiError::not_found("api key"))?;
    Ok(HttpResponse::Ok().json(api_keys::revoke(&ctx, &principal, &id).await?))
}
