//! Request and response bodies, one group per resource. `XxxIn` creates, `XxxPatch` updates
//! (absent keeps, null clears), `XxxOut` is what the API returns.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};

use crate::{ApiKeyId, AppId, EndpointId, EventTypeId, MessageId, Patch, TenantId, UserId};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Free-form string metadata a tenant attaches to its objects.
pub type Metadata = BTreeMap<String, String>;

// ----- auth -----------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignupIn {
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
    /// At least 10 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 10))]
    pub password: String,
    /// The name of the organization (tenant) this creates.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")
    )]
    pub organization_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
    Owner,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserOut {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TenantOut {
    pub id: TenantId,
    pub name: String,
    pub plan: String,
    pub created_at: DateTime<Utc>,
}

/// The signed-in session. The session itself travels in an HttpOnly cookie; `csrf_token` must be
/// sent back as the `X-CSRF-Token` header on every state-changing request made with that cookie.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionOut {
    pub user: UserOut,
    pub tenant: TenantOut,
    pub csrf_token: String,
}

// ----- API keys -------------------------------------------------------------------------------

/// What a key may do: `read` (GET), `write` (read plus changes to resources), `admin` (write plus
/// managing API keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyScope {
    Read,
    Write,
    Admin,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyMode {
    #[default]
    Live,
    Test,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")
    )]
    pub name: String,
    /// Defaults to `["admin"]`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub scopes: Option<Vec<ApiKeyScope>>,
    #[serde(default)]
    pub mode: ApiKeyMode,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKeyOut {
    pub id: ApiKeyId,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<ApiKeyScope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Returned once, at creation: `key` is never shown again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiKeyCreatedOut {
    pub key: String,
    pub api_key: ApiKeyOut,
}

// ----- event types ----------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventTypeIn {
    /// Dotted name such as `invoice.paid`.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::EventTypeName))]
    pub name: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub description: String,
    /// A JSON Schema that payloads of this type must satisfy.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub schema: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub example: Option<Value>,
    /// Seconds to wait before each retry of this type's deliveries (each at most a week),
    /// for endpoints without a `retry_schedule` of their own; the default schedule when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20, value_type = Option<Vec<crate::schema::RetryWait>>))]
    pub retry_schedule: Option<Vec<u32>>,
    #[serde(default)]
    pub archived: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventTypePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub schema: Patch<Value>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub example: Patch<Value>,
    /// `null` returns the type's deliveries to the default schedule.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::schema::RetryWait>>, max_items = 20))]
    pub retry_schedule: Patch<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventTypeOut {
    pub id: EventTypeId,
    pub name: String,
    pub description: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub schema: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub example: Option<Value>,
    /// The type's retry schedule (endpoint > event type > default).
    #[serde(default)]
    pub retry_schedule: Option<Vec<u32>>,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// ----- applications ---------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApplicationIn {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 256, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")
    )]
    pub name: String,
    /// The tenant's own identifier; usable wherever the id is.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9._-]{1,256}$"))]
    pub uid: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    /// Deliveries per second across all of the application's endpoints.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000))]
    pub rate_limit: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApplicationPatch {
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
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 100_000))]
    pub rate_limit: Patch<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApplicationOut {
    pub id: AppId,
    pub uid: Option<String>,
    pub name: String,
    pub metadata: Metadata,
    pub rate_limit: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// ----- endpoints ------------------------------------------------------------------------------

/// How deliveries are put on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EndpointFormat {
    /// The payload as the JSON body, with Standard Webhooks headers.
    #[default]
    Json,
    /// CloudEvents 1.0 structured mode (`application/cloudevents+json`).
    CloudeventsStructured,
    /// CloudEvents 1.0 binary mode (`ce-*` headers).
    CloudeventsBinary,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EndpointOrdering {
    /// Deliveries run independently.
    #[default]
    None,
    /// Message n+1 is sent only after message n succeeded or died.
    Fifo,
}

/// What a delivery's body carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PayloadMode {
    /// The payload itself.
    #[default]
    Full,
    /// A small body `{"id", "type", "timestamp", "data_url", "data_url_expires_at", "size",
    /// "sha256"}`: the endpoint fetches the payload from `data_url` (signed, expiring, for this
    /// message and endpoint only).
    Thin,
    /// Full up to `thin_above_bytes`, thin above; and thin at once, in the same attempt, when the
    /// endpoint answers a full body with 413.
    Auto,
}

