//! What a source makes of a verified request: the message's payload (the body's exact bytes when
//! it is JSON), its event type and event id, the headers it forwards, and the ordering key and
//! sequence. Pure functions over the request; no database.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hookline_types::{SourceOrdering, ValueFrom, VerificationIn};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use crate::{domain::EventTypeName, error::Errors, sources::verify::http_token};

/// At most this many forwarded headers per source.
pub const MAX_FORWARD_HEADERS: usize = 20;

/// Headers a source may not forward: they describe the hop, not the event, or Hookline sets them.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "authorization",
    "cookie",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A source's settings without secrets (the `settings` column).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub event_type: ValueFrom,
    #[serde(default)]
    pub event_id: Option<ValueFrom>,
    #[serde(default)]
    pub forward_headers: Vec<String>,
    #[serde(default)]
    pub ordering: Option<SourceOrdering>,
    /// The content filter as saved (`SourceIn.filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
    /// The transform as saved (`SourceIn.transform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
}

/// The default event type of a source named `name`: `source.<name>.received`, the name in lower
/// case with other characters as `_`.
pub fn default_event_type(name: &str) -> String {
    let slug: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(200)
        .collect();
    let slug = if slug.is_empty() { "source".to_owned() } else { slug };
    format!("source.{slug}.received")
}

/// Checks a value rule under `body.<field>`; `fixed` values are allowed only where `fixed_ok`.
pub(crate) fn check_value_from(errors: &mut Errors, field: &[&str], rule: &ValueFrom, fixed_ok: bool) {
    let mut loc = vec!["body"];
    loc.extend_from_slice(field);
    match rule {
        ValueFrom::Header(name) => {
            if http_token(name).is_none() {
                errors.push(&loc, "header: must be a header name");
            }
        }
        ValueFrom::Pointer(pointer) => {
            if !(pointer.is_empty() || pointer.starts_with('/')) || pointer.len() > 512 {
                errors.push(&loc, "pointer: must be a JSON pointer such as /type");
            }
        }
        ValueFrom::Fixed(value) => {
            if !fixed_ok {
                errors.push(&loc, "must come from a header or a JSON pointer");
            } else if let Err(err) = EventTypeName::parse(value) {
                errors.push(&loc, format!("fixed: {err}"));
            }
        }
    }
}

pub(crate) fn check_forward_headers(errors: &mut Errors, headers: &[String]) {
    if headers.len() > MAX_FORWARD_HEADERS {
        errors.push(&["body", "forward_headers"], format!("at most {MAX_FORWARD_HEADERS} headers"));
    }
    for (idx, name) in headers.iter().enumerate() {
        if http_token(name).is_none() {
            errors.push(&["body", "forward_headers", &idx.to_string()], "must be a header name");
        } else if NOT_FORWARDED.contains(&name.to_ascii_lowercase().as_str()) {
            errors.push(&["body", "forward_headers", &idx.to_string()], "this header is not forwarded");
        }
    }
}

/// A received body as a message payload.
pub(crate) struct Body {
    /// The payload text: the body itself when it is JSON, else a JSON object that carries it.
    pub payload_text: String,
    /// The payload as a value (for pointers and the source's filter): the parsed body when it is
    /// JSON, else the object that carries it.
    pub json: Option<Value>,
}

/// The message payload of a received body. A JSON body is kept byte for byte (signatures are
/// over bytes, and endpoints get what the provider sent). A form (`application/x-www-form-
/// urlencoded`) becomes an object of its fields (a repeated field an array); anything else
/// becomes `{"content_type", "body"}` (UTF-8 text) or `{"content_type", "body_base64"}`.
pub(crate) fn body_to_payload(content_type: Option<&str>, body: &[u8]) -> Body {
    let mime = content_type.map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    let form = mime.as_deref() == Some("application/x-www-form-urlencoded");
    if !form
        && let Ok(text) = std::str::from_utf8(body)
        && let Ok(json) = serde_json::from_str::<Value>(text)
    {
        return Body { payload_text: text.to_owned(), json: Some(json) };
    }
    let value = if form {
        let mut fields = serde_json::Map::new();
        for (key, value) in url::form_urlencoded::parse(body) {
            let value = Value::String(value.into_owned());
            match fields.get_mut(key.as_ref()) {
                Some(Value::Array(list)) => list.push(value),
                Some(first) => *first = Value::Array(vec![first.take(), value]),
                None => {
                    fields.insert(key.into_owned(), value);
                }
            }
        }
        Value::Object(fields)
    } else {
        let content_type = Value::String(content_type.unwrap_or("application/octet-stream").to_owned());
        match std::str::from_utf8(body) {
            Ok(text) => serde_json::json!({"content_type": content_type, "body": text}),
            Err(_) => serde_json::json!({"content_type": content_type, "body_base64": STANDARD.encode(body)}),
        }
    };
    Body { payload_text: value.to_string(), json: Some(value) }
}

/// A rule's value in this request: a header's value, or the string (or number) at a pointer.
pub(crate) fn value_of(
    rule: &ValueFrom,
    header: impl Fn(&str) -> Option<String>,
    json: Option<&Value>,
) -> Option<String> {
    match rule {
        ValueFrom::Header(name) => header(name).filter(|v| !v.is_empty()),
        ValueFrom::Pointer(pointer) => match json?.pointer(pointer)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
        ValueFrom::Fixed(value) => Some(value.clone()),
    }
}

