use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, catalog::applications};
use hookline_types::{AppId, ApplicationIn, ApplicationOut, ApplicationPatch, ErrorBody, ListResponse};

use super::app_ref;
use crate::{auth::Auth, error::ApiResult, json::Json, query::QueryParams};

/// List applications.
///
/// Oldest first; pass the response's `iterator` back as `?iterator=` for the next page until
/// `done` is true. Needs the `read` scope; portal tokens get 404.
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
///
/// Needs the `write` scope; portal tokens get 404. `uid` is your own identifier (1 to 256 of
/// `A-Z a-z 0-9 - _ .`, not shaped like an application id), usable in paths instead of the id;
/// `metadata` holds at most 50 entries; `rate_limit` is 1 to 100000 deliveries per second across
/// the application's endpoints. 403 `plan_limit_reached` when the plan's number of applications
/// is reached.
#[utoipa::path(post, path = "/api/v1/app", operation_id = "v1.application.create", tag = "Application",
    request_body(content = ApplicationIn, example = json!({
        "name": "Acme Corp",
        "uid": "acme-prod",
        "metadata": {"crm_id": "0015g00000XyZ12", "region": "eu-west-1"},
        "rate_limit": 50
    })),
    responses(
        (status = 201, description = "Created", body = ApplicationOut),
        (status = 403, description = "plan_limit_reached: the plan allows no more of these", body = ErrorBody),
        (status = 409, description = "uid_taken: another application has this uid", body = ErrorBody),
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
///
/// Needs the `read` scope. A portal token can read only its own application; any other, like an
/// unknown id or uid, is 404.
#[utoipa::path(get, path = "/api/v1/app/{app}", operation_id = "v1.application.get", tag = "Application",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05")),
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
///
/// Absent fields keep their value; `uid` and `rate_limit` are cleared with null, and `metadata`,
/// when given, replaces the whole map. The limits are those of creation (409 `uid_taken` when
/// another application has the uid). Needs the `write` scope; portal tokens get 404.
#[utoipa::path(patch, path = "/api/v1/app/{app}", operation_id = "v1.application.patch", tag = "Application",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05")),
    request_body(content = ApplicationPatch, example = json!({
        "name": "Acme Corporation",
        "metadata": {"crm_id": "0015g00000XyZ12", "region": "eu-central-1"},
        "rate_limit": null
    })),
    responses((status = 200, description = "Updated", body = ApplicationOut), (status = 404, body = ErrorBody), (status = 409, description = "uid_taken: another application has this uid", body = ErrorBody), (status = 422, body = ErrorBody)),
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
///
/// Also deletes the messages' payloads, deliveries and attempts, and the inbound sources that
/// feed the application with their request logs (their ingest URLs stop answering). It cannot be
/// undone. Needs the `write` scope; portal tokens get 404.
#[utoipa::path(delete, path = "/api/v1/app/{app}", operation_id = "v1.application.delete", tag = "Application",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05")),
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
