//! Crash safety: the real `credits serve --no-workers` under concurrent spends and claims is
//! killed with SIGKILL, mid-load, then restarted on the same database. Every operation the
//! server acknowledged must have survived: its key replays the same outcome, its journal entry
//! and idempotency record are there, nothing is recorded twice, and the audit is clean.

use crate::on_both;
use crate::support::serve::{ServeProcess, credits_command};
use crate::support::{Backend, SECRET, TestDb};
use credits::auth::{AuthKeys, Role};
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// arkain: daily check-in on, coupons on every program.
const PROGRAM: &str = "arkain";
const ACCOUNTS: usize = 20;
const TASKS: usize = 16;
const COUPONS: usize = 40;
/// Load runs at least this long before the kill, and until this many operations were
/// acknowledged (at most `MAX_LOAD`).
const MIN_LOAD: Duration = Duration::from_millis(700);
const MIN_ACKNOWLEDGED: usize = 150;
const MAX_LOAD: Duration = Duration::from_secs(6);

const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
    spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"chat\"}) { sequence amount availableAfter takes { lotId amount } } }";
const CHECK_IN: &str =
    "mutation($a: ID!, $k: String!) { checkIn(input: {accountId: $a, idempotencyKey: $k}) { day lotId amount expiresAt } }";
const REDEEM: &str = "mutation($a: ID!, $c: String!, $k: String!) { redeemCoupon(input: {accountId: $a, code: $c, idempotencyKey: $k}) { lotId amount expiresAt } }";

/// Refusals that are a key's stored outcome, so a replay must repeat them.
const STORED_REFUSALS: [&str; 4] = ["INSUFFICIENT_CREDITS", "ALREADY_CLAIMED", "COUPON_ALREADY_REDEEMED", "COUPON_EXHAUSTED"];

/// The server, `serve --no-workers` (`support::serve`): killed (SIGKILL) mid-load by the test,
/// and when dropped, so a panic never leaks it.
pub(crate) struct Server;

impl Server {
    pub(crate) async fn start(database_url: &str, dir: &Path, name: &str) -> ServeProcess {
        let mut command = credits_command();
        command
            .env("DATABASE_URL", database_url)
            .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
            .env("CREDITS_PROGRAM", PROGRAM)
            .env("CREDITS_CLAIMS_PER_MINUTE_PER_ACCOUNT", "100000")
            .env("CREDITS_CLAIMS_PER_MINUTE_PER_IP", "100000")
            .env("RUST_LOG", "warn");
        ServeProcess::start(command, &["--no-workers"], dir, name).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Spend,
    CheckIn,
    Coupon,
}

impl Kind {
    fn query(self) -> &'static str {
        match self {
            Kind::Spend => SPEND,
            Kind::CheckIn => CHECK_IN,
            Kind::Coupon => REDEEM,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Kind::Spend => "spendCredits",
            Kind::CheckIn => "checkIn",
            Kind::Coupon => "redeemCoupon",
        }
    }

    /// The journal's and the idempotency records' name of the operation.
    fn operation(self) -> &'static str {
        match self {
            Kind::Spend => "spend",
            Kind::CheckIn => "check_in",
            Kind::Coupon => "redeem_coupon",
        }
    }
}

#[derive(Debug, Clone)]
struct Op {
    kind: Kind,
    account: String,
    key: String,
    variables: Value,
}

/// What the server answered, for an answer that came back whole.
#[derive(Debug)]
enum Answer {
    /// Acknowledged: the operation happened, with this payload.
    Done(Value),
    /// A stored refusal: (message, extensions).
    Refused(Value, Value),
    /// Anything else that came back (UNAVAILABLE, an unexpected code or status).
    Other(String),
}

async fn send(client: &reqwest::Client, address: &str, token: &str, op: &Op) -> Result<Answer, reqwest::Error> {
    let response = client
        .post(format!("{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": op.kind.query(), "variables": op.variables }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(e) if e.is_decode() => return Ok(Answer::Other(format!("HTTP {status}, a body that is not JSON: {e}"))),
        Err(e) => return Err(e),
    };
    if status != 200 {
        return Ok(Answer::Other(format!("HTTP {status}: {body}")));
    }
    if body["errors"].is_null() {
        let data = body["data"][op.kind.field()].clone();
        if data.is_object() {
            return Ok(Answer::Done(data));
        }
        return Ok(Answer::Other(format!("no payload: {body}")));
    }
    let error = &body["errors"][0];
    let code = error["extensions"]["code"].as_str().unwrap_or_default();
    if STORED_REFUSALS.contains(&code) {
        return Ok(Answer::Refused(error["message"].clone(), error["extensions"].clone()));
    }
    Ok(Answer::Other(body.to_string()))
}

