//! One account's lots with the rules applied in memory: the reference model that the store must
//! agree with, lot by lot, and the place where conservation is checked. Holds are modelled as the
//! store keeps them: taken from the lots at once, given back (or charged) when settled, and
//! lapsed at their deadline by the next operation that needs the account's credits.

use crate::ledger::amount::Credits;
use crate::ledger::corrections::{self, ExpiryChange, ExpiryRefusal, VoidRefusal};
use crate::ledger::gift::{self, GiftPart};
use crate::ledger::lot::{ConsumptionOrder, Insufficient, Lot, LotClass, LotSource, Priority, Purpose, Take, take};
use crate::ledger::lot::{allocate, balance};
use crate::ledger::plans::{PlanPeriod, split_grant_key};
use crate::ledger::refund::{RefundPolicy, RefundRefusal, refund_minor, take_back_spent_bonus};
use crate::ledger::reservation::split;
use crate::ledger::rollover::{self, PlanLot, Rollover};
use crate::ledger::time::day_of;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

/// Running totals per kind of movement, for the conservation equation of domain.md §2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub granted: Credits,
    pub spent: Credits,
    pub expired: Credits,
    /// What open holds hold now.
    pub held: Credits,
    /// Unused purchased credits refunded.
    pub refunded: Credits,
    /// Promotional credits of refunded purchases taken back (and what made up for spent ones).
    pub revoked: Credits,
    /// What operators voided of lots (`ledger::corrections`).
    pub voided: Credits,
    /// What operators debited by hand (`corrections::adjust_down`).
    pub adjusted_down: Credits,
    /// Paid credits given to other accounts (`ledger::gift`); the recipient counts them granted.
    pub gifted: Credits,
}

/// A hold: the parts it took, in order, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletHold {
    pub id: i64,
    pub parts: Vec<(i64, Credits)>,
    pub deadline: DateTime<Utc>,
    pub open: bool,
}

impl WalletHold {
    pub fn amount(&self) -> Credits {
        self.parts.iter().map(|(_, a)| *a).fold(Credits::ZERO, |s, a| s.checked_add(a).expect("a hold fits"))
    }
}

/// How a settled hold ended, as the store reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub captured: Credits,
    pub released: Credits,
    /// Of `released`, what landed on lots past their expiry and was written off.
    pub expired: Credits,
}

/// A hold that is no longer held: settled, or past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotHeld;

/// The account's plan, where its credits roll over (`ledger::rollover`): what the rule needs.
#[derive(Debug, Clone)]
pub struct WalletPlan {
    pub code: String,
    pub anchor: DateTime<Utc>,
    pub schedule: PlanPeriod,
    pub rollover: Rollover,
}

/// Credits a plan lot carried into a new lot when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    pub from: i64,
    pub lot: i64,
    pub amount: Credits,
}

#[derive(Debug, Clone)]
pub struct Wallet {
    pub lots: Vec<Lot>,
    pub holds: Vec<WalletHold>,
    pub totals: Totals,
    /// The plan's daily free credits (carat), offered once per UTC day as the last tier.
    pub daily_free: Option<Credits>,
    /// The days whose free credits a spend or hold took (and so wrote as a lot).
    pub days_written: Vec<NaiveDate>,
    /// What spends and captures took from each lot: how much of a bonus was spent.
    pub taken: HashMap<i64, Credits>,
    /// The plan whose credits roll over, if they do.
    pub plan: Option<WalletPlan>,
    /// Plan lots, with their grant key (`plans::grant_key`): the lots that may roll over.
    pub plan_lots: HashMap<i64, String>,
    /// Every carry the write-offs made, in order.
    pub carried: Vec<Carried>,
    next_id: i64,
}

/// What a refund needs to know of its purchase (domain.md §5).
#[derive(Debug, Clone)]
pub struct RefundTerms {
    pub policy: RefundPolicy,
    pub billed_minor: i64,
    pub bought: Credits,
    pub paid_lot: i64,
    pub bonus_lots: Vec<i64>,
}

/// A refund's outcome, as the store's receipt says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refunded {
    pub refunded_minor: i64,
    pub credits: Credits,
    pub revoked: Credits,
}

impl Default for Wallet {
    fn default() -> Self {
        Wallet {
            lots: Vec::new(),
            holds: Vec::new(),
            totals: Totals::default(),
            daily_free: None,
            days_written: Vec::new(),
            taken: HashMap::new(),
            plan: None,
            plan_lots: HashMap::new(),
            carried: Vec::new(),
            next_id: 1,
        }
    }
}

