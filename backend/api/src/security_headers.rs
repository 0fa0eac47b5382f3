//! Response headers every route gets: no MIME sniffing, no framing (the dashboard's buttons —
//! rotate, revoke, recover — cannot be clickjacked), a Content-Security-Policy (a route may set
//! its own, as the API reference does), no referrer, and HSTS when the request came over https.
//!
//! Whether a request came over https: the listener's own TLS, or `X-Forwarded-Proto` /
//! `Forwarded` — believed only from a peer in `HOOKLINE_TRUSTED_PROXIES` (a client could send the
//! header itself).

use actix_web::{
    HttpRequest,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderValue},
    middleware::Next,
    web,
};
use hookline_core::Context;

/// The dashboard's policy: its own scripts and WebAssembly, styles (Leptos sets style attributes),
/// requests to its own API only.
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// True when the request reached us over https (see the module docs).
pub fn is_https(req: &HttpRequest) -> bool {
    if req.app_config().secure() {
        return true;
    }
    let trusted = req.app_data::<web::Data<Context>>().is_some_and(|ctx| {
        req.peer_addr()
            .is_some_and(|peer| ctx.config.trusted_proxies.iter().any(|cidr| cidr.contains(peer.ip())))
    });
    trusted && req.connection_info().scheme() == "https"
}

/// The caller's address: the peer's, or — when the peer is a trusted proxy — the client address
/// it forwarded (`Forwarded: for=` / `X-Forwarded-For`). A header from anyone else is ignored, so
/// a client cannot pick the address it is throttled under.
pub fn client_ip(req: &HttpRequest) -> std::net::IpAddr {
    let unknown = std::net::IpAddr::from([0, 0, 0, 0]);
    let Some(peer) = req.peer_addr().map(|peer| peer.ip()) else { return unknown };
    let trusted = req
        .app_data::<web::Data<Context>>()
        .is_some_and(|ctx| ctx.config.trusted_proxies.iter().any(|cidr| cidr.contains(peer)));
    if !trusted {
        return peer;
    }
    let info = req.connection_info();
    let forwarded = info.realip_remote_addr().unwrap_or_default();
    forwarded
        .parse::<std::net::IpAddr>()
        .or_else(|_| forwarded.parse::<std::net::SocketAddr>().map(|addr| addr.ip()))
        .unwrap_or(peer)
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let https = is_https(req.request());
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DEFAULT_CSP));
    }
    if https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    Ok(response)
}
