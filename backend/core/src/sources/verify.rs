//! Verifying that a received request comes from the source's provider: one function per scheme,
//! over the raw body bytes and the request headers, with constant-time comparisons
//! (`Mac::verify_slice`, `subtle`). A rejection names a stable code and nothing that would help
//! an attacker (not which secret or which part failed).

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Mac, digest::KeyInit};
use hookline_types::{HmacAlgorithm, SignatureEncoding, VerificationIn, VerificationOut};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::Errors;

/// How long a replaced secret keeps verifying after a `PATCH` changed it.
pub const PREVIOUS_SECRET_HOURS: i64 = 24;

/// The default tolerance of timestamped schemes.
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;

/// A source's verification as stored (sealed): the scheme with its current secret, and secrets
/// it replaced that still verify until they expire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub scheme: VerificationIn,
    #[serde(default)]
    pub previous: Vec<Previous>,
}

/// A replaced secret (or password, or key value), valid until `expires_at`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Previous {
    pub secret: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a request was refused; `code` is what the 401 says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The scheme's signature, timestamp or credentials header is absent or unreadable.
    SignatureMissing,
    SignatureMismatch,
    TimestampOutOfTolerance,
    CredentialsInvalid,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::SignatureMissing => "signature_missing",
            Rejection::SignatureMismatch => "signature_mismatch",
            Rejection::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Rejection::CredentialsInvalid => "credentials_invalid",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            Rejection::SignatureMissing => "the request carries no readable signature for this source",
            Rejection::SignatureMismatch => "the signature does not match",
            Rejection::TimestampOutOfTolerance => "the request's timestamp is too far from now",
            Rejection::CredentialsInvalid => "the credentials do not match",
        }
    }
}

/// A received request as verification sees it: headers (any case), the raw body, the time.
pub struct Inbound<'a> {
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

impl Inbound<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What a verified request told about itself: the scheme's event id header (when it has one)
/// and the signature, for de-duplication where there is no id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verified {
    pub signature: Option<String>,
}

/// Verifies `request` against `scheme` with no replaced secrets (what a new source does).
pub fn verify(scheme: &VerificationIn, request: &Inbound<'_>) -> Result<Verified, Rejection> {
    Stored { scheme: scheme.clone(), previous: Vec::new() }.verify(request)
}

impl Stored {
    /// The secrets that verify now: the current one, then unexpired previous ones.
    fn secrets<'a>(&'a self, current: &'a str, now: DateTime<Utc>) -> impl Iterator<Item = &'a str> {
        std::iter::once(current)
            .chain(self.previous.iter().filter(move |p| p.expires_at > now).map(|p| p.secret.as_str()))
    }

