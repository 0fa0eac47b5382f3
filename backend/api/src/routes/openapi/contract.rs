//! What the API's middleware and extractors do for every route, written into the document once
//! instead of into each handler's annotation: the statuses and headers that authentication, rate
//! limits, the JSON body extractor and `Idempotency-Key` add; the session cookie + CSRF scheme;
//! the shared pagination and time parameters; and the schema shapes `utoipa` cannot derive (id
//! patterns, list items by reference, `metadata`). The e2e contract test and schemathesis check the
//! result against the running server.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use hookline_core::{ingest::idempotency::MAX_KEY_LEN, store::pagination};

use crate::auth;

const SCHEMAS: &str = "#/components/schemas/";

/// Completes the generated document in place.
pub fn complete(doc: &mut Value) {
    add_components(doc);
    complete_schemas(doc);
    let id_patterns = item_id_patterns(&doc["components"]["schemas"]);
    let paths = doc["paths"].as_object_mut().expect("the document has paths");
    for (path, operations) in paths.iter_mut() {
        for (method, operation) in operations.as_object_mut().expect("a path item is an object") {
            complete_operation(path, method, operation, &id_patterns);
        }
    }
}

/// For each schema with an `id` of an id type: that id's pattern (a list's `iterator` is the id
/// of its last item).
fn item_id_patterns(schemas: &Value) -> BTreeMap<String, Value> {
    let mut patterns = BTreeMap::new();
    for (name, schema) in schemas.as_object().into_iter().flatten() {
        let id_type = schema
            .pointer("/properties/id/$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(SCHEMAS));
        if let Some(pattern) = id_type.and_then(|id_type| schemas[id_type].get("pattern")) {
            patterns.insert(name.clone(), pattern.clone());
        }
    }
    patterns
}

fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("{SCHEMAS}ErrorBody") } } },
    })
}

/// The shared headers, responses and security schemes.
fn add_components(doc: &mut Value) {
    let components = doc["components"].as_object_mut().expect("the document has components");
    let integer = json!({ "type": "integer", "minimum": 0 });
    components.insert(
        "headers".to_owned(),
        json!({
            "X-Request-Id": {
                "description": "The request's id: the caller's `X-Request-Id` when it sent a usable one, else a new one. \
                                It is in every log line of the request and in the body of a 5xx.",
                "schema": { "type": "string" },
            },
            "X-RateLimit-Limit": {
                "description": "The size of the organization's API token bucket (its plan's burst).",
                "schema": integer,
            },
            "X-RateLimit-Remaining": { "description": "Requests left in the bucket now.", "schema": integer },
            "X-RateLimit-Reset": { "description": "Seconds until the bucket is full again.", "schema": integer },
            "Retry-After": { "description": "Seconds to wait before trying again.", "schema": integer },
        }),
    );
    let mut rate_limited = error_response(
        "rate_limited: more requests a second than the organization's plan allows (across all its API keys \
         and users); a quota refusal names its quota",
    );
    rate_limited["headers"] = json!({
        "Retry-After": header_ref("Retry-After"),
        "X-RateLimit-Limit": header_ref("X-RateLimit-Limit"),
        "X-RateLimit-Remaining": header_ref("X-RateLimit-Remaining"),
        "X-RateLimit-Reset": header_ref("X-RateLimit-Reset"),
        "X-Request-Id": header_ref("X-Request-Id"),
    });
    let mut responses = Map::new();
    for (name, description) in GENERIC_RESPONSES {
        let mut response = error_response(description);
        response["headers"] = json!({ "X-Request-Id": header_ref("X-Request-Id") });
        responses.insert((*name).to_owned(), response);
    }
    responses.insert("RateLimited".to_owned(), rate_limited);
    components.insert("responses".to_owned(), Value::Object(responses));

    let schemes = components
        .entry("securitySchemes")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("security schemes are an object");
    schemes.insert(
        "session".to_owned(),
        json!({
            "type": "apiKey",
            "in": "cookie",
            "name": auth::SESSION_COOKIE,
            "description": "The dashboard's session (set by `POST /api/v1/auth/login` or `/signup`; HttpOnly, SameSite=Strict).",
        }),
    );
    schemes.insert(
        "csrf".to_owned(),
        json!({
            "type": "apiKey",
            "in": "header",
            "name": "X-CSRF-Token",
            "description": "The session's `csrf_token` (from login, signup or `GET /api/v1/auth/me`): required with the \
                            session cookie on every request that is not a GET or HEAD.",
        }),
    );
}

