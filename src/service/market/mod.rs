//! The compute market (archipelag, domain.md §4 "Market"): verified providers set asks per
//! workload; a consumer's job clears at the cheapest available provider whose final price (ask x
//! hardware multiplier x surge) is at or under the job's budget. *Beyond* the source product,
//! the price is held from the consumer when the job is matched, moved to the provider (less the
//! platform's fee, which lands on the platform account) when it completes, exactly once, and
//! returned in full when it fails or outlives its deadline.
//!
//! Locks: a match locks the consumer's account, then the providers' rows (in id order), so two
//! consumers racing for one provider's last slot serialize there; a completion locks the two
//! accounts it moves credits between in id order. Nothing locks a provider row and then an
//! account, so these orders cannot deadlock.

mod jobs;
mod providers;
mod rates;
mod settlement;

pub use jobs::{JobInput, JobView, MAX_INPUT_CHARS, SubmitRequest};
pub use providers::MAX_ASKS;
pub use rates::{MAX_HISTORY, RatesView};
pub(crate) use settlement::on_hold_expired;

use crate::ledger::Credits;
use crate::ledger::market::{self as rules, Offer, Rate};
use crate::program::{Market, Program};
use crate::service::ServiceError;
use crate::service::input::label;

fn market(program: &Program) -> Result<&Market, ServiceError> {
    program.market.as_ref().ok_or_else(|| ServiceError::FeatureDisabled("this program has no compute market".into()))
}

/// A workload named by the program's catalog (when it has one).
fn workload(program: &Program, name: &str) -> Result<String, ServiceError> {
    let name = label("workload", name)?;
    if !program.catalog.entries().is_empty() && !program.catalog.has_feature(&name) {
        return Err(ServiceError::bad_input(format!("unknown workload {name:?}")));
    }
    Ok(name)
}

fn default_price(program: &Program, workload: &str) -> Option<Credits> {
    crate::ledger::pricing::quote(&program.catalog, workload, None, &Default::default()).ok().map(|q| q.total)
}

fn rate_of(offers: &[Offer]) -> Option<Rate> {
    rules::rate(&offers.iter().map(|o| o.ask).collect::<Vec<_>>())
}
