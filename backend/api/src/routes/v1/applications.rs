use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, catalog::applications};
use hookline_types::{AppId, ApplicationIn, ApplicationOut, ApplicationPatch, ErrorBody, ListResponse};

use super::app_ref;
use crate::{auth::Auth, error::ApiResult, json::Json, query::QueryParams};

/// List applications.
#[utoipa::path(get, path = "/api/v1/app", operation_id = "v1.application.list", tag = "Application",
    params(("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query)),
    responses((status = 200, description = "One page", body = ListResponse<ApplicationOut>), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(req.query_string(), &["limit", "iterator"])?;
    let page = query.page(AppId::PREFIX)?;
    Ok(HttpResponse::Ok().json(applications::list(&ctx, &principal, &page).await?))
}

/// Create an application (one of your customers).
#[utoipa::path(post, path = "/api/v1/app", operation_id = "v1.application.create", tag = "Application",
    request_body = ApplicationIn,
    responses(
        (status = 201, description = "Created", body = ApplicationOut),
        (status = 409, description = "The uid is taken", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    Json(input): Json<ApplicationIn>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(applications::create(&ctx, &principal, input).await?))
}

/// Get an application by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app}", operation_id = "v1.application.get", tag = "Application",
    params(("app" = String, Path, description = "Application id or uid")),
    responses((status = 200, description = "The application", body = ApplicationOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(applications::get(&ctx, &principal, &app_ref(&path)).await?))
}

/// Update an application.
#[utoipa::path(patch, path = "/api/v1/app/{app}", operation_id = "v1.application.patch", tag = "Application",
    params(("app" = String, Path, description = "Application id or uid")),
    request_body = ApplicationPatch,
    responses((status = 200, description = "Updated", body = ApplicationOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
    Json(patch): Json<ApplicationPatch>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(applications::patch(&ctx, &principal, &app_ref(&path), patch).await?))
}

/// Delete an application with its endpoints and messages.
#[utoipa::path(delete, path = "/api/v1/app/{app}", operation_id = "v1.application.delete", tag = "Application",
    params(("app" = String, Path, description = "Application id or uid")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    applications::delete(&ctx, &principal, &app_ref(&path)).await?;
    Ok(HttpResponse::NoContent().finish())
}
