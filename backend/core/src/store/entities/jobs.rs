//! The `bulk_jobs` table: bulk replay jobs (recover, replay-missing) and their progress.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bulk_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub endpoint_id: String,
    /// `recover` or `replay_missing`.
    pub kind: String,
    /// `{"since", "until"}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub params: Json,
    /// `running`, `completed`, `cancelled` or `failed`.
    pub state: String,
    pub total: i64,
    pub done: i64,
    pub failed: i64,
    pub fed: i64,
    pub cursor: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
