use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "purchases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub package_code: Option<String>,
    pub package_name: Option<String>,
    pub credits_micros: i64,
    pub price_minor: i64,
    pub currency: String,
    pub status: String,
    #[sea_orm(unique)]
    pub payment_reference: Option<String>,
    pub lot_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
    pub refunded_minor: Option<i64>,
    pub refunded_at: Option<DateTimeUtc>,
    /// The caller's metadata (`service::metadata`): canonical JSON, keys sorted; none when not given.
    pub metadata: Option<String>,
    /// When a purchase that was never paid ended (cancelled, failed, or its expiry instant);
    /// kept if an expired purchase is paid late. None for every row before migration 000024.
    pub ended_at: Option<DateTimeUtc>,
    /// Why it ended: the caller's reason, or the expiry's.
    pub end_reason: Option<String>,
    /// The payment system's reference of a failed payment (`failPurchase`), if it gave one.
    pub failure_reference: Option<String>,
    /// Made by auto top-up rather than asked for by the user.
    pub auto_topup: bool,
    /// The Stripe Checkout Session made for it (`stripe::client`), if one was.
    pub checkout_session_id: Option<String>,
    /// That session's payment page, handed out while the purchase is pending.
    pub checkout_url: Option<String>,
    /// The refund asked of Stripe for it (`refundPurchase`), once Stripe answered.
    pub stripe_refund_id: Option<String>,
    /// The PaymentIntent made off-session for an auto top-up (`service::stripe_topups`), once
    /// Stripe answered.
    pub stripe_payment_intent_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
