//! Authentication: `Authorization: Bearer <API key>` or the dashboard's session cookie, resolved
//! to a [`Principal`] once per request (cached in the request's extensions, so the idempotency
//! middleware and the handler share the lookup).
//!
//! CSRF: the session cookie is HttpOnly and `SameSite=Strict`, and every state-changing request
//! authenticated by it must also carry the session's CSRF token in `X-CSRF-Token`. Bearer
//! requests are not exposed to CSRF (browsers never add that header on their own).

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, http::Method, web};
use hookline_core::{Context, CoreError, Principal, catalog, tenancy};

use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "hookline_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller, with the CSRF token when it came from a session.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub principal: Principal,
    pub csrf_token: Option<String>,
}

fn bearer(req: &HttpRequest) -> Option<Result<String, ApiError>> {
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION)?;
    let value = header.to_str().unwrap_or_default();
    Some(match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(CoreError::Unauthenticated("the Authorization header must be 'Bearer <API key>'").into()),
    })
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The routes a consumer-portal token may use: its application's sub-resources, the event-type
/// catalog (read), and jobs. The services check that the application is the token's own; this
/// gate keeps every tenant-wide route (API keys, applications list, billing, …) at 404 even if a
/// service forgot to.
fn portal_may_use(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v1", "app", _app] => *method == Method::GET,
        ["api", "v1", "app", _app, "portal-token"] => false,
        ["api", "v1", "app", _app, _, ..] => true,
        ["api", "v1", "event-type", ..] => is_safe(method),
        ["api", "v1", "job", ..] => true,
        _ => false,
    }
}

/// Resolves (or returns the cached) caller of this request.
pub async fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    if let Some(cached) = req.extensions().get::<Authenticated>() {
        return Ok(cached.clone());
    }
    let ctx = req.app_data::<web::Data<Context>>().expect("the app is built with a Context").clone();
    let authenticated = if let Some(token) = bearer(req) {
        let token = token?;
        let principal = if catalog::portal::looks_like_token(&token) {
            let principal = catalog::portal::verify(&ctx, &token)?;
            if !portal_may_use(req.method(), req.path()) {
                return Err(ApiError::not_found("route"));
            }
            principal
        } else {
            tenancy::api_keys::authenticate(&ctx, &token).await?
        };
        Authenticated { principal, csrf_token: None }
    } else if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        let session = tenancy::auth::verify(&ctx, cookie.value()).await?;
        if !is_safe(req.method()) {
            let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if sent != Some(session.csrf_token.as_str()) {
                return Err(CoreError::Forbidden {
                    code: "csrf_token_invalid",
                    detail: "state-changing requests made with the session cookie must send the session's \
                             csrf_token in the X-CSRF-Token header"
                        .to_owned(),
                }
                .into());
            }
        }
        Authenticated { principal: session.principal, csrf_token: Some(session.csrf_token) }
    } else {
        return Err(CoreError::Unauthenticated("send 'Authorization: Bearer <API key>' or log in").into());
    };
    req.extensions_mut().insert(authenticated.clone());
    Ok(authenticated)
}

/// Extractor: the principal of an authenticated request.
pub struct Auth(pub Principal);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await.map(|a| Auth(a.principal)) })
    }
}

/// Extractor: an authenticated request with its session details.
pub struct AuthDetails(pub Authenticated);

impl FromRequest for AuthDetails {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await.map(AuthDetails) })
    }
}
