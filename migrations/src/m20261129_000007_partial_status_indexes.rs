//! The deliveries' two status indexes hold only the rows their queries look for:
//! `idx_deliveries_due` the deliveries waiting for an attempt (`pending`, `failed`),
//! `idx_deliveries_lease` those in flight (`sending`). As full indexes they also held every
//! finished delivery, and each state change moved the row in both: a delivery leased at
//! acceptance and delivered at once cost six index writes, now two (in and out of the lease
//! index). Queries that want these indexes must spell the same condition with literal values
//! (`hookline_core::delivery::{WAITING, LEASED}`): neither database can prove a
//! partial index's condition from a bound parameter.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX idx_deliveries_due").await?;
        db.execute_unprepared("DROP INDEX idx_deliveries_lease").await?;
        db.execute_unprepared(
            "CREATE INDEX idx_deliveries_due ON deliveries (status, next_attempt_at) \
             WHERE status IN ('pending', 'failed')",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_deliveries_lease ON deliveries (status, lease_until) WHERE status = 'sending'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX idx_deliveries_due").await?;
        db.execute_unprepared("DROP INDEX idx_deliveries_lease").await?;
        db.execute_unprepared("CREATE INDEX idx_deliveries_due ON deliveries (status, next_attempt_at)")
            .await?;
        db.execute_unprepared("CREATE INDEX idx_deliveries_lease ON deliveries (status, lease_until)")
            .await?;
        Ok(())
    }
}
