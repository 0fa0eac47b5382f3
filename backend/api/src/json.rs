//! Body and query extraction with field paths in errors: a body that is not JSON is 400, JSON of
//! the wrong shape is 422 with `loc` pointing at the field, a body over the limit is 413.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::StatusCode, web};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body the API reads: the largest payload plus room for the envelope.
pub fn body_limit(max_payload_bytes: usize) -> usize {
    max_payload_bytes + 64 * 1024
}

/// Parses JSON text into `T`, mapping serde's error to a 400 or a 422 with a field path.
///
/// A whole number written with a fraction (`1590.0`) is an integer to JSON Schema, so an integer
/// field accepts it: when serde refuses one, that value alone is rewritten and parsing retried
/// (other numbers, such as a message's payload, are kept exactly as sent).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut *deserializer) {
        // Anything after the value but whitespace makes the body not JSON.
        Ok(value) => {
            deserializer.end().map(|()| value).map_err(|err| ApiError::MalformedJson(err.to_string()))
        }
        Err(err) if is_integral_float(&err) => parse_with_integral_floats(bytes, err),
        Err(err) => Err(body_error(err)),
    }
}

fn is_integral_float(err: &serde_path_to_error::Error<serde_json::Error>) -> bool {
    err.inner().classify() == serde_json::error::Category::Data
        && err.inner().to_string().starts_with("invalid type: floating point")
}

fn parse_with_integral_floats<T: DeserializeOwned>(
    bytes: &[u8],
    mut err: serde_path_to_error::Error<serde_json::Error>,
) -> Result<T, ApiError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    // Each round fixes one field; a body has few integer fields.
    for _ in 0..64 {
        if !is_integral_float(&err) || !make_integer_at(&mut value, err.path()) {
            return Err(body_error(err));
        }
        match serde_path_to_error::deserialize(value.clone()) {
            Ok(parsed) => return Ok(parsed),
            Err(next) => err = next,
        }
    }
    Err(body_error(err))
}

/// Rewrites the number at `path` as an integer when it is a whole number; false when it is not.
fn make_integer_at(value: &mut serde_json::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let mut at = value;
    for segment in path.iter() {
        at = match (segment, at) {
            (Segment::Map { key }, serde_json::Value::Object(map)) => match map.get_mut(key) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Seq { index }, serde_json::Value::Array(items)) => match items.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Enum { .. }, here) => here,
            _ => return false,
        };
    }
    match at {
        serde_json::Value::Number(_) => make_integer(at),
        // Inside an internally tagged enum serde reports the enum's path only: every whole
        // number of that object is rewritten (these objects carry no free-form JSON).
        serde_json::Value::Object(_) if path.iter().next().is_some() => {
            let mut changed = false;
            for_each_number(at, &mut |number| changed |= make_integer(number));
            changed
        }
        _ => false,
    }
}

fn make_integer(at: &mut serde_json::Value) -> bool {
    let Some(number) = at.as_f64().filter(|_| at.is_f64()) else { return false };
    // Whole numbers up to 2^53 are exact in a double.
    if number.fract() != 0.0 || number.abs() > 9_007_199_254_740_992.0 {
        return false;
    }
    *at = if number < 0.0 {
        serde_json::Value::from(number as i64)
    } else {
        serde_json::Value::from(number as u64)
    };
    true
}

fn for_each_number(value: &mut serde_json::Value, f: &mut impl FnMut(&mut serde_json::Value)) {
    match value {
        serde_json::Value::Number(_) => f(value),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| for_each_number(item, f)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|item| for_each_number(item, f)),
        _ => {}
    }
}

fn body_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => ApiError::MalformedJson(inner.to_string()),
        serde_json::error::Category::Data => {
            let mut loc = vec!["body"];
            loc.extend(path.split('.').filter(|p| !p.is_empty() && *p != "?"));
            // serde reports the position at the end; the message alone is what people need.
            let msg = inner.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            ApiError::invalid(&loc, msg)
        }
    }
}

/// A body that may be left out: empty (or only whitespace) and `null` both mean the defaults.
pub fn optional_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let parsed = parse_body::<Option<T>>(bytes)?;
    crate::text::check_body(bytes)?;
    Ok(parsed.unwrap_or_default())
}

/// A JSON body extractor with our error mapping.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        let content_type_ok = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("application/json") || v.contains("+json"));
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::http(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ));
            }
            let bytes = bytes.await.map_err(payload_error)?;
            let parsed = parse_body(&bytes)?;
            crate::text::check_body(&bytes)?;
            Ok(Json(parsed))
        })
    }
}

/// Maps actix's payload errors (size limit, broken connection) to ours.
pub fn payload_error(err: actix_web::Error) -> ApiError {
    let status = err.as_response_error().status_code();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::http(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is over the size limit",
        )
    } else {
        ApiError::http(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("could not read the request body: {err}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        limit: u32,
        waits: Vec<u32>,
        payload: serde_json::Value,
    }

    #[test]
    fn whole_numbers_written_with_a_fraction_fill_integer_fields_and_payloads_stay_exact() {
        let body: Body =
            parse_body(br#"{"limit": 1590.0, "waits": [5, 60.0, 1e3], "payload": {"x": 1.0}}"#).unwrap();
        assert_eq!((body.limit, body.waits), (1590, vec![5, 60, 1000]));
        assert_eq!(body.payload.to_string(), r#"{"x":1.0}"#);
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct Optional {
        #[serde(default)]
        n: u32,
    }

    #[test]
    fn an_optional_body_may_be_empty_or_null_and_is_parsed_otherwise() {
        for empty in ["", "  \n", "null", " null "] {
            assert_eq!(
                optional_body::<Optional>(empty.as_bytes()).unwrap(),
                Optional::default(),
                "{empty:?}"
            );
        }
        assert_eq!(optional_body::<Optional>(br#"{"n": 3}"#).unwrap(), Optional { n: 3 });
        assert!(optional_body::<Optional>(br#"{"n": "x"}"#).is_err());
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged {
        Stripe { tolerance_seconds: u32 },
    }

    #[derive(Debug, Deserialize)]
    struct Outer {
        verification: Tagged,
    }

    #[test]
    fn whole_numbers_inside_a_tagged_enum_fill_its_integer_fields() {
        let body: Outer =
            parse_body(br#"{"verification": {"type": "stripe", "tolerance_seconds": 272.0}}"#).unwrap();
        let Tagged::Stripe { tolerance_seconds } = body.verification;
        assert_eq!(tolerance_seconds, 272);
    }

    #[test]
    fn fractions_and_wrong_types_are_still_refused_with_their_path() {
        for (text, loc) in [
            (r#"{"limit": 1.5, "waits": [], "payload": {}}"#, "limit"),
            (r#"{"limit": 1, "waits": [2.25], "payload": {}}"#, "waits"),
            (r#"{"limit": "1", "waits": [], "payload": {}}"#, "limit"),
        ] {
            let err = parse_body::<Body>(text.as_bytes()).unwrap_err();
            assert!(format!("{err:?}").contains(loc), "{text}: {err:?}");
        }
        assert!(matches!(parse_body::<Body>(b"{"), Err(ApiError::MalformedJson(_))));
        // Found by the request_bodies fuzz target: a value followed by anything else is not JSON.
        let trailing = br#"{"limit": 1, "waits": [], "payload": {}} {"#;
        assert!(matches!(parse_body::<Body>(trailing), Err(ApiError::MalformedJson(_))));
        assert!(parse_body::<Body>(b"{\"limit\": 1, \"waits\": [], \"payload\": {}}\n ").is_ok());
    }
}