/// The id the day's free credits carry until a take writes them.
const OFFERED: i64 = 0;

impl Wallet {
    pub fn grant(
        &mut self,
        class: LotClass,
        source: LotSource,
        amount: Credits,
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.lots.push(Lot {
            id,
            class,
            source,
            granted: amount,
            remaining: amount,
            granted_at: now,
            expires_at,
            priority: Priority::DEFAULT,
            effective_at: None,
            features: None,
        });
        self.totals.granted = self.totals.granted.checked_add(amount).expect("totals fit");
        self.check();
        id
    }

    /// An all-or-nothing spend for `feature`; holds past their deadline give their credits back
    /// first, and the day's free credits are the last tier.
    pub fn spend(
        &mut self,
        amount: Credits,
        order: &ConsumptionOrder,
        now: DateTime<Utc>,
        feature: &str,
    ) -> Result<Vec<Take>, Insufficient> {
        self.lapse(now);
        let takes = self.take_with_the_day(amount, order, now, Purpose::Feature(feature))?;
        self.totals.spent = self.totals.spent.checked_add(amount).expect("totals fit");
        for t in &takes {
            self.note_taken(t.lot_id, t.amount);
        }
        self.check();
        Ok(takes)
    }

    /// The day's free credits not written yet, as the lot a take would write.
    fn offered(&self, now: DateTime<Utc>) -> Option<Lot> {
        let amount = self.daily_free?;
        (!self.days_written.contains(&day_of(now))).then(|| Lot::of_the_day(OFFERED, amount, now))
    }

