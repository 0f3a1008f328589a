//! A fleet of the real binary on one PostgreSQL database (issue 28, "A fleet test"): three
//! `credits serve --no-workers` and two `credits worker` processes, on a shared test clock, under
//! a mixed load (spends, holds, claims, reads, `balanceChanged` subscriptions) while the clock is
//! moved across midnights and month ends, so that the daily and monthly jobs, the expiries and
//! webhook delivery run in several processes at once.
//!
//! What it proves, afterwards, from the database, the answers the clients kept and the webhook
//! receiver's own record (not from the service's word about itself):
//!
//! - each scheduled period was done exactly once: one `job_runs` row per (job, period), `done`,
//!   for every day and month the clock crossed, and each period's effect once (one plan grant per
//!   account and month, no lot written off twice, at most one check-in per account and day);
//! - every acknowledged operation is in the journal as answered, and nothing else is: a spend
//!   answered once is one journal entry under its key, a replay of every key to another server
//!   answers the same, and each account's balance is what the acknowledged operations and the
//!   journal's own write-offs add up to;
//! - no webhook event was sent by two processes at once (the receiver times every request), each
//!   was acknowledged exactly once, and every outbox row was delivered;
//! - every subscriber's last pushed balance is the account's balance;
//! - `credits audit`, a child process, exits 0.
//!
//! Every process runs on the test clock (`CREDITS_CLOCK=test`, see `tests/test_clock.rs`). The
//! workers tick on wall time: their continuous jobs (expiries, webhook delivery every 5 s) run
//! at the clock's instant whenever they tick, while the daily and monthly sweeps run in the
//! processes that advance the clock (two servers at once, each step) and in a `credits jobs
//! --run` process started beside them at each month end. That is where the races are.
//!
//! The database is a private PostgreSQL server (`support::private_pg`) with room for the fleet's
//! pools (3 x 16 + 2 x 8 connections, and more): the machine's shared server allows 100, and other
//! tests use it too. The test is PostgreSQL-only: several processes on one database is the
//! PostgreSQL deployment.
//!
//! CI runs a short variant (25 s of load, about a minute in all). The long one is `#[ignore]`d:
//! `CREDITS_FLEET_SECONDS=300 cargo test --test main -- fleet:: --ignored --nocapture`. Both
//! print their figures on one line. The last test here is the smallest reproduction of what the
//! fleet found: an event sent twice, at once, by two processes on one test clock (the delivery
//! lease was on the ledger's clock; it is on wall time since migration 000032).

use crate::support::SECRET;
use crate::support::private_pg::PrivatePostgres;
use crate::support::serve::{ServeProcess, WorkerProcess, credits_command};
use crate::support::ws;
use chrono::{DateTime, Utc};
use credits::auth::{AuthKeys, Role};
use futures::StreamExt;
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A preset with both kinds of periodic work: monthly plan credits that end with the month
/// (Free 50, Membership 1,000) and a daily check-in.
const PROGRAM: &str = "arkain";
/// Two minutes before a UTC midnight that is also a month's end.
const CLOCK_START: &str = "2027-01-31T23:58:00Z";
/// The clock's fixed steps: just before the month end (the expiring-credits notices of
/// January's plan credits go out), the month end itself, noon (the holds from before have
/// lapsed), 26 midnights in one step (February's notices), the next month end, its noon.
const FIXED_STEPS: [&str; 6] = [
    "2027-01-31T23:59:30Z",
    "2027-02-01T00:00:00Z",
    "2027-02-01T12:00:00Z",
    "2027-02-27T00:00:00Z",
    "2027-03-01T00:00:00Z",
    "2027-03-01T12:00:00Z",
];
/// The first day and month the periodic jobs run for: the clock's start.
const FIRST_DAY: &str = "2027-01-31";
const FIRST_MONTH: &str = "2027-01";
/// The jobs keyed by period in `job_runs`, by cadence.
const DAILY_JOBS: [&str; 2] = ["ResetDailyCredits", "RenewSubscriptions"];
const MONTHLY_JOBS: [&str; 2] = ["GrantMonthlyPlanCredits", "SettleMonthlyUsage"];
/// Every process signs webhooks with this (32 bytes at least).
const WEBHOOK_SECRET: &str = "fleet-webhook-secret-0123456789abcdef";
/// The receiver takes this long to answer: a slow receiver is what would let two senders'
/// requests for one event overlap, if the leases allowed it.
const RECEIVER_DELAY: Duration = Duration::from_millis(20);
/// While failing on purpose, the receiver answers every this many-th request with a 500, so that
/// retries run too (due again once the clock moves past their backoff).
const FAIL_EVERY: u64 = 7;
/// How long the test waits for the fleet to settle after the load: webhooks delivered, holds
/// expired, subscribers caught up.
const SETTLE: Duration = Duration::from_secs(90);
/// A request that takes longer than this has hung: a failure, counted as no answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often one request is sent before the test gives up on getting an answer.
const ATTEMPTS: u32 = 10;
/// Of all requests, at most this share may be answered UNAVAILABLE (busy): rare, not a mode.
const MAX_UNAVAILABLE_SHARE: f64 = 0.01;

/// How big a run is.
struct Shape {
    name: &'static str,
    accounts: usize,
    /// Concurrent clients.
    tasks: usize,
    load: Duration,
    /// Time between two clock steps.
    step_every: Duration,
    /// Steps of one day each (to noon) after the fixed ones.
    extra_days: usize,
}

impl Shape {
    /// The clock's targets, in order.
    fn steps(&self) -> Vec<DateTime<Utc>> {
        let mut steps: Vec<DateTime<Utc>> = FIXED_STEPS.iter().map(|s| s.parse().unwrap()).collect();
        for _ in 0..self.extra_days {
            let last = *steps.last().unwrap();
            steps.push(last + chrono::Duration::days(1));
        }
        steps
    }
}

/// CI: 40 accounts, 25 s of load, the six fixed steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_three_servers_and_two_workers_does_every_periods_work_once() {
    let load = Duration::from_secs(25);
    run_fleet(Shape {
        name: "fleet (CI)",
        accounts: 40,
        tasks: 12,
        load,
        step_every: load / (FIXED_STEPS.len() as u32 + 1),
        extra_days: 0,
    })
    .await;
}

