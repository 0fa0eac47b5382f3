//! Domain values that are valid by construction: parse at the edge, then pass them around.

use std::{fmt, net::IpAddr};

use base64::{Engine, engine::general_purpose::STANDARD};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// An IPv4 or IPv6 network, e.g. `127.0.0.1/32` or `::1/128`; a bare address means one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, ParseError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr =
            addr.parse().map_err(|_| ParseError(format!("{s:?} is not an IP address or CIDR")))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return fail(format!("{s:?}: prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { network, prefix_len })
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Seconds to wait before each retry after the first attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<u32>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(vec![5, 300, 1800, 7200, 18000, 36000, 36000])
    }
}

impl RetrySchedule {
    pub const MAX_RETRIES: usize = 20;
    /// One week: no single wait is longer.
    pub const MAX_WAIT_SECONDS: u32 = 7 * 24 * 3600;

    pub fn new(seconds: Vec<u32>) -> Result<RetrySchedule, ParseError> {
        if seconds.len() > Self::MAX_RETRIES {
            return fail(format!("at most {} retries", Self::MAX_RETRIES));
        }
        if let Some(bad) = seconds.iter().find(|s| **s > Self::MAX_WAIT_SECONDS) {
            return fail(format!("{bad} s is longer than the maximum of {} s", Self::MAX_WAIT_SECONDS));
        }
        Ok(RetrySchedule(seconds))
    }

