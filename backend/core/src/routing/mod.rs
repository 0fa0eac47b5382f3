//! Routing rules: what decides, per endpoint, whether a message goes there and in what shape.
//! Today: content filters ([`filter`]), EventBridge-style patterns over the message's event type,
//! channels, payload and forwarded headers, compiled when an endpoint is saved and matched at
//! fan-out. Uses only the foundation layer.

pub mod filter;
pub mod preview;

pub use filter::{Document, Filter, PatternError};
