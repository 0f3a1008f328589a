//! Runway (issue 26, `balance.runway`): the rate an account burns credits at, and what
//! `ledger::runway` projects from it over the account's open lots. Read-only: it moves nothing,
//! so it takes no lock and reads outside any transaction.

use crate::ledger::runway::{self, Projection};
use crate::ledger::{Credits, Lot};
use crate::service::accounts::AccountView;
use crate::service::{Engine, ServiceError, notices};
use crate::store::{self, lots};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

/// Where the burn rate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurnBasis {
    /// What running containers and stored bytes over the quota cost an hour now: metering
    /// knows the rate better than history while something runs.
    RunningUsage,
    /// The net of spends, holds and releases recorded over the last `BURN_WINDOW_DAYS`, averaged.
    RecentSpending,
    /// Nothing runs and nothing was spent in the window: the rate is zero.
    NoUse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunwayView {
    pub basis: BurnBasis,
    /// Credits an hour, exact (a 7-day average may have many places).
    pub per_hour: Decimal,
    /// The start of the averaging window (the rate's basis is recent spending or none).
    pub window_start: Option<DateTime<Utc>>,
    /// What the spending in the window came to.
    pub spent_in_window: Option<Credits>,
    pub projection: Projection,
}

impl Engine {
    /// How long `account`'s credits last from `now` at its burn rate (see `BurnBasis`), and
    /// what expires before that rate reaches it.
    pub async fn runway(&self, account: &AccountView, now: DateTime<Utc>) -> Result<RunwayView, ServiceError> {
        let running = notices::usage_rate(&self.db, &self.program, account.id, &account.plan).await?;
        let (basis, per_hour, window_start, spent_in_window) = if running > Decimal::ZERO {
            (BurnBasis::RunningUsage, running, None, None)
        } else {
            let since = now - Duration::days(runway::BURN_WINDOW_DAYS);
            // Net of use: a hold taken and released in the window cancels out; one captured
            // counts once (its release and its spend net to what was captured).
            let net = store::journal::net_use_between(&self.db, account.id, since, now).await?;
            let spent = Credits::from_micros(net.saturating_neg().max(0));
            let basis = if spent.is_zero() { BurnBasis::NoUse } else { BurnBasis::RecentSpending };
            (basis, runway::recent_rate(spent), Some(since), Some(spent))
        };
        let open = lots::open_for_account(&self.db, account.id).await?;
        let mut rules: Vec<Lot> = open.iter().map(lots::to_rule).collect::<Result<_, _>>()?;
        // As the balance does: credits of holds past their deadline are the lots' again.
        crate::service::reservations::return_lapsed(&self.db, account.id, &mut rules, now).await?;
        let projection = runway::project(&rules, &self.program.consumption_order, per_hour, now);
        Ok(RunwayView { basis, per_hour, window_start, spent_in_window, projection })
    }
}
