//! Usage counters: one row per tenant, application ('' = tenant-wide), hour and metric. Counters
//! are bumped inside the transaction of the thing they count, so a crash or retry never makes
//! them drift from the truth.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use hookline_types::{AppId, TenantId, UsageBucket};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::store::entities::usage_counters;

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

/// A batch's upsert that adds its rows ([`counter_rows`]) to the counters (see [`crate::store::bulk`]).
pub(crate) const COUNTERS: crate::store::bulk::Insert = crate::store::bulk::Insert {
    table: "usage_counters",
    columns: &["tenant_id", "app_id", "hour_start", "metric", "value"],
    tail: "ON CONFLICT (tenant_id, app_id, hour_start, metric) \
           DO UPDATE SET value = usage_counters.value + excluded.value",
};

/// The counter rows a batch adds: each amount goes to the tenant-wide counter and to its
/// application's, for the hour of its time, summed per counter first (one upsert may not touch a
/// row twice: PostgreSQL refuses it, and several applications share their tenant's row).
pub(crate) fn counter_rows<'a>(
    amounts: impl IntoIterator<Item = (&'a str, &'a str, DateTime<Utc>, Metric, i64)>,
) -> crate::store::bulk::Rows {
    #[derive(serde::Serialize)]
    struct CounterRow<'a> {
        tenant_id: &'a str,
        app_id: &'a str,
        hour_start: String,
        metric: &'a str,
        value: i64,
    }
    let mut sums: std::collections::BTreeMap<(&str, &str, DateTime<Utc>, &str), i64> =
        std::collections::BTreeMap::new();
    for (tenant, app, at, metric, amount) in amounts {
        let hour = hour_start(at);
        *sums.entry((tenant, "", hour, metric.as_str())).or_default() += amount;
        *sums.entry((tenant, app, hour, metric.as_str())).or_default() += amount;
    }
    sums.into_iter()
        .map(|((tenant_id, app_id, hour, metric), value)| CounterRow {
            tenant_id,
            app_id,
            hour_start: crate::store::bulk::ts(hour),
            metric,
            value,
        })
        .collect()
}

/// Adds `amount` to the tenant-wide counter and to the application's counter for this hour: a
/// batch of one through the same upsert as every batch ([`COUNTERS`]).
pub async fn add<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    app: &AppId,
    metric: Metric,
    amount: i64,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    static SQL: crate::store::bulk::BatchSql = crate::store::bulk::BatchSql::new(&[COUNTERS]);
    let rows = counter_rows([(tenant.as_str(), app.as_str(), at, metric, amount)]);
    crate::store::bulk::run(conn, SQL.get(conn.get_database_backend()), &[&rows]).await
}

// ----- reading usage ----------------------------------------------------------------------------

/// Hour or day buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

/// The longest range one usage request may cover, per granularity.
pub fn max_range(granularity: Granularity) -> chrono::Duration {
    match granularity {
        Granularity::Hour => chrono::Duration::days(31),
        Granularity::Day => chrono::Duration::days(400),
    }
}

fn bucket_start(time: DateTime<Utc>, granularity: Granularity) -> DateTime<Utc> {
    match granularity {
        Granularity::Hour => hour_start(time),
        Granularity::Day => time.duration_trunc(TimeDelta::days(1)).expect("a day divides any UTC time"),
    }
}

fn step(granularity: Granularity) -> TimeDelta {
    match granularity {
        Granularity::Hour => TimeDelta::hours(1),
        Granularity::Day => TimeDelta::days(1),
    }
}

/// The first instant of the calendar month (UTC) of `time`: quotas count per month.
pub fn month_start(time: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{Datelike, TimeZone};
    Utc.with_ymd_and_hms(time.year(), time.month(), 1, 0, 0, 0).single().expect("the first of a month exists")
}

/// The first instant of the next calendar month (UTC).
pub fn next_month_start(time: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{Datelike, TimeZone};
    let (year, month) =
        if time.month() == 12 { (time.year() + 1, 1) } else { (time.year(), time.month() + 1) };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().expect("the first of a month exists")
}

/// Usage of the tenant (`app` = None) or one application, in buckets over `[from, to)`, every
/// bucket present (zeros included).
pub async fn buckets<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    app: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: Granularity,
) -> Result<Vec<UsageBucket>, DbErr> {
    let first = bucket_start(from, granularity);
    let rows = usage_counters::Entity::find()
        .filter(usage_counters::Column::TenantId.eq(tenant.as_str()))
        .filter(usage_counters::Column::AppId.eq(app.unwrap_or("")))
        .filter(usage_counters::Column::HourStart.gte(first))
        .filter(usage_counters::Column::HourStart.lt(to))
        .all(conn)
        .await?;
    let mut out: Vec<UsageBucket> = Vec::new();
    let mut start = first;
    while start < to {
        out.push(UsageBucket { start, ..UsageBucket::default() });
        start += step(granularity);
    }
    for row in rows {
        let at = bucket_start(row.hour_start, granularity);
        let Some(bucket) = out.iter_mut().find(|b| b.start == at) else { continue };
        let value = std::cmp::max(row.value, 0) as u64;
        match row.metric.as_str() {
            "messages_accepted" => bucket.messages_accepted += value,
            "delivery_attempts" => bucket.delivery_attempts += value,
            "inbound_requests" => bucket.inbound_requests += value,
            "payload_bytes" => bucket.payload_bytes += value,
            _ => {}
        }
    }
    Ok(out)
}

/// Messages the tenant had accepted this calendar month (UTC), from the counters.
pub async fn messages_this_month<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let rows = usage_counters::Entity::find()
        .filter(usage_counters::Column::TenantId.eq(tenant.as_str()))
        .filter(usage_counters::Column::AppId.eq(""))
        .filter(usage_counters::Column::Metric.eq(Metric::MessagesAccepted.as_str()))
        .filter(usage_counters::Column::HourStart.gte(month_start(now)))
        .all(conn)
        .await?;
    Ok(rows.iter().map(|r| r.value).sum())
}
