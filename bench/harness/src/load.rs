//! The load: real `spendCredits` mutations over HTTP/1.1 keep-alive, closed-loop (N clients,
//! each sends its next request when the last one answered) or paced (a fixed arrival rate,
//! latency measured from the intended send time, so a stall is not hidden).

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The amount of one spend: 0.01 credits (10,000 micro-credits), the same in the baselines.
pub const AMOUNT: &str = "0.01";
pub const AMOUNT_MICROS: i64 = 10_000;

const BALANCE: &str = "query Balance($a: ID!) { account(id: $a) { balance { total available held } } }";

const BALANCE_AT: &str = "query BalanceAt($a: ID!, $t: DateTime!) { account(id: $a) { balanceAt(at: $t) { available held sequence } } }";

const HISTORY: &str = "query History($a: ID!) { account(id: $a) { history(first: 20) { edges { node { kind amount effectiveAt } } } } }";

const CHECK_IN: &str = "mutation CheckIn($input: CheckInInput!) { checkIn(input: $input) { amount day } }";

const SPEND: &str = "mutation Spend($input: SpendCreditsInput!) { spendCredits(input: $input) { sequence availableAfter } }";

/// Many spends in one request; each item is a `SpendCreditsInput`, as `SPEND` sends one.
const SPEND_BATCH: &str = "mutation SpendBatch($items: [SpendCreditsInput!]!) { spendCreditsBatch(input: { items: $items }) \
     { results { index ok error { code message } receipt { sequence } } } }";

/// Which account each spend charges.
#[derive(Debug, Clone, Copy)]
pub enum Pick {
    /// Uniformly over `bench-0` .. `bench-{n-1}`.
    Many(usize),
    /// Always `bench-0`.
    Hot,
    /// Always this account.
    Account(&'static str),
}

impl Pick {
    pub fn account(self, rng: &mut impl Rng) -> String {
        match self {
            Pick::Many(n) => format!("bench-{}", rng.random_range(0..n)),
            Pick::Hot => "bench-0".to_string(),
            Pick::Account(account) => account.to_string(),
        }
    }

    /// The accounts of `n` spends sent together (a bulk request, a limit baseline's
    /// transaction): `n` distinct accounts out of `Many` (each account at most once while there
    /// are as many accounts as spends; round after round of one random order otherwise), or `n`
    /// times the one account of `Hot`.
    pub fn accounts(self, rng: &mut impl Rng, n: usize) -> Vec<String> {
        match self {
            Pick::Many(accounts) => {
                let order = rand::seq::index::sample(rng, accounts, n.min(accounts));
                (0..n).map(|i| format!("bench-{}", order.index(i % order.len()))).collect()
            }
            Pick::Hot | Pick::Account(_) => (0..n).map(|_| self.account(rng)).collect(),
        }
    }
}

/// What one run measured inside its window.
pub struct Measured {
    /// Requests (or transactions) answered, each with a latency.
    pub ok: u64,
    /// What the throughput counts: spends charged (or reads answered). One per request, except
    /// for requests and transactions of several spends (the bulk scenario, the limit baseline).
    pub items: u64,
    /// Failed spends (or reads): a failed request of several spends counts each of them.
    pub errors: u64,
    /// Latencies of the successful requests, in microseconds.
    pub latency: Histogram<u64>,
    pub seconds: f64,
    pub first_error: Option<String>,
}

/// What one request (or transaction) of several spends came to: spends charged, spends failed,
/// and why the first failed one did.
#[derive(Debug, Default)]
pub struct Items {
    pub ok: u64,
    pub failed: u64,
    pub error: Option<String>,
}

impl Items {
    /// Every one of `n` spends failed, for one reason (a transport error, a GraphQL error, a
    /// transaction rolled back).
    pub fn all_failed(n: usize, error: String) -> Items {
        Items { ok: 0, failed: n as u64, error: Some(error) }
    }
}

impl Measured {
    pub fn new(seconds: f64) -> Measured {
        Measured { ok: 0, items: 0, errors: 0, latency: histogram(), seconds, first_error: None }
    }

    /// Spends (or reads) per second.
    pub fn throughput(&self) -> f64 {
        self.items as f64 / self.seconds
    }

    pub fn ms(&self, quantile: f64) -> f64 {
        if self.latency.is_empty() { f64::NAN } else { self.latency.value_at_quantile(quantile) as f64 / 1000.0 }
    }

