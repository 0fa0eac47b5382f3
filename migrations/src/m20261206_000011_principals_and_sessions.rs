//! Security: idempotency records belong to the principal that made them, and dashboard sessions
//! are rows the server can revoke.
//!
//! - `idempotency_keys` is made again with `principal` in its primary key
//!   (`tenant_id, principal, key`): a record is replayed only to the credential that made it, and
//!   another credential of the tenant can neither read nor pre-claim it. Records made before this
//!   migration are not carried over: they were answerable to any credential of their tenant and
//!   some held secrets (API keys, portal tokens) in plaintext; they lived at most 24 hours.
//! - `sessions`: one row per dashboard log-in, named by the session token's `sid`; log-out revokes
//!   it, and a token whose row is revoked, expired or missing is refused.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    TenantId,
    Principal,
    Key,
    RequestFingerprint,
    State,
    ResponseStatus,
    ResponseBody,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TenantId,
    UserId,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

async fn create_idempotency_keys(manager: &SchemaManager<'_>, with_principal: bool) -> Result<(), DbErr> {
    let mut table = Table::create();
    table.table(IdempotencyKeys::Table).col(string(IdempotencyKeys::TenantId));
    let mut primary_key = Index::create();
    primary_key.col(IdempotencyKeys::TenantId);
    if with_principal {
        table.col(string(IdempotencyKeys::Principal));
        primary_key.col(IdempotencyKeys::Principal);
    }
    primary_key.col(IdempotencyKeys::Key);
    table
        .col(string(IdempotencyKeys::Key))
        .col(string(IdempotencyKeys::RequestFingerprint))
        .col(string(IdempotencyKeys::State))
        .col(integer_null(IdempotencyKeys::ResponseStatus))
        .col(text_null(IdempotencyKeys::ResponseBody))
        .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
        .primary_key(&mut primary_key);
    manager.create_table(table.take()).await?;
    manager
        .create_index(
            Index::create()
                .name("idx_idempotency_keys_created")
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::CreatedAt)
                .take(),
        )
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(IdempotencyKeys::Table).take()).await?;
        create_idempotency_keys(manager, true).await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string(Sessions::Id).primary_key())
                    .col(string(Sessions::TenantId))
                    .col(string(Sessions::UserId))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_expires")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Sessions::Table).take()).await?;
        manager.drop_table(Table::drop().table(IdempotencyKeys::Table).take()).await?;
        create_idempotency_keys(manager, false).await
    }
}