/// `(component name, description)` of the error answers shared by many operations.
const GENERIC_RESPONSES: &[(&str, &str)] = &[
    ("Unauthorized", "unauthorized: no valid API key, portal token or session was sent"),
    (
        "Forbidden",
        "insufficient_scope: the API key's scopes or the portal token do not allow this; csrf_token_invalid: \
         a session request that changes something did not send the session's X-CSRF-Token",
    ),
    ("MalformedJson", "invalid_json: the body is not JSON; bad_request: the body could not be read"),
    ("PayloadTooLarge", "payload_too_large: the request body is over the size limit"),
    ("UnsupportedMediaType", "unsupported_media_type: send the body as application/json"),
    (
        "Invalid",
        "validation_error: a field is invalid (`errors` lists each one with its path in `loc`); \
         idempotency_key_reused: this Idempotency-Key was used for a different request",
    ),
];

/// Text for a response the annotation left without a description.
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "Done; no body",
        "400" => "The request could not be read",
        "404" => "not_found: no such resource in this organization (or application)",
        "409" => "The resource's state does not allow this",
        "422" => "validation_error: a field is invalid (`errors` lists each one with its path in `loc`)",
        _ => "See the error's code",
    }
}

fn complete_operation(
    path: &str,
    method: &str,
    operation: &mut Value,
    id_patterns: &BTreeMap<String, Value>,
) {
    let authenticated = operation.get("security").is_some_and(|s| s.to_string().contains("bearer"));
    let api = path.starts_with("/api/v1/");
    let json_body = operation
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
        .is_some_and(|content| content.contains_key("application/json"));
    let post = method == "post";

    if authenticated {
        let session = if matches!(method, "get" | "head") {
            json!({ "session": [] })
        } else {
            json!({ "session": [], "csrf": [] })
        };
        operation["security"] = json!([{ "bearer": [] }, session]);
    }
    if authenticated && post && api {
        operation
            .as_object_mut()
            .expect("an operation is an object")
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters are a list")
            .push(json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": "Makes a retry safe: a repeat with the same key (same organization, same credential) \
                                within 24 hours gets the first answer back with `Idempotent-Replayed: true` instead \
                                of running again; the same key with a different request is refused.",
                "schema": { "type": "string", "minLength": 1, "maxLength": MAX_KEY_LEN, "pattern": "^[!-~]+$" },
            }));
    }
    for parameter in operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
        complete_parameter(parameter);
    }

    let iterator_pattern = list_item_id_pattern(operation, id_patterns);
    if let Some(pattern) = iterator_pattern {
        for parameter in operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
            if parameter["name"] == "iterator" && parameter["in"] == "query" {
                parameter["schema"] = json!({ "type": "string", "pattern": pattern });
                parameter["description"] = json!("The `iterator` of the previous page");
            }
        }
    }

    let responses = operation["responses"].as_object_mut().expect("an operation has responses");
    if authenticated {
        add_response(responses, "401", "Unauthorized");
        add_response(responses, "403", "Forbidden");
        if api {
            add_response(responses, "429", "RateLimited");
        }
    }
    if json_body && api {
        add_response(responses, "400", "MalformedJson");
        add_response(responses, "413", "PayloadTooLarge");
        add_response(responses, "415", "UnsupportedMediaType");
        add_response(responses, "422", "Invalid");
    }
    if authenticated && post && api {
        let idempotency = "idempotency_in_flight: a request with this Idempotency-Key is still running; \
                           idempotency_secret_not_replayed: it created a secret, which is never replayed";
        match responses.get_mut("409") {
            Some(existing) => append_description(existing, idempotency),
            None => {
                responses.insert("409".to_owned(), error_response(idempotency));
            }
        }
        add_response(responses, "422", "Invalid");
    }
    for (status, response) in responses.iter_mut() {
        if response.get("$ref").is_some() {
            continue;
        }
        if response["description"].as_str().is_none_or(str::is_empty) {
            response["description"] = json!(default_description(status));
        }
        let headers = response
            .as_object_mut()
            .expect("a response is an object")
            .entry("headers")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("headers are an object");
        headers.insert("X-Request-Id".to_owned(), header_ref("X-Request-Id"));
        if authenticated && api {
            for name in ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"] {
                headers.insert(name.to_owned(), header_ref(name));
            }
            if status == "429" {
                headers.insert("Retry-After".to_owned(), header_ref("Retry-After"));
            }
        }
    }
}