    pub fn verify(&self, request: &Inbound<'_>) -> Result<Verified, Rejection> {
        let now = request.now;
        match &self.scheme {
            VerificationIn::None => Ok(Verified::default()),
            VerificationIn::StandardWebhooks { secret, public_key, tolerance_seconds } => {
                let id = request.header("webhook-id").ok_or(Rejection::SignatureMissing)?;
                let timestamp = request.header("webhook-timestamp").ok_or(Rejection::SignatureMissing)?;
                let signatures = request.header("webhook-signature").ok_or(Rejection::SignatureMissing)?;
                check_timestamp(timestamp, *tolerance_seconds, now)?;
                let mut content = Vec::with_capacity(id.len() + timestamp.len() + 2 + request.body.len());
                content.extend_from_slice(id.as_bytes());
                content.push(b'.');
                content.extend_from_slice(timestamp.as_bytes());
                content.push(b'.');
                content.extend_from_slice(request.body);
                let current = secret.as_deref().or(public_key.as_deref()).unwrap_or_default();
                for key in self.secrets(current, now) {
                    for candidate in signatures.split_whitespace() {
                        let Some((version, sig)) = candidate.split_once(',') else { continue };
                        let Ok(sig) = STANDARD.decode(sig) else { continue };
                        let ok = match (version, key) {
                            ("v1", key) if key.starts_with("whsec_") => STANDARD
                                .decode(&key["whsec_".len()..])
                                .is_ok_and(|key| hmac_matches(HmacAlgorithm::Sha256, &key, &content, &sig)),
                            ("v1a", key) if key.starts_with("whpk_") => ed25519_matches(key, &content, &sig),
                            _ => false,
                        };
                        if ok {
                            return Ok(Verified { signature: Some(candidate.to_owned()) });
                        }
                    }
                }
                Err(Rejection::SignatureMismatch)
            }
            VerificationIn::Stripe { secret, tolerance_seconds } => {
                let header = request.header("stripe-signature").ok_or(Rejection::SignatureMissing)?;
                let mut timestamp = None;
                let mut signatures = Vec::new();
                for part in header.split(',') {
                    match part.trim().split_once('=') {
                        Some(("t", t)) => timestamp = Some(t),
                        Some(("v1", sig)) => signatures.extend(hex::decode(sig).ok()),
                        _ => {}
                    }
                }
                let timestamp = timestamp.ok_or(Rejection::SignatureMissing)?;
                if signatures.is_empty() {
                    return Err(Rejection::SignatureMissing);
                }
                check_timestamp(timestamp, *tolerance_seconds, now)?;
                let content = [timestamp.as_bytes(), b".", request.body].concat();
                self.any_hmac(secret, now, HmacAlgorithm::Sha256, &content, &signatures)?;
                Ok(Verified { signature: Some(header.to_owned()) })
            }
            VerificationIn::Github { secret } => {
                let header = request.header("x-hub-signature-256").ok_or(Rejection::SignatureMissing)?;
                let sig = header
                    .strip_prefix("sha256=")
                    .and_then(|hex_sig| hex::decode(hex_sig).ok())
                    .ok_or(Rejection::SignatureMissing)?;
                self.any_hmac(secret, now, HmacAlgorithm::Sha256, request.body, &[sig])?;
                Ok(Verified { signature: Some(header.to_owned()) })
            }
            VerificationIn::Shopify { secret } => {
                let header = request.header("x-shopify-hmac-sha256").ok_or(Rejection::SignatureMissing)?;
                let sig = STANDARD.decode(header.trim()).map_err(|_| Rejection::SignatureMissing)?;
                self.any_hmac(secret, now, HmacAlgorithm::Sha256, request.body, &[sig])?;
                Ok(Verified { signature: Some(header.to_owned()) })
            }
            VerificationIn::Hmac {
                secret,
                header,
                algorithm,
                encoding,
                prefix,
                template,
                timestamp_header,
                tolerance_seconds,
            } => {
                let value = request.header(header).ok_or(Rejection::SignatureMissing)?.trim();
                let value = match prefix {
                    Some(prefix) => value.strip_prefix(prefix.as_str()).ok_or(Rejection::SignatureMissing)?,
                    None => value,
                };
                let sig = match encoding {
                    SignatureEncoding::Hex => hex::decode(value).ok(),
                    SignatureEncoding::Base64 => STANDARD.decode(value).ok(),
                }
                .ok_or(Rejection::SignatureMissing)?;
                let timestamp = match timestamp_header {
                    Some(name) => {
                        let timestamp = request.header(name).ok_or(Rejection::SignatureMissing)?;
                        check_timestamp(timestamp, *tolerance_seconds, now)?;
                        Some(timestamp)
                    }
                    None => None,
                };
                let content = match template {
                    Some(template) => render_template(template, timestamp.unwrap_or_default(), request.body),
                    None => request.body.to_vec(),
                };
                self.any_hmac(secret, now, *algorithm, &content, &[sig])?;
                Ok(Verified { signature: Some(value.to_owned()) })
            }
            VerificationIn::Basic { username, password } => {
                let given = request
                    .header("authorization")
                    .and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")))
                    .and_then(|b64| STANDARD.decode(b64.trim()).ok())
                    .ok_or(Rejection::CredentialsInvalid)?;
                let matches = self.secrets(password, now).any(|password| {
                    let expected = format!("{username}:{password}");
                    bool::from(expected.as_bytes().ct_eq(&given))
                });
                if matches { Ok(Verified::default()) } else { Err(Rejection::CredentialsInvalid) }
            }
            VerificationIn::ApiKey { header, value } => {
                let given = request.header(header).ok_or(Rejection::CredentialsInvalid)?;
                let matches = self
                    .secrets(value, now)
                    .any(|value| bool::from(value.as_bytes().ct_eq(given.as_bytes())));
                if matches { Ok(Verified::default()) } else { Err(Rejection::CredentialsInvalid) }
            }
        }
    }

