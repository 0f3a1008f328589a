//! Ledger benchmark: prints figures, asserts nothing. Run with `cargo bench --bench ledger`
//! (PostgreSQL from `CREDITS_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`;
//! `-- --sqlite-only` skips it). Figures are measured side by side in one run: compare ratios,
//! not absolute numbers, on a shared machine.
//!
//! - spends per second on one hot account (the account lock serializes them), 1 and 8 clients;
//! - spends per second over 8 accounts with 8 clients (no shared lock);
//! - balance reads per second on an account with a short and with a long history: reads must not
//!   slow down as history grows (they read the open lots, never the journal);
//! - the same with many small open lots: a read is linear in the lots that still hold credits;
//! - the monthly plan-credit sweep (arkain) in accounts per second, over `--accounts N` accounts
//!   (default 20,000; the workers issue asks for `--accounts 100000`, which takes minutes).

use chrono::Utc;
use credits::ledger::{Credits, LotClass, LotSource};
use credits::program::Program;
use credits::service::Engine;
use credits::service::spending::{GrantRequest, SpendRequest};
use sea_orm::ConnectionTrait;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPENDS_PER_CLIENT: usize = 150;
const LONG_HISTORY: usize = 3_000;
const READS: usize = 500;
const OPEN_LOTS: usize = 300;

#[tokio::main]
async fn main() {
    let sqlite_only = std::env::args().any(|a| a == "--sqlite-only");
    let args: Vec<String> = std::env::args().collect();
    let accounts = args.iter().position(|a| a == "--accounts").and_then(|i| args.get(i + 1)).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    run("sqlite", &sqlite_url, accounts).await;
    if !sqlite_only {
        let admin_url = std::env::var("CREDITS_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("credits_bench_{}", std::process::id());
        let admin = credits::db::connect(&admin_url, 1).await.expect("PostgreSQL is reachable");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create the bench database");
        let mut url = url::Url::parse(&admin_url).expect("a URL");
        url.set_path(&name);
        run("postgres", url.as_str(), accounts).await;
        let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }
}

async fn run(backend: &str, url: &str, sweep_accounts: usize) {
    let db = credits::db::connect(url, 16).await.expect("connect");
    credits::db::migrate(&db).await.expect("migrate");
    let ledger = Arc::new(Engine::new(db, Arc::new(Program::load("arkain").unwrap())));
    for i in 0..8 {
        ledger.create_account(&format!("acct-{i}"), None, Utc::now()).await.unwrap();
        grant(&ledger, &format!("acct-{i}"), "10000000").await;
    }

    let hot_1 = spends(&ledger, 1, |_| "acct-0".to_string()).await;
    let hot_8 = spends(&ledger, 8, |_| "acct-0".to_string()).await;
    let spread_8 = spends(&ledger, 8, |client| format!("acct-{client}")).await;
    println!("{backend:>8}  spends/s, one hot account, 1 client : {hot_1:>8.0}");
    println!("{backend:>8}  spends/s, one hot account, 8 clients: {hot_8:>8.0}");
    println!("{backend:>8}  spends/s, 8 accounts,      8 clients: {spread_8:>8.0}");

    // acct-6 keeps a short history; acct-7 gets a long one over the same single open lot.
    for i in 0..LONG_HISTORY {
        spend(&ledger, "acct-7", &format!("history-{i}")).await;
    }
    let short = reads(&ledger, "acct-6").await;
    let long = reads(&ledger, "acct-7").await;
    println!("{backend:>8}  balance reads/s, short history      : {short:>8.0}");
    println!("{backend:>8}  balance reads/s, {LONG_HISTORY} more entries   : {long:>8.0}  (ratio {:.2})", long / short);
    for _ in 0..OPEN_LOTS {
        grant(&ledger, "acct-5", "1").await;
    }
    let many_lots = reads(&ledger, "acct-5").await;
    println!("{backend:>8}  balance reads/s, {OPEN_LOTS} open lots        : {many_lots:>8.0}  (ratio {:.2})", many_lots / short);
    sweep(backend, url, sweep_accounts).await;
}

async fn grant(ledger: &Engine, account: &str, amount: &str) {
    let request = GrantRequest {
        account: account.into(),
        amount: Credits::parse_str(amount).unwrap(),
        class: LotClass::Paid,
        source: LotSource::Adjustment,
        expires_at: None,
        valid_for: None,
        priority: None,
        effective_at: None,
        features: None,
        reason: None,
        idempotency_key: format!("grant-{}", rand::random::<u64>()),
        actor: None,
        metadata: None,
    };
    ledger.grant(request, Utc::now()).await.expect("grant");
}

async fn spend(ledger: &Engine, account: &str, key: &str) {
    let request = SpendRequest {
        account: account.into(),
        amount: Some(Credits::from_micros(10_000)),
        price: None,
        idempotency_key: key.into(),
        feature: "bench".into(),
        model: None,
        reason: None,
        metadata: None,
    };
    ledger.spend(request, Utc::now()).await.expect("spend");
}

/// Spends per second with `clients` concurrent tasks, each on the account `pick(client)` names.
async fn spends(ledger: &Arc<Engine>, clients: usize, pick: impl Fn(usize) -> String) -> f64 {
    let run = rand::random::<u32>();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (ledger, account) = (ledger.clone(), pick(client));
            tokio::spawn(async move {
                for i in 0..SPENDS_PER_CLIENT {
                    spend(&ledger, &account, &format!("bench-{run}-{client}-{i}")).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    per_second(clients * SPENDS_PER_CLIENT, started.elapsed())
}

async fn reads(ledger: &Engine, account: &str) -> f64 {
    let account = ledger.account(account).await.unwrap();
    let started = Instant::now();
    for _ in 0..READS {
        std::hint::black_box(ledger.balance(&account, Utc::now()).await.unwrap());
    }
    per_second(READS, started.elapsed())
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// The monthly plan-credit sweep over `count` accounts created in bulk in January: the time to
/// grant February's credits to all of them, in the job's batches.
async fn sweep(backend: &str, url: &str, count: usize) {
    let db = credits::db::connect(url, 16).await.expect("connect");
    let ledger = Engine::new(db.clone(), Arc::new(Program::load("arkain").unwrap()));
    let january = "2026-01-15T00:00:00Z";
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<String> =
            chunk.iter().map(|i| format!("('sweep-{i}', 'free', 'active', false, true, 0, '{january}', '{january}')")).collect();
        let sql = format!(
            "INSERT INTO accounts (external_id, plan, status, identity_verified, credit_mail_enabled, balance_micros, created_at, plan_since) VALUES {}",
            rows.join(",")
        );
        db.execute_unprepared(&sql).await.expect("bulk accounts");
    }
    let february = "2026-02-01T00:00:00Z".parse().unwrap();
    let started = Instant::now();
    let report = ledger.run_job(credits::service::jobs::Job::GrantMonthlyPlanCredits, february).await.expect("the sweep");
    let rate = per_second(report.items as usize, started.elapsed());
    println!("{backend:>8}  monthly grant sweep, {} accounts      : {rate:>8.0} accounts/s", report.items);
}