    pub fn max_ms(&self) -> f64 {
        if self.latency.is_empty() { f64::NAN } else { self.latency.max() as f64 / 1000.0 }
    }

    pub fn record(&mut self, outcome: Result<u64, String>) {
        match outcome {
            Ok(micros) => {
                self.ok += 1;
                self.items += 1;
                self.latency.saturating_record(micros.max(1));
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// One request (or transaction) of several spends that took `micros`: its latency counts if
    /// any of its spends was charged; each spend counts as charged or failed.
    pub fn record_items(&mut self, micros: u64, items: Items) {
        if items.ok > 0 {
            self.ok += 1;
            self.latency.saturating_record(micros.max(1));
        }
        self.items += items.ok;
        self.errors += items.failed;
        if let Some(e) = items.error {
            self.first_error.get_or_insert(e);
        }
    }

    pub fn merge(&mut self, other: Measured) {
        self.ok += other.ok;
        self.items += other.items;
        self.errors += other.errors;
        self.latency.add(&other.latency).expect("histograms of the same bounds");
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// 1 µs to 2 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// The GraphQL endpoint and a service token.
pub struct Target {
    pub client: reqwest::Client,
    /// One per server process; requests take turns over them.
    pub urls: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    pub authorization: String,
}

impl Target {
    pub fn new(bases: &[String], token: &str) -> anyhow::Result<Target> {
        anyhow::ensure!(!bases.is_empty(), "a target needs a server");
        let client = reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build()?;
        let urls = bases.iter().map(|base| format!("{base}/graphql")).collect();
        Ok(Target { client, urls, next: std::sync::atomic::AtomicUsize::new(0), authorization: format!("Bearer {token}") })
    }

    fn url(&self) -> &str {
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.urls[turn % self.urls.len()]
    }

    /// One balance read; an error is a transport failure, a non-2xx status, or a GraphQL error.
    pub async fn read_balance(&self, account: &str) -> Result<(), String> {
        let body = serde_json::json!({ "query": BALANCE, "variables": { "a": account } });
        self.post(&body).await
    }

    /// One `balanceAt` read of `account` at `at`.
    pub async fn read_balance_at(&self, account: &str, at: chrono::DateTime<chrono::Utc>) -> Result<(), String> {
        let body = serde_json::json!({ "query": BALANCE_AT, "variables": { "a": account, "t": at.to_rfc3339() } });
        self.post(&body).await
    }

    /// One spend; an error is a transport failure, a non-2xx status, or a GraphQL error.
    pub async fn spend(&self, account: &str, key: &str) -> Result<(), String> {
        let body = serde_json::json!({
            "query": SPEND,
            "variables": { "input": { "accountId": account, "amount": AMOUNT, "feature": "bench", "idempotencyKey": key } },
        });
        self.post(&body).await
    }

    /// Spends sent together in one `spendCreditsBatch` request, (account, key) each: what came
    /// of each item. An item with `ok: false` fails alone; a transport error, a non-2xx status or
    /// a GraphQL error fails them all.
    pub async fn spend_batch(&self, spends: &[(String, String)]) -> Items {
        let items: Vec<serde_json::Value> = spends
            .iter()
            .map(|(account, key)| serde_json::json!({ "accountId": account, "amount": AMOUNT, "feature": "bench", "idempotencyKey": key }))
            .collect();
        let body = serde_json::json!({ "query": SPEND_BATCH, "variables": { "items": items } });
        let n = spends.len();
        let response =
            match self.client.post(self.url()).header(reqwest::header::AUTHORIZATION, &self.authorization).json(&body).send().await {
                Ok(response) => response,
                Err(e) => return Items::all_failed(n, format!("transport: {e}")),
            };
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => return Items::all_failed(n, format!("body: {e}")),
        };
        let short = || text.chars().take(300).collect::<String>();
        let answer: serde_json::Value = match serde_json::from_str(&text) {
            Ok(answer) if status.is_success() => answer,
            _ => return Items::all_failed(n, format!("HTTP {status}: {}", short())),
        };
        let results = match answer["data"]["spendCreditsBatch"]["results"].as_array() {
            Some(results) if answer.get("errors").is_none_or(serde_json::Value::is_null) => results,
            _ => return Items::all_failed(n, format!("HTTP {status}: {}", short())),
        };
        let charged = |r: &&serde_json::Value| r["ok"].as_bool() == Some(true) && !r["receipt"].is_null();
        let ok = results.iter().filter(charged).count().min(n);
        // The first refused item's code and message; an item missing from `results` fails too.
        let error =
            results.iter().find(|r| !charged(r)).map(|r| format!("item {}: {} {}", r["index"], r["error"]["code"], r["error"]["message"]));
        let error = error.or_else(|| (ok < n).then(|| format!("{} results for {n} items", results.len())));
        Items { ok: ok as u64, failed: (n - ok) as u64, error }
    }

    /// The first page of an account's history.
    pub async fn read_history(&self, account: &str) -> Result<(), String> {
        self.post(&serde_json::json!({ "query": HISTORY, "variables": { "a": account } })).await
    }

    /// Today's check-in for `account`, on its behalf. The key is the account's and the day's,
    /// so a second check-in of the day replays the first (a repeat is not an error).
    pub async fn check_in(&self, account: &str) -> Result<(), String> {
        let key = format!("checkin-{}-{account}", chrono::Utc::now().date_naive());
        let body = serde_json::json!({ "query": CHECK_IN, "variables": { "input": { "accountId": account, "idempotencyKey": key } } });
        self.post(&body).await
    }

    async fn post(&self, body: &serde_json::Value) -> Result<(), String> {
        let response = self
            .client
            .post(self.url())
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("body: {e}"))?;
        if !status.is_success() || text.contains("\"errors\"") {
            return Err(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>()));
        }
        Ok(())
    }
}

/// A document of `depth` fragments, each spreading the next one twice: 2^depth fields once
/// expanded, in about 60 bytes a level (issue 17's fan-out attack).
pub fn fan_out_document(depth: usize) -> String {
    let mut document = String::from("{ ...F0 }");
    for level in 0..depth {
        document.push_str(&format!(" fragment F{level} on QueryRoot {{ ...F{next} ...F{next} }}", next = level + 1));
    }
    document.push_str(&format!(" fragment F{depth} on QueryRoot {{ __typename }}"));
    document
}

impl Target {
    /// Sends the fan-out document with no token; the outcome is Ok only if the server refused it
    /// with a code (an answer with data, or without a code, is an error of this run).
    pub async fn send_fan_out(&self, document: &str) -> Result<(), String> {
        let response = self
            .client
            .post(self.url())
            .json(&serde_json::json!({ "query": document }))
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let body: serde_json::Value = response.json().await.map_err(|e| format!("body: {e}"))?;
        match body["errors"][0]["extensions"]["code"].as_str() {
            Some(_) if body["data"].is_null() => Ok(()),
            _ => Err(format!("not refused with a code: {}", body.to_string().chars().take(300).collect::<String>())),
        }
    }
}

/// `attackers` closed-loop clients sending the fan-out document of `depth` while `readers`
/// read a balance: (the refusals, the reads under attack).
pub async fn under_attack(
    target: Arc<Target>,
    depth: usize,
    attackers: usize,
    readers: usize,
    warmup: Duration,
    seconds: Duration,
) -> (Measured, Measured) {
    let document = Arc::new(fan_out_document(depth));
    let attack = {
        let target = target.clone();
        closed_loop_of(Pick::Hot, attackers, warmup, seconds, "attack-", move |_account, _key| {
            let (target, document) = (target.clone(), document.clone());
            async move { target.send_fan_out(&document).await }
        })
    };
    tokio::join!(attack, closed_loop_reads(target, "bench-0", readers, warmup, seconds))
}

/// A fresh prefix for this run's idempotency keys.
pub fn run_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `clients` closed-loop clients for `warmup + seconds`; only requests sent after the warm-up
/// and answered before the end count.
pub async fn closed_loop(target: Arc<Target>, pick: Pick, clients: usize, warmup: Duration, seconds: Duration) -> Measured {
    closed_loop_of(pick, clients, warmup, seconds, "", move |account, key| {
        let target = target.clone();
        async move { target.spend(&account, &key).await }
    })
    .await
}

/// `closed_loop` of balance reads of one account.
pub async fn closed_loop_reads(
    target: Arc<Target>,
    account: &'static str,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> Measured {
    closed_loop_of(Pick::Account(account), clients, warmup, seconds, "", move |account, _key| {
        let target = target.clone();
        async move { target.read_balance(&account).await }
    })
    .await
}

/// `closed_loop` of `balanceAt` reads of one account at one instant.
pub async fn closed_loop_balance_at(
    target: Arc<Target>,
    account: &'static str,
    at: chrono::DateTime<chrono::Utc>,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> Measured {
    closed_loop_of(Pick::Account(account), clients, warmup, seconds, "", move |account, _key| {
        let target = target.clone();
        async move { target.read_balance_at(&account, at).await }
    })
    .await
}

/// The closed loop around any spend (the server's or a baseline's), each call with an account
/// and a key of its own; `prefix` keeps one side's keys apart from the other's.
pub async fn closed_loop_of<F, Fut>(pick: Pick, clients: usize, warmup: Duration, seconds: Duration, prefix: &str, spend: F) -> Measured
where
    F: Fn(String, String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let run = format!("{prefix}{}", run_id());
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (spend, run) = (spend.clone(), run.clone());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(rand::random());
            let mut measured = Measured::new(seconds.as_secs_f64());
            for seq in 0u64.. {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = spend(pick.account(&mut rng), format!("{run}-{client}-{seq}")).await;
                let done = Instant::now();
                if sent >= from && done <= end {
                    measured.record(outcome.map(|()| (done - sent).as_micros() as u64));
                }
            }
            measured
        });
    }
    let mut total = Measured::new(seconds.as_secs_f64());
    while let Some(measured) = tasks.join_next().await {
        total.merge(measured.expect("a client task"));
    }
    total
}

/// The closed loop around requests (or transactions) of several spends each: `send` gets a key
/// prefix of its own per call (`{prefix}{run}-{client}-{seq}`; item `i` takes `-{i}` after it)
/// and says what came of each spend. Latencies are per request; the throughput counts spends.
pub async fn closed_loop_items<F, Fut>(clients: usize, warmup: Duration, seconds: Duration, prefix: &str, send: F) -> Measured
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Items> + Send,
{
    let run = format!("{prefix}{}", run_id());
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (send, run) = (send.clone(), run.clone());
        tasks.spawn(async move {
            let mut measured = Measured::new(seconds.as_secs_f64());
            for seq in 0u64.. {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let items = send(format!("{run}-{client}-{seq}")).await;
                let done = Instant::now();
                if sent >= from && done <= end {
                    measured.record_items((done - sent).as_micros() as u64, items);
                }
            }
            measured
        });
    }
    let mut total = Measured::new(seconds.as_secs_f64());
    while let Some(measured) = tasks.join_next().await {
        total.merge(measured.expect("a client task"));
    }
    total
}

