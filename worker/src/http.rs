//! The outbound HTTP client: hostile territory (STYLE 16). Only http(s); every address the client
//! connects to is checked *at resolution time by the resolver the connection uses*, so a DNS
//! answer cannot be swapped between check and connect (DNS rebinding); IP-literal URLs, which skip
//! the resolver, are checked before the request. No proxies from the environment, no redirects,
//! connect and total timeouts, and response bodies read up to a cap.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use hookline_core::domain::Cidr;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Why an address may not be reached.
#[derive(Debug, thiserror::Error)]
#[error("{ip} is a {range} address, which endpoints may not reach (allow it with HOOKLINE_SSRF_ALLOW)")]
pub struct SsrfBlocked {
    pub ip: IpAddr,
    pub range: &'static str,
}

/// The kind of address `ip` is, when endpoints must not reach it.
///
/// IPv6 ranges that carry an IPv4 address are judged by it where the address is real (NAT64,
/// 6to4), and refused as a whole where no endpoint's address lies (IPv4-compatible, -mapped,
/// -translated) or where the embedded address is hidden (Teredo); a whole range refused is named
/// by its embedded address's range when that one is forbidden too.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded_low = || {
                Ipv4Addr::new(
                    (segments[6] >> 8) as u8,
                    segments[6] as u8,
                    (segments[7] >> 8) as u8,
                    segments[7] as u8,
                )
            };
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if segments[..6] == [0; 6] {
                // IPv4-compatible (`::a.b.c.d`), deprecated since RFC 4291: no resolver returns
                // it for a real host, and some stacks still route it to the IPv4 address.
                forbidden_v4(embedded_low()).or(Some("IPv4-compatible (deprecated)"))
            } else if segments[..6] == [0, 0, 0, 0, 0, 0xffff] {
                // IPv4-mapped (`::ffff:a.b.c.d`): how a dual-stack socket names an IPv4 peer; a
                // real endpoint resolves to the IPv4 address itself, never to this.
                forbidden_v4(embedded_low()).or(Some("IPv4-mapped"))
            } else if segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
                // IPv4-translated (`::ffff:0:a.b.c.d`, RFC 2765 SIIT): the same, for translators.
                forbidden_v4(embedded_low()).or(Some("IPv4-translated"))
            } else if v6.is_multicast() {
                Some("multicast")
            } else if segments[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if segments[0] & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if segments[0] == 0x0064 && segments[1] == 0xff9b {
                // NAT64: the embedded IPv4 address decides.
                forbidden_v4(embedded_low())
            } else if segments[0] == 0x2002 {
                // 6to4: the relay sends to the IPv4 address in segments 1–2.
                let [a, b] = segments[1].to_be_bytes();
                let [c, d] = segments[2].to_be_bytes();
                forbidden_v4(Ipv4Addr::new(a, b, c, d))
            } else if segments[0] == 0x2001 && segments[1] == 0 {
                // Teredo: the client's address is obfuscated (and the server's may be anything),
                // so what the packets reach cannot be told from the address.
                Some("Teredo")
            } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
                Some("documentation")
            } else if v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
                Some("cloud metadata")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("cloud metadata")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if (a, b, c) == (192, 0, 0) {
        Some("IETF protocol assignments")
    } else if a == 198 && (18..20).contains(&b) {
        Some("benchmarking")
    } else if matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113)) {
        Some("documentation")
    } else if ip.is_multicast() || a >= 224 {
        Some("multicast or reserved")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else {
        None
    }
}

/// The SSRF policy: the forbidden ranges, minus the operator's allow-list.
#[derive(Clone, Debug, Default)]
pub struct SsrfPolicy {
    pub allow: Vec<Cidr>,
}

impl SsrfPolicy {
    pub fn check(&self, ip: IpAddr) -> Result<(), SsrfBlocked> {
        match forbidden_range(ip) {
            Some(range) if !self.allow.iter().any(|cidr| cidr.contains(ip)) => Err(SsrfBlocked { ip, range }),
            _ => Ok(()),
        }
    }
}

