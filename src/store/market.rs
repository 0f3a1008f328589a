//! The compute market's rows: providers and their asks, consumers' bid preferences, jobs, and the
//! market-rate snapshots. Rows come back as the rules' types where the rules read them (offers,
//! rates); the service decides, these functions only read and write.

use crate::entity::{asking_price, bid_preference, market_job, market_rate_snapshot, provider};
use crate::ledger::Credits;
use crate::ledger::market::{BudgetSource, HardwareClass, JobCode, JobStatus, Offer, Rate};
use crate::store::keyset::{self, Page, Window};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Providers and asks
// ---------------------------------------------------------------------------------------------

/// Every provider's offer for `workload` (its ask for it, else its default ask), with how many
/// jobs each runs now, in provider id order. With `lock` the providers' rows are locked
/// (`FOR UPDATE` on PostgreSQL), in that order: a match holds them until it commits. A row whose
/// hardware class is unknown offers nothing.
pub async fn offers(conn: &impl ConnectionTrait, workload: &str, lock: bool) -> Result<Vec<Offer>, DbErr> {
    let mut query = provider::Entity::find().order_by_asc(provider::Column::AccountId);
    if lock {
        query = query.lock_exclusive();
    }
    let providers = query.all(conn).await?;
    let asks: BTreeMap<i64, i64> = asking_price::Entity::find()
        .filter(asking_price::Column::Workload.eq(workload))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.provider_account_id, a.ask_micros))
        .collect();
    let running = running_per_provider(conn).await?;
    let mut offers = Vec::new();
    for p in providers {
        let Ok(hardware) = p.hardware_class.parse::<HardwareClass>() else { continue };
        let ask = asks.get(&p.account_id).copied().unwrap_or(p.default_ask_micros);
        offers.push(Offer {
            provider_id: p.account_id,
            ask: Credits::from_micros(ask),
            hardware,
            capacity: u32::try_from(p.capacity).unwrap_or(0),
            running: u32::try_from(running.get(&p.account_id).copied().unwrap_or(0)).unwrap_or(u32::MAX),
        });
    }
    Ok(offers)
}

/// How many jobs each provider runs now (providers running none are absent).
async fn running_per_provider(conn: &impl ConnectionTrait) -> Result<BTreeMap<i64, i64>, DbErr> {
    let rows: Vec<(Option<i64>, i64)> = market_job::Entity::find()
        .select_only()
        .column(market_job::Column::ProviderAccountId)
        .column_as(market_job::Column::Id.count(), "running")
        .filter(market_job::Column::Status.eq(<&str>::from(JobStatus::Running)))
        .group_by(market_job::Column::ProviderAccountId)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().filter_map(|(provider, n)| provider.map(|p| (p, n))).collect())
}

