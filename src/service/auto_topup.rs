//! Auto top-up (issue 26): the user (or the product for them) sets a threshold and how much to
//! buy; when a spend, a settlement, a hold or an expiry leaves what the account can spend under
//! the threshold, the same transaction records one pending purchase, flagged `auto_topup`, and
//! publishes `purchase.auto_topup_requested`. The product charges the saved card and confirms
//! the purchase (`confirmPurchase`), or fails it (`failPurchase`).
//!
//! Exactly one: every use case that lowers a balance holds the account's lock when it calls
//! `after_lowering`, and a pending auto top-up purchase blocks another until it is paid, failed,
//! cancelled or expired (a partial unique index on `purchases` says the same to the database).
//! A pending one past its lifetime is expired here, in the same transaction, rather than
//! waiting for the job: the rule is the purchase's lifetime, not when the job ran.
//!
//! What "can spend" means here: the account's lots spendable now (not expired, not upcoming),
//! scoped ones included, as `Balance.available` counts them, but without the day's free credits,
//! which vanish at midnight and would put a top-up off until the account is truly dry. Holds
//! already left the lots, so they count as spent.
//!
//! After `auto_topup_max_failures` failed payments in a row (3 unless the program says) it turns
//! itself off, says why in the setting, and publishes `auto_topup.disabled`. Setting it again
//! turns it back on with a new count.

use crate::entity::{account, auto_topup, purchase};
use crate::ledger::auto_topup::{Decision, Setting, TopUp, decide, gives_up};
use crate::ledger::purchase::{is_past_lifetime, pending_until};
use crate::ledger::time::{month_key, month_start, next_month_start};
use crate::ledger::{Credits, money::price_of};
use crate::program::Program;
use crate::service::input::ExternalId;
use crate::service::purchases::PurchaseView;
use crate::service::{Engine, ServiceError, tx};
use crate::store::{self, auto_topups::NewSetting, lots, purchases::NewPurchase};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;

/// The reason an automatic purchase is recorded with, shown with its history.
pub const PURCHASE_REASON: &str = "auto top-up";

/// What the user asks for: on with a setting, or off.
#[derive(Debug, Clone, Copy)]
pub enum AutoTopUpRequest {
    On(Setting),
    Off,
}

/// An account's auto top-up as the API shows it.
#[derive(Debug, Clone)]
pub struct AutoTopUpView {
    pub enabled: bool,
    pub setting: Setting,
    /// What auto top-ups bought, or are buying, this calendar month (UTC).
    pub bought_this_month: Credits,
    /// When this month's cap stops counting.
    pub month_ends_at: DateTime<Utc>,
    pub failures_in_a_row: u32,
    /// The program's limit on failures in a row.
    pub max_failures: u32,
    /// Set when it turned itself off.
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// The purchase it is waiting on, if one is pending.
    pub pending_purchase: Option<PurchaseView>,
    pub updated_at: DateTime<Utc>,
    /// A Stripe payment method is saved for it.
    pub pays_with_stripe: bool,
}

