//! Plans as data (SPEC §5): the `plans` table holds each plan's limits, seeded with the free, pro
//! and enterprise defaults; a tenant's `settings.overrides` (set by `hookline plan set`) replace
//! single limits. [`limits`] answers from a short-lived cache: it is read on every request.

use std::sync::Arc;

use hookline_types::{PlanLimitsOut, TenantId};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::Value;

use crate::{
    Context,
    error::{CoreError, CoreResult},
    store::entities::{plans, tenants},
    store::from_json,
    store::scope::TenantScoped,
};

pub const FEATURE_INBOUND_SOURCES: &str = "inbound_sources";
/// Transforms (jq programs) on endpoints and `POST /api/v1/transform/test`.
pub const FEATURE_TRANSFORMATIONS: &str = "transformations";
pub const FEATURE_DEDICATED_QUEUE: &str = "dedicated_queue";

/// The limits in force for one tenant: its plan's, with its overrides applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub plan: String,
    /// Messages per calendar month (UTC) included in the plan.
    pub monthly_messages: i64,
    /// Paid plans go into overage past `monthly_messages`; the free plan stops there.
    pub overage_allowed: bool,
    pub max_applications: i64,
    /// Endpoints across all of the tenant's applications.
    pub max_endpoints: i64,
    /// Deliveries per second per endpoint; `None` for no plan limit.
    pub endpoint_rate_limit: Option<u32>,
    /// API requests per second per credential (token bucket), and its burst.
    pub api_rate_per_second: u32,
    pub api_burst: u32,
    pub retention_days: i64,
    pub max_payload_bytes: usize,
    pub features: Vec<String>,
    /// Inbound sources across the tenant (with the `inbound_sources` feature).
    pub max_sources: i64,
}

impl Limits {
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// `Forbidden` with code `plan_feature_missing` unless the plan has `feature`.
    pub fn require_feature(&self, feature: &str) -> CoreResult<()> {
        if self.has_feature(feature) {
            Ok(())
        } else {
            Err(CoreError::Forbidden {
                code: "plan_feature_missing",
                detail: format!("the {} plan does not include {feature}; upgrade to use it", self.plan),
            })
        }
    }

    pub fn to_out(&self) -> PlanLimitsOut {
        PlanLimitsOut {
            plan: self.plan.clone(),
            monthly_messages: self.monthly_messages.max(0) as u64,
            overage_allowed: self.overage_allowed,
            max_applications: self.max_applications.max(0) as u64,
            max_endpoints: self.max_endpoints.max(0) as u64,
            endpoint_rate_limit: self.endpoint_rate_limit,
            api_rate_per_second: self.api_rate_per_second,
            api_burst: self.api_burst,
            retention_days: self.retention_days.max(0) as u32,
            max_payload_bytes: self.max_payload_bytes as u64,
            features: self.features.clone(),
            max_sources: self.max_sources.max(0) as u64,
        }
    }
}

fn apply_overrides(mut limits: Limits, overrides: &Value) -> CoreResult<Limits> {
    let int = |key: &str| overrides.get(key).and_then(Value::as_i64);
    if let Some(n) = int("monthly_messages") {
        limits.monthly_messages = n;
    }
    if let Some(b) = overrides.get("overage_allowed").and_then(Value::as_bool) {
        limits.overage_allowed = b;
    }
    if let Some(n) = int("max_applications") {
        limits.max_applications = n;
    }
    if let Some(n) = int("max_endpoints") {
        limits.max_endpoints = n;
    }
    if let Some(n) = int("endpoint_rate_limit") {
        limits.endpoint_rate_limit = (n > 0).then_some(n as u32);
    }
    if let Some(n) = int("api_rate_per_second") {
        limits.api_rate_per_second = n.max(1) as u32;
    }
    if let Some(n) = int("api_burst") {
        limits.api_burst = n.max(1) as u32;
    }
    if let Some(n) = int("retention_days") {
        limits.retention_days = n.max(0);
    }
    if let Some(n) = int("max_payload_bytes") {
        limits.max_payload_bytes = n.max(1) as usize;
    }
    if let Some(n) = int("max_sources") {
        limits.max_sources = n.max(0);
    }
    if let Some(features) = overrides.get("features") {
        limits.features = from_json(features.clone(), "feature overrides")?;
    }
    Ok(limits)
}

