//! The delivery log's lookup indexes no longer start with `tenant_id`: `idx_deliveries_endpoint`
//! is `(endpoint_id, id)`, `idx_attempts_message` `(message_id, id)` and
//! `idx_attempts_app_endpoint` `(app_id, endpoint_id, id)`. Every query that uses them names the
//! message, the endpoint or the application, whose ids are unique across tenants, so the leading
//! `tenant_id` narrowed nothing; it made each entry ≈ 30 bytes longer and each key comparison
//! walk the same tenant prefix first — on the ingest writer's serial path, for every delivery
//! and attempt written. Queries stay tenant-scoped: they still filter on `tenant_id` (from the row).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (name, table, columns before, columns after)
const INDEXES: [(&str, &str, &str, &str); 3] = [
    ("idx_deliveries_endpoint", "deliveries", "tenant_id, endpoint_id, id", "endpoint_id, id"),
    ("idx_attempts_message", "attempts", "tenant_id, message_id, id", "message_id, id"),
    (
        "idx_attempts_app_endpoint",
        "attempts",
        "tenant_id, app_id, endpoint_id, id",
        "app_id, endpoint_id, id",
    ),
];

async fn recreate(manager: &SchemaManager<'_>, after: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (name, table, before_columns, after_columns) in INDEXES {
        let columns = if after { after_columns } else { before_columns };
        db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        db.execute_unprepared(&format!("CREATE INDEX {name} ON {table} ({columns})")).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recreate(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recreate(manager, false).await
    }
}
