//! Logs: message search (status, event type, endpoint, time range, payload text, event id) and
//! attempt search (outcome, status-code class, endpoint), both with cursor paging, newest first.
//! Shared with the consumer portal.

use chrono::Duration;
use hookline_types::{ApplicationOut, AttemptOut, EndpointOut, ListResponse, MessageOut};
use leptos::prelude::*;

use crate::{
    api::{self, ApiResult},
    components::{Empty, PageHeader, async_view, fmt_time, now, rfc3339, split_list},
    pages::endpoint::AttemptTable,
    shell::use_scope,
};

const PAGE: &str = "25";

/// `/logs`: pick the application whose logs to search.
#[component]
pub fn LogsIndex() -> impl IntoView {
    let apps = LocalResource::new(|| api::get::<ListResponse<ApplicationOut>>("/app?limit=100"));
    view! {
        <PageHeader title="Logs".into() subtitle="Messages and delivery attempts are kept per application. Pick one."/>
        <section class="card">
            {async_view(apps, |page| {
                if page.data.is_empty() {
                    return view! {
                        <Empty title="No applications yet">
                            "Logs appear once an application has messages. " <a href="/apps">"Create an application"</a> " first."
                        </Empty>
                    }
                    .into_any();
                }
                view! {
                    <ul class="pick-list">
                        {page.data.into_iter().map(|app| view! {
                            <li><a href=format!("/apps/{}/logs", app.id)><strong>{app.name.clone()}</strong> <code>{app.id.to_string()}</code></a></li>
                        }).collect_view()}
                    </ul>
                }
                .into_any()
            })}
        </section>
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct MessageFilters {
    status: String,
    event_types: String,
    endpoint: String,
    hours: String,
    q: String,
    event_id: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct AttemptFilters {
    status: String,
    class: String,
    endpoint: String,
    hours: String,
}

fn since(hours: &str) -> String {
    hours.parse::<i64>().map(|h| rfc3339(now() - Duration::hours(h))).unwrap_or_default()
}

/// Cursor paging: the cursors of the pages before the current one, and the current one.
#[derive(Clone, Debug, Default, PartialEq)]
struct Pager {
    previous: Vec<Option<String>>,
    current: Option<String>,
}

/// A search form's state: the filters being edited, the ones applied, and the page shown.
struct Search<F: Send + Sync + 'static> {
    draft: RwSignal<F>,
    applied: RwSignal<F>,
    pager: RwSignal<Pager>,
}

impl<F: Send + Sync + 'static> Clone for Search<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Send + Sync + 'static> Copy for Search<F> {}

impl<F: Clone + Default + Send + Sync + 'static> Search<F> {
    fn new() -> Self {
        Search {
            draft: RwSignal::new(F::default()),
            applied: RwSignal::new(F::default()),
            pager: RwSignal::default(),
        }
    }

    /// The applied filters and the page's cursor (tracked: a resource reading them refetches).
    fn query(self) -> (F, String) {
        (self.applied.get(), self.pager.with(|p| p.current.clone()).unwrap_or_default())
    }

    /// Applies the edited filters from the first page.
    fn apply(self) {
        self.pager.set(Pager::default());
        self.applied.set(self.draft.get_untracked());
    }

    /// An input or change handler that writes one field of the edited filters.
    fn field(self, update: fn(&mut F, String)) -> impl Fn(leptos::ev::Event) + Clone + 'static {
        move |ev| self.draft.update(|d| update(d, event_target_value(&ev)))
    }
}

#[component]
fn PagerButtons(pager: RwSignal<Pager>, next: Option<String>, done: bool) -> impl IntoView {
    let has_previous = pager.with_untracked(|p| !p.previous.is_empty());
    view! {
        <div class="pager">
            <button type="button" class="btn btn-small" disabled=!has_previous
                on:click=move |_| pager.update(|p| { p.current = p.previous.pop().flatten(); })>"← Newer"</button>
            <button type="button" class="btn btn-small" id="next-page" disabled=done || next.is_none()
                on:click=move |_| { let next = next.clone(); pager.update(|p| { let current = p.current.take(); p.previous.push(current); p.current = next; }) }>"Older →"</button>
        </div>
    }
}

