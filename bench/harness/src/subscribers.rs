//! The `subscribers` scenario (issue 30): one `balanceChanged` subscriber on each of the seeded
//! accounts (10,000 by default), all held by one `serve` process, and what they cost it.
//!
//! 1. Closed-loop `spendCredits` over random accounts with no subscriber, at each `--clients`.
//! 2. The subscriptions: a service token (it may watch any account), as many operations on each
//!    WebSocket as `max_subscriptions_per_connection` allows and as many WebSockets from each
//!    client address as `max_websockets_per_address` allows (the server runs with the defaults,
//!    20 and 50), so 500 WebSockets from 127.0.0.2 .. 127.0.0.11 for 10,000 accounts; one
//!    subscription per account, well under `max_subscriptions_per_account`. Every subscription is
//!    live once its first value (the balance now) has come. The server's memory is read
//!    (`/proc/<pid>/status`) before, with the WebSockets open and acknowledged but nothing
//!    subscribed, and with every subscription idle: what a WebSocket costs, and a subscription.
//! 3. The same spends with the subscribers connected. Every spend's answer carries the
//!    account's `availableAfter`; each push carries the account's `available`. Only these spends
//!    change these balances, so a push whose `available` is at most a spend's `availableAfter`
//!    was read after that spend committed: the first such push on the account is the spend's
//!    delivery (two spends close together may share one push). Latency is from the spend's
//!    answer (a push that comes first counts as 0) and, for reference, from its send.
//! 4. The subscribers close, and the spends run once more without them: the machine's drift
//!    over the run, beside the comparison that counts (the first run against the second). The
//!    database grows through the run, so the phase after closing is usually the slowest of the
//!    three; the table also gives the run with subscribers against the mean of the two without,
//!    one before and one after it (a drift that is steady cancels out there).
//!
//! The feed differs by database (`credits::feed`): PostgreSQL notifies at each commit, SQLite's
//! feed polls the journal every 200 ms, so on SQLite a push waits up to 200 ms by design, and the
//! latency target is PostgreSQL's. Both are run: memory and throughput are the same question.

use crate::Db;
use crate::server::Server;
use anyhow::{Context, bail};
use credits::ledger::Credits;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SPEND: &str = "mutation Spend($input: SpendCreditsInput!) { spendCredits(input: $input) { availableAfter } }";
const WATCH: &str = "subscription Watch($a: ID!) { balanceChanged(accountId: $a) { balance { available } } }";
/// The first client address of the subscribers' WebSockets (the spends come from 127.0.0.1).
const FIRST_ADDRESS: u8 = 2;
/// WebSockets being opened at once.
const OPENING: usize = 16;
/// How long every subscription together may take to get its first value.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(300);
/// How long one WebSocket may take to be acknowledged, or to close.
const SOCKET_WITHIN: Duration = Duration::from_secs(30);
/// The subscribers idle this long, connected, before the server's memory is read.
const IDLE: Duration = Duration::from_secs(3);
/// After the last spend, how long its push may take before it counts as missing (SQLite's feed
/// polls every 200 ms).
const GRACE: Duration = Duration::from_secs(3);
/// Descriptors beyond the sockets, for the server's own (database, listeners, log).
const SPARE_DESCRIPTORS: u64 = 256;

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// One spend answered with the account's balance after it.
struct Spend {
    account: u32,
    available_after_micros: i64,
    sent: Instant,
    answered: Instant,
    /// Sent after the warm-up and answered inside the window: counted in the throughput.
    counted: bool,
}

/// One closed-loop run of spends.
struct Phase {
    /// Every spend answered, warm-up included (each one should be pushed).
    spends: Vec<Spend>,
    /// Spends counted in the window.
    counted: u64,
    errors: u64,
    first_error: Option<String>,
    /// The counted spends' HTTP latency, in microseconds.
    latency: Histogram<u64>,
    seconds: f64,
    /// The server's CPU time over the whole run, warm-up included.
    server_cpu_seconds: f64,
}

impl Phase {
    fn throughput(&self) -> f64 {
        self.counted as f64 / self.seconds
    }

    fn server_cpu_ms_per_spend(&self) -> f64 {
        self.server_cpu_seconds * 1000.0 / self.spends.len().max(1) as f64
    }
}