/// Which Standard Webhooks signature the endpoint's secret makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    /// `v1,<base64 HMAC-SHA256>` with a shared secret `whsec_…`.
    #[default]
    V1,
    /// `v1a,<base64 Ed25519>`: Hookline keeps the secret key `whsk_…`, consumers verify with the
    /// public key `whpk_…`.
    V1a,
}

/// How Hookline authenticates to the endpoint. Secrets are write-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EndpointAuthIn {
    Basic {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096, pattern = "^[^:]*$"))]
        username: String,
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
        password: String,
    },
    Header {
        #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::HeaderName))]
        name: String,
        #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::HeaderValue))]
        value: String,
    },
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        #[cfg_attr(
            feature = "openapi",
            schema(
                max_length = 2048,
                pattern = r"^https?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
            )
        )]
        token_url: String,
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
        client_id: String,
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
        client_secret: String,
        #[serde(default)]
        scope: Option<String>,
    },
}

/// The endpoint's auth as shown back: kinds and non-secret parts only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EndpointAuthOut {
    Basic {
        username: String,
    },
    Header {
        name: String,
    },
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        token_url: String,
        client_id: String,
        scope: Option<String>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// An absolute http(s) URL with a host and no credentials.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2048,
            pattern = r"^https?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
        )
    )]
    pub url: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9._-]{1,256}$"))]
    pub uid: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub description: String,
    #[serde(default)]
    pub disabled: bool,
    /// Event types this endpoint receives: exact names or wildcards such as `invoice.*`. All
    /// when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100, value_type = Option<Vec<crate::schema::EventTypeFilter>>))]
    pub filter_types: Option<Vec<String>>,
    /// Only messages carrying one of these channels. All when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10, value_type = Option<Vec<crate::schema::Channel>>))]
    pub channels: Option<Vec<String>>,
    /// A content filter: an event pattern in EventBridge's syntax over `{"event_type",
    /// "channels", "payload", "headers"}` (see `POST /api/v1/filter/test`). Every message when
    /// absent; checked with `filter_types` and `channels`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<Value>,
    /// A transform: a jq program run on `{"event_type", "payload", "headers"}` for each delivery,
    /// returning `{"payload", "event_type"?, "headers"?}` or `null` to skip it (see `POST
    /// /api/v1/transform/test`). Plan feature `transformations`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 16384))]
    pub transform: Option<String>,
    /// Deliveries per second.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000))]
    pub rate_limit: Option<u32>,
    #[serde(default)]
    pub metadata: Metadata,
    /// Extra request headers sent with every delivery (not ones Hookline sets itself:
    /// `Content-Type`, `webhook-*`, `ce-*`, …).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::Headers))]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub format: EndpointFormat,
    #[serde(default)]
    pub ordering: EndpointOrdering,
    /// Whether Hookline asks the endpoint with the CloudEvents abuse-protection handshake
    /// (`OPTIONS` with `WebHook-Request-Origin`) before its first delivery and daily after; a
    /// refusal pauses the endpoint. Absent: on for the CloudEvents formats, off otherwise.
    #[serde(default)]
    pub handshake: Option<bool>,
    /// Total request timeout in milliseconds (default 15000, at most 60000).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1000, maximum = 60_000))]
    pub timeout_ms: Option<u32>,
    /// Seconds to wait before each retry (each at most a week); replaces the default schedule.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20, value_type = Option<Vec<crate::schema::RetryWait>>))]
    pub retry_schedule: Option<Vec<u32>>,
    /// What a delivery's body carries (default `full`).
    #[serde(default)]
    pub payload_mode: PayloadMode,
    /// In `auto` mode, payloads over this many bytes are sent thin (default 262144).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1024, maximum = 20_971_520))]
    pub thin_above_bytes: Option<u32>,
    /// How long a thin delivery's `data_url` can be fetched, in seconds (default 86400).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 604_800))]
    pub data_url_ttl_seconds: Option<u32>,
    #[serde(default)]
    pub auth: Option<EndpointAuthIn>,
    /// A signing secret: `whsec_<base64>` (HMAC, `v1`) or `whsk_<base64>` (Ed25519, `v1a`);
    /// generated for `signature_scheme` when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// The scheme of the generated secret (default `v1`); must match `secret` when both are given.
    #[serde(default)]
    pub signature_scheme: Option<SignatureScheme>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2048,
            pattern = r"^https?://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
        )
    )]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,256}$"))]
    pub uid: Patch<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100, value_type = Option<Vec<crate::schema::EventTypeFilter>>))]
    pub filter_types: Patch<Vec<String>>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10, value_type = Option<Vec<crate::schema::Channel>>))]
    pub channels: Patch<Vec<String>>,
    /// A content filter (see `EndpointIn.filter`); `null` removes it.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Patch<Value>,
    /// A transform (see `EndpointIn.transform`); `null` removes it.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, min_length = 1, max_length = 16384))]
    pub transform: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 100_000))]
    pub rate_limit: Patch<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Headers>))]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<EndpointFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<EndpointOrdering>,
    /// See `EndpointIn.handshake`; `null` returns to the format's default.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub handshake: Patch<bool>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1000, maximum = 60_000))]
    pub timeout_ms: Patch<u32>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::schema::RetryWait>>, max_items = 20))]
    pub retry_schedule: Patch<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_mode: Option<PayloadMode>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1024, maximum = 20_971_520))]
    pub thin_above_bytes: Patch<u32>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 604_800))]
    pub data_url_ttl_seconds: Patch<u32>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EndpointAuthIn>))]
    pub auth: Patch<EndpointAuthIn>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EndpointOut {
    pub id: EndpointId,
    pub app_id: AppId,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub filter_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    /// The content filter, as saved.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<Value>,
    /// The transform, as saved.
    #[serde(default)]
    pub transform: Option<String>,
    pub rate_limit: Option<u32>,
    pub metadata: Metadata,
    /// Header names only: values may be secrets.
    pub header_names: Vec<String>,
    pub format: EndpointFormat,
    pub ordering: EndpointOrdering,
    /// Whether the CloudEvents handshake is made (the setting, or its format's default).
    #[serde(default)]
    pub handshake: bool,
    pub timeout_ms: Option<u32>,
    pub retry_schedule: Option<Vec<u32>>,
    pub auth: Option<EndpointAuthOut>,
    pub payload_mode: PayloadMode,
    /// Auto mode's threshold; absent = the default (262144).
    pub thin_above_bytes: Option<u32>,
    /// How long a `data_url` lasts; absent = the default (86400).
    pub data_url_ttl_seconds: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EndpointSecretOut {
    /// `whsec_<base64>` or, for `v1a`, the Ed25519 secret key `whsk_<base64>`.
    pub key: String,
    pub signature_scheme: SignatureScheme,
    /// For `v1a`: the public key `whpk_<base64>` consumers verify signatures with.
    pub public_key: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EndpointSecretRotateIn {
    /// The new secret; generated when absent. The old one keeps signing for 24 hours.
    #[serde(default)]
    pub key: Option<String>,
    /// The scheme of the generated secret; the current one's when absent. Rotating to another
    /// scheme sends both signatures for 24 hours.
    #[serde(default)]
    pub signature_scheme: Option<SignatureScheme>,
}

// ----- content filters ------------------------------------------------------------------------

/// A content filter tried on a sample message (what the dashboard's preview sends).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FilterTestIn {
    /// The event pattern, as an endpoint's `filter` takes it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filter: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::EventTypeName))]
    pub event_type: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub payload: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 10, value_type = Option<Vec<crate::schema::Channel>>))]
    pub channels: Option<Vec<String>>,
    /// Forwarded headers, as a received webhook's message carries them.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Headers>))]
    pub headers: Option<BTreeMap<String, String>>,
}

