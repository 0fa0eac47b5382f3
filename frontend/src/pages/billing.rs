//! Usage against the plan's quota, the plan's limits, and Stripe: upgrade through Checkout,
//! manage payment through the billing portal.

use hookline_types::{BillingOut, BillingSessionIn, BillingSessionOut, UsageOut};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::{self, ApiError},
    charts::{BarChart, QuotaMeter, Series},
    components::{ErrorBox, PageHeader, async_view, badge, fmt_bytes, fmt_count, fmt_opt_time, rfc3339},
};

/// Opens a Stripe Checkout or billing-portal session and sends the browser there.
fn open_stripe(path: &'static str, error: RwSignal<Option<ApiError>>) {
    spawn_local(async move {
        match api::post::<_, BillingSessionOut>(path, &BillingSessionIn::default()).await {
            Ok(session) => {
                if let Some(window) = web_sys::window() {
                    let _ = window.location().set_href(&session.url);
                }
            }
            Err(err) => error.set(Some(err)),
        }
    });
}

#[component]
pub fn Billing() -> impl IntoView {
    let billing = LocalResource::new(|| api::get::<BillingOut>("/billing"));
    let error = RwSignal::new(None::<ApiError>);
    view! {
        <PageHeader title="Usage & billing".into() subtitle="What this month used, what your plan includes, and how you pay."/>
        {move || error.get().map(|error| view! { <ErrorBox error/> })}
        {async_view(billing, move |billing| {
            let quota = billing.quota.clone();
            let limits = quota.limits.clone();
            let from = rfc3339(quota.period_start);
            let usage = LocalResource::new(move || {
                let path = api::with_query("/usage", &[("granularity", "day".into()), ("from", from.clone())]);
                async move { api::get::<UsageOut>(&path).await }
            });
            let is_free = billing.plan == "free";
            let has_customer = billing.stripe_customer_id.is_some();
            view! {
                <div class="two-columns">
                    <section class="card" id="plan">
                        <div class="card-header">
                            <h2>"Plan"</h2>
                            {if billing.billing_state == "none" { badge("no subscription").into_any() } else { badge(&billing.billing_state).into_any() }}
                        </div>
                        <p class="plan-name">{billing.plan.clone()}</p>
                        {billing.grace_until.map(|until| view! {
                            <div class="alert alert-warn"><strong>"Payment failed"</strong>
                                <span>{format!("Update your payment method before {} to keep your plan.", fmt_opt_time(&Some(until)))}</span></div>
                        })}
                        {if !billing.enabled {
                            view! { <p class="muted">"Billing is not set up on this server (no Stripe key configured), so plans are changed by the operator."</p> }.into_any()
                        } else {
                            view! {
                                <div class="page-actions">
                                    {is_free.then(|| view! {
                                        <button type="button" class="btn btn-primary" id="upgrade" on:click=move |_| open_stripe("/billing/checkout", error)>"Upgrade to Pro"</button>
                                    })}
                                    {has_customer.then(|| view! {
                                        <button type="button" class="btn" id="billing-portal" on:click=move |_| open_stripe("/billing/portal", error)>"Manage billing"</button>
                                    })}
                                </div>
                            }.into_any()
                        }}
                    </section>
                    <section class="card" id="quota">
                        <h2>"This month"</h2>
                        <QuotaMeter used=quota.used limit=quota.monthly_messages label="Messages"/>
                        <p class="muted">
                            {format!("{} to {}", quota.period_start.format("%B %-d"), quota.period_end.format("%B %-d"))}
                            {if quota.overage_allowed { " · messages past the quota are billed as overage" } else { " · sending stops at the quota until the month ends" }}
                        </p>
                        {(quota.overage > 0).then(|| view! { <p><strong>{fmt_count(quota.overage)}</strong>" messages over the included amount."</p> })}
                    </section>
                </div>
                <section class="card">
                    {async_view(usage, |usage| {
                        let labels: Vec<String> = usage.data.iter().map(|b| b.start.format("%-d").to_string()).collect();
                        view! {
                            <BarChart title="Messages per day this month" labels
                                series=vec![Series { name: "messages", class: "series-main", values: usage.data.iter().map(|b| b.messages_accepted).collect() }]/>
                            <div class="stats-row">
                                <div class="stat"><div class="stat-label">"Delivery attempts"</div><div class="stat-value">{fmt_count(usage.totals.delivery_attempts)}</div></div>
                                <div class="stat"><div class="stat-label">"Payload volume"</div><div class="stat-value">{fmt_bytes(usage.totals.payload_bytes)}</div></div>
                                <div class="stat"><div class="stat-label">"Inbound requests"</div><div class="stat-value">{fmt_count(usage.totals.inbound_requests)}</div></div>
                                <div class="stat"><div class="stat-label">"Payload fetches"</div><div class="stat-value">{fmt_count(usage.totals.payload_fetches)}</div></div>
                            </div>
                        }
                    })}
                </section>
                <section class="card" id="limits">
                    <h2>"Plan limits"</h2>
                    <dl class="facts">
                        <dt>"Messages per month"</dt><dd>{fmt_count(limits.monthly_messages)}</dd>
                        <dt>"Applications"</dt><dd>{fmt_count(limits.max_applications)}</dd>
                        <dt>"Endpoints"</dt><dd>{fmt_count(limits.max_endpoints)}</dd>
                        <dt>"Deliveries per second per endpoint"</dt><dd>{limits.endpoint_rate_limit.map(|r| r.to_string()).unwrap_or_else(|| "no limit".into())}</dd>
                        <dt>"API requests"</dt><dd>{format!("{}/s, bursts of {}", limits.api_rate_per_second, limits.api_burst)}</dd>
                        <dt>"Log retention"</dt><dd>{format!("{} days", limits.retention_days)}</dd>
                        <dt>"Largest payload"</dt><dd>{format!("{} KiB", limits.max_payload_bytes / 1024)}</dd>
                    </dl>
                </section>
            }
        })}
    }
}