/// One push of a subscription: the account and its `available`, when it arrived.
struct Push {
    account: u32,
    available_micros: i64,
    at: Instant,
}

/// What the server's `/proc/<pid>/status` says.
#[derive(Clone, Copy)]
struct Memory {
    rss_kib: u64,
    peak_kib: u64,
    threads: u64,
}

impl Memory {
    fn read(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("read /proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse::<u64>().ok())
                .with_context(|| format!("{name} in /proc/{pid}/status"))
        };
        Ok(Memory { rss_kib: field("VmRSS:")?, peak_kib: field("VmHWM:")?, threads: field("Threads:")? })
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The server's CPU time so far (utime + stime of all its threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return f64::NAN };
    // After the command (in parentheses): state is the 1st field, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        // Procfs counts in USER_HZ, which is 100 on Linux whatever the kernel's own tick rate.
        (Some(user), Some(system)) => (user + system) as f64 / 100.0,
        _ => f64::NAN,
    }
}

/// The soft and hard limits of open descriptors in `/proc/<pid>/limits`.
fn descriptor_limits(pid: u32) -> anyhow::Result<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits.lines().find(|l| l.starts_with("Max open files")).context("no 'Max open files' line")?;
    let value = |v: &str| if v == "unlimited" { Ok(u64::MAX) } else { v.parse::<u64>().context("a descriptor limit") };
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    Ok((value(fields.first().context("a soft limit")?)?, value(fields.get(1).context("a hard limit")?)?))
}

/// Raises this process's descriptor limit to its hard limit, and the server's too if it is short
/// of `needed` (it inherited this process's limit when it started, so it is normally already
/// high enough). Says what both are.
fn raise_descriptors(server: u32, needed: u64) -> anyhow::Result<String> {
    use rustix::process::{Resource, Rlimit, getrlimit, prlimit, setrlimit};
    let own = getrlimit(Resource::Nofile);
    if own.current != own.maximum {
        setrlimit(Resource::Nofile, Rlimit { current: own.maximum, maximum: own.maximum }).context("raise RLIMIT_NOFILE")?;
    }
    let (own_soft, _) = descriptor_limits(std::process::id())?;
    let (soft, hard) = descriptor_limits(server)?;
    if soft < needed {
        let pid = rustix::process::Pid::from_raw(server as i32).context("the server's pid")?;
        prlimit(Some(pid), Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) })
            .context("raise the server's RLIMIT_NOFILE")?;
        eprintln!(
            "subscribers: the server's descriptor limit was {soft}, raised to {hard}; its max_connections was sized from the \
             old limit at its start"
        );
    }
    let (soft, _) = descriptor_limits(server)?;
    anyhow::ensure!(soft >= needed, "the server may open {soft} descriptors, {needed} are needed: raise `ulimit -n` and run again");
    Ok(format!("descriptors: this process {own_soft}, the server {soft} (/proc/{server}/limits); {needed} needed"))
}

/// Sends spends over HTTP with a service token.
struct Spender {
    client: reqwest::Client,
    url: String,
    authorization: String,
}

impl Spender {
    /// One spend of `crate::load::AMOUNT`: the account's available credits after it, in
    /// micro-credits.
    async fn spend(&self, account: u32, key: &str) -> Result<i64, String> {
        let body = json!({
            "query": SPEND,
            "variables": { "input": { "accountId": format!("bench-{account}"), "amount": crate::load::AMOUNT, "feature": "bench", "idempotencyKey": key } },
        });
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("body: {e}"))?;
        let short = || text.chars().take(300).collect::<String>();
        let answer: Value = serde_json::from_str(&text).map_err(|_| format!("HTTP {status}: {}", short()))?;
        if !status.is_success() || answer.get("errors").is_some_and(|e| !e.is_null()) {
            return Err(format!("HTTP {status}: {}", short()));
        }
        let available =
            answer["data"]["spendCredits"]["availableAfter"].as_str().ok_or_else(|| format!("no availableAfter: {}", short()))?;
        Credits::parse_str(available).map(Credits::micros).map_err(|e| format!("availableAfter {available}: {e}"))
    }
}