    /// Ok when one of `signatures` is the HMAC of `content` under one of the secrets.
    fn any_hmac(
        &self,
        current: &str,
        now: DateTime<Utc>,
        algorithm: HmacAlgorithm,
        content: &[u8],
        signatures: &[Vec<u8>],
    ) -> Result<(), Rejection> {
        for secret in self.secrets(current, now) {
            if signatures.iter().any(|sig| hmac_matches(algorithm, secret.as_bytes(), content, sig)) {
                return Ok(());
            }
        }
        Err(Rejection::SignatureMismatch)
    }

    /// The same scheme with its secret replaced by `next`'s, keeping the replaced one for
    /// [`PREVIOUS_SECRET_HOURS`]; a change of scheme starts over.
    pub fn replaced_by(&self, next: VerificationIn, now: DateTime<Utc>) -> Stored {
        let mut previous: Vec<Previous> =
            self.previous.iter().filter(|p| p.expires_at > now).cloned().collect();
        if std::mem::discriminant(&self.scheme) == std::mem::discriminant(&next) {
            let (old, new) = (secret_of(&self.scheme), secret_of(&next));
            if let (Some(old), Some(new)) = (old, new)
                && old != new
            {
                previous.push(Previous {
                    secret: old.to_owned(),
                    expires_at: now + chrono::Duration::hours(PREVIOUS_SECRET_HOURS),
                });
            }
        } else {
            previous.clear();
        }
        Stored { scheme: next, previous }
    }

    /// The non-secret view of the scheme.
    pub fn to_out(&self, now: DateTime<Utc>) -> VerificationOut {
        let mut out = VerificationOut {
            kind: kind(&self.scheme).to_owned(),
            header: None,
            algorithm: None,
            encoding: None,
            prefix: None,
            template: None,
            timestamp_header: None,
            tolerance_seconds: None,
            username: None,
            secrets: 0,
        };
        match &self.scheme {
            VerificationIn::None => {}
            VerificationIn::StandardWebhooks { tolerance_seconds, .. }
            | VerificationIn::Stripe { tolerance_seconds, .. } => {
                out.tolerance_seconds = Some(tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS));
            }
            VerificationIn::Github { .. } => out.header = Some("X-Hub-Signature-256".to_owned()),
            VerificationIn::Shopify { .. } => out.header = Some("X-Shopify-Hmac-Sha256".to_owned()),
            VerificationIn::Hmac {
                header,
                algorithm,
                encoding,
                prefix,
                template,
                timestamp_header,
                tolerance_seconds,
                ..
            } => {
                out.header = Some(header.clone());
                out.algorithm = Some(*algorithm);
                out.encoding = Some(*encoding);
                out.prefix = prefix.clone();
                out.template = template.clone();
                out.timestamp_header = timestamp_header.clone();
                out.tolerance_seconds =
                    timestamp_header.as_ref().map(|_| tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS));
            }
            VerificationIn::Basic { username, .. } => out.username = Some(username.clone()),
            VerificationIn::ApiKey { header, .. } => out.header = Some(header.clone()),
        }
        if secret_of(&self.scheme).is_some() {
            out.secrets = 1 + self.previous.iter().filter(|p| p.expires_at > now).count() as u32;
        }
        out
    }

    /// Names of request headers whose values are credentials: redacted in the request log.
    pub fn secret_headers(&self) -> Vec<String> {
        match &self.scheme {
            VerificationIn::Basic { .. } => vec!["authorization".to_owned()],
            VerificationIn::ApiKey { header, .. } => vec![header.to_ascii_lowercase()],
            _ => Vec::new(),
        }
    }
}

/// The scheme's name on the wire.
pub fn kind(scheme: &VerificationIn) -> &'static str {
    match scheme {
        VerificationIn::None => "none",
        VerificationIn::StandardWebhooks { .. } => "standard_webhooks",
        VerificationIn::Stripe { .. } => "stripe",
        VerificationIn::Github { .. } => "github",
        VerificationIn::Shopify { .. } => "shopify",
        VerificationIn::Hmac { .. } => "hmac",
        VerificationIn::Basic { .. } => "basic",
        VerificationIn::ApiKey { .. } => "api_key",
    }
}

