//! `GET /metrics`: Prometheus text exposition (format 0.0.4). Open when `HOOKLINE_METRICS_TOKEN`
//! is unset (like `/healthz`: keep it off the public internet), else it takes that token as
//! `Authorization: Bearer <token>`.

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::header, web};
use hookline_core::{Context, CoreError};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics.
///
/// Deliveries by outcome and error class, attempt duration and delivery latency histograms,
/// queue depths, HTTP requests. Open unless `HOOKLINE_METRICS_TOKEN` is set; then it needs
/// `Authorization: Bearer <token>`.
#[utoipa::path(get, path = "/metrics", operation_id = "health.metrics", tag = "Health",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "HOOKLINE_METRICS_TOKEN is set and the request does not carry it", body = hookline_types::ErrorBody),
    ))]
pub async fn metrics(req: HttpRequest, ctx: web::Data<Context>) -> HttpResponse {
    if let Some(token) = &ctx.config.metrics_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|given| same_secret(given, token.expose())) {
            let mut response =
                ApiError::Core(CoreError::Unauthenticated("GET /metrics needs the metrics bearer token"))
                    .error_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(hookline_core::metrics::render(&ctx).await)
}

/// Compares digests, in time independent of where the strings differ and of their lengths.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cret", "s3cre"));
        assert!(!same_secret("", "s3cret"));
    }
}
