//! The one place where errors become HTTP. Client errors carry a stable `code` and a `detail`;
//! validation errors list field paths; 5xx bodies are generic and the cause is logged.
//!
//! To add an error: give it a `CoreError` variant (or an `ApiError` one for HTTP-only cases) and
//! one arm below; never build error responses in handlers.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use hookline_core::CoreError;
use hookline_types::{ErrorBody, FieldError};

#[derive(Debug)]
pub enum ApiError {
    Core(CoreError),
    /// The body is not JSON at all (400).
    MalformedJson(String),
    /// Too many requests or similar HTTP-only conditions with a fixed status.
    Http {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
}

impl ApiError {
    pub fn http(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Http { status, code, detail: detail.into() }
    }

    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> ApiError {
        ApiError::Core(CoreError::invalid(loc, msg))
    }

    pub fn not_found(what: &'static str) -> ApiError {
        ApiError::Core(CoreError::NotFound(what))
    }

    fn parts(&self) -> (StatusCode, &'static str, String, Vec<FieldError>) {
        match self {
            ApiError::MalformedJson(detail) => (
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {detail}"),
                Vec::new(),
            ),
            ApiError::Http { status, code, detail } => (*status, code, detail.clone(), Vec::new()),
            ApiError::Core(err) => match err {
                CoreError::NotFound(what) => {
                    (StatusCode::NOT_FOUND, "not_found", format!("{what} not found"), Vec::new())
                }
                CoreError::Validation(errors) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "validation_error", summarize(errors), errors.clone())
                }
                CoreError::Conflict { code, detail } => {
                    (StatusCode::CONFLICT, code, detail.clone(), Vec::new())
                }
                CoreError::Unauthenticated(detail) => {
                    (StatusCode::UNAUTHORIZED, "unauthorized", (*detail).to_owned(), Vec::new())
                }
                CoreError::Forbidden { code, detail } => {
                    (StatusCode::FORBIDDEN, code, detail.clone(), Vec::new())
                }
                CoreError::VerificationFailed { code, detail } => {
                    (StatusCode::UNAUTHORIZED, code, (*detail).to_owned(), Vec::new())
                }
                CoreError::Gone { code, detail } => (StatusCode::GONE, code, detail.clone(), Vec::new()),
                CoreError::TooManyRequests { code, detail, .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, code, detail.clone(), Vec::new())
                }
                CoreError::PayloadTooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", err.to_string(), Vec::new())
                }
                CoreError::Upstream { code, detail, .. } => {
                    (StatusCode::BAD_GATEWAY, code, detail.clone(), Vec::new())
                }
                // The same request may pass when the database is less busy, or narrowed.
                CoreError::QueryTimeout { detail } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "query_timeout", detail.clone(), Vec::new())
                }
                CoreError::Database(_) | CoreError::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "something went wrong on our side; it has been logged".to_owned(),
                    Vec::new(),
                ),
            },
        }
    }
}

fn summarize(errors: &[FieldError]) -> String {
    match errors {
        [one] => format!("{}: {}", one.loc.join("."), one.msg),
        many => format!("{} fields are invalid", many.len()),
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (status, code, detail, _) = self.parts();
        write!(f, "{status} {code}: {detail}")
    }
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> Self {
        ApiError::Core(err)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, detail, errors) = self.parts();
        if status.is_server_error()
            && let ApiError::Core(cause) = self
        {
            tracing::error!(error = %cause, "request failed");
        }
        let mut response = HttpResponse::build(status);
        if let ApiError::Core(CoreError::TooManyRequests { retry_after_seconds, quota_limit, .. }) = self {
            response.insert_header(("Retry-After", retry_after_seconds.to_string()));
            if let Some(limit) = quota_limit {
                response.insert_header((crate::headers::LIMIT, limit.to_string()));
                response.insert_header((crate::headers::REMAINING, "0"));
                response.insert_header((crate::headers::RESET, retry_after_seconds.to_string()));
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        let request_id = if status.is_server_error() { crate::request_id::current() } else { None };
        response.json(ErrorBody { code: code.to_owned(), detail, errors, request_id })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