/// The scheme's secret (or password, key value, public key), the part a rotation replaces.
pub(crate) fn secret_of(scheme: &VerificationIn) -> Option<&str> {
    match scheme {
        VerificationIn::None => None,
        VerificationIn::StandardWebhooks { secret, public_key, .. } => {
            secret.as_deref().or(public_key.as_deref())
        }
        VerificationIn::Stripe { secret, .. }
        | VerificationIn::Github { secret }
        | VerificationIn::Shopify { secret }
        | VerificationIn::Hmac { secret, .. } => Some(secret),
        VerificationIn::Basic { password, .. } => Some(password),
        VerificationIn::ApiKey { value, .. } => Some(value),
    }
}

/// Checks a scheme's settings when a source is saved, reporting each bad field under
/// `body.verification`.
pub fn check(errors: &mut Errors, scheme: &VerificationIn) {
    let push = |errors: &mut Errors, field: &str, message: &str| {
        errors.push(&["body", "verification", field], message);
    };
    let check_secret = |errors: &mut Errors, secret: &str| {
        if secret.is_empty() || secret.chars().count() > 1024 {
            push(errors, "secret", "must be 1 to 1024 characters long");
        }
    };
    let check_tolerance = |errors: &mut Errors, tolerance: Option<u32>| {
        if tolerance.is_some_and(|t| t == 0 || t > 86_400) {
            push(errors, "tolerance_seconds", "must be 1 to 86400 seconds");
        }
    };
    let check_header = |errors: &mut Errors, header: &str| {
        if http_token(header).is_none() {
            push(errors, "header", "must be a header name");
        }
    };
    match scheme {
        VerificationIn::None => {}
        VerificationIn::StandardWebhooks { secret, public_key, tolerance_seconds } => {
            match (secret, public_key) {
                (Some(secret), None) => {
                    let valid = secret
                        .strip_prefix("whsec_")
                        .and_then(|b64| STANDARD.decode(b64).ok())
                        .is_some_and(|key| !key.is_empty() && key.len() <= 128);
                    if !valid {
                        push(errors, "secret", "must be whsec_ followed by the base64 key");
                    }
                }
                (None, Some(public_key)) => {
                    let valid = public_key
                        .strip_prefix("whpk_")
                        .and_then(|b64| STANDARD.decode(b64).ok())
                        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                        .is_some_and(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_ok());
                    if !valid {
                        push(errors, "public_key", "must be whpk_ followed by the base64 Ed25519 public key");
                    }
                }
                _ => push(errors, "secret", "give either secret (whsec_…, v1) or public_key (whpk_…, v1a)"),
            }
            check_tolerance(errors, *tolerance_seconds);
        }
        VerificationIn::Stripe { secret, tolerance_seconds } => {
            check_secret(errors, secret);
            check_tolerance(errors, *tolerance_seconds);
        }
        VerificationIn::Github { secret } | VerificationIn::Shopify { secret } => {
            check_secret(errors, secret)
        }
        VerificationIn::Hmac {
            secret,
            header,
            template,
            timestamp_header,
            tolerance_seconds,
            prefix,
            ..
        } => {
            check_secret(errors, secret);
            check_header(errors, header);
            if let Some(name) = timestamp_header
                && http_token(name).is_none()
            {
                push(errors, "timestamp_header", "must be a header name");
            }
            if let Some(template) = template {
                if !template.contains("{body}") {
                    push(errors, "template", "must contain {body}");
                }
                if template.contains("{timestamp}") && timestamp_header.is_none() {
                    push(errors, "timestamp_header", "required when the template uses {timestamp}");
                }
            }
            if prefix.as_ref().is_some_and(|p| p.len() > 64) {
                push(errors, "prefix", "at most 64 characters");
            }
            check_tolerance(errors, *tolerance_seconds);
        }
        VerificationIn::Basic { username, password } => {
            if username.is_empty() || username.contains(':') || username.chars().count() > 256 {
                push(errors, "username", "must be 1 to 256 characters, without ':'");
            }
            if password.is_empty() || password.chars().count() > 1024 {
                push(errors, "password", "must be 1 to 1024 characters long");
            }
        }
        VerificationIn::ApiKey { header, value } => {
            check_header(errors, header);
            if value.chars().count() < 16 || value.chars().count() > 1024 {
                push(errors, "value", "must be 16 to 1024 characters long");
            }
        }
    }
}

