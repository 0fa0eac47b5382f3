//! Typed, prefixed, time-sortable ids: `app_01JD…`. The part after the prefix is a ULID
//! (26 Crockford base32 characters, millisecond time first), so ids sort by creation time and
//! cursor pagination can compare them as strings. Generation lives in `hookline-core`; this
//! module only parses and carries them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not an id of the expected kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdError {
    pub expected_prefix: &'static str,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected an id of the form {}_ followed by 26 base32 characters", self.expected_prefix)
    }
}

impl std::error::Error for IdError {}

const ULID_LEN: usize = 26;

fn is_crockford(c: u8) -> bool {
    matches!(c, b'0'..=b'9' | b'A'..=b'H' | b'J' | b'K' | b'M' | b'N' | b'P'..=b'T' | b'V'..=b'Z')
}

/// True when `s` is `prefix_` followed by a ULID.
pub fn has_id_shape(s: &str, prefix: &str) -> bool {
    let Some(rest) = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')) else {
        return false;
    };
    // The first ULID character encodes only 3 bits: 0..=7.
    rest.len() == ULID_LEN && rest.bytes().all(is_crockford) && rest.as_bytes()[0] <= b'7'
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = json!(concat!($prefix, "_01JDQ2M3W4X5Y6Z7A8B9C0D1E2"))))]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn parse(s: &str) -> Result<Self, IdError> {
                if has_id_shape(s, $prefix) {
                    Ok($name(s.to_owned()))
                } else {
                    Err(IdError { expected_prefix: $prefix })
                }
            }

            /// Builds an id from its ULID part (26 characters), as `hookline-core` does when it
            /// mints one.
            pub fn from_ulid(ulid: &str) -> Result<Self, IdError> {
                Self::parse(&format!("{}_{}", $prefix, ulid))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                if has_id_shape(&s, $prefix) {
                    Ok($name(s))
                } else {
                    Err(IdError { expected_prefix: $prefix })
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

id_type!(
    /// A tenant (organization).
    TenantId, "org"
);
id_type!(
    /// A dashboard user.
    UserId, "user"
);
id_type!(
    /// An API key (the id, not the secret key).
    ApiKeyId, "key"
);
id_type!(
    /// An event type.
    EventTypeId, "evtype"
);
id_type!(
    /// An application: one of the tenant's customers.
    AppId, "app"
);
id_type!(
    /// An endpoint of an application.
    EndpointId, "ep"
);
id_type!(
    /// A message (event). Also the `webhook-id` header of every delivery of it.
    MessageId, "msg"
);
id_type!(
    /// A delivery: one message to one endpoint.
    DeliveryId, "dlv"
);
id_type!(
    /// One HTTP attempt of a delivery.
    AttemptId, "atmpt"
);
id_type!(
    /// A background job (bulk replay, …).
    JobId, "job"
);
id_type!(
    /// A broadcast: one request, a message in every subscribed application.
    BroadcastId, "bcast"
);
id_type!(
    /// An inbound source.
    SourceId, "src"
);
id_type!(
    /// A request received on a source's ingest URL.
    SourceRequestId, "sreq"
);
id_type!(
    /// One fetch of a thin delivery's `data_url`.
    PayloadFetchId, "pfetch"
);

/// A tenant-chosen identifier (`uid`) for an application or an endpoint: 1 to 256 characters of
/// `A-Z a-z 0-9 - _ .`. It must not have the shape of the resource's own ids, so that a path
/// segment always means one thing.
pub fn validate_uid(uid: &str, id_prefix: &str) -> Result<(), &'static str> {
    if uid.is_empty() || uid.len() > 256 {
        return Err("must be 1 to 256 characters long");
    }
    if !uid.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        return Err("may contain only letters, digits, '-', '_' and '.'");
    }
    if has_id_shape(uid, id_prefix) {
        return Err("must not look like an id");
    }
    Ok(())
}

/// A path segment that names a resource either by its id or by the tenant's `uid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdOrUid<Id> {
    Id(Id),
    Uid(String),
}

macro_rules! id_or_uid {
    ($id:ident) => {
        impl IdOrUid<$id> {
            pub fn parse(segment: &str) -> Self {
                match $id::parse(segment) {
                    Ok(id) => IdOrUid::Id(id),
                    Err(_) => IdOrUid::Uid(segment.to_owned()),
                }
            }
        }
    };
}

id_or_uid!(AppId);
id_or_uid!(EndpointId);
id_or_uid!(SourceId);

#[cfg(test)]
mod tests {
    use super::*;

    fn check_shape(input: &str, prefix: &str, expected: bool) {
        assert_eq!(has_id_shape(input, prefix), expected, "{input}");
    }

    #[test]
    fn id_shapes_are_recognised() {
        check_shape("app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2", "app", true);
        check_shape("app_01JDQ2M3W4X5Y6Z7A8B9C0D1E", "app", false);
        check_shape("app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2X", "app", false);
        check_shape("ep_01JDQ2M3W4X5Y6Z7A8B9C0D1E2", "app", false);
        check_shape("app_01jdq2m3w4x5y6z7a8b9c0d1e2", "app", false);
        check_shape("app_81JDQ2M3W4X5Y6Z7A8B9C0D1E2", "app", false);
        check_shape("app_01JDQ2M3W4X5Y6Z7A8B9C0D1EU", "app", false);
        check_shape("app01JDQ2M3W4X5Y6Z7A8B9C0D1E2", "app", false);
    }

    #[test]
    fn ids_round_trip_through_json_and_reject_other_kinds() {
        let id: AppId = serde_json::from_str("\"app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2\"");
        let err = serde_json::from_str::<AppId>("\"msg_01JDQ2M3W4X5Y6Z7A8B9C0D1E2\"").unwrap_err();
        assert!(err.to_string().contains("app_"), "{err}");
    }

    #[test]
    fn uids_are_validated() {
        assert_eq!(validate_uid("customer-42.eu_1", "app"), Ok(()));
        assert!(validate_uid("", "app").is_err());
        assert!(validate_uid(&"x".repeat(257), "app").is_err());
        assert!(validate_uid("has space", "app").is_err());
        assert!(validate_uid("app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2", "app").is_err());
        assert_eq!(validate_uid("ep_01JDQ2M3W4X5Y6Z7A8B9C0D1E2", "app"), Ok(()));
    }

    #[test]
    fn id_or_uid_prefers_the_id_reading() {
        assert_eq!(
            IdOrUid::<AppId>::parse("app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2"),
            IdOrUid::Id(AppId::parse("app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2").unwrap())
        );
        assert_eq!(IdOrUid::<AppId>::parse("acme"), IdOrUid::Uid("acme".to_owned()));
    }
}
