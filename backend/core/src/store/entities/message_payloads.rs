//! The `message_payloads` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "message_payloads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: String,
    pub tenant_id: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// The request headers a received message forwards to its endpoints (a JSON object).
    #[sea_orm(column_type = "Text", nullable)]
    pub headers: Option<String>,
    pub created_at: DateTimeUtc,
    /// A claim-checked payload's object (`payload` then holds only its first 256 KiB).
    #[sea_orm(column_type = "Text", nullable)]
    pub object_key: Option<String>,
    pub object_size: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub object_sha256: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
