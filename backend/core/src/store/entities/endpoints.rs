//! The `endpoints` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub filter_types: Option<Json>,
    /// A content filter (`routing::filter`): an event pattern; NULL = every message.
    pub filter: Option<Json>,
    /// A transform (`transform`): a jq program; NULL = the payload as it is.
    pub transform: Option<String>,
    /// Whether the CloudEvents handshake is made (`handshake`); NULL = the format's default.
    pub handshake: Option<bool>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub channels: Option<Json>,
    pub rate_limit: Option<i32>,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    /// The custom headers (name → value), encrypted: values may be credentials.
    pub headers_ciphertext: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub header_names: Json,
    pub format: String,
    pub ordering: String,
    pub timeout_ms: Option<i32>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub retry_schedule: Option<Json>,
    /// The endpoint auth (`EndpointAuthIn` as JSON), encrypted.
    pub auth_ciphertext: Option<String>,
    /// `full`, `thin` or `auto` (see `thin::PayloadMode`).
    pub payload_mode: String,
    /// Auto mode's threshold in bytes; NULL = `thin::DEFAULT_THIN_ABOVE_BYTES`.
    pub thin_above_bytes: Option<i32>,
    /// How long a `data_url` lasts; NULL = `thin::DEFAULT_DATA_URL_TTL_SECONDS`.
    pub data_url_ttl_seconds: Option<i32>,
    /// The non-secret part of the auth, as shown back (`EndpointAuthOut`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub auth_summary: Option<Json>,
    /// The current signing secret (`whsec_…`), encrypted.
    pub secret_ciphertext: String,
    /// Rotated-out secrets that still sign until they expire: `[{"ciphertext", "expires_at"}]`.
    #[sea_orm(column_type = "JsonBinary")]
    pub previous_secrets: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
