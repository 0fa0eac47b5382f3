//! `X-Request-Id`: the caller's own (1 to 128 characters of `A-Z a-z 0-9 . _ - :`), or a new
//! `req_<ULID>`. It is on every response, on the request (so the access log prints it), a field
//! of the `request` span that every log line of the request's handling carries, and in the body
//! of every 5xx error (`request_id`), so a report of a failure can be found in the logs.

use actix_web::{
    HttpResponse, ResponseError,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{
        StatusCode,
        header::{HeaderName, HeaderValue},
    },
    middleware::Next,
};
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, when called while handling one.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

fn new_id() -> String {
    hookline_core::ids::prefixed("req")
}

/// An error that escaped the handlers, still answered with the request's id.
#[derive(Debug)]
struct Escaped {
    error: actix_web::Error,
    id: String,
}

impl std::fmt::Display for Escaped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for Escaped {
    fn status_code(&self) -> StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = REQUEST_ID.sync_scope(self.id.clone(), || self.error.error_response());
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            response.headers_mut().insert(HEADER, value);
        }
        response
    }
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let given = req.headers().get(&HEADER).and_then(|v| v.to_str().ok()).filter(|id| acceptable(id));
    let id = given.map_or_else(new_id, str::to_owned);
    let value = HeaderValue::from_str(&id).expect("an acceptable id is a valid header value");
    req.headers_mut().insert(HEADER, value.clone());
    // At ERROR level so that it is enabled whenever anything of the request is logged (a span
    // below the filter's level would be dropped, and its field with it).
    let span = tracing::error_span!("request", request_id = %id);
    match REQUEST_ID.scope(id.clone(), next.call(req).instrument(span)).await {
        Ok(mut response) => {
            response.headers_mut().insert(HEADER, value);
            Ok(response)
        }
        Err(error) => Err(Escaped { error, id }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_ids_are_taken_from_the_caller() {
        for id in ["abc", "7f0c1a2e-0b5e-4a35-9f0e-0d7e3c2f9a10", "req_01M96", "a.b:c_d-e"] {
            assert!(acceptable(id), "{id}");
        }
        for id in ["", "has space", "new\nline", "semi;colon", &"x".repeat(129)] {
            assert!(!acceptable(id), "{id:?}");
        }
        assert!(new_id().starts_with("req_") && acceptable(&new_id()));
    }
}
