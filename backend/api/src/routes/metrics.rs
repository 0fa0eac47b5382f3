//! `GET /metrics`: Prometheus text exposition (format 0.0.4). With `HOOKLINE_METRICS_TOKEN` set it
//! takes that token as `Authorization: Bearer <token>`; unset, it answers only when the listener is
//! on loopback (a listener reachable from elsewhere would publish queue depths and traffic to
//! anyone), and `401 metrics_token_required` otherwise.

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::header, web};
use hookline_core::{Context, CoreError};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics.
///
/// Deliveries by outcome and error class, attempt duration and delivery latency histograms,
/// queue depths, HTTP requests. Needs `Authorization: Bearer <HOOKLINE_METRICS_TOKEN>` when that
/// is set; without it, open only on a loopback listener.
#[utoipa::path(get, path = "/metrics", operation_id = "health.metrics", tag = "Health",
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "HOOKLINE_METRICS_TOKEN is set and the request does not carry it, or it is unset and the listener is not loopback", body = hookline_types::ErrorBody),
    ))]
pub async fn metrics(req: HttpRequest, ctx: web::Data<Context>) -> HttpResponse {
    let open = req.app_data::<crate::MetricsOpen>().is_some_and(|open| open.0);
    if ctx.config.metrics_token.is_none() && !open {
        return ApiError::http(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "metrics_token_required",
            "this server listens beyond loopback: GET /metrics needs HOOKLINE_METRICS_TOKEN set on the server and \
             sent as Authorization: Bearer <token>",
        )
        .error_response();
    }
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
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(hookline_core::render_metrics(&ctx).await)
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