    /// `take`, with the day's free credits offered last; written as a new lot if taken.
    fn take_with_the_day(
        &mut self,
        amount: Credits,
        order: &ConsumptionOrder,
        now: DateTime<Utc>,
        purpose: Purpose<'_>,
    ) -> Result<Vec<Take>, Insufficient> {
        let offered = self.offered(now);
        self.lots.extend(offered);
        let taken = take(&mut self.lots, amount, order, now, purpose);
        let Some(index) = self.lots.iter().position(|l| l.id == OFFERED) else { return taken };
        let mut takes = taken.inspect_err(|_| {
            self.lots.retain(|l| l.id != OFFERED);
        })?;
        if !takes.iter().any(|t| t.lot_id == OFFERED) {
            self.lots.remove(index);
            return Ok(takes);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.lots[index].id = id;
        self.days_written.push(day_of(now));
        self.totals.granted = self.totals.granted.checked_add(self.lots[index].granted).expect("totals fit");
        for t in takes.iter_mut().filter(|t| t.lot_id == OFFERED) {
            t.lot_id = id;
        }
        Ok(takes)
    }

    /// What a spend could take now: lapsed holds given back, the day's free credits included.
    pub fn available(&self, now: DateTime<Utc>) -> Credits {
        let mut after = self.clone();
        after.lapse(now);
        let day = after.offered(now).map_or(Credits::ZERO, |l| l.remaining);
        balance(&after.lots, now).checked_add(day).expect("balances fit")
    }

    /// Takes `amount` into a new hold for `feature` until `deadline`, as a spend would take it.
    pub fn hold(
        &mut self,
        amount: Credits,
        order: &ConsumptionOrder,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
        feature: &str,
    ) -> Result<(i64, Vec<Take>), Insufficient> {
        self.lapse(now);
        let takes = self.take_with_the_day(amount, order, now, Purpose::Feature(feature))?;
        let id = self.next_id;
        self.next_id += 1;
        self.holds.push(WalletHold { id, parts: takes.iter().map(|t| (t.lot_id, t.amount)).collect(), deadline, open: true });
        self.totals.held = self.totals.held.checked_add(amount).expect("totals fit");
        self.check();
        Ok((id, takes))
    }

    /// Charges `captured` of an open hold (none: releases it) and gives the rest back.
    pub fn settle(&mut self, hold_id: i64, captured: Option<Credits>, now: DateTime<Utc>) -> Result<Settled, NotHeld> {
        self.lapse(now);
        let index = self.holds.iter().position(|h| h.id == hold_id && h.open).ok_or(NotHeld)?;
        let settled = self.end_hold(index, captured.unwrap_or(Credits::ZERO), now);
        self.check();
        Ok(settled)
    }

    /// Ends every open hold past its deadline, giving its credits back (domain.md §8).
    pub fn lapse(&mut self, now: DateTime<Utc>) -> Vec<(i64, Settled)> {
        let due: Vec<usize> = (0..self.holds.len()).filter(|i| self.holds[*i].open && self.holds[*i].deadline <= now).collect();
        let ended = due.into_iter().map(|i| (self.holds[i].id, self.end_hold(i, Credits::ZERO, now))).collect();
        self.check();
        ended
    }

    fn end_hold(&mut self, index: usize, captured: Credits, now: DateTime<Utc>) -> Settled {
        let hold = &mut self.holds[index];
        hold.open = false;
        let held = hold.amount();
        let (charged, returned) = split(&hold.parts, captured);
        for (lot_id, amount) in charged {
            self.note_taken(lot_id, amount);
        }
        let mut expired = Credits::ZERO;
        for (lot_id, amount) in returned {
            let lot = self.lots.iter_mut().find(|l| l.id == lot_id).expect("a hold's lots exist");
            if lot.is_expired(now) {
                expired = expired.checked_add(amount).expect("totals fit");
            } else {
                lot.remaining = lot.remaining.checked_add(amount).expect("a lot gets back what it gave");
            }
        }
        let released = held.checked_sub(captured).expect("a capture is at most the hold");
        let totals = &mut self.totals;
        totals.held = totals.held.checked_sub(held).expect("the hold was counted");
        totals.spent = totals.spent.checked_add(captured).expect("totals fit");
        totals.expired = totals.expired.checked_add(expired).expect("totals fit");
        Settled { captured, released, expired }
    }

    fn note_taken(&mut self, lot_id: i64, amount: Credits) {
        let sum = self.taken.entry(lot_id).or_default();
        *sum = sum.checked_add(amount).expect("totals fit");
    }

    /// A refund under domain.md §5, as the store makes it: lapsed holds released first; refused
    /// when the total (held included) is below the bonus received; the bonus taken back whole
    /// (its remains revoked, holds holding some shrunk, what was spent made up from the unused
    /// credits, then from the others in the program's order).
    pub fn refund(&mut self, terms: &RefundTerms, order: &ConsumptionOrder, now: DateTime<Utc>) -> Result<Refunded, RefundRefusal> {
        self.lapse(now);
        let lot = |lots: &[Lot], id: i64| lots.iter().position(|l| l.id == id).expect("the purchase's lots exist");
        let paid = lot(&self.lots, terms.paid_lot);
        let unused = if self.lots[paid].is_expired(now) { Credits::ZERO } else { self.lots[paid].remaining };
        let is_bonus = |id: i64| terms.bonus_lots.contains(&id);
        let bonus_granted: Credits = terms.bonus_lots.iter().map(|id| self.lots[lot(&self.lots, *id)].granted).sum();
        let total = balance(&self.lots, now).checked_add(self.totals.held).expect("totals fit");
        if total < bonus_granted {
            return Err(RefundRefusal::PromotionalCreditsSpent);
        }
        let spent_bonus: Credits = terms.bonus_lots.iter().map(|id| self.taken.get(id).copied().unwrap_or_default()).sum();
        let taken = take_back_spent_bonus(unused, spent_bonus);
        let refunded_minor = refund_minor(terms.policy, terms.billed_minor, terms.bought, taken.unused_after)?;
        let others: Vec<Lot> = self.lots.iter().filter(|l| l.id != terms.paid_lot && !is_bonus(l.id)).cloned().collect();
        let from_others = if taken.from_others.is_zero() {
            Vec::new()
        } else {
            allocate(&others, taken.from_others, order, now, Purpose::Any).map_err(|_| RefundRefusal::PromotionalCreditsSpent)?
        };
        // Holds shrink by the bonus they hold: it goes back to its lot, to be revoked below.
        for hold in self.holds.iter_mut().filter(|h| h.open) {
            for &(lot_id, amount) in hold.parts.iter().filter(|(id, _)| is_bonus(*id)) {
                let index = lot(&self.lots, lot_id);
                self.lots[index].remaining = self.lots[index].remaining.checked_add(amount).expect("a lot gets back what it gave");
                self.totals.held = self.totals.held.checked_sub(amount).expect("the hold was counted");
            }
            hold.parts.retain(|(id, _)| !is_bonus(*id));
            hold.open = !hold.parts.is_empty();
        }
        let mut revoked = Credits::ZERO;
        let take_out = |lots: &mut Vec<Lot>, id: i64, amount: Credits| {
            let index = lot(lots, id);
            lots[index].remaining = lots[index].remaining.checked_sub(amount).expect("taken from what is there");
        };
        take_out(&mut self.lots, terms.paid_lot, taken.unused_after);
        take_out(&mut self.lots, terms.paid_lot, taken.from_unused);
        revoked = revoked.checked_add(taken.from_unused).expect("totals fit");
        for t in &from_others {
            take_out(&mut self.lots, t.lot_id, t.amount);
            revoked = revoked.checked_add(t.amount).expect("totals fit");
        }
        for id in &terms.bonus_lots {
            let index = lot(&self.lots, *id);
            if self.lots[index].is_spendable(now) {
                revoked = revoked.checked_add(self.lots[index].remaining).expect("totals fit");
                self.lots[index].remaining = Credits::ZERO;
            }
        }
        self.totals.refunded = self.totals.refunded.checked_add(taken.unused_after).expect("totals fit");
        self.totals.revoked = self.totals.revoked.checked_add(revoked).expect("totals fit");
        self.check();
        Ok(Refunded { refunded_minor, credits: taken.unused_after, revoked })
    }

    /// A refund made at the payment provider (Stripe's dashboard), as `service::stripe` applies
    /// it: lapsed holds released first; the credits `refunded_total_minor` stands for beyond
    /// `refunded_before_minor` taken from the purchase's unused credits
    /// (`refund::external_refund_take`); with the first such refund, the bonus revoked whole, or
    /// the refund refused when any of it is spent or held. What it took from the paid lot.
    pub fn external_refund(
        &mut self,
        terms: &RefundTerms,
        refunded_before_minor: i64,
        refunded_total_minor: i64,
        now: DateTime<Utc>,
    ) -> Result<Credits, RefundRefusal> {
        self.lapse(now);
        let lot = |lots: &[Lot], id: i64| lots.iter().position(|l| l.id == id).expect("the purchase's lots exist");
        let paid = lot(&self.lots, terms.paid_lot);
        let unused = if self.lots[paid].is_expired(now) { Credits::ZERO } else { self.lots[paid].remaining };
        let take = crate::ledger::refund::external_refund_take(
            terms.policy,
            terms.bought,
            terms.billed_minor,
            refunded_before_minor,
            refunded_total_minor,
            unused,
        )?;
        let first = refunded_before_minor == 0;
        let bonus: Vec<usize> = terms.bonus_lots.iter().map(|id| lot(&self.lots, *id)).collect();
        let granted: Credits = bonus.iter().map(|i| self.lots[*i].granted).sum();
        let left: Credits = bonus
            .iter()
            .filter(|i| self.lots[**i].is_spendable(now) && !self.lots[**i].remaining.is_zero())
            .map(|i| self.lots[*i].remaining)
            .sum();
        if first && left != granted {
            return Err(RefundRefusal::PromotionalCreditsSpent);
        }
        self.lots[paid].remaining = self.lots[paid].remaining.checked_sub(take).expect("taken from what is unused");
        self.totals.refunded = self.totals.refunded.checked_add(take).expect("totals fit");
        if first {
            for i in bonus {
                if self.lots[i].is_spendable(now) {
                    let remaining = std::mem::replace(&mut self.lots[i].remaining, Credits::ZERO);
                    self.totals.revoked = self.totals.revoked.checked_add(remaining).expect("totals fit");
                }
            }
        }
        self.check();
        Ok(take)
    }

    /// Ends every lot expired at `now` that still holds credits: a plan lot first carries what
    /// its plan's rollover takes into a new lot (`carried`), then the rest is written off.
    /// Returns (lot id, amount written off) per lot ended, the amount zero where all carried.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<(i64, Credits)> {
        let ending: Vec<usize> =
            (0..self.lots.len()).filter(|i| self.lots[*i].is_expired(now) && !self.lots[*i].remaining.is_zero()).collect();
        let mut ended = Vec::new();
        for index in ending {
            if let Some(carry) = self.carry_of(&self.lots[index]) {
                let from = &mut self.lots[index];
                from.remaining = from.remaining.checked_sub(carry.amount).expect("a carry never overdraws a lot");
                let (class, priority, from_id, features) = (from.class, from.priority, from.id, from.features.clone());
                let id = self.next_id;
                self.next_id += 1;
                self.lots.push(Lot {
                    id,
                    class,
                    source: LotSource::Rollover,
                    granted: carry.amount,
                    remaining: carry.amount,
                    granted_at: now,
                    expires_at: Some(carry.expires_at),
                    priority,
                    effective_at: None,
                    features,
                });
                self.carried.push(Carried { from: from_id, lot: id, amount: carry.amount });
            }
            let lot = &mut self.lots[index];
            ended.push((lot.id, lot.remaining));
            self.totals.expired = self.totals.expired.checked_add(lot.remaining).expect("totals fit");
            lot.remaining = Credits::ZERO;
        }
        self.check();
        ended
    }