/// `clients` closed-loop clients spending on random accounts for `warmup + seconds`.
/// `spends` at each client count, each printed as it ends (`what`: the phase's name).
#[allow(clippy::too_many_arguments)]
async fn phases(
    spender: &Arc<Spender>,
    db: Db,
    pid: u32,
    accounts: u32,
    clients: &[usize],
    warmup: Duration,
    seconds: Duration,
    what: &str,
) -> Vec<Phase> {
    let mut runs = Vec::with_capacity(clients.len());
    for &n in clients {
        let phase = spends(spender, pid, accounts, n, warmup, seconds).await;
        print_phase(db, n, what, &phase);
        runs.push(phase);
    }
    runs
}

async fn spends(spender: &Arc<Spender>, pid: u32, accounts: u32, clients: usize, warmup: Duration, seconds: Duration) -> Phase {
    let run = crate::load::run_id();
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    let (from, end) = (start + warmup, start + warmup + seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (spender, run) = (spender.clone(), run.clone());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(rand::random());
            let mut phase = Phase {
                spends: Vec::new(),
                counted: 0,
                errors: 0,
                first_error: None,
                latency: crate::load::histogram(),
                seconds: seconds.as_secs_f64(),
                server_cpu_seconds: 0.0,
            };
            for seq in 0u64.. {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let account = rng.random_range(0..accounts);
                let outcome = spender.spend(account, &format!("subscribers-{run}-{client}-{seq}")).await;
                let answered = Instant::now();
                let counted = sent >= from && answered <= end;
                match outcome {
                    Ok(available_after_micros) => {
                        if counted {
                            phase.counted += 1;
                            phase.latency.saturating_record(((answered - sent).as_micros() as u64).max(1));
                        }
                        phase.spends.push(Spend { account, available_after_micros, sent, answered, counted });
                    }
                    Err(e) => {
                        if counted {
                            phase.errors += 1;
                        }
                        phase.first_error.get_or_insert(e);
                    }
                }
            }
            phase
        });
    }
    let mut total = Phase {
        spends: Vec::new(),
        counted: 0,
        errors: 0,
        first_error: None,
        latency: crate::load::histogram(),
        seconds: seconds.as_secs_f64(),
        server_cpu_seconds: 0.0,
    };
    while let Some(phase) = tasks.join_next().await {
        let phase = phase.expect("a spending client");
        total.spends.extend(phase.spends);
        total.counted += phase.counted;
        total.errors += phase.errors;
        total.latency.add(&phase.latency).expect("histograms of the same bounds");
        if total.first_error.is_none() {
            total.first_error = phase.first_error;
        }
    }
    total.server_cpu_seconds = cpu_seconds(pid) - cpu_before;
    total
}

/// The open WebSockets, each read by a task of its own until `stop`.
struct Subscribers {
    stop: watch::Sender<bool>,
    readers: Vec<JoinHandle<Vec<Push>>>,
    /// What went wrong on any of them: an error message, a close, a subscription completed.
    problems: Arc<Mutex<Vec<String>>>,
}