fn from_row(row: plans::Model, hard_max_payload: usize) -> CoreResult<Limits> {
    Ok(Limits {
        plan: row.name,
        monthly_messages: row.monthly_messages,
        overage_allowed: row.overage_allowed,
        max_applications: row.max_applications,
        max_endpoints: row.max_endpoints,
        endpoint_rate_limit: row.endpoint_rate_limit.filter(|n| *n > 0).map(|n| n as u32),
        api_rate_per_second: row.api_rate_per_second.max(1) as u32,
        api_burst: row.api_burst.max(1) as u32,
        retention_days: row.retention_days,
        max_payload_bytes: (row.max_payload_bytes.max(1) as usize).min(hard_max_payload),
        features: from_json(row.features, "plan features")?,
        max_sources: row.max_sources,
    })
}

/// The tenant's limits (cached for a few seconds).
pub async fn limits(ctx: &Context, tenant: &TenantId) -> CoreResult<Arc<Limits>> {
    if let Some(limits) = ctx.caches.limits.get(tenant) {
        return Ok(limits);
    }
    let Some(model) = tenants::Entity::find_by_id(tenant.as_str()).one(&ctx.db.conn).await? else {
        ctx.caches.limits.remove(tenant);
        return Err(CoreError::NotFound("tenant"));
    };
    let limits = Arc::new(limits_of(ctx, &model).await?);
    ctx.caches.limits.insert(tenant.clone(), limits.clone());
    Ok(limits)
}

/// Drops the tenant's cached limits after its plan or overrides changed in this process.
pub fn forget(ctx: &Context, tenant: &str) {
    ctx.caches.limits.retain(|cached, _| cached.as_str() != tenant);
}

/// The limits of a tenant row (uncached).
pub async fn limits_of(ctx: &Context, tenant: &tenants::Model) -> CoreResult<Limits> {
    let plan = plans::Entity::find_by_id(tenant.plan.as_str()).one(&ctx.db.conn).await?.ok_or_else(|| {
        CoreError::Internal(anyhow::anyhow!("tenant {} is on unknown plan {}", tenant.id, tenant.plan))
    })?;
    let limits = from_row(plan, ctx.config.max_payload_bytes)?;
    match tenant.settings.get("overrides") {
        Some(overrides) => apply_overrides(limits, overrides),
        None => Ok(limits),
    }
}

/// The plan a Stripe price puts a tenant on: the plan whose `stripe_price_id` it is (set with
/// `hookline plan price`), else `pro` for `HOOKLINE_STRIPE_PRO_PRICE` (the price Checkout sells);
/// `None` for a price no plan names.
pub async fn plan_for_price<C: ConnectionTrait>(
    ctx: &Context,
    conn: &C,
    price: &str,
) -> CoreResult<Option<String>> {
    let named = plans::Entity::find().filter(plans::Column::StripePriceId.eq(price)).one(conn).await?;
    if let Some(plan) = named {
        return Ok(Some(plan.name));
    }
    Ok((ctx.config.stripe_pro_price.as_deref() == Some(price)).then(|| "pro".to_owned()))
}

