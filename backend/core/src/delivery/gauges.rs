//! The delivery backlog gauges of `/metrics`, read from the database at scrape time, so every
//! process reports the same backlog.

use sea_orm::{EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};

use super::{FAILED, LEASED, PENDING, SENDING, WAITING};
use crate::{
    Context, CoreResult,
    metrics::Text,
    store::entities::{deliveries, fanout_queue},
};

/// Unfinished deliveries by state, and messages waiting for fan-out.
pub struct Backlog {
    /// Deliveries by non-terminal state.
    deliveries: [(&'static str, i64); 3],
    fanout: i64,
}

/// Counting queries, each over an index of exactly the rows it counts: the partial indexes
/// `idx_deliveries_due` (waiting: pending, failed) and `idx_deliveries_lease` (in flight), so the
/// counts read only the backlog, never the delivered history; `fanout_queue` is itself the
/// backlog.
pub async fn read(ctx: &Context) -> CoreResult<Backlog> {
    let count = || Expr::cust("COUNT(*)");
    let mut deliveries = [(PENDING, 0), (FAILED, 0), (SENDING, 0)];
    for unfinished in [WAITING, LEASED] {
        let by_status: Vec<(String, i64)> = deliveries::Entity::find()
            .select_only()
            .column(deliveries::Column::Status)
            .column_as(count(), "n")
            .filter(Expr::cust(unfinished))
            .group_by(deliveries::Column::Status)
            .into_tuple()
            .all(&ctx.db.conn)
            .await?;
        for (status, n) in by_status {
            if let Some(entry) = deliveries.iter_mut().find(|(s, _)| *s == status) {
                entry.1 = n;
            }
        }
    }
    let fanout: Option<i64> = fanout_queue::Entity::find()
        .select_only()
        .column_as(count(), "n")
        .into_tuple()
        .one(&ctx.db.conn)
        .await?;
    Ok(Backlog { deliveries, fanout: fanout.unwrap_or(0) })
}

impl Backlog {
    pub fn render(&self, text: &mut Text) {
        text.family(
            "hookline_queue_depth",
            "gauge",
            "Deliveries not yet finished, by state (pending: due or waiting; failed: waiting for a retry; sending: leased).",
        );
        for (state, n) in self.deliveries {
            text.sample("hookline_queue_depth", &[("state", state)], n as f64);
        }
        text.family("hookline_fanout_queue_depth", "gauge", "Accepted messages waiting for fan-out.");
        text.sample("hookline_fanout_queue_depth", &[], self.fanout as f64);
    }
}
