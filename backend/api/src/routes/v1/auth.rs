//! Dashboard sign-up, log-in and log-out. The session travels in an HttpOnly, SameSite=Strict
//! cookie; the body returns the CSRF token the dashboard echoes on state-changing requests.

use actix_web::{
    HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite, time::Duration},
    web,
};
use hookline_core::{Context, tenancy::auth};
use hookline_types::{ErrorBody, LoginIn, SessionOut, SignupIn};

use crate::{
    auth::{AuthDetails, SESSION_COOKIE},
    error::ApiResult,
    idempotency::carries_secret,
    json::Json,
};

/// The session cookie. `Secure` when the request came over https (a forwarded scheme counts only
/// from a trusted proxy: [`crate::security_headers::is_https`]).
fn session_cookie(req: &HttpRequest, token: String, max_age_seconds: i64) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(crate::security_headers::is_https(req))
        .max_age(Duration::seconds(max_age_seconds))
        .finish()
}

/// Create an organization (free plan) and its owner, and log in.
///
/// No authentication. `email` must look like an address (it is stored trimmed and in lower
/// case), `password` needs at least 10 characters and `organization_name` 1 to 256. Sets the
/// HttpOnly `hookline_session` cookie and returns the session with its `csrf_token`, which
/// requests made with that cookie must send back as `X-CSRF-Token` when they change anything.
/// Sign-ups are throttled per client address.
#[utoipa::path(post, path = "/api/v1/auth/signup", operation_id = "v1.auth.signup", tag = "Auth",
    request_body(content = SignupIn, example = json!({
        "email": "jane.doe@example.com",
        "password": "correct-horse-battery-staple",
        "organization_name": "Acme Inc."
    })),
    responses(
        (status = 201, description = "Signed up and logged in; the session cookie is set", body = SessionOut),
        (status = 409, description = "The email is taken", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address (`rate_limited`, with `Retry-After`)", body = ErrorBody),
    ))]
pub async fn signup(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Json(input): Json<SignupIn>,
) -> ApiResult<HttpResponse> {
    let session = auth::signup(&ctx, input, crate::security_headers::client_ip(&req)).await?;
    Ok(carries_secret(
        HttpResponse::Created()
            .cookie(session_cookie(&req, session.token, session.max_age_seconds))
            .json(session.out),
    ))
}

/// Log in with email and password.
///
/// No authentication. Sets the HttpOnly, `SameSite=Strict` `hookline_session` cookie and returns
/// the session with its `csrf_token`; the session lasts `HOOKLINE_SESSION_TTL_HOURS` (12 by
/// default) or until log-out. A wrong email and a wrong password get the same 401, and attempts
/// are throttled per account and per client address.
#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "v1.auth.login", tag = "Auth",
    request_body(content = LoginIn, example = json!({
        "email": "jane.doe@example.com",
        "password": "correct-horse-battery-staple"
    })),
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = SessionOut),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 429, description = "Too many attempts for this account or from this address (`rate_limited`, with `Retry-After`)", body = ErrorBody),
    ))]
pub async fn login(
    req: HttpRequest,
    ctx: web::Data<Context>,
    Json(input): Json<LoginIn>,
) -> ApiResult<HttpResponse> {
    let session = auth::login(&ctx, input, crate::security_headers::client_ip(&req)).await?;
    Ok(carries_secret(
        HttpResponse::Ok()
            .cookie(session_cookie(&req, session.token, session.max_age_seconds))
            .json(session.out),
    ))
}

/// Log out: ends the session on the server (its token, wherever a copy of it is, is refused from
/// now on) and clears the session cookie.
///
/// Reads only the `hookline_session` cookie and needs no CSRF token. Answers 204 whether or not
/// the request carried a valid session.
#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "v1.auth.logout", tag = "Auth",
    responses((status = 204, description = "Logged out")))]
pub async fn logout(req: HttpRequest, ctx: web::Data<Context>) -> ApiResult<HttpResponse> {
    if let Some(session) = req.cookie(SESSION_COOKIE) {
        auth::logout(&ctx, session.value()).await?;
    }
    let mut cookie = session_cookie(&req, String::new(), 0);
    cookie.make_removal();
    Ok(HttpResponse::NoContent().cookie(cookie).finish())
}

/// The signed-in user and organization.
///
/// Only for a dashboard session (the `hookline_session` cookie); an API key gets 403
/// `session_required`. Returns the user with their role, the organization with its plan, and the
/// session's `csrf_token`.
#[utoipa::path(get, path = "/api/v1/auth/me", operation_id = "v1.auth.me", tag = "Auth",
    responses(
        (status = 200, description = "The session", body = SessionOut),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Called with an API key", body = ErrorBody),
    ))]
pub async fn me(ctx: web::Data<Context>, AuthDetails(caller): AuthDetails) -> ApiResult<HttpResponse> {
    let out = auth::me(&ctx, &caller.principal, caller.csrf_token.unwrap_or_default()).await?;
    Ok(HttpResponse::Ok().json(out))
}
