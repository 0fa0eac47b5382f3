//! The `attempts` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub message_id: String,
    pub endpoint_id: String,
    pub delivery_id: String,
    pub url: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub request_headers: Json,
    pub response_status: Option<i32>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub response_headers: Option<Json>,
    pub response_body: Option<String>,
    pub duration_ms: i32,
    pub error_class: Option<String>,
    /// Why the attempt failed, in words (a transform's error, a connection failure).
    pub error_detail: Option<String>,
    pub trigger: String,
    /// NULL: the full payload was sent; `thin`; `thin_after_413` (the full body was answered 413
    /// and the thin one sent at once, in this attempt).
    pub payload_mode: Option<String>,
    /// The thin body sent (a full body is the message's payload and is not copied here).
    #[sea_orm(column_type = "Text", nullable)]
    pub request_body: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
