//! `Patch<T>` tells a field that is absent from one that is `null` from one with a value, which
//! a PATCH body needs: absent keeps, `null` clears, a value sets.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    /// `None` when absent (keep), `Some(None)` when null (clear), `Some(Some(v))` to set.
    pub fn into_update(self) -> Option<Option<T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(v) => Some(Some(v)),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only reached when the key is present (fields use `#[serde(default)]`).
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Patch::Null,
            Some(v) => Patch::Value(v),
        })
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Absent | Patch::Null => serializer.serialize_none(),
            Patch::Value(v) => v.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        description: Patch<String>,
    }

    fn check(json: &str, expected: Patch<String>) {
        let body: Body = serde_json::from_str(json).unwrap();
        assert_eq!(body.description, expected, "{json}");
    }

    #[test]
    fn absent_null_and_value_are_told_apart() {
        check("{}", Patch::Absent);
        check(r#"{"description": null}"#, Patch::Null);
        check(r#"{"description": "x"}"#, Patch::Value("x".to_owned()));
    }
}
