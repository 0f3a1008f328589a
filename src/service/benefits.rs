//! Benefits in use (issue 22): the promotions applied to an account now, as the portal's
//! "Benefits in use" shows them. A read: nothing is granted or written here, and every rule it
//! shows is the one the granting use case applies (plan periods from `service::plans`, lucky
//! eligibility from `service::lucky`, the first-purchase rule from `service::purchases`).
//!
//! In a fixed order of kinds: the plan's credits of the current period, the daily free
//! credits, the lucky-credit promotion, the first-purchase bonus still to come, then referral
//! bonuses on hold and open coupon lots, newest first, at most `MAX_LISTED` of each.

use crate::ledger::money::PurchaseStatus;
use crate::ledger::time::{day_of, next_day_start};
use crate::ledger::{Credits, LotSource};
use crate::program::Program;
use crate::service::accounts::AccountView;
use crate::service::{Engine, ServiceError};
use crate::store;
use chrono::{DateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// The most referral bonuses, and the most coupon lots, one read lists: the newest. A referrer
/// has at most the program's `max_per_referrer` friends (10 on arkain), and a coupon is
/// redeemed once per account, so the bound is reached only by an account with that many coupons
/// still open.
pub const MAX_LISTED: u64 = 50;

/// What kind of promotion a benefit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenefitKind {
    PlanCredits,
    DailyFreeCredits,
    LuckyCredits,
    FirstPurchaseBonus,
    ReferralBonus,
    Coupon,
}

/// One promotion applied to an account now. Which fields are set depends on the kind (see the
/// GraphQL `Benefit` type, which is built from it field for field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Benefit {
    pub kind: BenefitKind,
    pub credits: Option<Credits>,
    pub percent: Option<Decimal>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub code: Option<String>,
    pub name: Option<String>,
}

impl Benefit {
    fn of(kind: BenefitKind) -> Benefit {
        Benefit { kind, credits: None, percent: None, starts_at: None, ends_at: None, code: None, name: None }
    }
}

/// The daily free credits of the account's plan today: the day's amount, from this UTC day's
/// start to the next (they do not carry over). No database.
fn daily_free(program: &Program, plan: &str, now: DateTime<Utc>) -> Option<Benefit> {
    let amount = program.plan(plan)?.daily_free_credits?;
    Some(Benefit {
        credits: Some(amount),
        starts_at: Some(day_of(now).and_time(NaiveTime::MIN).and_utc()),
        ends_at: Some(next_day_start(now)),
        ..Benefit::of(BenefitKind::DailyFreeCredits)
    })
}

/// The program's first-purchase bonus, while the account has no paid purchase yet (refunded
/// ones count: the bonus goes with the first purchase ever paid). No database.
fn first_purchase_bonus(program: &Program, paid_purchases: u64) -> Option<Benefit> {
    let bonus = program.first_purchase_bonus?;
    (paid_purchases == 0).then(|| Benefit { percent: Some(bonus.percent), ..Benefit::of(BenefitKind::FirstPurchaseBonus) })
}

impl Engine {
    /// The promotions applied to `account` at `now`, in the order of `BenefitKind`.
    pub async fn benefits(&self, account: &AccountView, now: DateTime<Utc>) -> Result<Vec<Benefit>, ServiceError> {
        let mut benefits = Vec::new();
        benefits.extend(self.plan_credits_benefit(account, now).await?);
        benefits.extend(daily_free(&self.program, &account.plan, now));
        benefits.extend(self.lucky_benefit(account, now).await?);
        if self.program.first_purchase_bonus.is_some() {
            let paid = store::purchases::count_paid(&self.db, account.id).await?;
            benefits.extend(first_purchase_bonus(&self.program, paid));
        }
        benefits.extend(self.referral_benefits(account.id).await?);
        benefits.extend(self.coupon_benefits(account.id, now).await?);
        Ok(benefits)
    }

    /// The plan's credits for the current period, where the plan grants credits: the period's
    /// amount, its start and end, the plan's code and name.
    async fn plan_credits_benefit(&self, account: &AccountView, now: DateTime<Utc>) -> Result<Option<Benefit>, ServiceError> {
        if self.program.plan_credits.is_none() || self.program.plan(&account.plan).is_none_or(|p| p.monthly_credits.is_none()) {
            return Ok(None);
        }
        // The period is anchored on when the plan started, which only the stored row has.
        let Some(row) = store::accounts::by_id(&self.db, account.id).await? else {
            return Err(ServiceError::NotFound(format!("account {}", account.external_id)));
        };
        Ok(crate::service::plans::current_period(&self.program, &row, now).map(|(plan, amount, period)| Benefit {
            credits: Some(amount),
            starts_at: Some(period.starts_at),
            ends_at: Some(period.ends_at),
            code: Some(plan.code.clone()),
            name: Some(plan.name.clone()),
            ..Benefit::of(BenefitKind::PlanCredits)
        }))
    }

