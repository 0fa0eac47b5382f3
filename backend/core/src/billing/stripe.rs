//! Billing through Stripe (`async-stripe`): a Stripe customer per tenant, Checkout for the Pro
//! subscription, the customer portal, hourly overage reports to a billing meter, and Stripe's
//! webhooks. Without `HOOKLINE_STRIPE_SECRET_KEY` billing is off and the API says so.
//!
//! Requests are built with async-stripe's typed builders and their responses read as plain JSON
//! (only `id` and `url` are used), so a field Stripe adds or drops cannot break an upgrade.
//! Webhooks are verified here (HMAC-SHA256 of `"{t}.{body}"` with the endpoint secret, timestamp
//! within 5 minutes, as Stripe documents) and applied once each (`stripe_events`), in the order
//! Stripe created them per subscription (Stripe does not deliver in order): an event older than
//! the last one applied about its subscription is acknowledged, recorded and ignored. The
//! `created` time of that last one is kept in the tenant's settings
//! (`settings.stripe.subscription_events.<subscription id>`).
//!
//! Overage reports carry a deterministic identifier (`hl-{tenant}-{hour}`): a report retried
//! after a network error is deduplicated by Stripe, so it is never billed twice.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use hookline_types::{ApiKeyScope, BillingOut, BillingSessionIn, BillingSessionOut, TenantId};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set, sea_query::OnConflict,
};
use serde_json::Value;
use sha2::Sha256;
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};

use crate::{
    Context,
    billing::metering,
    billing::usage,
    error::{CoreError, CoreResult},
    store::entities::{stripe_events, tenants, usage_reports},
    tenancy::plans,
    tenancy::principal::Principal,
    tenancy::tenants as tenant_service,
};

/// How far a webhook's timestamp may be from now.
const TOLERANCE_SECONDS: i64 = 300;

fn disabled() -> CoreError {
    CoreError::conflict(
        "billing_disabled",
        "billing is not configured on this server (HOOKLINE_STRIPE_SECRET_KEY is unset)",
    )
}

/// A failed Stripe request: `502 billing_provider_error`. Stripe's own answer (which may name the
/// operator's misconfiguration, e.g. a wrong secret key) goes to the server log, not to the tenant.
fn stripe_failed(err: impl std::fmt::Display) -> CoreError {
    CoreError::Upstream {
        code: "billing_provider_error",
        detail: "the billing provider (Stripe) failed or refused the request; try again later, \
                 and tell the operator if it persists"
            .to_owned(),
        cause: format!("Stripe request failed: {err}"),
    }
}

/// The Stripe client, or `billing_disabled` without a secret key.
pub fn client(ctx: &Context) -> CoreResult<stripe::Client> {
    let key = ctx.config.stripe_secret_key.as_ref().ok_or_else(disabled)?;
    stripe::ClientBuilder::new(key.expose())
        .url(ctx.config.stripe_api_base.trim_end_matches('/').to_owned() + "/")
        .build()
        .map_err(stripe_failed)
}

/// Sends a typed request and reads the response as JSON.
async fn send(
    client: &stripe::Client,
    request: &impl StripeRequest,
    idempotency_key: Option<&str>,
) -> Result<Value, stripe::StripeError> {
    let mut request = request.build().customize::<miniserde::json::Value>();
    if let Some(key) = idempotency_key {
        let key =
            IdempotencyKey::new(key).map_err(|err| stripe::StripeError::ClientError(err.to_string()))?;
        request = request.request_strategy(RequestStrategy::Idempotent(key));
    }
    let value = request.send(client).await?;
    serde_json::from_str(&miniserde::json::to_string(&value))
        .map_err(|err| stripe::StripeError::ClientError(format!("unreadable Stripe response: {err}")))
}

fn field(value: &Value, name: &str) -> CoreResult<String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| CoreError::Internal(anyhow::anyhow!("Stripe's answer has no {name}: {value}")))
}

async fn tenant_row(ctx: &Context, tenant: &TenantId) -> CoreResult<tenants::Model> {
    tenants::Entity::find_by_id(tenant.as_str()).one(&ctx.db.conn).await?.ok_or(CoreError::NotFound("tenant"))
}

