//! The `sources` table: inbound sources (see `sources`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sources")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub uid: Option<String>,
    pub name: String,
    /// The sealed JSON of the verification scheme with its secrets.
    #[sea_orm(column_type = "Text")]
    pub verification: String,
    /// Event type and id rules, forwarded headers, ordering (no secrets).
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: Json,
    pub rate_limit: Option<i32>,
    pub burst: Option<i32>,
    pub max_body_bytes: Option<i64>,
    pub disabled: bool,
    pub token_hash: String,
    #[sea_orm(column_type = "Text")]
    pub token_sealed: String,
    pub previous_token_hash: Option<String>,
    pub previous_token_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
