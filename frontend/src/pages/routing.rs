//! Routing rules: the content-filter editor (a pattern with a live preview against a sample
//! message, used by the endpoint forms) and the Content filters page, where a pattern can be
//! tried on any event type's example or a pasted payload.

use hookline_types::{EventTypeOut, FilterTestIn, FilterTestOut, ListResponse};
use leptos::{prelude::*, task::spawn_local};

use crate::{api, components::PageHeader};

/// What the preview says about the current pattern and sample.
#[derive(Clone, Debug, PartialEq)]
enum Preview {
    Empty,
    Matches,
    NoMatch(Vec<String>),
    Invalid(String),
}

/// A content-filter textarea (`name`) bound to `pattern`, with a preview: the pattern is tried on
/// a sample message (an event type, its catalog example loaded when picked, or a pasted payload)
/// through `POST /api/v1/filter/test` whenever either changes.
#[component]
pub fn FilterEditor(pattern: RwSignal<String>, name: &'static str) -> impl IntoView {
    let event_type = RwSignal::new(String::new());
    let payload = RwSignal::new(String::from("{}"));
    let preview = RwSignal::new(Preview::Empty);
    // Answers can come back out of order: only the latest request's is shown.
    let latest = StoredValue::new(0u64);
    Effect::new(move || {
        let (text, event_type, payload) = (pattern.get(), event_type.get(), payload.get());
        let seq = latest.get_value() + 1;
        latest.set_value(seq);
        if text.trim().is_empty() {
            preview.set(Preview::Empty);
            return;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|err| format!("The pattern is not JSON: {err}"))
            .and_then(|filter| {
                let payload = serde_json::from_str::<serde_json::Value>(&payload)
                    .map_err(|err| format!("The sample payload is not JSON: {err}"))?;
                let event_type =
                    if event_type.trim().is_empty() { "sample.event".to_owned() } else { event_type };
                Ok(FilterTestIn { filter, event_type, payload: Some(payload), channels: None, headers: None })
            });
        let input = match parsed {
            Ok(input) => input,
            Err(message) => {
                preview.set(Preview::Invalid(message));
                return;
            }
        };
        spawn_local(async move {
            let answer = api::post::<_, FilterTestOut>("/filter/test", &input).await;
            if latest.get_value() != seq {
                return;
            }
            preview.set(match answer {
                Ok(out) if out.matches => Preview::Matches,
                Ok(out) => Preview::NoMatch(out.failed_at.unwrap_or_default()),
                // The API's detail names the bad part's path (`body.filter.…`).
                Err(err) => Preview::Invalid(err.detail),
            });
        });
    });
    view! {
        <div class="filter-editor">
            <textarea name=name rows="4" placeholder=r#"{"payload": {"amount": [{"numeric": [">", 100]}]}}"# bind:value=pattern></textarea>
            <span class="hint">"An EventBridge-style event pattern over event_type, channels, payload and headers. Empty: nothing is filtered out."</span>
            <SampleMessage event_type payload name class="filter-sample"/>
            <p class="filter-preview" aria-live="polite">{move || match preview.get() {
                Preview::Empty => view! { <span class="muted">"No filter: nothing is filtered out."</span> }.into_any(),
                Preview::Matches => view! { <span class="badge badge-ok">"Matches"</span> " the sample message." }.into_any(),
                Preview::NoMatch(path) => view! {
                    <span class="badge badge-warn">"No match"</span>
                    " at " <code>{if path.is_empty() { "(root)".to_owned() } else { path.join(".") }}</code>
                }.into_any(),
                Preview::Invalid(message) => view! { <span class="badge badge-bad">"Invalid"</span> " " {message} }.into_any(),
            }}</p>
        </div>
    }
}

/// The sample message an editor previews on (`<details class=class>`): an event type, typed or
/// picked from the catalog (its example, when it has one, becomes the payload), and a payload.
/// Its fields are named `{name}-sample-type`, `{name}-sample-event-type`, `{name}-sample-payload`.
#[component]
pub fn SampleMessage(
    event_type: RwSignal<String>,
    payload: RwSignal<String>,
    name: &'static str,
    class: &'static str,
) -> impl IntoView {
    let types = LocalResource::new(|| api::get::<ListResponse<EventTypeOut>>("/event-type?limit=250"));
    let pick = move |ev: leptos::ev::Event| {
        let name = event_target_value(&ev);
        let example = types
            .get()
            .and_then(|r| r.ok())
            .and_then(|list| list.data.into_iter().find(|t| t.name == name))
            .and_then(|t| t.example)
            .and_then(|e| serde_json::to_string_pretty(&e).ok());
        event_type.set(name);
        if let Some(example) = example {
            payload.set(example);
        }
    };
    view! {
        <details class=class>
            <summary>"Preview on a sample message"</summary>
            <div class="form-grid">
                <label>"Event type"
                    <select name=format!("{name}-sample-type") on:change=pick>
                        <option value="">"(type one, or pick from the catalog)"</option>
                        {move || types.get().and_then(|r| r.ok()).map(|list| list.data.into_iter().map(|t| {
                            let label = if t.example.is_some() { format!("{} (example)", t.name) } else { t.name.clone() };
                            view! { <option value=t.name.clone()>{label}</option> }
                        }).collect_view())}
                    </select>
                    <input type="text" name=format!("{name}-sample-event-type") placeholder="sample.event" bind:value=event_type/>
                </label>
                <label>"Payload"
                    <textarea name=format!("{name}-sample-payload") rows="5" bind:value=payload></textarea>
                </label>
            </div>
        </details>
    }
}

/// The Content filters page: what a filter can say, and a place to try one.
#[component]
pub fn ContentFilters() -> impl IntoView {
    let pattern = RwSignal::new(String::new());
    view! {
        <PageHeader title="Content filters".to_owned() subtitle="Route messages to an endpoint by what they contain.".to_owned()/>
        <section class="card" id="filter-playground">
            <h2>"Try a filter"</h2>
            <p class="muted">
                "An endpoint with a content filter gets only the messages its pattern matches (after its event types and channels). "
                "Leaves are arrays of values or operators: prefix, suffix, anything-but, numeric, exists, wildcard, equals-ignore-case, cidr; "
                "$or combines alternatives. Set one on an endpoint's settings."
            </p>
            <FilterEditor pattern name="playground-filter"/>
        </section>
    }
}
