use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub external_id: String,
    pub plan: String,
    pub status: String,
    pub identity_verified: bool,
    pub credit_mail_enabled: bool,
    /// A cache of the sum of remaining over all lots, kept in the same transaction as the journal.
    pub balance_micros: i64,
    pub created_at: DateTimeUtc,
    /// When the current plan started: the anchor of its subscription periods.
    pub plan_since: Option<DateTimeUtc>,
    /// The code this account's friends sign up with, where the program has referrals.
    pub referral_code: Option<String>,
    /// When this purchase cycle's low-credit warning went out; none once re-armed.
    pub low_credits_notified_at: Option<DateTimeUtc>,
    /// When this subscription's next month starts (`from_recharge` plans), for the renewal at
    /// that instant; none when no renewal is due.
    pub renews_at: Option<DateTimeUtc>,
    /// Auto top-up's threshold while it is on (a copy of `auto_topups.threshold_micros`): the
    /// spend path sees from the row it locked whether to look further.
    pub auto_topup_below_micros: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