/// The bulk scenario: `clients` closed-loop clients, each sending `spendCreditsBatch` requests of
/// `batch` spends of `AMOUNT`, each for a distinct random one of `accounts` accounts with a key
/// of its own.
pub async fn closed_loop_bulk(
    target: Arc<Target>,
    accounts: usize,
    batch: usize,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> Measured {
    closed_loop_items(clients, warmup, seconds, "bulk-", move |key| {
        let target = target.clone();
        let spends: Vec<(String, String)> = Pick::Many(accounts)
            .accounts(&mut rand::rng(), batch)
            .into_iter()
            .enumerate()
            .map(|(i, account)| (account, format!("{key}-{i}")))
            .collect();
        async move { target.spend_batch(&spends).await }
    })
    .await
}

/// What a product's day asks of the service, by share of requests: mostly balance reads from
/// the apps, some history pages, the daily check-in, and the backend's spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayRequest {
    Balance,
    History,
    CheckIn,
    Spend,
}

impl DayRequest {
    pub const ALL: [DayRequest; 4] = [DayRequest::Balance, DayRequest::History, DayRequest::CheckIn, DayRequest::Spend];

    pub fn label(self) -> &'static str {
        match self {
            DayRequest::Balance => "day: balance",
            DayRequest::History => "day: history",
            DayRequest::CheckIn => "day: check-in",
            DayRequest::Spend => "day: spend",
        }
    }

    /// Percent of the day's requests.
    pub fn share(self) -> u32 {
        match self {
            DayRequest::Balance => 50,
            DayRequest::History => 10,
            DayRequest::CheckIn => 10,
            DayRequest::Spend => 30,
        }
    }

    fn draw(rng: &mut impl Rng) -> DayRequest {
        let mut roll = rng.random_range(0..100);
        for request in DayRequest::ALL {
            if roll < request.share() {
                return request;
            }
            roll -= request.share();
        }
        unreachable!("the shares add up to 100")
    }
}

