//! The API contract: the served OpenAPI document must equal the committed `openapi.json`, so every
//! change to the API is a visible diff in review. Regenerate with
//! `HOOKLINE_UPDATE_SNAPSHOTS=1 cargo test -p hookline-e2e --test openapi`.

use hookline_e2e::{Backend, TestServer, workspace_root};
use serde_json::Value;

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

/// Every JSON Schema node of `value`, depth first.
fn schemas<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            out.push(value);
            map.values().for_each(|child| schemas(child, out));
        }
        Value::Array(items) => items.iter().for_each(|child| schemas(child, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_describes_what_the_middleware_adds_to_every_operation() {
    let server = TestServer::start(Backend::Sqlite).await;
    let document = server.anonymous().get("/api/openapi.json").await.body;
    let resolve = |response: &Value| -> Value {
        match response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/")) {
            Some(name) => document["components"]["responses"][name].clone(),
            None => response.clone(),
        }
    };
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(
        (schemes["session"]["in"].as_str(), schemes["session"]["name"].as_str()),
        (Some("cookie"), Some("hookline_session"))
    );
    assert_eq!(
        (schemes["csrf"]["in"].as_str(), schemes["csrf"]["name"].as_str()),
        (Some("header"), Some("X-CSRF-Token"))
    );
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let what = format!("{method} {path}");
            assert!(
                operation["description"].as_str().is_some_and(|d| d.len() > 20),
                "{what} has no description"
            );
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                let response = resolve(response);
                assert!(
                    response["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{what} {status}: no description"
                );
                assert!(
                    response["headers"].get("X-Request-Id").is_some(),
                    "{what} {status}: no X-Request-Id"
                );
            }
            let authenticated = operation["security"].to_string().contains("bearer");
            if authenticated {
                for status in ["401", "403"] {
                    assert!(responses.contains_key(status), "{what} does not list {status}");
                }
                if method != "get" {
                    assert!(
                        operation["security"].to_string().contains("csrf"),
                        "{what}: the session alternative needs the CSRF header"
                    );
                }
            }
            if authenticated && path.starts_with("/api/v1/") {
                let limited = resolve(&responses["429"]);
                for header in
                    ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]
                {
                    assert!(limited["headers"].get(header).is_some(), "{what} 429 lacks {header}");
                }
                if method == "post" {
                    let declared = operation["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
                    assert!(declared, "{what} does not declare Idempotency-Key");
                    assert!(
                        responses.contains_key("409"),
                        "{what} does not list 409 (an Idempotency-Key in flight)"
                    );
                }
            }
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                assert!(
                    content
                        .values()
                        .all(|media| media.get("example").is_some() || media.get("examples").is_some()),
                    "{what}: no example request body"
                );
                if content.contains_key("application/json") && path.starts_with("/api/v1/") {
                    for status in ["400", "413", "415", "422"] {
                        assert!(
                            responses.contains_key(status),
                            "{what} reads JSON but does not list {status}"
                        );
                    }
                }
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                if parameter["in"] == "path" {
                    assert!(
                        parameter.get("example").is_some(),
                        "{what}: path parameter {name} has no example"
                    );
                }
                if parameter["in"] == "query" && name == "limit" {
                    assert_eq!(
                        (parameter["schema"]["minimum"].as_u64(), parameter["schema"]["maximum"].as_u64()),
                        (Some(1), Some(250)),
                        "{what}"
                    );
                }
                if parameter["in"] == "query"
                    && ["after", "before", "since", "until", "from", "to"].contains(&name)
                {
                    assert_eq!(parameter["schema"]["format"], "date-time", "{what}: {name}");
                }
            }
        }
    }
    let components = document["components"]["schemas"].as_object().unwrap();
    for (name, schema) in components {
        let rust_type = ["BTreeMap", "HashMap", "Vec", "Option", "Value", "String"]
            .iter()
            .any(|rust| name == rust || name.starts_with(&format!("{rust}_")));
        assert!(!rust_type, "schema named after a Rust type: {name}");
        if let Some(item) = name.strip_prefix("ListResponse_") {
            assert_eq!(
                schema["properties"]["data"]["items"]["$ref"],
                format!("#/components/schemas/{item}"),
                "{name} repeats its item schema"
            );
        }
        for (property, definition) in schema["properties"].as_object().into_iter().flatten() {
            // `failed_at` of the filter test is the path where a pattern stopped matching (the
            // name the routing issue gives it), the one `_at` that is not a time.
            if property.ends_with("_at") && format!("{name}.{property}") != "FilterTestOut.failed_at" {
                assert_eq!(definition["format"], "date-time", "{name}.{property}");
            }
        }
    }
    let mut nodes = Vec::new();
    schemas(&document["components"]["schemas"], &mut nodes);
    assert!(
        nodes.iter().all(|node| node
            .get("$ref")
            .is_none_or(|r| !r.as_str().unwrap_or_default().contains("BTreeMap")))
    );
    assert_eq!(document["components"]["schemas"]["Metadata"]["additionalProperties"]["type"], "string");
}
