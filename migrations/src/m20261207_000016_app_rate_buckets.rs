//! `app_rate_buckets`: the token bucket of an application's `rate_limit` (deliveries per second
//! across all of its endpoints), shared by every worker process like an endpoint's bucket in
//! `endpoint_health`. A row appears with the first claim of a rate-limited application's
//! delivery and goes with the application.
//! - A change of `applications.rate_limit` bumps `endpoint_changes` (like any endpoint change):
//!   the ingest writer's cached endpoints carry whether their application is rate-limited, and
//!   a batch fanned out with a stale answer is refused and repeated.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AppRateBuckets {
    Table,
    AppId,
    TenantId,
    Tokens,
    TokensAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AppRateBuckets::Table)
                    .col(ColumnDef::new(AppRateBuckets::AppId).string().not_null().primary_key())
                    .col(string(AppRateBuckets::TenantId))
                    .col(double(AppRateBuckets::Tokens))
                    .col(timestamp_with_time_zone(AppRateBuckets::TokensAt))
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                db.execute_unprepared(
                    "CREATE TRIGGER applications_rate_limit_changed AFTER UPDATE OF rate_limit ON applications \
                     BEGIN UPDATE endpoint_changes SET version = version + 1; END",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE TRIGGER applications_rate_limit_changed AFTER UPDATE OF rate_limit ON applications \
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
                db.execute_unprepared("DROP TRIGGER applications_rate_limit_changed").await?
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER applications_rate_limit_changed ON applications").await?
            }
        };
        manager.drop_table(Table::drop().table(AppRateBuckets::Table).take()).await
    }
}
