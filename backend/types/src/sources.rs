//! Inbound sources: webhooks Hookline receives from a provider (Stripe, GitHub, …) on a public
//! ingest URL, verifies, and turns into messages of one of the tenant's applications.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::{AppId, MessageId, Patch, SourceId, SourceRequestId};

/// Where a value of a received request comes from: one of its headers, a JSON pointer into its
/// body (RFC 6901, e.g. `/type`), or a fixed value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ValueFrom {
    Header(String),
    Pointer(String),
    Fixed(String),
}

/// How a source checks that a request comes from its provider. Secrets are write-only; a
/// `PATCH` that changes the secret of the same scheme keeps the previous one valid for 24 hours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerificationIn {
    /// Accept every request (the ingest URL's token is the only secret).
    None,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` with `v1`
    /// (HMAC-SHA256, `secret` = `whsec_…`) or `v1a` (Ed25519, `public_key` = `whpk_…`).
    StandardWebhooks {
        #[serde(default)]
        secret: Option<String>,
        #[serde(default)]
        public_key: Option<String>,
        #[serde(default)]
        tolerance_seconds: Option<u32>,
    },
    /// Stripe: `Stripe-Signature: t=…,v1=…`, HMAC-SHA256 of `{t}.{body}` with the endpoint's
    /// signing secret (`whsec_…`, used as it is).
    Stripe {
        secret: String,
        #[serde(default)]
        tolerance_seconds: Option<u32>,
    },
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Github { secret: String },
    /// Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>`.
    Shopify { secret: String },
    /// Any HMAC scheme: the signature in `header` (after an optional `prefix`), over the body or
    /// over `template` (`{timestamp}` from `timestamp_header`, `{body}`), e.g. Slack's
    /// `v0:{timestamp}:{body}` with prefix `v0=`.
    Hmac {
        secret: String,
        header: String,
        #[serde(default)]
        algorithm: HmacAlgorithm,
        #[serde(default)]
        encoding: SignatureEncoding,
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default)]
        template: Option<String>,
        #[serde(default)]
        timestamp_header: Option<String>,
        #[serde(default)]
        tolerance_seconds: Option<u32>,
    },
    /// HTTP Basic authentication.
    Basic { username: String, password: String },
    /// A fixed value in a header.
    ApiKey { header: String, value: String },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// A source's verification as shown back: the scheme and its non-secret settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VerificationOut {
    /// `none`, `standard_webhooks`, `stripe`, `github`, `shopify`, `hmac`, `basic` or `api_key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The header the signature or key is read from, where the scheme has one.
    pub header: Option<String>,
    pub algorithm: Option<HmacAlgorithm>,
    pub encoding: Option<SignatureEncoding>,
    pub prefix: Option<String>,
    pub template: Option<String>,
    pub timestamp_header: Option<String>,
    /// For timestamped schemes: how far a request's timestamp may be from now.
    pub tolerance_seconds: Option<u32>,
    pub username: Option<String>,
    /// Secrets currently accepted (more than one during a rotation).
    pub secrets: u32,
}

