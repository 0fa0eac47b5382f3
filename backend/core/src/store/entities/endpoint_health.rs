//! The `endpoint_health` table: per-endpoint delivery state shared by every worker process
//! (consecutive failures and the circuit breaker, the rate-limit token bucket, failing-since).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoint_health")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub endpoint_id: String,
    pub tenant_id: String,
    pub consecutive_failures: i32,
    pub failing_since: Option<DateTimeUtc>,
    pub circuit_open_until: Option<DateTimeUtc>,
    pub tokens: f64,
    pub tokens_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
