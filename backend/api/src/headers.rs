//! The rate-limit response headers, shared by the rate limiter (every answer) and the error
//! responses (a refused request, and a quota refusal that names its limit).

pub const LIMIT: &str = "x-ratelimit-limit";
pub const REMAINING: &str = "x-ratelimit-remaining";
pub const RESET: &str = "x-ratelimit-reset";
