//! The signed-in layout: the session (loaded once from `GET /auth/me`), the sidebar, and the
//! application scope pages about one application read.

use hookline_types::SessionOut;
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::{use_location, use_navigate, use_params_map};

use crate::{
    api::{self, Credentials},
    components::Loading,
};

/// The signed-in user and tenant; `None` until `/auth/me` answered.
#[derive(Clone, Copy)]
pub struct Session(pub RwSignal<Option<SessionOut>>);

pub fn provide_session() {
    provide_context(Session(RwSignal::new(None)));
}

pub fn use_session() -> RwSignal<Option<SessionOut>> {
    expect_context::<Session>().0
}

/// Stores a fresh session (after sign-up or log-in) for the pages and the API client. Takes the
/// signal rather than reading the context: it runs in a task, outside the component tree.
pub fn start_session(signal: RwSignal<Option<SessionOut>>, session: SessionOut) {
    api::set_credentials(Credentials::Session { csrf_token: session.csrf_token.clone() });
    signal.set(Some(session));
}

/// Which application a page is about, and how it links: `/apps/{app}` in the dashboard, `/portal`
/// in the consumer portal (where `read_only` tokens hide every button that changes something).
#[derive(Clone, Debug, PartialEq)]
pub struct AppScope {
    pub app: String,
    pub base: String,
    pub portal: bool,
    pub read_only: bool,
}

impl AppScope {
    /// An API path below the application: `api("/endpoint")` → `/app/{app}/endpoint`.
    pub fn api(&self, rest: &str) -> String {
        format!("/app/{}{rest}", api::encode(&self.app))
    }

    /// A dashboard link below the application's base.
    pub fn link(&self, rest: &str) -> String {
        format!("{}{rest}", self.base)
    }
}

pub fn use_scope() -> AppScope {
    expect_context::<AppScope>()
}

/// Provides the [`AppScope`] of the `:app` route parameter to its children.
#[component]
pub fn AppRoute(children: ChildrenFn) -> impl IntoView {
    let params = use_params_map();
    move || {
        let app = params.read().get("app").unwrap_or_default();
        provide_context(AppScope { base: format!("/apps/{app}"), app, portal: false, read_only: false });
        children()
    }
}

#[component]
fn NavLink(href: &'static str, label: &'static str, icon: &'static str) -> impl IntoView {
    let location = use_location();
    let active = move || {
        let path = location.pathname.get();
        if href == "/" {
            path == "/"
        } else {
            path == href
                || path.starts_with(&format!("{href}/"))
                || (href == "/apps" && path.starts_with("/apps"))
        }
    };
    view! {
        <a class="nav-link" href=href aria-current=move || active().then_some("page")>
            <span class="nav-icon" aria-hidden="true">{icon}</span>
            {label}
        </a>
    }
}

/// The signed-in layout. Without a session it asks `/auth/me` once and sends the visitor to the
/// log-in page when there is none.
#[component]
pub fn Shell(children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    if session.get_untracked().is_none() {
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::get::<SessionOut>("/auth/me").await {
                Ok(me) => start_session(session, me),
                Err(_) => navigate("/login", Default::default()),
            }
        });
    }
    let ready = Memo::new(move |_| session.with(Option::is_some));
    let logout = move |_| {
        let navigate = navigate.clone();
        spawn_local(async move {
            let _ = api::post::<_, serde_json::Value>("/auth/logout", &serde_json::json!({})).await;
            api::set_credentials(Credentials::Anonymous);
            session.set(None);
            navigate("/login", Default::default());
        });
    };
    let org = move || session.with(|s| s.as_ref().map(|s| s.tenant.name.clone()).unwrap_or_default());
    let plan = move || session.with(|s| s.as_ref().map(|s| s.tenant.plan.clone()).unwrap_or_default());
    let email = move || session.with(|s| s.as_ref().map(|s| s.user.email.clone()).unwrap_or_default());
    view! {
        <Show when=move || ready.get() fallback=|| view! { <main class="centered"><Loading/></main> }>
            <div class="layout">
                <nav class="sidebar" aria-label="Main">
                    <a class="brand" href="/">
                        <span class="brand-mark" aria-hidden="true">"⟿"</span>
                        "Hookline"
                    </a>
                    <div class="nav-group">
                        <NavLink href="/" label="Overview" icon="◔"/>
                        <NavLink href="/apps" label="Applications" icon="▦"/>
                        <NavLink href="/sources" label="Sources" icon="⇲"/>
                        <NavLink href="/logs" label="Logs" icon="≡"/>
                        <NavLink href="/event-types" label="Event types" icon="◇"/>
                        <NavLink href="/filters" label="Content filters" icon="⋔"/>
                        <NavLink href="/transforms" label="Transformations" icon="ƒ"/>
                        <NavLink href="/api-keys" label="API keys" icon="✦"/>
                        <NavLink href="/billing" label="Usage & billing" icon="▤"/>
                    </div>
                    <div class="sidebar-footer">
                        <div class="org">
                            <span class="org-name">{org}</span>
                            <span class="plan-pill">{plan}</span>
                        </div>
                        <div class="user-email">{email}</div>
                        <button type="button" class="btn btn-ghost btn-small" on:click=logout.clone()>"Log out"</button>
                    </div>
                </nav>
                <main class="content">{children()}</main>
            </div>
        </Show>
    }
}
