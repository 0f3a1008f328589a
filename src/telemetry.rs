//! Metrics in the Prometheus text format (issue 24): the `metrics` facade is called where things
//! happen (`graphql::telemetry` for requests, the job runner, webhook delivery, the WebSocket
//! session), one recorder per process renders them, and `scrape` adds what is read at scrape time
//! (the outbox backlog, the database pool). Names and help texts are declared once, in
//! `describe`; docs/operations.md lists them with what healthy looks like and alert rules.
//!
//! Label values are always from closed sets (a schema field, an error code, a job name), never
//! from what a client chooses (an operation name, an id), so no client can grow the series.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const GRAPHQL_REQUESTS: &str = "credits_graphql_requests_total";
pub const GRAPHQL_DURATION: &str = "credits_graphql_request_duration_seconds";
pub const JOB_RUNS: &str = "credits_job_runs_total";
pub const JOB_DURATION: &str = "credits_job_run_duration_seconds";
pub const JOB_ITEMS: &str = "credits_job_items_total";
pub const JOB_LAST_SUCCESS: &str = "credits_job_last_success_timestamp_seconds";
pub const WEBHOOK_ATTEMPTS: &str = "credits_webhook_attempts_total";
pub const OUTBOX_BACKLOG: &str = "credits_outbox_backlog";
pub const OUTBOX_OLDEST_AGE: &str = "credits_outbox_oldest_undelivered_age_seconds";
pub const OUTBOX_FAILING: &str = "credits_outbox_failing";
pub const WEBSOCKETS_OPEN: &str = "credits_websockets_open";
pub const WEBSOCKET_OPERATIONS_OPEN: &str = "credits_websocket_operations_open";
pub const DB_POOL_CONNECTIONS: &str = "credits_db_pool_connections";
pub const DB_POOL_MAX: &str = "credits_db_pool_max_connections";
pub const SCRAPE_ERRORS: &str = "credits_scrape_errors_total";
pub const SPEND_BATCH_SIZE: &str = "credits_spend_batch_size";
pub const SPEND_BATCH_FALLBACKS: &str = "credits_spend_batch_fallbacks_total";
pub const SPEND_BATCH_SKIPPED: &str = "credits_spend_batch_skipped_total";
pub const SPENDS_WAITING: &str = "credits_spends_waiting";
pub const SPEND_LANES: &str = "credits_spend_lanes";
pub const TRANSACTION_RETRIES: &str = "credits_transaction_retries_total";
pub const TRANSACTION_CONFLICTS: &str = "credits_transaction_conflicts_total";
pub const TRANSACTION_WAIT: &str = "credits_transaction_wait_seconds";
pub const CREDITS_MOVED: &str = "credits_moved_micros_total";

