//! Tenants' JSON Schemas (an event type's `schema`): the one way they are compiled and run.
//!
//! A schema is tenant input that runs inside the server, so it is [`check`]ed before it is
//! compiled (bounded size, local references only, no reference cycle on one payload location,
//! bounded work per payload location), compiled with the `regex` crate's linear-time engine
//! (lookarounds and backreferences, which need backtracking, are refused), and both compiled and
//! run on [`SchemaThreads`], threads of their own with large stacks, never on the async workers
//! that serve requests and deliver webhooks.
//!
//! Uses: nothing of the rest of `hookline-core`.

mod check;

use std::{
    sync::{Arc, Mutex, mpsc},
    thread,
};

pub use check::{MAX_CHAIN, MAX_PAYLOAD_DEPTH, MAX_SCHEMA_BYTES, check};
use serde_json::Value;

/// A compiled schema.
pub type Validator = jsonschema::Validator;

/// Bounds for the `regex` engine: a pattern that compiles bigger is refused.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_DFA_SIZE_LIMIT: usize = 1 << 20;
/// A validation error list is cut here.
pub const MAX_ERRORS: usize = 20;

/// Checks and compiles `schema`; `Err` is a sentence for the `body.schema` field.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    check(schema)?;
    jsonschema::options()
        .with_pattern_options(
            jsonschema::PatternOptions::regex()
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_SIZE_LIMIT),
        )
        .build(schema)
        .map_err(|err| format!("not a valid JSON Schema: {err}"))
}

/// One error of a payload against a schema: where (JSON pointer segments) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub path: Vec<String>,
    pub message: String,
}

/// The payload's errors against the validator (at most [`MAX_ERRORS`]).
pub fn violations(validator: &Validator, payload: &Value) -> Vec<Violation> {
    validator
        .iter_errors(payload)
        .take(MAX_ERRORS)
        .map(|err| Violation {
            path: err
                .instance_path()
                .as_str()
                .split('/')
                .filter(|segment| !segment.is_empty())
                .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
                .collect(),
            message: err.to_string(),
        })
        .collect()
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that compile and run tenants' schemas. Each has a 64 MiB stack (reserved address
/// space; pages are only used as deep as a validation goes): a checked schema recurses at most
/// [`MAX_CHAIN`] subschemas per payload level and payloads nest at most [`MAX_PAYLOAD_DEPTH`]
/// levels. A job that panics is reported as an error and the thread carries on.
pub struct SchemaThreads {
    jobs: Mutex<mpsc::Sender<Job>>,
}

const STACK_BYTES: usize = 64 << 20;

impl SchemaThreads {
    pub fn start(threads: usize) -> SchemaThreads {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            thread::Builder::new()
                .name(format!("hookline-schema-{n}"))
                .stack_size(STACK_BYTES)
                .spawn(move || {
                    loop {
                        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        job();
                    }
                })
                .expect("starting a schema thread");
        }
        SchemaThreads { jobs: Mutex::new(jobs) }
    }

    /// Runs `work` on a schema thread and waits for it; `Err` when it panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .map_err(|panic| panic_message(panic.as_ref()));
            let _ = reply.send(result);
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| "the schema threads stopped".to_owned())?;
        answer.await.map_err(|_| "the schema thread dropped the job".to_owned())?
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn patterns_run_on_a_linear_time_engine_and_backtracking_constructs_are_refused() {
        for pattern in ["^(?=a)a+$", "^(a)\\1$", "(?<!x)y", "(?!id)"] {
            let schema = json!({"properties": {"s": {"type": "string", "pattern": pattern}}});
            assert!(compile(&schema).is_err(), "{pattern} compiled");
            let schema = json!({"patternProperties": {pattern: {}}});
            assert!(compile(&schema).is_err(), "{pattern} compiled as a property pattern");
        }
        // Exponential for a backtracking matcher: here it answers at once, and correctly.
        let validator =
            compile(&json!({"items": {"type": "string", "pattern": "^(a|a?)+$"}})).expect("compiles");
        let almost: Vec<String> = (0..2_000).map(|_| format!("{}b", "a".repeat(40))).collect();
        let started = std::time::Instant::now();
        assert_eq!(violations(&validator, &json!(almost)).len(), MAX_ERRORS);
        assert!(violations(&validator, &json!(["aaa", ""])).is_empty());
        // Not a timing claim: a backtracking engine takes minutes here, this one milliseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(compile(&json!({"pattern": "a{1000}{1000}"})).is_err(), "an oversized pattern compiled");
    }

    #[test]
    fn violations_name_the_payload_path() {
        let validator = compile(&json!({"properties": {"a/b": {"items": {"type": "integer"}}}})).unwrap();
        let found = violations(&validator, &json!({"a/b": [1, "x"]}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, ["a/b", "1"]);
    }

    #[tokio::test]
    async fn schema_threads_run_jobs_and_survive_a_panic() {
        let threads = SchemaThreads::start(1);
        assert_eq!(threads.run(|| 6 * 7).await, Ok(42));
        let panicked = threads.run(|| -> u32 { panic!("boom") }).await;
        assert_eq!(panicked, Err("boom".to_owned()));
        assert_eq!(threads.run(|| "still here").await, Ok("still here"));
    }

    #[tokio::test]
    async fn a_deep_payload_against_a_recursive_schema_validates_on_a_schema_thread() {
        let threads = SchemaThreads::start(1);
        let schema = json!({"$defs": {"n": {"allOf": [{"type": "object"}], "properties": {"c": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"});
        let validator = Arc::new(compile(&schema).expect("compiles"));
        let mut payload = json!({});
        for _ in 0..(MAX_PAYLOAD_DEPTH - 1) {
            payload = json!({"c": payload});
        }
        let found = threads.run(move || violations(&validator, &payload)).await.unwrap();
        assert!(found.is_empty(), "{found:?}");
    }
}
