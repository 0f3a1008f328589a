//! Balances over time: `Account.balanceAt(at:)`, what a balance read at a past instant showed.

use crate::graphql::amount::CreditAmount;
use crate::graphql::types::*;
use crate::service::balance_at::BalanceAtView;
use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};

/// What a balance read of the account at `at` showed, from the journal as recorded up to then:
/// every entry in sequence order up to the newest one recorded (`recordedAt`) at or before `at`.
/// `total = available + held`, as in `Balance`.
#[derive(SimpleObject)]
pub struct BalanceAt {
    /// The instant asked for, to the microsecond.
    pub at: DateTime<Utc>,
    /// What a spend could take at `at`: the lots' credits as recorded then, less every lot whose
    /// expiry was at or before `at` (even if its EXPIRE entry was recorded later), plus what
    /// holds past their deadline still had (a lapsed hold counts as available again, unless the
    /// lot it came from had expired). The day's free credits a program offers before a spend
    /// first writes them (carat) are not in it.
    pub available: CreditAmount,
    /// What reservations made by `at`, not settled by then and before their deadline, held.
    pub held: CreditAmount,
    /// `available + held`.
    pub total: CreditAmount,
    /// The sequence number of the newest journal entry recorded at or before `at`, whose
    /// `balanceAfter` this starts from; null when the account had no entry yet.
    pub sequence: Option<ID>,
}

impl From<BalanceAtView> for BalanceAt {
    fn from(view: BalanceAtView) -> Self {
        BalanceAt {
            at: view.at,
            available: credits(view.available),
            held: credits(view.held),
            total: credits(view.available.checked_add(view.held).expect("balances fit")),
            sequence: view.entry_id.map(|id| ID(id.to_string())),
        }
    }
}
