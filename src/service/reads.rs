//! Reads: balance with its status bars, lots, history and purchases, each a bounded page.

use crate::entity::{journal_entry, journal_line, lot, reservation};
use crate::ledger::{Credits, Features, Lot, LotClass, LotSource};
use crate::service::accounts::AccountView;
use crate::service::daily_free;
use crate::service::paging::{Page, Window};
use crate::service::purchases::PurchaseView;
use crate::service::{Engine, ServiceError};
use crate::store::{self, journal::HistoryFilter, lots};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub source: LotSource,
    pub class: LotClass,
    /// What a spend may take from this source now.
    pub remaining: Credits,
    /// What open reservations hold of this source: the bar's share of `held`.
    pub held: Credits,
    /// The day's free credits while other credits are left: counted as available (a spend short
    /// of the others takes them), used only once the others are (domain.md §4).
    pub waiting: bool,
    /// Remaining per expiry instant, soonest first; `None` never expires.
    pub expiries: Vec<(Option<DateTime<Utc>>, Credits)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceView {
    /// What a spend or a new hold may take now: the lots' credits, the day's free credits included.
    pub available: Credits,
    /// Taken from the lots by open reservations: neither spendable nor lost.
    pub held: Credits,
    /// One bar per source; their `remaining` add up to `available` and their `held` to `held`.
    pub bars: Vec<Bar>,
    /// The part of `available` scoped to features, per scope: a use of a feature outside a
    /// scope cannot take that part.
    pub scoped: Vec<(Features, Credits)>,
    /// Credits of future-effective grants, not in `available` until their start: per start,
    /// soonest first.
    pub upcoming: Vec<(DateTime<Utc>, Credits)>,
}

impl BalanceView {
    /// What a use of `feature` may take now: the unscoped credits and those scoped to it.
    pub fn available_for(&self, feature: &str) -> Credits {
        let elsewhere: Credits = self.scoped.iter().filter(|(scope, _)| !scope.contains(feature)).map(|(_, c)| *c).sum();
        self.available.checked_sub(elsewhere).expect("scoped credits are part of what is available")
    }
}

/// One held part of an open reservation, by the source and class of the lot it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldPart {
    pub source: LotSource,
    pub class: LotClass,
    pub amount: Credits,
}

/// The balance at `now`, grouped by source: expired lots never count, written off or not.
pub fn balance_view(open: &[Lot], held: &[HeldPart], now: DateTime<Utc>) -> BalanceView {
    let mut bars: BTreeMap<&'static str, Bar> = BTreeMap::new();
    let new_bar = |source: LotSource, class: LotClass| Bar {
        source,
        class,
        remaining: Credits::ZERO,
        held: Credits::ZERO,
        waiting: false,
        expiries: Vec::new(),
    };
    for lot in open.iter().filter(|l| l.is_spendable(now)) {
        let bar = bars.entry(lot.source.as_str()).or_insert_with(|| new_bar(lot.source, lot.class));
        bar.remaining = bar.remaining.checked_add(lot.remaining).expect("balances fit");
        match bar.expiries.iter_mut().find(|(at, _)| *at == lot.expires_at) {
            Some((_, sum)) => *sum = sum.checked_add(lot.remaining).expect("balances fit"),
            None => bar.expiries.push((lot.expires_at, lot.remaining)),
        }
    }
    for part in held {
        let bar = bars.entry(part.source.as_str()).or_insert_with(|| new_bar(part.source, part.class));
        bar.held = bar.held.checked_add(part.amount).expect("balances fit");
    }
    let waiting = daily_free::waiting(open, now);
    let mut bars: Vec<Bar> = bars.into_values().collect();
    for bar in &mut bars {
        bar.expiries.sort_by_key(|(at, _)| (at.is_none(), *at));
        bar.waiting = bar.source == LotSource::DailyFree && waiting && !bar.remaining.is_zero();
    }
    let sum = |of: fn(&Bar) -> Credits| bars.iter().map(of).fold(Credits::ZERO, |s, c| s.checked_add(c).expect("balances fit"));
    let mut scoped: BTreeMap<&Features, Credits> = BTreeMap::new();
    for lot in open.iter().filter(|l| l.is_spendable(now)) {
        if let Some(scope) = &lot.features {
            let sum = scoped.entry(scope).or_default();
            *sum = sum.checked_add(lot.remaining).expect("balances fit");
        }
    }
    let mut upcoming: BTreeMap<DateTime<Utc>, Credits> = BTreeMap::new();
    for lot in open.iter().filter(|l| l.is_upcoming(now) && !l.is_expired(now) && !l.remaining.is_zero()) {
        let sum = upcoming.entry(lot.effective_at.expect("an upcoming lot has a start")).or_default();
        *sum = sum.checked_add(lot.remaining).expect("balances fit");
    }
    BalanceView {
        available: sum(|b| b.remaining),
        held: sum(|b| b.held),
        bars,
        scoped: scoped.into_iter().map(|(f, c)| (f.clone(), c)).collect(),
        upcoming: upcoming.into_iter().collect(),
    }
}