/// The long run: `CREDITS_FLEET_SECONDS` of load (300 by default), 200 accounts, a clock step
/// every 3 s (after the fixed ones, a day each: several more month ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes: CREDITS_FLEET_SECONDS=300 cargo test --test main -- fleet:: --ignored --nocapture"]
async fn a_fleet_under_long_load() {
    let seconds: u64 = std::env::var("CREDITS_FLEET_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let step_every = Duration::from_secs(3);
    let steps = (seconds / step_every.as_secs()) as usize;
    run_fleet(Shape {
        name: "fleet (long)",
        accounts: 200,
        tasks: 16,
        load: Duration::from_secs(seconds),
        step_every,
        extra_days: steps.saturating_sub(FIXED_STEPS.len() + 1),
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The processes.

/// The environment every process of the fleet shares: one database, one secret, one program,
/// one test clock, one webhook receiver and secret. The receiver's path ends with the process's
/// `name`, only so that the receiver can say which process sent what.
fn fleet_env(command: &mut Command, database_url: &str, webhook_url: &str, name: &str) {
    command
        .env_remove("CREDITS_CONFIG")
        .env("DATABASE_URL", database_url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("CREDITS_PROGRAM", PROGRAM)
        .env("CREDITS_CLOCK", "test")
        .env("CREDITS_CLOCK_START", CLOCK_START)
        .env("CREDITS_WEBHOOK_URL", format!("{webhook_url}/{name}"))
        .env("CREDITS_WEBHOOK_SECRET", WEBHOOK_SECRET)
        // Five processes on one machine: a metrics port each would collide on the default.
        .env("CREDITS_METRICS_BIND", "off")
        // Every client of this test is 127.0.0.1: the per-address claim limit would count them
        // as one abuser. The per-account limit stays as configured (and is shared by the fleet).
        .env("CREDITS_CLAIMS_PER_MINUTE_PER_IP", "1000000")
        // The clock moves months: keys, delivered events and period markers must outlive the run,
        // so that every key can be replayed and every event and period counted afterwards.
        .env("CREDITS_IDEMPOTENCY_DAYS", "3650")
        .env("CREDITS_RETAIN_DELIVERED_EVENTS_DAYS", "3650")
        .env("CREDITS_RETAIN_JOB_MARKERS_DAYS", "3650")
        .env("RUST_LOG", "info,sqlx=warn,tower_http=warn")
        .env("NO_COLOR", "1");
}

/// Whether process `pid` runs: it exists and is not a zombie (Linux's `/proc/<pid>/stat`).
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command's name, which is in parentheses.
    let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
    matches!(state, Some(state) if state != "Z" && state != "X")
}

/// What a log says where it first panicked: the 20 lines before the panic's message and the
/// 30 after it (the start of its backtrace), which a log's tail, all backtrace, leaves out.
fn around_panic(log: &str) -> String {
    let all: Vec<&str> = log.lines().collect();
    let at = all.iter().position(|line| line.contains("panicked")).unwrap_or(0);
    all[at.saturating_sub(20)..(at + 30).min(all.len())].join("\n")
}

/// The last `lines` lines of a log, for a failure's message.
fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

struct Fleet {
    servers: Vec<ServeProcess>,
    workers: Vec<WorkerProcess>,
    database_url: String,
    webhook_url: String,
    dir: tempfile::TempDir,
}

impl Fleet {
    async fn start(database_url: &str, webhook_url: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let serve = |name: String| {
            let mut command = credits_command();
            fleet_env(&mut command, database_url, webhook_url, &name);
            let path = dir.path().to_path_buf();
            async move { ServeProcess::start(command, &["--no-workers"], &path, &name).await }
        };
        // The first one alone: it migrates the fresh database and sets the clock's start; the
        // others then race only on finding that done.
        let mut servers = vec![serve("serve-0".into()).await];
        let (one, two) = tokio::join!(serve("serve-1".into()), serve("serve-2".into()));
        servers.extend([one, two]);
        let workers: Vec<WorkerProcess> = (0..2)
            .map(|n| {
                let name = format!("worker-{n}");
                let mut command = credits_command();
                fleet_env(&mut command, database_url, webhook_url, &name);
                WorkerProcess::start(command, dir.path(), &name)
            })
            .collect();
        let fleet = Fleet { servers, workers, database_url: database_url.to_string(), webhook_url: webhook_url.to_string(), dir };
        // The load starts once both workers tick: webhook delivery and the expiries are theirs.
        let started = Instant::now();
        while !fleet.workers.iter().all(|w| w.log().contains("workers started")) {
            assert!(started.elapsed() < Duration::from_secs(60), "the workers did not start:\n{}", fleet.logs());
            fleet.assert_alive();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        fleet
    }

    fn addresses(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.address.clone()).collect()
    }

    /// The end of every process's log, for a failure's message.
    /// Each process's errors (the first 20: an internal error's cause is logged once, and may be
    /// long before the end) and the end of its log.
    fn logs(&self) -> String {
        let logs = self.servers.iter().enumerate().map(|(n, server)| (format!("serve-{n}"), server.log()));
        let logs = logs.chain(self.workers.iter().enumerate().map(|(n, worker)| (format!("worker-{n}"), worker.log())));
        let mut all = String::new();
        for (name, log) in logs {
            let errors: Vec<&str> = log.lines().filter(|line| line.contains(" ERROR ")).take(20).collect();
            all.push_str(&format!("--- {name}: errors ---\n{}\n--- {name}: end ---\n{}\n", errors.join("\n"), tail(&log, 40)));
        }
        all
    }

    /// Every process still runs; none of them panicked on the way.
    fn assert_alive(&self) {
        for (n, server) in self.servers.iter().enumerate() {
            let log = server.log();
            assert!(!log.contains("panicked"), "serve-{n} panicked:\n{}", around_panic(&log));
        }
        for (n, worker) in self.workers.iter().enumerate() {
            let log = worker.log();
            assert!(!log.contains("panicked"), "worker-{n} panicked:\n{}", around_panic(&log));
        }
        // `ServeProcess::assert_alive` takes `&mut`, and a process that exited stays a zombie
        // until reaped: its state says so.
        for (n, server) in self.servers.iter().enumerate() {
            assert!(running(server.child.id()), "serve-{n} exited:\n{}", tail(&server.log(), 80));
        }
        for (n, worker) in self.workers.iter().enumerate() {
            assert!(running(worker.child.id()), "worker-{n} exited:\n{}", tail(&worker.log(), 80));
        }
    }

    /// A one-off `credits <args>` on the fleet's database, to its end: (success, stdout + stderr).
    fn one_off(&self, args: &[&str]) -> (bool, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_credits"));
        fleet_env(&mut command, &self.database_url, &self.webhook_url, args[0]);
        let out = command.args(args).current_dir(self.dir.path()).output().expect("the credits binary runs");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver: records each request with its start and end, answers after a delay.

#[derive(Debug, Clone)]
struct Delivery {
    event_id: String,
    /// The process that sent it (the last part of its webhook URL).
    sender: String,
    started: Instant,
    ended: Instant,
    status: u16,
    signed: bool,
}

#[derive(Clone, Default)]
struct Hooks {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Requests arrived so far (answered or not).
    requests: Arc<AtomicU64>,
    /// How long each answer takes.
    delay: Duration,
    failing: Arc<AtomicBool>,
}

async fn receive(
    axum::extract::State(hooks): axum::extract::State<Hooks>,
    axum::extract::Path(sender): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let started = Instant::now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let signed = credits::service::webhooks::verify_signature(
        WEBHOOK_SECRET.as_bytes(),
        &header("credits-signature"),
        &body,
        Utc::now(),
        chrono::Duration::minutes(5),
    );
    let n = hooks.requests.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(hooks.delay).await;
    let fail = hooks.failing.load(Ordering::SeqCst) && n % FAIL_EVERY == 0;
    let status = if fail { 500 } else { 200 };
    hooks.deliveries.lock().unwrap().push(Delivery {
        event_id: header("credits-event-id"),
        sender,
        started,
        ended: Instant::now(),
        status,
        signed,
    });
    axum::http::StatusCode::from_u16(status).unwrap()
}

impl Hooks {
    /// Answers after `delay`; while `failing`, every `FAIL_EVERY`-th request with a 500.
    async fn start(delay: Duration, failing: bool) -> (Hooks, String, tokio::task::JoinHandle<()>) {
        let hooks = Hooks { delay, ..Hooks::default() };
        hooks.failing.store(failing, Ordering::SeqCst);
        let app = axum::Router::new().route("/hooks/{sender}", axum::routing::post(receive)).with_state(hooks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.expect("the receiver runs") });
        (hooks, url, server)
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The clients.

fn token(role: Role) -> String {
    let subject = (role == Role::Admin).then_some("ops@fleet");
    AuthKeys::new(SECRET).issue(role, subject, Duration::from_secs(24 * 3600)).unwrap()
}

/// What the clients share: the servers' addresses and the tokens.
struct Clients {
    addresses: Vec<String>,
    http: reqwest::Client,
    service: String,
    admin: String,
}

/// One request's answer, after as many attempts as it took.
struct Answer {
    response: Value,
    /// The server that answered.
    server: usize,
    /// Attempts answered UNAVAILABLE, and attempts with no answer (their errors), before it.
    unavailable: u64,
    no_answer: Vec<String>,
}

impl Clients {
    async fn post(&self, server: usize, token: &str, query: &str, variables: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!("{}/graphql", self.addresses[server]))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(|e| format!("server {server}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("server {server}: {status}, not JSON: {e}"))?;
        if status != 200 {
            return Err(format!("server {server}: HTTP {status}: {body}"));
        }
        Ok(body)
    }

    /// Sends until answered, as a client with an idempotency key does: after no answer or a
    /// busy answer (UNAVAILABLE), the same request again, to the next server.
    async fn call(&self, server: usize, token: &str, query: &str, variables: &Value) -> Answer {
        let mut answer = Answer { response: Value::Null, server: server % self.addresses.len(), unavailable: 0, no_answer: Vec::new() };
        for _ in 0..ATTEMPTS {
            match self.post(answer.server, token, query, variables).await {
                Ok(response) if code(&response) == Some("UNAVAILABLE") => answer.unavailable += 1,
                Ok(response) => {
                    answer.response = response;
                    return answer;
                }
                Err(e) => answer.no_answer.push(e),
            }
            answer.server = (answer.server + 1) % self.addresses.len();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no answer after {ATTEMPTS} attempts: {query} {variables}: {:?}", answer.no_answer);
    }
}

fn code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// A small deterministic generator: each task's choices are reproducible from its number.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
  spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"chat\"}) {
    sequence amount availableAfter effectiveAt takes { lotId amount } } }";
const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
  reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", holdSeconds: 3600}) {
    reservationId sequence amount availableAfter deadline takes { lotId amount } } }";
const CAPTURE: &str = "mutation($r: ID!, $amt: CreditAmount!, $k: String!) {
  captureReservation(input: {reservationId: $r, amount: $amt, idempotencyKey: $k}) {
    reservationId status captured released expired settledAt } }";
const RELEASE: &str = "mutation($r: ID!, $k: String!) {
  releaseReservation(input: {reservationId: $r, idempotencyKey: $k}) {
    reservationId status captured released expired settledAt } }";
const CHECK_IN: &str = "mutation($a: ID!, $k: String!) {
  checkIn(input: {accountId: $a, idempotencyKey: $k}) { day amount lotId sequence expiresAt } }";
const GRANT: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
  grantCredits(input: {accountId: $a, amount: $amt, class: PAID, idempotencyKey: $k}) { lotId sequence } }";
const BALANCE: &str = "query($a: ID!) { account(id: $a) { balance { total available held } } }";
const HISTORY: &str = "query($a: ID!) { account(id: $a) { history(first: 20) { nodes { operation amount effectiveAt } } } }";
const ADVANCE: &str = "mutation($to: DateTime) { advanceClock(to: $to) { from now stops ran { job periods items } } }";

/// An operation the service acknowledged: the request, as sent, and its answer's data.
#[derive(Debug, Clone)]
struct Acked {
    kind: &'static str,
    account: String,
    key: String,
    admin: bool,
    query: &'static str,
    variables: Value,
    server: usize,
    data: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum HoldEnd {
    Captured(Decimal),
    Released,
    /// Left to the deadline: the clock's advance and the expiry job release it.
    Left,
    /// A capture or release found it no longer held: the deadline passed first.
    NotHeld,
}

#[derive(Debug, Clone)]
struct Hold {
    account: String,
    key: String,
    end: HoldEnd,
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    requests: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    /// Answers no client should get (INTERNAL, an unknown code, a malformed answer), in full.
    unexpected: Vec<String>,
    acked: Vec<Acked>,
    holds: Vec<Hold>,
    /// Requests sent again after no answer or UNAVAILABLE.
    resent: u64,
    /// Keys sent to two servers at once, and keys sent again to another server after an answer.
    twin_sends: u64,
    replays: u64,
    /// A replay or a twin answered differently from the first answer.
    mismatches: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (kind, n) in other.requests {
            *self.requests.entry(kind).or_default() += n;
        }
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.unexpected.extend(other.unexpected);
        self.acked.extend(other.acked);
        self.holds.extend(other.holds);
        self.resent += other.resent;
        self.twin_sends += other.twin_sends;
        self.replays += other.replays;
        self.mismatches.extend(other.mismatches);
    }

    /// Counts `answer` as requests of `kind`; Ok(data) if it succeeded, else Err(code), with
    /// codes outside `known` kept as unexpected.
    fn note(&mut self, kind: &'static str, answer: &Answer, known: &[&str]) -> Result<Value, String> {
        let attempts = 1 + answer.unavailable + answer.no_answer.len() as u64;
        *self.requests.entry(kind).or_default() += attempts;
        self.resent += attempts - 1;
        if answer.unavailable > 0 {
            *self.errors.entry("UNAVAILABLE".into()).or_default() += answer.unavailable;
        }
        for e in &answer.no_answer {
            *self.errors.entry("NO_ANSWER".into()).or_default() += 1;
            self.unexpected.push(format!("{kind}: no answer: {e}"));
        }
        let response = &answer.response;
        if response["errors"].is_null() && !response["data"].is_null() {
            return Ok(response["data"].clone());
        }
        let code = code(response).unwrap_or("NO_CODE").to_string();
        *self.errors.entry(code.clone()).or_default() += 1;
        if !known.contains(&code.as_str()) {
            self.unexpected.push(format!("{kind} on server {}: {response}", answer.server));
        }
        Err(code)
    }
}

/// One client: operations on random accounts, spread over the servers, until `deadline`.
async fn client(clients: Arc<Clients>, accounts: Arc<Vec<String>>, task: usize, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (task as u64 + 1).wrapping_mul(0x1000_0000_01b3));
    let servers = clients.addresses.len();
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let account = accounts[rng.below(accounts.len() as u64) as usize].clone();
        let server = (task + n as usize) % servers;
        match rng.below(100) {
            0..45 => spend(&clients, &mut tally, &mut rng, &account, server, &format!("spend-{task}-{n}")).await,
            45..60 => hold(&clients, &mut tally, &mut rng, &account, server, &format!("{task}-{n}")).await,
            60..66 => check_in(&clients, &mut tally, &account, server, &format!("checkin-{task}-{n}")).await,
            66..96 => {
                let (kind, query) = if rng.below(2) == 0 { ("balance", BALANCE) } else { ("history", HISTORY) };
                let answer = clients.call(server, &clients.service, query, &json!({ "a": account })).await;
                let _ = tally.note(kind, &answer, &[]);
            }
            _ => {
                let key = format!("topup-{task}-{n}");
                let variables = json!({ "a": account, "amt": "20", "k": key });
                let answer = clients.call(server, &clients.admin, GRANT, &variables).await;
                if let Ok(data) = tally.note("grant", &answer, &[]) {
                    let server = answer.server;
                    tally.acked.push(Acked { kind: "grant", account, key, admin: true, query: GRANT, variables, server, data });
                }
            }
        }
    }
    tally
}

