//! Delivery, the database side of the engine: fan-out of queued messages into deliveries, claims
//! under each endpoint's capacity, FIFO, circuit and rate limit, leases, and recording attempts
//! with the deliveries' new states (`lifecycle`); the backlog gauges `/metrics` reads at scrape
//! time (`gauges`). The HTTP side is the `hookline-worker` crate.
//!
//! May use: the foundation, `store`, `tenancy`, `catalog` and `billing`.

pub mod gauges;
mod lifecycle;

pub use lifecycle::*;
