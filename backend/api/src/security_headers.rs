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

/// The caller's address: the peer's, or — when the peer is a trusted proxy — the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (proxies append what they saw;
/// entries further left are whatever the client wrote). A header from anyone else is ignored,
/// so a client cannot pick the address it is throttled under.
pub fn client_ip(req: &HttpRequest) -> std::net::IpAddr {
    let unknown = std::net::IpAddr::from([0, 0, 0, 0]);
    let Some(peer) = req.peer_addr().map(|peer| peer.ip()) else { return unknown };
    let Some(ctx) = req.app_data::<web::Data<Context>>() else { return peer };
    let trusted = |ip: std::net::IpAddr| ctx.config.trusted_proxies.iter().any(|cidr| cidr.contains(ip));
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|value| value.to_str().ok());
    forwarded_client(peer, forwarded, trusted)
}

/// [`client_ip`] once the headers are read: `peer` unless it is trusted; then the right-most
/// forwarded address that is not trusted (a list that does not parse is not believed).
fn forwarded_client<'a>(
    peer: std::net::IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: impl Fn(std::net::IpAddr) -> bool,
) -> std::net::IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let forwarded: Vec<std::net::IpAddr> = forwarded_for
        .flat_map(|value| value.split(','))
        .map(|entry| entry.trim().parse::<std::net::IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    forwarded.into_iter().rev().find(|ip| !trusted(*ip)).unwrap_or(peer)
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::forwarded_client;

    #[test]
    fn the_client_is_the_right_most_address_a_trusted_proxy_did_not_write_itself() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = |addr: IpAddr| addr.to_string().starts_with("10.");
        // Straight from a client: its headers are ignored.
        assert_eq!(
            forwarded_client(ip("198.51.100.7"), ["1.2.3.4"].into_iter(), trusted),
            ip("198.51.100.7")
        );
        // Through two trusted proxies; the client wrote a fake entry first.
        let chain = ["6.6.6.6, 203.0.113.9", "10.0.0.2"];
        assert_eq!(forwarded_client(ip("10.0.0.1"), chain.into_iter(), trusted), ip("203.0.113.9"));
        // Garbage in the list: not believed, the proxy's address stands.
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), ["nope, 203.0.113.9"].into_iter(), trusted),
            ip("10.0.0.1")
        );
        assert_eq!(forwarded_client(ip("10.0.0.1"), std::iter::empty(), trusted), ip("10.0.0.1"));
    }
}