    /// What `lot` carries over as it ends, by the plan's rollover: none for a lot that is not a
    /// plan lot (a carried lot never is), or without a plan that rolls.
    fn carry_of(&self, lot: &Lot) -> Option<rollover::Carry> {
        let plan = self.plan.as_ref()?;
        let (code, period_key) = split_grant_key(self.plan_lots.get(&lot.id)?)?;
        let at = PlanLot { plan: code, period_key, account_plan: &plan.code, anchor: plan.anchor, schedule: plan.schedule };
        rollover::carry(plan.rollover, lot, &at)
    }

    /// What open holds drew from lot `lot_id` and still hold.
    fn held_from(&self, lot_id: i64) -> Credits {
        self.holds
            .iter()
            .filter(|h| h.open)
            .flat_map(|h| h.parts.iter().filter(|(id, _)| *id == lot_id).map(|(_, a)| *a))
            .fold(Credits::ZERO, |s, a| s.checked_add(a).expect("holds fit"))
    }

    /// Voids what remains of lot `lot_id` (`corrections::void`): what open holds drew from it
    /// refuses it.
    pub fn void(&mut self, lot_id: i64, now: DateTime<Utc>) -> Result<Credits, VoidRefusal> {
        let held = self.held_from(lot_id);
        let lot = self.lots.iter_mut().find(|l| l.id == lot_id).expect("a lot of this wallet");
        let voided = corrections::void(lot, held, now)?;
        lot.remaining = Credits::ZERO;
        self.totals.voided = self.totals.voided.checked_add(voided).expect("totals fit");
        self.check();
        Ok(voided)
    }

