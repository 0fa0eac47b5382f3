//! Inbound sources: webhooks a provider (Stripe, GitHub, Shopify, …) sends to a public ingest URL,
//! which Hookline verifies and turns into messages of one of the tenant's applications.
//!
//! - `/sources`: the tenant's sources and a form to add one (with a content filter and its live
//!   preview).
//! - `/sources/:src`: one source: its ingest URL (copy, rotate), settings (its content filter
//!   among them), a signed test request as a `curl` line, and the log of the requests it received
//!   (outcome filter, "Load more").

use hookline_types::{
    ApplicationOut, HmacAlgorithm, ListResponse, Patch, SignatureEncoding, SourceIn, SourceOut, SourcePatch,
    SourceRequestOut, SourceRequestOutcome, SourceTestRequestOut, ValueFrom, VerificationIn, VerificationOut,
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::{
    api::{self, ApiError},
    components::{
        CopyField, Empty, ErrorBox, Loading, PageHeader, async_view, badge, confirm, fmt_bytes, fmt_opt_time,
        fmt_time, split_list,
    },
    pages::{event_types::parse_json, routing::FilterEditor, transforms::TransformEditor},
};

/// The verification schemes as the API names them, with what the form calls them.
const VERIFICATIONS: &[(&str, &str)] = &[
    ("standard_webhooks", "Standard Webhooks"),
    ("stripe", "Stripe"),
    ("github", "GitHub"),
    ("shopify", "Shopify"),
    ("hmac", "Custom HMAC signature"),
    ("basic", "HTTP Basic authentication"),
    ("api_key", "API key in a header"),
    ("none", "None: the URL is the only secret"),
];

const ALGORITHMS: &[(&str, &str)] = &[("sha256", "SHA-256"), ("sha1", "SHA-1"), ("sha512", "SHA-512")];

const ENCODINGS: &[(&str, &str)] = &[("hex", "Hex"), ("base64", "Base64")];

const OUTCOMES: &[(&str, &str)] = &[
    ("", "Any outcome"),
    ("accepted", "Accepted"),
    ("duplicate", "Duplicate"),
    ("stale", "Stale"),
    ("rejected", "Rejected"),
    ("handshake", "Handshake"),
    ("filtered", "Filtered"),
];

/// Requests per page of the log.
const PAGE: &str = "25";

fn verification_label(kind: &str) -> String {
    VERIFICATIONS
        .iter()
        .find(|(value, _)| *value == kind)
        .map_or_else(|| kind.to_owned(), |(_, label)| (*label).to_owned())
}

fn algorithm_name(algorithm: HmacAlgorithm) -> &'static str {
    match algorithm {
        HmacAlgorithm::Sha1 => "sha1",
        HmacAlgorithm::Sha256 => "sha256",
        HmacAlgorithm::Sha512 => "sha512",
    }
}

fn encoding_name(encoding: SignatureEncoding) -> &'static str {
    match encoding {
        SignatureEncoding::Hex => "hex",
        SignatureEncoding::Base64 => "base64",
    }
}

fn outcome_name(outcome: SourceRequestOutcome) -> &'static str {
    match outcome {
        SourceRequestOutcome::Accepted => "accepted",
        SourceRequestOutcome::Duplicate => "duplicate",
        SourceRequestOutcome::Stale => "stale",
        SourceRequestOutcome::Rejected => "rejected",
        SourceRequestOutcome::Handshake => "handshake",
        SourceRequestOutcome::Filtered => "filtered",
    }
}

/// A coloured pill for a request's outcome, with the class `outcome-<outcome>`.
fn outcome_badge(outcome: SourceRequestOutcome) -> impl IntoView {
    let name = outcome_name(outcome);
    let tone = match outcome {
        SourceRequestOutcome::Accepted => "ok",
        SourceRequestOutcome::Stale => "warn",
        SourceRequestOutcome::Rejected => "bad",
        SourceRequestOutcome::Handshake => "info",
        SourceRequestOutcome::Duplicate | SourceRequestOutcome::Filtered => "neutral",
    };
    view! { <span class=format!("badge badge-{tone} outcome-{name}")>{name}</span> }
}

/// Where a value comes from, for people: "header X-GitHub-Event", "body /type", or the value.
fn value_from(value: &ValueFrom) -> String {
    match value {
        ValueFrom::Header(name) => format!("header {name}"),
        ValueFrom::Pointer(pointer) => format!("body {pointer}"),
        ValueFrom::Fixed(fixed) => fixed.clone(),
    }
}

/// The `<option>`s of a select, `current` selected.
fn options(choices: &'static [(&'static str, &'static str)], current: &str) -> impl IntoView + use<> {
    choices
        .iter()
        .map(|&(value, label)| {
            let selected = value == current;
            view! { <option value=value selected=selected>{label}</option> }
        })
        .collect_view()
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError { status: 422, code: "validation_error".into(), detail: detail.into() }
}

