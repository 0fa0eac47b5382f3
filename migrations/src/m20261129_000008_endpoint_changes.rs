//! A version of the `endpoints` table, bumped by a trigger on every insert, update and delete,
//! from whichever process or statement wrote (the API, the engine disabling an endpoint, a
//! cascade). The ingest writer keeps the endpoints of the applications it fans out for in memory
//! with the version it read them at, and every batch that used them checks in the same
//! transaction that the version is unchanged: `endpoint_cache_guard` takes a row only when it is
//! not, and its check constraint (`endpoint_cache_stale`) fails the batch, which the writer then
//! repeats with endpoints read afresh.

use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE endpoint_changes (id integer NOT NULL PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)",
        )
        .await?;
        db.execute_unprepared("INSERT INTO endpoint_changes (id, version) VALUES (1, 0)").await?;
        db.execute_unprepared(
            "CREATE TABLE endpoint_cache_guard (stale integer NOT NULL CONSTRAINT endpoint_cache_stale CHECK (stale = 0))",
        )
        .await?;
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                for event in ["INSERT", "UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER endpoints_changed_{} AFTER {event} ON endpoints \
                         BEGIN UPDATE endpoint_changes SET version = version + 1; END",
                        event.to_lowercase()
                    ))
                    .await?;
                }
            }
            _ => {
                db.execute_unprepared(
                    "CREATE FUNCTION hookline_endpoints_changed() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN UPDATE endpoint_changes SET version = version + 1; RETURN NULL; END $$",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER endpoints_changed AFTER INSERT OR UPDATE OR DELETE ON endpoints \
                     FOR EACH STATEMENT EXECUTE FUNCTION hookline_endpoints_changed()",
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
                for event in ["insert", "update", "delete"] {
                    db.execute_unprepared(&format!("DROP TRIGGER endpoints_changed_{event}")).await?;
                }
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER endpoints_changed ON endpoints").await?;
                db.execute_unprepared("DROP FUNCTION hookline_endpoints_changed()").await?;
            }
        }
        db.execute_unprepared("DROP TABLE endpoint_cache_guard").await?;
        db.execute_unprepared("DROP TABLE endpoint_changes").await?;
        Ok(())
    }
}