/// A transform tried on a sample message (`POST /api/v1/transform/test`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransformTestIn {
    /// The jq program, run on `{"event_type", "payload", "headers"}`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 16384, example = "{payload: {total: .payload.amount}}")
    )]
    pub transform: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::EventTypeName))]
    pub event_type: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub payload: Option<Value>,
    /// Headers, as a received webhook's message carries them.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Headers>))]
    pub headers: Option<BTreeMap<String, String>>,
}

/// What a transform made of a sample message: the payload, event type and extra headers it
/// would send, that it skips the delivery (`null`), or why it failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TransformTestOut {
    /// The program returned `null`: the delivery would not be sent.
    pub skipped: bool,
    /// The body that would be sent; absent when skipped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub payload: Option<Value>,
    /// The event type the delivery would carry (the program's, or the message's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Extra request headers the program set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Why the program failed (error, limit, unusable output); absent when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FilterTestOut {
    pub matches: bool,
    /// The path of the first part of the pattern the message did not match (`["payload",
    /// "amount"]`, or `[…, "$or"]` when no alternative did); absent when it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Vec<String>>,
}

// ----- messages -------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::schema::EventTypeName))]
    pub event_type: String,
    /// Kept as the exact JSON text sent (no re-serialization: numbers, key order and spacing are
    /// delivered as they came).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(deserialize_with = "parseable_json")]
    pub payload: Box<RawValue>,
    /// The tenant's id for this event: a second message with the same `event_id` for the same
    /// application within the de-duplication window (24 hours by default) returns the first one
    /// instead of creating a new one; after it the id is new again.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub event_id: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 10, value_type = Option<Vec<crate::schema::Channel>>))]
    pub channels: Option<Vec<String>>,
}

