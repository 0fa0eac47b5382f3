//! Tenants (organizations). Created by signup or by the operator CLI.

use chrono::Utc;
use hookline_types::{ApiKeyCreatedOut, ApiKeyIn, ApiKeyMode, ApiKeyScope, TenantId, TenantOut};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::{
    Context,
    error::{CoreError, CoreResult, Errors},
    ids::NewId,
    store::entities::tenants,
    tenancy::api_keys,
};

pub const DEFAULT_PLAN: &str = "free";

pub(crate) fn to_out(model: tenants::Model) -> CoreResult<TenantOut> {
    Ok(TenantOut {
        id: TenantId::parse(&model.id).map_err(|err| CoreError::Internal(err.into()))?,
        name: model.name,
        plan: model.plan,
        created_at: model.created_at,
    })
}

pub(crate) fn validate_name(errors: &mut Errors, loc: &[&str], name: &str) {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 256 {
        errors.push(loc, "must be 1 to 256 characters long");
    }
}

pub(crate) async fn insert<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    email: &str,
    plan: &str,
) -> CoreResult<tenants::Model> {
    let now = Utc::now();
    let model = tenants::ActiveModel {
        id: Set(TenantId::new_id().into_string()),
        name: Set(name.trim().to_owned()),
        email: Set(Some(email.trim().to_owned())),
        plan: Set(plan.to_owned()),
        billing_state: Set("none".to_owned()),
        settings: Set(serde_json::json!({})),
        stripe_customer_id: Set(None),
        stripe_subscription_id: Set(None),
        grace_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Ok(model.insert(conn).await?)
}

/// The operator's `hookline tenant create`: a tenant on the free plan and its first API key
/// (admin scope), whose secret is returned once.
pub async fn create_with_key(
    ctx: &Context,
    name: &str,
    email: &str,
    plan: &str,
) -> CoreResult<(TenantOut, ApiKeyCreatedOut)> {
    if !PLANS.contains(&plan) {
        return Err(CoreError::invalid(&["plan"], format!("must be one of {}", PLANS.join(", "))));
    }
    let mut errors = Errors::default();
    validate_name(&mut errors, &["name"], name);
    if !email.contains('@') {
        errors.push(&["email"], "must be an email address");
    }
    errors.into_result()?;
    let txn = ctx.db.begin_write().await?;
    let tenant = insert(&txn, name, email, plan).await?;
    let tenant_id = TenantId::parse(&tenant.id).map_err(|err| CoreError::Internal(err.into()))?;
    let key = api_keys::insert(
        &txn,
        &tenant_id,
        ApiKeyIn {
            name: "default".to_owned(),
            scopes: Some(vec![ApiKeyScope::Admin]),
            mode: ApiKeyMode::Live,
            expires_at: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok((to_out(tenant)?, key))
}

pub async fn get(ctx: &Context, tenant: &TenantId) -> CoreResult<TenantOut> {
    let model = tenants::Entity::find_by_id(tenant.as_str())
        .one(&ctx.db.conn)
        .await?
        .ok_or(CoreError::NotFound("tenant"))?;
    to_out(model)
}

pub const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

/// Operator overrides of single plan limits (`hookline plan set`); absent ones are left as they
/// are.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PlanOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_messages: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overage_allowed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_applications: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_endpoints: Option<i64>,
    /// 0 lifts the plan's per-endpoint delivery rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_rate_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_rate_per_second: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_burst: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload_bytes: Option<i64>,
}

/// The operator's `hookline plan set`: puts the tenant (by id or name) on `plan` and merges the
/// given overrides into `settings.overrides` (read by `tenancy::plans`).
pub async fn set_plan(
    ctx: &Context,
    tenant: &str,
    plan: &str,
    overrides: &PlanOverrides,
) -> CoreResult<TenantOut> {
    if !PLANS.contains(&plan) {
        return Err(CoreError::invalid(&["plan"], format!("must be one of {}", PLANS.join(", "))));
    }
    let txn = ctx.db.begin_write().await?;
    let found = match TenantId::parse(tenant) {
        Ok(id) => tenants::Entity::find_by_id(id.as_str()).one(&txn).await?,
        Err(_) => {
            let mut named =
                tenants::Entity::find().filter(tenants::Column::Name.eq(tenant)).all(&txn).await?;
            if named.len() > 1 {
                return Err(CoreError::conflict(
                    "tenant_name_ambiguous",
                    "several tenants have this name: use the id",
                ));
            }
            named.pop()
        }
    };
    let model = found.ok_or(CoreError::NotFound("tenant"))?;
    let mut settings = model.settings.clone();
    if !settings.is_object() {
        settings = serde_json::json!({});
    }
    if let serde_json::Value::Object(given) = serde_json::to_value(overrides).expect("overrides serialize") {
        for (key, value) in given {
            settings["overrides"][key] = value;
        }
    }
    let id = model.id.clone();
    let mut active: tenants::ActiveModel = model.into();
    active.plan = Set(plan.to_owned());
    active.settings = Set(settings);
    active.updated_at = Set(Utc::now());
    let model = active.update(&txn).await?;
    txn.commit().await?;
    crate::tenancy::plans::forget(ctx, &id);
    to_out(model)
}
