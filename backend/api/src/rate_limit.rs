//! API rate limits: a token bucket per tenant, shared by all its API keys and dashboard users (so
//! minting more keys does not raise the limit), and one per portal application (a tenant's
//! customer cannot use up the tenant's own), sized by the tenant's plan (`api_rate_per_second`,
//! `api_burst`). Every authenticated `/api/v1`
//! response carries `X-RateLimit-Limit` (the bucket's size), `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (seconds until the bucket is full); a refused request is `429
//! rate_limited` with `Retry-After`. Requests without valid credentials pass through to the
//! handler's 401.

use actix_web::{
    ResponseError,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use hookline_core::{Context, store::cache::Taken, tenancy::plans, tenancy::principal::PrincipalKind};

use crate::{
    auth,
    error::ApiError,
    headers::{LIMIT, REMAINING, RESET},
};

/// The bucket a request draws from.
fn bucket(principal: &hookline_core::Principal) -> String {
    match &principal.kind {
        PrincipalKind::ApiKey { .. } | PrincipalKind::Session { .. } => {
            format!("tenant:{}", principal.tenant_id)
        }
        PrincipalKind::Portal { app_id, .. } => format!("portal:{}:{app_id}", principal.tenant_id),
    }
}

/// Sets the `X-RateLimit-*` headers unless the response already has them (a quota refusal sets
/// its own).
pub fn set_headers(headers: &mut actix_web::http::header::HeaderMap, limit: u64, remaining: u64, reset: u64) {
    for (name, value) in [(LIMIT, limit), (REMAINING, remaining), (RESET, reset)] {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from(value));
        }
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path();
    if !path.starts_with("/api/v1/") || path == "/api/v1/auth/signup" || path == "/api/v1/auth/login" {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let Ok(caller) = auth::authenticate(req.request()).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let ctx = req.app_data::<web::Data<Context>>().expect("the app is built with a Context").clone();
    let limits = match plans::limits(&ctx, &caller.principal.tenant_id).await {
        Ok(limits) => limits,
        Err(err) => {
            let response = ApiError::from(err).error_response();
            return Ok(req.into_response(response).map_into_boxed_body());
        }
    };
    let taken: Taken =
        ctx.caches.rate_limits.take(&bucket(&caller.principal), limits.api_rate_per_second, limits.api_burst);
    if !taken.allowed {
        let mut response = ApiError::from(hookline_core::CoreError::TooManyRequests {
            code: "rate_limited",
            detail: format!(
                "more than {} requests a second (burst {}) for this organization, across all its API keys and users: slow down",
                limits.api_rate_per_second, limits.api_burst
            ),
            retry_after_seconds: taken.retry_after_seconds,
            quota_limit: None,
        })
        .error_response();
        set_headers(response.headers_mut(), taken.limit.into(), 0, taken.reset_seconds);
        return Ok(req.into_response(response).map_into_boxed_body());
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    set_headers(response.headers_mut(), taken.limit.into(), taken.remaining.into(), taken.reset_seconds);
    Ok(response)
}
