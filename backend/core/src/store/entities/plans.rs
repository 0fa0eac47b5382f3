//! The `plans` table: each plan's limits (see `tenancy::plans`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub monthly_messages: i64,
    pub overage_allowed: bool,
    pub max_applications: i64,
    pub max_endpoints: i64,
    pub endpoint_rate_limit: Option<i32>,
    pub api_rate_per_second: i32,
    pub api_burst: i32,
    pub retention_days: i64,
    pub max_payload_bytes: i64,
    #[sea_orm(column_type = "JsonBinary")]
    pub features: Json,
    pub max_sources: i64,
    /// The Stripe price whose subscription puts a tenant on this plan.
    pub stripe_price_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
