use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{
    Context,
    logs::attempts::{self, AttemptFilter},
};
use hookline_types::{AttemptId, AttemptOut, DeliveryOut, ErrorBody, ListResponse, MessageId};

use super::{app_ref, endpoint_ref};
use crate::{
    auth::Auth,
    error::{ApiError, ApiResult},
    query::QueryParams,
};

fn message_id(segment: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(segment).map_err(|_| ApiError::not_found("message"))
}

/// The attempts of one message, newest first.
///
/// Every HTTP attempt made for the message, to any of its endpoints, with the request headers
/// (secret values redacted), the response's status code, headers and first 64 KiB of body. Pass
/// the response's `iterator` back as `?iterator=` for the next page until `done` is true. Needs
/// the `read` scope.
#[utoipa::path(get, path = "/api/v1/app/{app}/msg/{msg}/attempt", operation_id = "v1.attempt.list_by_message", tag = "Attempt",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("msg" = String, Path, example = "msg_01KJPX6ZT80T78F603XZBCWC8T"), ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query)),
    responses((status = 200, description = "One page", body = ListResponse<AttemptOut>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_by_message(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, msg) = path.into_inner();
    let query = QueryParams::parse(req.query_string(), &["limit", "iterator"])?;
    let page = query.page(AttemptId::PREFIX)?;
    Ok(HttpResponse::Ok()
        .json(attempts::list_for_message(&ctx, &principal, &app_ref(&app), &message_id(&msg)?, &page).await?))
}

/// The message's deliveries: one per endpoint, with its state.
///
/// All of them, oldest first (not paginated). `status` is pending, sending, failed (will retry),
/// succeeded or dead. A message not fanned out yet has none, and deleting an endpoint deletes its
/// deliveries. Needs the `read` scope.
#[utoipa::path(get, path = "/api/v1/app/{app}/msg/{msg}/delivery", operation_id = "v1.delivery.list_by_message", tag = "Attempt",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("msg" = String, Path, example = "msg_01KJPX6ZT80T78F603XZBCWC8T")),
    responses((status = 200, description = "The deliveries", body = Vec<DeliveryOut>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deliveries_by_message(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, msg) = path.into_inner();
    Ok(HttpResponse::Ok()
        .json(attempts::deliveries_of_message(&ctx, &principal, &app_ref(&app), &message_id(&msg)?).await?))
}

/// The application's attempts, newest first, by endpoint and outcome.
///
/// Needs the `read` scope. The filters combine; `status=failed` is any attempt with an
/// `error_class` (a non-2xx response, a timeout, a connection error, …), and `status_code_class`
/// only matches attempts that got a response. Pass the response's `iterator` back as `?iterator=`
/// for the next page until `done` is true.
#[utoipa::path(get, path = "/api/v1/app/{app}/attempt", operation_id = "v1.attempt.list", tag = "Attempt",
    params(
        ("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"),
        ("endpoint" = Option<String>, Query, description = "Endpoint id or uid", pattern = r"^[A-Za-z0-9._-]{1,256}$"),
        ("status" = Option<String>, Query, description = "succeeded or failed", pattern = "^(succeeded|failed)$"),
        ("status_code_class" = Option<String>, Query, description = "1xx, 2xx, 3xx, 4xx or 5xx: the response's status code class", pattern = "^[1-5]xx$"),
        ("message" = Option<MessageId>, Query, description = "Only attempts of this message id"),
        ("after" = Option<String>, Query, description = "RFC 3339 time: made at or after"),
        ("before" = Option<String>, Query, description = "RFC 3339 time: made before"),
        ("limit" = Option<u64>, Query), ("iterator" = Option<String>, Query),
    ),
    responses((status = 200, description = "One page", body = ListResponse<AttemptOut>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let query = QueryParams::parse(
        req.query_string(),
        &["limit", "iterator", "endpoint", "status", "status_code_class", "message", "after", "before"],
    )?;
    let page = query.page(AttemptId::PREFIX)?;
    let status = query.one("status")?;
    if let Some(status) = &status
        && !matches!(status.as_str(), "succeeded" | "failed")
    {
        return Err(ApiError::invalid(&["query", "status"], "must be succeeded or failed"));
    }
    let status_code_class = match query.one("status_code_class")?.as_deref() {
        None => None,
        Some(class @ ("1xx" | "2xx" | "3xx" | "4xx" | "5xx")) => Some(u16::from(class.as_bytes()[0] - b'0')),
        Some(_) => {
            return Err(ApiError::invalid(
                &["query", "status_code_class"],
                "must be 1xx, 2xx, 3xx, 4xx or 5xx",
            ));
        }
    };
    let message = query
        .one("message")?
        .map(|m| {
            MessageId::parse(&m).map_err(|_| ApiError::invalid(&["query", "message"], "not a message id"))
        })
        .transpose()?;
    let (after, before) = query.time_range()?;
    let filter = AttemptFilter {
        endpoint: query.one("endpoint")?.map(|e| endpoint_ref(&e)),
        status,
        status_code_class,
        message,
        after,
        before,
    };
    Ok(HttpResponse::Ok()
        .json(attempts::list_for_app(&ctx, &principal, &app_ref(&path), &filter, &page).await?))
}

/// One attempt with its request and response.
///
/// Needs the `read` scope. Shows the URL, the request headers (secret values redacted), the
/// response's status code, headers and first 64 KiB of body, the duration, `error_class` when it
/// failed, and `trigger` (`scheduled`, or `manual` for a resend or a replay).
#[utoipa::path(get, path = "/api/v1/app/{app}/attempt/{attempt}", operation_id = "v1.attempt.get", tag = "Attempt",
    params(("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"), ("attempt" = String, Path, example = "atmpt_01KJPX70SGR7STD0HK1DBS629D")),
    responses((status = 200, description = "The attempt", body = AttemptOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (app, attempt) = path.into_inner();
    let id = AttemptId::parse(&attempt).map_err(|_| ApiError::not_found("attempt"))?;
    Ok(HttpResponse::Ok().json(attempts::get(&ctx, &principal, &app_ref(&app), &id).await?))
}
