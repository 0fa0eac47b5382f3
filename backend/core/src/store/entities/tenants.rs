//! The `tenants` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub plan: String,
    pub billing_state: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: Json,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    /// After a failed payment: when the tenant goes back to the free plan unless paid.
    pub grace_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
