//! Tenants' JSON Schemas (`catalog::schemas`): hostile schemas are checked, compiled and run
//! against hostile payloads, as an event type's schema is. Nothing may panic, and the checks keep
//! every run short (libFuzzer's `-timeout` turns a super-linear schema into a failure). Like the
//! server, compiling and validating happen on a thread with a 64 MiB stack.

#![no_main]

use arbitrary::Arbitrary;
use hookline_core::catalog::schemas::{compile, violations};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// The keywords a schema is made of, so that generated objects are schemas more often than not.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Keyword {
    Type,
    Properties,
    Required,
    Items,
    PrefixItems,
    AdditionalProperties,
    PatternProperties,
    Pattern,
    Enum,
    Const,
    AnyOf,
    AllOf,
    OneOf,
    Not,
    Ref,
    Defs,
    MinLength,
    MaxLength,
    Minimum,
    Maximum,
    MultipleOf,
    Format,
    If,
    Then,
    Else,
    Contains,
    MinItems,
    MaxItems,
    UniqueItems,
    PropertyNames,
    DependentSchemas,
    UnevaluatedProperties,
    UnevaluatedItems,
    Anchor,
    DynamicRef,
    Id,
}

impl Keyword {
    fn name(self) -> &'static str {
        use Keyword::*;
        match self {
            Type => "type",
            Properties => "properties",
            Required => "required",
            Items => "items",
            PrefixItems => "prefixItems",
            AdditionalProperties => "additionalProperties",
            PatternProperties => "patternProperties",
            Pattern => "pattern",
            Enum => "enum",
            Const => "const",
            AnyOf => "anyOf",
            AllOf => "allOf",
            OneOf => "oneOf",
            Not => "not",
            Ref => "$ref",
            Defs => "$defs",
            MinLength => "minLength",
            MaxLength => "maxLength",
            Minimum => "minimum",
            Maximum => "maximum",
            MultipleOf => "multipleOf",
            Format => "format",
            If => "if",
            Then => "then",
            Else => "else",
            Contains => "contains",
            MinItems => "minItems",
            MaxItems => "maxItems",
            UniqueItems => "uniqueItems",
            PropertyNames => "propertyNames",
            DependentSchemas => "dependentSchemas",
            UnevaluatedProperties => "unevaluatedProperties",
            UnevaluatedItems => "unevaluatedItems",
            Anchor => "$anchor",
            DynamicRef => "$dynamicRef",
            Id => "$id",
        }
    }
}

/// Strings a schema's values are often made of.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Word {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
    Root,
    DefsA,
    Email,
    DateTime,
    Star,
}

impl Word {
    fn text(self) -> &'static str {
        use Word::*;
        match self {
            Object => "object",
            Array => "array",
            String => "string",
            Integer => "integer",
            Number => "number",
            Boolean => "boolean",
            Null => "null",
            Root => "#",
            DefsA => "#/$defs/a",
            Email => "email",
            DateTime => "date-time",
            Star => "(a+)+$",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Word(Word),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(Key, J)>),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Keyword(Keyword),
    Word(Word),
    Any(String),
}

fn to_value(j: &J, depth: usize) -> Value {
    if depth > 12 {
        return Value::Null;
    }
    match j {
        J::Null => Value::Null,
        J::Bool(b) => json!(b),
        J::Int(i) => json!(i),
        J::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        J::Word(w) => json!(w.text()),
        J::Str(s) => json!(s),
        J::Arr(items) => Value::Array(items.iter().map(|i| to_value(i, depth + 1)).collect()),
        J::Obj(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = match key {
                    Key::Keyword(k) => k.name().to_owned(),
                    Key::Word(w) => w.text().to_owned(),
                    Key::Any(s) => s.clone(),
                };
                map.insert(key, to_value(value, depth + 1));
            }
            Value::Object(map)
        }
    }
}

fuzz_target!(|input: (J, J)| {
    let schema = to_value(&input.0, 0);
    let payload = to_value(&input.1, 0);
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            if let Ok(validator) = compile(&schema) {
                let errors = violations(&validator, &payload);
                assert!(errors.len() <= hookline_core::catalog::schemas::MAX_ERRORS);
                assert_eq!(errors.is_empty(), validator.is_valid(&payload));
            }
        })
        .expect("a thread starts")
        .join()
        .expect("compiling or validating panicked");
});
