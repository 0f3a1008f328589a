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

use crate::entity::{account, market_job};
use crate::ledger::market::{self as rules, HardwareClass, Offer, Rate};
use crate::ledger::reservation::ReservationStatus;
use crate::ledger::{Credits, LotClass, LotSource};
use crate::program::{Market, Program};
use crate::service::executor::{Command, Permit, Run};
use crate::service::input::{ExternalId, IdempotencyKey, label};
use crate::service::keyed::Refusal;
use crate::service::posting::{self, EntryMeta};
use crate::service::reservations::{HoldRequest, hold, settle_as};
use crate::service::spending::check_amount;
use crate::service::{Ledger, ServiceError, tx};
use crate::store::accounts::Flag;
use crate::store::market::{JobEnd, NewJob};
use crate::store::{self, idempotency::request_hash, journal::EntryKind, lots};
use chrono::{DateTime, Duration, DurationRound, Utc};
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far back `marketRates` history goes by default, and at most, in snapshots.
pub const MAX_HISTORY: u64 = 288;
/// Longest job input kept.
pub const MAX_INPUT_CHARS: usize = 2000;
/// Asks per provider.
pub const MAX_ASKS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: i64,
    pub workload: String,
    pub input: String,
    pub priority: i32,
    pub status: String,
    pub rejection_code: Option<String>,
    pub provider: Option<String>,
    pub budget: Option<Credits>,
    pub budget_source: Option<String>,
    pub price: Option<Credits>,
    pub surge: bool,
    pub reservation_id: Option<i64>,
    pub earnings: Option<Credits>,
    pub fee: Option<Credits>,
    pub deadline: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct JobInput {
    pub input: String,
    pub bid: Option<Credits>,
}

#[derive(Debug, Clone, Serialize)]
struct SubmitFields<'a> {
    workload: &'a str,
    priority: i32,
    inputs: Vec<(&'a str, Option<Credits>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesView {
    pub workload: String,
    pub now: Option<Rate>,
    pub suggested_bid: Option<Credits>,
    pub history: Vec<(DateTime<Utc>, Rate)>,
}

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

fn view(job: &market_job::Model, providers: &BTreeMap<i64, String>) -> JobView {
    JobView {
        id: job.id,
        workload: job.workload.clone(),
        input: job.input.clone(),
        priority: job.priority,
        status: job.status.clone(),
        rejection_code: job.rejection_code.clone(),
        provider: job.provider_account_id.and_then(|id| providers.get(&id).cloned()),
        budget: job.budget_micros.map(Credits::from_micros),
        budget_source: job.budget_source.clone(),
        price: job.price_micros.map(Credits::from_micros),
        surge: job.surge,
        reservation_id: job.reservation_id,
        earnings: job.earnings_micros.map(Credits::from_micros),
        fee: job.fee_micros.map(Credits::from_micros),
        deadline: job.deadline,
    }
}

async fn external_ids(conn: &impl ConnectionTrait, ids: impl IntoIterator<Item = i64>) -> Result<BTreeMap<i64, String>, ServiceError> {
    Ok(store::accounts::external_ids(conn, ids).await?)
}

fn rate_of(offers: &[Offer]) -> Option<Rate> {
    rules::rate(&offers.iter().map(|o| o.ask).collect::<Vec<_>>())
}

/// A hold that ran out belonged to a running job: the job failed by its deadline.
pub(crate) async fn on_hold_expired(txn: &DatabaseTransaction, reservation_id: i64, now: DateTime<Utc>) -> Result<(), ServiceError> {
    let end = JobEnd { status: "failed", rejection_code: Some("DEADLINE"), earnings: None, fee: None, settled_at: now };
    Ok(store::market::end_running_job_of_hold(txn, reservation_id, &end).await?)
}

/// The platform account the fees land on, created the first time it is needed.
async fn platform_account(
    txn: &DatabaseTransaction,
    program: &Program,
    market: &Market,
    now: DateTime<Utc>,
) -> Result<account::Model, ServiceError> {
    if let Some(found) = store::accounts::lock_by_external_id(txn, &market.platform_account).await? {
        return Ok(found);
    }
    store::accounts::insert(txn, &market.platform_account, &program.default_plan, now).await?;
    Ok(store::accounts::lock_by_external_id(txn, &market.platform_account).await?.expect("inserted above"))
}

