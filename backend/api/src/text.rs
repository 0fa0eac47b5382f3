//! U+0000 in request text. PostgreSQL can store it in neither `text` nor `jsonb`, so a name,
//! uid, email or metadata value carrying it would be a server error there and fine on SQLite.
//! The API refuses it the same way on both: in a JSON body (422 with the field's path; a
//! message's `payload`, kept as JSON text, may carry it), in a query parameter (422) and in a
//! path segment (404: no resource has such a name).

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};
use serde_json::Value;

use crate::error::ApiError;

const MESSAGE: &str = "must not contain U+0000 (the NUL character)";

/// The JSON escape of U+0000; raw control characters are not valid JSON, so this is its only form.
const ESCAPED_NUL: &str = "\\u0000";

/// Refuses a body whose text (other than a top-level `payload`) contains U+0000. Bodies without
/// the escape are passed after one scan of their bytes (std's vectorized substring search: a
/// byte-window loop took ≈ 0.5 ms per MiB of payload under `perf` in bench (i)).
pub fn check_body(bytes: &[u8]) -> Result<(), ApiError> {
    // Not UTF-8 is not JSON: the parser reports that.
    if !std::str::from_utf8(bytes).is_ok_and(|text| text.contains(ESCAPED_NUL)) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(()); // Not JSON: the parser reports that.
    };
    let mut path = vec!["body".to_owned()];
    match &value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "payload" {
                    continue;
                }
                path.push(key.clone());
                if key.contains('\0') || find_nul(child, &mut path) {
                    return Err(invalid(&path));
                }
                path.pop();
            }
            Ok(())
        }
        other if find_nul(other, &mut path) => Err(invalid(&path)),
        _ => Ok(()),
    }
}

fn invalid(path: &[String]) -> ApiError {
    let loc: Vec<&str> = path.iter().map(String::as_str).collect();
    ApiError::invalid(&loc, MESSAGE)
}

/// True when `value` holds U+0000 in a string or key; `path` then ends at it.
fn find_nul(value: &Value, path: &mut Vec<String>) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(idx, item)| {
            path.push(idx.to_string());
            let found = find_nul(item, path);
            if !found {
                path.pop();
            }
            found
        }),
        Value::Object(map) => map.iter().any(|(key, child)| {
            path.push(key.clone());
            let found = key.contains('\0') || find_nul(child, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}

/// Refuses a query parameter value (or name) with U+0000.
pub fn check_query(pairs: &[(String, String)]) -> Result<(), ApiError> {
    match pairs.iter().find(|(key, value)| key.contains('\0') || value.contains('\0')) {
        Some((key, _)) => Err(ApiError::invalid(&["query", key], MESSAGE)),
        None => Ok(()),
    }
}

/// A path with an encoded U+0000 names nothing: 404 before any handler looks it up.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.path().contains("%00") {
        return Ok(req.error_response(ApiError::not_found("route")).map_into_boxed_body());
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(result: Result<(), ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::Core(hookline_core::CoreError::Validation(errors))) => errors[0].loc.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn nul_in_body_text_is_refused_with_its_path_but_not_in_the_payload() {
        assert_eq!(loc(check_body(br#"{"name": "a\u0000b"}"#)), ["body", "name"]);
        assert_eq!(loc(check_body(br#"{"metadata": {"k": "\u0000"}}"#)), ["body", "metadata", "k"]);
        assert_eq!(loc(check_body(br#"{"channels": ["ok", "\u0000"]}"#)), ["body", "channels", "1"]);
        assert_eq!(loc(check_body(br#"{"metadata": {"\u0000": "v"}}"#)), ["body", "metadata", "\u{0}"]);
        assert!(check_body(br#"{"event_type": "a.b", "payload": {"x": "\u0000"}}"#).is_ok());
        // An escaped backslash followed by the text u0000 is not U+0000.
        assert!(check_body(br#"{"name": "\\u0000"}"#).is_ok());
        assert!(check_body(br#"{"name": "plain"}"#).is_ok());
    }

    #[test]
    fn nul_in_a_query_parameter_is_refused() {
        assert_eq!(loc(check_query(&[("q".to_owned(), "a\0".to_owned())])), ["query", "q"]);
        assert!(check_query(&[("q".to_owned(), "a".to_owned())]).is_ok());
    }
}
