//! Small building blocks every page uses: loading, error and empty states, badges, time and
//! number formatting, copy buttons, and the one way pages render an API call's result.

use chrono::{DateTime, Utc};
use leptos::prelude::*;

use crate::api::{ApiError, ApiResult};

#[component]
pub fn Loading() -> impl IntoView {
    view! {
        <div class="loading" role="status" aria-live="polite">
            <span class="spinner" aria-hidden="true"></span>
            "Loading…"
        </div>
    }
}

/// An API error, with its `detail` (and code, for support requests).
#[component]
pub fn ErrorBox(error: ApiError) -> impl IntoView {
    let title = match error.status {
        0 => "Something went wrong",
        401 => "You are signed out",
        403 => "Not allowed",
        404 => "Not found",
        409 => "Conflict",
        422 => "Please check the form",
        429 => "Slow down",
        _ => "The request failed",
    };
    view! {
        <div class="alert alert-error" role="alert">
            <strong>{title}</strong>
            <span class="error-detail">{error.detail}</span>
            <code class="error-code">{error.code}</code>
        </div>
    }
}

/// An empty list: says what it is and what to do next.
#[component]
pub fn Empty(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="empty">
            <div class="empty-icon" aria-hidden="true">"◌"</div>
            <h3>{title}</h3>
            <div class="empty-body">{children()}</div>
        </div>
    }
}

/// Renders a resource: a spinner while it loads, the error's detail if it failed, else `render`.
/// While it reloads the previous value stays on screen.
pub fn async_view<T, V>(
    resource: LocalResource<ApiResult<T>>,
    render: impl Fn(T) -> V + Send + 'static,
) -> impl IntoView
where
    T: Clone + 'static,
    V: IntoView + 'static,
{
    move || match resource.get() {
        None => view! { <Loading/> }.into_any(),
        Some(Ok(value)) => render(value).into_any(),
        Some(Err(error)) => view! { <ErrorBox error/> }.into_any(),
    }
}

/// A coloured pill for a delivery, attempt, job or endpoint state.
pub fn badge(status: &str) -> impl IntoView + use<> {
    let tone = match status {
        "succeeded" | "enabled" | "completed" | "active" | "live" => "ok",
        "failed" | "past_due" | "failing" | "retrying" => "warn",
        "dead" | "disabled" | "revoked" | "cancelled" | "canceled" | "expired" => "bad",
        "pending" | "sending" | "running" | "queued" => "info",
        _ => "neutral",
    };
    let label = status.replace('_', " ");
    view! { <span class=format!("badge badge-{tone}")>{label}</span> }
}

pub fn fmt_time(time: &DateTime<Utc>) -> String {
    time.format("%b %-d, %H:%M:%S UTC").to_string()
}

pub fn fmt_opt_time(time: &Option<DateTime<Utc>>) -> String {
    time.as_ref().map(fmt_time).unwrap_or_else(|| "—".into())
}

/// 1234567 → "1,234,567".
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 1536 → "1.5 KB" (powers of 1000, as billing counts).
pub fn fmt_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} KB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

pub fn fmt_percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1} %", r * 100.0)).unwrap_or_else(|| "—".into())
}

pub fn fmt_ms(ms: Option<u32>) -> String {
    ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "—".into())
}

/// Now, from the browser's clock (chrono's clock is not available on wasm32 without JS glue).
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
}

/// RFC 3339 with a `Z`, as the API's time parameters take it.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A value shown in monospace with a button that copies it to the clipboard.
#[component]
pub fn CopyField(value: String, #[prop(optional)] label: &'static str) -> impl IntoView {
    let copied = RwSignal::new(false);
    let text = value.clone();
    let copy = move |_| {
        if let Some(window) = web_sys::window() {
            let _ = window.navigator().clipboard().write_text(&text);
            copied.set(true);
        }
    };
    view! {
        <div class="copy-field">
            <code class="copy-value" aria-label=label>{value}</code>
            <button type="button" class="btn btn-small" on:click=copy>
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </div>
    }
}

/// Page title row with optional actions on the right.
#[component]
pub fn PageHeader(
    title: String,
    #[prop(optional, into)] subtitle: Option<String>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <div class="page-header">
            <div>
                <h1>{title}</h1>
                {subtitle.map(|s| view! { <p class="subtitle">{s}</p> })}
            </div>
            <div class="page-actions">{children.map(|c| c())}</div>
        </div>
    }
}

/// A labelled number on the overview.
#[component]
pub fn Stat(
    label: &'static str,
    value: String,
    #[prop(optional, into)] hint: Option<String>,
) -> impl IntoView {
    view! {
        <div class="stat">
            <div class="stat-label">{label}</div>
            <div class="stat-value">{value}</div>
            {hint.map(|h| view! { <div class="stat-hint">{h}</div> })}
        </div>
    }
}

/// Splits "a, b ,c" into ["a", "b", "c"]; None when empty.
pub fn split_list(text: &str) -> Option<Vec<String>> {
    let items: Vec<String> =
        text.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    (!items.is_empty()).then_some(items)
}

/// Asks the browser's confirm dialog.
pub fn confirm(question: &str) -> bool {
    web_sys::window().and_then(|w| w.confirm_with_message(question).ok()).unwrap_or(false)
}

/// Waits `ms` milliseconds (a `setTimeout` promise).
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
