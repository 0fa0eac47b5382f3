//! Usage reports (`GET /api/v1/usage`, `GET /api/v1/app/{app}/usage`) and the tenant's quota.

use chrono::{DateTime, Utc};
use hookline_types::{ApiKeyScope, AppId, IdOrUid, QuotaOut, TenantId, UsageBucket, UsageOut};

use crate::{
    Context,
    billing::usage::{self, Granularity},
    catalog::applications,
    error::{CoreError, CoreResult},
    tenancy::plans,
    tenancy::principal::Principal,
};

/// A validated usage request.
#[derive(Clone, Copy, Debug)]
pub struct UsageQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub granularity: Granularity,
}

fn range(query: &UsageQuery) -> CoreResult<(DateTime<Utc>, DateTime<Utc>)> {
    let to = query.to.unwrap_or_else(Utc::now);
    let from = query.from.unwrap_or_else(|| match query.granularity {
        Granularity::Hour => to - chrono::Duration::hours(24),
        Granularity::Day => to - chrono::Duration::days(30),
    });
    if from >= to {
        return Err(CoreError::invalid(&["query", "to"], "must be later than from"));
    }
    if to - from > usage::max_range(query.granularity) {
        return Err(CoreError::invalid(
            &["query", "from"],
            match query.granularity {
                Granularity::Hour => {
                    "hourly usage covers at most 31 days: narrow the range or use granularity=day"
                }
                Granularity::Day => "daily usage covers at most 400 days",
            },
        ));
    }
    Ok((from, to))
}

fn report(
    query: &UsageQuery,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    data: Vec<UsageBucket>,
    quota: Option<QuotaOut>,
) -> UsageOut {
    let mut totals = UsageBucket { start: from, ..UsageBucket::default() };
    for bucket in &data {
        totals.messages_accepted += bucket.messages_accepted;
        totals.delivery_attempts += bucket.delivery_attempts;
        totals.inbound_requests += bucket.inbound_requests;
        totals.payload_bytes += bucket.payload_bytes;
        totals.payload_fetches += bucket.payload_fetches;
    }
    UsageOut {
        granularity: match query.granularity {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
        .to_owned(),
        from,
        to,
        data,
        totals,
        quota,
    }
}

pub async fn tenant_usage(ctx: &Context, principal: &Principal, query: &UsageQuery) -> CoreResult<UsageOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Read)?;
    let (from, to) = range(query)?;
    let data = usage::buckets(&ctx.db.conn, &principal.tenant_id, None, from, to, query.granularity).await?;
    Ok(report(query, from, to, data, Some(quota(ctx, &principal.tenant_id).await?)))
}

pub async fn app_usage(
    ctx: &Context,
    principal: &Principal,
    app: &IdOrUid<AppId>,
    query: &UsageQuery,
) -> CoreResult<UsageOut> {
    principal.require(ApiKeyScope::Read)?;
    let app = applications::find_for(&ctx.db.conn, principal, app).await?;
    let (from, to) = range(query)?;
    let data = usage::buckets(&ctx.db.conn, &principal.tenant_id, Some(&app.id), from, to, query.granularity)
        .await?;
    Ok(report(query, from, to, data, None))
}

/// This month's message quota and what has been used of it.
pub async fn quota(ctx: &Context, tenant: &TenantId) -> CoreResult<QuotaOut> {
    let limits = plans::limits(ctx, tenant).await?;
    let now = Utc::now();
    let used = usage::messages_this_month(&ctx.db.conn, tenant, now).await?.max(0) as u64;
    let included = limits.monthly_messages.max(0) as u64;
    Ok(QuotaOut {
        plan: limits.plan.clone(),
        period_start: usage::month_start(now),
        period_end: usage::next_month_start(now),
        monthly_messages: included,
        used,
        remaining: included.saturating_sub(used),
        overage: used.saturating_sub(included),
        overage_allowed: limits.overage_allowed,
        limits: limits.to_out(),
    })
}
