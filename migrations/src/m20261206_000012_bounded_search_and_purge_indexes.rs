//! The PostgreSQL full-text index holds a payload's first 262,144 characters, and retention's
//! partial indexes hold everything it has left to clear.
//!
//! - `idx_message_payloads_search` (PostgreSQL) indexes `to_tsvector('simple', left(payload,
//!   262144))`. PostgreSQL refuses a `tsvector` whose words take over 1 MiB: with the whole
//!   payload indexed, a payload with that many distinct words (the payload limit is
//!   configurable) failed its insert, refusing the message, and rolled back the broadcast
//!   expansion beside it, every time it was tried again. 262,144 characters are at most 1 MiB of
//!   UTF-8, and words need separators, so their words stay under the limit. Words past that
//!   point are not found by a search; the payload itself is stored whole. The search query
//!   spells the same expression (`messages::PG_PAYLOAD_SEARCH`), or the index goes unused.
//!   SQLite's FTS5 has no such limit and indexes the whole payload.
//! - `idx_attempts_unpurged` holds the attempts whose response body or request headers are left
//!   (`retention::UNPURGED_ATTEMPT`), not only those with a body: retention clears the headers
//!   too, and an attempt without a response has headers but no body.
//! - `idx_broadcasts_unpurged` holds the broadcasts whose payload retention has not cleared
//!   (`retention::UNPURGED_BROADCAST`), by tenant and id, the order retention purges in.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

async fn recreate_search_index(manager: &SchemaManager<'_>, indexed: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() == DatabaseBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    db.execute_unprepared("DROP INDEX idx_message_payloads_search").await?;
    db.execute_unprepared(&format!(
        "CREATE INDEX idx_message_payloads_search ON message_payloads USING GIN (to_tsvector('simple', {indexed}))"
    ))
    .await?;
    Ok(())
}

async fn recreate_attempts_index(manager: &SchemaManager<'_>, condition: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared("DROP INDEX idx_attempts_unpurged").await?;
    db.execute_unprepared(&format!(
        "CREATE INDEX idx_attempts_unpurged ON attempts (tenant_id, id) WHERE {condition}"
    ))
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recreate_search_index(manager, "left(payload, 262144)").await?;
        recreate_attempts_index(manager, "(response_body IS NOT NULL OR request_headers <> '{}')").await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_broadcasts_unpurged ON broadcasts (tenant_id, id) WHERE payload <> ''",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX idx_broadcasts_unpurged").await?;
        recreate_attempts_index(manager, "response_body IS NOT NULL").await?;
        recreate_search_index(manager, "payload").await
    }
}