/// `clients` closed-loop clients sending the day's mix over `Pick::Many(accounts)`; one
/// measurement per kind of request.
pub async fn mixed_day(
    target: Arc<Target>,
    accounts: usize,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> Vec<(DayRequest, Measured)> {
    let run = run_id();
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (target, run) = (target.clone(), run.clone());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(rand::random());
            let mut measured: Vec<Measured> = DayRequest::ALL.iter().map(|_| Measured::new(seconds.as_secs_f64())).collect();
            for seq in 0u64.. {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let (request, account) = (DayRequest::draw(&mut rng), Pick::Many(accounts).account(&mut rng));
                let outcome = match request {
                    DayRequest::Balance => target.read_balance(&account).await,
                    DayRequest::History => target.read_history(&account).await,
                    DayRequest::CheckIn => target.check_in(&account).await,
                    DayRequest::Spend => target.spend(&account, &format!("day-{run}-{client}-{seq}")).await,
                };
                let done = Instant::now();
                if sent >= from && done <= end {
                    let index = DayRequest::ALL.iter().position(|r| *r == request).expect("a known request");
                    measured[index].record(outcome.map(|()| (done - sent).as_micros() as u64));
                }
            }
            measured
        });
    }
    let mut total: Vec<Measured> = DayRequest::ALL.iter().map(|_| Measured::new(seconds.as_secs_f64())).collect();
    while let Some(measured) = tasks.join_next().await {
        for (sum, part) in total.iter_mut().zip(measured.expect("a client task")) {
            sum.merge(part);
        }
    }
    DayRequest::ALL.into_iter().zip(total).collect()
}