/// The deepest a message payload nests (objects and arrays): a `Value` parse takes 127 levels,
/// and the message body around the payload is one more.
pub const MAX_PAYLOAD_DEPTH: usize = 126;

/// A JSON value kept as its text, refused unless it also parses into a [`Value`] inside its
/// body: capturing the text alone neither limits nesting nor checks that numbers fit, and a
/// payload parsed later (a schema check, a dashboard view) must not fail then. The second pass
/// tokenizes the text with serde_json's own number rules but builds nothing.
fn parseable_json<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Box<RawValue>, D::Error> {
    use serde::de::{DeserializeSeed, Error};
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    let mut tokens = serde_json::Deserializer::from_str(raw.get());
    Parseable { levels: MAX_PAYLOAD_DEPTH }.deserialize(&mut tokens).map_err(Error::custom)?;
    Ok(raw)
}

/// Walks one JSON value the way parsing it into a [`Value`] does, keeping nothing; `levels` is
/// how many more objects or arrays may open.
#[derive(Clone, Copy)]
struct Parseable {
    levels: usize,
}

impl Parseable {
    fn inner<E: serde::de::Error>(&self) -> Result<Parseable, E> {
        match self.levels.checked_sub(1) {
            Some(levels) => Ok(Parseable { levels }),
            None => Err(E::custom(format_args!("nested deeper than {MAX_PAYLOAD_DEPTH} levels"))),
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Parseable {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Parseable {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MessageOut {
    pub id: MessageId,
    pub app_id: AppId,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: Vec<String>,
    /// The payload's JSON text as accepted. Absent once the payload has expired under the plan's
    /// retention.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub payload: Option<Box<RawValue>>,
    /// The payload's size in bytes as accepted (kept after the payload expires).
    #[serde(default)]
    pub payload_size: u64,
    /// Whether the payload is kept in the object store (over `HOOKLINE_CLAIM_CHECK_BYTES`);
    /// absent when the payload was not read (`with_content=false`, or expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_in_object_store: Option<bool>,
    pub created_at: DateTime<Utc>,
    /// For a message received on an inbound source: the source and the logged request it came
    /// from (on `GET` of one message, while the request is still logged; never for portal tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_by: Option<crate::ReceivedBy>,
}

// ----- health ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HealthOut {
    pub status: String,
}

// ----- attempts -------------------------------------------------------------------------------

/// One HTTP attempt of a delivery, as logged. Secret header values are `[redacted]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AttemptOut {
    pub id: crate::AttemptId,
    pub message_id: MessageId,
    pub endpoint_id: EndpointId,
    pub url: String,
    /// `succeeded`, `failed`, or `filtered` (the endpoint's transform skipped the delivery).
    pub status: String,
    pub response_status_code: Option<u16>,
    /// dns, connect, tls, timeout, status, ssrf, config, internal (the send failed inside
    /// Hookline, e.g. a panic; retried like any failure), transform (the endpoint's transform
    /// failed or passed a limit; retried like any failure) or filtered (the transform returned
    /// `null`: nothing was sent, nothing is retried); absent on success.
    pub error_class: Option<String>,
    /// Why the attempt failed, in words (the transform's error, the connection's failure);
    /// absent on success and on attempts logged before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request_headers: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub response_headers: Option<Value>,
    /// The first 64 KiB of the response body.
    pub response_body: Option<String>,
    pub duration_ms: u32,
    /// `scheduled` or `manual`.
    pub trigger: String,
    /// `full` (the payload was the body), `thin` (the thin body in `request_body` was sent), or
    /// `thin_after_413` (an `auto` endpoint answered the full body with 413; the thin body was
    /// sent at once, and the status and response here are the thin request's).
    pub payload_mode: String,
    /// The body sent when it was not the message's payload: a thin body, or the endpoint's
    /// transform's output.
    pub request_body: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One fetch of a thin delivery's `data_url`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PayloadFetchOut {
    pub id: crate::PayloadFetchId,
    pub message_id: MessageId,
    pub endpoint_id: EndpointId,
    /// 200 (the payload was sent) or 304 (the fetcher already had it: `If-None-Match`).
    pub status: u16,
    /// Payload bytes sent.
    pub bytes: u64,
    /// The fetcher's address as the server saw it.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A message's delivery to one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeliveryOut {
    pub id: crate::DeliveryId,
    pub message_id: MessageId,
    pub endpoint_id: EndpointId,
    /// pending, sending, failed (will retry), succeeded, dead.
    pub status: String,
    pub attempt_count: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_response_status_code: Option<u16>,
}

/// An accepted broadcast. Its messages (one per subscribed application) are created by the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BroadcastOut {
    pub id: crate::BroadcastId,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: Vec<String>,
    /// `queued`, then `expanded` once every subscribed application has its message.
    pub state: String,
    /// How many messages it became (0 while queued).
    pub message_count: u32,
    pub created_at: DateTime<Utc>,
}

// ----- self-service: replay, jobs, stats, portal ------------------------------------------------

/// `POST …/endpoint/{ep}/recover`: resend every failed or dead delivery of the endpoint whose
/// message was created in `[since, until)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    pub since: DateTime<Utc>,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

/// `POST …/endpoint/{ep}/replay-missing`: deliver the messages since `since` that match the
/// endpoint's filters and that it never got.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplayMissingIn {
    pub since: DateTime<Utc>,
}

/// A background job and its progress. `done` and `failed` count deliveries whose manual attempt
/// succeeded or failed; the job is `completed` when `done + failed == total`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobOut {
    pub id: crate::JobId,
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    /// `recover` or `replay_missing`.
    pub kind: String,
    /// `running`, `completed`, `cancelled` or `failed`.
    pub state: String,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One window of endpoint statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EndpointStatsWindow {
    /// `1h`, `24h` or `7d`.
    pub window: String,
    pub attempts: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Share of attempts that succeeded, 0 to 1; absent without attempts.
    pub success_rate: Option<f64>,
    /// Attempt duration percentiles in milliseconds; absent without attempts.
    pub p50_ms: Option<u32>,
    pub p95_ms: Option<u32>,
    /// Deliveries created in the window, by current status.
    pub deliveries: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EndpointStatsOut {
    pub endpoint_id: EndpointId,
    pub windows: Vec<EndpointStatsWindow>,
    /// The CloudEvents handshake's state; absent when the endpoint does not make it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<HandshakeStatusOut>,
}

/// Where an endpoint's CloudEvents handshake stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HandshakeStatusOut {
    /// When the endpoint last accepted; absent when it has not (yet, or since its URL, format or
    /// setting changed). It is asked again a day later.
    pub accepted_at: Option<DateTime<Utc>>,
    /// The `WebHook-Allowed-Rate` it answered (requests per minute); absent = no limit.
    pub allowed_rate_per_minute: Option<u32>,
    /// Why it is paused (it refused); absent when it is not.
    pub paused_reason: Option<String>,
}

/// `GET /api/v1/stats`: the whole tenant at a glance, for the dashboard's overview.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TenantStatsOut {
    /// Attempt outcomes, latency and deliveries of every endpoint together, over `1h`, `24h` and
    /// `7d` (as an endpoint's statistics).
    pub windows: Vec<EndpointStatsWindow>,
    /// Attempts by hour: 24 buckets, oldest first, the current (partial) hour last; hours without
    /// attempts are there with zeros.
    pub hourly: Vec<AttemptBucket>,
    /// Enabled endpoints whose latest attempts failed, most consecutive failures first (at most
    /// 50).
    pub failing_endpoints: Vec<EndpointAlertOut>,
    /// Disabled endpoints, by hand or automatically, most recently changed first (at most 50).
    pub disabled_endpoints: Vec<EndpointAlertOut>,
}

