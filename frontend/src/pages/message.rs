//! One message: its payload, its delivery to each endpoint (with resend), and the timeline of
//! every attempt with the request and response. Shared with the consumer portal.

use hookline_types::{AttemptOut, DeliveryOut, EndpointOut, ListResponse, MessageOut, PayloadFetchOut};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_params_map;

use crate::{
    api::{self, ApiError},
    components::{Empty, ErrorBox, PageHeader, async_view, badge, fmt_bytes, fmt_opt_time, fmt_time, sleep},
    shell::use_scope,
};

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// JSON text indented for reading (shown as it came when it does not parse).
fn pretty_text(text: &str) -> String {
    serde_json::from_str(text).map(|value| pretty(&value)).unwrap_or_else(|_| text.to_owned())
}

#[component]
pub fn MessagePage() -> impl IntoView {
    let scope = use_scope();
    let params = use_params_map();
    let msg = params.read_untracked().get("msg").unwrap_or_default();
    let msg_path = scope.api(&format!("/msg/{}", api::encode(&msg)));
    // A plain link carries the dashboard's session cookie; the portal's token is not a cookie.
    let download = (!scope.portal).then(|| format!("/api/v1{msg_path}/payload"));
    let message = LocalResource::new({
        let path = msg_path.clone();
        move || {
            let path = path.clone();
            async move { api::get::<MessageOut>(&path).await }
        }
    });
    let deliveries = LocalResource::new({
        let path = format!("{msg_path}/delivery");
        move || {
            let path = path.clone();
            async move { api::get::<Vec<DeliveryOut>>(&path).await }
        }
    });
    let attempts = LocalResource::new({
        let path = format!("{msg_path}/attempt?limit=100");
        move || {
            let path = path.clone();
            async move { api::get::<ListResponse<AttemptOut>>(&path).await }
        }
    });
    // Thin deliveries' data_url fetches, shown under the attempts that sent those URLs.
    let fetches = LocalResource::new({
        let path = format!("{msg_path}/payload-fetch?limit=250");
        move || {
            let path = path.clone();
            async move { api::get::<ListResponse<PayloadFetchOut>>(&path).await }
        }
    });
    // Deliveries name endpoints by id; the URL is what people recognise.
    let endpoints = LocalResource::new({
        let path = scope.api("/endpoint?limit=250");
        move || {
            let path = path.clone();
            async move { api::get::<ListResponse<EndpointOut>>(&path).await }
        }
    });
    let endpoint_url = move |id: &str| {
        // Read in place: cloning the whole list for every row would copy it once per delivery.
        endpoints
            .with(|loaded| {
                let page = loaded.as_ref()?.as_ref().ok()?;
                page.data.iter().find(|ep| ep.id.as_str() == id).map(|ep| ep.url.clone())
            })
            .unwrap_or_else(|| id.to_owned())
    };
    let error = RwSignal::new(None::<ApiError>);
    let notice = RwSignal::new(None::<String>);
    let resend = move |endpoint: String| {
        let path = format!("{msg_path}/endpoint/{}/resend", api::encode(&endpoint));
        spawn_local(async move {
            match api::post::<_, DeliveryOut>(&path, &serde_json::json!({})).await {
                Ok(_) => {
                    error.set(None);
                    notice.set(Some("Resent: a new attempt is on its way.".into()));
                    for _ in 0..10 {
                        sleep(600).await;
                        if deliveries.is_disposed() {
                            break;
                        }
                        deliveries.refetch();
                        attempts.refetch();
                    }
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let writable = !scope.read_only;
    let scope_for_deliveries = scope.clone();
    view! {
        {async_view(message, move |m| view! {
            <PageHeader title=m.event_type.clone() subtitle=format!("{} · received {}", m.id, fmt_time(&m.created_at))/>
            <section class="card">
                <h2>"Payload"</h2>
                <dl class="facts">
                    <dt>"Event id"</dt><dd>{m.event_id.clone().unwrap_or_else(|| "—".into())}</dd>
                    <dt>"Channels"</dt><dd>{if m.channels.is_empty() { "—".to_owned() } else { m.channels.join(", ") }}</dd>
                    <dt>"Size"</dt>
                    <dd id="payload-size">
                        {fmt_bytes(m.payload_size)}
                        {(m.payload_in_object_store == Some(true)).then_some(" · stored in the object store")}
                        {m.payload.is_some().then(|| download.clone().map(|href| view! {
                            " · " <a id="download-payload" href=href download=format!("{}.json", m.id)>"Download"</a>
                        })).flatten()}
                    </dd>
                    {m.received_by.clone().map(|by| view! {
                        <dt>"Received by"</dt>
                        <dd id="received-by">
                            <a href=format!("/sources/{}#{}", by.source_id, by.request_id)>{by.source_name.clone()}</a>
                            " · request " <code>{by.request_id.to_string()}</code>
                        </dd>
                    })}
                </dl>
                {match &m.payload {
                    Some(payload) => view! { <pre class="code" id="payload">{pretty_text(payload.get())}</pre> }.into_any(),
                    None => view! { <p class="muted">"The payload has expired under the plan's retention (or was expunged); its metadata and attempts remain."</p> }.into_any(),
                }}
            </section>
        })}
        {move || notice.get().map(|text| view! { <div class="alert alert-info" role="status">{text}</div> })}
        {move || error.get().map(|error| view! { <ErrorBox error/> })}
        <section class="card">
            <h2>"Deliveries"</h2>
            {async_view(deliveries, move |list| {
                if list.is_empty() {
                    return view! {
                        <Empty title="No deliveries">"No enabled endpoint's filter matched this message when it arrived."</Empty>
                    }
                    .into_any();
                }
                let scope = scope_for_deliveries.clone();
                let resend = resend.clone();
                view! {
                    <table class="table compact" id="deliveries-table">
                        <thead><tr><th>"Endpoint"</th><th>"State"</th><th>"Attempts"</th><th>"Last status code"</th><th>"Last attempt"</th><th>"Next attempt"</th><th></th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|d| {
                                let endpoint = d.endpoint_id.to_string();
                                let resend = resend.clone();
                                view! {
                                    <tr class=format!("delivery-row delivery-{}", d.status)>
                                        <td class="url-cell"><a href=scope.link(&format!("/endpoints/{endpoint}"))>{let id = endpoint.clone(); move || endpoint_url(&id)}</a></td>
                                        <td>{badge(&d.status)}</td>
                                        <td>{d.attempt_count}</td>
                                        <td>{d.last_response_status_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into())}</td>
                                        <td>{fmt_opt_time(&d.last_attempt_at)}</td>
                                        <td>{fmt_opt_time(&d.next_attempt_at)}</td>
                                        <td>{writable.then(|| view! {
                                            <button type="button" class="btn btn-small resend" on:click=move |_| resend(endpoint.clone())>"Resend"</button>
                                        })}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }
                .into_any()
            })}
        </section>
        <section class="card">
            <h2>"Attempts"</h2>
            {async_view(attempts, move |page| {
                if page.data.is_empty() {
                    return view! { <Empty title="No attempts yet">"The first attempt is made within moments of the message arriving."</Empty> }.into_any();
                }
                view! {
                    <ol class="timeline" id="attempt-timeline">
                        {page.data.into_iter().map(|a| {
                            // The fetches of this endpoint's data_url made after this attempt
                            // (they load separately, so this follows them).
                            let (endpoint, after) = (a.endpoint_id.clone(), a.created_at);
                            let fetched = Signal::derive(move || {
                                fetches.with(|loaded| {
                                    loaded.as_ref().and_then(|r| r.as_ref().ok()).map(|page| {
                                        page.data
                                            .iter()
                                            .filter(|f| f.endpoint_id == endpoint && f.created_at >= after)
                                            .cloned()
                                            .collect::<Vec<_>>()
                                    })
                                })
                                .unwrap_or_default()
                            });
                            view! { <AttemptItem attempt=a fetched/> }
                        }).collect_view()}
                    </ol>
                }
                .into_any()
            })}
        </section>
    }
}

#[component]
fn AttemptItem(attempt: AttemptOut, fetched: Signal<Vec<PayloadFetchOut>>) -> impl IntoView {
    let thin = match attempt.payload_mode.as_str() {
        "thin" => Some("Thin body: the endpoint fetches the payload from its data_url."),
        "thin_after_413" => {
            Some("The endpoint answered 413 to the full payload; the thin body was sent at once.")
        }
        _ => None,
    };
    let code = attempt.response_status_code.map(|c| c.to_string()).unwrap_or_else(|| "no response".into());
    let summary = format!(
        "{} · {} · {} ms{}",
        fmt_time(&attempt.created_at),
        code,
        attempt.duration_ms,
        attempt.error_class.as_ref().map(|c| format!(" · {c} error")).unwrap_or_default()
    );
    view! {
        <li class=format!("timeline-item attempt-{}", attempt.status)>
            <details>
                <summary>
                    {badge(&attempt.status)}
                    {thin.is_some().then(|| view! { <span class="badge badge-info thin-badge">"thin"</span> })}
                    <span class="timeline-summary">{summary}</span>
                    <span class="muted">{format!("{} · {}", attempt.trigger, attempt.url)}</span>
                </summary>
                <div class="two-columns">
                    <div>
                        <h3>"Request headers"</h3>
                        <pre class="code">{pretty(&attempt.request_headers)}</pre>
                        {thin.map(|note| view! {
                            <h3>"Request body (thin)"</h3>
                            <p class="muted">{note}</p>
                            <pre class="code thin-body">{attempt.request_body.as_deref().map(pretty_text).unwrap_or_else(|| "(not sent)".into())}</pre>
                            <h3>"Payload fetches"</h3>
                            {move || {
                                let fetched = fetched.get();
                                if fetched.is_empty() {
                                    view! { <p class="muted payload-fetches">"Not fetched yet."</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table compact payload-fetches">
                                            <thead><tr><th>"When"</th><th>"Status"</th><th>"Bytes"</th><th>"From"</th></tr></thead>
                                            <tbody>
                                                {fetched.into_iter().map(|f| view! {
                                                    <tr class="payload-fetch">
                                                        <td>{fmt_time(&f.created_at)}</td>
                                                        <td>{f.status}</td>
                                                        <td>{f.bytes}</td>
                                                        <td>{format!("{} {}", f.ip.unwrap_or_default(), f.user_agent.unwrap_or_default())}</td>
                                                    </tr>
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    }.into_any()
                                }
                            }}
                        })}
                    </div>
                    <div>
                        <h3>"Response"</h3>
                        <pre class="code">{attempt.response_headers.as_ref().map(pretty).unwrap_or_else(|| "(no response headers)".into())}</pre>
                        <pre class="code">{attempt.response_body.clone().filter(|b| !b.is_empty()).unwrap_or_else(|| "(empty body)".into())}</pre>
                    </div>
                </div>
            </details>
        </li>
    }
}
