//! Logs: what happened to messages — the attempt log (`attempts`), search, statistics and the
//! bulk recover / replay jobs (`replay`), retention and expunge (`retention`), and the job gauges
//! `/metrics` reads at scrape time (`gauges`).
//!
//! May use: every capability below it (foundation, `store`, `tenancy`, `catalog`, `billing`,
//! `delivery`, `ingest`).

pub mod attempts;
pub mod gauges;
pub mod replay;
pub mod retention;