fn trimmed(signal: RwSignal<String>) -> String {
    signal.get_untracked().trim().to_owned()
}

fn optional(signal: RwSignal<String>) -> Option<String> {
    let value = trimmed(signal);
    (!value.is_empty()).then_some(value)
}

/// An optional whole number: empty clears it.
fn number_patch(signal: RwSignal<String>, what: &str) -> Result<Patch<u32>, ApiError> {
    match trimmed(signal).as_str() {
        "" => Ok(Patch::Null),
        text => {
            text.parse().map(Patch::Value).map_err(|_| invalid(format!("{what} must be a whole number.")))
        }
    }
}

/// The fields of a verification scheme being entered; `kind` decides which ones are used.
#[derive(Clone, Copy)]
struct VerificationForm {
    kind: RwSignal<String>,
    secret: RwSignal<String>,
    header: RwSignal<String>,
    algorithm: RwSignal<String>,
    encoding: RwSignal<String>,
    prefix: RwSignal<String>,
    template: RwSignal<String>,
    timestamp_header: RwSignal<String>,
    username: RwSignal<String>,
    password: RwSignal<String>,
    value: RwSignal<String>,
}

impl VerificationForm {
    fn new(kind: &str) -> Self {
        let text = || RwSignal::new(String::new());
        VerificationForm {
            kind: RwSignal::new(kind.to_owned()),
            secret: text(),
            header: text(),
            algorithm: RwSignal::new("sha256".to_owned()),
            encoding: RwSignal::new("hex".to_owned()),
            prefix: text(),
            template: text(),
            timestamp_header: text(),
            username: text(),
            password: text(),
            value: text(),
        }
    }

    /// A form holding a source's current settings; the secrets are write-only, so empty.
    fn from_out(current: &VerificationOut) -> Self {
        let form = VerificationForm::new(&current.kind);
        let fill = |signal: RwSignal<String>, value: &Option<String>| {
            if let Some(value) = value {
                signal.set(value.clone());
            }
        };
        fill(form.header, &current.header);
        fill(form.prefix, &current.prefix);
        fill(form.template, &current.template);
        fill(form.timestamp_header, &current.timestamp_header);
        fill(form.username, &current.username);
        if let Some(algorithm) = current.algorithm {
            form.algorithm.set(algorithm_name(algorithm).to_owned());
        }
        if let Some(encoding) = current.encoding {
            form.encoding.set(encoding_name(encoding).to_owned());
        }
        form
    }

    /// Empties the fields that hold secrets, after a save.
    fn clear_secrets(self) {
        self.secret.set(String::new());
        self.password.set(String::new());
        self.value.set(String::new());
    }

    fn build(self) -> Result<VerificationIn, ApiError> {
        let secret = || {
            let secret = trimmed(self.secret);
            if secret.is_empty() {
                Err(invalid("Enter the secret the provider signs with."))
            } else {
                Ok(secret)
            }
        };
        Ok(match self.kind.get_untracked().as_str() {
            "none" => VerificationIn::None,
            "standard_webhooks" => VerificationIn::StandardWebhooks {
                secret: Some(secret()?),
                public_key: None,
                tolerance_seconds: None,
            },
            "stripe" => VerificationIn::Stripe { secret: secret()?, tolerance_seconds: None },
            "github" => VerificationIn::Github { secret: secret()? },
            "shopify" => VerificationIn::Shopify { secret: secret()? },
            "hmac" => VerificationIn::Hmac {
                secret: secret()?,
                header: trimmed(self.header),
                algorithm: match self.algorithm.get_untracked().as_str() {
                    "sha1" => HmacAlgorithm::Sha1,
                    "sha512" => HmacAlgorithm::Sha512,
                    _ => HmacAlgorithm::Sha256,
                },
                encoding: if self.encoding.get_untracked() == "base64" {
                    SignatureEncoding::Base64
                } else {
                    SignatureEncoding::Hex
                },
                prefix: optional(self.prefix),
                template: optional(self.template),
                timestamp_header: optional(self.timestamp_header),
                tolerance_seconds: None,
            },
            "basic" => VerificationIn::Basic {
                username: trimmed(self.username),
                password: self.password.get_untracked(),
            },
            "api_key" => {
                VerificationIn::ApiKey { header: trimmed(self.header), value: self.value.get_untracked() }
            }
            other => return Err(invalid(format!("Unknown verification type '{other}'."))),
        })
    }
}

/// How a verification field is entered.
#[derive(Clone, Copy, PartialEq)]
enum FieldKind {
    Required,
    Secret,
    Optional,
}