#[component]
pub fn Logs() -> impl IntoView {
    let scope = use_scope();
    let tab = RwSignal::new("messages");
    let endpoints_path = scope.api("/endpoint?limit=250");
    let endpoints = LocalResource::new(move || {
        let path = endpoints_path.clone();
        async move { api::get::<ListResponse<EndpointOut>>(&path).await }
    });
    let title = if scope.portal { "Logs" } else { "Application logs" };
    view! {
        <PageHeader title=title.into() subtitle=scope.app.clone()>
            {(!scope.portal).then(|| view! { <a class="btn" href=scope.link("")>"Endpoints"</a> })}
        </PageHeader>
        <div class="tabs" role="tablist">
            <button type="button" role="tab" class="tab" aria-selected=move || (tab.get() == "messages").to_string() on:click=move |_| tab.set("messages")>"Messages"</button>
            <button type="button" role="tab" class="tab" id="attempts-tab" aria-selected=move || (tab.get() == "attempts").to_string() on:click=move |_| tab.set("attempts")>"Attempts"</button>
        </div>
        {move || if tab.get() == "messages" { view! { <MessageSearch endpoints/> }.into_any() } else { view! { <AttemptSearch endpoints/> }.into_any() }}
    }
}

fn endpoint_options(endpoints: LocalResource<ApiResult<ListResponse<EndpointOut>>>) -> impl IntoView {
    move || {
        endpoints
            .get()
            .and_then(Result::ok)
            .map(|page| page.data)
            .unwrap_or_default()
            .into_iter()
            .map(|ep| view! { <option value=ep.id.to_string()>{ep.url.clone()}</option> })
            .collect_view()
    }
}

fn time_options() -> impl IntoView {
    view! {
        <option value="">"Last 30 days"</option>
        <option value="1">"Last hour"</option>
        <option value="24">"Last 24 hours"</option>
        <option value="168">"Last 7 days"</option>
    }
}