    /// `"5,300,1800"`.
    pub fn parse_list(list: &str) -> Result<RetrySchedule, ParseError> {
        let seconds = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u32>().map_err(|_| ParseError(format!("{s:?} is not a whole number of seconds")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        RetrySchedule::new(seconds)
    }

    pub fn seconds(&self) -> &[u32] {
        &self.0
    }
}

/// An endpoint URL: absolute http(s) with a host and no credentials. Whether its address may be
/// reached is decided at connect time by the worker's SSRF-safe resolver, not here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub fn parse(s: &str) -> Result<EndpointUrl, ParseError> {
        if s.chars().count() > 2048 {
            return fail("must be at most 2048 characters");
        }
        let url = url::Url::parse(s).map_err(|err| ParseError(format!("not a valid URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return fail("must use http or https");
        }
        if url.host_str().is_none_or(str::is_empty) {
            return fail("must have a host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return fail("must not contain credentials: use the endpoint's auth setting");
        }
        Ok(EndpointUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

/// A dotted event-type name such as `invoice.paid`: segments of letters, digits, `_` and `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTypeName(String);

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

impl EventTypeName {
    pub fn parse(s: &str) -> Result<EventTypeName, ParseError> {
        if s.is_empty() || s.len() > 256 {
            return fail("must be 1 to 256 characters long");
        }
        if !s.split('.').all(valid_segment) {
            return fail("must be dot-separated segments of letters, digits, '_' and '-', e.g. invoice.paid");
        }
        Ok(EventTypeName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventTypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of an endpoint's event-type filter: an exact name, or a prefix wildcard `invoice.*`
/// (any type below `invoice.`), or `*` (everything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventTypeFilter {
    Exact(String),
    Prefix(String),
    Any,
}

impl EventTypeFilter {
    pub fn parse(s: &str) -> Result<EventTypeFilter, ParseError> {
        if s == "*" {
            return Ok(EventTypeFilter::Any);
        }
        if let Some(prefix) = s.strip_suffix(".*") {
            EventTypeName::parse(prefix)?;
            return Ok(EventTypeFilter::Prefix(format!("{prefix}.")));
        }
        Ok(EventTypeFilter::Exact(EventTypeName::parse(s)?.0))
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            EventTypeFilter::Exact(name) => name == event_type,
            EventTypeFilter::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            EventTypeFilter::Any => true,
        }
    }
}

/// A channel (tag) name: 1 to 128 characters of letters, digits, `_`, `-`, `.` and `:`.
pub fn parse_channel(s: &str) -> Result<String, ParseError> {
    if s.is_empty() || s.len() > 128 {
        return fail("must be 1 to 128 characters long");
    }
    if !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':')) {
        return fail("may contain only letters, digits, '_', '-', '.' and ':'");
    }
    Ok(s.to_owned())
}

/// A Standard Webhooks signing secret. Symmetric: `whsec_` + base64 of 24 to 64 random bytes,
/// signing `v1,<base64 HMAC-SHA256>`. Asymmetric: `whsk_` + base64 of an Ed25519 secret key
/// (the 32-byte seed, or the 64-byte seed ‖ public key of libsodium), signing `v1a,<base64
/// Ed25519>`; consumers verify with the public key `whpk_…`.
#[derive(Clone)]
pub enum SigningSecret {
    Hmac(Vec<u8>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl PartialEq for SigningSecret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SigningSecret {}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// Which signature an endpoint's secret makes: `v1` (HMAC-SHA256) or `v1a` (Ed25519).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureScheme {
    V1,
    V1a,
}

impl SigningSecret {
    pub const PREFIX: &'static str = "whsec_";
    pub const ED25519_PREFIX: &'static str = "whsk_";
    pub const PUBLIC_PREFIX: &'static str = "whpk_";

    /// A new HMAC secret.
    pub fn generate() -> SigningSecret {
        SigningSecret::generate_for(SignatureScheme::V1)
    }

    pub fn generate_for(scheme: SignatureScheme) -> SigningSecret {
        use rand::Rng;
        match scheme {
            SignatureScheme::V1 => {
                let mut bytes = vec![0u8; 24];
                rand::rng().fill_bytes(&mut bytes);
                SigningSecret::Hmac(bytes)
            }
            SignatureScheme::V1a => {
                let mut seed = [0u8; 32];
                rand::rng().fill_bytes(&mut seed);
                SigningSecret::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(&seed)))
            }
        }
    }

    pub fn parse(s: &str) -> Result<SigningSecret, ParseError> {
        if let Some(encoded) = s.strip_prefix(Self::ED25519_PREFIX) {
            let bytes = STANDARD
                .decode(encoded)
                .map_err(|_| ParseError("the part after whsk_ must be base64".to_owned()))?;
            let seed: [u8; 32] = match bytes.len() {
                32 | 64 => bytes[..32].try_into().expect("32 bytes"),
                _ => return fail("an Ed25519 secret key must encode 32 or 64 bytes"),
            };
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            if bytes.len() == 64 && bytes[32..] != key.verifying_key().to_bytes() {
                return fail("the last 32 bytes must be the public key of the first 32");
            }
            return Ok(SigningSecret::Ed25519(Box::new(key)));
        }
        let Some(encoded) = s.strip_prefix(Self::PREFIX) else {
            return fail("must start with whsec_ (HMAC) or whsk_ (Ed25519)");
        };
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| ParseError("the part after whsec_ must be base64".to_owned()))?;
        if !(24..=64).contains(&bytes.len()) {
            return fail("must encode 24 to 64 bytes");
        }
        Ok(SigningSecret::Hmac(bytes))
    }

    pub fn scheme(&self) -> SignatureScheme {
        match self {
            SigningSecret::Hmac(_) => SignatureScheme::V1,
            SigningSecret::Ed25519(_) => SignatureScheme::V1a,
        }
    }

    /// The secret as stored and shown: `whsec_…` or `whsk_…` (64-byte libsodium form).
    pub fn expose(&self) -> String {
        match self {
            SigningSecret::Hmac(bytes) => format!("{}{}", Self::PREFIX, STANDARD.encode(bytes)),
            SigningSecret::Ed25519(key) => {
                format!("{}{}", Self::ED25519_PREFIX, STANDARD.encode(key.to_keypair_bytes()))
            }
        }
    }

    /// The public key `whpk_…` consumers verify `v1a` signatures with; none for HMAC.
    pub fn public_key(&self) -> Option<String> {
        match self {
            SigningSecret::Hmac(_) => None,
            SigningSecret::Ed25519(key) => {
                Some(format!("{}{}", Self::PUBLIC_PREFIX, STANDARD.encode(key.verifying_key().to_bytes())))
            }
        }
    }
}

/// Request headers Hookline sets itself: an endpoint's custom headers and a transform's output
/// cannot override them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "hookline-payload",
];
const RESERVED_HEADER_PREFIXES: &[&str] = &["webhook-", "ce-", "svix-"];

/// What is wrong with a custom request header (an endpoint's `headers`, a transform's output):
/// nothing, or each problem of its name and its value.
pub fn custom_header_problems(name: &str, value: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    let lower = name.to_ascii_lowercase();
    let valid_name = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
    if !valid_name {
        problems.push("not a valid header name");
    } else if RESERVED_HEADERS.contains(&lower.as_str())
        || RESERVED_HEADER_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        problems.push("is set by Hookline and cannot be overridden");
    }
    if value.chars().count() > 4096 || value.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
        problems.push("value must be at most 4096 characters without line breaks");
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_cidr(cidr: &str, addr: &str, expected: bool) {
        let cidr = Cidr::parse(cidr).unwrap();
        assert_eq!(cidr.contains(addr.parse().unwrap()), expected, "{cidr:?} {addr}");
    }

    #[test]
    fn cidrs_contain_their_addresses_only() {
        check_cidr("127.0.0.1/32", "127.0.0.1", true);
        check_cidr("127.0.0.1/32", "127.0.0.2", false);
        check_cidr("127.0.0.1", "127.0.0.1", true);
        check_cidr("10.0.0.0/8", "10.255.1.2", true);
        check_cidr("10.0.0.0/8", "11.0.0.1", false);
        check_cidr("0.0.0.0/0", "8.8.8.8", true);
        check_cidr("::1/128", "::1", true);
        check_cidr("fc00::/7", "fd12::1", true);
        check_cidr("fc00::/7", "127.0.0.1", false);
        assert!(Cidr::parse("127.0.0.1/33").is_err());
        assert!(Cidr::parse("localhost").is_err());
    }

    fn check_filter(filter: &str, event_type: &str, expected: bool) {
        let parsed = EventTypeFilter::parse(filter).unwrap();
        assert_eq!(parsed.matches(event_type), expected, "{filter} ~ {event_type}");
    }

    #[test]
    fn event_type_filters_match_exact_names_and_wildcards() {
        check_filter("invoice.paid", "invoice.paid", true);
        check_filter("invoice.paid", "invoice.paid.late", false);
        check_filter("invoice.*", "invoice.paid", true);
        check_filter("invoice.*", "invoice.paid.late", true);
        check_filter("invoice.*", "invoice", false);
        check_filter("invoice.*", "invoices.paid", false);
        check_filter("*", "anything.at.all", true);
        assert!(EventTypeFilter::parse("invoice.**").is_err());
        assert!(EventTypeFilter::parse("in voice").is_err());
    }

    #[test]
    fn event_type_names_are_dotted_segments() {
        assert!(EventTypeName::parse("invoice.paid").is_ok());
        assert!(EventTypeName::parse("user_v2.created-now").is_ok());
        assert!(EventTypeName::parse("invoice..paid").is_err());
        assert!(EventTypeName::parse(".paid").is_err());
        assert!(EventTypeName::parse("").is_err());
        assert!(EventTypeName::parse("a*").is_err());
    }

    #[test]
    fn endpoint_urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(EndpointUrl::parse("https://example.com/hook").is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:9000/x").is_ok());
        assert!(EndpointUrl::parse("ftp://example.com").is_err());
        assert!(EndpointUrl::parse("file:///etc/passwd").is_err());
        assert!(EndpointUrl::parse("https://user:pw@example.com").is_err());
        assert!(EndpointUrl::parse("not a url").is_err());
    }

    #[test]
    fn signing_secrets_round_trip_and_reject_bad_input() {
        let secret = SigningSecret::generate();
        assert_eq!(SigningSecret::parse(&secret.expose()).unwrap(), secret);
        // The Standard Webhooks test vector secret.
        assert!(SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningSecret::parse("whsec_!!!").is_err());
        assert!(SigningSecret::parse("whsec_AAAA").is_err());
        assert!(!format!("{secret:?}").contains(&secret.expose()));

        let ed = SigningSecret::generate_for(SignatureScheme::V1a);
        assert!(ed.expose().starts_with("whsk_") && ed.public_key().unwrap().starts_with("whpk_"));
        assert_eq!(SigningSecret::parse(&ed.expose()).unwrap(), ed);
        // The 32-byte seed alone is accepted too; a 64-byte key whose public half is wrong is not.
        let SigningSecret::Ed25519(key) = &ed else { unreachable!() };
        let seed = format!("whsk_{}", STANDARD.encode(key.to_bytes()));
        assert_eq!(SigningSecret::parse(&seed).unwrap(), ed);
        let mut bytes = key.to_keypair_bytes();
        bytes[40] ^= 1;
        assert!(SigningSecret::parse(&format!("whsk_{}", STANDARD.encode(bytes))).is_err());
        assert!(SigningSecret::parse("whsk_AAAA").is_err());
        assert!(!format!("{ed:?}").contains(&ed.expose()));
    }

    #[test]
    fn retry_schedules_are_bounded() {
        assert_eq!(RetrySchedule::parse_list("1, 2,3").unwrap().seconds(), &[1, 2, 3]);
        assert!(RetrySchedule::parse_list("1,-2").is_err());
        assert!(RetrySchedule::new(vec![1; 21]).is_err());
        assert!(RetrySchedule::new(vec![RetrySchedule::MAX_WAIT_SECONDS + 1]).is_err());
    }
}
