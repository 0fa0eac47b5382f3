use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, catalog::endpoints, ingest::messages};
use hookline_types::{
    EndpointId, EndpointIn, EndpointOut, EndpointPatch, EndpointSecretOut, EndpointSecretRotateIn, ErrorBody,
    ListResponse, MessageOut,
};

use super::{app_ref, endpoint_ref};
use crate::{auth::Auth, error::ApiResult, json::Json, query::QueryParams};

/// List an application's endpoints.
///
/// Oldest first; pass the response's `iterator` back as `?iterator=` for the next page until
/// `done` is true. Needs the `read` scope; a portal token sees its own application's only. Secret
/// values are never included: custom headers by name only, `auth` without its secret parts.
#[utoipa::path(get, path = "/api/v1/app/{app}/endpoint", operation_id = "v1.endpoint.list", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query)),
    responses((status = 200, description = "One page", body = ListResponse<EndpointOut>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(req.query_string(), &["limit", "iterator"])?;
    let page = query.page(EndpointId::PREFIX)?;
    Ok(HttpResponse::Ok().json(endpoints::list(&ctx, &principal, &app_ref(&path), &page).await?))
}

/// Create an endpoint. Without `secret`, a signing secret is generated.
///
/// Needs the `write` scope (a read-write portal token may, for its own application). `url` is an
/// absolute http(s) URL without credentials; `filter_types` takes 1 to 100 exact names or
/// `prefix.*` wildcards and `channels` 1 to 10 (everything when absent); `headers` takes at most
/// 20, none of Hookline's own (`content-type`, `webhook-*`, …). Header values, `auth` secrets and
/// the signing secret are stored encrypted and never returned here (read the secret with
/// `GET …/secret`); 403 `plan_limit_reached` when the plan's number of endpoints is reached.
#[utoipa::path(post, path = "/api/v1/app/{app}/endpoint", operation_id = "v1.endpoint.create", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05")),
    request_body(content = EndpointIn, example = json!({
        "url": "https://example.com/webhooks/hookline",
        "uid": "billing-prod",
        "description": "Billing service (production)",
        "filter_types": ["invoice.*", "customer.created"],
        "channels": ["eu"],
        "rate_limit": 20,
        "metadata": {"team": "billing"},
        "headers": {"X-Acme-Environment": "production"},
        "timeout_ms": 10000,
        "retry_schedule": [5, 300, 1800, 7200],
        "auth": {"type": "header", "name": "X-Api-Key", "value": "sk_live_4f9c2a7e81d3b6"}
    })),
    responses(
        (status = 201, description = "Created", body = EndpointOut),
        (status = 404, body = ErrorBody),
        (status = 403, description = "plan_limit_reached: the plan allows no more of these", body = ErrorBody),
        (status = 409, description = "uid_taken: another endpoint of the application has this uid", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
    Json(input): Json<EndpointIn>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(endpoints::create(&ctx, &principal, &app_ref(&path), input).await?))
}

/// Get an endpoint by id or uid.
///
/// Needs the `read` scope; a portal token sees its own application's only. Secret values are not
/// included: custom headers by name only (`header_names`), `auth` without its password, header
/// value or client secret.
#[utoipa::path(get, path = "/api/v1/app/{app}/endpoint/{ep}", operation_id = "v1.endpoint.get", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    responses((status = 200, description = "The endpoint", body = EndpointOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    Ok(HttpResponse::Ok().json(endpoints::get(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep)).await?))
}

/// Update an endpoint: absent fields keep their value, null clears.
///
/// Needs the `write` scope (a read-write portal token may, for its own application). `headers`
/// and `metadata`, when given, replace the whole map. A `url` on another origin (scheme, host or
/// port) drops the stored `auth` and custom headers unless the same request sets them again.
/// `disabled: true` disables the endpoint with the reason "disabled by the tenant"; `false`
/// enables it again.
#[utoipa::path(patch, path = "/api/v1/app/{app}/endpoint/{ep}", operation_id = "v1.endpoint.patch", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    request_body(content = EndpointPatch, example = json!({
        "url": "https://example.com/webhooks/hookline/v2",
        "filter_types": null,
        "timeout_ms": 15000,
        "disabled": false
    })),
    responses((status = 200, description = "Updated", body = EndpointOut), (status = 404, body = ErrorBody), (status = 409, description = "uid_taken: another endpoint of the application has this uid", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
    Json(patch): Json<EndpointPatch>,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    Ok(HttpResponse::Ok()
        .json(endpoints::patch(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep), patch).await?))
}

/// Delete an endpoint.
///
/// Needs the `write` scope (a read-write portal token may, for its own application). Its
/// deliveries, pending or finished, are deleted with it; the attempts already made stay in the
/// attempt log.
#[utoipa::path(delete, path = "/api/v1/app/{app}/endpoint/{ep}", operation_id = "v1.endpoint.delete", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    endpoints::delete(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The endpoint's current signing secret (`whsec_…`), for verifying deliveries.
///
/// Needs the `write` scope: reading a secret is as sensitive as changing the endpoint. For a `v1a`
/// endpoint, `key` is the Ed25519 secret key (`whsk_…`) and consumers verify with `public_key`
/// (`whpk_…`). During a rotation's 24 hours only the new secret is returned, though deliveries
/// are signed with the previous one as well.
#[utoipa::path(get, path = "/api/v1/app/{app}/endpoint/{ep}/secret", operation_id = "v1.endpoint.get_secret", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    responses((status = 200, description = "The secret", body = EndpointSecretOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_secret(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    Ok(HttpResponse::Ok()
        .json(endpoints::get_secret(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep)).await?))
}

/// Rotate the signing secret. The previous secret keeps signing alongside the new one for 24 hours.
///
/// Needs the `write` scope. The body is optional: without `key`, a secret is generated for
/// `signature_scheme`, or for the current secret's scheme. A given `key` is `whsec_` + base64 of
/// 24 to 64 bytes, or `whsk_` + base64 of an Ed25519 key (32 or 64 bytes), matching
/// `signature_scheme` when both are given. Read the new secret with `GET …/secret`.
#[utoipa::path(post, path = "/api/v1/app/{app}/endpoint/{ep}/secret/rotate", operation_id = "v1.endpoint.rotate_secret", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    request_body(content = Option<EndpointSecretRotateIn>, example = json!({"signature_scheme": "v1"})),
    responses((status = 204, description = "Rotated"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    // The body is optional here: none means "generate a new secret".
    let input: EndpointSecretRotateIn = crate::json::optional_body(&body)?;
    endpoints::rotate_secret(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep), input).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Send a test event (`hookline.test`) to this endpoint only; its attempt appears in the log.
///
/// Needs the `write` scope. No body: the message's payload holds `type` (`hookline.test`),
/// `endpoint_id` and `sent_at`, and it goes to this endpoint whatever its filters. It counts like
/// any other message for usage and the monthly quota (429 `quota_exceeded` under a hard cap).
#[utoipa::path(post, path = "/api/v1/app/{app}/endpoint/{ep}/test", operation_id = "v1.endpoint.send_test", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("ep" = String, Path, description = "Endpoint id or uid", example = "ep_01KES8CHMRXHT5GMEJ146S6JR4")),
    responses((status = 202, description = "The test message, accepted", body = MessageOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn send_test(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    Ok(HttpResponse::Accepted()
        .json(messages::send_test(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep)).await?))
}