/// Spends sent at a fixed `rate` per second (open loop, at most `max_in_flight` at once);
/// latency counts from when each request was due, so queueing behind a slow one shows.
pub async fn paced(target: Arc<Target>, pick: Pick, rate: f64, max_in_flight: usize, warmup: Duration, seconds: Duration) -> Measured {
    let run = run_id();
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + seconds);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let mut rng = StdRng::seed_from_u64(rand::random());
    let mut tasks = tokio::task::JoinSet::new();
    let mut measured = Measured::new(seconds.as_secs_f64());
    for seq in 0u64.. {
        let due = start + interval.mul_f64(seq as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let permit = permits.clone().acquire_owned().await.expect("the semaphore stays open");
        let (target, account, key) = (target.clone(), pick.account(&mut rng), format!("{run}-{seq}"));
        tasks.spawn(async move {
            let outcome = target.spend(&account, &key).await;
            drop(permit);
            let done = Instant::now();
            // Every request due in the window counts, however late it answers.
            (due >= from).then(|| outcome.map(|()| (done - due).as_micros() as u64))
        });
        while let Some(finished) = tasks.try_join_next() {
            if let Some(outcome) = finished.expect("a request task") {
                measured.record(outcome);
            }
        }
    }
    while let Some(finished) = tasks.join_next().await {
        if let Some(outcome) = finished.expect("a request task") {
            measured.record(outcome);
        }
    }
    measured
}

/// The same spends through the credits library in this process (`Engine::spend`, its own pool
/// of the server's size), no HTTP or GraphQL: what the server adds on top of its ledger.
pub async fn in_process(url: &str, pick: Pick, clients: usize, warmup: Duration, seconds: Duration) -> anyhow::Result<Measured> {
    use credits::service::spending::SpendRequest;
    let pool = if credits::db::is_sqlite(url) { 8 } else { 16 };
    let db = credits::db::connect(url, pool).await?;
    let ledger = Arc::new(credits::service::Engine::new(db.clone(), Arc::new(credits::program::Program::load("arkain")?)));
    let amount = credits::ledger::Credits::parse_str(AMOUNT).map_err(|e| anyhow::anyhow!("{AMOUNT}: {e}"))?;
    let total = closed_loop_of(pick, clients, warmup, seconds, "ledger-", move |account, key| {
        let ledger = ledger.clone();
        async move {
            let request = SpendRequest {
                account,
                amount: Some(amount),
                price: None,
                idempotency_key: key,
                feature: "bench".into(),
                model: None,
                reason: None,
                metadata: None,
            };
            ledger.spend(request, chrono::Utc::now()).await.map(|_| ()).map_err(|e| format!("ledger: {e}"))
        }
    })
    .await;
    db.close().await?;
    Ok(total)
}
