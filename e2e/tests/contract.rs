//! The API contract, checked from outside: schemathesis (PyPI; the README's test command installs
//! it and sets `HOOKLINE_SCHEMATHESIS`) generates requests from the served OpenAPI document —
//! boundary values, schema-valid and schema-invalid bodies, parameters and headers, and
//! sequences that reuse what earlier answers returned — and sends them with an API key. The run
//! fails on any 5xx (`not_a_server_error`), any status the document does not list for the
//! operation (`status_code_conformance`), and any schema-valid request the server rejects
//! (`positive_data_acceptance`). `e2e/schemathesis.toml` names the operations left out and why.

use std::process::Command;

use hookline_e2e::{Backend, TestServer, both_databases, workspace_root};
use serde_json::json;

both_databases!(the_server_keeps_the_documented_contract_under_generated_requests);

fn schemathesis() -> String {
    std::env::var("HOOKLINE_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned())
}

async fn the_server_keeps_the_documented_contract_under_generated_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    let output = server.cli(&[
        "tenant",
        "create",
        "--name",
        "contract",
        "--email",
        "ops@contract.test",
        "--plan",
        "enterprise",
    ]);
    let key = output.lines().last().expect("the key is on the last line").trim().to_owned();
    let api = server.client_with_key(&key);
    // What the run works on (e2e/schemathesis.toml names them); deletes get their own.
    let app = api.create_app("Contract", None).await;
    let app_id = app["id"].as_str().unwrap().to_owned();
    let deleted_app = api.create_app("Contract (to delete)", None).await;
    let endpoint = |url: &str| json!({"url": url, "filter_types": ["invoice.*"]});
    let ep = api
        .post(&format!("/api/v1/app/{app_id}/endpoint"), endpoint("https://example.com/hooks"))
        .await
        .expect(201);
    let deleted_ep = api
        .post(&format!("/api/v1/app/{app_id}/endpoint"), endpoint("https://example.com/old"))
        .await
        .expect(201);
    let message = json!({"event_type": "invoice.paid", "payload": {"invoice": "in_1", "amount": 4900}});
    let msg = api.post(&format!("/api/v1/app/{app_id}/msg"), message.clone()).await.expect(202);
    let deleted_msg = api.post(&format!("/api/v1/app/{app_id}/msg"), message).await.expect(202);
    let source = |name: &str| json!({"name": name, "app": app_id, "verification": {"type": "github", "secret": "contract-secret"}});
    let src = api.post("/api/v1/source", source("GitHub")).await.expect(201);
    let deleted_src = api.post("/api/v1/source", source("Old GitHub")).await.expect(201);
    let patched_src = api.post("/api/v1/source", source("Patched GitHub")).await.expect(201);
    let ids = [
        ("HOOKLINE_ST_APP", &app),
        ("HOOKLINE_ST_APP_DELETED", &deleted_app),
        ("HOOKLINE_ST_EP", &ep),
        ("HOOKLINE_ST_EP_DELETED", &deleted_ep),
        ("HOOKLINE_ST_MSG", &msg),
        ("HOOKLINE_ST_MSG_DELETED", &deleted_msg),
        ("HOOKLINE_ST_SRC", &src),
        ("HOOKLINE_ST_SRC_DELETED", &deleted_src),
        ("HOOKLINE_ST_SRC_PATCHED", &patched_src),
    ]
    .map(|(name, resource)| (name, resource["id"].as_str().unwrap().to_owned()));
    let ingest_url = src["ingest_url"].as_str().unwrap();
    let token = ingest_url.rsplit('/').next().unwrap().to_owned();
    let root = workspace_root();
    let run = Command::new(schemathesis())
        .current_dir(root.join("e2e"))
        .args(["--no-color", "--config-file", "schemathesis.toml", "run"])
        .arg(format!("{}/api/openapi.json", server.base_url))
        .args(["--url", &server.base_url])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,positive_data_acceptance"])
        .args(["--max-examples", "25"])
        .envs(ids)
        .env("HOOKLINE_ST_TOKEN", token)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", root.join("e2e"))
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "could not run {}: {err}. Install it with `pip install schemathesis==4.32.5` (the README's test \
                 command does) or set HOOKLINE_SCHEMATHESIS to its path",
                schemathesis()
            )
        });
    let report = String::from_utf8_lossy(&run.stdout);
    // The whole report is in the test's output (shown with --nocapture or on failure).
    eprintln!("{report}");
    assert!(
        run.status.success(),
        "schemathesis found contract failures on {backend:?}:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // A run that tested nothing would also exit 0: every operation but the one left out is tested.
    let document = server.anonymous().get("/api/openapi.json").await.body;
    let operations: usize =
        document["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    let tested = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Tested:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    assert_eq!(tested, operations - 1, "{report}");
}
