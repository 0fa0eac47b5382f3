//! Tenant isolation by construction. Every tenant-owned entity implements [`TenantScoped`], and
//! services reach those tables only through `scoped`, `scoped_update` and `scoped_delete`, which
//! filter on the tenant before anything else is added. A lookup of another tenant's id therefore
//! finds nothing, and the API answers 404.

use hookline_types::TenantId;
use sea_orm::{ColumnTrait, DeleteMany, EntityTrait, QueryFilter, Select, UpdateMany};

use crate::store::entities::*;

pub trait TenantScoped: EntityTrait {
    fn tenant_column() -> Self::Column;

    fn scoped(tenant: &TenantId) -> Select<Self> {
        Self::find().filter(Self::tenant_column().eq(tenant.as_str()))
    }

    fn scoped_update(tenant: &TenantId) -> UpdateMany<Self> {
        Self::update_many().filter(Self::tenant_column().eq(tenant.as_str()))
    }

    fn scoped_delete(tenant: &TenantId) -> DeleteMany<Self> {
        Self::delete_many().filter(Self::tenant_column().eq(tenant.as_str()))
    }
}

macro_rules! tenant_scoped {
    ($($module:ident),*) => {$(
        impl TenantScoped for $module::Entity {
            fn tenant_column() -> Self::Column {
                $module::Column::TenantId
            }
        }
    )*};
}

tenant_scoped!(
    users,
    api_keys,
    app_rate_buckets,
    event_types,
    applications,
    endpoints,
    messages,
    message_payloads,
    deliveries,
    attempts,
    fanout_queue,
    broadcasts,
    endpoint_health,
    usage_counters,
    idempotency_keys,
    sessions,
    sources,
    source_requests,
    source_order,
    payload_fetches
);
