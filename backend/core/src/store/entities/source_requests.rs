//! The `source_requests` table: what each source received and what became of it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "source_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub source_id: String,
    pub received_at: DateTimeUtc,
    pub outcome: String,
    pub reason: Option<String>,
    pub method: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub headers: Json,
    pub body_size: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub body: Option<String>,
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    pub status: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