/// Registers an account as a provider, or updates its hardware, capacity and default ask.
pub async fn upsert_provider(
    conn: &impl ConnectionTrait,
    account_id: i64,
    hardware: HardwareClass,
    capacity: i32,
    default_ask: Credits,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = provider::ActiveModel {
        account_id: Set(account_id),
        hardware_class: Set(hardware.to_string()),
        capacity: Set(capacity),
        default_ask_micros: Set(default_ask.micros()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    provider::Entity::insert(row)
        .on_conflict(
            OnConflict::column(provider::Column::AccountId)
                .update_columns([
                    provider::Column::HardwareClass,
                    provider::Column::Capacity,
                    provider::Column::DefaultAskMicros,
                    provider::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Replaces a provider's per-workload asks with `asks` (workloads distinct).
pub async fn replace_asks(conn: &impl ConnectionTrait, provider_account_id: i64, asks: &[(String, Credits)]) -> Result<(), DbErr> {
    asking_price::Entity::delete_many().filter(asking_price::Column::ProviderAccountId.eq(provider_account_id)).exec(conn).await?;
    for (workload, ask) in asks {
        asking_price::ActiveModel {
            provider_account_id: Set(provider_account_id),
            workload: Set(workload.clone()),
            ask_micros: Set(ask.micros()),
            ..Default::default()
        }
        .insert(conn)
        .await?;
    }
    Ok(())
}

/// Every workload some provider asks a price for, each once.
pub async fn asked_workloads(conn: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    asking_price::Entity::find().select_only().column(asking_price::Column::Workload).distinct().into_tuple().all(conn).await
}

// ---------------------------------------------------------------------------------------------
// Bid preferences
// ---------------------------------------------------------------------------------------------

/// Saves (or replaces) a consumer's standing bid for a workload.
pub async fn upsert_bid_preference(conn: &impl ConnectionTrait, account_id: i64, workload: &str, bid: Credits) -> Result<(), DbErr> {
    let row = bid_preference::ActiveModel {
        account_id: Set(account_id),
        workload: Set(workload.to_string()),
        bid_micros: Set(bid.micros()),
        ..Default::default()
    };
    bid_preference::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([bid_preference::Column::AccountId, bid_preference::Column::Workload])
                .update_column(bid_preference::Column::BidMicros)
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A consumer's standing bid for a workload, if it saved one.
pub async fn bid_preference(conn: &impl ConnectionTrait, account_id: i64, workload: &str) -> Result<Option<Credits>, DbErr> {
    let found = bid_preference::Entity::find()
        .filter(bid_preference::Column::AccountId.eq(account_id))
        .filter(bid_preference::Column::Workload.eq(workload))
        .one(conn)
        .await?;
    Ok(found.map(|p| Credits::from_micros(p.bid_micros)))
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

/// A job as it is first written: matched and running, or rejected with its code.
pub struct NewJob<'a> {
    pub consumer_account_id: i64,
    pub provider_account_id: Option<i64>,
    pub workload: &'a str,
    pub input: &'a str,
    pub priority: i32,
    pub bid: Option<Credits>,
    pub budget: Option<Credits>,
    pub budget_source: Option<&'a str>,
    pub price: Option<Credits>,
    pub surge: bool,
    pub status: JobStatus,
    pub rejection_code: Option<JobCode>,
    pub reservation_id: Option<i64>,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// The submission's metadata as stored (canonical JSON), on each of its jobs.
    pub metadata: Option<&'a str>,
}

pub async fn insert_job(conn: &impl ConnectionTrait, new: NewJob<'_>) -> Result<market_job::Model, DbErr> {
    market_job::ActiveModel {
        consumer_account_id: Set(new.consumer_account_id),
        provider_account_id: Set(new.provider_account_id),
        workload: Set(new.workload.to_string()),
        input: Set(new.input.to_string()),
        priority: Set(new.priority),
        bid_micros: Set(new.bid.map(|b| b.micros())),
        budget_micros: Set(new.budget.map(|b| b.micros())),
        budget_source: Set(new.budget_source.map(str::to_string)),
        price_micros: Set(new.price.map(|p| p.micros())),
        surge: Set(new.surge),
        status: Set(new.status.to_string()),
        rejection_code: Set(new.rejection_code.map(|c| c.to_string())),
        reservation_id: Set(new.reservation_id),
        earnings_micros: Set(None),
        fee_micros: Set(None),
        idempotency_key: Set(new.idempotency_key),
        created_at: Set(new.created_at),
        deadline: Set(new.deadline),
        settled_at: Set(None),
        metadata: Set(new.metadata.map(str::to_string)),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// A stored job's status and code, as the rules' types.
pub fn job_state(job: &market_job::Model) -> Result<(JobStatus, Option<JobCode>), DbErr> {
    let corrupt = |what: &str| DbErr::Type(format!("market job {}: unknown {what}", job.id));
    let status = job.status.parse().map_err(|_| corrupt("status"))?;
    let code = job.rejection_code.as_deref().map(str::parse).transpose().map_err(|_| corrupt("code"))?;
    Ok((status, code))
}

/// Where a stored job's budget came from, read back from its text.
pub fn budget_source(job: &market_job::Model) -> Result<Option<BudgetSource>, DbErr> {
    let corrupt = || DbErr::Type(format!("market job {}: unknown budget source", job.id));
    job.budget_source.as_deref().map(str::parse).transpose().map_err(|_| corrupt())
}

pub async fn job(conn: &impl ConnectionTrait, id: i64) -> Result<Option<market_job::Model>, DbErr> {
    market_job::Entity::find_by_id(id).one(conn).await
}

/// How a job ended: its status and code, the provider's earnings and the platform's fee (a
/// completed job), and when.
pub struct JobEnd {
    pub status: JobStatus,
    pub rejection_code: Option<JobCode>,
    pub earnings: Option<Credits>,
    pub fee: Option<Credits>,
    pub settled_at: DateTime<Utc>,
}

/// Writes how a job ended (the job must exist), and returns it as it now stands.
pub async fn end_job(conn: &impl ConnectionTrait, job: market_job::Model, end: &JobEnd) -> Result<market_job::Model, DbErr> {
    let id = job.id;
    let result = market_job::Entity::update_many()
        .col_expr(market_job::Column::Status, Expr::value(<&str>::from(end.status)))
        .col_expr(market_job::Column::RejectionCode, Expr::value(end.rejection_code.map(<&str>::from)))
        .col_expr(market_job::Column::EarningsMicros, Expr::value(end.earnings.map(|e| e.micros())))
        .col_expr(market_job::Column::FeeMicros, Expr::value(end.fee.map(|f| f.micros())))
        .col_expr(market_job::Column::SettledAt, Expr::value(end.settled_at))
        .filter(market_job::Column::Id.eq(id))
        .exec(conn)
        .await?;
    if result.rows_affected != 1 {
        return Err(DbErr::RecordNotUpdated);
    }
    Ok(market_job::Model {
        status: end.status.to_string(),
        rejection_code: end.rejection_code.map(|c| c.to_string()),
        earnings_micros: end.earnings.map(|e| e.micros()),
        fee_micros: end.fee.map(|f| f.micros()),
        settled_at: Some(end.settled_at),
        ..job
    })
}

/// The running job that the reservation held the price of, if any, ends as `end` says.
pub async fn end_running_job_of_hold(conn: &impl ConnectionTrait, reservation_id: i64, end: &JobEnd) -> Result<(), DbErr> {
    market_job::Entity::update_many()
        .col_expr(market_job::Column::Status, Expr::value(<&str>::from(end.status)))
        .col_expr(market_job::Column::RejectionCode, Expr::value(end.rejection_code.map(<&str>::from)))
        .col_expr(market_job::Column::SettledAt, Expr::value(end.settled_at))
        .filter(market_job::Column::ReservationId.eq(reservation_id))
        .filter(market_job::Column::Status.eq(<&str>::from(JobStatus::Running)))
        .exec(conn)
        .await?;
    Ok(())
}

fn jobs_of(consumer_account_id: i64) -> sea_orm::Select<market_job::Entity> {
    market_job::Entity::find().filter(market_job::Column::ConsumerAccountId.eq(consumer_account_id))
}

/// A page of a consumer's jobs, newest first (`market_jobs_consumer`).
pub async fn jobs_page(conn: &impl ConnectionTrait, consumer_account_id: i64, window: &Window) -> Result<Page<market_job::Model>, DbErr> {
    keyset::newest_first(conn, jobs_of(consumer_account_id), market_job::Column::Id, window).await
}

/// How many jobs the consumer submitted in all.
pub async fn jobs_count(conn: &impl ConnectionTrait, consumer_account_id: i64) -> Result<u64, DbErr> {
    keyset::count(conn, jobs_of(consumer_account_id)).await
}

// ---------------------------------------------------------------------------------------------
// Rate snapshots
// ---------------------------------------------------------------------------------------------

/// A workload's latest `limit` rate snapshots, newest first.
pub async fn rate_snapshots(conn: &impl ConnectionTrait, workload: &str, limit: u64) -> Result<Vec<(DateTime<Utc>, Rate)>, DbErr> {
    let rows = market_rate_snapshot::Entity::find()
        .filter(market_rate_snapshot::Column::Workload.eq(workload))
        .order_by_desc(market_rate_snapshot::Column::At)
        .limit(limit)
        .all(conn)
        .await?;
    Ok(rows
        .iter()
        .map(|s| {
            let rate = Rate {
                average: Credits::from_micros(s.average_micros),
                min: Credits::from_micros(s.min_micros),
                max: Credits::from_micros(s.max_micros),
                providers: u32::try_from(s.providers).unwrap_or(0),
            };
            (s.at, rate)
        })
        .collect())
}

/// Writes a workload's rate at `at`, unless that mark has one already; how many rows it wrote
/// (0 or 1).
pub async fn insert_rate_snapshot(conn: &impl ConnectionTrait, workload: &str, at: DateTime<Utc>, rate: &Rate) -> Result<u64, DbErr> {
    let row = market_rate_snapshot::ActiveModel {
        workload: Set(workload.to_string()),
        at: Set(at),
        average_micros: Set(rate.average.micros()),
        min_micros: Set(rate.min.micros()),
        max_micros: Set(rate.max.micros()),
        providers: Set(i32::try_from(rate.providers).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    market_rate_snapshot::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([market_rate_snapshot::Column::Workload, market_rate_snapshot::Column::At]).do_nothing().to_owned(),
        )
        .exec_without_returning(conn)
        .await
}