impl Engine {
    /// Sets, replaces or turns off an account's auto top-up. Idempotent by nature: the same
    /// setting twice is the same state. Turning it on while the account is already under the
    /// threshold asks for a top-up at once, in the same transaction.
    /// None when it is turned off and was never set.
    ///
    /// `payment_method`: the Stripe customer and saved payment method to charge top-ups to
    /// (`service::stripe_topups`), kept until another is given; saved in the same transaction,
    /// so a top-up asked for at once is charged to it.
    pub async fn set_auto_topup(
        &self,
        account: &str,
        request: AutoTopUpRequest,
        payment_method: Option<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<Option<AutoTopUpView>, ServiceError> {
        let external = ExternalId::parse(account)?;
        if let Some((customer, method)) = &payment_method {
            let customer = crate::service::input::foreign_id("stripePaymentMethod.customer", customer)?;
            let method = crate::service::input::foreign_id("stripePaymentMethod.paymentMethod", method)?;
            if !customer.starts_with("cus_") || !["pm_", "card_", "src_"].iter().any(|p| method.starts_with(p)) {
                return Err(ServiceError::bad_input("stripePaymentMethod: a customer (cus_...) and one of its payment methods (pm_...)"));
            }
        }
        if let AutoTopUpRequest::On(setting) = request {
            setting.validate(self.program.minimum_purchase).map_err(|e| ServiceError::bad_input(e.to_string()))?;
        }
        let program = self.program.clone();
        let account_id = tx::write(&self.writer, |txn| {
            let (external, program, payment_method) = (external.clone(), program.clone(), payment_method.clone());
            Box::pin(async move {
                let locked = crate::service::accounts::lock_by_external_id(txn, external.as_str()).await?;
                let new = match request {
                    AutoTopUpRequest::On(setting) => stored_form(setting, true),
                    AutoTopUpRequest::Off => match store::auto_topups::of_account(txn, locked.id).await? {
                        // Off keeps the last setting, so turning it on again in an app can
                        // start from it.
                        Some(row) => NewSetting { enabled: false, ..setting_of(&row).map(|s| stored_form(s, false))? },
                        None => return Ok(locked.id),
                    },
                };
                store::auto_topups::put(txn, locked.id, new, now).await?;
                if let Some((customer, method)) = &payment_method {
                    store::auto_topups::set_payment_method(txn, locked.id, customer, method).await?;
                }
                tracing::info!(account.id = locked.id, auto_topup.enabled = new.enabled, "auto top-up set");
                if new.enabled {
                    let locked = store::accounts::by_id(txn, locked.id).await?.ok_or_else(|| anyhow::anyhow!("account vanished"))?;
                    after_lowering(txn, &program, &[(&locked, now)]).await?;
                }
                Ok(locked.id)
            })
        })
        .await?;
        self.auto_topup(account_id, now).await
    }

    /// An account's auto top-up, if one was ever set.
    pub async fn auto_topup(&self, account_id: i64, now: DateTime<Utc>) -> Result<Option<AutoTopUpView>, ServiceError> {
        let Some(row) = store::auto_topups::of_account(&self.db, account_id).await? else { return Ok(None) };
        let bought = store::auto_topups::bought_between(&self.db, account_id, month_start(now), next_month_start(now)).await?;
        let pending = store::auto_topups::pending_purchase(&self.db, account_id).await?;
        Ok(Some(AutoTopUpView {
            enabled: row.enabled,
            setting: setting_of(&row)?,
            bought_this_month: Credits::from_micros(bought),
            month_ends_at: next_month_start(now),
            failures_in_a_row: u32::try_from(row.failures_in_a_row).unwrap_or(0),
            max_failures: self.program.auto_topup_max_failures,
            disabled_at: row.disabled_at,
            disabled_reason: row.disabled_reason,
            pending_purchase: pending.map(PurchaseView::of).transpose()?,
            updated_at: row.updated_at,
            pays_with_stripe: row.stripe_payment_method_id.is_some(),
        }))
    }
}

fn stored_form(setting: Setting, enabled: bool) -> NewSetting {
    let (amount, target) = match setting.top_up {
        TopUp::Amount(amount) => (Some(amount.micros()), None),
        TopUp::Target(target) => (None, Some(target.micros())),
    };
    NewSetting {
        enabled,
        threshold_micros: setting.threshold.micros(),
        amount_micros: amount,
        target_micros: target,
        monthly_cap_micros: setting.monthly_cap.micros(),
    }
}

/// The stored row, read back: exactly one of amount and target, all non-negative.
fn setting_of(row: &auto_topup::Model) -> Result<Setting, ServiceError> {
    let corrupt = || ServiceError::from(anyhow::anyhow!("auto top-up of account {}: a corrupt row", row.account_id));
    let positive = |micros: i64| if micros >= 0 { Ok(Credits::from_micros(micros)) } else { Err(corrupt()) };
    let top_up = match (row.amount_micros, row.target_micros) {
        (Some(amount), None) => TopUp::Amount(positive(amount)?),
        (None, Some(target)) => TopUp::Target(positive(target)?),
        _ => return Err(corrupt()),
    };
    Ok(Setting { threshold: positive(row.threshold_micros)?, top_up, monthly_cap: positive(row.monthly_cap_micros)? })
}

/// Called, in its transaction and under the accounts' locks, by every use case that lowers a
/// balance (beside the low-credit check), with the accounts as they stand after its postings
/// and the instant of each one's change. Accounts without auto top-up cost nothing: the locked
/// row says whether it is on. One with it on costs a read of its open lots, to know what is
/// spendable (the cached balance also counts upcoming lots and expired ones not yet written off).
pub(crate) async fn after_lowering(
    txn: &DatabaseTransaction,
    program: &Program,
    accounts: &[(&account::Model, DateTime<Utc>)],
) -> Result<(), ServiceError> {
    for (account, now) in accounts {
        if account.auto_topup_below_micros.is_some() {
            consider(txn, program, account, *now).await?;
        }
    }
    Ok(())
}

async fn consider(txn: &DatabaseTransaction, program: &Program, account: &account::Model, now: DateTime<Utc>) -> Result<(), ServiceError> {
    let status = crate::service::accounts::status_of(account)?;
    if !status.may_receive_credits() {
        return Ok(());
    }
    let mut available = Credits::ZERO;
    for model in lots::open_for_account(txn, account.id).await? {
        let lot = lots::to_rule(&model)?;
        if lot.is_spendable(now) {
            available = available.checked_add(lot.remaining).ok_or_else(|| anyhow::anyhow!("an account's credits overflow"))?;
        }
    }
    // The locked row's copy of the threshold decides before anything else is read.
    if account.auto_topup_below_micros.is_none_or(|below| available.micros() >= below) {
        return Ok(());
    }
    let Some(row) = store::auto_topups::of_account(txn, account.id).await? else { return Ok(()) };
    if !row.enabled {
        return Ok(());
    }
    let setting = setting_of(&row)?;
    if let Some(pending) = store::auto_topups::pending_purchase(txn, account.id).await? {
        if !is_past_lifetime(pending.created_at, program.pending_lifetime, now) {
            return Ok(());
        }
        // Its checkout's time is over: it ends now as the expiry job would have ended it.
        let external = ExternalId::parse(&account.external_id)?;
        crate::service::purchase_end::expire_one(txn, &pending, &external, program.pending_lifetime, now).await?;
    }
    let bought = Credits::from_micros(store::auto_topups::bought_between(txn, account.id, month_start(now), next_month_start(now)).await?);
    match decide(&setting, available, bought, program.minimum_purchase) {
        Decision::NotNeeded => Ok(()),
        Decision::CapReached => cap_reached(txn, account, &row, setting, available, bought, now).await,
        Decision::Buy(credits) => request(txn, program, account, setting, available, credits, now).await,
    }
}

async fn request(
    txn: &DatabaseTransaction,
    program: &Program,
    account: &account::Model,
    setting: Setting,
    available: Credits,
    credits: Credits,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let price = price_of(credits, program.credit_price_minor).ok_or_else(|| anyhow::anyhow!("a top-up's price overflows"))?;
    let new = NewPurchase {
        account_id: account.id,
        package_code: None,
        package_name: None,
        credits_micros: credits.micros(),
        price_minor: price,
        currency: program.currency.clone(),
        created_at: now,
        metadata: None,
        auto_topup: true,
    };
    let created = store::purchases::insert_pending(txn, new).await?;
    let event = serde_json::json!({
        "purchaseId": created.id,
        "accountId": account.external_id,
        "credits": credits.to_string(),
        "amountMinor": created.price_minor,
        "currency": created.currency,
        "available": available.to_string(),
        "threshold": setting.threshold.to_string(),
        "pendingUntil": pending_until(created.created_at, program.pending_lifetime).to_rfc3339(),
    });
    store::outbox::publish(txn, "purchase.auto_topup_requested", Some(account.id), &event, now).await?;
    tracing::info!(account.id = account.id, purchase.id = created.id, amount.credits = %credits, "auto top-up requested");
    Ok(())
}

/// Under the threshold with this month's cap spent: said once a month, then quiet until it turns.
async fn cap_reached(
    txn: &DatabaseTransaction,
    account: &account::Model,
    row: &auto_topup::Model,
    setting: Setting,
    available: Credits,
    bought: Credits,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let month = month_key(now);
    if row.cap_reached_month.as_deref() == Some(month.as_str()) {
        return Ok(());
    }
    store::auto_topups::set_cap_reached(txn, account.id, &month).await?;
    let event = serde_json::json!({
        "accountId": account.external_id,
        "month": month,
        "monthlyCap": setting.monthly_cap.to_string(),
        "boughtThisMonth": bought.to_string(),
        "available": available.to_string(),
        "threshold": setting.threshold.to_string(),
        "resumesAt": next_month_start(now).to_rfc3339(),
    });
    store::outbox::publish(txn, "auto_topup.cap_reached", Some(account.id), &event, now).await?;
    tracing::info!(account.id = account.id, "auto top-up held back by its monthly cap");
    Ok(())
}

/// A purchase failed (`failPurchase`): if auto top-up made it, count the failure, and turn auto
/// top-up off once the program's limit is reached. In the failure's transaction, under the
/// account's lock.
pub(crate) async fn on_failed(
    txn: &DatabaseTransaction,
    program: &Program,
    failed: &purchase::Model,
    account: &ExternalId,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    if !failed.auto_topup {
        return Ok(());
    }
    let Some(row) = store::auto_topups::of_account(txn, failed.account_id).await? else { return Ok(()) };
    let failures = u32::try_from(store::auto_topups::add_failure(txn, failed.account_id, now).await?).unwrap_or(0);
    if !row.enabled || !gives_up(failures, program.auto_topup_max_failures) {
        return Ok(());
    }
    let reason = format!("{failures} top-up payments failed in a row");
    store::auto_topups::disable(txn, failed.account_id, &reason, now).await?;
    let event = serde_json::json!({
        "accountId": account.as_str(),
        "failuresInARow": failures,
        "reason": reason,
        "lastPurchaseId": failed.id,
        "disabledAt": now.to_rfc3339(),
    });
    store::outbox::publish(txn, "auto_topup.disabled", Some(failed.account_id), &event, now).await?;
    tracing::info!(account.id = failed.account_id, failures, "auto top-up turned itself off");
    Ok(())
}

/// A purchase was paid: if auto top-up made it, the run of failures is over.
pub(crate) async fn on_paid(txn: &DatabaseTransaction, paid: &purchase::Model) -> Result<(), ServiceError> {
    if paid.auto_topup {
        store::auto_topups::clear_failures(txn, paid.account_id).await?;
    }
    Ok(())
}