#[derive(Default)]
struct Tally {
    done: Vec<(Op, Value)>,
    refused: Vec<(Op, Value, Value)>,
    /// (code or status) -> count, for answers neither acknowledged nor a stored refusal.
    other: HashMap<String, usize>,
    unexpected: Vec<String>,
    /// Requests that were in flight at the kill (or sent after it): no answer came back.
    lost: usize,
}

/// Accounts below this index are poor: no paid grant, and big spends that soon exhaust them.
const POOR: usize = 5;

fn spend_op(rng: &mut impl Rng, index: usize, account: &str, key: String) -> Op {
    // 0.5 to 3 credits (10 to 25 on a poor account), with up to 6 decimals.
    let micros: i64 = if index < POOR { rng.random_range(10_000_000..=25_000_000) } else { rng.random_range(500_000..=3_000_000) };
    let amount = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    Op { kind: Kind::Spend, account: account.to_string(), variables: json!({ "a": account, "amt": amount, "k": key }), key }
}

async fn load(
    task: usize,
    address: Arc<str>,
    token: Arc<str>,
    stop: Arc<AtomicBool>,
    coupons: Arc<Vec<AtomicUsize>>,
    tally: Arc<Mutex<Tally>>,
) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(task as u64 ^ rand::random::<u64>());
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let index = rng.random_range(0..ACCOUNTS);
        let account = format!("acct-{index}");
        let key = format!("t{task}-n{n}");
        let roll = rng.random_range(0..100);
        let op = if roll < 4 {
            Op { kind: Kind::CheckIn, account: account.clone(), variables: json!({ "a": account, "k": key }), key }
        } else if roll < 20 {
            // Each (account, coupon) pair is tried once, so most redemptions succeed.
            match coupons[index].fetch_add(1, Ordering::SeqCst) {
                c if c < COUPONS => {
                    let code = format!("CRASH-{c:02}");
                    Op { kind: Kind::Coupon, account: account.clone(), variables: json!({ "a": account, "c": code, "k": key }), key }
                }
                _ => spend_op(&mut rng, index, &account, key),
            }
        } else {
            spend_op(&mut rng, index, &account, key)
        };
        let answer = send(&client, &address, &token, &op).await;
        let mut tally = tally.lock().unwrap();
        match answer {
            Ok(Answer::Done(data)) => tally.done.push((op, data)),
            Ok(Answer::Refused(message, extensions)) => tally.refused.push((op, message, extensions)),
            Ok(Answer::Other(what)) => {
                let code = serde_json::from_str::<Value>(&what)
                    .ok()
                    .and_then(|b| b["errors"][0]["extensions"]["code"].as_str().map(str::to_string))
                    .unwrap_or_else(|| what.chars().take(40).collect());
                if code != "UNAVAILABLE" && code != "TIMEOUT" {
                    tally.unexpected.push(format!("{op:?}: {what}"));
                }
                *tally.other.entry(code).or_default() += 1;
            }
            Err(_) => tally.lost += 1,
        }
    }
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.expect(sql)
}

