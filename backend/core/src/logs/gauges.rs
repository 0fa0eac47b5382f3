//! The bulk job gauge of `/metrics`, read from the database at scrape time.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr};

use crate::{Context, CoreResult, logs::replay, metrics::Text, store::entities::jobs};

/// Bulk jobs (recover, replay-missing) running.
pub struct Jobs {
    running: i64,
}

/// Counts over `idx_bulk_jobs_state` (state, id).
pub async fn read(ctx: &Context) -> CoreResult<Jobs> {
    let running: Option<i64> = jobs::Entity::find()
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "n")
        .filter(jobs::Column::State.eq(replay::RUNNING))
        .into_tuple()
        .one(&ctx.db.conn)
        .await?;
    Ok(Jobs { running: running.unwrap_or(0) })
}

impl Jobs {
    pub fn render(&self, text: &mut Text) {
        text.family("hookline_bulk_jobs_running", "gauge", "Bulk jobs (recover, replay-missing) running.");
        text.sample("hookline_bulk_jobs_running", &[], self.running as f64);
    }
}