/// The attempts of one hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AttemptBucket {
    /// The start of the hour.
    pub start: DateTime<Utc>,
    /// Attempts that got a 2xx.
    pub succeeded: u64,
    /// Attempts that failed (any error class: status, timeout, connect, …).
    pub failed: u64,
}

/// An endpoint that needs attention: failing or disabled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EndpointAlertOut {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its application.
    pub app_id: AppId,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's description.
    pub description: String,
    /// Attempts that failed in a row since the last success (0 without attempts).
    pub consecutive_failures: u32,
    /// When the current run of failures began; absent when the last attempt succeeded.
    pub failing_since: Option<DateTime<Utc>>,
    /// The circuit breaker holds attempts back until then; absent when it is closed.
    pub circuit_open_until: Option<DateTime<Utc>>,
    /// Why the endpoint is disabled; absent when it is enabled or no reason was given.
    pub disabled_reason: Option<String>,
    /// Why the endpoint is paused: it refused the CloudEvents handshake (asked again when the
    /// circuit's cool-down ends); absent when it is not paused.
    #[serde(default)]
    pub paused_reason: Option<String>,
}

/// `POST /api/v1/app/{app}/portal-token`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PortalTokenIn {
    /// The portal may look but not change anything (no endpoint edits, no replays).
    #[serde(default)]
    pub read_only: bool,
    /// Lifetime in seconds: 60 to 86400, default 3600.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 86_400))]
    pub expires_in: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PortalTokenOut {
    /// Send as `Authorization: Bearer <token>`; the API then answers for this application only.
    pub token: String,
    /// The dashboard's portal view with the token (in the fragment, so it is not sent in logs).
    pub url: String,
    pub app_id: AppId,
    pub read_only: bool,
    pub expires_at: DateTime<Utc>,
}

