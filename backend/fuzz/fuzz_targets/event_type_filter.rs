//! Event-type names and endpoint filters (`domain::EventTypeName`, `domain::EventTypeFilter`):
//! parsing never panics, and a parsed filter matches what its form promises.

#![no_main]

use hookline_core::domain::{EventTypeFilter, EventTypeName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, String)| {
    let (pattern, event_type) = input;
    if let Ok(filter) = EventTypeFilter::parse(&pattern) {
        let _ = filter.matches(&event_type);
        match &filter {
            EventTypeFilter::Exact(name) => assert!(filter.matches(name)),
            EventTypeFilter::Prefix(prefix) => {
                assert!(filter.matches(&format!("{prefix}x")));
                assert!(!filter.matches(prefix.trim_end_matches('.')));
            }
            EventTypeFilter::Any => assert!(filter.matches(&event_type)),
        }
    }
    if let Ok(name) = EventTypeName::parse(&event_type) {
        let exact = EventTypeFilter::parse(name.as_str()).expect("a name is a filter");
        assert!(exact.matches(name.as_str()));
        if let Ok(below) = EventTypeFilter::parse(&format!("{name}.*")) {
            assert!(below.matches(&format!("{name}.x")));
            assert!(!below.matches(name.as_str()));
        }
    }
});