/// The tenant's Stripe customer, created the first time (idempotently: a retried creation
/// returns the same customer).
async fn ensure_customer(
    ctx: &Context,
    client: &stripe::Client,
    tenant: &tenants::Model,
) -> CoreResult<String> {
    if let Some(id) = &tenant.stripe_customer_id {
        return Ok(id.clone());
    }
    let mut request = stripe_core::customer::CreateCustomer::new()
        .name(tenant.name.clone())
        .metadata(HashMap::from([("hookline_tenant_id".to_owned(), tenant.id.clone())]));
    if let Some(email) = &tenant.email {
        request = request.email(email.clone());
    }
    let customer = send(client, &request, Some(&format!("hookline-customer-{}", tenant.id)))
        .await
        .map_err(stripe_failed)?;
    let id = field(&customer, "id")?;
    let mut active: tenants::ActiveModel = tenant.clone().into();
    active.stripe_customer_id = Set(Some(id.clone()));
    active.updated_at = Set(Utc::now());
    active.update(&ctx.db.writer).await?;
    Ok(id)
}

pub async fn get(ctx: &Context, principal: &Principal) -> CoreResult<BillingOut> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Read)?;
    let tenant = tenant_row(ctx, &principal.tenant_id).await?;
    Ok(BillingOut {
        enabled: ctx.config.stripe_secret_key.is_some(),
        plan: tenant.plan.clone(),
        billing_state: tenant.billing_state.clone(),
        stripe_customer_id: tenant.stripe_customer_id.clone(),
        stripe_subscription_id: tenant.stripe_subscription_id.clone(),
        grace_until: tenant.grace_until,
        quota: metering::quota(ctx, &principal.tenant_id).await?,
    })
}

/// A Stripe Checkout Session for the Pro subscription.
pub async fn checkout(
    ctx: &Context,
    principal: &Principal,
    input: BillingSessionIn,
) -> CoreResult<BillingSessionOut> {
    let client = session_client(ctx, principal)?;
    let price = ctx.config.stripe_pro_price.clone().ok_or_else(|| {
        CoreError::conflict("billing_disabled", "no Pro price is configured (HOOKLINE_STRIPE_PRO_PRICE)")
    })?;
    let (tenant, customer) = session_customer(ctx, principal, &client).await?;
    let back = return_url(ctx, input);
    let mut item = stripe_checkout::checkout_session::CreateCheckoutSessionLineItems::new();
    item.price = Some(price);
    item.quantity = Some(1);
    let request = stripe_checkout::checkout_session::CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .customer(customer)
        .client_reference_id(tenant.id.clone())
        .line_items(vec![item])
        .success_url(format!("{back}?checkout=success"))
        .cancel_url(format!("{back}?checkout=cancelled"));
    session_out(send(&client, &request, None).await.map_err(stripe_failed)?)
}

/// A Stripe customer-portal session (invoices, payment method, cancellation).
pub async fn portal(
    ctx: &Context,
    principal: &Principal,
    input: BillingSessionIn,
) -> CoreResult<BillingSessionOut> {
    let client = session_client(ctx, principal)?;
    let (_, customer) = session_customer(ctx, principal, &client).await?;
    let request = stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
        .customer(customer)
        .return_url(return_url(ctx, input));
    session_out(send(&client, &request, None).await.map_err(stripe_failed)?)
}

/// What Checkout and the billing portal both start with: an admin of the whole tenant (never a
/// portal token) and a configured Stripe client.
fn session_client(ctx: &Context, principal: &Principal) -> CoreResult<stripe::Client> {
    principal.require_tenant_wide("route")?;
    principal.require(ApiKeyScope::Admin)?;
    client(ctx)
}

/// The tenant and its Stripe customer (created once).
async fn session_customer(
    ctx: &Context,
    principal: &Principal,
    client: &stripe::Client,
) -> CoreResult<(tenants::Model, String)> {
    let tenant = tenant_row(ctx, &principal.tenant_id).await?;
    let customer = ensure_customer(ctx, client, &tenant).await?;
    Ok((tenant, customer))
}

