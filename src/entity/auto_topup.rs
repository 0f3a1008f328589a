use sea_orm::entity::prelude::*;

/// An account's auto top-up setting (`service::auto_topup`), kept once set, on or off.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "auto_topups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: i64,
    pub enabled: bool,
    pub threshold_micros: i64,
    /// A fixed top-up; exactly one of this and `target_micros` is set.
    pub amount_micros: Option<i64>,
    /// Top up to this balance.
    pub target_micros: Option<i64>,
    pub monthly_cap_micros: i64,
    /// Failed top-up payments since the last one that went through (or since it was set).
    pub failures_in_a_row: i32,
    /// When, and why, it turned itself off; none while on or when the user turned it off.
    pub disabled_at: Option<DateTimeUtc>,
    pub disabled_reason: Option<String>,
    /// The month ("2026-12") whose cap was last announced as reached: once per month.
    pub cap_reached_month: Option<String>,
    pub updated_at: DateTimeUtc,
    /// The Stripe customer and saved payment method a top-up is charged to, off-session
    /// (`service::stripe_topups`); set by the product's backend, none without Stripe.
    pub stripe_customer_id: Option<String>,
    pub stripe_payment_method_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
