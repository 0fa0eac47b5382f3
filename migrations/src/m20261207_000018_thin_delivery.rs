//! Thin delivery: endpoints that receive a small body with a signed URL instead of the payload.
//!
//! - `endpoints.payload_mode` (`full`, `thin` or `auto`), `thin_above_bytes` (auto's threshold;
//!   NULL = the default) and `data_url_ttl_seconds` (how long a `data_url` lasts; NULL = 24 h).
//! - `attempts.payload_mode` (NULL = the full payload was sent; `thin`; `thin_after_413`) and
//!   `attempts.request_body` (the thin body sent; NULL for a full one, which is the message's
//!   payload). Retention clears `request_body` with the other request/response columns.
//! - `payload_fetches`: every answered fetch of a `data_url`, on the delivery it was minted for
//!   (`idx_payload_fetches_delivery` lists a message's fetches per endpoint).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    PayloadMode,
    ThinAboveBytes,
    DataUrlTtlSeconds,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    PayloadMode,
    RequestBody,
}

#[derive(DeriveIden)]
enum PayloadFetches {
    Table,
    Id,
    TenantId,
    AppId,
    MessageId,
    EndpointId,
    DeliveryId,
    Status,
    Bytes,
    Ip,
    UserAgent,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [
            string(Endpoints::PayloadMode).default("full").take(),
            integer_null(Endpoints::ThinAboveBytes),
            integer_null(Endpoints::DataUrlTtlSeconds),
        ] {
            let mut column = column;
            manager
                .alter_table(Table::alter().table(Endpoints::Table).add_column(&mut column).take())
                .await?;
        }
        for column in [string_null(Attempts::PayloadMode), text_null(Attempts::RequestBody)] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Attempts::Table).add_column(&mut column).take()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PayloadFetches::Table)
                    .col(string(PayloadFetches::Id).primary_key())
                    .col(string(PayloadFetches::TenantId))
                    .col(string(PayloadFetches::AppId))
                    .col(string(PayloadFetches::MessageId))
                    .col(string(PayloadFetches::EndpointId))
                    .col(string(PayloadFetches::DeliveryId))
                    .col(integer(PayloadFetches::Status))
                    .col(big_integer(PayloadFetches::Bytes))
                    .col(string_null(PayloadFetches::Ip))
                    .col(string_null(PayloadFetches::UserAgent))
                    .col(timestamp_with_time_zone(PayloadFetches::CreatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_payload_fetches_delivery")
                    .table(PayloadFetches::Table)
                    .col(PayloadFetches::TenantId)
                    .col(PayloadFetches::MessageId)
                    .col(PayloadFetches::EndpointId)
                    .col(PayloadFetches::Id)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_payload_fetches_app")
                    .table(PayloadFetches::Table)
                    .col(PayloadFetches::TenantId)
                    .col(PayloadFetches::AppId)
                    .col(PayloadFetches::Id)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PayloadFetches::Table).take()).await?;
        for column in [Attempts::RequestBody, Attempts::PayloadMode] {
            manager.alter_table(Table::alter().table(Attempts::Table).drop_column(column).take()).await?;
        }
        for column in [Endpoints::DataUrlTtlSeconds, Endpoints::ThinAboveBytes, Endpoints::PayloadMode] {
            manager.alter_table(Table::alter().table(Endpoints::Table).drop_column(column).take()).await?;
        }
        Ok(())
    }
}
