//! One endpoint: its recent attempts, statistics, settings, signing secret, a test event, and
//! bulk recovery / replay with a live progress bar. Shared with the consumer portal.

use std::collections::BTreeMap;

use chrono::Duration;
use hookline_types::{
    AttemptOut, EndpointAuthIn, EndpointAuthOut, EndpointOrdering, EndpointOut, EndpointPatch,
    EndpointSecretOut, EndpointSecretRotateIn, EndpointStatsOut, JobOut, ListResponse, MessageOut, Patch,
    RecoverIn, ReplayMissingIn, SignatureScheme,
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::{
    api::{self, ApiError},
    components::{
        CopyField, Empty, ErrorBox, PageHeader, async_view, badge, confirm, fmt_count, fmt_ms, fmt_percent,
        fmt_time, now, sleep, split_list,
    },
    pages::apps::{format_name, parse_format, parse_payload_mode, payload_mode_name},
    pages::event_types::{parse_json, parse_schedule},
    pages::{routing::FilterEditor, transforms::TransformEditor},
    shell::use_scope,
};

#[component]
pub fn EndpointPage() -> impl IntoView {
    let scope = use_scope();
    let params = use_params_map();
    let ep = params.read_untracked().get("ep").unwrap_or_default();
    let ep_path = scope.api(&format!("/endpoint/{}", api::encode(&ep)));
    let endpoint = LocalResource::new({
        let path = ep_path.clone();
        move || {
            let path = path.clone();
            async move { api::get::<EndpointOut>(&path).await }
        }
    });
    // Owned here, not by the views below: a reload after a change re-renders those.
    let saved = RwSignal::new(false);
    view! {
        {async_view(endpoint, move |current| {
            view! { <EndpointView current saved reload=move || endpoint.refetch()/> }
        })}
    }
}

#[component]
fn EndpointView(
    current: EndpointOut,
    saved: RwSignal<bool>,
    reload: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let scope = use_scope();
    let ep_path = scope.api(&format!("/endpoint/{}", current.id));
    let attempts_path = api::with_query(
        &scope.api("/attempt"),
        &[("endpoint", current.id.to_string()), ("limit", "20".into())],
    );
    let attempts = LocalResource::new(move || {
        let path = attempts_path.clone();
        async move { api::get::<ListResponse<AttemptOut>>(&path).await }
    });
    let stats_path = format!("{ep_path}/stats");
    let stats = LocalResource::new(move || {
        let path = stats_path.clone();
        async move { api::get::<EndpointStatsOut>(&path).await }
    });
    let action_error = RwSignal::new(None::<ApiError>);
    let notice = RwSignal::new(None::<String>);

    let toggle = {
        let path = ep_path.clone();
        let reload = reload.clone();
        let disabled = current.disabled;
        move |_| {
            let path = path.clone();
            let reload = reload.clone();
            spawn_local(async move {
                let patch = EndpointPatch { disabled: Some(!disabled), ..Default::default() };
                match api::patch::<_, EndpointOut>(&path, &patch).await {
                    Ok(_) => reload(),
                    Err(err) => action_error.set(Some(err)),
                }
            });
        }
    };
    let send_test = {
        let path = format!("{ep_path}/test");
        move |_| {
            let path = path.clone();
            spawn_local(async move {
                match api::post::<_, MessageOut>(&path, &serde_json::json!({})).await {
                    Ok(message) => {
                        notice
                            .set(Some(format!("Test event {} sent. Its attempt appears below.", message.id)));
                        // The attempt lands within a second or two; look a few times.
                        for _ in 0..10 {
                            sleep(700).await;
                            if attempts.is_disposed() {
                                break;
                            }
                            attempts.refetch();
                        }
                    }
                    Err(err) => action_error.set(Some(err)),
                }
            });
        }
    };
    let navigate = use_navigate();
    let delete = {
        let path = ep_path.clone();
        let back = scope.link("");
        move |_| {
            if !confirm("Delete this endpoint? Its deliveries stop and it cannot be undone.") {
                return;
            }
            let path = path.clone();
            let back = back.clone();
            let navigate = navigate.clone();
            spawn_local(async move {
                match api::delete(&path).await {
                    Ok(()) => navigate(&back, Default::default()),
                    Err(err) => action_error.set(Some(err)),
                }
            });
        }
    };
    let state = if current.disabled { "disabled" } else { "enabled" };
    let subtitle = format!(
        "{} · {} · {}",
        current.id,
        format_name(current.format),
        if current.ordering == EndpointOrdering::Fifo { "in order (FIFO)" } else { "unordered" }
    );
    let writable = !scope.read_only;
    view! {
        <PageHeader title=current.url.clone() subtitle=subtitle>
            {badge(state)}
            {writable.then(|| view! {
                <button type="button" class="btn" id="send-test" on:click=send_test>"Send test event"</button>
                <button type="button" class="btn" id="toggle-endpoint" on:click=toggle>
                    {if current.disabled { "Enable" } else { "Disable" }}
                </button>
                <button type="button" class="btn btn-danger" on:click=delete>"Delete"</button>
            })}
        </PageHeader>
        {current.disabled_reason.clone().map(|reason| view! {
            <div class="alert alert-warn"><strong>"Disabled"</strong><span>{reason}</span></div>
        })}
        {move || notice.get().map(|text| view! { <div class="alert alert-info" role="status">{text}</div> })}
        {move || action_error.get().map(|error| view! { <ErrorBox error/> })}
        <section class="card">
            <div class="card-header">
                <h2>"Recent attempts"</h2>
                <button type="button" class="btn btn-small" on:click=move |_| attempts.refetch()>"Refresh"</button>
            </div>
            <AttemptTable attempts/>
        </section>
        <Stats stats/>
        {writable.then(|| view! { <Replay ep_path=ep_path.clone() on_done=move || { attempts.refetch(); stats.refetch(); }/> })}
        <Secret ep_path=ep_path.clone() writable/>
        {writable.then(|| view! { <Settings current=current.clone() ep_path=ep_path.clone() saved reload=reload.clone()/> })}
    }
}

/// A table of attempts, newest first, each linking to its message.
#[component]
pub fn AttemptTable(attempts: LocalResource<api::ApiResult<ListResponse<AttemptOut>>>) -> impl IntoView {
    let scope = use_scope();
    async_view(attempts, move |page| {
        if page.data.is_empty() {
            return view! {
                <Empty title="No attempts yet">"Send a message or a test event; each HTTP request shows up here."</Empty>
            }
            .into_any();
        }
        let scope = scope.clone();
        view! {
            <table class="table compact attempts-table">
                <thead><tr><th>"Time"</th><th>"Result"</th><th>"Status code"</th><th>"Duration"</th><th>"Error"</th><th>"Trigger"</th><th>"Message"</th></tr></thead>
                <tbody>
                    {page.data.into_iter().map(|a| view! {
                        <tr class=format!("attempt-row attempt-{}", a.status)>
                            <td>{fmt_time(&a.created_at)}</td>
                            <td>{badge(&a.status)}</td>
                            <td>{a.response_status_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into())}</td>
                            <td>{format!("{} ms", a.duration_ms)}</td>
                            <td>{a.error_class.clone().unwrap_or_else(|| "—".into())}</td>
                            <td>{a.trigger.clone()}</td>
                            <td><a href=scope.link(&format!("/msg/{}", a.message_id))><code>{a.message_id.to_string()}</code></a></td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    })
}

#[component]
fn Stats(stats: LocalResource<api::ApiResult<EndpointStatsOut>>) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Statistics"</h2>
            {async_view(stats, |stats| view! {
                {stats.handshake.map(|h| {
                    let said = match (&h.paused_reason, &h.accepted_at) {
                        (Some(reason), _) => format!("Paused: {reason}. Asked again when the circuit's cool-down ends."),
                        (None, Some(at)) => format!(
                            "Accepted {}{}; asked again a day later.",
                            fmt_time(at),
                            h.allowed_rate_per_minute.map(|n| format!(", at most {n} requests a minute")).unwrap_or_default()
                        ),
                        (None, None) => "Not made yet: asked before the next delivery.".to_owned(),
                    };
                    view! { <p class="handshake-status"><strong>"CloudEvents handshake: "</strong>{said}</p> }
                })}
                <table class="table compact">
                    <thead><tr><th>"Window"</th><th>"Attempts"</th><th>"Succeeded"</th><th>"Failed"</th><th>"Success rate"</th><th>"p50"</th><th>"p95"</th><th>"Waiting"</th><th>"Dead"</th></tr></thead>
                    <tbody>
                        {stats.windows.into_iter().map(|w| {
                            let waiting = ["pending", "sending", "failed"].iter().map(|s| w.deliveries.get(*s).copied().unwrap_or(0)).sum::<u64>();
                            view! {
                                <tr>
                                    <td>{format!("last {}", w.window)}</td>
                                    <td>{fmt_count(w.attempts)}</td>
                                    <td>{fmt_count(w.succeeded)}</td>
                                    <td>{fmt_count(w.failed)}</td>
                                    <td>{fmt_percent(w.success_rate)}</td>
                                    <td>{fmt_ms(w.p50_ms)}</td>
                                    <td>{fmt_ms(w.p95_ms)}</td>
                                    <td>{fmt_count(waiting)}</td>
                                    <td>{fmt_count(w.deliveries.get("dead").copied().unwrap_or(0))}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </section>
    }
}

/// Bulk recovery and replay-missing, with the job's progress polled until it finishes.
#[component]
fn Replay(ep_path: String, on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let since = RwSignal::new("24".to_owned());
    let job = RwSignal::new(None::<JobOut>);
    let error = RwSignal::new(None::<ApiError>);
    let start = move |kind: &'static str| {
        let path = format!("{ep_path}/{kind}");
        let hours: i64 = since.get_untracked().parse().unwrap_or(24);
        let from = now() - Duration::hours(hours);
        let on_done = on_done.clone();
        spawn_local(async move {
            let started = if kind == "recover" {
                api::post::<_, JobOut>(&path, &RecoverIn { since: from, until: None }).await
            } else {
                api::post::<_, JobOut>(&path, &ReplayMissingIn { since: from }).await
            };
            match started {
                Ok(started) => {
                    error.set(None);
                    let id = started.id.to_string();
                    job.set(Some(started));
                    poll_job(id, job).await;
                    on_done();
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let recover = start.clone();
    view! {
        <section class="card" id="replay">
            <h2>"Recover and replay"</h2>
            <p class="muted">"Resend this endpoint's failed deliveries, or send the messages it never received, from a point in time. Rate limits and ordering still apply."</p>
            <div class="form form-inline">
                <label>
                    "Since"
                    <select name="replay-since" on:change=move |ev| since.set(event_target_value(&ev))>
                        <option value="1">"1 hour ago"</option>
                        <option value="6">"6 hours ago"</option>
                        <option value="24" selected>"24 hours ago"</option>
                        <option value="168">"7 days ago"</option>
                        <option value="720">"30 days ago"</option>
                    </select>
                </label>
                <button type="button" class="btn" id="recover" on:click=move |_| recover("recover")>"Recover failed"</button>
                <button type="button" class="btn" id="replay-missing" on:click=move |_| start("replay-missing")>"Replay missing"</button>
            </div>
            {move || error.get().map(|error| view! { <ErrorBox error/> })}
            {move || job.get().map(|job| view! { <JobProgress job/> })}
        </section>
    }
}

/// Polls `GET /job/{id}` every half second while the job runs.
async fn poll_job(id: String, job: RwSignal<Option<JobOut>>) {
    loop {
        if job.with_untracked(|j| j.as_ref().is_none_or(|j| j.state != "running")) {
            break;
        }
        sleep(500).await;
        if job.is_disposed() {
            break;
        }
        match api::get::<JobOut>(&format!("/job/{}", api::encode(&id))).await {
            Ok(fresh) => job.set(Some(fresh)),
            Err(_) => break,
        }
    }
}

#[component]
fn JobProgress(job: JobOut) -> impl IntoView {
    let finished = job.done + job.failed;
    // A running job counts its candidates before it sends: until then its total is 0.
    let counting = job.state == "running" && job.total == 0;
    let share = if counting {
        0.0
    } else if job.total == 0 {
        1.0
    } else {
        finished as f64 / job.total as f64
    };
    let kind = if job.kind == "recover" { "Recovery" } else { "Replay" };
    view! {
        <div class="job" id="job-progress" data-state=job.state.clone()>
            <div class="meter-caption">
                <span>{kind} " " {badge(&job.state)}</span>
                <span class="job-counts">
                    {if counting {
                        "counting what to send…".to_owned()
                    } else {
                        format!("{} of {} sent", fmt_count(finished), fmt_count(job.total))
                    }}
                    {(job.failed > 0).then(|| format!(" · {} failed again", fmt_count(job.failed)))}
                </span>
            </div>
            <div class="meter" role="progressbar" aria-valuemin="0" aria-valuemax=job.total aria-valuenow=finished>
                <div class="meter-fill meter-ok" style=format!("width: {:.1}%", share * 100.0)></div>
            </div>
            {(job.total == 0 && job.state != "running").then(|| view! { <p class="muted">"Nothing to send in that range."</p> })}
        </div>
    }
}

#[component]
fn Secret(ep_path: String, writable: bool) -> impl IntoView {
    let secret = RwSignal::new(None::<Result<EndpointSecretOut, ApiError>>);
    let rotated = RwSignal::new(false);
    let path = format!("{ep_path}/secret");
    let reveal = {
        let path = path.clone();
        move |_| {
            let path = path.clone();
            spawn_local(async move { secret.set(Some(api::get::<EndpointSecretOut>(&path).await)) });
        }
    };
    let rotate = move |_| {
        if !confirm(
            "Rotate the signing secret? The old one keeps signing alongside the new one for 24 hours.",
        ) {
            return;
        }
        let path = path.clone();
        spawn_local(async move {
            match api::post::<_, serde_json::Value>(
                &format!("{path}/rotate"),
                &EndpointSecretRotateIn::default(),
            )
            .await
            {
                Ok(_) => {
                    rotated.set(true);
                    secret.set(Some(api::get::<EndpointSecretOut>(&path).await));
                }
                Err(err) => secret.set(Some(Err(err))),
            }
        });
    };
    view! {
        <section class="card" id="secret">
            <div class="card-header">
                <h2>"Signing secret"</h2>
                <div class="page-actions">
                    <button type="button" class="btn btn-small" id="reveal-secret" on:click=reveal>"Reveal"</button>
                    {writable.then(|| view! { <button type="button" class="btn btn-small" id="rotate-secret" on:click=rotate>"Rotate"</button> })}
                </div>
            </div>
            <p class="muted">"Consumers verify the webhook-signature header with it (Standard Webhooks)."</p>
            {move || secret.get().map(|result| match result {
                Ok(secret) => view! {
                    <div class="secret-box">
                        {rotated.get().then(|| view! { <p class="notice">"New secret: the previous one keeps signing for 24 hours."</p> })}
                        <CopyField value=secret.key.clone() label="Signing secret"/>
                        {secret.public_key.clone().map(|key| view! {
                            <p class="muted">"Public key consumers verify v1a signatures with:"</p>
                            <CopyField value=key label="Public key"/>
                        })}
                        <p class="muted">{match secret.signature_scheme { SignatureScheme::V1 => "HMAC-SHA256 (v1)", SignatureScheme::V1a => "Ed25519 (v1a)" }}</p>
                    </div>
                }.into_any(),
                Err(error) => view! { <ErrorBox error/> }.into_any(),
            })}
        </section>
    }
}

/// The endpoint's settings form: sends only what changed as a PATCH.
#[component]
fn Settings(
    current: EndpointOut,
    ep_path: String,
    saved: RwSignal<bool>,
    reload: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let url = RwSignal::new(current.url.clone());
    let description = RwSignal::new(current.description.clone());
    let filter_types = RwSignal::new(current.filter_types.clone().map(|t| t.join(", ")).unwrap_or_default());
    let channels = RwSignal::new(current.channels.clone().map(|t| t.join(", ")).unwrap_or_default());
    let content_filter = RwSignal::new(
        current.filter.as_ref().and_then(|f| serde_json::to_string_pretty(f).ok()).unwrap_or_default(),
    );
    // Sent only when changed: saving other settings never needs the plan feature again.
    let transform_was = current.transform.clone().unwrap_or_default();
    let transform = RwSignal::new(transform_was.clone());
    let format = RwSignal::new(
        serde_json::to_value(current.format)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    );
    let fifo = RwSignal::new(current.ordering == EndpointOrdering::Fifo);
    // Sent only when changed: left alone, the setting follows the format's default.
    let handshake_was = current.handshake;
    let handshake = RwSignal::new(current.handshake);
    let rate_limit = RwSignal::new(current.rate_limit.map(|r| r.to_string()).unwrap_or_default());
    let timeout = RwSignal::new(current.timeout_ms.map(|r| r.to_string()).unwrap_or_default());
    let payload_mode = RwSignal::new(payload_mode_name(current.payload_mode).to_owned());
    let thin_above = RwSignal::new(current.thin_above_bytes.map(|n| n.to_string()).unwrap_or_default());
    let url_ttl = RwSignal::new(current.data_url_ttl_seconds.map(|n| n.to_string()).unwrap_or_default());
    let retry = RwSignal::new(
        current
            .retry_schedule
            .clone()
            .map(|s| s.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
    );
    let headers = RwSignal::new(String::new());
    let auth_kind = RwSignal::new(
        match &current.auth {
            None => "none",
            Some(EndpointAuthOut::Basic { .. }) => "basic",
            Some(EndpointAuthOut::Header { .. }) => "header",
            Some(EndpointAuthOut::OAuth2ClientCredentials { .. }) => "oauth2",
        }
        .to_owned(),
    );
    let auth_a = RwSignal::new(String::new());
    let auth_b = RwSignal::new(String::new());
    let auth_c = RwSignal::new(String::new());
    let auth_d = RwSignal::new(String::new());
    let auth_changed = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let header_names = current.header_names.join(", ");

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        saved.set(false);
        let number = |text: String, field: &str| -> Result<Patch<u32>, ApiError> {
            match text.trim() {
                "" => Ok(Patch::Null),
                t => t.parse().map(Patch::Value).map_err(|_| ApiError {
                    status: 422,
                    code: "validation_error".into(),
                    detail: format!("{field} must be a whole number."),
                }),
            }
        };
        let result = (|| -> Result<EndpointPatch, ApiError> {
            let retry_schedule = parse_schedule(&retry.get_untracked())?.map_or(Patch::Null, Patch::Value);
            let mut patch = EndpointPatch {
                url: Some(url.get_untracked().trim().to_owned()),
                description: Some(description.get_untracked()),
                filter_types: split_list(&filter_types.get_untracked()).map_or(Patch::Null, Patch::Value),
                channels: split_list(&channels.get_untracked()).map_or(Patch::Null, Patch::Value),
                filter: parse_json(&content_filter.get_untracked(), "content filter")?
                    .map_or(Patch::Null, Patch::Value),
                format: Some(parse_format(&format.get_untracked())),
                ordering: Some(if fifo.get_untracked() {
                    EndpointOrdering::Fifo
                } else {
                    EndpointOrdering::None
                }),
                rate_limit: number(rate_limit.get_untracked(), "The rate limit")?,
                timeout_ms: number(timeout.get_untracked(), "The timeout")?,
                retry_schedule,
                payload_mode: Some(parse_payload_mode(&payload_mode.get_untracked())),
                thin_above_bytes: number(thin_above.get_untracked(), "The thin threshold")?,
                data_url_ttl_seconds: number(url_ttl.get_untracked(), "The data URL lifetime")?,
                transform: match transform.get_untracked() {
                    now if now == transform_was => Patch::Absent,
                    now if now.trim().is_empty() => Patch::Null,
                    now => Patch::Value(now),
                },
                handshake: match handshake.get_untracked() {
                    now if now != handshake_was => Patch::Value(now),
                    _ => Patch::Absent,
                },
                ..Default::default()
            };
            let header_text = headers.get_untracked();
            if !header_text.trim().is_empty() {
                let mut map = BTreeMap::new();
                for line in header_text.lines().filter(|l| !l.trim().is_empty()) {
                    let (name, value) = line.split_once(':').ok_or_else(|| ApiError {
                        status: 422,
                        code: "validation_error".into(),
                        detail: format!("Header line '{line}' must look like 'Name: value'."),
                    })?;
                    map.insert(name.trim().to_owned(), value.trim().to_owned());
                }
                patch.headers = Some(map);
            }
            if auth_changed.get_untracked() {
                let (a, b, c, d) = (
                    auth_a.get_untracked(),
                    auth_b.get_untracked(),
                    auth_c.get_untracked(),
                    auth_d.get_untracked(),
                );
                patch.auth = match auth_kind.get_untracked().as_str() {
                    "basic" => Patch::Value(EndpointAuthIn::Basic { username: a, password: b }),
                    "header" => Patch::Value(EndpointAuthIn::Header { name: a, value: b }),
                    "oauth2" => Patch::Value(EndpointAuthIn::OAuth2ClientCredentials {
                        token_url: a,
                        client_id: b,
                        client_secret: c,
                        scope: (!d.trim().is_empty()).then_some(d),
                    }),
                    _ => Patch::Null,
                };
            }
            Ok(patch)
        })();
        let patch = match result {
            Ok(patch) => patch,
            Err(err) => {
                error.set(Some(err));
                return;
            }
        };
        let path = ep_path.clone();
        let reload = reload.clone();
        spawn_local(async move {
            match api::patch::<_, EndpointOut>(&path, &patch).await {
                Ok(_) => {
                    error.set(None);
                    saved.set(true);
                    reload();
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let auth_fields = move || {
        let field = |label: &'static str, name: &'static str, signal: RwSignal<String>, secret: bool| {
            view! {
                <label>{label}
                    <input type=if secret { "password" } else { "text" } name=name
                        on:input=move |ev| { signal.set(event_target_value(&ev)); auth_changed.set(true); }
                        prop:value=move || signal.get()/>
                </label>
            }
        };
        match auth_kind.get().as_str() {
            "basic" => view! { {field("Username", "auth-username", auth_a, false)} {field("Password", "auth-password", auth_b, true)} }.into_any(),
            "header" => view! { {field("Header name", "auth-header-name", auth_a, false)} {field("Header value", "auth-header-value", auth_b, true)} }.into_any(),
            "oauth2" => view! {
                {field("Token URL", "auth-token-url", auth_a, false)}
                {field("Client id", "auth-client-id", auth_b, false)}
                {field("Client secret", "auth-client-secret", auth_c, true)}
                {field("Scope", "auth-scope", auth_d, false)}
            }.into_any(),
            _ => ().into_any(),
        }
    };
    let current_auth = match &current.auth {
        None => "No authentication".to_owned(),
        Some(EndpointAuthOut::Basic { username }) => format!("Basic auth as {username}"),
        Some(EndpointAuthOut::Header { name }) => format!("Header {name}"),
        Some(EndpointAuthOut::OAuth2ClientCredentials { token_url, client_id, .. }) => {
            format!("OAuth2 client {client_id} at {token_url}")
        }
    };
    view! {
        <section class="card" id="settings">
            <h2>"Settings"</h2>
            <form class="form form-grid" on:submit=submit>
                <label class="span-2">"URL"<input type="url" name="url" required bind:value=url/></label>
                <label class="span-2">"Description"<input type="text" name="description" bind:value=description/></label>
                <label>"Event types"<input type="text" name="filter-types" placeholder="all" bind:value=filter_types/>
                    <span class="hint">"Comma-separated; wildcards such as invoice.* allowed."</span></label>
                <label>"Channels"<input type="text" name="channels" placeholder="all" bind:value=channels/></label>
                <div class="span-2 field"><span class="field-label">"Content filter"</span>
                    <FilterEditor pattern=content_filter name="content-filter"/></div>
                <div class="span-2 field"><span class="field-label">"Transform"</span>
                    <TransformEditor program=transform name="transform"/></div>
                <label>"Format"
                    <select name="format" prop:value=move || format.get() on:change=move |ev| format.set(event_target_value(&ev))>
                        <option value="json">"JSON (Standard Webhooks)"</option>
                        <option value="cloudevents_structured">"CloudEvents, structured"</option>
                        <option value="cloudevents_binary">"CloudEvents, binary"</option>
                    </select>
                </label>
                <label>"Rate limit (deliveries/s)"<input type="number" min="1" name="rate-limit" placeholder="plan default" bind:value=rate_limit/></label>
                <label>"Timeout (ms)"<input type="number" min="100" max="60000" name="timeout" placeholder="15000" bind:value=timeout/></label>
                <label>"Retry schedule (seconds)"<input type="text" name="retry-schedule" placeholder="5, 300, 1800, 7200, 18000, 36000, 36000" bind:value=retry/></label>
                <label>"Payload"
                    <select name="payload-mode" prop:value=move || payload_mode.get() on:change=move |ev| payload_mode.set(event_target_value(&ev))>
                        <option value="full">"Full: the payload is the body"</option>
                        <option value="thin">"Thin: a signed link to fetch it"</option>
                        <option value="auto">"Auto: thin above a size, or after a 413"</option>
                    </select>
                </label>
                <label>"Thin above (bytes, auto)"<input type="number" min="1024" max="20971520" name="thin-above" placeholder="262144" bind:value=thin_above/></label>
                <label>"Link lifetime (seconds)"<input type="number" min="1" max="604800" name="data-url-ttl" placeholder="86400" bind:value=url_ttl/>
                    <span class="hint">"How long a thin delivery's data_url can be fetched."</span></label>
                <label class="span-2">"Custom headers"
                    <textarea name="headers" rows="2" placeholder="X-Team: payments" bind:value=headers></textarea>
                    <span class="hint">{if header_names.is_empty() { "One 'Name: value' per line. Values are write-only.".to_owned() } else { format!("Now set: {header_names}. Values are write-only; entering headers replaces them.") }}</span>
                </label>
                <div class="checks span-2"><label class="check"><input type="checkbox" name="fifo" bind:checked=fifo/>"Deliver in order (FIFO): message n+1 waits until n succeeded or died"</label>
                    <label class="check"><input type="checkbox" name="handshake" bind:checked=handshake/>"CloudEvents handshake: ask the endpoint (OPTIONS) before the first delivery and daily; a refusal pauses it"</label></div>
                <fieldset class="span-2">
                    <legend>"Authentication " <span class="muted">{current_auth}</span></legend>
                    <label>"Type"
                        <select name="auth-type" prop:value=move || auth_kind.get() on:change=move |ev| { auth_kind.set(event_target_value(&ev)); auth_changed.set(true); }>
                            <option value="none">"None"</option>
                            <option value="basic">"Basic"</option>
                            <option value="header">"Custom header"</option>
                            <option value="oauth2">"OAuth2 client credentials"</option>
                        </select>
                    </label>
                    <div class="form-grid">{auth_fields}</div>
                </fieldset>
                {move || error.get().map(|error| view! { <div class="span-2"><ErrorBox error/></div> })}
                <div class="span-2 form-actions">
                    <button type="submit" class="btn btn-primary" id="save-endpoint">"Save changes"</button>
                    {move || saved.get().then(|| view! { <span class="saved" role="status">"Saved"</span> })}
                </div>
            </form>
        </section>
    }
}
