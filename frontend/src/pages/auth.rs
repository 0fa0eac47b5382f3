//! Sign up and log in. The API sets the HttpOnly session cookie; the body's CSRF token is kept
//! in memory for state-changing requests.

use hookline_types::{LoginIn, SessionOut, SignupIn};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{
    api::{self, ApiError},
    components::ErrorBox,
    shell::{start_session, use_session},
};

#[component]
fn AuthCard(title: &'static str, subtitle: &'static str, children: Children) -> impl IntoView {
    view! {
        <main class="auth-page">
            <div class="auth-brand">
                <span class="brand-mark" aria-hidden="true">"⟿"</span>
                "Hookline"
            </div>
            <div class="card auth-card">
                <h1>{title}</h1>
                <p class="subtitle">{subtitle}</p>
                {children()}
            </div>
        </main>
    }
}

#[component]
pub fn Login() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let session_signal = use_session();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        let navigate = navigate.clone();
        let input = LoginIn { email: email.get_untracked(), password: password.get_untracked() };
        spawn_local(async move {
            match api::post::<_, SessionOut>("/auth/login", &input).await {
                Ok(session) => {
                    start_session(session_signal, session);
                    navigate("/", Default::default());
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    view! {
        <AuthCard title="Log in" subtitle="Welcome back. Your webhooks kept running while you were away.">
            <form class="form" on:submit=submit>
                {move || error.get().map(|error| view! { <ErrorBox error/> })}
                <label>"Email"<input type="email" name="email" autocomplete="username" required bind:value=email/></label>
                <label>"Password"<input type="password" name="password" autocomplete="current-password" required bind:value=password/></label>
                <button type="submit" class="btn btn-primary btn-block" disabled=move || busy.get()>"Log in"</button>
            </form>
            <p class="auth-switch">"New to Hookline? " <a href="/signup">"Create an account"</a></p>
        </AuthCard>
    }
}

#[component]
pub fn Signup() -> impl IntoView {
    let organization = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let session_signal = use_session();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        let navigate = navigate.clone();
        let input = SignupIn {
            email: email.get_untracked(),
            password: password.get_untracked(),
            organization_name: organization.get_untracked(),
        };
        spawn_local(async move {
            match api::post::<_, SessionOut>("/auth/signup", &input).await {
                Ok(session) => {
                    start_session(session_signal, session);
                    navigate("/apps", Default::default());
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    view! {
        <AuthCard title="Create your account" subtitle="Start on the free plan: 10,000 messages a month, no card needed.">
            <form class="form" on:submit=submit>
                {move || error.get().map(|error| view! { <ErrorBox error/> })}
                <label>"Organization"<input type="text" name="organization" autocomplete="organization" required bind:value=organization/></label>
                <label>"Email"<input type="email" name="email" autocomplete="username" required bind:value=email/></label>
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="new-password" minlength="10" required bind:value=password/>
                    <span class="hint">"At least 10 characters."</span>
                </label>
                <button type="submit" class="btn btn-primary btn-block" disabled=move || busy.get()>"Create account"</button>
            </form>
            <p class="auth-switch">"Already have an account? " <a href="/login">"Log in"</a></p>
        </AuthCard>
    }
}
