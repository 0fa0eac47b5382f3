//! The API's request extractors: JSON bodies into every request type (`json::parse_body`, with
//! the whole-number and U+0000 rules of `json.rs` and `text.rs`) and query strings
//! (`query::QueryParams`). Any bytes get a value or an `ApiError`, never a panic; a body that
//! parses is JSON.

#![no_main]

use hookline_api::{json::parse_body, query::QueryParams, text::check_body};
use hookline_types::{
    ApiKeyIn, ApplicationIn, ApplicationPatch, EndpointIn, EndpointPatch, EventTypeIn, MessageIn, SourceIn,
    SourcePatch,
};
use libfuzzer_sys::fuzz_target;

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) {
    if parse_body::<T>(bytes).is_ok() {
        assert!(serde_json::from_slice::<serde_json::Value>(bytes).is_ok(), "parsed a body that is not JSON");
    }
}

fuzz_target!(|bytes: &[u8]| {
    body::<MessageIn>(bytes);
    body::<EndpointIn>(bytes);
    body::<EndpointPatch>(bytes);
    body::<ApplicationIn>(bytes);
    body::<ApplicationPatch>(bytes);
    body::<EventTypeIn>(bytes);
    body::<ApiKeyIn>(bytes);
    body::<SourceIn>(bytes);
    body::<SourcePatch>(bytes);
    let _ = check_body(bytes);

    let query = String::from_utf8_lossy(bytes);
    let allowed = ["limit", "iterator", "after", "before", "event_type", "status", "q"];
    if let Ok(params) = QueryParams::parse(&query, &allowed) {
        let _ = params.page("msg");
        let _ = params.time_range();
        let _ = params.all("event_type");
        let _ = params.one("q");
    }
});