/// A spend with its own key. One in five goes to two servers at once under the same key (both
/// must answer alike, and one charge at most happens); one in ten acknowledged is sent again to
/// another server at once (a client retrying after a lost answer).
async fn spend(clients: &Clients, tally: &mut Tally, rng: &mut Rng, account: &str, server: usize, key: &str) {
    // 0.5 to 4.5 credits, by halves.
    let amount = Decimal::new(5 * (1 + rng.below(9) as i64), 1).to_string();
    let variables = json!({ "a": account, "amt": amount, "k": key });
    let known = ["INSUFFICIENT_CREDITS"];
    let (answer, outcome) = if rng.below(5) == 0 {
        tally.twin_sends += 1;
        let (first, second) = tokio::join!(
            clients.call(server, &clients.service, SPEND, &variables),
            clients.call(server + 1, &clients.service, SPEND, &variables)
        );
        let a = tally.note("spend", &first, &known);
        let b = tally.note("spend", &second, &known);
        if a != b {
            tally.mismatches.push(format!("spend {key} sent to two servers at once: {} / {}", first.response, second.response));
        }
        (first, a)
    } else {
        let answer = clients.call(server, &clients.service, SPEND, &variables).await;
        let outcome = tally.note("spend", &answer, &known);
        (answer, outcome)
    };
    let Ok(data) = outcome else { return };
    if rng.below(10) == 0 {
        tally.replays += 1;
        let again = clients.call(answer.server + 1, &clients.service, SPEND, &variables).await;
        match tally.note("spend", &again, &[]) {
            Ok(replayed) if replayed == data => {}
            other => tally.mismatches.push(format!("spend {key} replayed: {data} / {other:?}")),
        }
    }
    let server = answer.server;
    tally.acked.push(Acked {
        kind: "spend",
        account: account.into(),
        key: key.into(),
        admin: false,
        query: SPEND,
        variables,
        server,
        data,
    });
}