/// The verification type select and the fields its type needs. The ids are `{prefix}-…`:
/// `source-verification-type`, `source-secret`, `source-header`, … in the create form.
#[component]
fn VerificationFields(form: VerificationForm, prefix: &'static str) -> impl IntoView {
    let input = move |label: &'static str,
                      field: &'static str,
                      signal: RwSignal<String>,
                      how: FieldKind,
                      placeholder: &'static str| {
        let id = format!("{prefix}-{field}");
        let secret = how == FieldKind::Secret;
        let required = how != FieldKind::Optional;
        view! {
            <label>{label}
                <input type=if secret { "password" } else { "text" } id=id.clone() name=id
                    placeholder=placeholder autocomplete=if secret { "new-password" } else { "off" } required=required
                    on:input=move |ev| signal.set(event_target_value(&ev))
                    prop:value=move || signal.get()/>
            </label>
        }
    };
    let select = move |label: &'static str,
                       field: &'static str,
                       signal: RwSignal<String>,
                       choices: &'static [(&'static str, &'static str)]| {
        let id = format!("{prefix}-{field}");
        view! {
            <label>{label}
                <select id=id.clone() name=id on:change=move |ev| signal.set(event_target_value(&ev))>
                    {options(choices, &signal.get_untracked())}
                </select>
            </label>
        }
    };
    let secret = move |label: &'static str, placeholder: &'static str| {
        input(label, "secret", form.secret, FieldKind::Secret, placeholder)
    };
    let fields = move || {
        let kind = form.kind.get();
        match kind.as_str() {
            "standard_webhooks" | "stripe" => secret("Signing secret", "whsec_…").into_any(),
            "github" => secret("Webhook secret", "the secret set on GitHub").into_any(),
            "shopify" => secret("Client secret", "the app's client secret").into_any(),
            "hmac" => view! {
                {secret("Secret", "")}
                {input("Signature header", "header", form.header, FieldKind::Required, "X-Signature")}
                {select("Algorithm", "algorithm", form.algorithm, ALGORITHMS)}
                {select("Encoding", "encoding", form.encoding, ENCODINGS)}
                {input("Prefix (optional)", "prefix", form.prefix, FieldKind::Optional, "sha256=")}
                {input("Signed content (optional)", "template", form.template, FieldKind::Optional, "v0:{timestamp}:{body}")}
                {input("Timestamp header (optional)", "timestamp-header", form.timestamp_header, FieldKind::Optional, "X-Timestamp")}
            }
            .into_any(),
            "basic" => view! {
                {input("Username", "username", form.username, FieldKind::Required, "")}
                {input("Password", "password", form.password, FieldKind::Secret, "")}
            }
            .into_any(),
            "api_key" => view! {
                {input("Header", "header", form.header, FieldKind::Required, "X-Api-Key")}
                {input("Value", "value", form.value, FieldKind::Secret, "")}
            }
            .into_any(),
            _ => view! {
                <p class="hint">"Anyone who has the ingest URL can send to it. Prefer a signature when the provider offers one."</p>
            }
            .into_any(),
        }
    };
    let type_id = format!("{prefix}-verification-type");
    view! {
        <label>"Verification"
            <select id=type_id.clone() name=type_id on:change=move |ev| form.kind.set(event_target_value(&ev))>
                {options(VERIFICATIONS, &form.kind.get_untracked())}
            </select>
        </label>
        {fields}
    }
}

/// A button that copies `value` to the clipboard.
#[component]
fn CopyButton(value: String, #[prop(optional)] button_id: Option<&'static str>) -> impl IntoView {
    let copied = RwSignal::new(false);
    let copy = move |_| {
        if let Some(window) = web_sys::window() {
            let _ = window.navigator().clipboard().write_text(&value);
            copied.set(true);
        }
    };
    view! {
        <button type="button" class="btn btn-small" id=button_id on:click=copy>
            {move || if copied.get() { "Copied" } else { "Copy" }}
        </button>
    }
}

