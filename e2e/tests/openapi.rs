//! The API contract: the served OpenAPI document must equal the committed `openapi.json`, so every
//! change to the API is a visible diff in review. Regenerate with
//! `HOOKLINE_UPDATE_SNAPSHOTS=1 cargo test -p hookline-e2e --test openapi`.

use hookline_e2e::{Backend, TestServer, workspace_root};

#[tokio::test]
async fn the_served_openapi_document_matches_the_committed_one() {
    let server = TestServer::start(Backend::Sqlite).await;
    let served = server.anonymous().get("/api/openapi.json").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let path = workspace_root().join("openapi.json");
    if std::env::var("HOOKLINE_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &served.text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served.text,
        "the served OpenAPI document differs from {}: review the change, then run \
         HOOKLINE_UPDATE_SNAPSHOTS=1 cargo test -p hookline-e2e --test openapi",
        path.display()
    );
}

#[tokio::test]
async fn every_operation_has_a_dotted_operation_id_and_documents_its_errors() {
    let server = TestServer::start(Backend::Sqlite).await;
    let document = server.anonymous().get("/api/openapi.json").await.body;
    let mut ids = std::collections::BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let operation_id = operation["operationId"].as_str().unwrap_or_default();
            assert!(operation_id.contains('.'), "{method} {path} has operation id {operation_id:?}");
            assert!(ids.insert(operation_id.to_owned()), "duplicate operation id {operation_id}");
            if path.starts_with("/api/v1/app/") || path.contains("{") {
                assert!(operation["responses"].get("404").is_some(), "{method} {path} does not document 404");
            }
        }
    }
}

#[tokio::test]
async fn the_interactive_reference_is_served() {
    let server = TestServer::start(Backend::Sqlite).await;
    let docs = server.anonymous().get("/api/docs").await;
    assert_eq!(docs.status, 200);
    assert!(docs.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(docs.text.contains("/api/openapi.json"));
}
