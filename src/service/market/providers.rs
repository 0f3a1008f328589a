//! Providers: a verified account sets its hardware, capacity and asks; a consumer saves its
//! standing bid per workload.

use super::{market, workload};
use crate::entity::account;
use crate::ledger::Credits;
use crate::ledger::market::HardwareClass;
use crate::service::accounts::AccountView;
use crate::service::input::ExternalId;
use crate::service::spending::check_amount;
use crate::service::{Engine, Refusal, ServiceError, tx};
use crate::store::{self, accounts::Flag};
use chrono::{DateTime, Utc};

/// Asks per provider.
pub const MAX_ASKS: usize = 100;

impl Engine {
    /// Marks an account's identity verified or not (service, admin): the market needs it.
    pub async fn set_identity_verified(&self, account: &str, verified: bool) -> Result<AccountView, ServiceError> {
        let account = ExternalId::parse(account)?;
        tx::write(&self.writer, |txn| {
            let account = account.clone();
            Box::pin(async move {
                let locked = crate::service::accounts::lock_by_external_id(txn, account.as_str()).await?;
                store::accounts::set_flag(txn, locked.id, Flag::IdentityVerified, verified).await?;
                AccountView::of(account::Model { identity_verified: verified, ..locked })
            })
        })
        .await
    }

    /// Registers (or updates) a verified account as a provider with its hardware and capacity,
    /// and replaces its asks: a default and any per workload.
    pub async fn set_asking_prices(
        &self,
        account: &str,
        hardware: HardwareClass,
        capacity: i32,
        default_ask: Credits,
        asks: Vec<(String, Credits)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, Credits)>, ServiceError> {
        market(&self.program)?;
        let account = ExternalId::parse(account)?;
        if !(1..=10_000).contains(&capacity) {
            return Err(ServiceError::bad_input("capacity must be 1 to 10000 jobs at once"));
        }
        if asks.len() > MAX_ASKS {
            return Err(ServiceError::bad_input(format!("at most {MAX_ASKS} asks")));
        }
        let default_ask = check_amount(default_ask)?;
        let mut parsed = Vec::new();
        for (name, price) in asks {
            let name = workload(&self.program, &name)?;
            if parsed.iter().any(|(w, _)| *w == name) {
                return Err(ServiceError::bad_input(format!("workload {name:?} is listed twice")));
            }
            parsed.push((name, check_amount(price)?));
        }
        tx::write(&self.writer, |txn| {
            let (account, parsed) = (account.clone(), parsed.clone());
            Box::pin(async move {
                let locked = crate::service::accounts::lock_by_external_id(txn, account.as_str()).await?;
                if !locked.identity_verified {
                    return Err(Refusal::identity_required("a provider's identity must be verified first").into());
                }
                store::market::upsert_provider(txn, locked.id, hardware, capacity, default_ask, now).await?;
                store::market::replace_asks(txn, locked.id, &parsed).await?;
                tracing::info!(account.id = locked.id, hardware = <&str>::from(hardware), capacity, "provider asks set");
                Ok(parsed)
            })
        })
        .await
    }

    /// Saves a consumer's budget for a workload: used when a job names no bid.
    pub async fn set_bid_preference(&self, account: &str, workload_name: &str, bid: Credits) -> Result<Credits, ServiceError> {
        market(&self.program)?;
        let account = self.account(account).await?;
        let name = workload(&self.program, workload_name)?;
        let bid = check_amount(bid)?;
        store::market::upsert_bid_preference(&self.db, account.id, &name, bid).await?;
        Ok(bid)
    }
}