/// Where Stripe sends the user back: the caller's URL or the dashboard's billing page.
fn return_url(ctx: &Context, input: BillingSessionIn) -> String {
    input.return_url.unwrap_or_else(|| format!("{}/billing", ctx.config.public_url))
}

fn session_out(session: serde_json::Value) -> CoreResult<BillingSessionOut> {
    Ok(BillingSessionOut { id: field(&session, "id")?, url: field(&session, "url")? })
}

// ----- webhooks -----------------------------------------------------------------------------------

/// Checks a `Stripe-Signature` header (`t=…,v1=…[,v1=…]`) against the body.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let mut timestamp: Option<i64> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", v1)) => signatures.push(v1),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("the Stripe-Signature header has no timestamp")?;
    if (now.timestamp() - timestamp).abs() > TOLERANCE_SECONDS {
        return Err("the signature's timestamp is outside the 5-minute tolerance");
    }
    let valid = signatures.iter().any(|v1| {
        let Ok(expected) = hex::decode(v1) else { return false };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    });
    if valid { Ok(()) } else { Err("no signature matches") }
}

/// `POST /stripe/webhook`: verifies, then applies the event once.
pub async fn webhook(ctx: &Context, signature: Option<&str>, body: &[u8]) -> CoreResult<()> {
    let secret = ctx.config.stripe_webhook_secret.as_ref().ok_or_else(|| {
        CoreError::conflict(
            "billing_disabled",
            "Stripe webhooks are not configured on this server (HOOKLINE_STRIPE_WEBHOOK_SECRET is unset)",
        )
    })?;
    let signature = signature.ok_or(CoreError::Unauthenticated("the Stripe-Signature header is missing"))?;
    verify_signature(secret.expose(), signature, body, Utc::now()).map_err(CoreError::Unauthenticated)?;
    let event: Value = serde_json::from_slice(body)
        .map_err(|err| CoreError::invalid(&["body"], format!("not a Stripe event: {err}")))?;
    let id = field(&event, "id").map_err(|_| CoreError::invalid(&["body", "id"], "missing"))?;
    let kind = field(&event, "type").map_err(|_| CoreError::invalid(&["body", "type"], "missing"))?;
    let object = event.pointer("/data/object").cloned().unwrap_or(Value::Null);

    let txn = ctx.db.begin_write().await?;
    let inserted = stripe_events::Entity::insert(stripe_events::ActiveModel {
        id: Set(id.clone()),
        event_type: Set(kind.clone()),
        received_at: Set(Utc::now()),
    })
    .on_conflict(OnConflict::column(stripe_events::Column::Id).do_nothing().to_owned())
    .exec_without_returning(&txn)
    .await?;
    if inserted == 0 {
        // Stripe delivers at least once: this event was applied already.
        txn.rollback().await?;
        return Ok(());
    }
    let str_of = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    // Locked (PostgreSQL; SQLite's write transaction already excludes other writers) so that two
    // events of one tenant applied at once are still checked against each other's order.
    let tenant = match kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            match str_of("client_reference_id") {
                Some(tenant_id) => {
                    tenants::Entity::find_by_id(tenant_id.as_str()).lock_exclusive().one(&txn).await?
                }
                None => None,
            }
        }
        _ => match str_of("customer") {
            Some(customer) => {
                tenants::Entity::find()
                    .filter(tenants::Column::StripeCustomerId.eq(customer))
                    .lock_exclusive()
                    .one(&txn)
                    .await?
            }
            None => None,
        },
    };
    let Some(tenant) = tenant else {
        tracing::info!(event = %id, kind = %kind, "Stripe event for no known tenant; recorded and ignored");
        txn.commit().await?;
        return Ok(());
    };
    // The subscription the event is about, and whether a newer event about it was applied.
    let created = event.get("created").and_then(Value::as_i64);
    let subscription = event_subscription(&kind, &object).or_else(|| tenant.stripe_subscription_id.clone());
    let last_applied = subscription.as_deref().and_then(|s| last_applied_event(&tenant.settings, s));
    if APPLIED_EVENTS.contains(&kind.as_str())
        && let (Some(created), Some(last_applied)) = (created, last_applied)
        && created < last_applied
    {
        tracing::info!(event = %id, kind = %kind, tenant = %tenant.id, created, last_applied, "Stripe event older than one already applied to its subscription; recorded and ignored");
        txn.commit().await?;
        return Ok(());
    }
    let now = Utc::now();
    let tenant_id = tenant.id.clone();
    let mut active: tenants::ActiveModel = tenant.clone().into();
    // The plan the event's price stands for. Checkout sells HOOKLINE_STRIPE_PRO_PRICE (a
    // session's line items are not in its event); subscriptions and invoices name their prices.
    let mut prices = event_prices(&object);
    if kind.starts_with("checkout.session.")
        && prices.is_empty()
        && let Some(price) = &ctx.config.stripe_pro_price
    {
        prices.push(price.clone());
    }
    let mut price_plan = None;
    for price in &prices {
        if let Some(plan) = plans::plan_for_price(ctx, &txn, price).await? {
            price_plan = Some(plan);
            break;
        }
    }
    if price_plan.is_none() && !prices.is_empty() {
        tracing::warn!(event = %id, kind = %kind, tenant = %tenant.id, ?prices, "no plan names this Stripe price (hookline plan price); the plan is left as it is");
    }
    // Paid: the plan follows the price; without a known price the tenant keeps its plan (an
    // enterprise tenant's invoice never demotes it).
    let paid = |active: &mut tenants::ActiveModel| {
        if let Some(plan) = &price_plan {
            active.plan = Set(plan.clone());
        }
        active.billing_state = Set("active".to_owned());
        active.grace_until = Set(None);
    };
    let downgrade = |active: &mut tenants::ActiveModel| {
        active.plan = Set(tenant_service::DEFAULT_PLAN.to_owned());
        active.billing_state = Set("canceled".to_owned());
        active.grace_until = Set(None);
        active.stripe_subscription_id = Set(None);
    };
    match kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            // Completed is not paid: with a delayed payment method (a bank debit) the session
            // completes `unpaid`, and Pro waits for `async_payment_succeeded` (or the
            // subscription's and invoices' own events, which know the subscription id set here).
            let paid_now = kind == "checkout.session.async_payment_succeeded"
                || matches!(str_of("payment_status").as_deref(), Some("paid" | "no_payment_required"));
            if paid_now {
                paid(&mut active);
            }
            if let Some(customer) = str_of("customer") {
                active.stripe_customer_id = Set(Some(customer));
            }
            active.stripe_subscription_id = Set(str_of("subscription"));
        }
        "customer.subscription.created" | "customer.subscription.updated" => {
            active.stripe_subscription_id = Set(str_of("id"));
            match str_of("status").as_deref() {
                Some("active" | "trialing") => paid(&mut active),
                Some("past_due" | "unpaid") => {
                    active.billing_state = Set("past_due".to_owned());
                    if tenant.grace_until.is_none() {
                        active.grace_until = Set(Some(now + grace(ctx)));
                    }
                }
                Some("canceled" | "incomplete_expired") => downgrade(&mut active),
                _ => {}
            }
        }
        "customer.subscription.deleted" => downgrade(&mut active),
        "invoice.paid" => {
            // Only for a tenant with a subscription or a paid plan: a cancelled tenant's final
            // invoice (its lines still name the old price) must not bring the plan back.
            if tenant.stripe_subscription_id.is_some() || tenant.plan != tenant_service::DEFAULT_PLAN {
                paid(&mut active);
            }
        }
        "invoice.payment_failed" => {
            active.billing_state = Set("past_due".to_owned());
            if tenant.grace_until.is_none() {
                active.grace_until = Set(Some(now + grace(ctx)));
            }
        }
        _ => {
            txn.commit().await?;
            return Ok(());
        }
    }
    if let (Some(subscription), Some(created)) = (&subscription, created) {
        active.settings = Set(with_applied_event(tenant.settings.clone(), subscription, created));
    }
    active.updated_at = Set(now);
    active.update(&txn).await?;
    txn.commit().await?;
    plans::forget(ctx, &tenant_id);
    Ok(())
}

