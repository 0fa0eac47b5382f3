//! Thin delivery: an endpoint in `thin` mode (or `auto` above its threshold) receives a small
//! body naming the message, and fetches the payload itself from a `data_url`:
//! `GET <public URL>/api/v1/payload/{msg}?ep=…&exp=…&sig=…`. The URL is a capability: an
//! HMAC-SHA256 (key derived from the master key) over the message, the endpoint and the expiry,
//! so it is good for that message, that endpoint and until `exp` only. Fetches are answered,
//! logged on the delivery and metered by [`fetch`].

pub mod fetch;

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use hookline_types::PayloadMode;
use serde::Serialize;
use sha2::Sha256;

use crate::crypto::Keys;

/// `auto` mode's threshold when the endpoint sets none: payloads over 256 KiB go thin.
pub const DEFAULT_THIN_ABOVE_BYTES: u32 = 256 * 1024;
/// How long a `data_url` lasts when the endpoint sets nothing: 24 hours.
pub const DEFAULT_DATA_URL_TTL_SECONDS: u32 = 24 * 3600;
/// Whether a payload of `size` bytes goes thin to an endpoint in `mode` (before any 413).
pub fn sends_thin(mode: PayloadMode, thin_above_bytes: Option<u32>, size: usize) -> bool {
    match mode {
        PayloadMode::Full => false,
        PayloadMode::Thin => true,
        PayloadMode::Auto => size > thin_above_bytes.unwrap_or(DEFAULT_THIN_ABOVE_BYTES) as usize,
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8; 32], message_id: &str, endpoint_id: &str, expires: i64) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
    // Fields are ids of fixed alphabets and a number: a newline cannot occur inside one, so no
    // two (message, endpoint, expiry) triples sign the same bytes.
    mac.update(format!("v1\n{message_id}\n{endpoint_id}\n{expires}").as_bytes());
    mac
}

/// Why a `data_url` is not honoured.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Missing or malformed parameters, or a signature no key made (altered, or for another
    /// message or endpoint): 403.
    Invalid,
    /// Genuine, and past its expiry: 410.
    Expired,
}

/// Mints and checks `data_url`s.
#[derive(Clone)]
pub struct Links {
    /// `HOOKLINE_PUBLIC_URL`, without a trailing slash.
    public_url: String,
    keys: Arc<Keys>,
}

impl Links {
    pub fn new(public_url: &str, keys: Arc<Keys>) -> Links {
        Links { public_url: public_url.trim_end_matches('/').to_owned(), keys }
    }

    /// The signature of a `data_url` (base64url, no padding), under the current key.
    pub fn signature(&self, message_id: &str, endpoint_id: &str, expires: i64) -> String {
        let key = &self.keys.payload_url_keys()[0];
        URL_SAFE_NO_PAD.encode(mac(key, message_id, endpoint_id, expires).finalize().into_bytes())
    }

    /// The `data_url` of a message for an endpoint, valid until `expires` (whole seconds).
    pub fn mint(&self, message_id: &str, endpoint_id: &str, expires: DateTime<Utc>) -> String {
        let exp = expires.timestamp();
        let sig = self.signature(message_id, endpoint_id, exp);
        format!("{}/api/v1/payload/{message_id}?ep={endpoint_id}&exp={exp}&sig={sig}", self.public_url)
    }

    /// Checks a `data_url`'s parameters at `now`: the signature first (an altered expiry is
    /// forged, not expired), in constant time, under the current and the previous master keys.
    pub fn verify(
        &self,
        message_id: &str,
        endpoint_id: Option<&str>,
        exp: Option<&str>,
        sig: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Refused> {
        let (Some(endpoint_id), Some(exp), Some(sig)) = (endpoint_id, exp, sig) else {
            return Err(Refused::Invalid);
        };
        // Only the canonical spelling of the number: `exp=+5` or `exp=05` would be another URL
        // with the same signature.
        let expires: i64 = exp.parse().map_err(|_| Refused::Invalid)?;
        if expires.to_string() != exp {
            return Err(Refused::Invalid);
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| Refused::Invalid)?;
        let genuine = self
            .keys
            .payload_url_keys()
            .iter()
            .any(|key| mac(key, message_id, endpoint_id, expires).verify_slice(&sig).is_ok());
        if !genuine {
            return Err(Refused::Invalid);
        }
        if expires < now.timestamp() {
            return Err(Refused::Expired);
        }
        Ok(())
    }
}

/// The body a thin delivery sends, and the `data` of a thin CloudEvent.
#[derive(Clone, Debug, Serialize)]
pub struct ThinBody<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub timestamp: DateTime<Utc>,
    pub data_url: String,
    pub data_url_expires_at: DateTime<Utc>,
    pub size: usize,
    pub sha256: &'a str,
}