/// Ordered events: a request whose `sequence` (an integer or an RFC 3339 time) is older than the
/// newest already accepted for the same `key` is kept as `stale` and not delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SourceOrdering {
    pub sequence: ValueFrom,
    /// One order per key (e.g. the object's id); one order for the whole source when absent.
    #[serde(default)]
    pub key: Option<ValueFrom>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SourceIn {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")
    )]
    pub name: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9._-]{1,256}$"))]
    pub uid: Option<String>,
    /// The application (id or uid) whose message each accepted request becomes.
    pub app: String,
    pub verification: VerificationIn,
    /// The messages' event type; `source.<name>.received` (the name in lower case, other
    /// characters as `_`) when absent.
    #[serde(default)]
    pub event_type: Option<ValueFrom>,
    /// The provider's event id, which makes a repeated request a duplicate; the scheme's own id
    /// when absent (`webhook-id`, `X-GitHub-Delivery`, Stripe's `/id`, `X-Shopify-Webhook-Id`),
    /// else the signature.
    #[serde(default)]
    pub event_id: Option<ValueFrom>,
    /// Request headers kept on the message and sent on to its endpoints.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20, value_type = Vec<crate::schema::HeaderName>))]
    pub forward_headers: Vec<String>,
    /// Requests per second (token bucket); unlimited when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000))]
    pub rate_limit: Option<u32>,
    /// The bucket's size; `rate_limit` when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000))]
    pub burst: Option<u32>,
    /// The largest body accepted; the plan's payload limit when absent (never above it).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    #[serde(default)]
    pub ordering: Option<SourceOrdering>,
    /// A content filter (an event pattern, like an endpoint's `filter`) over `{"event_type",
    /// "payload", "headers"}` of each verified request, `headers` being all the request's
    /// headers: a request it does not match is answered 200 `{"filtered": true}`, logged with
    /// outcome `filtered`, and not stored. Every request when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<serde_json::Value>,
    /// A transform (a jq program, like an endpoint's `transform`) run on `{"event_type",
    /// "payload", "headers"}` of each verified request that passed the filter (`headers`: all the
    /// request's headers, names in lower case): it returns the message to store — `{"payload",
    /// "event_type"?, "headers"?}` (extra headers are kept on the message like forwarded ones) —
    /// or `null` to store nothing (200 `{"filtered": true}`). A program that fails answers 502
    /// `transform_failed` and stores nothing. Plan feature `transformations`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 16384))]
    pub transform: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")
    )]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,256}$"))]
    pub uid: Patch<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationIn>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ValueFrom>))]
    pub event_type: Patch<ValueFrom>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ValueFrom>))]
    pub event_id: Patch<ValueFrom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 20, value_type = Option<Vec<crate::schema::HeaderName>>))]
    pub forward_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 100_000))]
    pub rate_limit: Patch<u32>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 100_000))]
    pub burst: Patch<u32>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub max_body_bytes: Patch<u64>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<SourceOrdering>))]
    pub ordering: Patch<SourceOrdering>,
    /// A content filter (see `SourceIn.filter`); `null` removes it.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Patch<serde_json::Value>,
    /// A transform (see `SourceIn.transform`); `null` removes it.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, min_length = 1, max_length = 16384))]
    pub transform: Patch<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SourceOut {
    pub id: SourceId,
    pub uid: Option<String>,
    pub name: String,
    pub app_id: AppId,
    pub verification: VerificationOut,
    pub event_type: ValueFrom,
    pub event_id: Option<ValueFrom>,
    pub forward_headers: Vec<String>,
    pub rate_limit: Option<u32>,
    pub burst: Option<u32>,
    /// The largest body accepted now (the source's limit, capped by the plan's).
    pub max_body_bytes: u64,
    pub ordering: Option<SourceOrdering>,
    /// The content filter, as saved.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<serde_json::Value>,
    /// The transform, as saved.
    #[serde(default)]
    pub transform: Option<String>,
    pub disabled: bool,
    /// Where the provider sends its webhooks: `POST` (any content type). The URL is the
    /// credential; rotate it with `…/token/rotate`.
    pub ingest_url: String,
    /// While a rotation's 24 hours last, the previous URL keeps working until then.
    pub previous_url_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What became of a received request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SourceRequestOutcome {
    /// Stored as a message and delivered to the application's endpoints.
    Accepted,
    /// The event id was already accepted: answered with the first message, nothing stored.
    Duplicate,
    /// Older than the newest accepted event of its ordering key: kept, not delivered.
    Stale,
    /// Refused before it was stored (verification, a handshake answered, a bad body).
    Rejected,
    /// A provider's handshake (challenge) answered; nothing stored.
    Handshake,
    /// Verified, but the source's content filter did not match: answered 200, not stored.
    Filtered,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SourceRequestOut {
    pub id: SourceRequestId,
    pub source_id: SourceId,
    pub received_at: DateTime<Utc>,
    pub outcome: SourceRequestOutcome,
    /// Why a request was rejected: the error code it was answered with.
    pub reason: Option<String>,
    pub method: String,
    /// Request headers; values of the verification's headers and of credentials are redacted.
    pub headers: BTreeMap<String, String>,
    pub body_size: u64,
    /// The body as received (UTF-8 text; bytes that are not UTF-8 as U+FFFD) for stale and
    /// rejected requests; accepted ones are the message's payload.
    pub body: Option<String>,
    pub message_id: Option<MessageId>,
    pub event_id: Option<String>,
    /// The HTTP status it was answered with.
    pub status: u16,
}

/// The answer to an accepted (202) or duplicate (200) request on the ingest URL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IngestOut {
    pub message: Option<MessageId>,
    #[serde(default)]
    pub duplicate: bool,
    #[serde(default)]
    pub stale: bool,
    /// The source's content filter did not match: nothing stored.
    #[serde(default)]
    pub filtered: bool,
}

/// A ready-made request for trying a source: signed now with its current secret (valid within
/// the scheme's tolerance), with a `curl` line that sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SourceTestRequestOut {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub curl: String,
    /// Why the request is not signed, when Hookline cannot sign for the source's scheme (a
    /// Standard Webhooks `v1a` source holds only the provider's public key): it will be rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsigned: Option<String>,
}

/// The source request a received message came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReceivedBy {
    pub source_id: SourceId,
    pub source_name: String,
    pub request_id: SourceRequestId,
}
