//! The overview: the last 24 hours at a glance (messages, attempts, success rate, latency), the
//! endpoints that need attention, and this month's usage against the plan.

use chrono::Duration;
use hookline_types::{EndpointAlertOut, TenantStatsOut, UsageOut};
use leptos::prelude::*;

use crate::{
    api,
    charts::{BarChart, QuotaMeter, Series},
    components::{
        Empty, PageHeader, Stat, async_view, fmt_count, fmt_ms, fmt_opt_time, fmt_percent, now, rfc3339,
    },
};

fn hour_label(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.format("%H:00").to_string()
}

#[component]
pub fn Overview() -> impl IntoView {
    let stats = LocalResource::new(|| api::get::<TenantStatsOut>("/stats"));
    let usage = LocalResource::new(|| {
        let from = rfc3339(now() - Duration::hours(23));
        async move {
            api::get::<UsageOut>(&api::with_query(
                "/usage",
                &[("granularity", "hour".into()), ("from", from)],
            ))
            .await
        }
    });
    view! {
        <PageHeader title="Overview".into() subtitle="The last 24 hours across every application."/>
        {async_view(stats, |stats| {
            let day = stats.windows.iter().find(|w| w.window == "24h").cloned();
            let labels: Vec<String> = stats.hourly.iter().map(|b| hour_label(&b.start)).collect();
            let succeeded: Vec<u64> = stats.hourly.iter().map(|b| b.succeeded).collect();
            let failed: Vec<u64> = stats.hourly.iter().map(|b| b.failed).collect();
            view! {
                <div class="stats-row">
                    <Stat label="Delivery attempts" value=fmt_count(day.as_ref().map(|d| d.attempts).unwrap_or(0))/>
                    <Stat label="Success rate" value=fmt_percent(day.as_ref().and_then(|d| d.success_rate))
                        hint=format!("{} failed", fmt_count(day.as_ref().map(|d| d.failed).unwrap_or(0)))/>
                    <Stat label="Latency p50" value=fmt_ms(day.as_ref().and_then(|d| d.p50_ms)) hint="request to response"/>
                    <Stat label="Latency p95" value=fmt_ms(day.as_ref().and_then(|d| d.p95_ms))/>
                </div>
                <section class="card">
                    <BarChart title="Delivery attempts per hour" labels=labels
                        series=vec![
                            Series { name: "succeeded", class: "series-ok", values: succeeded },
                            Series { name: "failed", class: "series-bad", values: failed },
                        ]
                        label_every=3/>
                </section>
                <div class="two-columns">
                    <section class="card" id="failing-endpoints">
                        <h2>"Failing endpoints"</h2>
                        <AlertTable rows=stats.failing_endpoints failing=true/>
                    </section>
                    <section class="card" id="disabled-endpoints">
                        <h2>"Disabled endpoints"</h2>
                        <AlertTable rows=stats.disabled_endpoints failing=false/>
                    </section>
                </div>
            }
        })}
        {async_view(usage, |usage| {
            let labels: Vec<String> = usage.data.iter().map(|b| hour_label(&b.start)).collect();
            let messages: Vec<u64> = usage.data.iter().map(|b| b.messages_accepted).collect();
            view! {
                <section class="card">
                    <BarChart title="Messages accepted per hour" labels=labels
                        series=vec![Series { name: "messages", class: "series-main", values: messages }]
                        label_every=3/>
                </section>
                {usage.quota.map(|quota| view! {
                    <section class="card">
                        <div class="card-header">
                            <h2>"This month"</h2>
                            <a href="/billing">"Usage & billing →"</a>
                        </div>
                        <QuotaMeter used=quota.used limit=quota.monthly_messages label="Messages on your plan"/>
                        <p class="muted">
                            {format!("{} plan · resets {}", quota.plan, quota.period_end.format("%B %-d"))}
                            {(quota.overage > 0).then(|| format!(" · {} messages over the included amount", fmt_count(quota.overage)))}
                        </p>
                    </section>
                })}
            }
        })}
    }
}

#[component]
fn AlertTable(rows: Vec<EndpointAlertOut>, failing: bool) -> impl IntoView {
    if rows.is_empty() {
        let (title, body) = if failing {
            (
                "Nothing is failing",
                "Every endpoint answered its last attempt. Failing endpoints show up here first.",
            )
        } else {
            (
                "No disabled endpoints",
                "Endpoints that answer 410 or fail for days are disabled and listed here.",
            )
        };
        return view! { <Empty title=title>{body}</Empty> }.into_any();
    }
    view! {
        <table class="table compact">
            <thead>
                <tr>
                    <th>"Endpoint"</th>
                    {if failing { view! { <th>"Failures in a row"</th><th>"Failing since"</th> }.into_any() }
                     else { view! { <th>"Reason"</th> }.into_any() }}
                </tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|row| view! {
                    <tr>
                        <td class="url-cell"><a href=format!("/apps/{}/endpoints/{}", row.app_id, row.endpoint_id)>{row.url.clone()}</a></td>
                        {if failing {
                            view! {
                                <td>{row.consecutive_failures}
                                    {row.paused_reason.clone().map(|reason| view! { <div class="paused-reason muted">{format!("Paused: {reason}")}</div> })}
                                </td>
                                <td>{fmt_opt_time(&row.failing_since)}</td>
                            }.into_any()
                        } else {
                            view! { <td>{row.disabled_reason.clone().unwrap_or_else(|| "disabled by you".into())}</td> }.into_any()
                        }}
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
