//! Sign up and log in. The API sets the HttpOnly session cookie; the body's CSRF token is kept
//! in memory for state-changing requests.

use hookline_types::{LoginIn, SessionOut, SignupIn};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::{NavigateOptions, hooks::use_navigate};
use serde::Serialize;

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

/// What the log-in and sign-up forms share: posting the form, starting the session, going on.
#[derive(Clone, Copy)]
struct AuthForm {
    error: RwSignal<Option<ApiError>>,
    busy: RwSignal<bool>,
    session: RwSignal<Option<SessionOut>>,
}

impl AuthForm {
    fn new() -> AuthForm {
        AuthForm { error: RwSignal::new(None), busy: RwSignal::new(false), session: use_session() }
    }

    /// Posts `input` to `path`; on success starts the session and `navigate`s to `next`.
    fn send<B: Serialize + 'static>(
        self,
        navigate: impl Fn(&str, NavigateOptions) + 'static,
        path: &'static str,
        input: B,
        next: &'static str,
    ) {
        let AuthForm { error, busy, session } = self;
        busy.set(true);
        spawn_local(async move {
            match api::post::<_, SessionOut>(path, &input).await {
                Ok(started) => {
                    start_session(session, started);
                    navigate(next, Default::default());
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    }
}

#[component]
pub fn Login() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let form = AuthForm::new();
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = LoginIn { email: email.get_untracked(), password: password.get_untracked() };
        form.send(navigate.clone(), "/auth/login", input, "/");
    };
    let AuthForm { error, busy, .. } = form;
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
    let form = AuthForm::new();
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = SignupIn {
            email: email.get_untracked(),
            password: password.get_untracked(),
            organization_name: organization.get_untracked(),
        };
        form.send(navigate.clone(), "/auth/signup", input, "/apps");
    };
    let AuthForm { error, busy, .. } = form;
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