impl<'a> ThinBody<'a> {
    /// The thin body of a message for an endpoint whose URLs last `ttl_seconds` (the endpoint's
    /// setting, or the default), minted at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        links: &Links,
        message_id: &'a str,
        endpoint_id: &str,
        event_type: &'a str,
        timestamp: DateTime<Utc>,
        size: usize,
        sha256: &'a str,
        ttl_seconds: Option<u32>,
        now: DateTime<Utc>,
    ) -> ThinBody<'a> {
        let ttl = ttl_seconds.unwrap_or(DEFAULT_DATA_URL_TTL_SECONDS);
        // Whole seconds: the URL carries a Unix time, and the body says the same instant.
        let expires =
            DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now) + TimeDelta::seconds(i64::from(ttl));
        ThinBody {
            id: message_id,
            event_type,
            timestamp,
            data_url: links.mint(message_id, endpoint_id, expires),
            data_url_expires_at: expires,
            size,
            sha256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links::new("https://hooks.example.com/", Arc::new(Keys::for_tests()))
    }

    fn params(url: &str) -> (String, String, String, String) {
        let url = url::Url::parse(url).unwrap();
        let message = url.path().rsplit('/').next().unwrap().to_owned();
        let get = |name: &str| url.query_pairs().find(|(k, _)| k == name).unwrap().1.into_owned();
        (message, get("ep"), get("exp"), get("sig"))
    }

    const MSG: &str = "msg_01JDQ2M3W4X5Y6Z7A8B9C0D1E2";
    const EP: &str = "ep_01JDQ2M3W4X5Y6Z7A8B9C0D1E2";
    const OTHER_MSG: &str = "msg_01JDQ2M3W4X5Y6Z7A8B9C0D1E3";

    #[test]
    fn a_minted_url_verifies_until_it_expires_and_then_is_expired() {
        let links = links();
        let now = Utc::now();
        let url = links.mint(MSG, EP, now + TimeDelta::seconds(60));
        assert!(url.starts_with("https://hooks.example.com/api/v1/payload/msg_"), "{url}");
        let (message, ep, exp, sig) = params(&url);
        assert_eq!(links.verify(&message, Some(&ep), Some(&exp), Some(&sig), now), Ok(()));
        let later = now + TimeDelta::seconds(61);
        assert_eq!(links.verify(&message, Some(&ep), Some(&exp), Some(&sig), later), Err(Refused::Expired));
    }

    #[test]
    fn another_message_endpoint_expiry_or_signature_is_refused_as_invalid() {
        let links = links();
        let now = Utc::now();
        let (message, ep, exp, sig) = params(&links.mint(MSG, EP, now + TimeDelta::seconds(60)));
        let longer = (exp.parse::<i64>().unwrap() + 3600).to_string();
        let padded = format!("0{exp}");
        let mut altered_sig = sig.clone().into_bytes();
        altered_sig[0] = if altered_sig[0] == b'A' { b'B' } else { b'A' };
        let altered_sig = String::from_utf8(altered_sig).unwrap();
        for (what, m, e, x, s) in [
            ("another message", OTHER_MSG, ep.as_str(), exp.as_str(), sig.as_str()),
            (
                "another endpoint",
                message.as_str(),
                "ep_01JDQ2M3W4X5Y6Z7A8B9C0D1E3",
                exp.as_str(),
                sig.as_str(),
            ),
            ("a later expiry", message.as_str(), ep.as_str(), longer.as_str(), sig.as_str()),
            ("a non-canonical expiry", message.as_str(), ep.as_str(), padded.as_str(), sig.as_str()),
            ("an altered signature", message.as_str(), ep.as_str(), exp.as_str(), altered_sig.as_str()),
            ("a signature that is not base64url", message.as_str(), ep.as_str(), exp.as_str(), "%%%"),
        ] {
            assert_eq!(links.verify(m, Some(e), Some(x), Some(s), now), Err(Refused::Invalid), "{what}");
        }
        assert_eq!(links.verify(&message, None, Some(&exp), Some(&sig), now), Err(Refused::Invalid));
        assert_eq!(links.verify(&message, Some(&ep), None, Some(&sig), now), Err(Refused::Invalid));
        assert_eq!(links.verify(&message, Some(&ep), Some(&exp), None, now), Err(Refused::Invalid));
    }

    #[test]
    fn a_forged_expired_url_is_invalid_not_expired() {
        let links = links();
        let now = Utc::now();
        let (message, ep, exp, _) = params(&links.mint(MSG, EP, now - TimeDelta::seconds(60)));
        let forged = links.signature(OTHER_MSG, &ep, exp.parse().unwrap());
        assert_eq!(links.verify(&message, Some(&ep), Some(&exp), Some(&forged), now), Err(Refused::Invalid));
    }

    #[test]
    fn auto_goes_thin_only_above_its_threshold() {
        assert!(!sends_thin(PayloadMode::Full, None, usize::MAX));
        assert!(sends_thin(PayloadMode::Thin, None, 0));
        assert!(!sends_thin(PayloadMode::Auto, None, DEFAULT_THIN_ABOVE_BYTES as usize));
        assert!(sends_thin(PayloadMode::Auto, None, DEFAULT_THIN_ABOVE_BYTES as usize + 1));
        assert!(sends_thin(PayloadMode::Auto, Some(2048), 2049));
        assert!(!sends_thin(PayloadMode::Auto, Some(2048), 2048));
    }

    #[test]
    fn the_thin_body_names_the_url_and_its_expiry_in_whole_seconds() {
        let links = links();
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00.750Z").unwrap().to_utc();
        let body = ThinBody::new(&links, MSG, EP, "invoice.paid", now, 2048, "ab", Some(120), now);
        assert_eq!(body.data_url_expires_at.to_rfc3339(), "2026-12-07T10:02:00+00:00");
        assert!(body.data_url.contains(&format!("exp={}", body.data_url_expires_at.timestamp())));
        let json = serde_json::to_value(&body).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["data_url", "data_url_expires_at", "id", "sha256", "size", "timestamp", "type"]);
    }
}
