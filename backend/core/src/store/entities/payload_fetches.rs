//! The `payload_fetches` table: each answered fetch of a thin delivery's `data_url`, on the
//! delivery (message × endpoint) the URL was minted for.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "payload_fetches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub message_id: String,
    pub endpoint_id: String,
    pub delivery_id: String,
    /// 200 (the payload was sent) or 304 (the fetcher's `If-None-Match` named it).
    pub status: i32,
    /// Payload bytes sent (0 for a 304).
    pub bytes: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
