//! Usage counters: one row per tenant, application ('' = tenant-wide), hour and metric. Counters
//! are bumped inside the transaction of the thing they count, so a crash or retry never makes
//! them drift from the truth.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use hookline_types::{AppId, TenantId};
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, Set,
    sea_query::{Expr, ExprTrait, OnConflict},
};

use crate::entities::usage_counters;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    MessagesAccepted,
    PayloadBytes,
    DeliveryAttempts,
    InboundRequests,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::MessagesAccepted => "messages_accepted",
            Metric::PayloadBytes => "payload_bytes",
            Metric::DeliveryAttempts => "delivery_attempts",
            Metric::InboundRequests => "inbound_requests",
        }
    }
}

pub fn hour_start(time: DateTime<Utc>) -> DateTime<Utc> {
    time.duration_trunc(TimeDelta::hours(1)).expect("an hour divides any UTC time")
}

/// Adds `amount` to the tenant-wide counter and to the application's counter for this hour.
pub async fn add<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    app: Option<&AppId>,
    metric: Metric,
    amount: i64,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let hour = hour_start(at);
    let mut rows = vec![row(tenant, "", hour, metric, amount)];
    if let Some(app) = app {
        rows.push(row(tenant, app.as_str(), hour, metric, amount));
    }
    usage_counters::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                usage_counters::Column::TenantId,
                usage_counters::Column::AppId,
                usage_counters::Column::HourStart,
                usage_counters::Column::Metric,
            ])
            .value(
                usage_counters::Column::Value,
                Expr::col((usage_counters::Entity, usage_counters::Column::Value))
                    .add(Expr::cust("excluded.value")),
            )
            .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}

fn row(
    tenant: &TenantId,
    app: &str,
    hour: DateTime<Utc>,
    metric: Metric,
    amount: i64,
) -> usage_counters::ActiveModel {
    usage_counters::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        app_id: Set(app.to_owned()),
        hour_start: Set(hour),
        metric: Set(metric.as_str().to_owned()),
        value: Set(amount),
    }
}