/// A hold of 1 to 5 credits for an hour of clock time, then captured (in part), released, or
/// left for the deadline to release it.
async fn hold(clients: &Clients, tally: &mut Tally, rng: &mut Rng, account: &str, server: usize, suffix: &str) {
    let amount = Decimal::from(1 + rng.below(5));
    let key = format!("hold-{suffix}");
    let variables = json!({ "a": account, "amt": amount.to_string(), "k": key });
    let answer = clients.call(server, &clients.service, RESERVE, &variables).await;
    let Ok(data) = tally.note("reserve", &answer, &["INSUFFICIENT_CREDITS"]) else { return };
    let reservation = data["reserveCredits"]["reservationId"].as_str().unwrap_or_default().to_string();
    let server = answer.server;
    tally.acked.push(Acked {
        kind: "reserve",
        account: account.into(),
        key: key.clone(),
        admin: false,
        query: RESERVE,
        variables,
        server,
        data,
    });
    // Settled on another server than the one that held it.
    let server = server + 1;
    let (kind, query, variables, settle_key) = match rng.below(10) {
        0..5 => {
            let captured = (amount / Decimal::from(2)).to_string();
            let settle_key = format!("capture-{suffix}");
            ("capture", CAPTURE, json!({ "r": reservation, "amt": captured, "k": settle_key }), settle_key)
        }
        5..8 => {
            let settle_key = format!("release-{suffix}");
            ("release", RELEASE, json!({ "r": reservation, "k": settle_key }), settle_key)
        }
        _ => {
            tally.holds.push(Hold { account: account.into(), key, end: HoldEnd::Left });
            return;
        }
    };
    let answer = clients.call(server, &clients.service, query, &variables).await;
    let end = match tally.note(kind, &answer, &["RESERVATION_NOT_HELD"]) {
        Ok(data) => {
            let end = match kind {
                "capture" => HoldEnd::Captured(decimal(&data["captureReservation"]["captured"])),
                _ => HoldEnd::Released,
            };
            let server = answer.server;
            tally.acked.push(Acked { kind, account: account.into(), key: settle_key, admin: false, query, variables, server, data });
            end
        }
        Err(code) if code == "RESERVATION_NOT_HELD" => HoldEnd::NotHeld,
        Err(_) => return,
    };
    tally.holds.push(Hold { account: account.into(), key, end });
}

/// Today's check-in: once per account and UTC day of the clock, whoever asks and wherever.
async fn check_in(clients: &Clients, tally: &mut Tally, account: &str, server: usize, key: &str) {
    let variables = json!({ "a": account, "k": key });
    let answer = clients.call(server, &clients.service, CHECK_IN, &variables).await;
    // TOO_MANY_ATTEMPTS: the per-account claim limit (20 a minute), counted for the whole fleet.
    if let Ok(data) = tally.note("checkIn", &answer, &["ALREADY_CLAIMED", "TOO_MANY_ATTEMPTS"]) {
        let server = answer.server;
        tally.acked.push(Acked {
            kind: "checkIn",
            account: account.into(),
            key: key.into(),
            admin: false,
            query: CHECK_IN,
            variables,
            server,
            data,
        });
    }
}

fn decimal(value: &Value) -> Decimal {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a decimal: {value}"))
}