/// `/sources`: the list and the create form.
#[component]
pub fn Sources() -> impl IntoView {
    let sources = LocalResource::new(|| api::get::<ListResponse<SourceOut>>("/source?limit=250"));
    let apps = LocalResource::new(|| api::get::<ListResponse<ApplicationOut>>("/app?limit=250"));
    let name = RwSignal::new(String::new());
    let app = RwSignal::new(String::new());
    let event_type_header = RwSignal::new(String::new());
    let forward_headers = RwSignal::new(String::new());
    let content_filter = RwSignal::new(String::new());
    let form = VerificationForm::new(VERIFICATIONS[0].0);
    let created = RwSignal::new(None::<SourceOut>);
    let error = RwSignal::new(None::<ApiError>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let built = form.build().and_then(|verification| {
            Ok((verification, parse_json(&content_filter.get_untracked(), "content filter")?))
        });
        let (verification, filter) = match built {
            Ok(built) => built,
            Err(err) => {
                error.set(Some(err));
                return;
            }
        };
        let input = SourceIn {
            name: trimmed(name),
            uid: None,
            app: app.get_untracked(),
            verification,
            event_type: optional(event_type_header).map(ValueFrom::Header),
            event_id: None,
            forward_headers: split_list(&forward_headers.get_untracked()).unwrap_or_default(),
            rate_limit: None,
            burst: None,
            max_body_bytes: None,
            ordering: None,
            filter,
            transform: None,
            disabled: false,
        };
        spawn_local(async move {
            match api::post::<_, SourceOut>("/source", &input).await {
                Ok(source) => {
                    error.set(None);
                    name.set(String::new());
                    event_type_header.set(String::new());
                    forward_headers.set(String::new());
                    content_filter.set(String::new());
                    form.clear_secrets();
                    created.set(Some(source));
                    sources.refetch();
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    // Sources name their application by id; the name is what people recognise.
    let app_name = move |id: &str| {
        apps.with(|loaded| {
            let page = loaded.as_ref()?.as_ref().ok()?;
            page.data.iter().find(|app| app.id.as_str() == id).map(|app| app.name.clone())
        })
    };
    let app_options = move || {
        apps.get()
            .and_then(Result::ok)
            .map(|page| page.data)
            .unwrap_or_default()
            .into_iter()
            .map(|app| view! { <option value=app.id.to_string()>{app.name.clone()}</option> })
            .collect_view()
    };
    let no_apps = move || apps.with(|loaded| matches!(loaded, Some(Ok(page)) if page.data.is_empty()));
    view! {
        <PageHeader title="Sources".into() subtitle="Webhooks from providers such as Stripe or GitHub: each verified request becomes a message of an application."/>
        <section class="card">
            <h2>"New source"</h2>
            {move || no_apps().then(|| view! {
                <div class="alert alert-info">
                    <span>"A source's requests become messages of an application. " <a href="/apps">"Create an application"</a> " first."</span>
                </div>
            })}
            <form class="form form-grid" id="source-create" on:submit=create>
                <label>"Name"<input type="text" id="source-name" name="source-name" placeholder="Stripe production" required bind:value=name/></label>
                <label>"Application"
                    <select id="source-app" name="source-app" required on:change=move |ev| app.set(event_target_value(&ev))>
                        <option value="">"Choose an application"</option>
                        {app_options}
                    </select>
                </label>
                <VerificationFields form prefix="source"/>
                <label>"Event type from a header (optional)"
                    <input type="text" id="source-event-type-header" name="source-event-type-header" placeholder="X-GitHub-Event" bind:value=event_type_header/>
                    <span class="hint">"Without it, the messages' event type is source.<name>.received."</span>
                </label>
                <label>"Forward headers (optional)"
                    <input type="text" id="source-forward-headers" name="source-forward-headers" placeholder="X-GitHub-Event, X-GitHub-Delivery" bind:value=forward_headers/>
                    <span class="hint">"Comma-separated; kept on the message and sent on to its endpoints."</span>
                </label>
                <div class="span-2 field">
                    <span class="field-label">"Content filter (optional)"</span>
                    <span class="hint">"Only requests that match become messages; the others are answered 200 and logged as filtered. Headers are all the request's headers."</span>
                    <FilterEditor pattern=content_filter name="source-content-filter"/>
                </div>
                {move || error.get().map(|error| view! { <div class="span-2"><ErrorBox error/></div> })}
                <div class="span-2"><button type="submit" class="btn btn-primary" id="source-create-submit">"Create source"</button></div>
            </form>
            {move || created.get().map(|source| view! {
                <div class="alert alert-success" id="source-created">
                    <strong>{format!("Source '{}' created", source.name)}</strong>
                    <span>"Give the provider this URL to send its webhooks to:"</span>
                    <CopyField value=source.ingest_url.clone() label="Ingest URL"/>
                    <a href=format!("/sources/{}", source.id)>"Open the source"</a>
                </div>
            })}
        </section>
        <section class="card">
            {async_view(sources, move |page| {
                if page.data.is_empty() {
                    return view! {
                        <Empty title="No sources yet">
                            "A source gives a provider a URL to send its webhooks to. Create one above, then paste its URL into the provider's settings."
                        </Empty>
                    }
                    .into_any();
                }
                view! {
                    <table class="table" id="sources-table">
                        <thead><tr><th>"Name"</th><th>"Verification"</th><th>"Application"</th><th>"State"</th><th>"Created"</th></tr></thead>
                        <tbody>
                            {page.data.into_iter().map(|source| {
                                let state = if source.disabled { "disabled" } else { "enabled" };
                                let app_id = source.app_id.to_string();
                                view! {
                                    <tr class="source-row" data-name=source.name.clone()>
                                        <td><a href=format!("/sources/{}", source.id)>{source.name.clone()}</a></td>
                                        <td>{verification_label(&source.verification.kind)}</td>
                                        <td>
                                            <a href=format!("/apps/{app_id}")>{app_name(&app_id).unwrap_or_else(|| app_id.clone())}</a>
                                            <div class="muted"><code>{app_id.clone()}</code></div>
                                        </td>
                                        <td>{badge(state)}</td>
                                        <td>{fmt_time(&source.created_at)}</td>
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

/// `/sources/:src`: one source.
#[component]
pub fn SourcePage() -> impl IntoView {
    let params = use_params_map();
    let src = params.read_untracked().get("src").unwrap_or_default();
    let src_path = format!("/source/{}", api::encode(&src));
    let source = LocalResource::new(move || {
        let path = src_path.clone();
        async move { api::get::<SourceOut>(&path).await }
    });
    // Owned here, not by the view below: a reload after a change re-renders that.
    let notice = RwSignal::new(None::<String>);
    let saved = RwSignal::new(false);
    view! {
        {async_view(source, move |current| {
            view! { <SourceView current notice saved reload=move || source.refetch()/> }
        })}
    }
}

#[component]
fn SourceView(
    current: SourceOut,
    notice: RwSignal<Option<String>>,
    saved: RwSignal<bool>,
    reload: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let src_path = format!("/source/{}", current.id);
    let action_error = RwSignal::new(None::<ApiError>);

    let toggle = {
        let path = src_path.clone();
        let reload = reload.clone();
        let disabled = current.disabled;
        move |_| {
            let path = path.clone();
            let reload = reload.clone();
            spawn_local(async move {
                let patch = SourcePatch { disabled: Some(!disabled), ..Default::default() };
                match api::patch::<_, SourceOut>(&path, &patch).await {
                    Ok(_) => {
                        notice.set(None);
                        reload();
                    }
                    Err(err) => action_error.set(Some(err)),
                }
            });
        }
    };
    let rotate = {
        let path = format!("{src_path}/token/rotate");
        let reload = reload.clone();
        move |_| {
            if !confirm(
                "Rotate the ingest URL? The current URL keeps working for 24 hours: give the provider the new one before then.",
            ) {
                return;
            }
            let path = path.clone();
            let reload = reload.clone();
            spawn_local(async move {
                match api::post::<_, SourceOut>(&path, &serde_json::json!({})).await {
                    Ok(rotated) => {
                        notice.set(Some(format!(
                            "New ingest URL: {}. The previous one keeps working until {}.",
                            rotated.ingest_url,
                            fmt_opt_time(&rotated.previous_url_expires_at)
                        )));
                        reload();
                    }
                    Err(err) => action_error.set(Some(err)),
                }
            });
        }
    };
    let navigate = use_navigate();
    let delete = {
        let path = src_path.clone();
        move |_| {
            if !confirm("Delete this source? Its ingest URL stops working and it cannot be undone.") {
                return;
            }
            let path = path.clone();
            let navigate = navigate.clone();
            spawn_local(async move {
                match api::delete(&path).await {
                    Ok(()) => navigate("/sources", Default::default()),
                    Err(err) => action_error.set(Some(err)),
                }
            });
        }
    };
    let state = if current.disabled { "disabled" } else { "enabled" };
    let subtitle = format!("{} · {}", current.id, verification_label(&current.verification.kind));
    let ingest_url = current.ingest_url.clone();
    view! {
        <PageHeader title=current.name.clone() subtitle=subtitle>
            {badge(state)}
            <button type="button" class="btn" id="source-toggle" on:click=toggle>
                {if current.disabled { "Enable" } else { "Disable" }}
            </button>
            <button type="button" class="btn btn-danger" id="source-delete" on:click=delete>"Delete"</button>
        </PageHeader>
        {current.disabled.then(|| view! {
            <div class="alert alert-warn"><strong>"Disabled"</strong><span>"Requests to the ingest URL are refused until the source is enabled again."</span></div>
        })}
        {move || notice.get().map(|text| view! { <div class="alert alert-info" role="status" id="source-notice">{text}</div> })}
        {move || action_error.get().map(|error| view! { <ErrorBox error/> })}
        <section class="card" id="source-ingest">
            <div class="card-header">
                <h2>"Ingest URL"</h2>
                <button type="button" class="btn btn-small" id="source-rotate" on:click=rotate>"Rotate URL"</button>
            </div>
            <p class="muted">"The provider sends its webhooks here with POST. The URL is a credential: rotate it if it leaks."</p>
            <div class="copy-field">
                <input type="text" id="source-ingest-url" name="source-ingest-url" readonly aria-label="Ingest URL" value=ingest_url.clone()/>
                <CopyButton value=ingest_url.clone() button_id="source-ingest-url-copy"/>
            </div>
            {current.previous_url_expires_at.map(|until| view! {
                <p class="hint" id="source-previous-url">{format!("The previous URL keeps working until {}.", fmt_time(&until))}</p>
            })}
        </section>
        <TestRequest src_path=src_path.clone()/>
        <Requests src_path=src_path.clone() app_id=current.app_id.to_string()/>
        <Facts current=current.clone()/>
        <Settings current=current.clone() src_path=src_path.clone() saved reload=reload.clone()/>
    }
}

/// "Send a test request": a request signed now with the source's current secret, as a `curl`
/// line to run.
#[component]
fn TestRequest(src_path: String) -> impl IntoView {
    let result = RwSignal::new(None::<Result<SourceTestRequestOut, ApiError>>);
    let create = move |_| {
        let path = format!("{src_path}/test-request");
        spawn_local(async move {
            result.set(Some(api::post::<_, SourceTestRequestOut>(&path, &serde_json::json!({})).await));
        });
    };
    view! {
        <section class="card" id="source-test">
            <div class="card-header">
                <h2>"Send a test request"</h2>
                <button type="button" class="btn btn-small" id="source-test-request" on:click=create>"Create a signed request"</button>
            </div>
            <p class="muted">"A request signed with the source's current secret, as a curl command. Run it in a terminal within a few minutes, then refresh the requests below."</p>
            {move || result.get().map(|result| match result {
                Ok(test) => view! {
                    {test.unsigned.clone().map(|why| view! { <div class="alert alert-info" id="source-test-unsigned" role="status">{why}</div> })}
                    <pre class="code" id="source-curl">{test.curl.clone()}</pre>
                    <CopyButton value=test.curl.clone() button_id="source-curl-copy"/>
                }
                .into_any(),
                Err(error) => view! { <ErrorBox error/> }.into_any(),
            })}
        </section>
    }
}

/// One row of the requests log.
fn request_row(request: SourceRequestOut, app_id: &str) -> impl IntoView + use<> {
    let outcome = outcome_name(request.outcome);
    let message = match &request.message_id {
        Some(id) => {
            view! { <a href=format!("/apps/{app_id}/msg/{id}")><code>{id.to_string()}</code></a> }.into_any()
        }
        None => view! { <span class="muted">"—"</span> }.into_any(),
    };
    let mut detail = format!("{} ({})\n", request.method, fmt_bytes(request.body_size));
    for (name, value) in &request.headers {
        detail.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(body) = &request.body {
        detail.push('\n');
        detail.push_str(body);
    }
    view! {
        <tr class=format!("source-request-row request-{outcome}") id=request.id.to_string()>
            <td>{fmt_time(&request.received_at)}</td>
            <td>{outcome_badge(request.outcome)}</td>
            <td>{request.reason.clone().unwrap_or_else(|| "—".into())}</td>
            <td>{request.status.to_string()}</td>
            <td>{fmt_bytes(request.body_size)}</td>
            <td>{request.event_id.clone().unwrap_or_else(|| "—".into())}</td>
            <td>{message}</td>
            <td>
                <details class="request-details">
                    <summary>"Request"</summary>
                    <pre class="code">{detail}</pre>
                </details>
            </td>
        </tr>
    }
}

/// The requests the source received, newest first, with an outcome filter and "Load more".
#[component]
fn Requests(src_path: String, app_id: String) -> impl IntoView {
    let outcome = RwSignal::new(String::new());
    let rows = RwSignal::new(Vec::<SourceRequestOut>::new());
    let next = RwSignal::new(None::<String>);
    let done = RwSignal::new(true);
    let loaded = RwSignal::new(false);
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    // Each load's number: an answer to a load that a newer one replaced is dropped.
    let generation = RwSignal::new(0_u32);
    let path = format!("{src_path}/request");
    // The first page (`more` false) or the page after the rows shown.
    let load = move |more: bool| {
        let cursor = if more { next.get_untracked().unwrap_or_default() } else { String::new() };
        let url = api::with_query(
            &path,
            &[("limit", PAGE.to_owned()), ("outcome", outcome.get_untracked()), ("iterator", cursor)],
        );
        generation.update(|n| *n += 1);
        let mine = generation.get_untracked();
        loading.set(true);
        spawn_local(async move {
            let result = api::get::<ListResponse<SourceRequestOut>>(&url).await;
            if generation.is_disposed() || generation.get_untracked() != mine {
                return;
            }
            loading.set(false);
            match result {
                Ok(page) => {
                    error.set(None);
                    if more {
                        rows.update(|list| list.extend(page.data));
                    } else {
                        rows.set(page.data);
                    }
                    next.set(page.iterator);
                    done.set(page.done);
                    loaded.set(true);
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    load(false);
    let refresh = {
        let load = load.clone();
        move |_| load(false)
    };
    let load_more = {
        let load = load.clone();
        move |_| load(true)
    };
    let filter = move |ev: leptos::ev::Event| {
        outcome.set(event_target_value(&ev));
        load(false);
    };
    let table = move || {
        if !loaded.get() {
            return view! { <Loading/> }.into_any();
        }
        let list = rows.get();
        if list.is_empty() {
            return if outcome.get_untracked().is_empty() {
                view! {
                    <Empty title="No requests yet">
                        "Every request to the ingest URL shows up here, accepted or not. Send a test request to try it."
                    </Empty>
                }
                .into_any()
            } else {
                view! { <Empty title="No requests match">"No request had this outcome."</Empty> }.into_any()
            };
        }
        view! {
            <table class="table compact" id="source-requests">
                <thead><tr><th>"Received"</th><th>"Outcome"</th><th>"Reason"</th><th>"Status"</th><th>"Body"</th><th>"Event id"</th><th>"Message"</th><th></th></tr></thead>
                <tbody>
                    {list.into_iter().map(|request| request_row(request, &app_id)).collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    };
    let has_more = move || loaded.get() && !done.get() && next.with(Option::is_some);
    view! {
        <section class="card" id="source-log">
            <div class="card-header">
                <h2>"Requests"</h2>
                <div class="page-actions">
                    <select id="source-request-outcome" name="source-request-outcome" aria-label="Outcome" on:change=filter>
                        {options(OUTCOMES, "")}
                    </select>
                    <button type="button" class="btn btn-small" id="source-requests-refresh" on:click=refresh>"Refresh"</button>
                </div>
            </div>
            {move || error.get().map(|error| view! { <ErrorBox error/> })}
            {table}
            {move || has_more().then(|| {
                let load_more = load_more.clone();
                view! {
                    <div class="pager">
                        <button type="button" class="btn btn-small" id="source-requests-more" disabled=move || loading.get() on:click=load_more>"Load more"</button>
                    </div>
                }
            })}
        </section>
    }
}

/// The source's settings as the API shows them.
#[component]
fn Facts(current: SourceOut) -> impl IntoView {
    let verification = &current.verification;
    let mut rows: Vec<(&'static str, String)> =
        vec![("Verification", verification_label(&verification.kind))];
    let mut add = |label: &'static str, value: Option<String>| {
        if let Some(value) = value {
            rows.push((label, value));
        }
    };
    add("Header", verification.header.clone());
    add("Algorithm", verification.algorithm.map(|a| algorithm_name(a).to_owned()));
    add("Encoding", verification.encoding.map(|e| encoding_name(e).to_owned()));
    add("Prefix", verification.prefix.clone());
    add("Signed content", verification.template.clone());
    add("Timestamp header", verification.timestamp_header.clone());
    add("Tolerance", verification.tolerance_seconds.map(|s| format!("{s} s")));
    add("Username", verification.username.clone());
    add(
        "Secrets accepted",
        (verification.kind != "none").then(|| match verification.secrets {
            0 | 1 => verification.secrets.to_string(),
            n => format!("{n} (a rotation is under way)"),
        }),
    );
    add("Event type", Some(value_from(&current.event_type)));
    add(
        "Event id",
        Some(current.event_id.as_ref().map_or_else(|| "the provider's own id".to_owned(), value_from)),
    );
    add(
        "Forwarded headers",
        Some(if current.forward_headers.is_empty() {
            "none".to_owned()
        } else {
            current.forward_headers.join(", ")
        }),
    );
    add(
        "Rate limit",
        Some(match (current.rate_limit, current.burst) {
            (None, _) => "unlimited".to_owned(),
            (Some(rate), None) => format!("{rate} requests/s"),
            (Some(rate), Some(burst)) => format!("{rate} requests/s, bursts of {burst}"),
        }),
    );
    add("Largest body", Some(fmt_bytes(current.max_body_bytes)));
    add(
        "Content filter",
        Some(current.filter.as_ref().map_or_else(|| "none: every request".to_owned(), |f| f.to_string())),
    );
    add(
        "Ordering",
        current.ordering.as_ref().map(|ordering| match &ordering.key {
            Some(key) => format!("by {}, per {}", value_from(&ordering.sequence), value_from(key)),
            None => format!("by {}", value_from(&ordering.sequence)),
        }),
    );
    add("Created", Some(fmt_time(&current.created_at)));
    add("Updated", Some(fmt_time(&current.updated_at)));
    let app_id = current.app_id.to_string();
    view! {
        <section class="card">
            <h2>"Settings"</h2>
            <dl class="facts" id="source-settings">
                <dt>"Application"</dt>
                <dd><a href=format!("/apps/{app_id}")><code>{app_id.clone()}</code></a></dd>
                {rows.into_iter().map(|(label, value)| view! { <dt>{label}</dt><dd>{value}</dd> }).collect_view()}
            </dl>
        </section>
    }
}

/// The settings form: a PATCH of what it shows; the verification only when it is replaced.
#[component]
fn Settings(
    current: SourceOut,
    src_path: String,
    saved: RwSignal<bool>,
    reload: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let initial_header = match &current.event_type {
        ValueFrom::Header(name) => name.clone(),
        _ => String::new(),
    };
    let event_type_hint = match &current.event_type {
        ValueFrom::Header(_) => "Empty: the event type is source.<name>.received.".to_owned(),
        other => format!("Now: {}. Entering a header replaces it.", value_from(other)),
    };
    let name = RwSignal::new(current.name.clone());
    let event_type_header = RwSignal::new(initial_header.clone());
    let forward_headers = RwSignal::new(current.forward_headers.join(", "));
    let content_filter = RwSignal::new(
        current.filter.as_ref().and_then(|f| serde_json::to_string_pretty(f).ok()).unwrap_or_default(),
    );
    // Sent only when changed: saving other settings never needs the plan feature again.
    let transform_was = current.transform.clone().unwrap_or_default();
    let transform = RwSignal::new(transform_was.clone());
    let rate_limit = RwSignal::new(current.rate_limit.map(|r| r.to_string()).unwrap_or_default());
    let burst = RwSignal::new(current.burst.map(|b| b.to_string()).unwrap_or_default());
    let replace = RwSignal::new(false);
    let form = VerificationForm::from_out(&current.verification);
    let error = RwSignal::new(None::<ApiError>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        saved.set(false);
        let result = (|| -> Result<SourcePatch, ApiError> {
            let header = trimmed(event_type_header);
            let event_type = if header == initial_header {
                Patch::Absent
            } else if header.is_empty() {
                Patch::Null
            } else {
                Patch::Value(ValueFrom::Header(header))
            };
            Ok(SourcePatch {
                name: Some(trimmed(name)),
                verification: if replace.get_untracked() { Some(form.build()?) } else { None },
                event_type,
                forward_headers: Some(split_list(&forward_headers.get_untracked()).unwrap_or_default()),
                rate_limit: number_patch(rate_limit, "The rate limit")?,
                burst: number_patch(burst, "The burst")?,
                filter: parse_json(&content_filter.get_untracked(), "content filter")?
                    .map_or(Patch::Null, Patch::Value),
                transform: match transform.get_untracked() {
                    now if now == transform_was => Patch::Absent,
                    now if now.trim().is_empty() => Patch::Null,
                    now => Patch::Value(now),
                },
                ..Default::default()
            })
        })();
        let patch = match result {
            Ok(patch) => patch,
            Err(err) => {
                error.set(Some(err));
                return;
            }
        };
        let path = src_path.clone();
        let reload = reload.clone();
        spawn_local(async move {
            match api::patch::<_, SourceOut>(&path, &patch).await {
                Ok(_) => {
                    error.set(None);
                    saved.set(true);
                    reload();
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <section class="card" id="source-edit">
            <h2>"Change settings"</h2>
            <form class="form form-grid" id="source-settings-form" on:submit=submit>
                <label>"Name"<input type="text" id="settings-name" name="settings-name" required bind:value=name/></label>
                <label>"Event type from a header"
                    <input type="text" id="settings-event-type-header" name="settings-event-type-header" placeholder="X-GitHub-Event" bind:value=event_type_header/>
                    <span class="hint">{event_type_hint}</span>
                </label>
                <label>"Forward headers"
                    <input type="text" id="settings-forward-headers" name="settings-forward-headers" placeholder="none" bind:value=forward_headers/>
                    <span class="hint">"Comma-separated; kept on the message and sent on to its endpoints."</span>
                </label>
                <label>"Rate limit (requests/s)"<input type="number" min="1" id="settings-rate-limit" name="settings-rate-limit" placeholder="unlimited" bind:value=rate_limit/></label>
                <label>"Burst"<input type="number" min="1" id="settings-burst" name="settings-burst" placeholder="the rate limit" bind:value=burst/></label>
                <div class="span-2 field"><span class="field-label">"Content filter"</span>
                    <FilterEditor pattern=content_filter name="settings-content-filter"/></div>
                <div class="span-2 field"><span class="field-label">"Transform"</span>
                    <TransformEditor program=transform name="settings-transform"/></div>
                <div class="checks span-2">
                    <label class="check"><input type="checkbox" id="settings-replace-verification" name="settings-replace-verification" bind:checked=replace/>
                        "Replace the verification (secrets are write-only: enter them again; a new secret of the same type leaves the old one valid for 24 hours)"</label>
                </div>
                <Show when=move || replace.get()>
                    <VerificationFields form prefix="settings"/>
                </Show>
                {move || error.get().map(|error| view! { <div class="span-2"><ErrorBox error/></div> })}
                <div class="span-2 form-actions">
                    <button type="submit" class="btn btn-primary" id="source-save">"Save changes"</button>
                    {move || saved.get().then(|| view! { <span class="saved" role="status">"Saved"</span> })}
                </div>
            </form>
        </section>
    }
}