    /// Moves lot `lot_id`'s expiry (`corrections::change_expiry`); one moved to now is written
    /// off at once, and what holds drew from it expires when they give it back.
    pub fn change_expiry(&mut self, lot_id: i64, to: DateTime<Utc>, now: DateTime<Utc>) -> Result<(ExpiryChange, Credits), ExpiryRefusal> {
        let held = self.held_from(lot_id);
        let lot = self.lots.iter_mut().find(|l| l.id == lot_id).expect("a lot of this wallet");
        let change = corrections::change_expiry(lot, held, to, now)?;
        lot.expires_at = Some(change.to);
        let mut written_off = Credits::ZERO;
        if change.expires_now {
            written_off = lot.remaining;
            lot.remaining = Credits::ZERO;
            self.totals.expired = self.totals.expired.checked_add(written_off).expect("totals fit");
        }
        self.check();
        Ok((change, written_off))
    }

    /// An operator's debit (`corrections::adjust_down`): holds past their deadline give their
    /// credits back first; never the day's free credits.
    pub fn adjust_down(
        &mut self,
        amount: Credits,
        from: Option<i64>,
        order: &ConsumptionOrder,
        now: DateTime<Utc>,
    ) -> Result<Vec<Take>, Insufficient> {
        self.lapse(now);
        let takes = corrections::adjust_down(&mut self.lots, amount, from, order, now)?;
        self.totals.adjusted_down = self.totals.adjusted_down.checked_add(amount).expect("totals fit");
        self.check();
        Ok(takes)
    }

    /// Gives `amount` of the paid, unscoped, spendable credits away (`ledger::gift::choose`),
    /// all or nothing, after lapsed holds are given back: the parts, each with the expiry the
    /// recipient's lot keeps (`gift_in`).
    pub fn gift_out(&mut self, amount: Credits, order: &ConsumptionOrder, now: DateTime<Utc>) -> Result<Vec<GiftPart>, Insufficient> {
        self.lapse(now);
        let parts = gift::choose(&self.lots, amount, order, now)?;
        for part in &parts {
            let lot = self.lots.iter_mut().find(|l| l.id == part.from_lot).expect("choose returns the given lots");
            lot.remaining = lot.remaining.checked_sub(part.amount).expect("choose takes what a lot holds");
            self.note_taken(part.from_lot, part.amount);
        }
        self.totals.gifted = self.totals.gifted.checked_add(amount).expect("totals fit");
        self.check();
        Ok(parts)
    }