impl Ledger {
    /// Marks an account's identity verified or not (service, admin): the market needs it.
    pub async fn set_identity_verified(&self, account: &str, verified: bool) -> Result<account::Model, ServiceError> {
        let account = ExternalId::parse(account)?;
        tx::write(&self.db, |txn| {
            let account = account.clone();
            Box::pin(async move {
                let locked = crate::service::accounts::lock_by_external_id(txn, account.as_str()).await?;
                store::accounts::set_flag(txn, locked.id, Flag::IdentityVerified, verified).await?;
                Ok(account::Model { identity_verified: verified, ..locked })
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
        tx::write(&self.db, |txn| {
            let (account, parsed) = (account.clone(), parsed.clone());
            Box::pin(async move {
                let locked = crate::service::accounts::lock_by_external_id(txn, account.as_str()).await?;
                if !locked.identity_verified {
                    return Err(ServiceError::IdentityNotVerified("a provider's identity must be verified first".into()));
                }
                store::market::upsert_provider(txn, locked.id, hardware, capacity, default_ask, now).await?;
                store::market::replace_asks(txn, locked.id, &parsed).await?;
                tracing::info!(account.id = locked.id, hardware = hardware.as_str(), capacity, "provider asks set");
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

    /// Submits 1 to 100 jobs of one workload: each is matched, its price held, and started, or
    /// rejected with a code (`NO_PROVIDER`, `ALL_BUSY`, `BID_TOO_LOW`, `INSUFFICIENT_CREDITS`).
    pub async fn submit_jobs(
        &self,
        account: &str,
        workload_name: &str,
        inputs: Vec<JobInput>,
        priority: i32,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<JobView>, ServiceError> {
        let market_rules = market(&self.program)?.clone();
        let account = ExternalId::parse(account)?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let name = workload(&self.program, workload_name)?;
        if inputs.is_empty() || inputs.len() > rules::MAX_BATCH {
            return Err(ServiceError::bad_input(format!("a submission holds 1 to {} inputs", rules::MAX_BATCH)));
        }
        if !(0..=i32::from(rules::MAX_PRIORITY)).contains(&priority) {
            return Err(ServiceError::bad_input(format!("priority must be 0 to {}", rules::MAX_PRIORITY)));
        }
        let mut parsed = Vec::new();
        for job in &inputs {
            let input = crate::service::input::text("an input", &job.input, MAX_INPUT_CHARS)?;
            parsed.push((input, job.bid.map(check_amount).transpose()?));
        }
        self.require_identity_to_spend(&account, true).await?;
        let hash =
            request_hash(&SubmitFields { workload: &name, priority, inputs: parsed.iter().map(|(i, b)| (i.as_str(), *b)).collect() });
        let command = Command {
            operation: "submit_job",
            account,
            key,
            request_hash: hash,
            permit: Permit::Active,
            fields: (name, parsed, market_rules, priority),
        };
        self.execute(command, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, account: locked, command, now } = run;
                let (name, parsed, market_rules, priority) = &command.fields;
                let (program, key, priority) = (&ledger.program, &command.key, *priority);
                if !locked.identity_verified {
                    // Unverified since the check above: refused the same way, not stored.
                    return Err(ServiceError::IdentityNotVerified("spending credits needs a verified identity".into()));
                }
                let mut offers = store::market::offers(txn, name, true).await?;
                let preference = store::market::bid_preference(txn, locked.id, name).await?;
                let average = rate_of(&offers).map(|r| r.average);
                let submission = Submission {
                    program,
                    consumer: locked,
                    workload: name,
                    priority,
                    key,
                    deadline: now + market_rules.job_deadline,
                    preference,
                    average,
                    now,
                };
                let mut jobs = Vec::new();
                for (index, (input, bid)) in parsed.iter().enumerate() {
                    // The submission's jobs not matched yet are the demand waiting on this market.
                    let queued = (parsed.len() - index) as u64;
                    jobs.push(place_job(txn, &submission, &mut offers, index, queued, input, *bid).await?);
                }
                let names = external_ids(txn, jobs.iter().filter_map(|j| j.provider_account_id)).await?;
                let views: Vec<JobView> = jobs.iter().map(|j| view(j, &names)).collect();
                tracing::info!(account.id = locked.id, workload = %name, jobs = jobs.len(), "jobs submitted");
                Ok(Ok(views))
            })
        })
        .await
    }

    /// A running job finished (service): its held price moves to the provider, less the
    /// platform's fee, exactly once.
    pub async fn complete_job(&self, job_id: &str, idempotency_key: &str, now: DateTime<Utc>) -> Result<JobView, ServiceError> {
        self.end_job(job_id, None, idempotency_key, now).await
    }

    /// A running job failed (service): its held price goes back to the consumer in full.
    pub async fn fail_job(&self, job_id: &str, reason: &str, idempotency_key: &str, now: DateTime<Utc>) -> Result<JobView, ServiceError> {
        let reason = crate::service::input::reason(reason)?;
        self.end_job(job_id, Some(reason), idempotency_key, now).await
    }

    async fn end_job(
        &self,
        job_id: &str,
        failure: Option<String>,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<JobView, ServiceError> {
        let market_rules = market(&self.program)?.clone();
        let id = job_id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| ServiceError::NotFound(format!("no job {job_id:?}")))?;
        let key = IdempotencyKey::parse(idempotency_key)?;
        let found = store::market::job(&self.db, id).await?.ok_or_else(|| ServiceError::NotFound(format!("no job {id}")))?;
        let operation = if failure.is_some() { "fail_job" } else { "complete_job" };
        let consumer = store::accounts::by_id(&self.db, found.consumer_account_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("job {id} has no consumer account"))?;
        let command = Command {
            operation,
            account: ExternalId::parse(&consumer.external_id)?,
            key,
            request_hash: request_hash(&(id, &failure)),
            // Ending a job settles what is already held: any status may.
            permit: Permit::Any,
            fields: (failure, market_rules),
        };
        let provider: Vec<i64> = found.provider_account_id.into_iter().collect();
        self.execute_also_locking(command, &provider, now, |run| {
            Box::pin(async move {
                let Run { txn, ledger, command, now, .. } = run;
                let (failure, market_rules) = &command.fields;
                let (program, key) = (&ledger.program, &command.key);
                let job = store::market::job(txn, id).await?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
                if job.status != "running" {
                    return Ok(Err(Refusal::InvalidState { what: format!("job {id} is {}", job.status) }));
                }
                let reservation_id = job.reservation_id.ok_or_else(|| anyhow::anyhow!("running job {id} holds nothing"))?;
                let reservation =
                    store::reservations::by_id(txn, reservation_id).await?.ok_or_else(|| anyhow::anyhow!("job {id}'s hold vanished"))?;
                if reservation.deadline <= now {
                    // The job's price was a hold, and it lapsed at the job deadline: the job
                    // failed then, whether or not the worker has released it yet; not paid.
                    crate::service::reservations::release_lapsed(txn, &[found.consumer_account_id], now).await?;
                    let what = format!("job {id} is failed: it passed its deadline {}", reservation.deadline.to_rfc3339());
                    return Ok(Err(Refusal::InvalidState { what }));
                }
                let mut done = job.clone();
                match failure {
                    Some(reason) => {
                        settle_as(txn, &reservation, ReservationStatus::Released, Credits::ZERO, EntryKind::Spend, Some(key.as_str()), now)
                            .await?;
                        done.status = "failed".into();
                        done.rejection_code = Some("FAILED".into());
                        tracing::info!(job.id = id, reason = %reason, "job failed; its hold returned");
                    }
                    None => {
                        let (earnings, fee) = pay_for_job(txn, program, market_rules, &job, &reservation, key, now).await?;
                        done.status = "completed".into();
                        done.earnings_micros = Some(earnings.micros());
                        done.fee_micros = Some(fee.micros());
                    }
                }
                done.settled_at = Some(now);
                let end = JobEnd {
                    status: &done.status,
                    rejection_code: done.rejection_code.as_deref(),
                    earnings: done.earnings_micros.map(Credits::from_micros),
                    fee: done.fee_micros.map(Credits::from_micros),
                    settled_at: now,
                };
                store::market::end_job(txn, id, &end).await?;
                let names = external_ids(txn, done.provider_account_id).await?;
                Ok(Ok(view(&done, &names)))
            })
        })
        .await
    }

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

    /// A consumer's jobs, newest first.
    pub async fn jobs_page(&self, account_id: i64, after: Option<i64>, limit: u64) -> Result<(Vec<JobView>, bool), ServiceError> {
        let mut rows = store::market::jobs_page(&self.db, account_id, after, limit + 1).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let names = external_ids(&self.db, rows.iter().filter_map(|j| j.provider_account_id)).await?;
        Ok((rows.iter().map(|j| view(j, &names)).collect(), more))
    }
}

/// A completed job's pay: its held price is captured, and moves to the provider as earnings,
/// less the platform's fee to the platform's account; (earnings, fee).
async fn pay_for_job(
    txn: &DatabaseTransaction,
    program: &Program,
    market_rules: &Market,
    job: &market_job::Model,
    reservation: &crate::entity::reservation::Model,
    key: &IdempotencyKey,
    now: DateTime<Utc>,
) -> Result<(Credits, Credits), ServiceError> {
    let id = job.id;
    let price = Credits::from_micros(reservation.amount_micros);
    settle_as(txn, reservation, ReservationStatus::Captured, price, EntryKind::Transfer, Some(key.as_str()), now).await?;
    let (earnings, fee) = rules::split_fee(price, market_rules.fee_rate);
    let provider_id = job.provider_account_id.ok_or_else(|| anyhow::anyhow!("running job {id} has no provider"))?;
    let why = format!("{} job {id}", job.workload);
    for (account_id, amount, what) in [(Some(provider_id), earnings, "earnings"), (None, fee, "platform fee")] {
        if amount.is_zero() {
            continue;
        }
        let account_id = match account_id {
            Some(id) => id,
            None => platform_account(txn, program, market_rules, now).await?.id,
        };
        let lot = lots::NewLot {
            account_id,
            class: LotClass::Paid,
            source: LotSource::ProviderEarnings,
            amount,
            granted_at: now,
            expires_at: None,
            origin_kind: Some("market_job"),
            origin_id: Some(id.to_string()),
        };
        let reason = format!("{what} of {why}");
        let meta = EntryMeta {
            idempotency_key: Some(key.as_str()),
            feature: Some(&job.workload),
            reason: Some(&reason),
            ..EntryMeta::now("complete_job", now)
        };
        posting::credit(txn, lot, meta).await?;
    }
    Ok((earnings, fee))
}

/// What every job of one submission shares.
struct Submission<'a> {
    program: &'a Program,
    consumer: &'a account::Model,
    workload: &'a str,
    priority: i32,
    key: &'a IdempotencyKey,
    deadline: DateTime<Utc>,
    /// The consumer's standing bid for this workload, if any.
    preference: Option<Credits>,
    /// The market's average ask now, if anyone asks.
    average: Option<Credits>,
    now: DateTime<Utc>,
}

/// One job of a submission: its budget, its provider (the market's rule,
/// `ledger::market::place`) and the hold of its price, or the reason it was rejected; written
/// either way. `queued` is the submission's jobs not matched yet, the demand that sets the surge.
async fn place_job(
    txn: &DatabaseTransaction,
    s: &Submission<'_>,
    offers: &mut [Offer],
    index: usize,
    queued: u64,
    input: &str,
    bid: Option<Credits>,
) -> Result<market_job::Model, ServiceError> {
    let mut job = NewJob {
        consumer_account_id: s.consumer.id,
        provider_account_id: None,
        workload: s.workload,
        input,
        priority: s.priority,
        bid,
        budget: None,
        budget_source: None,
        price: None,
        surge: false,
        status: "rejected",
        rejection_code: None,
        reservation_id: None,
        idempotency_key: format!("{}#{index}", s.key.as_str()),
        created_at: s.now,
        deadline: s.deadline,
    };
    let budget = rules::resolve_budget(bid, s.preference, s.average, default_price(s.program, s.workload));
    job.budget = budget.map(|(amount, _)| amount);
    job.budget_source = budget.map(|(_, source)| source.as_str());
    let placement = rules::place(offers, s.consumer.id, job.budget, queued);
    let matched = match placement.result {
        Ok(found) => found,
        Err(no) => {
            job.rejection_code = Some(no.code());
            return Ok(store::market::insert_job(txn, job).await?);
        }
    };
    let hold_key = format!("job:{}#{index}", s.key.as_str());
    let why = format!("{} job held for provider {}", s.workload, matched.provider_id);
    let request =
        HoldRequest { amount: matched.price, feature: s.workload, model: None, reason: Some(&why), key: &hold_key, deadline: s.deadline };
    match hold(txn, s.program, s.consumer, request, s.now).await? {
        Err(_short) => job.rejection_code = Some("INSUFFICIENT_CREDITS"),
        Ok(held) => {
            job.status = "running";
            job.surge = placement.surge > Decimal::ONE;
            job.provider_account_id = Some(matched.provider_id);
            job.price = Some(matched.price);
            job.reservation_id = Some(held.reservation_id);
            if let Some(offer) = offers.iter_mut().find(|o| o.provider_id == matched.provider_id) {
                offer.running += 1;
            }
        }
    }
    Ok(store::market::insert_job(txn, job).await?)
}
