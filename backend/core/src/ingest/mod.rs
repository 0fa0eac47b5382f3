//! Ingest: accepting messages — validation and the messages API (`messages`), idempotency keys
//! (`idempotency`), broadcasts to many applications (`broadcasts`), the operational events
//! Hookline publishes to tenants (`operational`), and the group-commit writer that stores each
//! batch in one transaction and fans small applications out at acceptance (`writer`).
//!
//! May use: the foundation, `store`, `tenancy`, `catalog`, `billing` and `delivery`.

pub mod broadcasts;
pub mod idempotency;
pub mod messages;
pub mod operational;
mod writer;

pub use writer::*;