/// A stored lot as reads answer it: the rules' lot, and what it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotView {
    pub lot: Lot,
    /// What the lot came from ("purchase", "grant", "account", ...) and its id there.
    pub origin_kind: Option<String>,
    pub origin_id: Option<String>,
}

impl LotView {
    /// The stored row, read back: an unknown class or source, or negative credits, is a
    /// corrupt row.
    fn of(row: lot::Model) -> Result<LotView, ServiceError> {
        Ok(LotView { lot: lots::to_rule(&row)?, origin_kind: row.origin_kind, origin_id: row.origin_id })
    }
}

pub struct HistoryItem {
    pub entry: journal_entry::Model,
    pub lines: Vec<journal_line::Model>,
}

impl Engine {
    /// The balance at `now`, with today's daily free credits as a virtual lot where due.
    pub async fn balance(&self, account: &AccountView, now: DateTime<Utc>) -> Result<BalanceView, ServiceError> {
        let mut views = self.balances_of(std::slice::from_ref(account), now).await?;
        Ok(views.remove(&account.id).expect("a balance for every account asked"))
    }

    /// `balance` for many accounts at once: each kind of row (open lots, holds, their lines, the
    /// day's claims) read in one statement for all of them, so a hundred balances cost the round
    /// trips of one (the balance watchers read the accounts that changed together,
    /// `crate::balance_reader`). Holds past their deadline count as given back, as a spend
    /// would release them first.
    pub async fn balances_of(&self, accounts: &[AccountView], now: DateTime<Utc>) -> Result<HashMap<i64, BalanceView>, ServiceError> {
        let ids: Vec<i64> = accounts.iter().map(|a| a.id).collect();
        let mut lots_of: HashMap<i64, Vec<Lot>> = HashMap::new();
        for model in lots::open_for_accounts(&self.db, &ids).await? {
            lots_of.entry(model.account_id).or_default().push(lots::to_rule(&model)?);
        }
        let holds = store::reservations::held(&self.db, &ids).await?;
        let entries: Vec<i64> = holds.iter().map(|r| r.hold_entry_id).collect();
        let lines = store::journal::lines_of(&self.db, &entries).await?;
        // The lots holds took from that are closed now (a hold can empty a lot): a lapsed hold
        // gives back to them, and an open hold's part is shown by its lot's source.
        let open_ids: HashSet<i64> = lots_of.values().flatten().map(|l| l.id).collect();
        let mut closed_ids: Vec<i64> = lines.iter().map(|l| l.lot_id).filter(|id| !open_ids.contains(id)).collect();
        closed_ids.sort_unstable();
        closed_ids.dedup();
        let mut closed: HashMap<i64, Lot> = HashMap::new();
        if !closed_ids.is_empty() {
            for model in lots::by_ids(&self.db, &closed_ids).await? {
                closed.insert(model.id, lots::to_rule(&model)?);
            }
        }
        let plans: Vec<(i64, &str)> = accounts.iter().map(|a| (a.id, a.plan.as_str())).collect();
        let mut daily = daily_free::virtual_lots(&self.db, &self.program, &plans, now).await?;
        let mut lines_of: HashMap<i64, Vec<&journal_line::Model>> = HashMap::new();
        for line in &lines {
            lines_of.entry(line.entry_id).or_default().push(line);
        }
        let mut holds_of: HashMap<i64, Vec<&reservation::Model>> = HashMap::new();
        for hold in &holds {
            holds_of.entry(hold.account_id).or_default().push(hold);
        }
        let mut views = HashMap::with_capacity(accounts.len());
        for account in accounts {
            let mut rules = lots_of.remove(&account.id).unwrap_or_default();
            let mut held = Vec::new();
            for hold in holds_of.remove(&account.id).into_iter().flatten() {
                for line in lines_of.get(&hold.hold_entry_id).into_iter().flatten() {
                    let amount = Credits::from_micros(-line.delta_micros);
                    if hold.deadline <= now {
                        // Lapsed: its credits are back in the lot it took them from.
                        if !rules.iter().any(|l| l.id == line.lot_id) {
                            rules.push(closed.get(&line.lot_id).cloned().ok_or_else(|| lot_gone(line.lot_id))?);
                        }
                        let lot = rules.iter_mut().find(|l| l.id == line.lot_id).expect("pushed above");
                        lot.remaining = lot.remaining.checked_add(amount).expect("a lot's credits fit");
                    } else {
                        let lot = rules.iter().find(|l| l.id == line.lot_id).or_else(|| closed.get(&line.lot_id));
                        let lot = lot.ok_or_else(|| lot_gone(line.lot_id))?;
                        held.push(HeldPart { source: lot.source, class: lot.class, amount });
                    }
                }
            }
            rules.extend(daily.remove(&account.id));
            views.insert(account.id, balance_view(&rules, &held, now));
        }
        Ok(views)
    }