/// `name` when it is a valid HTTP header name (RFC 9110 token).
pub(crate) fn http_token(name: &str) -> Option<&str> {
    let valid = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    valid.then_some(name)
}

fn render_template(template: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + body.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{body}") {
            out.extend_from_slice(body);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{timestamp}") {
            out.extend_from_slice(timestamp.as_bytes());
            rest = after;
        } else {
            out.push(b'{');
            rest = &tail[1..];
        }
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// Ok when the timestamp (Unix seconds) is within the tolerance of now, either side.
fn check_timestamp(timestamp: &str, tolerance: Option<u32>, now: DateTime<Utc>) -> Result<(), Rejection> {
    let seconds: i64 = timestamp.trim().parse().map_err(|_| Rejection::SignatureMissing)?;
    let tolerance = u64::from(tolerance.unwrap_or(DEFAULT_TOLERANCE_SECONDS));
    // abs_diff: a timestamp near i64::MIN would overflow a subtraction.
    if now.timestamp().abs_diff(seconds) > tolerance {
        return Err(Rejection::TimestampOutOfTolerance);
    }
    Ok(())
}

/// Computes the HMAC of `content` (for signing test requests).
pub(crate) fn hmac(algorithm: HmacAlgorithm, key: &[u8], content: &[u8]) -> Vec<u8> {
    fn compute<M: Mac + KeyInit>(key: &[u8], content: &[u8]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(content);
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        HmacAlgorithm::Sha1 => compute::<hmac::Hmac<sha1::Sha1>>(key, content),
        HmacAlgorithm::Sha256 => compute::<hmac::Hmac<sha2::Sha256>>(key, content),
        HmacAlgorithm::Sha512 => compute::<hmac::Hmac<sha2::Sha512>>(key, content),
    }
}

/// Constant-time: `Mac::verify_slice`.
fn hmac_matches(algorithm: HmacAlgorithm, key: &[u8], content: &[u8], signature: &[u8]) -> bool {
    fn verify<M: Mac + KeyInit>(key: &[u8], content: &[u8], signature: &[u8]) -> bool {
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else { return false };
        mac.update(content);
        mac.verify_slice(signature).is_ok()
    }
    match algorithm {
        HmacAlgorithm::Sha1 => verify::<hmac::Hmac<sha1::Sha1>>(key, content, signature),
        HmacAlgorithm::Sha256 => verify::<hmac::Hmac<sha2::Sha256>>(key, content, signature),
        HmacAlgorithm::Sha512 => verify::<hmac::Hmac<sha2::Sha512>>(key, content, signature),
    }
}

