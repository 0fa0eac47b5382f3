//! Plans as data: one row per plan with its limits, seeded with the defaults of SPEC §5. A
//! tenant's overrides live in `tenants.settings.overrides`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Plans {
    Table,
    Name,
    MonthlyMessages,
    OverageAllowed,
    MaxApplications,
    MaxEndpoints,
    /// Deliveries per second per endpoint; NULL for none.
    EndpointRateLimit,
    ApiRatePerSecond,
    ApiBurst,
    RetentionDays,
    MaxPayloadBytes,
    /// JSON array: `transformations`, `inbound_sources`, `dedicated_queue`.
    Features,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Plans::Table)
                    .col(ColumnDef::new(Plans::Name).string().not_null().primary_key())
                    .col(big_integer(Plans::MonthlyMessages))
                    .col(boolean(Plans::OverageAllowed))
                    .col(big_integer(Plans::MaxApplications))
                    .col(big_integer(Plans::MaxEndpoints))
                    .col(integer_null(Plans::EndpointRateLimit))
                    .col(integer(Plans::ApiRatePerSecond))
                    .col(integer(Plans::ApiBurst))
                    .col(big_integer(Plans::RetentionDays))
                    .col(big_integer(Plans::MaxPayloadBytes))
                    .col(json_binary(Plans::Features))
                    .take(),
            )
            .await?;
        let mut insert = Query::insert()
            .into_table(Plans::Table)
            .columns([
                Plans::Name,
                Plans::MonthlyMessages,
                Plans::OverageAllowed,
                Plans::MaxApplications,
                Plans::MaxEndpoints,
                Plans::EndpointRateLimit,
                Plans::ApiRatePerSecond,
                Plans::ApiBurst,
                Plans::RetentionDays,
                Plans::MaxPayloadBytes,
                Plans::Features,
            ])
            .to_owned();
        type Row = (&'static str, i64, bool, i64, i64, Option<i32>, i32, i32, i64, i64, serde_json::Value);
        let rows: [Row; 3] = [
            ("free", 10_000, false, 10, 10, Some(10), 20, 40, 7, 256 * 1024, serde_json::json!([])),
            (
                "pro",
                1_000_000,
                true,
                1_000,
                1_000,
                None,
                200,
                400,
                30,
                1024 * 1024,
                serde_json::json!(["transformations", "inbound_sources"]),
            ),
            (
                "enterprise",
                10_000_000,
                true,
                100_000,
                100_000,
                None,
                20_000,
                20_000,
                90,
                1024 * 1024,
                serde_json::json!(["transformations", "inbound_sources", "dedicated_queue"]),
            ),
        ];
        for (name, messages, overage, apps, endpoints, rate, api, burst, retention, payload, features) in rows
        {
            insert.values_panic([
                name.into(),
                messages.into(),
                overage.into(),
                apps.into(),
                endpoints.into(),
                rate.into(),
                api.into(),
                burst.into(),
                retention.into(),
                payload.into(),
                features.into(),
            ]);
        }
        manager.exec_stmt(insert).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Plans::Table).take()).await
    }
}
