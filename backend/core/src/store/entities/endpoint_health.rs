//! The `endpoint_health` table: per-endpoint delivery state shared by every worker process
//! (consecutive failures and the circuit breaker, the rate-limit token bucket, failing-since, the
//! CloudEvents handshake's outcome).

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
    /// When the endpoint last accepted the CloudEvents handshake (`handshake`).
    pub handshake_at: Option<DateTimeUtc>,
    /// The `WebHook-Allowed-Rate` it answered, in requests per minute; NULL = no limit.
    pub handshake_rate: Option<i32>,
    /// Why a refused handshake paused the endpoint; NULL when it is not paused.
    pub paused_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
