//! Counts every HTTP request for `GET /metrics`: `hookline_http_requests_total{method,route,status}`
//! and `hookline_http_request_duration_seconds{method,route}`. `route` is the matched route
//! pattern (`/api/v1/app/{app}/msg`), never the raw path, so the series stay bounded; requests
//! no route matched (the dashboard's fallback) are `unmatched`.

use std::time::Instant;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // Only the method is taken now: the router needs the request unshared (a clone held here
    // would make it panic), and the route is known from the response's request afterwards.
    let method = req.method().clone();
    let result = next.call(req).await;
    let (status, route) = match &result {
        Ok(response) => (response.status(), response.request().match_pattern()),
        Err(err) => (err.as_response_error().status_code(), None),
    };
    hookline_core::metrics::http_request(
        method.as_str(),
        route,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    result
}