async fn acknowledged_operations_survive_a_sigkill(backend: Backend) {
    let started = Instant::now();
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = AuthKeys::new(SECRET);
    let service = keys.issue(Role::Service, None, Duration::from_secs(3600)).unwrap();
    let admin = keys.issue(Role::Admin, Some("ops"), Duration::from_secs(3600)).unwrap();
    let mut server = Server::start(&db.url, dir.path(), "first").await;
    let client = reqwest::Client::new();

    // Seed: accounts with arkain's 50 monthly plan credits, all but the poor ones with paid
    // credits too, and coupons.
    for i in 0..ACCOUNTS {
        let account = format!("acct-{i}");
        let r = crate::support::gql_at(
            &client,
            &server.address,
            &service,
            "mutation($id: ID!) { createAccount(input: {externalId: $id}) { created } }",
            json!({ "id": account }),
        )
        .await;
        assert_eq!(r["data"]["createAccount"]["created"], json!(true), "{r}");
        if i < POOR {
            continue;
        }
        let r = crate::support::gql_at(
            &client,
            &server.address,
            &admin,
            "mutation($a: ID!, $k: String!) { grantCredits(input: {accountId: $a, amount: \"40\", class: PAID, idempotencyKey: $k}) { lotId } }",
            json!({ "a": account, "k": format!("seed-{i}") }),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
    }
    for c in 0..COUPONS {
        let r = crate::support::gql_at(
            &client,
            &server.address,
            &admin,
            "mutation($in: CreateCouponInput!) { createCoupon(input: $in) { code } }",
            json!({ "in": { "code": format!("CRASH-{c:02}"), "credits": "1.5", "validFor": "30 days", "maxRedemptions": 1_000_000 } }),
        )
        .await;
        assert!(r["errors"].is_null(), "{r}");
    }

    // Load, then SIGKILL with requests in flight.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let coupons: Arc<Vec<AtomicUsize>> = Arc::new((0..ACCOUNTS).map(|_| AtomicUsize::new(0)).collect());
    let (address, token): (Arc<str>, Arc<str>) = (server.address.as_str().into(), service.as_str().into());
    let tasks: Vec<_> =
        (0..TASKS).map(|t| tokio::spawn(load(t, address.clone(), token.clone(), stop.clone(), coupons.clone(), tally.clone()))).collect();
    let load_started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let acknowledged = {
            let t = tally.lock().unwrap();
            t.done.len() + t.refused.len()
        };
        let elapsed = load_started.elapsed();
        if (elapsed >= MIN_LOAD && acknowledged >= MIN_ACKNOWLEDGED) || elapsed >= MAX_LOAD {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    server.kill();
    let load_time = load_started.elapsed();
    for task in tasks {
        task.await.expect("a load task");
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    assert!(tally.unexpected.is_empty(), "unexpected answers under load: {:#?}", &tally.unexpected[..tally.unexpected.len().min(10)]);
    assert!(tally.done.len() >= 20, "too little was acknowledged before the kill to test anything: {}", tally.done.len());
    drop(server);

    // Restart on the same database.
    let server = Server::start(&db.url, dir.path(), "second").await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    // The audit, as an operator would run it.
    let audit = Command::new(env!("CARGO_BIN_EXE_credits"))
        .arg("audit")
        .env_remove("CREDITS_CONFIG")
        .env("DATABASE_URL", &db.url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("CREDITS_PROGRAM", PROGRAM)
        .env("RUST_LOG", "error")
        .current_dir(dir.path())
        .output()
        .expect("credits audit runs");
    let audit_report = String::from_utf8_lossy(&audit.stdout).to_string();
    assert!(audit.status.success(), "the audit failed after the crash:\n{audit_report}\n{}", String::from_utf8_lossy(&audit.stderr));

    // Every acknowledged outcome replays identically under its key.
    use futures::StreamExt;
    let replays = futures::stream::iter(
        tally
            .done
            .iter()
            .map(|(op, data)| (op, Some(data), None))
            .chain(tally.refused.iter().map(|(op, message, extensions)| (op, None, Some((message, extensions))))),
    )
    .map(|(op, data, refusal)| {
        let (client, address, token) = (&client, server.address.as_str(), service.as_str());
        async move {
            let answer = send(client, address, token, op).await.unwrap_or_else(|e| panic!("replay of {op:?}: {e}"));
            match (answer, data, refusal) {
                (Answer::Done(replayed), Some(data), None) => {
                    assert_eq!(&replayed, data, "an acknowledged {:?} replays its outcome: {op:?}", op.kind)
                }
                (Answer::Refused(message, extensions), None, Some((m, e))) => {
                    assert_eq!((&message, &extensions), (m, e), "an acknowledged refusal replays: {op:?}")
                }
                (answer, data, refusal) => panic!("{op:?} was acknowledged as {data:?} / {refusal:?}, now replays as {answer:?}"),
            }
        }
    })
    .buffer_unordered(TASKS)
    .collect::<Vec<()>>()
    .await;
    assert_eq!(replays.len(), tally.done.len() + tally.refused.len());

    // And the books show each one, exactly once.
    let conn = credits::db::connect(&db.url, 2).await.expect("connect to the database");
    let mut journal: HashMap<(String, String, String), (i64, usize)> = HashMap::new();
    for row in rows(
        &conn,
        "SELECT a.external_id, je.operation, je.idempotency_key, je.amount_micros FROM journal_entries je \
         JOIN accounts a ON a.id = je.account_id \
         WHERE je.idempotency_key IS NOT NULL AND je.operation IN ('spend', 'check_in', 'redeem_coupon')",
    )
    .await
    {
        let id = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap());
        let amount: i64 = row.try_get_by_index(3).unwrap();
        let seen = journal.entry(id).or_insert((amount, 0));
        seen.1 += 1;
    }
    let duplicated: Vec<_> = journal.iter().filter(|(_, (_, n))| *n > 1).collect();
    assert!(duplicated.is_empty(), "keyed operations recorded more than once: {duplicated:?}");
    let stored: HashSet<(String, String, String)> =
        rows(&conn, "SELECT a.external_id, ik.operation, ik.key FROM idempotency_keys ik JOIN accounts a ON a.id = ik.account_id")
            .await
            .iter()
            .map(|row| (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap()))
            .collect();
    let micros = |decimal: &Value| -> i64 {
        let d: rust_decimal::Decimal = decimal.as_str().expect("a Decimal string").parse().unwrap();
        i64::try_from((d * rust_decimal::Decimal::from(1_000_000)).trunc()).unwrap()
    };
    let mut per_kind: HashMap<Kind, usize> = HashMap::new();
    for (op, data) in &tally.done {
        let id = (op.account.clone(), op.kind.operation().to_string(), op.key.clone());
        let (amount, _) = journal.get(&id).unwrap_or_else(|| panic!("acknowledged {op:?} ({data}) is not in the journal"));
        let expected = match op.kind {
            Kind::Spend => -micros(&data["amount"]),
            Kind::CheckIn | Kind::Coupon => micros(&data["amount"]),
        };
        assert_eq!(*amount, expected, "the journal's amount for {op:?}");
        assert!(stored.contains(&id), "acknowledged {op:?} has no idempotency record");
        *per_kind.entry(op.kind).or_default() += 1;
    }
    for (op, _, extensions) in &tally.refused {
        let id = (op.account.clone(), op.kind.operation().to_string(), op.key.clone());
        assert!(stored.contains(&id), "acknowledged refusal {op:?} ({extensions}) has no idempotency record");
        assert!(!journal.contains_key(&id), "refused {op:?} moved credits");
    }

    // No overdraft anywhere: the CHECK constraints and the audit say so; so must the API.
    let negative =
        rows(&conn, "SELECT id FROM accounts WHERE balance_micros < 0 UNION ALL SELECT id FROM lots WHERE remaining_micros < 0").await;
    assert!(negative.is_empty(), "{} negative balances or lots", negative.len());
    for i in 0..ACCOUNTS {
        let r = crate::support::gql_at(
            &client,
            &server.address,
            &service,
            "query($a: ID!) { account(id: $a) { balance { total available } } }",
            json!({ "a": format!("acct-{i}") }),
        )
        .await;
        let total = micros(&r["data"]["account"]["balance"]["total"]);
        assert!(total >= 0, "{r}");
    }
    let report = credits::audit::run(&conn, chrono::Utc::now()).await.expect("the audit runs");
    assert!(report.is_clean(), "{report}");
    let _ = conn.close().await;

    for name in ["first", "second"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default();
        assert!(!log.contains("panicked"), "the {name} server panicked:\n{log}");
    }

    println!(
        "crash {backend:?}: acknowledged {} spends, {} check-ins, {} coupon redemptions, {} stored refusals in {:.2} s of load; \
         {} in flight lost at the SIGKILL; other answers {:?}; after restart every outcome replays and is in the books once; \
         audit: {} ({:.1} s in all)",
        per_kind.get(&Kind::Spend).copied().unwrap_or(0),
        per_kind.get(&Kind::CheckIn).copied().unwrap_or(0),
        per_kind.get(&Kind::Coupon).copied().unwrap_or(0),
        tally.refused.len(),
        load_time.as_secs_f64(),
        tally.lost,
        tally.other,
        audit_report.lines().last().unwrap_or_default(),
        started.elapsed().as_secs_f64(),
    );
}

on_both!(acknowledged_operations_survive_a_sigkill);
