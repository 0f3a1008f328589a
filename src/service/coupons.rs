//! Coupons: an operator creates a code; each account redeems a given coupon once, within its
//! window and its total cap. Wrong guesses are throttled per account.

use crate::entity::coupon;
use crate::ledger::claims::{CouponRefusal, check_window, normalize_coupon_code};
use crate::ledger::{Credits, LotClass, LotSource, Validity};
use crate::service::Refusal;
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, reason};
use crate::service::posting::{self, EntryMeta};
use crate::service::spending::check_amount;
use crate::service::{Engine, ServiceError, tx};
use crate::store::{self, idempotency::request_hash, lots};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// At most this many unknown codes per account within the window; then TOO_MANY_ATTEMPTS.
pub const MAX_FAILED_GUESSES: u64 = 5;
pub const FAILED_GUESS_WINDOW_MINUTES: i64 = 15;
pub const MAX_REDEMPTIONS: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct NewCoupon {
    pub code: String,
    pub credits: Credits,
    pub expires_at: Option<DateTime<Utc>>,
    pub valid_for: Option<Validity>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemReceipt {
    pub coupon_id: i64,
    pub lot_id: i64,
    pub entry_id: i64,
    pub amount: Credits,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A coupon as the use cases answer it: typed, with nothing of how it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponView {
    pub id: i64,
    /// Upper-cased: codes are case-insensitive.
    pub code: String,
    /// The credits one redemption grants.
    pub credits: Credits,
    /// A fixed expiry for the granted credits...
    pub expires_at: Option<DateTime<Utc>>,
    /// ...or a validity counted from redemption.
    pub valid_for: Option<Validity>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<i64>,
    pub redemptions: i64,
    pub created_at: DateTime<Utc>,
}

impl CouponView {
    /// The stored row, read back: negative credits or an unreadable validity is a corrupt row.
    fn of(row: coupon::Model) -> Result<CouponView, ServiceError> {
        let corrupt = |what: String| ServiceError::Internal(anyhow::anyhow!("coupon {}: {what}", row.id));
        if row.credits_micros < 0 {
            return Err(corrupt(format!("negative credits {}", row.credits_micros)));
        }
        // Stored in the canonical form ("1 months").
        let valid_for = row.valid_for.as_deref().map(str::parse::<Validity>).transpose().map_err(|e| corrupt(format!("valid_for: {e}")))?;
        Ok(CouponView {
            id: row.id,
            code: row.code,
            credits: Credits::from_micros(row.credits_micros),
            expires_at: row.expires_at,
            valid_for,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            max_redemptions: row.max_redemptions,
            redemptions: row.redemptions,
            created_at: row.created_at,
        })
    }
}

fn code_of(code: &str) -> Result<String, ServiceError> {
    normalize_coupon_code(code).ok_or_else(|| ServiceError::bad_input("a coupon code is 3 to 64 letters, digits, - or _"))
}

impl Engine {
    /// Creates a coupon; idempotent on the code: the same definition returns the existing coupon,
    /// a different one is IDEMPOTENCY_CONFLICT.
    pub async fn create_coupon(&self, new: NewCoupon, now: DateTime<Utc>) -> Result<CouponView, ServiceError> {
        let code = code_of(&new.code)?;
        let credits = check_amount(new.credits)?;
        if new.expires_at.is_some() && new.valid_for.is_some() {
            return Err(ServiceError::bad_input("give either expiresAt or validFor, not both"));
        }
        let truncate = |at: Option<DateTime<Utc>>| at.map(crate::ledger::time::truncate);
        let (expires_at, starts_at, ends_at) = (truncate(new.expires_at), truncate(new.starts_at), truncate(new.ends_at));
        if expires_at.is_some_and(|at| at <= now) {
            return Err(ServiceError::bad_input("expiresAt must be in the future"));
        }
        if let (Some(start), Some(end)) = (starts_at, ends_at)
            && start >= end
        {
            return Err(ServiceError::bad_input("startsAt must be before endsAt"));
        }
        if new.max_redemptions.is_some_and(|m| !(1..=MAX_REDEMPTIONS).contains(&m)) {
            return Err(ServiceError::bad_input(format!("maxRedemptions must be between 1 and {MAX_REDEMPTIONS}")));
        }
        let reason = new.reason.as_deref().map(reason).transpose()?;
        let valid_for = new.valid_for.map(|v| v.canonical());
        tx::write(&self.writer, |txn| {
            let (code, valid_for, reason) = (code.clone(), valid_for.clone(), reason.clone());
            Box::pin(async move {
                if let Some(existing) = store::coupons::by_code(txn, &code).await? {
                    let same = existing.credits_micros == credits.micros()
                        && existing.expires_at == expires_at
                        && existing.valid_for == valid_for
                        && existing.starts_at == starts_at
                        && existing.ends_at == ends_at
                        && existing.max_redemptions == new.max_redemptions;
                    if same {
                        return CouponView::of(existing);
                    }
                    return Err(ServiceError::IdempotencyConflict(format!("coupon {code} already exists with other terms")));
                }
                let row = store::coupons::NewCouponRow {
                    code,
                    credits,
                    expires_at,
                    valid_for,
                    starts_at,
                    ends_at,
                    max_redemptions: new.max_redemptions,
                    reason,
                    created_at: now,
                };
                let created = store::coupons::insert(txn, row).await?;
                tracing::info!(coupon.id = created.id, amount.credits = %credits, "coupon created");
                CouponView::of(created)
            })
        })
        .await
    }

    pub async fn redeem_coupon(
        &self,
        account: &str,
        code: &str,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<RedeemReceipt, ServiceError> {
        let account = ExternalId::parse(account)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let code = code_of(code)?;
        let request_hash = request_hash(&code);
        let command = Command { operation: "redeem_coupon", account, key, request_hash, permit: Permit::ReceiveCredits, fields: code };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, account, command, now, .. } = run;
                let since = now - chrono::Duration::minutes(FAILED_GUESS_WINDOW_MINUTES);
                if store::coupons::failures_since(txn, account.id, since).await? >= MAX_FAILED_GUESSES {
                    // Not the key's outcome: the same key may try again once the window passes.
                    return Err(ServiceError::TooManyAttempts(format!(
                        "too many unknown coupon codes; try again in {FAILED_GUESS_WINDOW_MINUTES} minutes"
                    )));
                }
                let Some(coupon) = store::coupons::by_code(txn, &command.fields).await? else {
                    // The guess is recorded with the refusal: it counts towards the throttle.
                    store::coupons::record_failure(txn, account.id, now).await?;
                    return Ok(Err(Refusal::Coupon(CouponRefusal::NotFound)));
                };
                if let Err(refusal) = check_window(now, coupon.starts_at, coupon.ends_at, coupon.expires_at) {
                    return Ok(Err(Refusal::Coupon(refusal)));
                }
                if store::coupons::redeemed_by(txn, coupon.id, account.id).await? {
                    return Ok(Err(Refusal::Coupon(CouponRefusal::AlreadyRedeemed)));
                }
                if !store::coupons::take_redemption(txn, coupon.id).await? {
                    return Ok(Err(Refusal::Coupon(CouponRefusal::Exhausted)));
                }
                let validity: Option<Validity> =
                    coupon.valid_for.as_deref().map(str::parse).transpose().map_err(|e| anyhow::anyhow!("coupon {}: {e}", coupon.id))?;
                let expires_at = coupon.expires_at.or_else(|| validity.and_then(|v| v.expires_at(now)));
                let amount = Credits::from_micros(coupon.credits_micros);
                let lot = lots::NewLot {
                    account_id: account.id,
                    class: LotClass::Promotional,
                    source: LotSource::Coupon,
                    amount,
                    granted_at: now,
                    expires_at,
                    origin_kind: Some("coupon"),
                    origin_id: Some(coupon.id.to_string()),
                    priority: crate::ledger::Priority::DEFAULT,
                    effective_at: None,
                    features: None,
                };
                let meta = EntryMeta {
                    idempotency_key: Some(command.key.as_str()),
                    reason: Some(&coupon.code),
                    ..EntryMeta::now("redeem_coupon", now)
                };
                let (lot, entry) = posting::credit(txn, lot, meta).await?;
                store::coupons::record_redemption(txn, coupon.id, account.id, lot.id, now).await?;
                Ok(Ok(RedeemReceipt { coupon_id: coupon.id, lot_id: lot.id, entry_id: entry.id, amount, expires_at }))
            })
        })
        .await
    }
}

impl Engine {
    /// Every coupon, newest first, with its redemptions so far (the operator's list).
    pub async fn coupons_page(
        &self,
        window: &crate::store::keyset::Window,
    ) -> Result<crate::store::keyset::Page<CouponView>, ServiceError> {
        store::coupons::page(&self.db, window).await?.try_map(CouponView::of)
    }

    pub async fn coupons_count(&self) -> Result<u64, ServiceError> {
        Ok(store::coupons::count(&self.db).await?)
    }
}