fn ed25519_matches(public_key: &str, content: &[u8], signature: &[u8]) -> bool {
    use ed25519_dalek::Verifier;
    let Some(key) = public_key
        .strip_prefix("whpk_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .and_then(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok())
    else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else { return false };
    key.verify(content, &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_at_the_ends_of_i64_are_out_of_tolerance_not_an_overflow() {
        let now = Utc::now();
        for timestamp in ["-9223372036854775808", "9223372036854775807", "-1"] {
            assert_eq!(
                check_timestamp(timestamp, None, now),
                Err(Rejection::TimestampOutOfTolerance),
                "{timestamp}"
            );
        }
        assert_eq!(check_timestamp(&now.timestamp().to_string(), Some(1), now), Ok(()));
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn stored(scheme: VerificationIn) -> Stored {
        Stored { scheme, previous: Vec::new() }
    }

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    fn check(stored: &Stored, list: &[(&str, &str)], body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let headers = headers(list);
        stored.verify(&Inbound { headers: &headers, body, now: at(now) })
    }

    #[test]
    fn standard_webhooks_accepts_the_specifications_example_and_rejects_changes() {
        // The example of the Standard Webhooks / Svix documentation.
        let source = stored(VerificationIn::StandardWebhooks {
            secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
            public_key: None,
            tolerance_seconds: None,
        });
        let body = br#"{"test": 2432232314}"#;
        let good = [
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", "v1,bm9ub3RoaXM= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ];
        assert!(check(&source, &good, body, 1614265330 + 10).is_ok());
        assert_eq!(
            check(&source, &good, br#"{"test": 2432232315}"#, 1614265330),
            Err(Rejection::SignatureMismatch)
        );
        assert_eq!(check(&source, &good, body, 1614265330 + 301), Err(Rejection::TimestampOutOfTolerance));
        assert_eq!(check(&source, &good, body, 1614265330 - 301), Err(Rejection::TimestampOutOfTolerance));
        assert_eq!(check(&source, &good[..2], body, 1614265330), Err(Rejection::SignatureMissing));
    }

    #[test]
    fn standard_webhooks_v1a_verifies_ed25519_signatures_with_the_public_key() {
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let public = format!("whpk_{}", STANDARD.encode(key.verifying_key().to_bytes()));
        let source = stored(VerificationIn::StandardWebhooks {
            secret: None,
            public_key: Some(public),
            tolerance_seconds: Some(60),
        });
        let body = br#"{"a":1}"#;
        let signature = STANDARD.encode(key.sign(b"msg_1.1700000000.{\"a\":1}").to_bytes());
        let header = format!("v1a,{signature}");
        let good = [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", header.as_str()),
        ];
        assert!(check(&source, &good, body, 1700000000).is_ok());
        let other = [("webhook-id", "msg_2"), good[1], good[2]];
        assert_eq!(check(&source, &other, body, 1700000000), Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn github_accepts_the_example_of_its_documentation() {
        // docs.github.com, "Validating webhook deliveries".
        let source = stored(VerificationIn::Github { secret: "It's a Secret to Everybody".to_owned() });
        let good = [(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )];
        assert!(check(&source, &good, b"Hello, World!", 0).is_ok());
        assert_eq!(check(&source, &good, b"Hello, World?", 0), Err(Rejection::SignatureMismatch));
        assert_eq!(check(&source, &[], b"Hello, World!", 0), Err(Rejection::SignatureMissing));
    }

    #[test]
    fn stripe_checks_any_v1_signature_over_timestamp_and_body_within_tolerance() {
        // Computed independently (Python's hmac): HMAC-SHA256("whsec_test_secret", "1700000000.{body}").
        let source = stored(VerificationIn::Stripe {
            secret: "whsec_test_secret".to_owned(),
            tolerance_seconds: None,
        });
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let header =
            "t=1700000000,v1=00aa,v1=46dc069361a7691082640523fa33fe5d6c8c88d5f5e257cdf8cf11539d166595,v0=ff";
        assert!(check(&source, &[("Stripe-Signature", header)], body, 1700000100).is_ok());
        assert_eq!(
            check(&source, &[("Stripe-Signature", header)], body, 1700000000 + 301),
            Err(Rejection::TimestampOutOfTolerance)
        );
        let wrong = "t=1700000001,v1=46dc069361a7691082640523fa33fe5d6c8c88d5f5e257cdf8cf11539d166595";
        assert_eq!(
            check(&source, &[("Stripe-Signature", wrong)], body, 1700000000),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn shopify_checks_the_base64_hmac_of_the_body() {
        // Computed independently (Python's hmac): base64(HMAC-SHA256("shpss_secret", body)).
        let source = stored(VerificationIn::Shopify { secret: "shpss_secret".to_owned() });
        let good = [("X-Shopify-Hmac-Sha256", "xocA3LkeJ/RvNrkxep1EUtFHuj7rIoIqZYaLU26LyPQ=")];
        assert!(check(&source, &good, br#"{"id":1}"#, 0).is_ok());
        assert_eq!(check(&source, &good, br#"{"id":2}"#, 0), Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn generic_hmac_verifies_slacks_documented_example_with_a_template() {
        // api.slack.com, "Verifying requests from Slack": v0=HMAC-SHA256(secret, "v0:{ts}:{body}").
        let source = stored(VerificationIn::Hmac {
            secret: "8f742231b10e8888abcd99yyyzzz85a5".to_owned(),
            header: "X-Slack-Signature".to_owned(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: Some("v0=".to_owned()),
            template: Some("v0:{timestamp}:{body}".to_owned()),
            timestamp_header: Some("X-Slack-Request-Timestamp".to_owned()),
            tolerance_seconds: None,
        });
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let good = [
            ("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
            ("X-Slack-Request-Timestamp", "1531420618"),
        ];
        assert!(check(&source, &good, body, 1531420618 + 5).is_ok());
        assert_eq!(check(&source, &good, body, 1531420618 + 400), Err(Rejection::TimestampOutOfTolerance));
        let tampered = [good[0], ("X-Slack-Request-Timestamp", "1531420619")];
        assert_eq!(check(&source, &tampered, body, 1531420618), Err(Rejection::SignatureMismatch));
    }

    #[test]
    fn generic_hmac_supports_sha1_and_sha512_in_hex_and_base64() {
        // The HMAC examples of RFC 2104's Wikipedia page: key "key", "The quick brown fox …".
        let body = b"The quick brown fox jumps over the lazy dog";
        let scheme = |algorithm, encoding| {
            stored(VerificationIn::Hmac {
                secret: "key".to_owned(),
                header: "X-Sig".to_owned(),
                algorithm,
                encoding,
                prefix: None,
                template: None,
                timestamp_header: None,
                tolerance_seconds: None,
            })
        };
        let sha1 = scheme(HmacAlgorithm::Sha1, SignatureEncoding::Hex);
        assert!(check(&sha1, &[("x-sig", "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")], body, 0).is_ok());
        let sha512 = scheme(HmacAlgorithm::Sha512, SignatureEncoding::Base64);
        let sig = STANDARD.encode(hex::decode("b42af09057bac1e2d41708e48a902e09b5ff7f12ab428a4fe86653c73dd248fb82f948a549f7b791a5b41915ee4d1ec3935357e4e2317250d0372afa2ebeeb3a").unwrap());
        assert!(check(&sha512, &[("X-Sig", sig.as_str())], body, 0).is_ok());
        assert_eq!(
            check(&sha512, &[("X-Sig", sig.as_str())], b"other", 0),
            Err(Rejection::SignatureMismatch)
        );
    }

    #[test]
    fn basic_and_api_key_compare_credentials() {
        let basic =
            stored(VerificationIn::Basic { username: "stripe".to_owned(), password: "s3cret".to_owned() });
        let good = format!("Basic {}", STANDARD.encode("stripe:s3cret"));
        let bad = format!("Basic {}", STANDARD.encode("stripe:s3creT"));
        assert!(check(&basic, &[("Authorization", good.as_str())], b"", 0).is_ok());
        assert_eq!(
            check(&basic, &[("Authorization", bad.as_str())], b"", 0),
            Err(Rejection::CredentialsInvalid)
        );
        assert_eq!(check(&basic, &[], b"", 0), Err(Rejection::CredentialsInvalid));
        let key = stored(VerificationIn::ApiKey { header: "X-Api-Key".to_owned(), value: "k".repeat(20) });
        assert!(check(&key, &[("x-api-key", &"k".repeat(20))], b"", 0).is_ok());
        assert_eq!(
            check(&key, &[("x-api-key", &"k".repeat(19))], b"", 0),
            Err(Rejection::CredentialsInvalid)
        );
    }

    #[test]
    fn a_replaced_secret_verifies_for_24_hours_then_stops() {
        let now = at(1_700_000_000);
        let old = stored(VerificationIn::Github { secret: "It's a Secret to Everybody".to_owned() });
        let new = old.replaced_by(VerificationIn::Github { secret: "new secret".to_owned() }, now);
        let good = [(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )];
        let headers = headers(&good);
        let verify = |stored: &Stored, when| {
            stored.verify(&Inbound { headers: &headers, body: b"Hello, World!", now: when })
        };
        assert!(verify(&new, now + chrono::Duration::hours(23)).is_ok());
        assert_eq!(verify(&new, now + chrono::Duration::hours(25)), Err(Rejection::SignatureMismatch));
        assert_eq!(new.to_out(now).secrets, 2);
        // Another scheme keeps nothing of the old one.
        let other = new.replaced_by(VerificationIn::Shopify { secret: "x".to_owned() }, now);
        assert!(other.previous.is_empty());
    }

    #[test]
    fn templates_render_timestamp_and_body_and_keep_other_braces() {
        assert_eq!(render_template("v0:{timestamp}:{body}", "12", b"{\"a\":1}"), b"v0:12:{\"a\":1}");
        assert_eq!(render_template("{x}{body}", "", b"b"), b"{x}b");
    }
}
