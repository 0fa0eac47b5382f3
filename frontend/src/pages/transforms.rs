//! Transformations: the jq editor (a program with a live preview on a sample message, used by the
//! endpoint settings) and the Transformations page, where a program can be tried on any event
//! type's example or a pasted payload. Both run the program through `POST /api/v1/transform/test`,
//! the same sandbox the engine uses.

use hookline_types::{TransformTestIn, TransformTestOut};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api,
    components::{PageHeader, sleep},
    pages::routing::SampleMessage,
};

/// What the preview says about the current program and sample.
#[derive(Clone, Debug, PartialEq)]
enum Preview {
    Empty,
    Running,
    Sent(TransformTestOut),
    Skipped,
    Failed(String),
}

/// How long typing must pause before the program is run: one sandbox run per pause, not per key.
const QUIET_MS: i32 = 300;

/// A transform textarea (`name`) bound to `program`, with a preview: the program runs on a sample
/// message (an event type, its catalog example loaded when picked, or a pasted payload) whenever
/// either changes, and the preview shows what would be sent — body, event type, headers — or
/// that the delivery would be skipped, or why the program failed.
#[component]
pub fn TransformEditor(program: RwSignal<String>, name: &'static str) -> impl IntoView {
    let event_type = RwSignal::new(String::new());
    let payload = RwSignal::new(String::from("{}"));
    let preview = RwSignal::new(Preview::Empty);
    // Answers can come back out of order: only the latest request's is shown.
    let latest = StoredValue::new(0u64);
    Effect::new(move || {
        let (text, event_type, payload) = (program.get(), event_type.get(), payload.get());
        let seq = latest.get_value() + 1;
        latest.set_value(seq);
        if text.trim().is_empty() {
            preview.set(Preview::Empty);
            return;
        }
        let payload = match serde_json::from_str::<serde_json::Value>(&payload) {
            Ok(payload) => payload,
            Err(err) => {
                preview.set(Preview::Failed(format!("The sample payload is not JSON: {err}")));
                return;
            }
        };
        let event_type = if event_type.trim().is_empty() { "sample.event".to_owned() } else { event_type };
        let input = TransformTestIn { transform: text, event_type, payload: Some(payload), headers: None };
        spawn_local(async move {
            sleep(QUIET_MS).await;
            if latest.get_value() != seq {
                return; // Typed on: a later run shows.
            }
            preview.set(Preview::Running);
            let answer = api::post::<_, TransformTestOut>("/transform/test", &input).await;
            if latest.get_value() != seq {
                return;
            }
            preview.set(match answer {
                Ok(out) if out.skipped => Preview::Skipped,
                Ok(TransformTestOut { error: Some(error), .. }) => Preview::Failed(error),
                Ok(out) => Preview::Sent(out),
                // A program that does not compile is a 422 whose detail has jaq's message and
                // position; a plan without the feature is a 403 that says so.
                Err(err) => Preview::Failed(err.detail),
            });
        });
    });
    view! {
        <div class="transform-editor">
            <textarea name=name rows="5" spellcheck="false" placeholder="{payload: {total: .payload.amount}}" bind:value=program></textarea>
            <span class="hint">"A jq program over {event_type, payload, headers} returning {payload, event_type?, headers?}, or null to skip. Empty: the payload is used as it is. Plan feature: transformations."</span>
            <SampleMessage event_type payload name class="transform-sample"/>
            <div class="transform-preview" aria-live="polite" data-state=move || match preview.get() {
                Preview::Empty => "empty",
                Preview::Running => "running",
                Preview::Sent(_) => "sent",
                Preview::Skipped => "skipped",
                Preview::Failed(_) => "failed",
            }>{move || match preview.get() {
                Preview::Empty => view! { <span class="muted">"No transform: the payload is sent as it is."</span> }.into_any(),
                Preview::Running => view! { <span class="muted">"Running…"</span> }.into_any(),
                Preview::Skipped => view! { <span class="badge badge-warn">"Skipped"</span> " The program returned null: an endpoint would send nothing (the delivery ends filtered); a source would store nothing." }.into_any(),
                Preview::Failed(message) => view! { <span class="badge badge-bad">"Fails"</span> " " <span class="transform-error">{message}</span> }.into_any(),
                Preview::Sent(out) => {
                    let body = out.payload.as_ref().and_then(|p| serde_json::to_string_pretty(p).ok()).unwrap_or_default();
                    let headers = out.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("\n");
                    view! {
                        <span class="badge badge-ok">"Sends"</span>
                        " as " <code class="transform-event-type">{out.event_type.clone().unwrap_or_default()}</code>
                        <pre class="code transform-output">{body}</pre>
                        {(!headers.is_empty()).then(|| view! { <pre class="code transform-headers">{headers}</pre> })}
                    }.into_any()
                }
            }}</div>
        </div>
    }
}

/// The Transformations page: what a transform can do, and a place to try one.
#[component]
pub fn Transformations() -> impl IntoView {
    let program = RwSignal::new(String::new());
    view! {
        <PageHeader title="Transformations".to_owned() subtitle="Reshape what an endpoint receives with a jq program.".to_owned()/>
        <section class="card" id="transform-playground">
            <h2>"Try a transform"</h2>
            <p class="muted">
                "An endpoint's transform runs on each delivery in a sandbox with no I/O and a CPU-time limit (50 ms unless the operator set another). "
                "It returns the body to send — signed as sent — and optionally a new event type and extra headers; "
                "null skips the delivery. Set one in an endpoint's settings."
            </p>
            <TransformEditor program name="playground-transform"/>
        </section>
    }
}
