//! Auto top-up's rows: the setting per account, the account's copy of its threshold, and the
//! purchases it made. The caller holds the account's lock for every write.

use crate::entity::{account, auto_topup, purchase};
use crate::ledger::money::PurchaseStatus;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QuerySelect, Set};

pub async fn of_account(conn: &impl ConnectionTrait, account_id: i64) -> Result<Option<auto_topup::Model>, DbErr> {
    auto_topup::Entity::find_by_id(account_id).one(conn).await
}

/// A setting as the user gave it.
#[derive(Debug, Clone, Copy)]
pub struct NewSetting {
    pub enabled: bool,
    pub threshold_micros: i64,
    pub amount_micros: Option<i64>,
    pub target_micros: Option<i64>,
    pub monthly_cap_micros: i64,
}

/// Writes the account's setting, replacing any before it: a new setting starts a new run of
/// failures and forgets why it was turned off, and the account's copy of the threshold follows
/// (cleared when off). The outstanding purchase, if any, is kept: it still blocks another.
pub async fn put(
    conn: &impl ConnectionTrait,
    account_id: i64,
    setting: NewSetting,
    now: DateTime<Utc>,
) -> Result<auto_topup::Model, DbErr> {
    let row = auto_topup::ActiveModel {
        account_id: Set(account_id),
        enabled: Set(setting.enabled),
        threshold_micros: Set(setting.threshold_micros),
        amount_micros: Set(setting.amount_micros),
        target_micros: Set(setting.target_micros),
        monthly_cap_micros: Set(setting.monthly_cap_micros),
        failures_in_a_row: Set(0),
        disabled_at: Set(None),
        disabled_reason: Set(None),
        cap_reached_month: Set(None),
        updated_at: Set(now),
        // Not among the columns a new setting replaces: the saved card stays.
        stripe_customer_id: Set(None),
        stripe_payment_method_id: Set(None),
    };
    use auto_topup::Column as C;
    auto_topup::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::AccountId)
                .update_columns([
                    C::Enabled,
                    C::ThresholdMicros,
                    C::AmountMicros,
                    C::TargetMicros,
                    C::MonthlyCapMicros,
                    C::FailuresInARow,
                    C::DisabledAt,
                    C::DisabledReason,
                    C::CapReachedMonth,
                    C::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(conn)
        .await?;
    set_threshold_copy(conn, account_id, setting.enabled.then_some(setting.threshold_micros)).await?;
    of_account(conn, account_id).await?.ok_or_else(|| DbErr::RecordNotFound(format!("auto top-up of account {account_id}")))
}

async fn set_threshold_copy(conn: &impl ConnectionTrait, account_id: i64, below: Option<i64>) -> Result<(), DbErr> {
    account::Entity::update_many()
        .col_expr(account::Column::AutoTopupBelowMicros, Expr::value(below))
        .filter(account::Column::Id.eq(account_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Remembers that this month's cap was announced as reached.
pub async fn set_cap_reached(conn: &impl ConnectionTrait, account_id: i64, month: &str) -> Result<(), DbErr> {
    auto_topup::Entity::update_many()
        .col_expr(auto_topup::Column::CapReachedMonth, Expr::value(month))
        .filter(auto_topup::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Counts one more failed top-up payment; the count after it.
pub async fn add_failure(conn: &impl ConnectionTrait, account_id: i64, now: DateTime<Utc>) -> Result<i32, DbErr> {
    auto_topup::Entity::update_many()
        .col_expr(auto_topup::Column::FailuresInARow, Expr::col(auto_topup::Column::FailuresInARow).add(1))
        .col_expr(auto_topup::Column::UpdatedAt, Expr::value(now))
        .filter(auto_topup::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    Ok(of_account(conn, account_id).await?.map_or(0, |row| row.failures_in_a_row))
}

/// A top-up payment went through: the run of failures is over.
pub async fn clear_failures(conn: &impl ConnectionTrait, account_id: i64) -> Result<(), DbErr> {
    auto_topup::Entity::update_many()
        .col_expr(auto_topup::Column::FailuresInARow, Expr::value(0))
        .filter(auto_topup::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Turns auto top-up off by itself, saying why.
pub async fn disable(conn: &impl ConnectionTrait, account_id: i64, reason: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    auto_topup::Entity::update_many()
        .col_expr(auto_topup::Column::Enabled, Expr::value(false))
        .col_expr(auto_topup::Column::DisabledAt, Expr::value(now))
        .col_expr(auto_topup::Column::DisabledReason, Expr::value(reason))
        .col_expr(auto_topup::Column::UpdatedAt, Expr::value(now))
        .filter(auto_topup::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    set_threshold_copy(conn, account_id, None).await
}

/// The credits of the account's auto top-up purchases created in `[from, until)` that are
/// pending or were paid (a refunded one was paid): what counts against the monthly cap.
pub async fn bought_between(conn: &impl ConnectionTrait, account_id: i64, from: DateTime<Utc>, until: DateTime<Utc>) -> Result<i64, DbErr> {
    let counted = [PurchaseStatus::Pending, PurchaseStatus::Paid, PurchaseStatus::Refunded].map(|s| s.to_string());
    let rows: Vec<i64> = purchase::Entity::find()
        .select_only()
        .column(purchase::Column::CreditsMicros)
        .filter(purchase::Column::AccountId.eq(account_id))
        .filter(purchase::Column::AutoTopup.eq(true))
        .filter(purchase::Column::CreatedAt.gte(from))
        .filter(purchase::Column::CreatedAt.lt(until))
        .filter(purchase::Column::Status.is_in(counted))
        .into_tuple()
        .all(conn)
        .await?;
    // A month holds a handful of top-ups: summed here rather than in SQL, where the sum's type
    // differs between SQLite and PostgreSQL.
    Ok(rows.iter().sum())
}

/// The account's auto top-up purchase that is still pending, if any (at most one: the partial
/// unique index `purchases_one_pending_auto_topup`).
pub async fn pending_purchase(conn: &impl ConnectionTrait, account_id: i64) -> Result<Option<purchase::Model>, DbErr> {
    purchase::Entity::find()
        .filter(purchase::Column::AccountId.eq(account_id))
        .filter(purchase::Column::AutoTopup.eq(true))
        .filter(purchase::Column::Status.eq(PurchaseStatus::Pending.to_string()))
        .one(conn)
        .await
}

/// Saves the Stripe customer and payment method an account's top-ups are charged to.
pub async fn set_payment_method(conn: &impl ConnectionTrait, account_id: i64, customer: &str, payment_method: &str) -> Result<(), DbErr> {
    auto_topup::Entity::update_many()
        .col_expr(auto_topup::Column::StripeCustomerId, sea_orm::sea_query::Expr::value(customer))
        .col_expr(auto_topup::Column::StripePaymentMethodId, sea_orm::sea_query::Expr::value(payment_method))
        .filter(auto_topup::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Pending auto top-ups not yet sent to Stripe whose account has a saved payment method, oldest
/// first, at most `limit`, each with that method's customer and id.
pub async fn to_charge(conn: &impl ConnectionTrait, limit: u64) -> Result<Vec<(purchase::Model, String, String)>, DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    let pending = purchase::Entity::find()
        .filter(purchase::Column::AutoTopup.eq(true))
        .filter(purchase::Column::Status.eq(PurchaseStatus::Pending.to_string()))
        .filter(purchase::Column::StripePaymentIntentId.is_null())
        .order_by_asc(purchase::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let settings =
        auto_topup::Entity::find().filter(auto_topup::Column::AccountId.is_in(pending.iter().map(|p| p.account_id))).all(conn).await?;
    Ok(pending
        .into_iter()
        .filter_map(|p| {
            let setting = settings.iter().find(|s| s.account_id == p.account_id)?;
            let (customer, method) = (setting.stripe_customer_id.clone()?, setting.stripe_payment_method_id.clone()?);
            Some((p, customer, method))
        })
        .collect())
}