    /// Receives the parts of a gift: one paid GIFT lot each, with the expiry it had.
    pub fn gift_in(&mut self, parts: &[GiftPart], now: DateTime<Utc>) -> Vec<i64> {
        parts.iter().map(|p| self.grant(LotClass::Paid, LotSource::Gift, p.amount, now, p.expires_at)).collect()
    }

    pub fn remaining(&self) -> Credits {
        self.lots.iter().map(|l| l.remaining).sum()
    }

    /// What open holds hold at `now`: a hold past its deadline holds nothing, lapsed or not.
    pub fn held_at(&self, now: DateTime<Utc>) -> Credits {
        self.holds.iter().filter(|h| h.open && h.deadline > now).map(WalletHold::amount).sum()
    }

    /// granted = spent + expired + held + remaining, and every lot within 0..=granted.
    pub fn check(&self) {
        for lot in &self.lots {
            assert!(lot.remaining <= lot.granted, "lot {} holds more than it was granted", lot.id);
        }
        let open: Credits = self.holds.iter().filter(|h| h.open).map(WalletHold::amount).sum();
        assert_eq!(open, self.totals.held, "open holds hold what the totals say");
        let out = self
            .totals
            .spent
            .checked_add(self.totals.expired)
            .and_then(|s| s.checked_add(self.totals.held))
            .and_then(|s| s.checked_add(self.totals.refunded))
            .and_then(|s| s.checked_add(self.totals.revoked))
            .and_then(|s| s.checked_add(self.totals.voided))
            .and_then(|s| s.checked_add(self.totals.adjusted_down))
            .and_then(|s| s.checked_add(self.totals.gifted))
            .and_then(|s| s.checked_add(self.remaining()));
        assert_eq!(Some(self.totals.granted), out, "conservation broken: {:?}", self.totals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::lot::balance;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 59).unwrap()
    }

    fn arkain() -> ConsumptionOrder {
        ConsumptionOrder::new(vec![vec![LotClass::Free, LotClass::Promotional], vec![LotClass::Paid]]).unwrap()
    }

    fn carat() -> ConsumptionOrder {
        ConsumptionOrder::new(vec![vec![LotClass::Paid, LotClass::Promotional], vec![LotClass::Free]]).unwrap()
    }

    fn c(n: i64) -> Credits {
        Credits::from_whole(n)
    }

    #[test]
    fn arkain_spends_free_and_promotional_before_paid_soonest_expiry_first() {
        let mut w = Wallet::default();
        let now = t0();
        let paid = w.grant(LotClass::Paid, LotSource::Purchase, c(100), now, None);
        let promo_late = w.grant(LotClass::Promotional, LotSource::CheckIn, c(5), now, Some(now + Duration::days(30)));
        let free_soon = w.grant(LotClass::Free, LotSource::MonthlyPlan, c(50), now, Some(now + Duration::seconds(1)));
        let takes = w.spend(c(60), &arkain(), now, "use").unwrap();
        assert_eq!(
            takes,
            vec![Take { lot_id: free_soon, amount: c(50) }, Take { lot_id: promo_late, amount: c(5) }, Take { lot_id: paid, amount: c(5) },]
        );
    }

    #[test]
    fn carat_keeps_daily_free_credits_for_last() {
        let mut w = Wallet::default();
        let now = t0();
        let free = w.grant(LotClass::Free, LotSource::DailyFree, c(100), now, Some(now + Duration::hours(1)));
        let topup = w.grant(LotClass::Paid, LotSource::Purchase, c(10), now, Some(now + Duration::days(28)));
        let takes = w.spend(c(15), &carat(), now, "use").unwrap();
        assert_eq!(takes, vec![Take { lot_id: topup, amount: c(10) }, Take { lot_id: free, amount: c(5) }]);
    }