/// Latency buckets, in seconds: a spend takes milliseconds, a month-end job minutes.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Spends committed together: 1 alone, up to the batch bound under load.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
const JOB_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use: every `Application` of the process shares it
/// (tests run many in one process; each sees counters only grow).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(GRAPHQL_DURATION.into()), &LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), &JOB_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(SPEND_BATCH_SIZE.into()), &BATCH_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(TRANSACTION_WAIT.into()), &LATENCY_BUCKETS))
            .expect("the buckets are valid");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (a test harness's); ours still renders
        // what reaches it through `handle`, and the error says nothing more.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed already: /metrics shows only scrape-time values");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        GRAPHQL_REQUESTS,
        "GraphQL root fields resolved, by field and outcome code (OK or the error's code); field=\"(request)\" for requests refused before any field ran (parse, validation, limits)."
    );
    describe_histogram!(GRAPHQL_DURATION, Unit::Seconds, "Time to resolve a GraphQL root field, by field.");
    describe_counter!(JOB_RUNS, "Scheduled job ticks run by this process, by job and outcome (ok, failed).");
    describe_histogram!(JOB_DURATION, Unit::Seconds, "Time a job tick took, by job.");
    describe_counter!(JOB_ITEMS, "Items (lots, accounts, events, ...) handled by job ticks, by job.");
    describe_gauge!(JOB_LAST_SUCCESS, Unit::Seconds, "Unix time of the job's last successful tick in this process, by job.");
    describe_counter!(WEBHOOK_ATTEMPTS, "Webhook delivery attempts, by outcome (delivered, failed).");
    describe_gauge!(OUTBOX_BACKLOG, "Outbox events not delivered yet (read at scrape time).");
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest outbox event not delivered yet; 0 when none (read at scrape time)."
    );
    describe_gauge!(OUTBOX_FAILING, "Undelivered outbox events with at least one failed attempt (read at scrape time).");
    describe_gauge!(WEBSOCKETS_OPEN, "WebSocket connections open on this process.");
    describe_gauge!(
        WEBSOCKET_OPERATIONS_OPEN,
        "Operations (subscriptions, and queries or mutations still running) open over WebSockets on this process."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database connections of this process (its pool's and, on a SQLite file, its write connection), by state (in_use, idle), at scrape time."
    );
    describe_gauge!(
        DB_POOL_MAX,
        "The most database connections this process opens (its pool's size and, on a SQLite file, its write connection)."
    );
    describe_histogram!(SPEND_BATCH_SIZE, "Spends committed together in one transaction (group commit).");
    describe_counter!(SPEND_BATCH_FALLBACKS, "Batches of spends that failed as a whole and were run one by one.");
    describe_counter!(
        SPEND_BATCH_SKIPPED,
        "Spends left out of their batch because another transaction held their account (or it does not exist), then run in a batch of their own."
    );
    describe_gauge!(SPENDS_WAITING, "Spends queued for a batch and not taken yet, at scrape time.");
    describe_gauge!(SPEND_LANES, "Lanes of spend batches this process keeps in flight (spend_lanes).");
    describe_counter!(
        TRANSACTION_RETRIES,
        "Write transactions retried after a transient conflict (SQLite BUSY, serialization failures, deadlocks, unique-key races)."
    );
    describe_histogram!(
        TRANSACTION_WAIT,
        Unit::Seconds,
        "Time a write transaction waited before its work began, by stage: turn (SQLite: this process's queue for the file's write lock) and begin (a pool connection, then BEGIN)."
    );
    describe_counter!(
        CREDITS_MOVED,
        "Credits moved by committed postings, in micros (1 credit = 1,000,000), by entry kind (grant, spend, expire, refund, revoke, hold, release, ...), lot class and lot source."
    );
    describe_counter!(TRANSACTION_CONFLICTS, "Write transactions that kept conflicting and were answered BUSY.");
    describe_counter!(SCRAPE_ERRORS, "Scrape-time reads that failed (the database did not answer); their gauges keep the last value.");
}

/// The text a scrape answers: scrape-time values refreshed from `db`, then everything rendered.
pub async fn scrape(ledger: &crate::service::Engine) -> String {
    let handle = handle();
    let db = &ledger.db;
    metrics::gauge!(SPENDS_WAITING).set(ledger.spends.waiting() as f64);
    metrics::gauge!(SPEND_LANES).set(ledger.spends.lanes() as f64);
    if let Err(e) = refresh_outbox(db).await {
        metrics::counter!(SCRAPE_ERRORS).increment(1);
        tracing::warn!(error = %e, "metrics: could not read the outbox");
    }
    refresh_pool(ledger);
    handle.render()
}

async fn refresh_outbox(db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let now = chrono::Utc::now();
    let summary = crate::store::outbox::backlog(db).await?;
    metrics::gauge!(OUTBOX_BACKLOG).set(summary.undelivered as f64);
    metrics::gauge!(OUTBOX_FAILING).set(summary.failing as f64);
    let age = summary.oldest.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1000.0);
    metrics::gauge!(OUTBOX_OLDEST_AGE).set(age);
    Ok(())
}

fn refresh_pool(ledger: &crate::service::Engine) {
    let pools = pool_counts(ledger);
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(pools.in_use));
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(pools.idle));
    metrics::gauge!(DB_POOL_MAX).set(f64::from(pools.max));
}

/// A process's database connections at one instant, as the pool gauges show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCounts {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// The pool's connections and, on a SQLite file, the write connection's too (`db::writer`: a
/// pool of its own), so the gauges count every connection the process holds.
pub fn pool_counts(ledger: &crate::service::Engine) -> PoolCounts {
    let mut counts = one_pool(&ledger.db);
    if !crate::db::same_pool(&ledger.db, &ledger.writer) {
        let writer = one_pool(&ledger.writer);
        counts = PoolCounts { in_use: counts.in_use + writer.in_use, idle: counts.idle + writer.idle, max: counts.max + writer.max };
    }
    counts
}

fn one_pool(db: &sea_orm::DatabaseConnection) -> PoolCounts {
    let (size, idle, max) = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
    PoolCounts { in_use: size - idle, idle, max }
}