/// Adds the shared response `component` under `status` unless the operation describes its own;
/// an own description of the same status gains the shared one's text.
fn add_response(responses: &mut Map<String, Value>, status: &str, component: &str) {
    match responses.get_mut(status) {
        Some(existing) if existing.get("$ref").is_none() => {
            let shared = GENERIC_RESPONSES.iter().find(|(name, _)| *name == component).map(|(_, text)| *text);
            if let Some(shared) = shared {
                append_description(existing, shared);
            }
        }
        Some(_) => {}
        None => {
            responses
                .insert(status.to_owned(), json!({ "$ref": format!("#/components/responses/{component}") }));
        }
    }
}

fn append_description(response: &mut Value, more: &str) {
    let own = response["description"].as_str().unwrap_or_default();
    if own.contains(more) {
        return;
    }
    response["description"] = json!(if own.is_empty() { more.to_owned() } else { format!("{own}; {more}") });
}

/// The shared query parameters, parsed by `QueryParams` the same way on every route.
fn complete_parameter(parameter: &mut Value) {
    if parameter["in"] != "query" {
        return;
    }
    if let Some(schema) = parameter.get_mut("schema") {
        forbid_nul(schema);
    }
    match parameter["name"].as_str().unwrap_or_default() {
        "limit" => {
            parameter["schema"] = json!({
                "type": "integer",
                "minimum": 1,
                "maximum": pagination::MAX_LIMIT,
                "default": pagination::DEFAULT_LIMIT,
            });
            parameter["description"] = json!("Items per page");
        }
        "after" | "before" | "since" | "until" | "from" | "to" => {
            parameter["schema"] = json!({ "type": "string", "format": "date-time" });
        }
        _ => {}
    }
}

/// The id pattern of a list's items, which is what its `iterator` is.
fn list_item_id_pattern(operation: &Value, id_patterns: &BTreeMap<String, Value>) -> Option<Value> {
    let reference = operation.pointer("/responses/200/content/application~1json/schema/$ref")?.as_str()?;
    let item = reference.strip_prefix(SCHEMAS)?.strip_prefix("ListResponse_")?;
    id_patterns.get(item).cloned()
}

fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}_[0-7][0-9A-HJKMNP-TV-Z]{{25}}$")
}