    /// `take` is how a batch of spends sees earlier spends of the same batch: each takes from
    /// what the last one left, and a refusal leaves the lots as they were.
    #[test]
    fn spends_taken_one_after_another_see_each_other_and_a_refusal_changes_nothing() {
        let mut w = Wallet::default();
        let now = t0();
        let free = w.grant(LotClass::Free, LotSource::MonthlyPlan, c(3), now, Some(now + Duration::days(1)));
        let paid = w.grant(LotClass::Paid, LotSource::Purchase, c(4), now, None);
        let mut lots = w.lots.clone();
        assert_eq!(take(&mut lots, c(2), &arkain(), now, Purpose::Any).unwrap(), vec![Take { lot_id: free, amount: c(2) }]);
        assert_eq!(
            take(&mut lots, c(2), &arkain(), now, Purpose::Any).unwrap(),
            vec![Take { lot_id: free, amount: c(1) }, Take { lot_id: paid, amount: c(1) }]
        );
        let before = lots.clone();
        assert_eq!(take(&mut lots, c(4), &arkain(), now, Purpose::Any), Err(Insufficient::short(c(4), c(3))));
        assert_eq!(lots, before);
        assert_eq!(take(&mut lots, c(3), &arkain(), now, Purpose::Any).unwrap(), vec![Take { lot_id: paid, amount: c(3) }]);
        assert_eq!(balance(&lots, now), Credits::ZERO);
    }

    /// `spend` is `take` plus what is left to spend: each answer counts the spends before it.
    #[test]
    fn a_spend_decision_says_what_is_left_after_it() {
        use crate::ledger::lot::{Spent, spend};
        let mut w = Wallet::default();
        let now = t0();
        let free = w.grant(LotClass::Free, LotSource::MonthlyPlan, c(3), now, Some(now + Duration::days(1)));
        let expired = w.grant(LotClass::Paid, LotSource::Purchase, c(9), now - Duration::days(2), Some(now - Duration::days(1)));
        let paid = w.grant(LotClass::Paid, LotSource::Purchase, c(4), now, None);
        let mut lots = w.lots.clone();
        let first = spend(&mut lots, c(2), &arkain(), now, "use").unwrap();
        assert_eq!(first, Spent { takes: vec![Take { lot_id: free, amount: c(2) }], available_after: c(5) });
        let second = spend(&mut lots, c(3), &arkain(), now, "use").unwrap();
        assert_eq!(second.takes, vec![Take { lot_id: free, amount: c(1) }, Take { lot_id: paid, amount: c(2) }]);
        assert_eq!(second.available_after, c(2));
        let before = lots.clone();
        assert_eq!(spend(&mut lots, c(3), &arkain(), now, "use"), Err(Insufficient::short(c(3), c(2))));
        assert_eq!(lots, before);
        assert!(lots.iter().any(|l| l.id == expired && l.remaining == c(9)), "an expired lot is never taken");
    }

    #[test]
    fn ties_break_by_grant_time_then_id() {
        let mut w = Wallet::default();
        let now = t0();
        let later = w.grant(LotClass::Paid, LotSource::Purchase, c(1), now + Duration::seconds(1), None);
        let first = w.grant(LotClass::Paid, LotSource::Purchase, c(1), now, None);
        let second = w.grant(LotClass::Paid, LotSource::Purchase, c(1), now, None);
        let takes = w.spend(c(3), &arkain(), now + Duration::seconds(2), "use").unwrap();
        let ids: Vec<i64> = takes.iter().map(|t| t.lot_id).collect();
        assert_eq!(ids, vec![first, second, later]);
    }

    #[test]
    fn expired_lots_are_neither_spent_nor_counted_at_their_expiry_instant() {
        let mut w = Wallet::default();
        let now = t0();
        let expiry = now + Duration::seconds(1);
        w.grant(LotClass::Free, LotSource::MonthlyPlan, c(50), now, Some(expiry));
        assert_eq!(balance(&w.lots, expiry - Duration::microseconds(1)), c(50));
        assert_eq!(balance(&w.lots, expiry), Credits::ZERO);
        let refused = w.spend(c(1), &arkain(), expiry, "use").unwrap_err();
        assert_eq!(refused.available, Credits::ZERO);
        assert_eq!(w.expire(expiry), vec![(1, c(50))]);
    }

