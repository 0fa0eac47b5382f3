//! Hookline's dashboard: a client-side Leptos app over Hookline's own REST API. It depends on
//! `hookline-types` only, so the dashboard can do nothing the API cannot.
//!
//! This is the first page; the dashboard issue grows it (pages/, components/, api/).

use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

#[component]
fn App() -> impl IntoView {
    view! {
        <main class="shell">
            <header>
                <h1>"Hookline"</h1>
                <p class="tagline">"Webhooks your customers can trust."</p>
            </header>
            <section class="card">
                <h2>"The dashboard is on its way"</h2>
                <p>
                    "The API is running. Until the dashboard's pages land, use the REST API: "
                    <a href="/api/docs">"API reference"</a>
                    " · "
                    <a href="/api/openapi.json">"OpenAPI document"</a>
                </p>
            </section>
        </main>
    }
}

#[wasm_bindgen(start)]
pub fn start() {
    leptos::mount::mount_to_body(App);
}
