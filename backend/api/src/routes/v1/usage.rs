//! Metering: the tenant's usage (with its quota) and one application's usage.

use actix_web::{HttpRequest, HttpResponse, web};
use hookline_core::{
    Context,
    billing::metering::{self, UsageQuery},
    billing::usage::Granularity,
};
use hookline_types::{ErrorBody, UsageOut};

use super::app_ref;
use crate::{
    auth::Auth,
    error::{ApiError, ApiResult},
    query::QueryParams,
};

fn usage_query(req: &HttpRequest) -> Result<UsageQuery, ApiError> {
    let query = QueryParams::parse(req.query_string(), &["from", "to", "granularity"])?;
    let granularity = match query.one("granularity")?.as_deref() {
        None | Some("day") => Granularity::Day,
        Some("hour") => Granularity::Hour,
        Some(_) => return Err(ApiError::invalid(&["query", "granularity"], "must be hour or day")),
    };
    Ok(UsageQuery { from: query.time("from")?, to: query.time("to")?, granularity })
}

/// The tenant's usage per hour or day (messages accepted, delivery attempts, inbound requests,
/// payload bytes) and this month's quota. Defaults: the last 30 days by day, or the last 24 hours
/// by hour.
///
/// Needs the `read` scope; portal tokens get 404. `from` must be earlier than `to`. Every bucket
/// of the range is listed, oldest first and zeros included, with `totals` over the range; `quota`
/// is the current calendar month's (UTC).
#[utoipa::path(get, path = "/api/v1/usage", operation_id = "v1.usage.get", tag = "Usage",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339 time"),
        ("to" = Option<String>, Query, description = "RFC 3339 time (default now)"),
        ("granularity" = Option<String>, Query, description = "hour (at most 31 days) or day (default; at most 400 days)", pattern = "^(hour|day)$"),
    ),
    responses((status = 200, description = "Usage", body = UsageOut), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn tenant(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
) -> ApiResult<HttpResponse> {
    let query = usage_query(&req)?;
    Ok(HttpResponse::Ok().json(metering::tenant_usage(&ctx, &principal, &query).await?))
}

/// One application's usage, so tenants can bill their own customers.
///
/// The buckets, defaults (the last 30 days by day, or the last 24 hours by hour) and range limits
/// of the organization's usage (at most 31 days by hour, 400 by day), without `quota`. Needs the
/// `read` scope; a portal token may read its own application's usage.
#[utoipa::path(get, path = "/api/v1/app/{app}/usage", operation_id = "v1.usage.application", tag = "Usage",
    params(
        ("app" = String, Path, description = "Application id or uid", example = "app_01KES886Z80432CF1XMWCEJZ05"),
        ("from" = Option<String>, Query, description = "RFC 3339 time"),
        ("to" = Option<String>, Query, description = "RFC 3339 time (default now)"),
        ("granularity" = Option<String>, Query, description = "hour (at most 31 days) or day (default; at most 400 days)", pattern = "^(hour|day)$"),
    ),
    responses((status = 200, description = "Usage", body = UsageOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn application(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Auth(principal): Auth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let query = usage_query(&req)?;
    Ok(HttpResponse::Ok().json(metering::app_usage(&ctx, &principal, &app_ref(&path), &query).await?))
}
