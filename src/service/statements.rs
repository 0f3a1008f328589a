//! Monthly statements (issue 26): `account.statement(month:)`, `credits statement show` and
//! `credits statement verify`. The rule is `ledger::statement`; the reads are
//! `store::statements`, made in one read snapshot so that the opening, the entries and the lots
//! agree with each other.

use crate::ledger::statement::{self, Builder, Document, Entry, Line, LotInfo, Month, Statement, Window};
use crate::service::accounts::AccountView;
use crate::service::{Engine, ServiceError};
use crate::store;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Entries read per page: a month of any length goes through in bounded memory.
const ENTRIES_PER_PAGE: u64 = 1000;

/// A statement of one account for one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementView {
    pub account: String,
    pub statement: Statement,
    /// The month is over and no write-off dated in it is still to come: the statement will not
    /// change (unless the journal is changed behind the service's back, which `verify` finds).
    pub complete: bool,
    /// The whole statement as its canonical JSON document.
    pub document: Document,
}

impl StatementView {
    pub fn json(&self) -> String {
        self.document.to_json()
    }
}

/// What `verify_statement` found: nothing, or each field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub differences: Vec<String>,
}

impl Engine {
    /// The statement of `account` for `month` ("YYYY-MM") as of `now`. A malformed month, or a
    /// month that has not started, is BAD_USER_INPUT; a month before the account existed is a
    /// statement of nothing.
    pub async fn statement(&self, account: &AccountView, month: &str, now: DateTime<Utc>) -> Result<StatementView, ServiceError> {
        let month: Month = month.parse().map_err(|e: statement::MonthParseError| ServiceError::bad_input(e.to_string()))?;
        let window = Window::new(month, now).map_err(|e| ServiceError::bad_input(e.to_string()))?;
        self.statement_in(account, window).await
    }

    /// The statement over `window`: the opening per lot, then the month's entries page by page
    /// into the builder (which keeps sums, not entries), then the lots it named.
    pub async fn statement_in(&self, account: &AccountView, window: Window) -> Result<StatementView, ServiceError> {
        let txn = crate::service::export::snapshot(&self.db).await?;
        let opening = store::statements::opening_by_lot(&txn, account.id, window.from()).await?;
        let mut builder = Builder::new(window, opening.iter().copied());
        let mut lot_ids: Vec<i64> = opening.iter().map(|(id, _)| *id).collect();
        let mut after = None;
        loop {
            let page = store::statements::entries_after(&txn, account.id, window.from(), window.until(), after, ENTRIES_PER_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let ids: Vec<i64> = page.iter().map(|e| e.id).collect();
            let mut lines: BTreeMap<i64, Vec<Line>> = BTreeMap::new();
            for line in store::journal::lines_of(&txn, &ids).await? {
                lines.entry(line.entry_id).or_default().push(Line { lot_id: line.lot_id, delta_micros: line.delta_micros });
            }
            let full = page.len() as u64 == ENTRIES_PER_PAGE;
            for model in page {
                let lines = lines.remove(&model.id).unwrap_or_default();
                lot_ids.extend(lines.iter().map(|l| l.lot_id));
                let entry = Entry {
                    id: model.id,
                    kind: model.kind,
                    operation: model.operation,
                    effective_at: model.effective_at,
                    recorded_at: model.created_at,
                    amount_micros: model.amount_micros,
                    feature: model.feature,
                    model: model.model,
                    reason: model.reason,
                    lines,
                };
                builder.add(&entry).map_err(anyhow::Error::new)?;
            }
            if !full {
                break;
            }
        }
        lot_ids.sort_unstable();
        lot_ids.dedup();
        let mut lots = BTreeMap::new();
        for chunk in lot_ids.chunks(ENTRIES_PER_PAGE as usize) {
            for lot in store::lots::by_ids(&txn, chunk).await? {
                if lot.account_id != account.id {
                    return Err(
                        anyhow::anyhow!("lot {} of account {} is in account {}'s journal", lot.id, lot.account_id, account.id).into()
                    );
                }
                let info = LotInfo { source: lot.source, class: lot.class, granted_at: lot.granted_at, expires_at: lot.expires_at };
                lots.insert(lot.id, info);
            }
        }
        let due = if window.month_over() { store::statements::write_offs_due(&txn, account.id, window.to()).await? } else { 0 };
        // Read-only: ending it either way releases the snapshot.
        txn.rollback().await?;
        let statement = builder.finish(&lots).map_err(anyhow::Error::new)?;
        let complete = window.month_over() && due == 0;
        let document = statement.document(&account.external_id, complete);
        Ok(StatementView { account: account.external_id.clone(), statement, complete, document })
    }

    /// Reads a statement's JSON document (as `statement show` or `json` gave it) and recomputes
    /// it from the database over the same window (its month, as of its `asOf`). A file that is
    /// not such a document is BAD_USER_INPUT; an unknown account NOT_FOUND.
    pub async fn verify_statement(&self, json: &str) -> Result<Verification, ServiceError> {
        let claimed: Document =
            serde_json::from_str(json).map_err(|e| ServiceError::bad_input(format!("not a statement document: {e}")))?;
        if claimed.format != statement::FORMAT {
            return Err(ServiceError::bad_input(format!("format {:?}: this service reads {:?}", claimed.format, statement::FORMAT)));
        }
        let month: Month = claimed.month.parse().map_err(|e: statement::MonthParseError| ServiceError::bad_input(e.to_string()))?;
        let as_of = DateTime::parse_from_rfc3339(&claimed.as_of)
            .map_err(|e| ServiceError::bad_input(format!("asOf {:?}: {e}", claimed.as_of)))?
            .with_timezone(&Utc);
        let window = Window::new(month, as_of).map_err(|e| ServiceError::bad_input(format!("asOf is before its month: {e}")))?;
        let account = self.account(&claimed.account).await?;
        let recomputed = self.statement_in(&account, window).await?;
        Ok(Verification { differences: claimed.differences(&recomputed.document) })
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::statement;
    use crate::store::journal::EntryKind;

    #[test]
    fn the_rule_names_kinds_as_the_journal_stores_them() {
        assert_eq!(EntryKind::Grant.as_str(), statement::GRANT);
        assert_eq!(EntryKind::Spend.as_str(), statement::SPEND);
        assert_eq!(EntryKind::Expire.as_str(), statement::EXPIRE);
        assert_eq!(EntryKind::Refund.as_str(), statement::REFUND);
    }
}
