//! Content filters (`routing::filter`): compiling any pattern and matching any document never
//! panics, `explain` agrees with `matches`, and hostile patterns (long wildcards, deep `$or`s)
//! stay fast (libFuzzer's `-timeout` fails a slow input). Patterns and documents are built from a
//! small grammar with few key names, so matches are frequent.

#![no_main]

use arbitrary::Arbitrary;
use hookline_core::routing::{Document, Filter};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Number(i32),
    Float(f64),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

#[derive(Arbitrary, Debug)]
struct Key(u8);

impl Key {
    fn name(&self) -> String {
        ["a", "b", "c", "$or", "payload", "event_type"][usize::from(self.0) % 6].to_owned()
    }
}

#[derive(Arbitrary, Debug)]
enum Operator {
    Literal(Json),
    Prefix(String),
    PrefixIgnoreCase(String),
    Suffix(String),
    AnythingBut(Vec<Json>),
    AnythingButPrefix(String),
    AnythingButWildcard(String),
    Numeric(u8, f64, Option<(u8, f64)>),
    Exists(bool),
    Wildcard(String),
    EqualsIgnoreCase(String),
    Cidr(String),
    Raw(Json),
}

#[derive(Arbitrary, Debug)]
enum Pattern {
    Leaf(Vec<Operator>),
    Object(Vec<(Key, Pattern)>),
    Or(Vec<Vec<(Key, Pattern)>>),
}

fn json(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => json!(b),
        Json::Number(n) => json!(n),
        Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Json::Text(s) => json!(s),
        Json::Array(items) => Value::Array(items.iter().map(json).collect()),
        Json::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.name(), json(v))).collect()),
    }
}

fn operator(op: &Operator) -> Value {
    let ops = ["=", "<", "<=", ">", ">=", "~"];
    let number = |f: &f64| serde_json::Number::from_f64(*f).map_or(json!(0), Value::Number);
    match op {
        Operator::Literal(value) => json(value),
        Operator::Prefix(s) => json!({ "prefix": s }),
        Operator::PrefixIgnoreCase(s) => json!({ "prefix": { "equals-ignore-case": s } }),
        Operator::Suffix(s) => json!({ "suffix": s }),
        Operator::AnythingBut(values) => {
            json!({ "anything-but": values.iter().map(json).collect::<Vec<_>>() })
        }
        Operator::AnythingButPrefix(s) => json!({ "anything-but": { "prefix": s } }),
        Operator::AnythingButWildcard(s) => json!({ "anything-but": { "wildcard": s } }),
        Operator::Numeric(op, n, more) => {
            let mut range = vec![json!(ops[usize::from(*op) % ops.len()]), number(n)];
            if let Some((op, n)) = more {
                range.extend([json!(ops[usize::from(*op) % ops.len()]), number(n)]);
            }
            json!({ "numeric": range })
        }
        Operator::Exists(b) => json!({ "exists": b }),
        Operator::Wildcard(s) => json!({ "wildcard": s }),
        Operator::EqualsIgnoreCase(s) => json!({ "equals-ignore-case": s }),
        Operator::Cidr(s) => json!({ "cidr": s }),
        Operator::Raw(value) => json(value),
    }
}

fn fields(fields: &[(Key, Pattern)]) -> Value {
    Value::Object(fields.iter().map(|(k, p)| (k.name(), pattern(p))).collect::<Map<_, _>>())
}

fn pattern(p: &Pattern) -> Value {
    match p {
        Pattern::Leaf(ops) => Value::Array(ops.iter().map(operator).collect()),
        Pattern::Object(object) => fields(object),
        Pattern::Or(alternatives) => {
            json!({ "$or": alternatives.iter().map(|a| fields(a)).collect::<Vec<_>>() })
        }
    }
}

fuzz_target!(|input: (Vec<(Key, Pattern)>, Json, String, Vec<String>)| {
    let (payload_pattern, payload, event_type, channels) = input;
    let payload = json(&payload);
    let headers = vec![("x-a".to_owned(), event_type.clone())];
    for candidate in [
        json!({ "payload": fields(&payload_pattern) }),
        fields(&payload_pattern),
        json!({ "event_type": [event_type.clone()], "payload": fields(&payload_pattern), "headers": { "x-a": [{ "prefix": "" }] } }),
    ] {
        let Ok(filter) = Filter::compile(&candidate) else { continue };
        let document = Document {
            event_type: &event_type,
            channels: &channels,
            payload: Some(&payload),
            headers: &headers,
        };
        let matches = filter.matches(&document);
        assert_eq!(
            matches,
            filter.explain(&document).is_ok(),
            "explain disagrees with matches on {candidate}"
        );
        // An empty payload pattern matches any payload.
        if candidate == json!({ "payload": {} }) {
            assert!(matches);
        }
    }
});