/// The events [`webhook`] applies to a tenant; any other is recorded and ignored.
const APPLIED_EVENTS: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
];

/// The Stripe prices an event's object is for: a subscription's items, an invoice's lines
/// (`price` before API version 2025-03-31, `pricing.price_details.price` since), in order.
fn event_prices(object: &Value) -> Vec<String> {
    let mut prices: Vec<String> = Vec::new();
    for list in ["/items/data", "/lines/data"] {
        let Some(items) = object.pointer(list).and_then(Value::as_array) else { continue };
        for item in items {
            let price = match item.get("price") {
                Some(Value::String(id)) => Some(id.as_str()),
                Some(price) => price.get("id").and_then(Value::as_str),
                None => None,
            }
            .or_else(|| item.pointer("/pricing/price_details/price").and_then(Value::as_str));
            if let Some(price) = price
                && !prices.iter().any(|p| p == price)
            {
                prices.push(price.to_owned());
            }
        }
    }
    prices
}

/// The subscription an event names: a subscription's own id, a Checkout Session's subscription,
/// or an invoice's (top-level before API version 2025-03-31, under `parent` since).
fn event_subscription(kind: &str, object: &Value) -> Option<String> {
    let at = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
    if kind.starts_with("customer.subscription.") {
        at("/id")
    } else if kind.starts_with("invoice.") {
        at("/subscription").or_else(|| at("/parent/subscription_details/subscription"))
    } else {
        at("/subscription")
    }
}

