//! The `messages` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub event_type: String,
    pub event_id: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub channels: Json,
    pub payload_size: i64,
    pub created_at: DateTimeUtc,
    /// A repeat of `event_id` came after the de-duplication window: the id is free again.
    pub event_id_released: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
