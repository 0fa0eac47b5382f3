//! Domain errors. They say what went wrong, not which HTTP status it becomes: `hookline-api` maps
//! each variant to a status and a stable `code` in one place.

use hookline_types::FieldError;

pub type CoreResult<T> = Result<T, CoreError>;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The object does not exist, or belongs to another tenant (the two are never told apart).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Input that parsed as JSON but is not acceptable; each entry names a field path.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A uniqueness rule or a state rule: `code` is stable, e.g. `uid_taken`.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Valid credentials without the needed permission (scope or role).
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// A received webhook failed its source's verification (`code`: `signature_mismatch`, …).
    #[error("{detail}")]
    VerificationFailed { code: &'static str, detail: &'static str },
    /// The object exists but no longer takes requests (a disabled source).
    #[error("{detail}")]
    Gone { code: &'static str, detail: String },
    /// A body larger than allowed.
    #[error("payload of {size} bytes is over the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    /// Too many requests: a rate limit (`rate_limited`) or the monthly quota (`quota_exceeded`).
    #[error("{detail}")]
    TooManyRequests {
        code: &'static str,
        detail: String,
        retry_after_seconds: u64,
        /// For a quota: its size (the `X-RateLimit-Limit` header).
        quota_limit: Option<u64>,
    },
    /// A service we depend on (Stripe) failed or refused the request: `detail` is for the
    /// caller, `cause` (the service's own answer) only for the log.
    #[error("{detail} ({cause})")]
    Upstream { code: &'static str, detail: String, cause: String },
    /// An expensive read (statistics, a payload search) was stopped at its time limit: `detail`
    /// says how to narrow it, or to try again.
    #[error("{detail}")]
    QueryTimeout { detail: String },
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl CoreError {
    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> CoreError {
        CoreError::Validation(vec![FieldError::new(loc, msg)])
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> CoreError {
        CoreError::Conflict { code, detail: detail.into() }
    }
}

/// Collects field errors so a body reports all of its problems at once.
#[derive(Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, loc: &[&str], msg: impl Into<String>) {
        self.0.push(FieldError::new(loc, msg));
    }

    /// Runs `parse`, recording its error under `loc`, and returns the value when it parsed.
    pub fn check<T, E: std::fmt::Display>(&mut self, loc: &[&str], parsed: Result<T, E>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(err) => {
                self.push(loc, err.to_string());
                None
            }
        }
    }

    pub fn into_result(self) -> CoreResult<()> {
        if self.0.is_empty() { Ok(()) } else { Err(CoreError::Validation(self.0)) }
    }
}