/// Micro-credits, as the database keeps amounts.
fn micros(amount: Decimal) -> i64 {
    i64::try_from((amount * Decimal::from(1_000_000)).trunc().mantissa()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The clock.

#[derive(Default)]
struct ClockRecord {
    advances: u64,
    refused_as_passed: u64,
    stops: i64,
    /// job -> periods the advances reported done.
    periods: BTreeMap<String, BTreeSet<String>>,
    one_offs: u64,
    failures: Vec<String>,
}

/// Moves the clock through `steps`, one every `every`: each step by two servers at once (one of
/// them usually finds the clock moved already), and, at a month's end, a `credits jobs --run`
/// beside them.
async fn drive_clock(clients: Arc<Clients>, fleet: Arc<Fleet>, steps: Vec<DateTime<Utc>>, every: Duration) -> ClockRecord {
    let mut record = ClockRecord::default();
    let started = tokio::time::Instant::now();
    let mut month = FIRST_MONTH.to_string();
    for (n, target) in steps.into_iter().enumerate() {
        tokio::time::sleep_until(started + every * (n as u32 + 1)).await;
        let to = target.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let variables = json!({ "to": to });
        let month_end = target.format("%Y-%m").to_string() != month;
        month = target.format("%Y-%m").to_string();
        let one_off = {
            let fleet = fleet.clone();
            async move {
                if month_end { Some(tokio::task::spawn_blocking(move || fleet.one_off(&["jobs", "--run"])).await.unwrap()) } else { None }
            }
        };
        let (a, b, jobs) = tokio::join!(
            clients.call(n, &clients.admin, ADVANCE, &variables),
            clients.call(n + 1, &clients.admin, ADVANCE, &variables),
            one_off
        );
        let mut done = 0;
        for answer in [a, b] {
            let r = &answer.response;
            if r["errors"].is_null() {
                done += 1;
                record.advances += 1;
                let payload = &r["data"]["advanceClock"];
                record.stops += payload["stops"].as_i64().unwrap_or(0);
                for ran in payload["ran"].as_array().into_iter().flatten() {
                    let periods = record.periods.entry(ran["job"].as_str().unwrap_or("?").to_string()).or_default();
                    periods.extend(ran["periods"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(String::from)));
                }
            } else if code(r) == Some("BAD_USER_INPUT") && r["errors"][0]["message"].as_str().is_some_and(|m| m.contains("forward only")) {
                // The other advance got there first: the clock moves forward only.
                record.refused_as_passed += 1;
            } else {
                record.failures.push(format!("advance to {to} on server {}: {r}", answer.server));
            }
        }
        if done == 0 {
            record.failures.push(format!("neither advance to {to} completed"));
        }
        if let Some((success, output)) = jobs {
            record.one_offs += 1;
            if !success {
                record.failures.push(format!("credits jobs --run at {to} failed:\n{output}"));
            }
        }
    }
    record
}

// ---------------------------------------------------------------------------------------------
// Subscriptions.

#[derive(Default)]
struct Pushes {
    /// account -> every total pushed, in order.
    totals: BTreeMap<String, Vec<String>>,
    problems: Vec<String>,
}

/// One WebSocket on `address` watching `accounts` until `stop`.
async fn watch(address: String, accounts: Vec<String>, pushes: Arc<Mutex<Pushes>>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut socket = ws::connect(&address, &token(Role::Service)).await;
    let query = "subscription($a: ID) { balanceChanged(accountId: $a) { accountId balance { total } } }";
    for (n, account) in accounts.iter().enumerate() {
        ws::subscribe(&mut socket, &n.to_string(), query, json!({ "a": account })).await;
    }
    loop {
        tokio::select! {
            message = socket.next() => {
                let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) = message else {
                    match message {
                        Some(Ok(_)) => continue,
                        other => {
                            pushes.lock().unwrap().problems.push(format!("the socket on {address} ended: {other:?}"));
                            return;
                        }
                    }
                };
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let mut pushes = pushes.lock().unwrap();
                match value["type"].as_str() {
                    Some("next") if value["payload"]["errors"].is_null() => {
                        let update = &value["payload"]["data"]["balanceChanged"];
                        let account = update["accountId"].as_str().unwrap_or("?").to_string();
                        let total = update["balance"]["total"].as_str().unwrap_or("?").to_string();
                        pushes.totals.entry(account).or_default().push(total);
                    }
                    Some("ping") | Some("pong") => {}
                    _ => pushes.problems.push(format!("on {address}: {value}")),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The database, read directly for the checks.

/// One journal line on a lot, as the write-off check walks them.
#[derive(Debug)]
struct LotLine {
    entry: i64,
    kind: String,
    reason: Option<String>,
    delta: i64,
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    rows(db, sql).await[0].try_get_by_index::<i64>(0).unwrap()
}

/// Every UTC day from `first` to `last`, as "YYYY-MM-DD".
fn days(first: &str, last: chrono::NaiveDate) -> BTreeSet<String> {
    let mut day: chrono::NaiveDate = first.parse().unwrap();
    let mut all = BTreeSet::new();
    while day <= last {
        all.insert(day.to_string());
        day = day.succ_opt().unwrap();
    }
    all
}

/// Every month from `first` to `last`'s, as "YYYY-MM".
fn months(first: &str, last: chrono::NaiveDate) -> BTreeSet<String> {
    days(&format!("{first}-01"), last).into_iter().map(|d| d[..7].to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// The run.

async fn run_fleet(shape: Shape) {
    let began = Instant::now();
    let pg =
        tokio::task::spawn_blocking(|| PrivatePostgres::start_with(&[("max_connections", "300"), ("log_lock_waits", "on")])).await.unwrap();
    let database_url = pg.create_database("credits_fleet").await;
    let (hooks, webhook_url, receiver) = Hooks::start(RECEIVER_DELAY, true).await;
    let fleet = Arc::new(Fleet::start(&database_url, &webhook_url).await);
    let clients = Arc::new(Clients {
        addresses: fleet.addresses(),
        http: reqwest::Client::new(),
        service: token(Role::Service),
        admin: token(Role::Admin),
    });
    let started_in = began.elapsed();

    // Accounts: one in four on Membership (1,000 plan credits a month), the rest Free (50); each
    // with 300 paid credits that never expire, so spending goes on across the month ends.
    let accounts: Arc<Vec<String>> = Arc::new((0..shape.accounts).map(|n| format!("acct-{n:04}")).collect());
    let mut setup = Tally::default();
    let created = futures::stream::iter(accounts.iter().enumerate().map(|(n, account)| {
        let clients = clients.clone();
        let account = account.clone();
        async move {
            let plan = if n % 4 == 0 { "membership" } else { "free" };
            let create = clients
                .call(
                    n,
                    &clients.service,
                    "mutation($id: ID!, $plan: String) { createAccount(input: {externalId: $id, plan: $plan}) { created } }",
                    &json!({ "id": account, "plan": plan }),
                )
                .await;
            let key = format!("seed-{account}");
            let variables = json!({ "a": account, "amt": "300", "k": key });
            let grant = clients.call(n + 1, &clients.admin, GRANT, &variables).await;
            (account, key, variables, create, grant)
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;
    for (account, key, variables, create, grant) in created {
        assert!(setup.note("createAccount", &create, &[]).is_ok(), "{}\n{}", create.response, fleet.logs());
        let data = setup.note("grant", &grant, &[]).unwrap_or_else(|_| panic!("{}\n{}", grant.response, fleet.logs()));
        let server = grant.server;
        setup.acked.push(Acked { kind: "grant", account, key, admin: true, query: GRANT, variables, server, data });
    }

    // Subscribers: one socket per server, each watching two accounts that the load also uses.
    let pushes = Arc::new(Mutex::new(Pushes::default()));
    let (stop_watching, stopped) = tokio::sync::watch::channel(false);
    let watched: Vec<String> = accounts.iter().take(6).cloned().collect();
    let watchers: Vec<_> = clients
        .addresses
        .iter()
        .enumerate()
        .map(|(n, address)| tokio::spawn(watch(address.clone(), watched[2 * n..2 * n + 2].to_vec(), pushes.clone(), stopped.clone())))
        .collect();

    // The load and the clock, side by side.
    let load_began = Instant::now();
    let deadline = load_began + shape.load;
    let clock = tokio::spawn(drive_clock(clients.clone(), fleet.clone(), shape.steps(), shape.step_every));
    let tasks: Vec<_> = (0..shape.tasks).map(|task| tokio::spawn(client(clients.clone(), accounts.clone(), task, deadline))).collect();
    let mut tally = setup;
    for task in tasks {
        tally.merge(task.await.unwrap());
    }
    let clock = clock.await.unwrap();
    let load_took = load_began.elapsed();
    fleet.assert_alive();
    assert!(
        clock.failures.is_empty(),
        "the clock's steps:\n{}\n{}\nPostgreSQL's deadlocks:\n{}",
        clock.failures.join("\n"),
        fleet.logs(),
        pg.deadlocks()
    );

    // Settle: the receiver stops failing; while holds wait for their deadline (an hour of clock
    // time) or failed deliveries for their backoff, the clock moves 20 minutes at a time (the
    // last step is at noon: no midnight is crossed); the workers deliver on their own ticks.
    hooks.failing.store(false, Ordering::SeqCst);
    let db = credits::db::connect(&database_url, 2).await.expect("the test's own connection");
    let settle_began = Instant::now();
    let mut drain_advances = 0;
    loop {
        let undelivered = count(&db, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL").await;
        let held = count(&db, "SELECT count(*) FROM reservations WHERE status = 'held'").await;
        let running = count(&db, "SELECT count(*) FROM job_runs WHERE status <> 'done'").await;
        let due_later =
            count(&db, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND next_attempt_at > (SELECT now FROM test_clock LIMIT 1)")
                .await;
        if undelivered == 0 && held == 0 && running == 0 {
            break;
        }
        assert!(
            settle_began.elapsed() < SETTLE,
            "the fleet did not settle within {SETTLE:?}: {undelivered} events undelivered, {held} holds held, {running} job runs not done\n{}",
            fleet.logs()
        );
        // Holds wait for their deadline, failed deliveries for their backoff: both on the clock.
        if (held > 0 || due_later > 0) && drain_advances < 5 {
            let now: DateTime<Utc> = rows(&db, "SELECT now FROM test_clock LIMIT 1").await[0].try_get_by_index(0).unwrap();
            let to = (now + chrono::Duration::minutes(20)).to_rfc3339();
            let r = clients.call(drain_advances, &clients.admin, ADVANCE, &json!({ "to": to })).await;
            assert!(r.response["errors"].is_null(), "{}\n{}", r.response, fleet.logs());
            drain_advances += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled_in = settle_began.elapsed();
    let now: DateTime<Utc> = {
        let r = clients.call(0, &clients.service, "{ program { now testClock } }", &json!({})).await;
        assert_eq!(r.response["data"]["program"]["testClock"], json!(true), "{}", r.response);
        r.response["data"]["program"]["now"].as_str().unwrap().parse().unwrap()
    };
    let today = now.date_naive();

    let mut failures: Vec<String> = Vec::new();

    // Answers during the load: known codes only, and busy answers rare.
    let requests: u64 = tally.requests.values().sum();
    if !tally.unexpected.is_empty() {
        failures.push(format!(
            "unexpected answers ({}):\n{}",
            tally.unexpected.len(),
            tally.unexpected.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    let unavailable = tally.errors.get("UNAVAILABLE").copied().unwrap_or(0);
    if unavailable as f64 > MAX_UNAVAILABLE_SHARE * requests as f64 {
        failures.push(format!("{unavailable} of {requests} requests were answered UNAVAILABLE"));
    }
    if !tally.mismatches.is_empty() {
        failures.push(format!("replays that answered otherwise:\n{}", tally.mismatches.join("\n")));
    }

    // 1. Each period of the periodic jobs once, done, and every day and month the clock crossed.
    let mut job_runs: BTreeMap<String, BTreeMap<String, (String, i64, i64)>> = BTreeMap::new();
    for row in rows(&db, "SELECT job, period, status, items, count(*) OVER (PARTITION BY job, period) FROM job_runs").await {
        let (job, period, status, items, copies): (String, String, String, i64, i64) = row.try_get_many_by_index().unwrap();
        job_runs.entry(job).or_default().insert(period, (status, items, copies));
    }
    let expected_days = days(FIRST_DAY, today);
    let expected_months = months(FIRST_MONTH, today);
    for (jobs, expected) in [(&DAILY_JOBS[..], &expected_days), (&MONTHLY_JOBS[..], &expected_months)] {
        for job in jobs {
            let runs = job_runs.get(*job).cloned().unwrap_or_default();
            let periods: BTreeSet<String> = runs.keys().cloned().collect();
            if &periods != expected {
                failures.push(format!(
                    "{job}: periods {:?}, expected {:?}",
                    periods.symmetric_difference(expected).collect::<Vec<_>>(),
                    "each once"
                ));
            }
            for (period, (status, _, copies)) in &runs {
                if status != "done" || *copies != 1 {
                    failures.push(format!("{job} {period}: {status}, {copies} row(s)"));
                }
            }
        }
    }
    // Every account is on a plan with monthly credits: each month's sweep handled each once.
    for (period, (_, items, _)) in job_runs.get("GrantMonthlyPlanCredits").cloned().unwrap_or_default() {
        if items != shape.accounts as i64 {
            failures.push(format!("GrantMonthlyPlanCredits {period}: {items} accounts swept, expected {}", shape.accounts));
        }
    }

    // 2. Each period's effect once: one plan grant per account and month, of the plan's amount.
    let mut plan_grants: BTreeMap<String, BTreeMap<String, Vec<i64>>> = BTreeMap::new();
    for row in rows(
        &db,
        "SELECT a.external_id, a.plan, to_char(e.effective_at AT TIME ZONE 'UTC', 'YYYY-MM'), e.amount_micros \
         FROM journal_entries e JOIN accounts a ON a.id = e.account_id WHERE e.operation = 'plan_credits'",
    )
    .await
    {
        let (account, plan, month, amount): (String, String, String, i64) = row.try_get_many_by_index().unwrap();
        let expected = if plan == "membership" { 1000 } else { 50 } * 1_000_000;
        if amount != expected {
            failures.push(format!("{account}'s plan credits of {month}: {amount} micro-credits, expected {expected}"));
        }
        plan_grants.entry(account).or_default().entry(month).or_default().push(amount);
    }
    for account in accounts.iter() {
        let granted = plan_grants.get(account).cloned().unwrap_or_default();
        let months_granted: BTreeSet<String> = granted.keys().cloned().collect();
        if months_granted != expected_months || granted.values().any(|g| g.len() != 1) {
            failures.push(format!("{account}'s plan credits by month: {granted:?}, expected one in each of {expected_months:?}"));
        }
    }
    // No credit written off twice, none left past its expiry. A lot's expiry (`ExpireLots`, in
    // any process) writes off exactly what remains of it then. It may do so again later, rightly:
    // a hold that took from the lot before its expiry and is settled by a process whose clock had
    // not yet caught up with the advance gives credits back to it. So, walking each lot's lines
    // in journal order, every write-off by the expiry must take exactly what the lot held just
    // before it: a second write-off of the same credits would take more than that.
    let mut lot_lines: BTreeMap<i64, Vec<LotLine>> = BTreeMap::new();
    for row in rows(
        &db,
        "SELECT l.lot_id, e.id, e.kind, e.reason, l.delta_micros FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
         WHERE l.lot_id IN (SELECT w.lot_id FROM journal_lines w JOIN journal_entries x ON x.id = w.entry_id WHERE x.kind = 'expire') \
         ORDER BY l.lot_id, e.id, l.id",
    )
    .await
    {
        let (lot, entry, kind, reason, delta): (i64, i64, String, Option<String>, i64) = row.try_get_many_by_index().unwrap();
        lot_lines.entry(lot).or_default().push(LotLine { entry, kind, reason, delta });
    }
    let mut expiry_write_offs = 0;
    for (lot, lines) in &lot_lines {
        let mut held: i64 = 0;
        for line in lines {
            if line.kind == "expire" && line.reason.as_deref() == Some("expired") {
                expiry_write_offs += 1;
                if -line.delta != held {
                    failures.push(format!(
                        "lot {lot}: write-off #{} of {} micro-credits when it held {held}: {lines:?}",
                        line.entry, -line.delta
                    ));
                }
            }
            held += line.delta;
        }
    }
    let lapsed_with_credits =
        count(&db, "SELECT count(*) FROM lots WHERE expires_at <= (SELECT now FROM test_clock LIMIT 1) AND remaining_micros > 0").await;
    if lapsed_with_credits > 0 {
        failures.push(format!("{lapsed_with_credits} lot(s) past their expiry still hold credits"));
    }
    // At most one check-in per account and day, in the journal and in the answers.
    let check_ins_twice = rows(
        &db,
        "SELECT e.account_id, to_char(e.effective_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM journal_entries e \
         WHERE e.operation = 'check_in' GROUP BY 1, 2 HAVING count(*) > 1",
    )
    .await;
    if !check_ins_twice.is_empty() {
        failures.push(format!("{} account-day(s) with more than one check-in in the journal", check_ins_twice.len()));
    }
    let mut check_in_days: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for acked in tally.acked.iter().filter(|a| a.kind == "checkIn") {
        let day = acked.data["checkIn"]["day"].as_str().unwrap_or("?").to_string();
        let sequence = acked.data["checkIn"]["sequence"].as_str().unwrap_or("?").to_string();
        check_in_days.entry((acked.account.clone(), day)).or_default().insert(sequence);
    }
    for ((account, day), sequences) in &check_in_days {
        if sequences.len() > 1 {
            failures.push(format!("{account} checked in {} times on {day}: {sequences:?}", sequences.len()));
        }
    }

    // 3. Every acknowledged spend is in the journal as answered, and no other spend is.
    let mut journal_spends: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in
        rows(&db, "SELECT e.idempotency_key, e.id, e.amount_micros FROM journal_entries e WHERE e.kind = 'spend' AND e.operation = 'spend'")
            .await
    {
        let (key, id, amount): (Option<String>, i64, i64) = row.try_get_many_by_index().unwrap();
        let key = key.unwrap_or_default();
        if journal_spends.insert(key.clone(), (id, amount)).is_some() {
            failures.push(format!("spend key {key} charged twice"));
        }
    }
    let acked_spends: Vec<&Acked> = tally.acked.iter().filter(|a| a.kind == "spend").collect();
    for acked in &acked_spends {
        let answered = &acked.data["spendCredits"];
        let sequence: i64 = answered["sequence"].as_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        let amount = micros(decimal(&answered["amount"]));
        match journal_spends.get(&acked.key) {
            Some((id, charged)) if *id == sequence && *charged == -amount => {}
            other => failures.push(format!("spend {} answered #{sequence} of {amount}; the journal has {other:?}", acked.key)),
        }
    }
    let acked_keys: BTreeSet<&str> = acked_spends.iter().map(|a| a.key.as_str()).collect();
    let unanswered: Vec<&String> = journal_spends.keys().filter(|k| !acked_keys.contains(k.as_str())).collect();
    if !unanswered.is_empty() {
        failures.push(format!(
            "{} spend(s) in the journal that no answer acknowledged: {:?}",
            unanswered.len(),
            &unanswered[..unanswered.len().min(10)]
        ));
    }

    // Holds: each ended as its client saw it; the ones left lapsed.
    let mut stored_holds: BTreeMap<String, (String, Option<i64>)> = BTreeMap::new();
    for row in rows(&db, "SELECT idempotency_key, status, captured_micros FROM reservations").await {
        let (key, status, captured): (String, String, Option<i64>) = row.try_get_many_by_index().unwrap();
        stored_holds.insert(key, (status, captured));
    }
    for hold in &tally.holds {
        let stored = stored_holds.get(&hold.key).cloned();
        let fine = match (&hold.end, &stored) {
            (HoldEnd::Captured(amount), Some((status, Some(captured)))) => status == "captured" && *captured == micros(*amount),
            (HoldEnd::Released, Some((status, _))) => status == "released",
            (HoldEnd::Left | HoldEnd::NotHeld, Some((status, _))) => status == "expired",
            _ => false,
        };
        if !fine {
            failures.push(format!("hold {} of {}: the client saw {:?}, stored {stored:?}", hold.key, hold.account, hold.end));
        }
    }

    // Each account's balance is what the acknowledged operations and the journal's plan grants
    // and write-offs add up to: a charge nobody acknowledged, or a lost one, shows here.
    let mut expected_micros: BTreeMap<&str, i64> = accounts.iter().map(|a| (a.as_str(), 0)).collect();
    for acked in &tally.acked {
        let delta = match acked.kind {
            "grant" => micros(decimal(&acked.variables["amt"])),
            "checkIn" => micros(decimal(&acked.data["checkIn"]["amount"])),
            "spend" => -micros(decimal(&acked.data["spendCredits"]["amount"])),
            "capture" => -micros(decimal(&acked.data["captureReservation"]["captured"])),
            _ => 0,
        };
        *expected_micros.get_mut(acked.account.as_str()).unwrap() += delta;
    }
    for row in rows(
        &db,
        "SELECT a.external_id, COALESCE(SUM(e.amount_micros), 0)::bigint FROM accounts a JOIN journal_entries e ON e.account_id = a.id \
         WHERE e.operation IN ('plan_credits', 'expire') GROUP BY 1",
    )
    .await
    {
        let (account, sum): (String, i64) = row.try_get_many_by_index().unwrap();
        if let Some(expected) = expected_micros.get_mut(account.as_str()) {
            *expected += sum;
        }
    }
    let balances = futures::stream::iter(accounts.iter().enumerate().map(|(n, account)| {
        let clients = clients.clone();
        let account = account.clone();
        async move {
            let r = clients.call(n, &clients.service, BALANCE, &json!({ "a": account })).await;
            (account, r.response["data"]["account"]["balance"]["total"].clone())
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;
    let balances: BTreeMap<String, Value> = balances.into_iter().collect();
    for (account, total) in &balances {
        let expected = expected_micros[account.as_str()];
        let got = total.as_str().and_then(|s| s.parse::<Decimal>().ok()).map(micros);
        if got != Some(expected) {
            failures.push(format!("{account}: balance {total}, the acknowledged operations add up to {expected} micro-credits"));
        }
    }

    // 4. Every acknowledged operation replays alike on another server than the one that answered.
    let replays = futures::stream::iter(tally.acked.iter().map(|acked| {
        let clients = clients.clone();
        async move {
            let token = if acked.admin { &clients.admin } else { &clients.service };
            let answer = clients.call(acked.server + 1, token, acked.query, &acked.variables).await;
            (acked, answer)
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let replayed_after = replays.len();
    let mut replay_tally = Tally::default();
    for (acked, answer) in replays {
        match replay_tally.note("replay", &answer, &[]) {
            Ok(data) if data == acked.data => {}
            other => failures.push(format!("{} {} ({}) replayed: {} / {other:?}", acked.kind, acked.key, acked.account, acked.data)),
        }
    }

    // 5. Webhooks: no event sent by two processes at once, each acknowledged once, all delivered.
    let deliveries = hooks.deliveries();
    let mut by_event: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    for delivery in &deliveries {
        if !delivery.signed {
            failures.push(format!("event {} came with a signature that does not verify", delivery.event_id));
        }
        by_event.entry(delivery.event_id.clone()).or_default().push(delivery.clone());
    }
    let mut overlapping = Vec::new();
    let mut acknowledged_twice = Vec::new();
    for (event, mut sent) in by_event.clone() {
        sent.sort_by_key(|d| d.started);
        // Each request: who sent it, when (ms after the event's first request), for how long.
        let first = sent[0].started;
        let timeline: Vec<String> = sent
            .iter()
            .map(|d| {
                let from = d.started.duration_since(first).as_millis();
                format!("{} {}..{}ms {}", d.sender, from, d.ended.duration_since(first).as_millis(), d.status)
            })
            .collect();
        if sent.windows(2).any(|pair| pair[1].started < pair[0].ended) {
            overlapping.push(format!("{event}: {timeline:?}"));
        }
        let acknowledged = sent.iter().filter(|d| d.status == 200).count();
        if acknowledged != 1 {
            acknowledged_twice.push(format!("{event}: {acknowledged} acknowledged: {timeline:?}"));
        }
    }
    if !overlapping.is_empty() {
        failures.push(format!(
            "{} event(s) sent by two processes at once: {:?}",
            overlapping.len(),
            &overlapping[..overlapping.len().min(10)]
        ));
    }
    if !acknowledged_twice.is_empty() {
        failures.push(format!(
            "{} event(s) not acknowledged exactly once: {:?}",
            acknowledged_twice.len(),
            &acknowledged_twice[..acknowledged_twice.len().min(10)]
        ));
    }
    let outbox_ids: BTreeSet<String> = rows(&db, "SELECT id FROM outbox")
        .await
        .into_iter()
        .map(|row| credits::service::webhooks::event_id(row.try_get_by_index::<i64>(0).unwrap()))
        .collect();
    let received_ids: BTreeSet<String> = by_event.keys().cloned().collect();
    if outbox_ids != received_ids {
        failures.push(format!(
            "the outbox holds {} events, the receiver got {}: differing {:?}",
            outbox_ids.len(),
            received_ids.len(),
            outbox_ids.symmetric_difference(&received_ids).take(10).collect::<Vec<_>>()
        ));
    }
    if outbox_ids.is_empty() {
        failures.push("no webhook event at all: the run did not exercise delivery".into());
    }
    let failed_on_purpose = deliveries.iter().filter(|d| d.status != 200).count();

    // 6. Subscribers: every one saw changes, and its last push is the balance now.
    let last_pushes = || {
        let pushes = pushes.lock().unwrap();
        watched.iter().map(|a| (a.clone(), pushes.totals.get(a).and_then(|t| t.last().cloned()))).collect::<BTreeMap<_, _>>()
    };
    let caught_up = Instant::now();
    while watched.iter().any(|a| last_pushes()[a].as_deref() != balances[a].as_str()) && caught_up.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = stop_watching.send(true);
    for watcher in watchers {
        let _ = watcher.await;
    }
    let pushes = std::mem::take(&mut *pushes.lock().unwrap());
    for account in &watched {
        let seen = pushes.totals.get(account).cloned().unwrap_or_default();
        if seen.len() < 2 {
            failures.push(format!("the subscriber of {account} got {} push(es): {seen:?}", seen.len()));
        }
        if seen.last().map(String::as_str) != balances[account].as_str() {
            failures.push(format!("the subscriber of {account} last saw {:?}, the balance is {}", seen.last(), balances[account]));
        }
    }
    if !pushes.problems.is_empty() {
        failures.push(format!("subscriptions: {}", pushes.problems.join("\n")));
    }
    let pushed: usize = pushes.totals.values().map(Vec::len).sum();

    // 7. Nothing failed and nothing stuck, and the whole-ledger audit (the CLI) is clean.
    let leftovers = crate::support::job_leftovers(&db).await;
    if !leftovers.is_empty() {
        failures.push(format!("job leftovers:\n{}", leftovers.join("\n")));
    }
    let (audit_clean, audit) = tokio::task::spawn_blocking({
        let fleet = fleet.clone();
        move || fleet.one_off(&["audit"])
    })
    .await
    .unwrap();
    if !audit_clean {
        failures.push(format!("credits audit failed:\n{audit}"));
    }
    fleet.assert_alive();
    let job_failures: usize = fleet.workers.iter().map(|w| w.log().matches("job failed").count()).sum();

    let entries = count(&db, "SELECT count(*) FROM journal_entries").await;
    let _ = db.close().await;
    let by_kind = |kind: &str| tally.acked.iter().filter(|a| a.kind == kind).count();
    eprintln!(
        "{}: processes 3 serve + 2 worker; accounts {}; clients {}; load and clock steps {:.1}s; requests {} {:?}; acknowledged: spends {}, holds {}, captures {}, \
         releases {}, check-ins {}, grants {}; errors {:?}; resent {}; twin sends {}; replays during load {}, after {}; clock: {} advances \
         ({} found it moved), {} stops, {} jobs --run, now {}; job periods {}; journal entries {}; expiry write-offs {}; webhooks: {} events, {} requests, {} failed on \
         purpose; pushes {}; job failures logged by workers {}; started in {:.1}s, settled in {:.1}s, total {:.1}s",
        shape.name,
        shape.accounts,
        shape.tasks,
        load_took.as_secs_f64(),
        requests,
        tally.requests,
        acked_spends.len(),
        by_kind("reserve"),
        by_kind("capture"),
        by_kind("release"),
        by_kind("checkIn"),
        by_kind("grant"),
        tally.errors,
        tally.resent,
        tally.twin_sends,
        tally.replays,
        replayed_after,
        clock.advances,
        clock.refused_as_passed,
        clock.stops,
        clock.one_offs,
        now.to_rfc3339(),
        job_runs.values().map(BTreeMap::len).sum::<usize>(),
        entries,
        expiry_write_offs,
        received_ids.len(),
        deliveries.len(),
        failed_on_purpose,
        pushed,
        job_failures,
        started_in.as_secs_f64(),
        settled_in.as_secs_f64(),
        began.elapsed().as_secs_f64(),
    );
    // A deadlock PostgreSQL broke is retried and need not fail the run; it is shown all the same,
    // since two of the fleet's statements took their locks in opposite orders.
    let deadlocks = pg.deadlocks();
    if !deadlocks.is_empty() {
        eprintln!("{}: PostgreSQL broke deadlocks (retried):\n{deadlocks}", shape.name);
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}\n{}\nPostgreSQL's deadlocks:\n{}",
        failures.len(),
        failures.join("\n"),
        fleet.logs(),
        pg.deadlocks()
    );
    receiver.abort();
}

/// The fleet's duplicate deliveries, reduced to two processes and one event. A delivery's lease
/// (`DELIVERY_LEASE`, 60 s) was taken on the ledger's clock; on a test clock another process
/// could stand an hour further on, find the lease long over and send the event again while the
/// first request was still in flight. Leases are on wall time now (`outbox.leased_until`). Two servers, no workers, a receiver that takes 3 s to answer:
/// server A's advance publishes an expiring-credits notice and starts sending it; meanwhile
/// server B advances the clock an hour, and its delivery run must leave the event alone. (With
/// B's advance within the lease, 30 s, it does: the lease is the only thing that differs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_being_sent_is_not_sent_again_by_another_process_advancing_the_clock() {
    let db = crate::support::TestDb::new(crate::support::Backend::Postgres).await;
    let (hooks, webhook_url, receiver) = Hooks::start(Duration::from_secs(3), false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    for name in ["serve-a", "serve-b"] {
        let mut command = credits_command();
        fleet_env(&mut command, &db.url, &webhook_url, name);
        // A day and a half before a month's end: the month's plan credits are worth a notice.
        command.env("CREDITS_CLOCK_START", "2027-01-30T12:00:00Z");
        servers.push(ServeProcess::start(command, &["--no-workers"], dir.path(), name).await);
    }
    let clients = Arc::new(Clients {
        addresses: servers.iter().map(|s| s.address.clone()).collect(),
        http: reqwest::Client::new(),
        service: token(Role::Service),
        admin: token(Role::Admin),
    });
    let logs = || servers.iter().map(|s| tail(&s.log(), 30)).collect::<Vec<_>>().join("\n---\n");
    let created = clients
        .call(0, &clients.service, "mutation { createAccount(input: {externalId: \"soon\", plan: \"free\"}) { created } }", &json!({}))
        .await;
    assert!(created.response["errors"].is_null(), "{}", created.response);

    let advance = |server: usize, to: &'static str| {
        let clients = clients.clone();
        async move { clients.call(server, &clients.admin, ADVANCE, &json!({ "to": to })).await.response }
    };
    // A's advance publishes the notice and sends it: the receiver holds the request 3 s.
    let a = tokio::spawn(advance(0, "2027-01-30T12:01:00Z"));
    let started = Instant::now();
    while hooks.requests.load(Ordering::SeqCst) == 0 {
        assert!(!a.is_finished() && started.elapsed() < Duration::from_secs(30), "server A sent nothing:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Meanwhile B moves the clock an hour on and runs the delivery job at that instant.
    let b = advance(1, "2027-01-30T13:00:00Z").await;
    let a = a.await.unwrap();
    for answer in [&a, &b] {
        assert!(answer["errors"].is_null(), "{answer}\n{}", logs());
    }
    let deliveries = hooks.deliveries();
    let sent: Vec<String> = deliveries.iter().map(|d| format!("{} by {}: {}", d.event_id, d.sender, d.status)).collect();
    assert_eq!(deliveries.len(), 1, "the event is sent once, by the process holding its lease: {sent:?}\n{}", logs());
    receiver.abort();
}
