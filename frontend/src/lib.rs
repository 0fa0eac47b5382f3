//! Hookline's dashboard: a client-side Leptos app over Hookline's own REST API. It depends on
//! `hookline-types` only, so the dashboard can do nothing the API cannot.
//!
//! - `api`: the HTTP client (session cookie + CSRF header, or a portal token).
//! - `components`, `charts`: shared view pieces.
//! - `shell`: the signed-in layout and the session; `portal`: the consumer portal's layout.
//! - `pages/`: one module per page. Pages about one application (endpoints, logs, a message) read
//!   an [`shell::AppScope`] from context, so the tenant dashboard and the consumer portal share
//!   them and differ only in links and permissions.

pub mod api;
pub mod charts;
pub mod components;
pub mod pages;
pub mod portal;
pub mod shell;

use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};
use wasm_bindgen::prelude::wasm_bindgen;

use crate::{
    pages::{
        api_keys, apps, auth, billing, endpoint, event_types, fetches, logs, message, overview, routing,
        sources, transforms,
    },
    shell::{AppRoute, Shell},
};

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <main class="centered">
            <div class="card narrow">
                <h1>"Page not found"</h1>
                <p>"This address is not part of the dashboard."</p>
                <a class="btn btn-primary" href="/">"Go to the overview"</a>
            </div>
        </main>
    }
}

#[component]
pub fn App() -> impl IntoView {
    shell::provide_session();
    view! {
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/login") view=auth::Login/>
                <Route path=path!("/signup") view=auth::Signup/>
                <Route path=path!("/portal") view=|| view! { <portal::Portal page=portal::PortalPage::Endpoints/> }/>
                <Route path=path!("/portal/logs") view=|| view! { <portal::Portal page=portal::PortalPage::Logs/> }/>
                <Route path=path!("/portal/endpoints/:ep") view=|| view! { <portal::Portal page=portal::PortalPage::Endpoint/> }/>
                <Route path=path!("/portal/msg/:msg") view=|| view! { <portal::Portal page=portal::PortalPage::Message/> }/>
                <Route path=path!("/") view=|| view! { <Shell><overview::Overview/></Shell> }/>
                <Route path=path!("/apps") view=|| view! { <Shell><apps::Applications/></Shell> }/>
                <Route path=path!("/apps/:app") view=|| view! { <Shell><AppRoute><apps::ApplicationPage/></AppRoute></Shell> }/>
                <Route path=path!("/apps/:app/logs") view=|| view! { <Shell><AppRoute><logs::Logs/></AppRoute></Shell> }/>
                <Route path=path!("/apps/:app/endpoints/:ep") view=|| view! { <Shell><AppRoute><endpoint::EndpointPage/></AppRoute></Shell> }/>
                <Route path=path!("/apps/:app/msg/:msg") view=|| view! { <Shell><AppRoute><message::MessagePage/></AppRoute></Shell> }/>
                <Route path=path!("/apps/:app/payload-fetches") view=|| view! { <Shell><AppRoute><fetches::PayloadFetches/></AppRoute></Shell> }/>
                <Route path=path!("/sources") view=|| view! { <Shell><sources::Sources/></Shell> }/>
                <Route path=path!("/sources/:src") view=|| view! { <Shell><sources::SourcePage/></Shell> }/>
                <Route path=path!("/logs") view=|| view! { <Shell><logs::LogsIndex/></Shell> }/>
                <Route path=path!("/event-types") view=|| view! { <Shell><event_types::EventTypes/></Shell> }/>
                <Route path=path!("/filters") view=|| view! { <Shell><routing::ContentFilters/></Shell> }/>
                <Route path=path!("/transforms") view=|| view! { <Shell><transforms::Transformations/></Shell> }/>
                <Route path=path!("/api-keys") view=|| view! { <Shell><api_keys::ApiKeys/></Shell> }/>
                <Route path=path!("/billing") view=|| view! { <Shell><billing::Billing/></Shell> }/>
            </Routes>
        </Router>
    }
}

#[wasm_bindgen(start)]
pub fn start() {
    leptos::mount::mount_to_body(App);
}