/// Resolves with the system resolver and drops forbidden addresses; fails when none is left.
struct CheckingResolver {
    policy: SsrfPolicy,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let mut blocked = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(err) => {
                        blocked = Some(err);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match blocked {
                    Some(err) => Box::new(err) as Box<dyn std::error::Error + Send + Sync>,
                    None => format!("{} has no addresses", name.as_str()).into(),
                });
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The outbound client. `max_idle_per_host` should be at least the number of requests the engine
/// can have in flight at once (to one host: its endpoints' caps together): a connection returned
/// to a full idle pool is closed, and the next request opens a new one. With 256 while bench (c)
/// had up to 640 requests in flight to one receiver, the engine opened ≈ 8,000 connections for
/// 50,000 deliveries; unused connections close after 60 s anyway.
pub fn client(policy: &SsrfPolicy, max_idle_per_host: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckingResolver { policy: policy.clone() }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // No protocol-level resends: the engine's retry schedule decides every attempt, and the
        // default policy cloned each request's headers in case it would resend it.
        .retry(reqwest::retry::never())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("Hookline/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client configuration is valid")
}

/// Checks a URL's host before sending when it is an IP literal (the resolver never sees those).
pub fn check_literal_host(url: &reqwest::Url, policy: &SsrfPolicy) -> Result<(), SsrfBlocked> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => policy.check(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => policy.check(IpAddr::V6(ip)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ip: &str, expected: Option<&str>) {
        assert_eq!(forbidden_range(ip.parse().unwrap()), expected, "{ip}");
    }

    #[test]
    fn private_and_special_ranges_are_forbidden() {
        check("127.0.0.1", Some("loopback"));
        check("127.10.0.1", Some("loopback"));
        check("10.1.2.3", Some("private"));
        check("172.16.0.1", Some("private"));
        check("192.168.1.1", Some("private"));
        check("169.254.169.254", Some("cloud metadata"));
        check("169.254.1.1", Some("link-local"));
        check("100.64.0.1", Some("shared (carrier-grade NAT)"));
        check("224.0.0.1", Some("multicast or reserved"));
        check("0.0.0.0", Some("unspecified"));
        check("::1", Some("loopback"));
        check("fe80::1", Some("link-local"));
        check("fd00::1", Some("unique-local"));
        check("::ffff:127.0.0.1", Some("loopback"));
        check("::ffff:10.0.0.1", Some("private"));
        check("64:ff9b::a00:1", Some("private"));
        check("fd00:ec2::254", Some("unique-local"));
        check("93.184.216.34", None);
        check("2606:2800:220:1:248:1893:25c8:1946", None);
    }

    #[test]
    fn edge_ranges_that_embed_or_reserve_addresses_are_forbidden() {
        // IPv4-compatible (::a.b.c.d, deprecated): the embedded range, or the whole range.
        check("::127.0.0.1", Some("loopback"));
        check("::10.0.0.1", Some("private"));
        check("::93.184.216.34", Some("IPv4-compatible (deprecated)"));
        // IPv4-mapped and IPv4-translated: never a real endpoint's address.
        check("::ffff:93.184.216.34", Some("IPv4-mapped"));
        check("::ffff:0:127.0.0.1", Some("loopback"));
        check("::ffff:0:93.184.216.34", Some("IPv4-translated"));
        // 6to4: the embedded IPv4 address (segments 1–2) decides.
        check("2002:7f00:1::1", Some("loopback"));
        check("2002:a00:1::1", Some("private"));
        check("2002:a9fe:a9fe::", Some("cloud metadata"));
        check("2002:5db8:d822::1", None);
        // Teredo hides its client's address: refused as a whole.
        check("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some("Teredo"));
        check("2001:4860:4860::8888", None);
        check("2001:db8::1", Some("documentation"));
        check("192.0.0.1", Some("IETF protocol assignments"));
        check("192.0.0.255", Some("IETF protocol assignments"));
        check("192.0.1.1", None);
        check("198.18.0.1", Some("benchmarking"));
        check("198.19.255.255", Some("benchmarking"));
        check("198.17.255.255", None);
        check("198.20.0.1", None);
        check("192.0.2.1", Some("documentation"));
        check("198.51.100.7", Some("documentation"));
        check("203.0.113.9", Some("documentation"));
        check("203.0.114.1", None);
        // The ones already handled stay as they were.
        check("::", Some("unspecified"));
        check("::1", Some("loopback"));
    }

    #[test]
    fn the_allow_list_opens_the_edge_ranges_too() {
        let policy = SsrfPolicy {
            allow: vec![Cidr::parse("198.18.0.0/15").unwrap(), Cidr::parse("2002:a00:1::/48").unwrap()],
        };
        assert!(policy.check("198.18.5.5".parse().unwrap()).is_ok());
        assert!(policy.check("2002:a00:1::1".parse().unwrap()).is_ok());
        assert!(policy.check("198.51.100.1".parse().unwrap()).is_err());
        assert!(policy.check("2002:a00:2::1".parse().unwrap()).is_err());
    }

    #[test]
    fn the_allow_list_opens_exactly_its_ranges() {
        let policy = SsrfPolicy { allow: vec![Cidr::parse("127.0.0.1/32").unwrap()] };
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(SsrfPolicy::default().check("127.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn ip_literal_urls_are_checked_before_sending() {
        let policy = SsrfPolicy::default();
        assert!(check_literal_host(&"http://127.0.0.1:8080/x".parse().unwrap(), &policy).is_err());
        assert!(check_literal_host(&"http://[::1]/x".parse().unwrap(), &policy).is_err());
        assert!(check_literal_host(&"https://example.com/x".parse().unwrap(), &policy).is_ok());
    }
}
