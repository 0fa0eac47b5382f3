//! Usage counters: one row per tenant, application ('' = tenant-wide), hour and metric. Counters
//! are bumped inside the transaction of the thing they count, so a crash or retry never makes
//! them drift from the truth.

use chrono::{DateTime, TimeDelta, Utc};
use hookline_types::{AppId, TenantId, UsageBucket};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::store::entities::usage_counters;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    MessagesAccepted,
    PayloadBytes,
    DeliveryAttempts,
    InboundRequests,
    /// Answered fetches of thin deliveries' `data_url`s.
    PayloadFetches,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::MessagesAccepted => "messages_accepted",
            Metric::PayloadBytes => "payload_bytes",
            Metric::DeliveryAttempts => "delivery_attempts",
            Metric::InboundRequests => "inbound_requests",
            Metric::PayloadFetches => "payload_fetches",
        }
    }
}

pub fn hour_start(time: DateTime<Utc>) -> DateTime<Utc> {
    truncate(time, 3600)
}

/// `time` rounded down to a multiple of `seconds` since the epoch. Whole-second arithmetic, so
/// it holds for every time chrono represents (`duration_trunc` counts nanoseconds in an `i64` and
/// fails after 2262, a time a caller can ask usage for).
fn truncate(time: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    let at = time.timestamp();
    DateTime::from_timestamp(at - at.rem_euclid(seconds), 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
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
        Granularity::Day => truncate(time, 86_400),
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
            "payload_fetches" => bucket.payload_fetches += value,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_the_hour_and_the_day_for_any_time_a_caller_can_name() {
        for text in [
            "2026-12-07T13:45:10.5Z",
            "2263-01-01T00:30:00Z",
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:01Z",
            "1969-12-31T23:30:00Z",
        ] {
            let time = DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc);
            let hour = bucket_start(time, Granularity::Hour);
            let day = bucket_start(time, Granularity::Day);
            assert!(hour <= time && time - hour < TimeDelta::hours(1), "{text}");
            assert!(day <= time && time - day < TimeDelta::days(1), "{text}");
            assert_eq!(
                (hour.timestamp().rem_euclid(3600), day.timestamp().rem_euclid(86_400)),
                (0, 0),
                "{text}"
            );
        }
    }
}