    #[test]
    fn a_plan_lot_carries_up_to_the_max_once_and_the_carried_lot_never_rolls_again() {
        let mut w = Wallet::default();
        let jan = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
        let feb = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let apr = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        let rule = Rollover::new(c(20), 2).unwrap();
        w.plan = Some(WalletPlan { code: "free".into(), anchor: jan, schedule: PlanPeriod::CalendarMonth, rollover: rule });
        let plan_lot = w.grant(LotClass::Free, LotSource::MonthlyPlan, c(30), jan, Some(feb));
        w.plan_lots.insert(plan_lot, "free:2026-01".into());
        let other = w.grant(LotClass::Free, LotSource::CheckIn, c(5), jan, Some(feb));
        assert_eq!(w.expire(feb), vec![(plan_lot, c(10)), (other, c(5))]);
        assert_eq!(w.carried.len(), 1);
        let carried = w.lots.iter().find(|l| l.id == w.carried[0].lot).unwrap().clone();
        assert_eq!((carried.source, carried.remaining, carried.expires_at), (LotSource::Rollover, c(20), Some(apr)));
        assert_eq!(w.expire(feb), vec![], "once");
        assert_eq!(w.expire(apr), vec![(carried.id, c(20))], "a carried lot expires whole");
        assert_eq!(w.carried.len(), 1);
    }

    #[test]
    fn insufficient_changes_nothing() {
        let mut w = Wallet::default();
        let now = t0();
        w.grant(LotClass::Paid, LotSource::Purchase, c(10), now, None);
        let before = w.lots.clone();
        assert_eq!(w.spend(c(11), &arkain(), now, "use"), Err(Insufficient::short(c(11), c(10))));
        assert_eq!(w.lots, before);
    }

    #[test]
    fn an_order_must_name_every_class_once() {
        assert!(ConsumptionOrder::new(vec![vec![LotClass::Paid]]).is_err());
        assert!(ConsumptionOrder::new(vec![vec![LotClass::Paid, LotClass::Free], vec![LotClass::Free, LotClass::Promotional]]).is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Grant { class: u8, micros: i64, expires_in_s: Option<i64> },
        Spend { micros: i64 },
        Advance { seconds: i64 },
        Expire,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3, 1i64..5_000_000_000, proptest::option::of(1i64..100)).prop_map(|(class, micros, expires_in_s)| Op::Grant {
                class,
                micros,
                expires_in_s
            }),
            (1i64..8_000_000_000).prop_map(|micros| Op::Spend { micros }),
            (0i64..50).prop_map(|seconds| Op::Advance { seconds }),
            Just(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn random_grants_and_spends_conserve_credits(ops in proptest::collection::vec(op(), 1..60), carat_order in any::<bool>()) {
            let order = if carat_order { carat() } else { arkain() };
            let mut w = Wallet::default();
            let mut now = t0();
            for op in ops {
                match op {
                    Op::Grant { class, micros, expires_in_s } => {
                        let class = LotClass::ALL[class as usize];
                        w.grant(class, LotSource::Adjustment, Credits::from_micros(micros), now, expires_in_s.map(|s| now + Duration::seconds(s)));
                    }
                    Op::Spend { micros } => {
                        let amount = Credits::from_micros(micros);
                        let available = balance(&w.lots, now);
                        let before = w.lots.clone();
                        match w.spend(amount, &order, now, "use") {
                            Ok(takes) => {
                                prop_assert!(amount <= available);
                                prop_assert_eq!(takes.iter().map(|t| t.amount).sum::<Credits>(), amount);
                                prop_assert_eq!(balance(&w.lots, now), available.checked_sub(amount).unwrap());
                                // No lot later in the order was touched while an earlier one still has credits.
                                let mut touched: Vec<&Lot> = before.iter().filter(|l| takes.iter().any(|t| t.lot_id == l.id)).collect();
                                touched.sort_by(|a, b| order.compare(a, b));
                                let last = touched.last().unwrap();
                                for lot in w.lots.iter().filter(|l| l.is_spendable(now)) {
                                    if order.compare(lot, last).is_lt() {
                                        prop_assert!(false, "lot {} was skipped", lot.id);
                                    }
                                }
                            }
                            Err(refused) => {
                                prop_assert!(amount > available);
                                prop_assert_eq!(refused.available, available);
                                prop_assert_eq!(&w.lots, &before);
                            }
                        }
                    }
                    Op::Advance { seconds } => now += Duration::seconds(seconds),
                    Op::Expire => {
                        let shown = balance(&w.lots, now);
                        w.expire(now);
                        // Writing off what a read already excluded changes no balance.
                        prop_assert_eq!(balance(&w.lots, now), shown);
                    }
                }
                w.check();
            }
        }
    }
}
