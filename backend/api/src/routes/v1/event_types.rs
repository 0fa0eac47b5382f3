use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, catalog::event_types};
use hookline_types::{ErrorBody, EventTypeId, EventTypeIn, EventTypeOut, EventTypePatch, ListResponse};

use crate::{auth::Auth, error::ApiResult, json::Json, query::QueryParams};

/// List event types.
#[utoipa::path(get, path = "/api/v1/event-type", operation_id = "v1.event_type.list", tag = "Event type",
    params(("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query)),
    responses((status = 200, description = "One page", body = ListResponse<EventTypeOut>), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(req.query_string(), &["limit", "iterator"])?;
    let page = query.page(EventTypeId::PREFIX)?;
    Ok(HttpResponse::Ok().json(event_types::list(&ctx, &principal, &page).await?))
}

/// Create an event type, optionally with a JSON Schema for its payloads.
#[utoipa::path(post, path = "/api/v1/event-type", operation_id = "v1.event_type.create", tag = "Event type",
    request_body = EventTypeIn,
    responses(
        (status = 201, description = "Created", body = EventTypeOut),
        (status = 409, description = "The name exists", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    Json(input): Json<EventTypeIn>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(event_types::create(&ctx, &principal, input).await?))
}

/// Get an event type by name.
#[utoipa::path(get, path = "/api/v1/event-type/{name}", operation_id = "v1.event_type.get", tag = "Event type",
    params(("name" = String, Path)),
    responses((status = 200, description = "The event type", body = EventTypeOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(event_types::get(&ctx, &principal, &path).await?))
}

/// Update an event type: absent fields keep their value, null clears.
#[utoipa::path(patch, path = "/api/v1/event-type/{name}", operation_id = "v1.event_type.patch", tag = "Event type",
    params(("name" = String, Path)),
    request_body = EventTypePatch,
    responses((status = 200, description = "Updated", body = EventTypeOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
    Json(patch): Json<EventTypePatch>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(event_types::patch(&ctx, &principal, &path, patch).await?))
}

/// Delete an event type from the catalog.
#[utoipa::path(delete, path = "/api/v1/event-type/{name}", operation_id = "v1.event_type.delete", tag = "Event type",
    params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    event_types::delete(&ctx, &principal, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}