/// The `created` time of the last event applied about `subscription`.
fn last_applied_event(settings: &Value, subscription: &str) -> Option<i64> {
    settings.get("stripe")?.get("subscription_events")?.get(subscription)?.as_i64()
}

/// `settings` with `created` remembered as the last event applied about `subscription` (never
/// moved back).
fn with_applied_event(mut settings: Value, subscription: &str, created: i64) -> Value {
    if !settings.is_object() {
        settings = serde_json::json!({});
    }
    let latest = last_applied_event(&settings, subscription).map_or(created, |last| last.max(created));
    if !settings["stripe"].is_object() {
        settings["stripe"] = serde_json::json!({});
    }
    if !settings["stripe"]["subscription_events"].is_object() {
        settings["stripe"]["subscription_events"] = serde_json::json!({});
    }
    settings["stripe"]["subscription_events"][subscription] = latest.into();
    settings
}

fn grace(ctx: &Context) -> Duration {
    Duration::seconds(ctx.config.billing_grace_seconds as i64)
}

/// Tenants whose grace period after a failed payment has run out go back to the free plan.
pub async fn downgrade_expired(ctx: &Context) -> CoreResult<u64> {
    let now = Utc::now();
    let expired = tenants::Entity::find()
        .filter(tenants::Column::BillingState.eq("past_due"))
        .filter(tenants::Column::GraceUntil.lt(now))
        .all(&ctx.db.conn)
        .await?;
    let mut n = 0;
    for tenant in expired {
        let id = tenant.id.clone();
        let mut active: tenants::ActiveModel = tenant.into();
        active.plan = Set(tenant_service::DEFAULT_PLAN.to_owned());
        active.billing_state = Set("canceled".to_owned());
        active.grace_until = Set(None);
        active.updated_at = Set(now);
        active.update(&ctx.db.writer).await?;
        plans::forget(ctx, &id);
        tracing::info!(tenant = %id, "grace period over: back on the free plan");
        n += 1;
    }
    Ok(n)
}

// ----- overage reports ------------------------------------------------------------------------------

/// The identifier an hour of a tenant's overage is reported under: the same on every retry.
pub fn report_identifier(tenant: &str, hour: DateTime<Utc>) -> String {
    format!("hl-{tenant}-{}", hour.timestamp())
}

/// How far back Stripe accepts a meter event's timestamp (its documented limit is 35 days).
const STRIPE_METER_LOOKBACK: TimeDelta = TimeDelta::days(35);

/// One finished hour's overage: the messages of that hour past its month's inclusion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HourOverage {
    hour: DateTime<Utc>,
    overage: i64,
}