/// The event type of a request: the rule's value when it is a valid event type name (other
/// characters replaced by `_`), else `fallback`.
pub(crate) fn event_type_of(value: Option<String>, fallback: &str) -> String {
    let Some(value) = value else { return fallback.to_owned() };
    let cleaned: String = value
        .chars()
        .take(256)
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' { c } else { '_' })
        .collect();
    match EventTypeName::parse(&cleaned) {
        Ok(name) => name.as_str().to_owned(),
        Err(_) => fallback.to_owned(),
    }
}

/// Where a scheme carries its provider's event id, when the source names none.
pub(crate) fn default_event_id(scheme: &VerificationIn) -> Option<ValueFrom> {
    match scheme {
        VerificationIn::StandardWebhooks { .. } => Some(ValueFrom::Header("webhook-id".to_owned())),
        VerificationIn::Github { .. } => Some(ValueFrom::Header("X-GitHub-Delivery".to_owned())),
        VerificationIn::Stripe { .. } => Some(ValueFrom::Pointer("/id".to_owned())),
        VerificationIn::Shopify { .. } => Some(ValueFrom::Header("X-Shopify-Webhook-Id".to_owned())),
        _ => None,
    }
}

/// The id a request is de-duplicated by: the event id (at most 256 characters, longer ones
/// hashed), else for a signed scheme its signature's hash (a replayed capture carries the same
/// signature), else none.
pub(crate) fn dedup_id(event_id: Option<String>, signature: Option<&str>) -> Option<String> {
    match (event_id, signature) {
        (Some(id), _) if id.len() <= 256 => Some(id),
        (Some(id), _) => Some(format!("sha256:{}", hex::encode(sha2::Sha256::digest(id.as_bytes())))),
        (None, Some(signature)) => {
            Some(format!("sig:{}", hex::encode(&sha2::Sha256::digest(signature.as_bytes())[..16])))
        }
        (None, None) => None,
    }
}

/// A sequence value as a number that orders: an integer as it is, an RFC 3339 time as
/// microseconds since 1970.
pub(crate) fn sequence_of(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(n) = value.parse::<i64>() {
        return Some(n);
    }
    chrono::DateTime::parse_from_rfc3339(value).ok().map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_body_is_kept_byte_for_byte() {
        let raw = b"{ \"b\" : 1,\n  \"a\": [1, 2.50] }";
        let body = body_to_payload(Some("application/json; charset=utf-8"), raw);
        assert_eq!(body.payload_text.as_bytes(), raw);
        assert_eq!(body.json.unwrap()["a"][1], serde_json::json!(2.5));
    }

    #[test]
    fn forms_become_objects_and_other_bodies_are_carried() {
        let form = body_to_payload(Some("application/x-www-form-urlencoded"), b"a=1&b=x%20y&a=2");
        assert_eq!(form.json.unwrap(), serde_json::json!({"a": ["1", "2"], "b": "x y"}));
        let text = body_to_payload(Some("text/plain"), b"hello");
        assert_eq!(text.json.unwrap(), serde_json::json!({"content_type": "text/plain", "body": "hello"}));
        let binary = body_to_payload(None, &[0xff, 0x00]);
        assert_eq!(binary.json.unwrap()["body_base64"], "/wA=");
    }

    #[test]
    fn rules_read_headers_and_pointers_and_event_types_are_cleaned() {
        let json = serde_json::json!({"type": "invoice.paid", "data": {"object": {"id": 42}}});
        let header = |name: &str| (name == "X-GitHub-Event").then(|| "pull request".to_owned());
        assert_eq!(
            value_of(&ValueFrom::Pointer("/type".into()), header, Some(&json)).as_deref(),
            Some("invoice.paid")
        );
        assert_eq!(
            value_of(&ValueFrom::Pointer("/data/object/id".into()), header, Some(&json)).as_deref(),
            Some("42")
        );
        let from_header = value_of(&ValueFrom::Header("X-GitHub-Event".into()), header, None);
        assert_eq!(event_type_of(from_header, "source.gh.received"), "pull_request");
        assert_eq!(event_type_of(None, "source.gh.received"), "source.gh.received");
        assert_eq!(default_event_type("My GitHub!"), "source.my_github_.received");
    }

    #[test]
    fn sequences_order_integers_and_times() {
        assert_eq!(sequence_of("17"), Some(17));
        let earlier = sequence_of("2026-12-06T10:00:00Z").unwrap();
        let later = sequence_of("2026-12-06T10:00:00.5+00:00").unwrap();
        assert!(earlier < later);
        assert_eq!(sequence_of("soon"), None);
    }

    #[test]
    fn dedup_ids_prefer_the_event_id_then_the_signature() {
        assert_eq!(dedup_id(Some("evt_1".into()), Some("sig")).as_deref(), Some("evt_1"));
        assert!(dedup_id(None, Some("sha256=ab")).unwrap().starts_with("sig:"));
        assert_eq!(dedup_id(None, None), None);
        assert!(dedup_id(Some("x".repeat(300)), None).unwrap().starts_with("sha256:"));
    }
}