/// Schema shapes `utoipa` does not derive from the types.
fn complete_schemas(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].as_object_mut().expect("the document has schemas");

    // Ids: `prefix_` + a ULID, as `hookline_types::ids` parses them.
    for (name, schema) in schemas.iter_mut() {
        if !name.ends_with("Id") {
            continue;
        }
        let example = schema["example"].as_str().unwrap_or_default();
        if let Some((prefix, _)) = example.split_once('_') {
            schema["pattern"] = json!(id_pattern(prefix));
        }
    }

    // `metadata`: the type alias shows up under the Rust type's name.
    if schemas.remove("BTreeMap").is_some() {
        schemas.insert(
            "Metadata".to_owned(),
            json!({
                "type": "object",
                "description": "The tenant's own string key-value pairs: at most 50, keys up to 256 characters, values up to 1024.",
                "maxProperties": 50,
                "propertyNames": { "type": "string", "maxLength": 256 },
                "additionalProperties": { "type": "string", "maxLength": 1024 },
            }),
        );
    }

    // Lists name their item schema instead of repeating it.
    let names: Vec<String> = schemas.keys().cloned().collect();
    for name in &names {
        let Some(item) = name.strip_prefix("ListResponse_") else { continue };
        if names.iter().any(|n| n == item) {
            schemas[name]["properties"]["data"]["items"] = json!({ "$ref": format!("{SCHEMAS}{item}") });
        }
    }

    // Request bodies refuse unknown fields (`deny_unknown_fields`) at every level, including the
    // variants of tagged enums, which `utoipa` leaves open, and U+0000 in text (`crate::text`).
    for name in &names {
        if name.ends_with("In") || name.ends_with("Patch") || name == "ValueFrom" || name == "Metadata" {
            close_objects(&mut schemas[name]);
            forbid_nul(&mut schemas[name]);
        }
    }

    let mut text = Value::Object(std::mem::take(schemas)).to_string();
    text = text.replace(&format!("\"{SCHEMAS}BTreeMap\""), &format!("\"{SCHEMAS}Metadata\""));
    *schemas = serde_json::from_str::<Map<String, Value>>(&text).expect("the schemas stay JSON");
}

/// Text without U+0000, which the API refuses in bodies and query parameters (`crate::text`).
const NO_NUL: &str = "^[^\\x00]*$";

/// Gives every string schema without a pattern, format or enum the [`NO_NUL`] pattern.
fn forbid_nul(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let string = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            if string && !["pattern", "format", "enum", "const"].iter().any(|k| map.contains_key(*k)) {
                map.insert("pattern".to_owned(), json!(NO_NUL));
            }
            map.values_mut().for_each(forbid_nul);
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
            for (key, value) in map.iter_mut() {
                if key != "properties" {
                    close_objects(value);
                }
            }
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for value in properties.values_mut() {
                    close_objects(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_pattern_is_the_expected_regex_and_the_rule_it_states_agrees_with_the_id_parser() {
        let pattern = id_pattern("msg");
        assert_eq!(pattern, "^msg_[0-7][0-9A-HJKMNP-TV-Z]{25}$");
        let matches = |s: &str| {
            s.strip_prefix("msg_").is_some_and(|ulid| {
                ulid.len() == 26
                    && ulid.as_bytes()[0] <= b'7'
                    && ulid
                        .bytes()
                        .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"ILOU".contains(&c)))
            })
        };
        for id in [
            "msg_01JDQ2M3W4X5Y6Z7A8B9C0D1E2",
            "msg_81JDQ2M3W4X5Y6Z7A8B9C0D1E2",
            "msg_01JDQ2M3W4X5Y6Z7A8B9C0D1EU",
            "app_01JDQ2M3W4X5Y6Z7A8B9C0D1E2",
            "msg_01JDQ2M3W4X5Y6Z7A8B9C0D1E",
        ] {
            assert_eq!(matches(id), hookline_types::ids::has_id_shape(id, "msg"), "{id}");
        }
    }

    #[test]
    fn metadata_is_an_object_of_strings_and_lists_reference_their_items() {
        let doc = super::super::document_value();
        let schemas = &doc["components"]["schemas"];
        assert!(schemas.get("BTreeMap").is_none());
        assert_eq!(schemas["Metadata"]["additionalProperties"]["type"], "string");
        assert_eq!(
            schemas["ApplicationIn"]["properties"]["metadata"]["$ref"],
            "#/components/schemas/Metadata"
        );
        assert_eq!(
            schemas["ListResponse_MessageOut"]["properties"]["data"]["items"]["$ref"],
            "#/components/schemas/MessageOut"
        );
        assert_eq!(schemas["EndpointAuthIn"]["oneOf"][0]["additionalProperties"], false);
    }
}