/// The overage of every hour in `hours` (messages per finished hour, any order, possibly
/// spanning several months): each calendar month counts from zero against `included`.
fn overage_by_hour(mut hours: Vec<(DateTime<Utc>, i64)>, included: i64) -> Vec<HourOverage> {
    hours.sort_by_key(|(hour, _)| *hour);
    let mut out = Vec::with_capacity(hours.len());
    let mut month = None;
    let mut used_before = 0i64;
    for (hour, messages) in hours {
        let this_month = usage::month_start(hour);
        if month != Some(this_month) {
            month = Some(this_month);
            used_before = 0;
        }
        let over_before = (used_before - included).max(0);
        used_before += messages;
        out.push(HourOverage { hour, overage: (used_before - included).max(0) - over_before });
    }
    out
}

/// Reports every finished hour not yet reported, for each paid tenant with a Stripe customer: the
/// messages of that hour past the plan's monthly inclusion. The window is the previous calendar
/// month and this one, so the last hours of a month and any hour a Stripe outage left
/// unreported across the rollover are billed after it (hours older than Stripe's 35-day limit
/// for meter events are not sent). Returns how many hours were reported. A failed report stops
/// that tenant's run; the next run sends the same identifier again.
pub async fn report_usage(ctx: &Context) -> CoreResult<u64> {
    if ctx.config.stripe_secret_key.is_none() {
        return Ok(0);
    }
    let client = client(ctx)?;
    let now = Utc::now();
    let current_hour = now.duration_trunc(TimeDelta::hours(1)).expect("an hour divides UTC time");
    let window = usage::month_start(usage::month_start(now) - TimeDelta::days(1));
    let oldest_sendable = now - STRIPE_METER_LOOKBACK;
    let customers = tenants::Entity::find()
        .filter(tenants::Column::StripeCustomerId.is_not_null())
        .all(&ctx.db.conn)
        .await?;
    let mut reported = 0;
    for tenant in customers {
        let tenant_id = TenantId::parse(&tenant.id).map_err(|err| CoreError::Internal(err.into()))?;
        let limits = plans::limits(ctx, &tenant_id).await?;
        if !limits.overage_allowed {
            continue;
        }
        let customer = tenant.stripe_customer_id.clone().expect("filtered");
        let done: Vec<DateTime<Utc>> = usage_reports::Entity::find()
            .filter(usage_reports::Column::TenantId.eq(tenant.id.as_str()))
            .filter(usage_reports::Column::HourStart.gte(window))
            .all(&ctx.db.conn)
            .await?
            .into_iter()
            .map(|r| r.hour_start)
            .collect();
        // The finished hours of the window with messages.
        let hours: Vec<(DateTime<Utc>, i64)> =
            usage::buckets(&ctx.db.conn, &tenant_id, None, window, current_hour, usage::Granularity::Hour)
                .await?
                .into_iter()
                .filter(|b| b.messages_accepted > 0)
                .map(|b| (b.start, b.messages_accepted as i64))
                .collect();
        for HourOverage { hour, overage } in overage_by_hour(hours, limits.monthly_messages) {
            if done.contains(&hour) || hour < oldest_sendable {
                continue;
            }
            let identifier = report_identifier(&tenant.id, hour);
            if overage > 0 {
                let request = stripe_billing::billing_meter_event::CreateBillingMeterEvent::new(
                    ctx.config.stripe_meter_event.clone(),
                    HashMap::from([
                        ("stripe_customer_id".to_owned(), customer.clone()),
                        ("value".to_owned(), overage.to_string()),
                    ]),
                )
                .identifier(identifier.clone())
                .timestamp(hour.timestamp());
                match send(&client, &request, None).await {
                    Ok(_) => {}
                    // Stripe keeps identifiers for 24 hours: a repeat means it has this report.
                    Err(stripe::StripeError::Stripe(err, _))
                        if err.message.as_deref().is_some_and(|m| m.contains("identifier")) => {}
                    Err(err) => {
                        tracing::warn!(tenant = %tenant.id, %identifier, error = %err, "overage report failed; retried next run");
                        break;
                    }
                }
            }
            usage_reports::Entity::insert(usage_reports::ActiveModel {
                tenant_id: Set(tenant.id.clone()),
                hour_start: Set(hour),
                identifier: Set(identifier),
                quantity: Set(overage),
                reported_at: Set(Utc::now()),
            })
            .on_conflict(
                OnConflict::columns([usage_reports::Column::TenantId, usage_reports::Column::HourStart])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&ctx.db.writer)
            .await?;
            reported += 1;
        }
    }
    Ok(reported)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn each_month_counts_its_overage_from_zero_across_the_rollover() {
        // Two included per month; the hours come in any order.
        let hours = vec![
            (at("2026-12-01T00:00:00Z"), 3),
            (at("2026-11-30T22:00:00Z"), 1),
            (at("2026-11-30T23:00:00Z"), 5),
            (at("2026-12-01T01:00:00Z"), 4),
        ];
        let overage: Vec<(String, i64)> =
            overage_by_hour(hours, 2).into_iter().map(|h| (h.hour.to_rfc3339(), h.overage)).collect();
        assert_eq!(
            overage,
            [
                ("2026-11-30T22:00:00+00:00".to_owned(), 0),
                ("2026-11-30T23:00:00+00:00".to_owned(), 4),
                ("2026-12-01T00:00:00+00:00".to_owned(), 1),
                ("2026-12-01T01:00:00+00:00".to_owned(), 4),
            ]
        );
    }

    #[test]
    fn prices_come_from_subscription_items_and_invoice_lines_of_either_api_version() {
        let subscription = json!({"items": {"data": [{"price": {"id": "price_a"}}, {"price": "price_b"}]}});
        assert_eq!(event_prices(&subscription), ["price_a", "price_b"]);
        let old_invoice =
            json!({"lines": {"data": [{"price": {"id": "price_a"}}, {"price": {"id": "price_a"}}]}});
        assert_eq!(event_prices(&old_invoice), ["price_a"]);
        let new_invoice = json!({"lines": {"data": [{"pricing": {"price_details": {"price": "price_c"}}}]}});
        assert_eq!(event_prices(&new_invoice), ["price_c"]);
        assert!(event_prices(&json!({"id": "in_1"})).is_empty());
    }

    #[test]
    fn events_name_their_subscription_wherever_their_api_version_puts_it() {
        fn check(kind: &str, object: Value, expected: Option<&str>) {
            assert_eq!(event_subscription(kind, &object).as_deref(), expected, "{kind} {object}");
        }
        check("customer.subscription.deleted", json!({"id": "sub_1", "customer": "cus_1"}), Some("sub_1"));
        check("checkout.session.completed", json!({"id": "cs_1", "subscription": "sub_1"}), Some("sub_1"));
        check("checkout.session.completed", json!({"id": "cs_1"}), None);
        check("invoice.paid", json!({"id": "in_1", "subscription": "sub_1"}), Some("sub_1"));
        check(
            "invoice.payment_failed",
            json!({"id": "in_1", "parent": {"subscription_details": {"subscription": "sub_1"}}}),
            Some("sub_1"),
        );
        check("invoice.paid", json!({"id": "in_1"}), None);
    }

    #[test]
    fn the_last_applied_event_only_moves_forward_and_keeps_the_other_settings() {
        let settings = with_applied_event(json!({"overrides": {"monthly_messages": 2}}), "sub_1", 100);
        let settings = with_applied_event(settings, "sub_1", 90);
        let settings = with_applied_event(settings, "sub_2", 50);
        assert_eq!(
            settings,
            json!({"overrides": {"monthly_messages": 2}, "stripe": {"subscription_events": {"sub_1": 100, "sub_2": 50}}})
        );
        assert_eq!(last_applied_event(&settings, "sub_1"), Some(100));
        assert_eq!(last_applied_event(&settings, "sub_3"), None);
        assert_eq!(
            with_applied_event(Value::Null, "sub_1", 7),
            json!({"stripe": {"subscription_events": {"sub_1": 7}}})
        );
        assert_eq!(
            with_applied_event(json!({"stripe": "junk"}), "sub_1", 7),
            json!({"stripe": {"subscription_events": {"sub_1": 7}}})
        );
    }
}