    /// One page of lots, newest first.
    pub async fn lots_page(&self, account_id: i64, include_closed: bool, window: &Window) -> Result<Page<LotView>, ServiceError> {
        lots::page(&self.db, account_id, include_closed, window).await?.try_map(LotView::of)
    }

    /// How many lots `lots_page` pages through.
    pub async fn lots_count(&self, account_id: i64, include_closed: bool) -> Result<u64, ServiceError> {
        Ok(lots::count(&self.db, account_id, include_closed).await?)
    }

    /// One page of the journal, newest first, each entry with its lines.
    pub async fn history_page(&self, account_id: i64, filter: &HistoryFilter, window: &Window) -> Result<Page<HistoryItem>, ServiceError> {
        let entries = store::journal::page(&self.db, account_id, filter, window).await?;
        let ids: Vec<i64> = entries.items.iter().map(|e| e.id).collect();
        let mut lines = store::journal::lines_of(&self.db, &ids).await?;
        entries.try_map(|entry| {
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut lines).into_iter().partition(|l| l.entry_id == entry.id);
            lines = rest;
            Ok(HistoryItem { entry, lines: mine })
        })
    }

    /// How many entries pass `filter`; its cost grows with the account's journal.
    pub async fn history_count(&self, account_id: i64, filter: &HistoryFilter) -> Result<u64, ServiceError> {
        Ok(store::journal::count(&self.db, account_id, filter).await?)
    }

    pub async fn purchases_page(
        &self,
        account_id: i64,
        include_pending: bool,
        window: &Window,
    ) -> Result<Page<PurchaseView>, ServiceError> {
        store::purchases::page(&self.db, account_id, include_pending, window).await?.try_map(PurchaseView::of)
    }

    pub async fn purchases_count(&self, account_id: i64, include_pending: bool) -> Result<u64, ServiceError> {
        Ok(store::purchases::count(&self.db, account_id, include_pending).await?)
    }
}

fn lot_gone(lot_id: i64) -> ServiceError {
    anyhow::anyhow!("a hold's lot {lot_id} is gone").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn bars_group_by_source_and_skip_expired_lots() {
        let now = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let lot = |id, source, remaining: i64, expires_at| Lot {
            id,
            class: LotClass::Promotional,
            source,
            granted: Credits::from_whole(100),
            remaining: Credits::from_whole(remaining),
            granted_at: now - Duration::days(1),
            expires_at,
            priority: crate::ledger::Priority::DEFAULT,
            effective_at: None,
            features: None,
        };
        let view = balance_view(
            &[
                lot(1, LotSource::CheckIn, 5, Some(now + Duration::days(2))),
                lot(2, LotSource::CheckIn, 5, Some(now + Duration::days(1))),
                lot(3, LotSource::CheckIn, 7, Some(now)),
                lot(4, LotSource::Coupon, 10, None),
            ],
            &[HeldPart { source: LotSource::Lucky, class: LotClass::Promotional, amount: Credits::from_whole(3) }],
            now,
        );
        assert_eq!(view.available, Credits::from_whole(20));
        assert_eq!(view.held, Credits::from_whole(3), "a bar of what is held, even with nothing left beside it");
        assert_eq!(view.bars.len(), 3);
        let check_in = view.bars.iter().find(|b| b.source == LotSource::CheckIn).unwrap();
        assert_eq!(check_in.remaining, Credits::from_whole(10));
        assert_eq!(check_in.expiries[0].0, Some(now + Duration::days(1)));
    }
}