#[component]
fn MessageSearch(endpoints: LocalResource<ApiResult<ListResponse<EndpointOut>>>) -> impl IntoView {
    let scope = use_scope();
    let search = Search::<MessageFilters>::new();
    let pager = search.pager;
    let list_path = scope.api("/msg");
    let messages = LocalResource::new(move || {
        let (filters, cursor) = search.query();
        let mut pairs = vec![("limit", PAGE.to_owned()), ("iterator", cursor)];
        pairs.push(("status", filters.status.clone()));
        for event_type in split_list(&filters.event_types).unwrap_or_default() {
            pairs.push(("event_type", event_type));
        }
        pairs.push(("endpoint", filters.endpoint.clone()));
        pairs.push(("after", since(&filters.hours)));
        pairs.push(("q", filters.q.trim().to_owned()));
        pairs.push(("event_id", filters.event_id.trim().to_owned()));
        let path = api::with_query(&list_path, &pairs);
        async move { api::get::<ListResponse<MessageOut>>(&path).await }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        search.apply();
        messages.refetch();
    };
    let field = move |update: fn(&mut MessageFilters, String)| search.field(update);
    view! {
        <form class="filters" id="message-filters" on:submit=submit>
            <label>"Payload contains"<input type="search" name="q" placeholder="words in the payload" on:input=field(|d, v| d.q = v)/></label>
            <label>"Status"
                <select name="status" on:change=field(|d, v| d.status = v)>
                    <option value="">"Any"</option>
                    <option value="pending">"Pending"</option>
                    <option value="succeeded">"Succeeded"</option>
                    <option value="failed">"Failed, retrying"</option>
                    <option value="dead">"Dead"</option>
                    <option value="filtered">"Filtered by a transform"</option>
                </select>
            </label>
            <label>"Event types"<input type="text" name="event-type" placeholder="invoice.paid, …" on:input=field(|d, v| d.event_types = v)/></label>
            <label>"Endpoint"
                <select name="endpoint" on:change=field(|d, v| d.endpoint = v)>
                    <option value="">"Any"</option>
                    {endpoint_options(endpoints)}
                </select>
            </label>
            <label>"Time"<select name="time" on:change=field(|d, v| d.hours = v)>{time_options()}</select></label>
            <label>"Event id"<input type="text" name="event-id" on:input=field(|d, v| d.event_id = v)/></label>
            <button type="submit" class="btn btn-primary" id="search">"Search"</button>
        </form>
        <section class="card">
            {async_view(messages, move |page| {
                if page.data.is_empty() {
                    return view! {
                        <Empty title="No messages match">
                            "Messages appear here as soon as the API accepts them. Widen the filters, or send one with POST /api/v1/app/{app}/msg."
                        </Empty>
                    }
                    .into_any();
                }
                let scope = scope.clone();
                view! {
                    <table class="table" id="messages-table">
                        <thead><tr><th>"Received"</th><th>"Event type"</th><th>"Message"</th><th>"Event id"</th><th>"Channels"</th></tr></thead>
                        <tbody>
                            {page.data.into_iter().map(|m| view! {
                                <tr class="message-row">
                                    <td>{fmt_time(&m.created_at)}</td>
                                    <td><span class="event-type">{m.event_type.clone()}</span></td>
                                    <td><a href=scope.link(&format!("/msg/{}", m.id))><code>{m.id.to_string()}</code></a></td>
                                    <td>{m.event_id.clone().unwrap_or_else(|| "—".into())}</td>
                                    <td>{if m.channels.is_empty() { "—".to_owned() } else { m.channels.join(", ") }}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    <PagerButtons pager next=page.iterator.clone() done=page.done/>
                }
                .into_any()
            })}
        </section>
    }
}

#[component]
fn AttemptSearch(endpoints: LocalResource<ApiResult<ListResponse<EndpointOut>>>) -> impl IntoView {
    let scope = use_scope();
    let search = Search::<AttemptFilters>::new();
    let pager = search.pager;
    let list_path = scope.api("/attempt");
    let attempts = LocalResource::new(move || {
        let (filters, cursor) = search.query();
        let path = api::with_query(
            &list_path,
            &[
                ("limit", PAGE.to_owned()),
                ("iterator", cursor),
                ("status", filters.status.clone()),
                ("status_code_class", filters.class.clone()),
                ("endpoint", filters.endpoint.clone()),
                ("after", since(&filters.hours)),
            ],
        );
        async move { api::get::<ListResponse<AttemptOut>>(&path).await }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        search.apply();
        attempts.refetch();
    };
    let field = move |update: fn(&mut AttemptFilters, String)| search.field(update);
    let page_info = move || attempts.get().and_then(Result::ok).map(|page| (page.iterator, page.done));
    view! {
        <form class="filters" id="attempt-filters" on:submit=submit>
            <label>"Result"
                <select name="attempt-status" on:change=field(|d, v| d.status = v)>
                    <option value="">"Any"</option>
                    <option value="succeeded">"Succeeded"</option>
                    <option value="failed">"Failed"</option>
                </select>
            </label>
            <label>"Status code"
                <select name="status-code-class" on:change=field(|d, v| d.class = v)>
                    <option value="">"Any"</option>
                    <option value="2xx">"2xx"</option>
                    <option value="3xx">"3xx"</option>
                    <option value="4xx">"4xx"</option>
                    <option value="5xx">"5xx"</option>
                </select>
            </label>
            <label>"Endpoint"
                <select name="attempt-endpoint" on:change=field(|d, v| d.endpoint = v)>
                    <option value="">"Any"</option>
                    {endpoint_options(endpoints)}
                </select>
            </label>
            <label>"Time"<select name="attempt-time" on:change=field(|d, v| d.hours = v)>{time_options()}</select></label>
            <button type="submit" class="btn btn-primary">"Search"</button>
        </form>
        <section class="card">
            <AttemptTable attempts/>
            {move || page_info().map(|(next, done)| view! { <PagerButtons pager next done/> })}
        </section>
    }
}
