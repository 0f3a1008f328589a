//! Balances over time (issue 25): `account.balanceAt(at:)`, the rule (`ledger::balance_at`)
//! over the store's bounded reads (`store::balance_at`), without reading the account's history.

use crate::ledger::Credits;
use crate::ledger::balance_at::balance_at;
use crate::service::accounts::AccountView;
use crate::service::{Engine, ServiceError};
use crate::store::balance_at as reads;
use chrono::{DateTime, Utc};

/// What a balance read at `at` showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceAtView {
    pub at: DateTime<Utc>,
    /// What a spend could take at `at`.
    pub available: Credits,
    /// What open reservations held at `at`.
    pub held: Credits,
    /// The newest entry recorded at or before `at`, whose state this is; none before the first.
    pub entry_id: Option<i64>,
}

impl Engine {
    /// What a balance read of `account` at `at` showed; none if the account did not exist yet.
    /// `at` later than `now` is refused: what a read will show is not recorded yet.
    pub async fn balance_at(
        &self,
        account: &AccountView,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<BalanceAtView>, ServiceError> {
        if at > now {
            return Err(ServiceError::bad_input("at is in the future: balanceAt answers for instants up to now"));
        }
        let at = crate::ledger::time::truncate(at);
        if at < account.created_at {
            return Ok(None);
        }
        let recorded = reads::last_recorded(&self.db, account.id, at).await?;
        let mut not_counted = Vec::new();
        if let Some(entry) = recorded {
            not_counted.extend(reads::expired_on_books(&self.db, account.id, at, entry.entry_id).await?);
            not_counted.extend(reads::upcoming_on_books(&self.db, account.id, at, entry.entry_id).await?);
        }
        let holds = reads::holds_on_books(&self.db, account.id, at).await?;
        let (available, held) = balance_at(recorded, &not_counted, &holds, at).map_err(anyhow::Error::new)?;
        Ok(Some(BalanceAtView {
            at,
            available: Credits::from_micros(available),
            held: Credits::from_micros(held),
            entry_id: recorded.map(|r| r.entry_id),
        }))
    }
}
