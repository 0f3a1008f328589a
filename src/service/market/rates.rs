//! Market rates: a workload's rate now from the providers' asks, the suggested bid, and the
//! 5-minute snapshots.

use super::{market, rate_of, workload};
use crate::ledger::Credits;
use crate::ledger::market::{self as rules, Rate};
use crate::service::{Engine, ServiceError};
use crate::store;
use chrono::{DateTime, Duration, DurationRound, Utc};

/// How far back `marketRates` history goes by default, and at most, in snapshots.
pub const MAX_HISTORY: u64 = 288;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesView {
    pub workload: String,
    pub now: Option<Rate>,
    pub suggested_bid: Option<Credits>,
    pub history: Vec<(DateTime<Utc>, Rate)>,
}

impl Engine {
    /// A workload's market rate now (from the providers' asks), the suggested bid, and the
    /// 5-minute snapshots, newest first.
    pub async fn market_rates(&self, workload_name: &str, history: u64) -> Result<RatesView, ServiceError> {
        market(&self.program)?;
        let name = workload(&self.program, workload_name)?;
        let now = rate_of(&store::market::offers(&self.db, &name, false).await?);
        let history = store::market::rate_snapshots(&self.db, &name, history.min(MAX_HISTORY)).await?;
        Ok(RatesView { workload: name, suggested_bid: now.as_ref().map(rules::suggested_bid), now, history })
    }

    /// Snapshots every workload's market rate at the 5-minute mark of `now`, once per mark.
    pub async fn snapshot_market_rates(&self, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        if self.program.market.is_none() {
            return Ok(0);
        }
        let at = now.duration_trunc(Duration::minutes(5)).map_err(anyhow::Error::new)?;
        let mut workloads: Vec<String> = self.program.catalog.entries().iter().map(|e| e.feature.clone()).collect();
        workloads.extend(store::market::asked_workloads(&self.db).await?);
        workloads.sort();
        workloads.dedup();
        let mut written = 0;
        for name in workloads {
            let Some(rate) = rate_of(&store::market::offers(&self.db, &name, false).await?) else { continue };
            written += store::market::insert_rate_snapshot(&self.db, &name, at, &rate).await?;
        }
        Ok(written)
    }
}