impl Subscribers {
    /// One subscription per account on each of `sockets` (acknowledged WebSockets, each with its
    /// accounts); returns once every subscription has its first value.
    async fn subscribe(sockets: Vec<(Socket, Vec<u32>)>) -> anyhow::Result<Subscribers> {
        let accounts: usize = sockets.iter().map(|(_, watched)| watched.len()).sum();
        let (stop, stopped) = watch::channel(false);
        let first_values = Arc::new(AtomicUsize::new(0));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let readers = sockets
            .into_iter()
            .map(|(socket, watched)| tokio::spawn(listen(socket, watched, first_values.clone(), problems.clone(), stopped.clone())))
            .collect();
        let subscribers = Subscribers { stop, readers, problems };
        let deadline = Instant::now() + SUBSCRIBE_WITHIN;
        loop {
            let live = first_values.load(Ordering::Acquire);
            let problem = subscribers.problems.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).first().cloned();
            if let Some(problem) = problem {
                subscribers.close().await;
                bail!("{live} of {accounts} subscriptions had their first value, then: {problem}");
            }
            if live >= accounts {
                return Ok(subscribers);
            }
            if Instant::now() > deadline {
                subscribers.close().await;
                bail!("only {live} of {accounts} subscriptions had their first value within {SUBSCRIBE_WITHIN:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes every WebSocket; returns every push received, and what went wrong.
    async fn close(self) -> (Vec<Push>, Vec<String>) {
        let _ = self.stop.send(true);
        let mut pushes = Vec::new();
        for reader in self.readers {
            if let Ok(heard) = reader.await {
                pushes.extend(heard);
            }
        }
        let problems = std::mem::take(&mut *self.problems.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        (pushes, problems)
    }
}

/// Acknowledged WebSockets for `accounts` accounts, `per_socket` accounts to each, `per_address`
/// WebSockets from each client address (127.0.0.2, then .3, ...); each with its accounts.
async fn connect_all(
    base: &str,
    token: &str,
    accounts: u32,
    per_socket: usize,
    per_address: usize,
) -> anyhow::Result<Vec<(Socket, Vec<u32>)>> {
    let server: SocketAddr = base.trim_start_matches("http://").parse().with_context(|| format!("the server's address in {base}"))?;
    let url = format!("{}/graphql/ws", base.replace("http://", "ws://"));
    let plan: Vec<(IpAddr, Vec<u32>)> = (0..accounts)
        .collect::<Vec<u32>>()
        .chunks(per_socket)
        .enumerate()
        .map(|(i, chunk)| (IpAddr::V4(Ipv4Addr::new(127, 0, 0, FIRST_ADDRESS + (i / per_address) as u8)), chunk.to_vec()))
        .collect();
    futures_util::stream::iter(plan)
        .map(|(local, watched)| {
            let (url, token) = (url.clone(), token.to_string());
            async move {
                let socket = match tokio::time::timeout(SOCKET_WITHIN, connect(server, local, &url, &token)).await {
                    Ok(socket) => socket,
                    Err(_) => Err(anyhow::anyhow!("not acknowledged within {SOCKET_WITHIN:?}")),
                };
                anyhow::Ok((socket.with_context(|| format!("a WebSocket from {local}"))?, watched))
            }
        })
        .buffer_unordered(OPENING)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// A WebSocket from `local` to the server, acknowledged (`connection_init` with the token).
async fn connect(server: SocketAddr, local: IpAddr, url: &str, token: &str) -> anyhow::Result<Socket> {
    let tcp = tokio::net::TcpSocket::new_v4()?;
    tcp.bind(SocketAddr::new(local, 0)).with_context(|| format!("bind {local}"))?;
    let stream = tcp.connect(server).await.with_context(|| format!("connect to {server}"))?;
    // No Nagle: a push is one small frame, which would otherwise wait for a delayed ACK.
    stream.set_nodelay(true)?;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::client_async_with_config(request, stream, None).await.context("the WebSocket upgrade")?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::Text(init.to_string().into())).await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text)?;
                match message["type"].as_str() {
                    Some("connection_ack") => return Ok(socket),
                    Some("ping") => socket.send(Message::Text(json!({ "type": "pong" }).to_string().into())).await?,
                    _ => bail!("instead of connection_ack: {text}"),
                }
            }
            Some(Ok(Message::Close(frame))) => bail!("closed before connection_ack: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("ended before connection_ack"),
        }
    }
}

/// Subscribes to each of `watched` on one WebSocket, then reads it until `stop`: every push,
/// timed on arrival. Counts each subscription's first value in `first_values`.
async fn listen(
    mut socket: Socket,
    watched: Vec<u32>,
    first_values: Arc<AtomicUsize>,
    problems: Arc<Mutex<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Push> {
    let problem = |what: String| problems.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(what);
    let mut pushes = Vec::new();
    for account in &watched {
        let variables = json!({ "a": format!("bench-{account}") });
        let subscribe = json!({ "id": account.to_string(), "type": "subscribe", "payload": { "query": WATCH, "variables": variables } });
        if let Err(e) = socket.send(Message::Text(subscribe.to_string().into())).await {
            problem(format!("send a subscribe message: {e}"));
            return pushes;
        }
    }
    let mut seen = HashSet::with_capacity(watched.len());
    loop {
        tokio::select! {
            message = socket.next() => {
                let at = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => {
                        let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let account = message["id"].as_str().and_then(|id| id.parse::<u32>().ok());
                        let available = message["payload"]["data"]["balanceChanged"]["balance"]["available"].as_str();
                        match (message["type"].as_str(), account, available.map(Credits::parse_str)) {
                            (Some("next"), Some(account), Some(Ok(available))) => {
                                if seen.insert(account) {
                                    first_values.fetch_add(1, Ordering::AcqRel);
                                }
                                pushes.push(Push { account, available_micros: available.micros(), at });
                            }
                            (Some("ping"), _, _) => {
                                let _ = socket.send(Message::Text(json!({ "type": "pong" }).to_string().into())).await;
                            }
                            (Some("pong"), _, _) => {}
                            _ => problem(text.chars().take(300).collect()),
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        problem(format!("closed by the server: {frame:?}"));
                        return pushes;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        problem(format!("read: {e}"));
                        return pushes;
                    }
                    None => {
                        problem("the WebSocket ended".to_string());
                        return pushes;
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    // Closed from this side: wait for the server's close, so that it has let go of the
    // subscriptions when the caller reads its memory.
    let _ = socket.close(None).await;
    let _ = tokio::time::timeout(SOCKET_WITHIN, async { while let Some(Ok(_)) = socket.next().await {} }).await;
    pushes
}

/// How the spends of one run with subscribers were pushed.
struct Delivery {
    /// Spends with subscribers, warm-up included.
    spends: usize,
    /// A push carried exactly the spend's `availableAfter`.
    exact: usize,
    /// The first push after the spend carried a later balance (spends close together on one
    /// account, read once).
    coalesced: usize,
    /// No push reflected the spend.
    missing: usize,
    /// Push arrival from the spend's answer, counted spends; 0 when the push came first.
    from_answer: Histogram<u64>,
    /// Pushes that arrived before the spend's answer did.
    before_answer: usize,
    /// Push arrival from the spend's send, counted spends.
    from_send: Histogram<u64>,
}

/// Each spend's push: the first on its account whose balance is at most the spend's
/// `availableAfter` (balances only fall in this run, so that push was read after the spend).
fn deliveries(spends: &[Spend], pushes: &HashMap<u32, Vec<&Push>>) -> Delivery {
    let mut delivery = Delivery {
        spends: spends.len(),
        exact: 0,
        coalesced: 0,
        missing: 0,
        from_answer: crate::load::histogram(),
        before_answer: 0,
        from_send: crate::load::histogram(),
    };
    for spend in spends {
        let first =
            pushes.get(&spend.account).and_then(|pushes| pushes.iter().find(|p| p.available_micros <= spend.available_after_micros));
        let Some(push) = first else {
            delivery.missing += 1;
            continue;
        };
        if push.available_micros == spend.available_after_micros {
            delivery.exact += 1;
        } else {
            delivery.coalesced += 1;
        }
        if !spend.counted {
            continue;
        }
        if push.at < spend.answered {
            delivery.before_answer += 1;
        }
        let micros = |since: Instant| (push.at.saturating_duration_since(since).as_micros() as u64).max(1);
        delivery.from_answer.saturating_record(micros(spend.answered));
        delivery.from_send.saturating_record(micros(spend.sent));
    }
    delivery
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    if histogram.is_empty() { f64::NAN } else { histogram.value_at_quantile(quantile) as f64 / 1000.0 }
}

fn max_ms(histogram: &Histogram<u64>) -> f64 {
    if histogram.is_empty() { f64::NAN } else { histogram.max() as f64 / 1000.0 }
}

fn print_phase(db: Db, clients: usize, what: &str, phase: &Phase) {
    println!(
        "{:<11} {:<8} {clients:>7} {what:<17} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7}  server CPU {:.3} ms/spend",
        "subscribers",
        db.label(),
        phase.throughput(),
        ms(&phase.latency, 0.5),
        ms(&phase.latency, 0.99),
        max_ms(&phase.latency),
        phase.errors,
        phase.server_cpu_ms_per_spend()
    );
    if let Some(e) = &phase.first_error {
        eprintln!("  first error of {} ({} {clients} clients, {what}): {e}", phase.errors, db.label());
    }
}

/// The scenario on one database, against the first server process (`server`), which must run
/// with the default WebSocket limits. Prints its figures, its targets and two markdown tables.
pub async fn run(
    db: Db,
    server: &Server,
    token: &str,
    accounts: usize,
    clients: &[usize],
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<()> {
    let limits = credits::app::Security::default();
    let (per_socket, per_address) = (limits.max_subscriptions_per_connection, limits.max_websockets_per_address);
    let sockets = accounts.div_ceil(per_socket);
    let addresses = sockets.div_ceil(per_address);
    let most_clients = clients.iter().copied().max().unwrap_or(1);
    anyhow::ensure!(
        usize::from(FIRST_ADDRESS) + addresses <= 255,
        "{accounts} subscribers need {addresses} client addresses: 127.0.0.x has 253"
    );
    anyhow::ensure!(
        sockets + most_clients < limits.max_connections,
        "{sockets} WebSockets and {most_clients} clients: over the server's max_connections ({})",
        limits.max_connections
    );
    let accounts = u32::try_from(accounts).context("accounts")?;
    println!("subscribers {}: {}", db.label(), raise_descriptors(server.pid, (sockets + most_clients) as u64 + SPARE_DESCRIPTORS)?);
    let spender = Arc::new(Spender {
        client: reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build()?,
        url: format!("{}/graphql", server.base),
        authorization: format!("Bearer {token}"),
    });
    let pid = server.pid;

    let without = phases(&spender, db, pid, accounts, clients, warmup, seconds, "no subscribers").await;

    let before = Memory::read(pid)?;
    let opening = Instant::now();
    let sockets_open = connect_all(&server.base, token, accounts, per_socket, per_address).await?;
    let connected_in = opening.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected = Memory::read(pid)?;
    let subscribing = Instant::now();
    let subscribers = Subscribers::subscribe(sockets_open).await?;
    let subscribed_in = subscribing.elapsed();
    let idle_cpu = cpu_seconds(pid);
    tokio::time::sleep(IDLE).await;
    let idle_cpu_percent = (cpu_seconds(pid) - idle_cpu) * 100.0 / IDLE.as_secs_f64();
    let subscribed = Memory::read(pid)?;
    println!(
        "subscribers {}: {sockets} WebSockets from {addresses} addresses acknowledged in {:.1} s, {accounts} subscriptions on them all \
         live in {:.1} s; server RSS {:.1} MiB before, {:.1} MiB with the WebSockets, {:.1} MiB with the subscriptions idle ({} \
         threads, {idle_cpu_percent:.1}% of a core idle)",
        db.label(),
        connected_in.as_secs_f64(),
        subscribed_in.as_secs_f64(),
        mib(before.rss_kib),
        mib(connected.rss_kib),
        mib(subscribed.rss_kib),
        subscribed.threads
    );

    let with = phases(&spender, db, pid, accounts, clients, warmup, seconds, "with subscribers").await;
    tokio::time::sleep(GRACE).await;
    let loaded = Memory::read(pid)?;
    let (pushes, problems) = subscribers.close().await;
    let closed = Memory::read(pid)?;
    for problem in problems.iter().take(5) {
        eprintln!("  subscribers {}: {problem}", db.label());
    }

    let after = phases(&spender, db, pid, accounts, clients, warmup, seconds, "after closing").await;
    let end = Memory::read(pid)?;

    let mut by_account: HashMap<u32, Vec<&Push>> = HashMap::new();
    for push in &pushes {
        by_account.entry(push.account).or_default().push(push);
    }
    for pushes in by_account.values_mut() {
        pushes.sort_by_key(|p| p.at);
    }
    // Every subscription's first value is the balance when it joined, not a spend's push.
    let spend_pushes = pushes.len().saturating_sub(by_account.len());
    let delivered: Vec<Delivery> = with.iter().map(|phase| deliveries(&phase.spends, &by_account)).collect();

    let label = db.label();
    println!("\n**subscribers, {label}**: {accounts} `balanceChanged` subscribers on one server, {sockets} WebSockets\n");
    println!(
        "| clients | spends/s, no subscribers | spends/s, {accounts} subscribers | with / without | spends/s, after closing | with / mean of both without | server CPU ms/spend, \
         without | with | push p50 ms | push p99 ms | push max ms | p99 ms from send | spends with subscribers | pushed exactly | in a \
         later push | missing | errors |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, &n) in clients.iter().enumerate() {
        let (off, on, again, delivery) = (&without[i], &with[i], &after[i], &delivered[i]);
        println!(
            "| {n} | {:.0} | {:.0} | **{:.2}** | {:.0} | {:.2} | {:.3} | {:.3} | {:.1} | **{:.1}** | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            off.throughput(),
            on.throughput(),
            on.throughput() / off.throughput(),
            again.throughput(),
            on.throughput() * 2.0 / (off.throughput() + again.throughput()),
            off.server_cpu_ms_per_spend(),
            on.server_cpu_ms_per_spend(),
            ms(&delivery.from_answer, 0.5),
            ms(&delivery.from_answer, 0.99),
            max_ms(&delivery.from_answer),
            ms(&delivery.from_send, 0.99),
            delivery.spends,
            delivery.exact,
            delivery.coalesced,
            delivery.missing,
            off.errors + on.errors + again.errors,
        );
    }
    println!(
        "\n| server | RSS MiB | peak (VmHWM) MiB | threads |\n|---|---:|---:|---:|\n| before subscribing | {:.1} | {:.1} | {} |\n| {sockets} \
         WebSockets acknowledged, no subscription ({:.1} s to open) | {:.1} | {:.1} | {} |\n| {accounts} subscribers on them, idle ({:.1} s \
         to subscribe; {idle_cpu_percent:.1}% of a core idle) | {:.1} | {:.1} | {} |\n| after the spends with them | {:.1} | {:.1} | {} |\n| \
         after closing them | {:.1} | {:.1} | {} |\n| at the end | {:.1} | {:.1} | {} |\n",
        mib(before.rss_kib),
        mib(before.peak_kib),
        before.threads,
        connected_in.as_secs_f64(),
        mib(connected.rss_kib),
        mib(connected.peak_kib),
        connected.threads,
        subscribed_in.as_secs_f64(),
        mib(subscribed.rss_kib),
        mib(subscribed.peak_kib),
        subscribed.threads,
        mib(loaded.rss_kib),
        mib(loaded.peak_kib),
        loaded.threads,
        mib(closed.rss_kib),
        mib(closed.peak_kib),
        closed.threads,
        mib(end.rss_kib),
        mib(end.peak_kib),
        end.threads,
    );

    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let spent: usize = delivered.iter().map(|d| d.spends).sum();
    let missing: usize = delivered.iter().map(|d| d.missing).sum();
    let before_answer: usize = delivered.iter().map(|d| d.before_answer).sum();
    println!("targets (subscribers, {label}):");
    // The peak while the subscribers were connected (they closed before the last spends).
    let peak_mb = mib(loaded.peak_kib) * 1.048_576;
    println!("  {label:<8} server peak RSS with {accounts} subscribers: {peak_mb:.1} MB (target < 300 MB): {}", verdict(peak_mb < 300.0));
    for (i, &n) in clients.iter().enumerate() {
        let p99 = ms(&delivered[i].from_answer, 0.99);
        let goal = if db == Db::Postgres { verdict(p99 < 100.0) } else { "(target is PostgreSQL's: SQLite's feed polls every 200 ms)" };
        println!("  {label:<8} push p99 from the spend's answer, {n} clients: {p99:.1} ms (target < 100 ms): {goal}");
        let ratio = with[i].throughput() / without[i].throughput();
        println!(
            "  {label:<8} spends/s with over without subscribers, {n} clients: {ratio:.2} (target >= 0.90): {}",
            verdict(ratio >= 0.9)
        );
    }
    println!(
        "  {label:<8} {spent} spends with subscribers, {spend_pushes} pushes after the first values, {missing} spends never pushed, \
         {before_answer} pushes before their spend's answer; {} subscription problems: {}",
        problems.len(),
        if missing == 0 && problems.is_empty() { "met" } else { "MISSED" }
    );
    Ok(())
}
