//! Routing rules: what decides, per endpoint, whether a message goes there and in what shape, and
//! per source, whether a received request becomes a message. Today: content filters
//! ([`filter`]), EventBridge-style patterns over the message's event type, channels, payload and
//! headers, compiled when an endpoint or a source is saved and matched at fan-out (endpoints) or
//! as a request is received (sources). Uses only the foundation layer.

pub mod filter;
pub mod preview;

pub use filter::{Document, Filter, PatternError};

/// A content filter must compile; the error's `loc` continues into the pattern
/// (`["body", "filter", "payload", "amount", "0", "numeric"]`).
pub fn check_filter(errors: &mut crate::error::Errors, filter: &serde_json::Value) {
    if let Err(err) = Filter::compile(filter) {
        errors.push(&err.loc(), err.message.as_str());
    }
}
