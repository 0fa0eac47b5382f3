//! Payload fetches: who fetched the application's thin deliveries' payloads from their
//! `data_url`, when, and how much, newest first, by endpoint.

use hookline_types::{EndpointOut, ListResponse, PayloadFetchOut};
use leptos::prelude::*;

use crate::{
    api,
    components::{Empty, PageHeader, async_view, fmt_bytes, fmt_time},
    shell::use_scope,
};

#[component]
pub fn PayloadFetches() -> impl IntoView {
    let scope = use_scope();
    let endpoints_path = scope.api("/endpoint?limit=250");
    let endpoints = LocalResource::new(move || {
        let path = endpoints_path.clone();
        async move { api::get::<ListResponse<EndpointOut>>(&path).await }
    });
    let endpoint = RwSignal::new(String::new());
    let fetches_path = scope.api("/payload-fetch?limit=100");
    let fetches = LocalResource::new(move || {
        let endpoint = endpoint.get();
        let mut path = fetches_path.clone();
        if !endpoint.is_empty() {
            path.push_str(&format!("&endpoint={}", api::encode(&endpoint)));
        }
        async move { api::get::<ListResponse<PayloadFetchOut>>(&path).await }
    });
    let message_link = {
        let scope = scope.clone();
        move |id: &str| scope.link(&format!("/msg/{id}"))
    };
    view! {
        <PageHeader title="Payload fetches".into()
            subtitle="Thin deliveries send a signed data_url instead of the payload; each fetch of one is logged here."/>
        <section class="card">
            <div class="form form-inline">
                <label>"Endpoint"
                    <select name="fetch-endpoint" on:change=move |ev| endpoint.set(event_target_value(&ev))>
                        <option value="">"All endpoints"</option>
                        {move || endpoints.get().and_then(|r| r.ok()).map(|page| {
                            page.data.into_iter().map(|ep| view! {
                                <option value=ep.id.to_string()>{ep.url.clone()}</option>
                            }).collect_view()
                        })}
                    </select>
                </label>
            </div>
            {async_view(fetches, move |page| {
                if page.data.is_empty() {
                    return view! {
                        <Empty title="No fetches yet">
                            "Set an endpoint's payload to Thin or Auto: its deliveries then carry a data_url, and each fetch of it appears here."
                        </Empty>
                    }
                    .into_any();
                }
                let message_link = message_link.clone();
                view! {
                    <table class="table compact" id="fetches-table">
                        <thead><tr><th>"When"</th><th>"Message"</th><th>"Endpoint"</th><th>"Status"</th><th>"Bytes"</th><th>"From"</th></tr></thead>
                        <tbody>
                            {page.data.into_iter().map(|f| {
                                let message = f.message_id.to_string();
                                view! {
                                    <tr class="payload-fetch">
                                        <td>{fmt_time(&f.created_at)}</td>
                                        <td><a href=message_link(&message)><code>{message.clone()}</code></a></td>
                                        <td><code>{f.endpoint_id.to_string()}</code></td>
                                        <td>{f.status}</td>
                                        <td>{fmt_bytes(f.bytes)}</td>
                                        <td>{format!("{} {}", f.ip.unwrap_or_default(), f.user_agent.unwrap_or_default())}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }
                .into_any()
            })}
        </section>
    }
}
