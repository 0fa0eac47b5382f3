//! The consumer portal: what a tenant's customer sees with a portal token (`/portal#<token>`).
//! It shows that one application's endpoints, logs and replay through the same pages as the
//! dashboard, with links under `/portal`; a read-only token hides every button that changes
//! something. The API enforces the scope; the page only mirrors it.

use hookline_types::ApplicationOut;
use leptos::prelude::*;
use leptos_router::hooks::use_location;
use serde::Deserialize;

use crate::{
    api::{self, Credentials},
    components::{async_view, now},
    pages::{apps::Endpoints, endpoint::EndpointPage, logs::Logs, message::MessagePage},
    shell::AppScope,
};

const STORAGE_KEY: &str = "hookline_portal_token";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PortalPage {
    Endpoints,
    Logs,
    Endpoint,
    Message,
}

/// The claims the portal needs to lay itself out. The server verifies the signature; the page
/// only reads which application the token is for and whether it may change things.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    ro: bool,
    exp: i64,
}

fn decode_claims(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let mut base64: String = payload
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !base64.len().is_multiple_of(4) {
        base64.push('=');
    }
    let json = web_sys::window()?.atob(&base64).ok()?;
    serde_json::from_str(&json).ok()
}

/// The token from the URL fragment (moved into session storage and out of the address bar), or
/// the one stored by an earlier page of this portal visit.
fn take_token() -> Option<String> {
    let window = web_sys::window()?;
    let storage = window.session_storage().ok().flatten();
    let hash = window.location().hash().ok().unwrap_or_default();
    let from_hash = hash.trim_start_matches('#').trim().to_owned();
    if !from_hash.is_empty() {
        if let Some(storage) = &storage {
            let _ = storage.set_item(STORAGE_KEY, &from_hash);
        }
        if let Ok(history) = window.history() {
            let path = window.location().pathname().unwrap_or_else(|_| "/portal".into());
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
        }
        return Some(from_hash);
    }
    storage?.get_item(STORAGE_KEY).ok().flatten()
}

#[component]
pub fn Portal(page: PortalPage) -> impl IntoView {
    let token = take_token();
    let claims = token.as_deref().and_then(decode_claims);
    let (Some(token), Some(claims)) = (token, claims) else {
        return invalid("This link does not contain a portal token.").into_any();
    };
    if claims.exp * 1000 <= now().timestamp_millis() {
        return invalid("This portal link has expired.").into_any();
    }
    api::set_credentials(Credentials::Portal { token });
    provide_context(AppScope {
        app: claims.sub.clone(),
        base: "/portal".into(),
        portal: true,
        read_only: claims.ro,
    });
    let app_path = format!("/app/{}", api::encode(&claims.sub));
    let app = LocalResource::new(move || {
        let path = app_path.clone();
        async move { api::get::<ApplicationOut>(&path).await }
    });
    let location = use_location();
    let tab = move |href: &'static str, label: &'static str| {
        let current = move || {
            let path = location.pathname.get();
            let active =
                if href == "/portal" { !path.starts_with("/portal/logs") } else { path.starts_with(href) };
            active.then_some("page")
        };
        view! { <a class="tab" href=href aria-current=current>{label}</a> }
    };
    view! {
        <div class="portal">
            <header class="portal-header">
                <div class="portal-title">
                    <span class="brand-mark" aria-hidden="true">"⟿"</span>
                    <span>"Webhooks"</span>
                    <span class="portal-app">{async_view(app, |app| app.name)}</span>
                </div>
                {claims.ro.then(|| view! { <span class="badge badge-neutral">"read only"</span> })}
            </header>
            <nav class="tabs portal-tabs" aria-label="Portal">
                {tab("/portal", "Endpoints")}
                {tab("/portal/logs", "Logs")}
            </nav>
            <main class="content portal-content">
                {match page {
                    PortalPage::Endpoints => view! { <Endpoints/> }.into_any(),
                    PortalPage::Logs => view! { <Logs/> }.into_any(),
                    PortalPage::Endpoint => view! { <EndpointPage/> }.into_any(),
                    PortalPage::Message => view! { <MessagePage/> }.into_any(),
                }}
            </main>
        </div>
    }
    .into_any()
}

fn invalid(reason: &'static str) -> impl IntoView {
    view! {
        <main class="centered">
            <div class="card narrow" id="portal-invalid">
                <h1>"Portal link not valid"</h1>
                <p>{reason} " Ask the service that sent it to you for a new link."</p>
            </div>
        </main>
    }
}
