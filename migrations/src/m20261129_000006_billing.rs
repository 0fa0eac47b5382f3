//! Billing with Stripe: the tenant's Stripe customer and subscription, the grace period after a
//! failed payment, Stripe events already applied (so a duplicate is applied once), and the hourly
//! overage reports already sent (each with a deterministic identifier).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    StripeCustomerId,
    StripeSubscriptionId,
    GraceUntil,
}

#[derive(DeriveIden)]
enum StripeEvents {
    Table,
    Id,
    EventType,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum UsageReports {
    Table,
    TenantId,
    HourStart,
    Identifier,
    Quantity,
    ReportedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for column in [
            string_null(Tenants::StripeCustomerId),
            string_null(Tenants::StripeSubscriptionId),
            timestamp_with_time_zone_null(Tenants::GraceUntil),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Tenants::Table).add_column(&mut column).take()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_tenants_stripe_customer")
                    .table(Tenants::Table)
                    .col(Tenants::StripeCustomerId)
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StripeEvents::Table)
                    .col(ColumnDef::new(StripeEvents::Id).string().not_null().primary_key())
                    .col(string(StripeEvents::EventType))
                    .col(timestamp_with_time_zone(StripeEvents::ReceivedAt))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageReports::Table)
                    .col(string(UsageReports::TenantId))
                    .col(timestamp_with_time_zone(UsageReports::HourStart))
                    .col(string(UsageReports::Identifier))
                    .col(big_integer(UsageReports::Quantity))
                    .col(timestamp_with_time_zone(UsageReports::ReportedAt))
                    .primary_key(Index::create().col(UsageReports::TenantId).col(UsageReports::HourStart))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UsageReports::Table).take()).await?;
        manager.drop_table(Table::drop().table(StripeEvents::Table).take()).await?;
        manager
            .drop_index(Index::drop().name("idx_tenants_stripe_customer").table(Tenants::Table).to_owned())
            .await?;
        for column in [Tenants::GraceUntil, Tenants::StripeSubscriptionId, Tenants::StripeCustomerId] {
            manager.alter_table(Table::alter().table(Tenants::Table).drop_column(column).take()).await?;
        }
        Ok(())
    }
}