/// Names `price` as the Stripe price of `plan` (taking it from any other plan that had it).
pub async fn set_stripe_price(ctx: &Context, plan: &str, price: &str) -> CoreResult<()> {
    let price = price.trim();
    if price.is_empty() {
        return Err(CoreError::invalid(&["stripe_price"], "a Stripe price id such as price_1Q…"));
    }
    let txn = ctx.db.begin_write().await?;
    if plans::Entity::find_by_id(plan).one(&txn).await?.is_none() {
        return Err(CoreError::invalid(&["plan"], format!("no plan is named {plan}")));
    }
    plans::Entity::update_many()
        .col_expr(plans::Column::StripePriceId, Expr::value(Option::<String>::None))
        .filter(plans::Column::StripePriceId.eq(price))
        .exec(&txn)
        .await?;
    plans::Entity::update_many()
        .col_expr(plans::Column::StripePriceId, Expr::value(price))
        .filter(plans::Column::Name.eq(plan))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// `Forbidden` (`plan_limit_reached`) when the tenant already has as many applications as its
/// plan allows. Concurrent creations on PostgreSQL may overshoot by the requests in flight.
pub async fn require_room_for_application(ctx: &Context, tenant: &TenantId) -> CoreResult<()> {
    let limits = limits(ctx, tenant).await?;
    let have = count(ctx, crate::store::entities::applications::Entity::scoped(tenant)).await?;
    room(&limits, have, limits.max_applications, "applications")
}

/// `Forbidden` (`plan_limit_reached`) when the tenant already has as many endpoints (across its
/// applications) as its plan allows.
pub async fn require_room_for_endpoint(ctx: &Context, tenant: &TenantId) -> CoreResult<()> {
    let limits = limits(ctx, tenant).await?;
    let have = count(ctx, crate::store::entities::endpoints::Entity::scoped(tenant)).await?;
    room(&limits, have, limits.max_endpoints, "endpoints")
}

/// `Forbidden` unless the plan includes inbound sources (`plan_feature_missing`) and has room for
/// one more (`plan_limit_reached`).
pub async fn require_room_for_source(ctx: &Context, tenant: &TenantId) -> CoreResult<()> {
    let limits = limits(ctx, tenant).await?;
    limits.require_feature(FEATURE_INBOUND_SOURCES)?;
    let have = count(ctx, crate::store::entities::sources::Entity::scoped(tenant)).await?;
    room(&limits, have, limits.max_sources, "inbound sources")
}

/// Counts on the writer, so a count right after this process's own insert sees it.
async fn count<E: EntityTrait>(ctx: &Context, select: sea_orm::Select<E>) -> CoreResult<i64>
where
    E::Model: Sync,
{
    use sea_orm::PaginatorTrait;
    Ok(select.count(&ctx.db.writer).await? as i64)
}

fn room(limits: &Limits, have: i64, max: i64, what: &str) -> CoreResult<()> {
    if have < max {
        return Ok(());
    }
    Err(CoreError::Forbidden {
        code: "plan_limit_reached",
        detail: format!("the {} plan allows {max} {what}; delete one or upgrade", limits.plan),
    })
}

/// The delivery rate an endpoint gets: its own `rate_limit`, capped by its tenant's plan.
pub fn effective_rate(endpoint_rate: Option<i32>, plan_rate: Option<u32>) -> Option<u32> {
    let own = endpoint_rate.filter(|n| *n > 0).map(|n| n as u32);
    match (own, plan_rate) {
        (Some(own), Some(plan)) => Some(own.min(plan)),
        (own, plan) => own.or(plan),
    }
}

/// The plan's per-endpoint delivery rate of each tenant named (for the engine's loops).
pub async fn endpoint_rates(
    ctx: &Context,
    tenants: Vec<String>,
) -> CoreResult<std::collections::HashMap<String, Option<u32>>> {
    let mut rates = std::collections::HashMap::new();
    for tenant in tenants {
        if rates.contains_key(&tenant) {
            continue;
        }
        let id = TenantId::parse(&tenant).map_err(|err| CoreError::Internal(err.into()))?;
        let rate = match limits(ctx, &id).await {
            Ok(limits) => limits.endpoint_rate_limit,
            // A tenant deleted under the engine's feet: its endpoints go with it.
            Err(CoreError::NotFound(_)) => None,
            Err(err) => return Err(err),
        };
        rates.insert(tenant, rate);
    }
    Ok(rates)
}

/// The tenants whose plan (or overrides) include the dedicated queue. Reads every tenant: the
/// engine calls it every few seconds, not per delivery.
pub async fn dedicated_tenants(ctx: &Context) -> CoreResult<Vec<String>> {
    let plans: std::collections::HashMap<String, plans::Model> =
        plans::Entity::find().all(&ctx.db.conn).await?.into_iter().map(|p| (p.name.clone(), p)).collect();
    let mut dedicated = Vec::new();
    for tenant in tenants::Entity::find().all(&ctx.db.conn).await? {
        let Some(plan) = plans.get(&tenant.plan) else { continue };
        let limits = from_row(plan.clone(), ctx.config.max_payload_bytes)?;
        let limits = match tenant.settings.get("overrides") {
            Some(overrides) => apply_overrides(limits, overrides)?,
            None => limits,
        };
        if limits.has_feature(FEATURE_DEDICATED_QUEUE) {
            dedicated.push(tenant.id);
        }
    }
    dedicated.sort();
    Ok(dedicated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn free() -> Limits {
        Limits {
            plan: "free".to_owned(),
            monthly_messages: 10_000,
            overage_allowed: false,
            max_applications: 10,
            max_endpoints: 10,
            endpoint_rate_limit: Some(10),
            api_rate_per_second: 20,
            api_burst: 40,
            retention_days: 7,
            max_payload_bytes: 262_144,
            features: Vec::new(),
            max_sources: 1,
        }
    }

    #[test]
    fn overrides_replace_single_limits() {
        let limits = apply_overrides(
            free(),
            &json!({"monthly_messages": 5, "retention_days": 0, "endpoint_rate_limit": 0, "features": ["inbound_sources"]}),
        )
        .unwrap();
        assert_eq!(limits.monthly_messages, 5);
        assert_eq!(limits.retention_days, 0);
        assert_eq!(limits.endpoint_rate_limit, None, "0 lifts the limit");
        assert!(limits.has_feature(FEATURE_INBOUND_SOURCES));
        assert!(limits.require_feature(FEATURE_DEDICATED_QUEUE).is_err());
        assert_eq!(limits.max_endpoints, 10, "untouched");
        assert_eq!(apply_overrides(free(), &json!({})).unwrap(), free());
    }
}
