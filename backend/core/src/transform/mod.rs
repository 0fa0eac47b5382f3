//! Transformations: a tenant's jq program that reshapes what is delivered (plan feature
//! `transformations`). A program is compiled with the `jaq` crates ([`program`]) when it is saved
//! or tried, and runs only in sandbox child processes ([`sandbox`]) with limits: CPU time
//! (`HOOKLINE_TRANSFORM_CPU_MS`, [`crate::config::DEFAULT_TRANSFORM_CPU_MS`]), memory and stack ([`sandbox::MEMORY_LIMIT`]), output size (the plan's
//! payload limit), no environment and no I/O. Its input is `{"event_type", "payload",
//! "headers"}`; its output is `{"payload", "event_type"?, "headers"?}` ([`Transformed`]) or
//! `null` (nothing is sent). Today programs are tried with `POST /api/v1/transform/test`
//! ([`preview`]). Uses the foundation layer and `tenancy` (the plan's feature and payload limit).

pub mod preview;
pub mod program;
pub mod sandbox;

use std::collections::BTreeMap;

pub use program::{CompileError, compile};
pub use sandbox::{Failure, Transformer};
use serde_json::Value;

/// A transform must compile (jaq's message and the character position at `body.transform`).
pub fn check(errors: &mut crate::error::Errors, program: &str) {
    if let Err(err) = compile(program) {
        errors.push(&["body", "transform"], err.to_string());
    }
}

/// Setting a transform (on an endpoint or a source) needs the plan feature `transformations`.
pub async fn require_feature(
    ctx: &crate::Context,
    tenant: &hookline_types::TenantId,
) -> crate::CoreResult<()> {
    crate::tenancy::plans::limits(ctx, tenant)
        .await?
        .require_feature(crate::tenancy::plans::FEATURE_TRANSFORMATIONS)
}

/// What a program's output asks to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Transformed {
    /// The body sent.
    pub payload: Value,
    /// A new event type, when the program set one.
    pub event_type: Option<String>,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
}

/// The program's input document: `{"event_type", "payload", "headers"}`, as JSON text.
/// `payload` is the message's JSON text; a body that is not JSON (a received webhook may carry
/// any content type) is passed as a string.
pub fn input(event_type: &str, payload: &str, headers: &[(String, String)]) -> String {
    let payload = match serde_json::from_str::<&serde_json::value::RawValue>(payload) {
        Ok(raw) => raw.get().to_owned(),
        Err(_) => serde_json::to_string(payload).expect("a string"),
    };
    let headers: BTreeMap<&str, &str> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    format!(
        "{{\"event_type\":{},\"payload\":{payload},\"headers\":{}}}",
        serde_json::to_string(event_type).expect("a string"),
        serde_json::to_string(&headers).expect("a map")
    )
}

/// Reads a program's output: `null` (skip: `None`) or an object with `payload` and, optionally,
/// `event_type` and `headers`. Anything else is an error message for the attempt log.
pub fn interpret(output: &str) -> Result<Option<Transformed>, String> {
    let value: Value =
        serde_json::from_str(output).map_err(|err| format!("the output is not JSON: {err}"))?;
    let mut object = match value {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "the output must be an object with a payload, or null to skip; it was {}",
                kind(&other)
            ));
        }
    };
    let payload =
        object.remove("payload").ok_or("the output has no payload (return null to skip the delivery)")?;
    let event_type = match object.remove("event_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => {
            crate::domain::EventTypeName::parse(&name)
                .map_err(|err| format!("the output's event_type: {err}"))?;
            Some(name)
        }
        Some(other) => {
            return Err(format!("the output's event_type must be a string; it was {}", kind(&other)));
        }
    };
    let headers = match object.remove("headers") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(headers)) => {
            let mut strings = BTreeMap::new();
            for (name, value) in headers {
                let Value::String(value) = value else {
                    return Err(format!("the output's header {name} must be a string"));
                };
                if let Some(problem) = crate::domain::custom_header_problems(&name, &value).first() {
                    return Err(format!("the output's header {name}: {problem}"));
                }
                strings.insert(name, value);
            }
            strings
        }
        Some(other) => {
            return Err(format!("the output's headers must be an object; it was {}", kind(&other)));
        }
    };
    if let Some(key) = object.keys().next() {
        return Err(format!(
            "the output has an unknown key {key:?} (payload, event_type and headers are read)"
        ));
    }
    Ok(Some(Transformed { payload, event_type, headers }))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Transformed, input, interpret};

    #[test]
    fn the_input_carries_the_payload_as_json_or_as_a_string_when_it_is_not_json() {
        let headers = vec![("x-github-event".to_owned(), "push".to_owned())];
        let doc: serde_json::Value = serde_json::from_str(&input("a.b", r#"{"n":1}"#, &headers)).unwrap();
        assert_eq!(
            doc,
            json!({"event_type": "a.b", "payload": {"n": 1}, "headers": {"x-github-event": "push"}})
        );
        let doc: serde_json::Value = serde_json::from_str(&input("a.b", "n=1&m=2", &[])).unwrap();
        assert_eq!(doc["payload"], "n=1&m=2");
    }

    #[test]
    fn an_output_is_null_or_an_object_with_a_payload() {
        assert_eq!(interpret("null").unwrap(), None);
        assert_eq!(
            interpret(r#"{"payload":[1],"event_type":"x.y","headers":{"X-Team":"a"}}"#).unwrap(),
            Some(Transformed {
                payload: json!([1]),
                event_type: Some("x.y".to_owned()),
                headers: [("X-Team".to_owned(), "a".to_owned())].into(),
            })
        );
        assert!(interpret("[1]").unwrap_err().contains("it was an array"));
        assert!(interpret(r#"{"event_type":"x"}"#).unwrap_err().contains("no payload"));
        assert!(interpret(r#"{"payload":1,"event_type":7}"#).unwrap_err().contains("must be a string"));
        assert!(interpret(r#"{"payload":1,"extra":1}"#).unwrap_err().contains("unknown key \"extra\""));
    }

    #[test]
    fn an_output_cannot_set_the_headers_hookline_signs_with() {
        let err = interpret(r#"{"payload":1,"headers":{"webhook-signature":"v1,forged"}}"#).unwrap_err();
        assert!(err.contains("webhook-signature") && err.contains("cannot be overridden"), "{err}");
        assert!(interpret(r#"{"payload":1,"headers":{"x":"a\nb"}}"#).is_err());
    }
}