    /// The lucky-credit promotion while it runs and the account may claim: today's claimed
    /// amount if claimed, else the plan's maximum.
    async fn lucky_benefit(&self, account: &AccountView, now: DateTime<Utc>) -> Result<Option<Benefit>, ServiceError> {
        let Some(promotion) = &self.program.lucky else { return Ok(None) };
        let status = self.lucky_status(account, now).await?;
        if !status.eligible {
            return Ok(None);
        }
        Ok(Some(Benefit {
            credits: status.claimed_today.or(status.max_credits),
            starts_at: promotion.starts_at,
            ends_at: Some(promotion.ends_at),
            ..Benefit::of(BenefitKind::LuckyCredits)
        }))
    }

    /// Referral purchase bonuses on hold for this account (as referrer or friend): the credits
    /// and the instant the hold ends. A hold whose purchase is no longer paid (refunded) will be
    /// cancelled at its release, so it is not shown.
    async fn referral_benefits(&self, account_id: i64) -> Result<Vec<Benefit>, ServiceError> {
        let Some(rule) = &self.program.referrals else { return Ok(Vec::new()) };
        let held = store::referrals::held_for_account(&self.db, account_id, MAX_LISTED).await?;
        let ids: Vec<i64> = held.iter().filter_map(|r| r.purchase_id).collect();
        let purchases = store::purchases::by_ids(&self.db, &ids).await?;
        let mut paid = HashMap::with_capacity(purchases.len());
        for purchase in &purchases {
            paid.insert(purchase.id, matches!(store::purchases::status_of(purchase)?, PurchaseStatus::Paid));
        }
        Ok(held
            .into_iter()
            .filter(|r| r.purchase_id.is_some_and(|id| paid.get(&id).copied().unwrap_or(false)))
            .map(|r| Benefit { credits: Some(rule.purchase_credits), ends_at: r.release_at, ..Benefit::of(BenefitKind::ReferralBonus) })
            .collect())
    }

    /// Coupon lots with credits left at `now`, newest first: the coupon's code, what remains in
    /// the lot, and its expiry.
    async fn coupon_benefits(&self, account_id: i64, now: DateTime<Utc>) -> Result<Vec<Benefit>, ServiceError> {
        let lots = store::lots::spendable_of_source(&self.db, account_id, LotSource::Coupon, now, MAX_LISTED).await?;
        let coupon_of = |lot: &crate::entity::lot::Model| lot.origin_id.as_deref().and_then(|id| id.parse::<i64>().ok());
        let ids: Vec<i64> = lots.iter().filter_map(coupon_of).collect();
        let codes: HashMap<i64, String> = store::coupons::by_ids(&self.db, &ids).await?.into_iter().map(|c| (c.id, c.code)).collect();
        lots.iter()
            .map(|row| {
                let lot = store::lots::to_rule(row)?;
                Ok::<_, ServiceError>(Benefit {
                    credits: Some(lot.remaining),
                    starts_at: Some(lot.granted_at),
                    ends_at: lot.expires_at,
                    code: coupon_of(row).and_then(|id| codes.get(&id).cloned()),
                    ..Benefit::of(BenefitKind::Coupon)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn daily_free_credits_run_from_midnight_to_midnight_on_plans_that_have_them() {
        let carat = Program::load("carat").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 15, 30, 0).unwrap();
        let free = daily_free(&carat, "free", now).expect("carat's free plan has daily free credits");
        assert_eq!(free.credits, Some(Credits::from_whole(100)));
        assert_eq!(free.starts_at, Some(Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap()));
        assert_eq!(free.ends_at, Some(Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap()));
        assert_eq!(daily_free(&carat, "plus", now), None);
        assert_eq!(daily_free(&Program::load("arkain").unwrap(), "free", now), None);
    }

    #[test]
    fn the_first_purchase_bonus_is_there_until_a_purchase_is_paid() {
        let arkain = Program::load("arkain").unwrap();
        let bonus = first_purchase_bonus(&arkain, 0).expect("arkain has a first-purchase bonus");
        assert_eq!((bonus.percent, bonus.credits), (Some(Decimal::from(30)), None));
        assert_eq!(first_purchase_bonus(&arkain, 1), None);
        assert_eq!(first_purchase_bonus(&Program::load("carat").unwrap(), 0), None);
    }
}
