//! Reads: balance with its status bars, lots, history and purchases, each a bounded page.

use crate::entity::{account, journal_entry, journal_line, lot, purchase};
use crate::ledger::{Credits, Lot, LotClass, LotSource};
use crate::service::daily_free;
use crate::service::{Ledger, ServiceError};
use crate::store::{self, journal::HistoryFilter, lots};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The hard maximum of any page; a larger `first` is refused, not silently cut.
pub const MAX_PAGE_SIZE: u64 = 100;
pub const DEFAULT_PAGE_SIZE: u64 = 20;

pub fn page_size(first: Option<i32>) -> Result<u64, ServiceError> {
    match first {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n >= 1 && (n as u64) <= MAX_PAGE_SIZE => Ok(n as u64),
        Some(n) => Err(ServiceError::bad_input(format!("first must be between 1 and {MAX_PAGE_SIZE}, not {n}"))),
    }
}

/// Cursors are the sequence number or id of the last row seen, in decimal.
pub fn parse_cursor(after: Option<&str>) -> Result<Option<i64>, ServiceError> {
    after
        .map(|c| c.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| ServiceError::bad_input("after is not a cursor from this list")))
        .transpose()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub source: LotSource,
    pub class: LotClass,
    pub remaining: Credits,
    /// Remaining per expiry instant, soonest first; `None` never expires.
    pub expiries: Vec<(Option<DateTime<Utc>>, Credits)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceView {
    /// What the account's lots hold now, not counting held credits.
    pub total: Credits,
    /// Taken from the lots by open reservations: neither spendable nor lost.
    pub held: Credits,
    pub bars: Vec<Bar>,
}

/// The balance at `now`, grouped by source: expired lots never count, written off or not.
pub fn balance_view(open: &[Lot], now: DateTime<Utc>) -> BalanceView {
    let mut bars: BTreeMap<&'static str, Bar> = BTreeMap::new();
    for lot in open.iter().filter(|l| l.is_spendable(now)) {
        let bar = bars.entry(lot.source.as_str()).or_insert_with(|| Bar {
            source: lot.source,
            class: lot.class,
            remaining: Credits::ZERO,
            expiries: Vec::new(),
        });
        bar.remaining = bar.remaining.checked_add(lot.remaining).expect("balances fit");
        match bar.expiries.iter_mut().find(|(at, _)| *at == lot.expires_at) {
            Some((_, sum)) => *sum = sum.checked_add(lot.remaining).expect("balances fit"),
            None => bar.expiries.push((lot.expires_at, lot.remaining)),
        }
    }
    let mut bars: Vec<Bar> = bars.into_values().collect();
    for bar in &mut bars {
        bar.expiries.sort_by_key(|(at, _)| (at.is_none(), *at));
    }
    BalanceView { total: bars.iter().map(|b| b.remaining).sum(), held: Credits::ZERO, bars }
}

pub struct HistoryItem {
    pub entry: journal_entry::Model,
    pub lines: Vec<journal_line::Model>,
}

impl Ledger {
    /// The balance at `now`, with today's daily free credits as a virtual lot where due.
    pub async fn balance(&self, account: &account::Model, now: DateTime<Utc>) -> Result<BalanceView, ServiceError> {
        let open = lots::open_for_account(&self.db, account.id).await?;
        let mut rules: Vec<Lot> = open.iter().map(lots::to_rule).collect::<Result<_, _>>()?;
        if let Some(virtual_lot) = daily_free::virtual_lot(&self.db, &self.program, account, &rules, now).await? {
            rules.push(virtual_lot);
        }
        let mut view = balance_view(&rules, now);
        view.held = Credits::from_micros(store::reservations::held_micros(&self.db, account.id).await?);
        Ok(view)
    }

    /// One page of lots, newest first, plus whether there are more.
    pub async fn lots_page(
        &self,
        account_id: i64,
        include_closed: bool,
        after: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<lot::Model>, bool), ServiceError> {
        let mut rows = lots::page(&self.db, account_id, include_closed, after, limit + 1).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Ok((rows, more))
    }

    pub async fn history_page(
        &self,
        account_id: i64,
        filter: &HistoryFilter,
        after: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<HistoryItem>, bool), ServiceError> {
        let mut entries = store::journal::page(&self.db, account_id, filter, after, limit + 1).await?;
        let more = entries.len() as u64 > limit;
        entries.truncate(limit as usize);
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        let mut lines = store::journal::lines_of(&self.db, &ids).await?;
        let items = entries
            .into_iter()
            .map(|entry| {
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut lines).into_iter().partition(|l| l.entry_id == entry.id);
                lines = rest;
                HistoryItem { entry, lines: mine }
            })
            .collect();
        Ok((items, more))
    }

    pub async fn purchases_page(
        &self,
        account_id: i64,
        after: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<purchase::Model>, bool), ServiceError> {
        let mut rows = store::purchases::page(&self.db, account_id, after, limit + 1).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Ok((rows, more))
    }
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
        };
        let view = balance_view(
            &[
                lot(1, LotSource::CheckIn, 5, Some(now + Duration::days(2))),
                lot(2, LotSource::CheckIn, 5, Some(now + Duration::days(1))),
                lot(3, LotSource::CheckIn, 7, Some(now)),
                lot(4, LotSource::Coupon, 10, None),
            ],
            now,
        );
        assert_eq!(view.total, Credits::from_whole(20));
        assert_eq!(view.bars.len(), 2);
        let check_in = view.bars.iter().find(|b| b.source == LotSource::CheckIn).unwrap();
        assert_eq!(check_in.remaining, Credits::from_whole(10));
        assert_eq!(check_in.expiries[0].0, Some(now + Duration::days(1)));
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE_SIZE);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(101)).is_err());
        assert!(parse_cursor(Some("abc")).is_err());
        assert_eq!(parse_cursor(Some("42")).unwrap(), Some(42));
    }
}
