//! API keys: create (the key is shown once), list with last use, revoke.

use hookline_types::{ApiKeyCreatedOut, ApiKeyIn, ApiKeyMode, ApiKeyOut, ApiKeyScope, ListResponse};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::{self, ApiError},
    components::{
        CopyField, Empty, ErrorBox, PageHeader, async_view, badge, confirm, fmt_opt_time, fmt_time,
    },
};

fn scope_name(scope: &ApiKeyScope) -> &'static str {
    match scope {
        ApiKeyScope::Read => "read",
        ApiKeyScope::Write => "write",
        ApiKeyScope::Admin => "admin",
    }
}

#[component]
pub fn ApiKeys() -> impl IntoView {
    let keys = LocalResource::new(|| api::get::<ListResponse<ApiKeyOut>>("/api-key?limit=250"));
    let name = RwSignal::new(String::new());
    let scope = RwSignal::new("admin".to_owned());
    let test_mode = RwSignal::new(false);
    let created = RwSignal::new(None::<ApiKeyCreatedOut>);
    let error = RwSignal::new(None::<ApiError>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let scopes = match scope.get_untracked().as_str() {
            "read" => vec![ApiKeyScope::Read],
            "write" => vec![ApiKeyScope::Write],
            _ => vec![ApiKeyScope::Admin],
        };
        let input = ApiKeyIn {
            name: name.get_untracked(),
            scopes: Some(scopes),
            mode: if test_mode.get_untracked() { ApiKeyMode::Test } else { ApiKeyMode::Live },
            expires_at: None,
        };
        spawn_local(async move {
            match api::post::<_, ApiKeyCreatedOut>("/api-key", &input).await {
                Ok(key) => {
                    error.set(None);
                    name.set(String::new());
                    created.set(Some(key));
                    keys.refetch();
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let revoke = move |id: String, label: String| {
        if !confirm(&format!("Revoke the key '{label}'? Requests made with it fail from now on.")) {
            return;
        }
        spawn_local(async move {
            match api::delete(&format!("/api-key/{}", api::encode(&id))).await {
                Ok(()) => keys.refetch(),
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <PageHeader title="API keys".into() subtitle="Send them as 'Authorization: Bearer <key>'. A key is shown once, when it is created."/>
        <section class="card">
            <h2>"New key"</h2>
            <form class="form form-inline" id="new-api-key" on:submit=create>
                <label>"Name"<input type="text" name="key-name" placeholder="production backend" required bind:value=name/></label>
                <label>"Access"
                    <select name="key-scope" on:change=move |ev| scope.set(event_target_value(&ev))>
                        <option value="admin">"Admin: everything"</option>
                        <option value="write">"Write: send messages, manage endpoints"</option>
                        <option value="read">"Read only"</option>
                    </select>
                </label>
                <label class="check"><input type="checkbox" name="key-test" bind:checked=test_mode/>"Test mode"</label>
                <button type="submit" class="btn btn-primary">"Create key"</button>
            </form>
            {move || error.get().map(|error| view! { <ErrorBox error/> })}
            {move || created.get().map(|key| view! {
                <div class="alert alert-success" id="new-key">
                    <strong>{format!("Key '{}' created", key.api_key.name)}</strong>
                    <span>"Copy it now: it is not shown again."</span>
                    <CopyField value=key.key.clone() label="New API key"/>
                </div>
            })}
        </section>
        <section class="card">
            {async_view(keys, move |page| {
                if page.data.is_empty() {
                    return view! { <Empty title="No API keys">"Create one to call the API from your backend."</Empty> }.into_any();
                }
                view! {
                    <table class="table" id="api-keys-table">
                        <thead><tr><th>"Name"</th><th>"Key"</th><th>"Access"</th><th>"Created"</th><th>"Last used"</th><th>"State"</th><th></th></tr></thead>
                        <tbody>
                            {page.data.into_iter().map(|key| {
                                let state = if key.revoked_at.is_some() { "revoked" } else { "active" };
                                let (id, label) = (key.id.to_string(), key.name.clone());
                                view! {
                                    <tr class="api-key-row" data-name=key.name.clone()>
                                        <td>{key.name.clone()}</td>
                                        <td><code>{format!("{}…", key.prefix)}</code></td>
                                        <td>{key.scopes.iter().map(scope_name).collect::<Vec<_>>().join(", ")}</td>
                                        <td>{fmt_time(&key.created_at)}</td>
                                        <td>{fmt_opt_time(&key.last_used_at)}</td>
                                        <td>{badge(state)}</td>
                                        <td>{key.revoked_at.is_none().then(|| view! {
                                            <button type="button" class="btn btn-small btn-danger revoke" on:click=move |_| revoke(id.clone(), label.clone())>"Revoke"</button>
                                        })}</td>
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
