//! Named string shapes of the OpenAPI document: the patterns the server's parsers accept, so a
//! client (or a contract fuzzer) can tell a valid value from the schema alone. Used through
//! `#[schema(value_type = …)]` on plain `String` fields; nothing here exists at run time.

use std::borrow::Cow;

use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};

macro_rules! string_schema {
    ($(#[$doc:meta])* $name:ident, $description:literal, $pattern:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .pattern(Some($pattern))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

string_schema!(
    /// `hookline_core::domain::EventTypeName`.
    EventTypeName,
    "A dotted event-type name such as `invoice.paid`: segments of letters, digits, `_` and `-`.",
    r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
    1,
    256
);

string_schema!(
    /// `hookline_core::domain::EventTypeFilter`.
    EventTypeFilter,
    "An event type (`invoice.paid`), every type below a prefix (`invoice.*`), or every type (`*`).",
    r"^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?)$",
    1,
    258
);

string_schema!(
    /// `hookline_core::domain::parse_channel`.
    Channel,
    "A channel: letters, digits, `_`, `-`, `.` and `:`.",
    r"^[A-Za-z0-9_.:-]+$",
    1,
    128
);

string_schema!(
    /// An HTTP header name (an RFC 9110 token).
    HeaderName,
    "An HTTP header name.",
    r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
    1,
    256
);

string_schema!(
    /// A state of a message's delivery, as `GET …/msg?status=` filters on it.
    DeliveryState,
    "pending, succeeded, failed (will retry), dead or filtered (its endpoint's transform skipped it).",
    "^(pending|succeeded|failed|dead|filtered)$",
    1,
    9
);

string_schema!(
    /// A header value Hookline sends as it is.
    HeaderValue,
    "A header value: up to 4096 characters, no line breaks.",
    r"^[^\r\n\x00]*$",
    0,
    4096
);

/// One wait of a retry schedule (`hookline_core::domain::RetrySchedule`).
pub struct RetryWait;

impl utoipa::PartialSchema for RetryWait {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .description(Some("Seconds to wait before a retry: at most a week."))
            .minimum(Some(0))
            .maximum(Some(7 * 24 * 3600))
            .into()
    }
}

impl utoipa::ToSchema for RetryWait {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("RetryWait")
    }
}

/// An endpoint's extra request headers.
pub struct Headers;

impl utoipa::PartialSchema for Headers {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Extra request headers: at most 20, not ones Hookline sets itself (`Host`, `Content-Type`, \
                 `Content-Length`, `Transfer-Encoding`, `Connection`, `User-Agent`, `webhook-*`, `ce-*`, `svix-*`).",
            ))
            .max_properties(Some(20))
            .property_names(Some(<HeaderName as utoipa::PartialSchema>::schema()))
            .additional_properties(Some(<HeaderValue as utoipa::PartialSchema>::schema()))
            .into()
    }
}

impl utoipa::ToSchema for Headers {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Headers")
    }
}
