//! The `event_types` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event_types")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub schema: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub example: Option<Json>,
    /// Retry waits in seconds for this type's deliveries (JSON array); NULL = the default.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub retry_schedule: Option<Json>,
    pub archived: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