// ----- metering ---------------------------------------------------------------------------------

/// Usage in one hour or day (or, as `totals`, over the whole range).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageBucket {
    pub start: DateTime<Utc>,
    pub messages_accepted: u64,
    pub delivery_attempts: u64,
    pub inbound_requests: u64,
    pub payload_bytes: u64,
    /// Fetches of thin deliveries' `data_url`s answered with the payload (or 304).
    pub payload_fetches: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageOut {
    /// `hour` or `day`.
    pub granularity: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every bucket of the range, oldest first, zeros included.
    pub data: Vec<UsageBucket>,
    pub totals: UsageBucket,
    /// The tenant's message quota this month (tenant-wide usage only).
    pub quota: Option<QuotaOut>,
}

/// A plan's limits as they apply to the tenant (its overrides included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PlanLimitsOut {
    pub plan: String,
    pub monthly_messages: u64,
    pub overage_allowed: bool,
    pub max_applications: u64,
    pub max_endpoints: u64,
    /// Deliveries per second per endpoint; absent for no plan limit.
    pub endpoint_rate_limit: Option<u32>,
    pub api_rate_per_second: u32,
    pub api_burst: u32,
    pub retention_days: u32,
    pub max_payload_bytes: u64,
    pub features: Vec<String>,
    /// Inbound sources across the tenant.
    pub max_sources: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct QuotaOut {
    pub plan: String,
    /// The calendar month (UTC) the quota counts.
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub monthly_messages: u64,
    pub used: u64,
    pub remaining: u64,
    /// Messages past the included ones (billed on paid plans).
    pub overage: u64,
    pub overage_allowed: bool,
    pub limits: PlanLimitsOut,
}

