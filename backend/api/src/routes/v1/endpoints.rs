use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, catalog::endpoints, ingest::messages};
use hookline_types::{
    EndpointId, EndpointIn, EndpointOut, EndpointPatch, EndpointSecretOut, EndpointSecretRotateIn, ErrorBody,
    ListResponse, MessageOut,
};

use super::{app_ref, endpoint_ref};
use crate::{auth::Auth, error::ApiResult, json::Json, query::QueryParams};

/// List an application's endpoints.
#[utoipa::path(get, path = "/api/v1/app/{app}/endpoint", operation_id = "v1.endpoint.list", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid"), ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query)),
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
#[utoipa::path(post, path = "/api/v1/app/{app}/endpoint", operation_id = "v1.endpoint.create", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid")),
    request_body = EndpointIn,
    responses(
        (status = 201, description = "Created", body = EndpointOut),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The uid is taken", body = ErrorBody),
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
#[utoipa::path(get, path = "/api/v1/app/{app}/endpoint/{ep}", operation_id = "v1.endpoint.get", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid"), ("ep" = String, Path, description = "Endpoint id or uid")),
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
#[utoipa::path(patch, path = "/api/v1/app/{app}/endpoint/{ep}", operation_id = "v1.endpoint.patch", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid"), ("ep" = String, Path, description = "Endpoint id or uid")),
    request_body = EndpointPatch,
    responses((status = 200, description = "Updated", body = EndpointOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
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
#[utoipa::path(delete, path = "/api/v1/app/{app}/endpoint/{ep}", operation_id = "v1.endpoint.delete", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid"), ("ep" = String, Path, description = "Endpoint id or uid")),
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
#[utoipa::path(get, path = "/api/v1/app/{app}/endpoint/{ep}/secret", operation_id = "v1.endpoint.get_secret", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid"), ("ep" = String, Path, description = "Endpoint id or uid")),
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
#[utoipa::path(post, path = "/api/v1/app/{app}/endpoint/{ep}/secret/rotate", operation_id = "v1.endpoint.rotate_secret", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid"), ("ep" = String, Path, description = "Endpoint id or uid")),
    request_body = EndpointSecretRotateIn,
    responses((status = 204, description = "Rotated"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (app, ep) = path.into_inner();
    // The body is optional here: an empty one means "generate a new secret".
    let input: EndpointSecretRotateIn = if body.iter().all(u8::is_ascii_whitespace) {
        EndpointSecretRotateIn::default()
    } else {
        crate::json::parse_body(&body)?
    };
    endpoints::rotate_secret(&ctx, &principal, &app_ref(&app), &endpoint_ref(&ep), input).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Send a test event (`hookline.test`) to this endpoint only; its attempt appears in the log.
#[utoipa::path(post, path = "/api/v1/app/{app}/endpoint/{ep}/test", operation_id = "v1.endpoint.send_test", tag = "Endpoint",
    params(("app" = String, Path, description = "Application id or uid"), ("ep" = String, Path, description = "Endpoint id or uid")),
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
