use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{Context, catalog::event_types};
use hookline_types::{ErrorBody, EventTypeId, EventTypeIn, EventTypeOut, EventTypePatch, ListResponse};

use crate::{auth::Auth, error::ApiResult, json::Json, query::QueryParams};

/// List event types.
///
/// Oldest first, archived ones included; pass the response's `iterator` back as `?iterator=` for
/// the next page until `done` is true. Needs the `read` scope; portal tokens may read the catalog
/// too.
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
///
/// Needs the `write` scope; portal tokens get 404. `name` is dot-separated segments of letters,
/// digits, `_` and `-` (at most 256 characters), unique in the organization (409
/// `event_type_exists`). With a `schema`, messages of this type whose payload does not satisfy it
/// are refused with 422, and `example` must satisfy it too. Messages may also use event types
/// that are not in the catalog.
#[utoipa::path(post, path = "/api/v1/event-type", operation_id = "v1.event_type.create", tag = "Event type",
    request_body(content = EventTypeIn, example = json!({
        "name": "invoice.paid",
        "description": "An invoice was paid in full.",
        "schema": {
            "type": "object",
            "required": ["invoice_id", "amount_cents", "currency"],
            "properties": {
                "invoice_id": {"type": "string"},
                "amount_cents": {"type": "integer", "minimum": 0},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}
            }
        },
        "example": {"invoice_id": "in_1042", "amount_cents": 4900, "currency": "USD"}
    })),
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
///
/// The name is matched exactly; archived event types are returned too. Needs the `read` scope;
/// portal tokens may read the catalog too.
#[utoipa::path(get, path = "/api/v1/event-type/{name}", operation_id = "v1.event_type.get", tag = "Event type",
    params(("name" = String, Path, example = "invoice.paid")),
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
///
/// Needs the `write` scope; portal tokens get 404. The name cannot change. A new `schema` applies
/// to messages sent from then on, and the resulting `example` must satisfy the resulting schema.
/// `archived` is a flag only: messages of an archived type are still accepted.
#[utoipa::path(patch, path = "/api/v1/event-type/{name}", operation_id = "v1.event_type.patch", tag = "Event type",
    params(("name" = String, Path, example = "invoice.paid")),
    request_body(content = EventTypePatch, example = json!({
        "description": "Deprecated: send invoice.settled instead.",
        "archived": true
    })),
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
///
/// Needs the `write` scope; portal tokens get 404. Messages already sent keep their event type,
/// and messages of that type sent afterwards are accepted without schema validation.
#[utoipa::path(delete, path = "/api/v1/event-type/{name}", operation_id = "v1.event_type.delete", tag = "Event type",
    params(("name" = String, Path, example = "invoice.paid")),
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
