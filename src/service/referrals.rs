//! Referrals (arkain): each account has a code; a friend who signs up with it gets the sign-up
//! credits, and so does the referrer (at most `max_per_referrer` friends each). When the friend's
//! first purchase is large enough, both get the purchase credits after a hold period, unless
//! that purchase was refunded meanwhile. The release is a service function the workers run.

use crate::entity::{account, purchase};
use crate::ledger::money::PurchaseStatus;
use crate::ledger::referral::BonusStatus;
use crate::ledger::{Credits, LotClass, LotSource};
use crate::program::{Program, Referrals};
use crate::service::posting::{self, EntryMeta};
use crate::service::{Engine, ServiceError, tx};
use crate::store::{self, lots};
use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::DatabaseTransaction;

/// No 0/O or 1/I: codes are read aloud and typed.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_CHARS: usize = 8;
/// The most releases one call makes; the worker calls again until a batch comes back short.
pub const MAX_RELEASE_BATCH: u64 = 500;

pub(crate) fn new_code(rng: &mut impl Rng) -> String {
    (0..CODE_CHARS).map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char).collect()
}

pub(crate) fn normalize_code(code: &str) -> Result<String, ServiceError> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() != CODE_CHARS || !code.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return Err(ServiceError::bad_input("unknown referral code"));
    }
    Ok(code)
}

async fn grant(
    txn: &DatabaseTransaction,
    rule: &Referrals,
    account_id: i64,
    amount: Credits,
    why: &str,
    origin: &str,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let lot = lots::NewLot {
        account_id,
        class: LotClass::Promotional,
        source: LotSource::Referral,
        amount,
        granted_at: now,
        expires_at: rule.validity.expires_at(now),
        origin_kind: Some("referral"),
        origin_id: Some(origin.to_string()),
        priority: crate::ledger::Priority::DEFAULT,
        effective_at: None,
        features: None,
    };
    posting::credit(txn, lot, EntryMeta { reason: Some(why), ..EntryMeta::now("referral", now) }).await?;
    Ok(())
}

/// At sign-up, inside the new account's transaction: gives it a code and, if it came with a
/// friend's code, records the referral and grants both sides. Returns whether a given code was
/// accepted (false when the referrer has reached the cap).
pub(crate) async fn on_sign_up(
    txn: &DatabaseTransaction,
    program: &Program,
    ledger: &Engine,
    new: account::Model,
    referral_code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<bool>, ServiceError> {
    let Some(rule) = &program.referrals else {
        return match referral_code {
            Some(_) => Err(ServiceError::FeatureDisabled("this program has no referrals".into())),
            None => Ok(None),
        };
    };
    let code = {
        let mut rng = ledger.draws.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        new_code(&mut *rng)
    };
    // A collision with an existing code is a unique violation: the transaction retries with a new one.
    let new = store::accounts::set_referral_code(txn, new, &code).await?;
    let Some(given) = referral_code else { return Ok(None) };
    let given = normalize_code(given)?;
    let referrer = store::accounts::by_referral_code(txn, &given).await?.ok_or_else(|| ServiceError::bad_input("unknown referral code"))?;
    let referrer = store::accounts::lock(txn, referrer.id).await?.ok_or_else(|| anyhow::anyhow!("referrer vanished"))?;
    if store::referrals::count_for_referrer(txn, referrer.id).await? >= u64::from(rule.max_per_referrer) {
        return Ok(Some(false));
    }
    let referral = store::referrals::insert(txn, referrer.id, new.id, now).await?;
    let origin = referral.id.to_string();
    grant(txn, rule, new.id, rule.sign_up_credits, "referral: signed up with a friend's code", &origin, now).await?;
    grant(txn, rule, referrer.id, rule.sign_up_credits, "referral: a friend signed up", &origin, now).await?;
    Ok(Some(true))
}

/// At a purchase's confirmation, inside its transaction: a first purchase of at least the
/// program's amount starts the hold on the referral's purchase bonus.
pub(crate) async fn on_first_purchase(
    txn: &DatabaseTransaction,
    program: &Program,
    purchase: &purchase::Model,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let Some(rule) = &program.referrals else { return Ok(()) };
    if purchase.price_minor < rule.minimum_purchase_minor {
        return Ok(());
    }
    if let Some(referral) = store::referrals::of_referred(txn, purchase.account_id).await? {
        store::referrals::hold(txn, referral.id, purchase.id, rule.hold.expires_at(now)).await?;
    }
    Ok(())
}

impl Engine {
    /// Grants the purchase bonuses whose hold has passed at `now`, at most `batch` of them; a
    /// bonus whose purchase was refunded meanwhile is cancelled. Returns how many were granted.
    pub async fn release_referral_bonuses(&self, now: DateTime<Utc>, batch: u64) -> Result<u64, ServiceError> {
        let Some(rule) = self.program.referrals.clone() else { return Ok(0) };
        let due = store::referrals::due(&self.db, now, batch.clamp(1, MAX_RELEASE_BATCH)).await?;
        let mut granted = 0;
        for referral in due {
            let rule = rule.clone();
            let released = tx::write(&self.writer, |txn| {
                let rule = rule.clone();
                Box::pin(async move {
                    // Both accounts' locks, in id order, so two releases never deadlock.
                    let (first, second) = (referral.referrer_id.min(referral.referred_id), referral.referrer_id.max(referral.referred_id));
                    store::accounts::lock(txn, first).await?;
                    store::accounts::lock(txn, second).await?;
                    let Some(current) = store::referrals::by_id(txn, referral.id).await? else { return Ok(false) };
                    if store::referrals::status_of(&current)? != BonusStatus::Held {
                        return Ok(false);
                    }
                    let purchase = match current.purchase_id {
                        Some(id) => store::purchases::by_id(txn, id).await?,
                        None => None,
                    };
                    if purchase.is_none_or(|p| !matches!(store::purchases::status_of(&p), Ok(PurchaseStatus::Paid))) {
                        store::referrals::set_status(txn, current.id, BonusStatus::Held, BonusStatus::Cancelled).await?;
                        return Ok(false);
                    }
                    let origin = current.id.to_string();
                    grant(txn, &rule, current.referred_id, rule.purchase_credits, "referral: first purchase", &origin, now).await?;
                    grant(txn, &rule, current.referrer_id, rule.purchase_credits, "referral: a friend's first purchase", &origin, now)
                        .await?;
                    store::referrals::set_status(txn, current.id, BonusStatus::Held, BonusStatus::Granted).await?;
                    Ok(true)
                })
            })
            .await?;
            granted += u64::from(released);
        }
        Ok(granted)
    }

    pub async fn referral_count(&self, account_id: i64) -> Result<u64, ServiceError> {
        Ok(store::referrals::count_for_referrer(&self.db, account_id).await?)
    }
}
