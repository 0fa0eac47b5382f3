//! The foundation schema: tenancy, keys, event types, applications, endpoints, messages (payload
//! in its own table so it can expire), deliveries, attempts, usage counters, idempotency records.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Email,
    Plan,
    BillingState,
    Settings,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TenantId,
    Email,
    PasswordHash,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Prefix,
    KeyHash,
    Scopes,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum EventTypes {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    Schema,
    Example,
    Archived,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Applications {
    Table,
    Id,
    TenantId,
    Uid,
    Name,
    Metadata,
    RateLimit,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Id,
    TenantId,
    AppId,
    Uid,
    Url,
    Description,
    Disabled,
    DisabledReason,
    FilterTypes,
    Channels,
    RateLimit,
    Metadata,
    HeadersCiphertext,
    HeaderNames,
    Format,
    Ordering,
    TimeoutMs,
    RetrySchedule,
    AuthCiphertext,
    AuthSummary,
    SecretCiphertext,
    PreviousSecrets,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    TenantId,
    AppId,
    EventType,
    EventId,
    Channels,
    PayloadSize,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MessagePayloads {
    Table,
    MessageId,
    TenantId,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    TenantId,
    AppId,
    MessageId,
    EndpointId,
    Status,
    AttemptCount,
    NextAttemptAt,
    LastAttemptAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Id,
    TenantId,
    AppId,
    MessageId,
    EndpointId,
    DeliveryId,
    Url,
    RequestHeaders,
    ResponseStatus,
    ResponseHeaders,
    ResponseBody,
    DurationMs,
    ErrorClass,
    Trigger,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UsageCounters {
    Table,
    TenantId,
    AppId,
    HourStart,
    Metric,
    Value,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    TenantId,
    Key,
    RequestFingerprint,
    State,
    ResponseStatus,
    ResponseBody,
    CreatedAt,
}

fn id<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).string().not_null().primary_key().take()
}

fn time<T: IntoIden>(col: T) -> ColumnDef {
    timestamp_with_time_zone(col)
}

fn time_null<T: IntoIden>(col: T) -> ColumnDef {
    timestamp_with_time_zone_null(col)
}

fn index(name: &str, table: impl IntoIden, columns: &[&'static str]) -> IndexCreateStatement {
    let mut statement = Index::create();
    statement.name(name).table(table);
    for column in columns {
        statement.col(Alias::new(*column));
    }
    statement.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(id(Tenants::Id))
                    .col(string(Tenants::Name))
                    .col(string_null(Tenants::Email))
                    .col(string(Tenants::Plan))
                    .col(string(Tenants::BillingState))
                    .col(json_binary(Tenants::Settings))
                    .col(time(Tenants::CreatedAt))
                    .col(time(Tenants::UpdatedAt))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(id(Users::Id))
                    .col(string(Users::TenantId))
                    .col(string_uniq(Users::Email))
                    .col(string_null(Users::PasswordHash))
                    .col(string(Users::Role))
                    .col(time(Users::CreatedAt))
                    .take(),
            )
            .await?;
        manager.create_index(index("idx_users_tenant", Users::Table, &["tenant_id"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(id(ApiKeys::Id))
                    .col(string(ApiKeys::TenantId))
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::Prefix))
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(json_binary(ApiKeys::Scopes))
                    .col(time(ApiKeys::CreatedAt))
                    .col(time_null(ApiKeys::LastUsedAt))
                    .col(time_null(ApiKeys::ExpiresAt))
                    .col(time_null(ApiKeys::RevokedAt))
                    .take(),
            )
            .await?;
        manager.create_index(index("idx_api_keys_tenant", ApiKeys::Table, &["tenant_id", "id"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(EventTypes::Table)
                    .col(id(EventTypes::Id))
                    .col(string(EventTypes::TenantId))
                    .col(string(EventTypes::Name))
                    .col(text(EventTypes::Description))
                    .col(json_binary_null(EventTypes::Schema))
                    .col(json_binary_null(EventTypes::Example))
                    .col(boolean(EventTypes::Archived))
                    .col(time(EventTypes::CreatedAt))
                    .col(time(EventTypes::UpdatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index("uq_event_types_tenant_name", EventTypes::Table, &["tenant_id", "name"])
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Applications::Table)
                    .col(id(Applications::Id))
                    .col(string(Applications::TenantId))
                    .col(string_null(Applications::Uid))
                    .col(string(Applications::Name))
                    .col(json_binary(Applications::Metadata))
                    .col(integer_null(Applications::RateLimit))
                    .col(time(Applications::CreatedAt))
                    .col(time(Applications::UpdatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index("uq_applications_tenant_uid", Applications::Table, &["tenant_id", "uid"])
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(index("idx_applications_tenant", Applications::Table, &["tenant_id", "id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Endpoints::Table)
                    .col(id(Endpoints::Id))
                    .col(string(Endpoints::TenantId))
                    .col(string(Endpoints::AppId))
                    .col(string_null(Endpoints::Uid))
                    .col(text(Endpoints::Url))
                    .col(text(Endpoints::Description))
                    .col(boolean(Endpoints::Disabled))
                    .col(string_null(Endpoints::DisabledReason))
                    .col(json_binary_null(Endpoints::FilterTypes))
                    .col(json_binary_null(Endpoints::Channels))
                    .col(integer_null(Endpoints::RateLimit))
                    .col(json_binary(Endpoints::Metadata))
                    .col(text_null(Endpoints::HeadersCiphertext))
                    .col(json_binary(Endpoints::HeaderNames))
                    .col(string(Endpoints::Format))
                    .col(string(Endpoints::Ordering))
                    .col(integer_null(Endpoints::TimeoutMs))
                    .col(json_binary_null(Endpoints::RetrySchedule))
                    .col(text_null(Endpoints::AuthCiphertext))
                    .col(json_binary_null(Endpoints::AuthSummary))
                    .col(text(Endpoints::SecretCiphertext))
                    .col(json_binary(Endpoints::PreviousSecrets))
                    .col(time(Endpoints::CreatedAt))
                    .col(time(Endpoints::UpdatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index("uq_endpoints_app_uid", Endpoints::Table, &["tenant_id", "app_id", "uid"])
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(index("idx_endpoints_app", Endpoints::Table, &["tenant_id", "app_id", "id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(id(Messages::Id))
                    .col(string(Messages::TenantId))
                    .col(string(Messages::AppId))
                    .col(string(Messages::EventType))
                    .col(string_null(Messages::EventId))
                    .col(json_binary(Messages::Channels))
                    .col(big_integer(Messages::PayloadSize))
                    .col(time(Messages::CreatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index("uq_messages_event_id", Messages::Table, &["tenant_id", "app_id", "event_id"])
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(index("idx_messages_app", Messages::Table, &["tenant_id", "app_id", "id"]))
            .await?;
        manager
            .create_index(index(
                "idx_messages_app_type",
                Messages::Table,
                &["tenant_id", "app_id", "event_type", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MessagePayloads::Table)
                    .col(id(MessagePayloads::MessageId))
                    .col(string(MessagePayloads::TenantId))
                    .col(text(MessagePayloads::Payload))
                    .col(time(MessagePayloads::CreatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("idx_message_payloads_created", MessagePayloads::Table, &["created_at"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .col(id(Deliveries::Id))
                    .col(string(Deliveries::TenantId))
                    .col(string(Deliveries::AppId))
                    .col(string(Deliveries::MessageId))
                    .col(string(Deliveries::EndpointId))
                    .col(string(Deliveries::Status))
                    .col(integer(Deliveries::AttemptCount))
                    .col(time_null(Deliveries::NextAttemptAt))
                    .col(time_null(Deliveries::LastAttemptAt))
                    .col(time(Deliveries::CreatedAt))
                    .col(time(Deliveries::UpdatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index("uq_deliveries_message_endpoint", Deliveries::Table, &["message_id", "endpoint_id"])
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(index("idx_deliveries_due", Deliveries::Table, &["status", "next_attempt_at"]))
            .await?;
        manager
            .create_index(index(
                "idx_deliveries_endpoint",
                Deliveries::Table,
                &["tenant_id", "endpoint_id", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .col(id(Attempts::Id))
                    .col(string(Attempts::TenantId))
                    .col(string(Attempts::AppId))
                    .col(string(Attempts::MessageId))
                    .col(string(Attempts::EndpointId))
                    .col(string(Attempts::DeliveryId))
                    .col(text(Attempts::Url))
                    .col(json_binary(Attempts::RequestHeaders))
                    .col(integer_null(Attempts::ResponseStatus))
                    .col(json_binary_null(Attempts::ResponseHeaders))
                    .col(text_null(Attempts::ResponseBody))
                    .col(integer(Attempts::DurationMs))
                    .col(string_null(Attempts::ErrorClass))
                    .col(string(Attempts::Trigger))
                    .col(time(Attempts::CreatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("idx_attempts_message", Attempts::Table, &["tenant_id", "message_id", "id"]))
            .await?;
        manager
            .create_index(index(
                "idx_attempts_app_endpoint",
                Attempts::Table,
                &["tenant_id", "app_id", "endpoint_id", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UsageCounters::Table)
                    .col(string(UsageCounters::TenantId))
                    // '' for the tenant-wide row: a primary key column cannot be NULL.
                    .col(string(UsageCounters::AppId))
                    .col(time(UsageCounters::HourStart))
                    .col(string(UsageCounters::Metric))
                    .col(big_integer(UsageCounters::Value))
                    .primary_key(
                        Index::create()
                            .col(UsageCounters::TenantId)
                            .col(UsageCounters::AppId)
                            .col(UsageCounters::HourStart)
                            .col(UsageCounters::Metric),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(string(IdempotencyKeys::TenantId))
                    .col(string(IdempotencyKeys::Key))
                    .col(string(IdempotencyKeys::RequestFingerprint))
                    .col(string(IdempotencyKeys::State))
                    .col(integer_null(IdempotencyKeys::ResponseStatus))
                    .col(text_null(IdempotencyKeys::ResponseBody))
                    .col(time(IdempotencyKeys::CreatedAt))
                    .primary_key(Index::create().col(IdempotencyKeys::TenantId).col(IdempotencyKeys::Key))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("idx_idempotency_keys_created", IdempotencyKeys::Table, &["created_at"]))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "idempotency_keys",
            "usage_counters",
            "attempts",
            "deliveries",
            "message_payloads",
            "messages",
            "endpoints",
            "applications",
            "event_types",
            "api_keys",
            "users",
            "tenants",
        ] {
            manager.drop_table(Table::drop().table(Alias::new(table)).take()).await?;
        }
        Ok(())
    }
}
