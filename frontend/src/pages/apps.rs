//! Applications (one per customer of the tenant) and one application's endpoints.

use hookline_types::{
    ApplicationIn, ApplicationOut, EndpointFormat, EndpointIn, EndpointOrdering, EndpointOut, ListResponse,
    PayloadMode, PortalTokenIn, PortalTokenOut, SignatureScheme,
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{
    api::{self, ApiError},
    components::{CopyField, Empty, ErrorBox, PageHeader, async_view, badge, fmt_time, split_list},
    pages::{event_types::parse_json, routing::FilterEditor},
    shell::use_scope,
};

#[component]
pub fn Applications() -> impl IntoView {
    let apps = LocalResource::new(|| api::get::<ListResponse<ApplicationOut>>("/app?limit=100"));
    let name = RwSignal::new(String::new());
    let uid = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let navigate = use_navigate();
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let navigate = navigate.clone();
        let uid_value = uid.get_untracked().trim().to_owned();
        let input = ApplicationIn {
            name: name.get_untracked(),
            uid: (!uid_value.is_empty()).then_some(uid_value),
            metadata: Default::default(),
            rate_limit: None,
        };
        spawn_local(async move {
            match api::post::<_, ApplicationOut>("/app", &input).await {
                Ok(app) => navigate(&format!("/apps/{}", app.id), Default::default()),
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <PageHeader title="Applications".into() subtitle="One application per customer: it groups the endpoints their webhooks go to."/>
        <section class="card">
            <h2>"New application"</h2>
            <form class="form form-inline" on:submit=create>
                <label>"Name"<input type="text" name="app-name" placeholder="Acme Corp" required bind:value=name/></label>
                <label>"Your id (optional)"<input type="text" name="app-uid" placeholder="customer_123" bind:value=uid/></label>
                <button type="submit" class="btn btn-primary">"Create application"</button>
            </form>
            {move || error.get().map(|error| view! { <ErrorBox error/> })}
        </section>
        <section class="card">
            {async_view(apps, |page| {
                if page.data.is_empty() {
                    return view! {
                        <Empty title="No applications yet">
                            "Create one above for each customer that receives webhooks, then add their endpoints."
                        </Empty>
                    }
                    .into_any();
                }
                view! {
                    <table class="table" id="apps-table">
                        <thead><tr><th>"Name"</th><th>"Id"</th><th>"Your id"</th><th>"Created"</th></tr></thead>
                        <tbody>
                            {page.data.into_iter().map(|app| view! {
                                <tr>
                                    <td><a href=format!("/apps/{}", app.id)>{app.name.clone()}</a></td>
                                    <td><code>{app.id.to_string()}</code></td>
                                    <td>{app.uid.clone().unwrap_or_else(|| "—".into())}</td>
                                    <td>{fmt_time(&app.created_at)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }
                .into_any()
            })}
        </section>
    }
}

/// The application's header, portal link and endpoints.
#[component]
pub fn ApplicationPage() -> impl IntoView {
    let scope = use_scope();
    let app_path = scope.api("");
    let app = LocalResource::new(move || {
        let path = app_path.clone();
        async move { api::get::<ApplicationOut>(&path).await }
    });
    let portal = RwSignal::new(None::<Result<PortalTokenOut, ApiError>>);
    let portal_path = scope.api("/portal-token");
    let open_portal = move |_| {
        let path = portal_path.clone();
        spawn_local(async move {
            let input = PortalTokenIn { read_only: false, expires_in: Some(3600) };
            portal.set(Some(api::post::<_, PortalTokenOut>(&path, &input).await));
        });
    };
    let logs = scope.link("/logs");
    let fetches = scope.link("/payload-fetches");
    view! {
        {async_view(app, move |app| {
            let (logs, fetches, open_portal) = (logs.clone(), fetches.clone(), open_portal.clone());
            view! {
            <PageHeader title=app.name.clone() subtitle=format!("{}{}", app.id, app.uid.as_ref().map(|u| format!(" · {u}")).unwrap_or_default())>
                <a class="btn" href=logs.clone()>"View logs"</a>
                <a class="btn" id="payload-fetches-link" href=fetches.clone()>"Payload fetches"</a>
                <button type="button" class="btn" on:click=open_portal>"Consumer portal link"</button>
            </PageHeader>
            }
        })}
        {move || portal.get().map(|result| match result {
            Ok(token) => view! {
                <div class="alert alert-info">
                    <strong>"Portal link (valid 1 hour)"</strong>
                    <span>"Send it to this customer: it shows this application's endpoints and logs only."</span>
                    <CopyField value=format!("{}{}", origin(), token.url) label="Portal link"/>
                    <a href=token.url.clone() target="_blank" rel="noopener" id="portal-link">"Open the portal"</a>
                </div>
            }.into_any(),
            Err(error) => view! { <ErrorBox error/> }.into_any(),
        })}
        <Endpoints/>
    }
}

fn origin() -> String {
    web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default()
}

/// The application's endpoints with a form to add one. Shared with the consumer portal.
#[component]
pub fn Endpoints() -> impl IntoView {
    let scope = use_scope();
    let list_path = scope.api("/endpoint?limit=250");
    let endpoints = LocalResource::new(move || {
        let path = list_path.clone();
        async move { api::get::<ListResponse<EndpointOut>>(&path).await }
    });
    let show_form = RwSignal::new(false);
    let scope_for_rows = scope.clone();
    view! {
        <section class="card">
            <div class="card-header">
                <h2>"Endpoints"</h2>
                {(!scope.read_only).then(|| view! {
                    <button type="button" class="btn btn-primary" id="add-endpoint" on:click=move |_| show_form.update(|s| *s = !*s)>
                        {move || if show_form.get() { "Close" } else { "Add endpoint" }}
                    </button>
                })}
            </div>
            <Show when=move || show_form.get()>
                <NewEndpoint on_created=move || { show_form.set(false); endpoints.refetch(); }/>
            </Show>
            {async_view(endpoints, move |page| {
                if page.data.is_empty() {
                    return view! {
                        <Empty title="No endpoints yet">
                            "An endpoint is a URL that receives this application's webhooks. Add one to start delivering."
                        </Empty>
                    }
                    .into_any();
                }
                let scope = scope_for_rows.clone();
                view! {
                    <table class="table" id="endpoints-table">
                        <thead><tr><th>"URL"</th><th>"State"</th><th>"Event types"</th><th>"Format"</th><th>"Created"</th></tr></thead>
                        <tbody>
                            {page.data.into_iter().map(|ep| {
                                let state = if ep.disabled { "disabled" } else { "enabled" };
                                view! {
                                    <tr>
                                        <td class="url-cell"><a href=scope.link(&format!("/endpoints/{}", ep.id))>{ep.url.clone()}</a>
                                            {(!ep.description.is_empty()).then(|| view! { <div class="muted">{ep.description.clone()}</div> })}
                                        </td>
                                        <td>{badge(state)}</td>
                                        <td>{ep.filter_types.clone().map(|t| t.join(", ")).unwrap_or_else(|| "all".into())}</td>
                                        <td>{format_name(ep.format)}</td>
                                        <td>{fmt_time(&ep.created_at)}</td>
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

pub fn format_name(format: EndpointFormat) -> &'static str {
    match format {
        EndpointFormat::Json => "JSON",
        EndpointFormat::CloudeventsStructured => "CloudEvents (structured)",
        EndpointFormat::CloudeventsBinary => "CloudEvents (binary)",
    }
}

/// The API's name of a payload mode (the endpoint forms' select values).
pub fn payload_mode_name(mode: PayloadMode) -> &'static str {
    match mode {
        PayloadMode::Full => "full",
        PayloadMode::Thin => "thin",
        PayloadMode::Auto => "auto",
    }
}

pub fn parse_payload_mode(value: &str) -> PayloadMode {
    match value {
        "thin" => PayloadMode::Thin,
        "auto" => PayloadMode::Auto,
        _ => PayloadMode::Full,
    }
}

pub fn parse_format(value: &str) -> EndpointFormat {
    match value {
        "cloudevents_structured" => EndpointFormat::CloudeventsStructured,
        "cloudevents_binary" => EndpointFormat::CloudeventsBinary,
        _ => EndpointFormat::Json,
    }
}

#[component]
fn NewEndpoint(on_created: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let scope = use_scope();
    let url = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let filter_types = RwSignal::new(String::new());
    let content_filter = RwSignal::new(String::new());
    let format = RwSignal::new("json".to_owned());
    let payload_mode = RwSignal::new("full".to_owned());
    let fifo = RwSignal::new(false);
    let ed25519 = RwSignal::new(false);
    let rate_limit = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let path = scope.api("/endpoint");
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let rate = rate_limit.get_untracked();
        let rate_limit = match rate.trim() {
            "" => None,
            text => match text.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    error.set(Some(ApiError {
                        status: 422,
                        code: "validation_error".into(),
                        detail: "The rate limit must be a whole number of deliveries per second.".into(),
                    }));
                    return;
                }
            },
        };
        let filter = match parse_json(&content_filter.get_untracked(), "content filter") {
            Ok(filter) => filter,
            Err(err) => {
                error.set(Some(err));
                return;
            }
        };
        let input = EndpointIn {
            url: url.get_untracked().trim().to_owned(),
            uid: None,
            description: description.get_untracked(),
            disabled: false,
            filter_types: split_list(&filter_types.get_untracked()),
            channels: None,
            filter,
            transform: None,
            handshake: None,
            rate_limit,
            metadata: Default::default(),
            headers: Default::default(),
            format: parse_format(&format.get_untracked()),
            ordering: if fifo.get_untracked() { EndpointOrdering::Fifo } else { EndpointOrdering::None },
            timeout_ms: None,
            retry_schedule: None,
            payload_mode: parse_payload_mode(&payload_mode.get_untracked()),
            thin_above_bytes: None,
            data_url_ttl_seconds: None,
            auth: None,
            secret: None,
            signature_scheme: Some(if ed25519.get_untracked() {
                SignatureScheme::V1a
            } else {
                SignatureScheme::V1
            }),
        };
        let path = path.clone();
        let on_created = on_created.clone();
        spawn_local(async move {
            match api::post::<_, EndpointOut>(&path, &input).await {
                Ok(_) => on_created(),
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <form class="form form-grid" id="new-endpoint" on:submit=submit>
            <label class="span-2">"URL"<input type="url" name="endpoint-url" placeholder="https://example.com/webhooks" required bind:value=url/></label>
            <label class="span-2">"Description"<input type="text" name="endpoint-description" bind:value=description/></label>
            <label>
                "Event types"
                <input type="text" name="endpoint-filter" placeholder="invoice.paid, user.*" bind:value=filter_types/>
                <span class="hint">"Comma-separated, wildcards allowed. Empty: every event type."</span>
            </label>
            <label>
                "Format"
                <select name="endpoint-format" on:change=move |ev| format.set(event_target_value(&ev))>
                    <option value="json">"JSON (Standard Webhooks)"</option>
                    <option value="cloudevents_structured">"CloudEvents, structured"</option>
                    <option value="cloudevents_binary">"CloudEvents, binary"</option>
                </select>
            </label>
            <label>"Rate limit (deliveries/s)"<input type="number" min="1" name="endpoint-rate" bind:value=rate_limit/></label>
            <label>
                "Payload"
                <select name="endpoint-payload-mode" on:change=move |ev| payload_mode.set(event_target_value(&ev))>
                    <option value="full">"Full: the payload is the body"</option>
                    <option value="thin">"Thin: a signed link to fetch it"</option>
                    <option value="auto">"Auto: thin above 256 KiB, or after a 413"</option>
                </select>
            </label>
            <div class="span-2 field">
                <span class="field-label">"Content filter"</span>
                <FilterEditor pattern=content_filter name="endpoint-content-filter"/>
            </div>
            <div class="checks">
                <label class="check"><input type="checkbox" name="endpoint-fifo" bind:checked=fifo/>"Deliver in order (FIFO)"</label>
                <label class="check"><input type="checkbox" name="endpoint-ed25519" bind:checked=ed25519/>"Sign with Ed25519 (v1a)"</label>
            </div>
            {move || error.get().map(|error| view! { <div class="span-2"><ErrorBox error/></div> })}
            <div class="span-2"><button type="submit" class="btn btn-primary">"Create endpoint"</button></div>
        </form>
    }
}
