//! Self-service: payload search (SQLite FTS5 / PostgreSQL full text), background jobs (bulk
//! recover and replay-missing) and the deliveries they feed, and the indexes retention purges by.

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `bulk_jobs`, not `jobs`: SQLite table names ignore case, and apalis owns `Jobs`.
#[derive(DeriveIden)]
enum BulkJobs {
    Table,
    Id,
    TenantId,
    AppId,
    EndpointId,
    /// `recover` or `replay_missing`.
    Kind,
    /// `{"since", "until"}`.
    Params,
    /// `running`, `completed`, `cancelled` or `failed`.
    State,
    Total,
    /// Deliveries of the job that succeeded.
    Done,
    /// Deliveries of the job whose attempt failed.
    Failed,
    /// Deliveries handed to the engine so far.
    Fed,
    /// The last delivery or message id the job has looked at.
    Cursor,
    Error,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    JobId,
    /// A manual attempt (resend or a job): one attempt, no automatic retries after it.
    OneShot,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BulkJobs::Table)
                    .col(ColumnDef::new(BulkJobs::Id).string().not_null().primary_key())
                    .col(string(BulkJobs::TenantId))
                    .col(string(BulkJobs::AppId))
                    .col(string(BulkJobs::EndpointId))
                    .col(string(BulkJobs::Kind))
                    .col(json_binary(BulkJobs::Params))
                    .col(string(BulkJobs::State))
                    .col(big_integer(BulkJobs::Total))
                    .col(big_integer(BulkJobs::Done))
                    .col(big_integer(BulkJobs::Failed))
                    .col(big_integer(BulkJobs::Fed))
                    .col(string_null(BulkJobs::Cursor))
                    .col(text_null(BulkJobs::Error))
                    .col(timestamp_with_time_zone(BulkJobs::CreatedAt))
                    .col(timestamp_with_time_zone(BulkJobs::UpdatedAt))
                    .col(timestamp_with_time_zone_null(BulkJobs::FinishedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_bulk_jobs_tenant")
                    .table(BulkJobs::Table)
                    .col(BulkJobs::TenantId)
                    .col(BulkJobs::Id)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_bulk_jobs_state")
                    .table(BulkJobs::Table)
                    .col(BulkJobs::State)
                    .col(BulkJobs::Id)
                    .take(),
            )
            .await?;

        // SQLite takes one column per ALTER TABLE.
        for column in [string_null(Deliveries::JobId), boolean(Deliveries::OneShot).default(false).take()] {
            let mut column = column;
            manager
                .alter_table(Table::alter().table(Deliveries::Table).add_column(&mut column).take())
                .await?;
        }
        let db = manager.get_connection();
        // Partial: most deliveries never belong to a job, and a full index would be updated on
        // every state change of every delivery (the engine's hottest write).
        db.execute_unprepared(
            "CREATE INDEX idx_deliveries_job ON deliveries (job_id, status) WHERE job_id IS NOT NULL",
        )
        .await?;
        // Retention purges per tenant, oldest first; attempt bodies are cleared, not deleted, so
        // the partial index holds only what is left to purge.
        db.execute_unprepared(
            "CREATE INDEX idx_message_payloads_tenant ON message_payloads (tenant_id, message_id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_attempts_unpurged ON attempts (tenant_id, id) WHERE response_body IS NOT NULL",
        )
        .await?;
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                // An external-content FTS5 index over the payload text, kept by triggers in the
                // transaction that writes or deletes the payload.
                db.execute_unprepared(
                    "CREATE VIRTUAL TABLE message_search USING fts5(payload, content='message_payloads', \
                     content_rowid='rowid', tokenize='unicode61')",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER message_search_insert AFTER INSERT ON message_payloads BEGIN \
                     INSERT INTO message_search(rowid, payload) VALUES (new.rowid, new.payload); END",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER message_search_delete AFTER DELETE ON message_payloads BEGIN \
                     INSERT INTO message_search(message_search, rowid, payload) \
                     VALUES ('delete', old.rowid, old.payload); END",
                )
                .await?;
                db.execute_unprepared(
                    "INSERT INTO message_search(rowid, payload) SELECT rowid, payload FROM message_payloads",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE INDEX idx_message_payloads_search ON message_payloads \
                     USING GIN (to_tsvector('simple', payload))",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                db.execute_unprepared("DROP TRIGGER message_search_delete").await?;
                db.execute_unprepared("DROP TRIGGER message_search_insert").await?;
                db.execute_unprepared("DROP TABLE message_search").await?;
            }
            _ => {
                db.execute_unprepared("DROP INDEX idx_message_payloads_search").await?;
            }
        }
        db.execute_unprepared("DROP INDEX idx_attempts_unpurged").await?;
        db.execute_unprepared("DROP INDEX idx_message_payloads_tenant").await?;
        manager
            .drop_index(Index::drop().name("idx_deliveries_job").table(Deliveries::Table).to_owned())
            .await?;
        for column in [Deliveries::OneShot, Deliveries::JobId] {
            manager.alter_table(Table::alter().table(Deliveries::Table).drop_column(column).take()).await?;
        }
        manager.drop_table(Table::drop().table(BulkJobs::Table).take()).await?;
        Ok(())
    }
}