// ----- billing ------------------------------------------------------------------------------------

/// The tenant's plan and billing state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BillingOut {
    /// False when this server has no Stripe key: checkout and portal answer `billing_disabled`.
    pub enabled: bool,
    pub plan: String,
    /// `none`, `active`, `past_due` (in its grace period) or `canceled`.
    pub billing_state: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    /// After a failed payment: when the tenant goes back to the free plan unless it pays.
    pub grace_until: Option<DateTime<Utc>>,
    pub quota: QuotaOut,
}

/// `POST /api/v1/billing/checkout` and `/portal`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BillingSessionIn {
    /// Where Stripe sends the user back (default: the dashboard's billing page).
    #[serde(default)]
    pub return_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BillingSessionOut {
    pub id: String,
    /// Send the user here.
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &str) -> Result<MessageIn, serde_json::Error> {
        serde_json::from_str(&format!(r#"{{"event_type": "a.b", "payload": {payload}}}"#))
    }

    #[test]
    fn a_message_payload_keeps_its_exact_text() {
        let text = r#"{"b": 1.50,  "a": [1e2, "\u00e9"], "b": null}"#;
        assert_eq!(message(text).unwrap().payload.get(), text);
    }

    #[test]
    fn a_message_payload_that_would_not_parse_into_a_value_is_refused() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = message(&format!(r#"{{"x": {deep}}}"#)).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 126 levels"), "{err}");
        let err = message(r#"{"x": 1e400}"#).unwrap_err();
        assert!(err.to_string().contains("number out of range"), "{err}");
        // The deepest payload is accepted, and its whole message body parses into a Value.
        let inner = MAX_PAYLOAD_DEPTH - 1;
        let deepest = format!(r#"{{"x": {}{}}}"#, "[".repeat(inner), "]".repeat(inner));
        assert!(message(&deepest).is_ok());
        let body = format!(r#"{{"event_type": "a.b", "payload": {deepest}}}"#);
        assert!(serde_json::from_str::<Value>(&body).is_ok());
        let over = format!(r#"{{"x": {}{}}}"#, "[".repeat(inner + 1), "]".repeat(inner + 1));
        assert!(message(&over).is_err());
    }
}
