//! The event-type catalog: names, descriptions, JSON Schemas and example payloads.

use hookline_types::{EventTypeIn, EventTypeOut, EventTypePatch, ListResponse};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::{self, ApiError},
    components::{Empty, ErrorBox, PageHeader, async_view, badge},
};

/// A retry schedule typed as seconds separated by commas; empty is none.
pub fn parse_schedule(text: &str) -> Result<Option<Vec<u32>>, ApiError> {
    match crate::components::split_list(text) {
        None => Ok(None),
        Some(items) => {
            items.iter().map(|s| s.parse::<u32>()).collect::<Result<Vec<_>, _>>().map(Some).map_err(|_| {
                ApiError {
                    status: 422,
                    code: "validation_error".into(),
                    detail: "The retry schedule is a list of seconds, e.g. 5, 300, 1800.".into(),
                }
            })
        }
    }
}

pub fn parse_json(text: &str, what: &str) -> Result<Option<serde_json::Value>, ApiError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|err| ApiError {
        status: 422,
        code: "validation_error".into(),
        detail: format!("The {what} is not valid JSON: {err}"),
    })
}

#[component]
pub fn EventTypes() -> impl IntoView {
    let types = LocalResource::new(|| api::get::<ListResponse<EventTypeOut>>("/event-type?limit=250"));
    let name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let schema = RwSignal::new(String::new());
    let example = RwSignal::new(String::new());
    let retry = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = match (
            parse_json(&schema.get_untracked(), "schema"),
            parse_json(&example.get_untracked(), "example"),
            parse_schedule(&retry.get_untracked()),
        ) {
            (Ok(schema), Ok(example), Ok(retry_schedule)) => EventTypeIn {
                name: name.get_untracked().trim().to_owned(),
                description: description.get_untracked(),
                schema,
                example,
                retry_schedule,
                archived: false,
            },
            (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
                error.set(Some(err));
                return;
            }
        };
        spawn_local(async move {
            match api::post::<_, EventTypeOut>("/event-type", &input).await {
                Ok(_) => {
                    error.set(None);
                    name.set(String::new());
                    description.set(String::new());
                    schema.set(String::new());
                    example.set(String::new());
                    retry.set(String::new());
                    types.refetch();
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let archive = move |name: String, archived: bool| {
        spawn_local(async move {
            let patch = EventTypePatch { archived: Some(archived), ..Default::default() };
            match api::patch::<_, EventTypeOut>(&format!("/event-type/{}", api::encode(&name)), &patch).await
            {
                Ok(_) => types.refetch(),
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <PageHeader title="Event types".into() subtitle="The catalog your consumers subscribe to. A schema makes the API refuse payloads that do not match it."/>
        <section class="card">
            <h2>"New event type"</h2>
            <form class="form form-grid" id="new-event-type" on:submit=create>
                <label>"Name"<input type="text" name="event-type-name" placeholder="invoice.paid" required bind:value=name/></label>
                <label>"Description"<input type="text" name="event-type-description" bind:value=description/></label>
                <label>"JSON Schema (optional)"<textarea name="event-type-schema" rows="4" placeholder=r#"{"type": "object", "required": ["id"]}"# bind:value=schema></textarea></label>
                <label>"Example payload (optional)"<textarea name="event-type-example" rows="4" placeholder=r#"{"id": "inv_123", "amount": 4200}"# bind:value=example></textarea></label>
                <label>"Retry schedule (seconds, optional)"<input type="text" name="event-type-retry" placeholder="default: 5, 300, 1800, 7200, 18000, 36000, 36000" bind:value=retry/>
                    <span class="hint">"For endpoints without a schedule of their own."</span></label>
                {move || error.get().map(|error| view! { <div class="span-2"><ErrorBox error/></div> })}
                <div class="span-2"><button type="submit" class="btn btn-primary">"Add event type"</button></div>
            </form>
        </section>
        <section class="card">
            {async_view(types, move |page| {
                if page.data.is_empty() {
                    return view! {
                        <Empty title="No event types yet">
                            "Messages may use any event type; adding them here documents them for your consumers and lets endpoints filter on them."
                        </Empty>
                    }
                    .into_any();
                }
                view! {
                    <div class="catalog" id="event-types">
                        {page.data.into_iter().map(|t| {
                            let name = t.name.clone();
                            let archived = t.archived;
                            view! {
                                <article class="catalog-item">
                                    <header>
                                        <span class="event-type">{t.name.clone()}</span>
                                        {archived.then(|| badge("archived"))}
                                        <button type="button" class="btn btn-small btn-ghost" on:click=move |_| archive(name.clone(), !archived)>
                                            {if archived { "Unarchive" } else { "Archive" }}
                                        </button>
                                    </header>
                                    <p>{if t.description.is_empty() { "No description.".to_owned() } else { t.description.clone() }}</p>
                                    {t.retry_schedule.as_ref().map(|s| view! {
                                        <p class="muted retry-schedule">"Retries after " {s.iter().map(|n| format!("{n} s")).collect::<Vec<_>>().join(", ")}</p>
                                    })}
                                    <div class="two-columns">
                                        <div><h3>"Schema"</h3><pre class="code">{t.schema.as_ref().map(|s| serde_json::to_string_pretty(s).unwrap_or_default()).unwrap_or_else(|| "none: any JSON payload".into())}</pre></div>
                                        <div><h3>"Example"</h3><pre class="code">{t.example.as_ref().map(|s| serde_json::to_string_pretty(s).unwrap_or_default()).unwrap_or_else(|| "none".into())}</pre></div>
                                    </div>
                                </article>
                            }
                        }).collect_view()}
                    </div>
                }
                .into_any()
            })}
        </section>
    }
}
