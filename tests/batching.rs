//! Group commit of spends (src/service/batch.rs): concurrent spends committed in one transaction
//! must each get exactly the outcome they would have had alone, and one spend that fails in the
//! database must not fail the others of its batch.
//!
//! To make batches certain rather than likely, a second connection holds the write lock on the
//! accounts (row locks on PostgreSQL, the database's write lock on SQLite) while the requests
//! arrive, so they pile up in the queue; it lets go once every request is waiting.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code, poison, unpoison};
use credits::ledger::Credits;
use credits::service::ServiceError;
use credits::service::spending::{SpendReceipt, SpendRequest};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions, TransactionTrait};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
    spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"chat\"}) { sequence amount availableAfter takes { lotId amount } } }";

/// Holds the write lock on `accounts` until dropped or committed.
async fn hold_accounts(db: &DatabaseConnection, accounts: &[&str]) -> DatabaseTransaction {
    let txn = db
        .begin_with_options(TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() })
        .await
        .unwrap();
    let list = accounts.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ");
    txn.execute_unprepared(&format!("UPDATE accounts SET balance_micros = balance_micros WHERE external_id IN ({list})")).await.unwrap();
    txn
}

/// Accounts `held` and `other-0` .. `other-{n-1}`, 10 paid credits each, and a transaction on a
/// connection of its own holding `held` (the connection is returned to outlive it).
async fn others_and_one_held(app: &TestApp, n: usize) -> (Vec<String>, DatabaseConnection, DatabaseTransaction) {
    let others: Vec<String> = (0..n).map(|i| format!("other-{i}")).collect();
    for id in std::iter::once("held").chain(others.iter().map(String::as_str)) {
        app.create_account(id).await;
        app.grant(id, "10", "PAID", None, &format!("g-{id}")).await;
    }
    let blocker = credits::db::connect(&app.db.url, 1).await.unwrap();
    let lock = hold_accounts(&blocker, &["held"]).await;
    (others, blocker, lock)
}

/// Sends every (account, amount, key) at once while the accounts are held, lets go once they
/// all wait, and returns the responses in the order given.
async fn spend_in_one_burst(app: &TestApp, held: &[&str], spends: &[(&str, &str, String)]) -> Vec<Value> {
    let blocker = credits::db::connect(&app.db.url, 1).await.unwrap();
    let lock = hold_accounts(&blocker, held).await;
    let before = app.ledger.spends.stats();
    let tasks: Vec<_> = spends
        .iter()
        .map(|(account, amount, key)| {
            let (client, address, token) = (app.client.clone(), app.address.clone(), app.service.clone());
            let variables = json!({ "a": account, "amt": amount, "k": key });
            tokio::spawn(async move { crate::support::gql_at(&client, &address, &token, SPEND, variables).await })
        })
        .collect();
    // Every request is either waiting in the queue or taken into a batch (blocked on the lock,
    // or done if it needed no held account).
    let arrived = || app.ledger.spends.waiting() as u64 + (app.ledger.spends.stats().spends - before.spends);
    for _ in 0..1000 {
        if arrived() >= spends.len() as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(arrived(), spends.len() as u64, "the requests never queued up");
    lock.commit().await.unwrap();
    let responses: Vec<Value> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    let after = app.ledger.spends.stats();
    assert!(after.largest > 1, "the burst was committed together: {before:?} -> {after:?}");
    assert!(after.batches - before.batches < spends.len() as u64, "fewer batches than spends: {before:?} -> {after:?}");
    responses
}

fn outcome(response: &Value) -> String {
    if response["errors"].is_null() { "ok".to_string() } else { error_code(response).to_string() }
}

async fn concurrent_spends_are_committed_together_and_each_is_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for id in ["alice", "bob", "carol", "dave"] {
        app.create_account(id).await;
    }
    let now = app.clock.now();
    app.grant("alice", "10", "FREE", Some(now + chrono::Duration::days(2)), "g-a1").await;
    app.grant("alice", "5", "PAID", None, "g-a2").await;
    app.grant("bob", "100", "PAID", None, "g-b").await;
    app.grant("carol", "3.5", "PROMOTIONAL", Some(now + chrono::Duration::days(9)), "g-c").await;
    let suspended =
        app.gql(&app.admin, "mutation { setAccountStatus(input: {accountId: \"dave\", status: SUSPENDED}) { status } }", json!({})).await;
    assert_eq!(suspended["data"]["setAccountStatus"]["status"], "SUSPENDED", "{suspended}");

    let mut spends: Vec<(&str, &str, String)> = Vec::new();
    // 20 spends of 1 on 15 credits (two lots, free first): 15 charged, 5 refused.
    spends.extend((0..20).map(|i| ("alice", "1", format!("a-{i}"))));
    // Ten copies of one request: one charge, ten identical answers.
    spends.extend((0..10).map(|_| ("bob", "2.5", "same".to_string())));
    // One key, two different requests: the first in arrival order wins, the other conflicts.
    spends.push(("bob", "1", "clash".to_string()));
    spends.push(("bob", "7", "clash".to_string()));
    // Exactly the balance, whichever comes first.
    spends.extend([("carol", "1.25", "c-1".to_string()), ("carol", "2.25", "c-2".to_string())]);
    spends.extend([("dave", "1", "d-1".to_string()), ("nobody", "1", "n-1".to_string())]);
    let responses = spend_in_one_burst(&app, &["alice", "bob", "carol", "dave"], &spends).await;

    let mut tally: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for ((account, _, _), response) in spends.iter().zip(&responses) {
        *tally.entry((*account, outcome(response))).or_default() += 1;
    }
    let expected: BTreeMap<(&str, String), usize> = [
        (("alice", "ok".to_string()), 15),
        (("alice", "INSUFFICIENT_CREDITS".to_string()), 5),
        (("bob", "ok".to_string()), 11),
        (("bob", "IDEMPOTENCY_CONFLICT".to_string()), 1),
        (("carol", "ok".to_string()), 2),
        (("dave", "ACCOUNT_NOT_ACTIVE".to_string()), 1),
        (("nobody", "NOT_FOUND".to_string()), 1),
    ]
    .into();
    assert_eq!(tally, expected, "{responses:#?}");

    // Alice's free lot went first, one credit at a time, and each answer saw the ones before it.
    let mut after: Vec<String> = spends
        .iter()
        .zip(&responses)
        .filter(|((a, _, _), r)| *a == "alice" && r["errors"].is_null())
        .map(|(_, r)| r["data"]["spendCredits"]["availableAfter"].as_str().unwrap().to_string())
        .collect();
    after.sort_by_key(|s| std::cmp::Reverse(s.parse::<i64>().unwrap()));
    assert_eq!(after, (0..15).rev().map(|n| n.to_string()).collect::<Vec<_>>());
    let copies: Vec<&Value> = responses[20..30].iter().collect();
    assert!(copies.iter().all(|r| r["data"] == copies[0]["data"]), "{copies:?}");
    let mut carol: Vec<&str> = responses[32..34].iter().map(|r| r["data"]["spendCredits"]["availableAfter"].as_str().unwrap()).collect();
    carol.sort_unstable();
    assert!(carol == ["0", "1.25"] || carol == ["0", "2.25"], "{carol:?}");

    assert_eq!(app.balance("alice").await, "0");
    let clash_won = if responses[30]["errors"].is_null() { "1" } else { "7" };
    let bob_left =
        rust_decimal::Decimal::from(100) - rust_decimal::Decimal::new(25, 1) - clash_won.parse::<rust_decimal::Decimal>().unwrap();
    assert_eq!(app.balance("bob").await, bob_left.normalize().to_string());
    assert_eq!(app.balance("carol").await, "0");

    // Every stored outcome replays exactly, one at a time, and charges nothing more.
    for ((account, amount, key), first) in spends.iter().zip(&responses) {
        let replay = app.gql(&app.service, SPEND, json!({ "a": account, "amt": amount, "k": key })).await;
        match outcome(first).as_str() {
            "ok" => assert_eq!(replay["data"], first["data"], "{key}"),
            "IDEMPOTENCY_CONFLICT" => assert_eq!(outcome(&replay), "IDEMPOTENCY_CONFLICT"),
            code => assert_eq!(outcome(&replay), code, "{key}: {replay}"),
        }
    }
    assert_eq!(app.balance("bob").await, bob_left.normalize().to_string());
    let entries = app.ledger.db.query_one_raw(sea_orm::Statement::from_string(
        app.ledger.db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM journal_entries WHERE kind = 'spend'",
    ));
    let n: i64 = entries.await.unwrap().unwrap().try_get("", "n").unwrap();
    assert_eq!(n, 15 + 2 + 2, "one journal entry per charge");
    assert_eq!(app.ledger.spends.stats().fallbacks, 0);
    app.assert_audit_clean().await;
}

fn request(account: &str, amount: &str, key: &str) -> SpendRequest {
    SpendRequest {
        account: account.to_string(),
        amount: Some(credits::ledger::Credits::parse_str(amount).unwrap()),
        price: None,
        idempotency_key: key.to_string(),
        feature: "chat".to_string(),
        model: None,
        reason: None,
        metadata: None,
    }
}

/// An outcome's kind: `ok`, the refusal's name, or the error's.
fn code(outcome: &Result<SpendReceipt, ServiceError>) -> String {
    let name = |debug: String| debug.split(['(', ' ', '{']).next().unwrap().to_string();
    match outcome {
        Ok(_) => "ok".to_string(),
        Err(ServiceError::Refused(refusal)) => name(format!("{refusal:?}")),
        Err(err) => name(format!("{err:?}")),
    }
}

/// One batch, in a known order: each spend sees exactly the ones before it.
async fn a_batch_decides_its_spends_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("carol").await;
    app.create_account("frank").await;
    let now = app.clock.now();
    app.grant("carol", "3.5", "PROMOTIONAL", Some(now + chrono::Duration::days(9)), "g-c").await;
    app.grant("carol", "1", "FREE", Some(now + chrono::Duration::days(1)), "g-c2").await;
    app.grant("frank", "1", "PAID", None, "g-f").await;
    let requests = vec![
        request("carol", "1.25", "c-1"),
        request("carol", "3.25", "c-2"),
        request("carol", "0.000001", "c-3"),
        request("carol", "1.25", "c-1"),
        request("carol", "9", "c-1"),
        request("frank", "1", "f-1"),
        request("carol", "0", "c-4"),
        request("frank", "0.5", "f-2"),
        request("nobody", "1", "n-1"),
    ];
    let before = app.ledger.spends.stats();
    let outcomes = app.ledger.spend_many(requests.clone(), now).await;
    let after = app.ledger.spends.stats();
    assert_eq!((after.batches - before.batches, after.largest >= 8), (1, true), "{after:?}");
    let codes: Vec<String> = outcomes.iter().map(code).collect();
    assert_eq!(
        codes,
        ["ok", "ok", "InsufficientCredits", "ok", "IdempotencyConflict", "ok", "BadInput", "InsufficientCredits", "NotFound"],
        "{outcomes:?}"
    );
    let receipt = |i: usize| outcomes[i].as_ref().unwrap();
    // The free lot (soonest expiry) first, then the promotional one.
    assert_eq!(receipt(0).takes.len(), 2);
    assert_eq!(receipt(0).available_after.to_string(), "3.25");
    assert_eq!(receipt(1).available_after.to_string(), "0");
    assert_eq!(receipt(3), receipt(0), "a repeated key in the batch replays the first outcome");
    assert_ne!(receipt(0).entry_id, receipt(1).entry_id);
    // Replayed one by one later, each gets the same outcome.
    for (request, first) in requests.into_iter().zip(&outcomes) {
        let again = app.ledger.spend(request, now).await;
        match (first, &again) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (a, b) => assert_eq!(code(a), code(b)),
        }
    }
    assert_eq!((app.balance("carol").await, app.balance("frank").await), ("0".to_string(), "0".to_string()));
    app.assert_audit_clean().await;
}

async fn a_spend_that_fails_in_the_database_does_not_fail_its_batch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("erin").await;
    app.grant("erin", "50", "PAID", None, "g-e").await;
    poison(&app.ledger.db, backend, "NEW.idempotency_key = 'poison'").await;

    let mut requests: Vec<SpendRequest> = (0..12).map(|i| request("erin", "1", &format!("e-{i}"))).collect();
    requests.insert(5, request("erin", "1", "poison"));
    let before = app.ledger.spends.stats();
    let outcomes = app.ledger.spend_many(requests.clone(), app.clock.now()).await;
    assert_eq!(app.ledger.spends.stats().fallbacks - before.fallbacks, 1);
    for (request, outcome) in requests.iter().zip(&outcomes) {
        let expected = if request.idempotency_key == "poison" { "Internal" } else { "ok" };
        assert_eq!(code(outcome), expected, "{}: {outcome:?}", request.idempotency_key);
    }
    assert_eq!(app.balance("erin").await, "38");

    // The failure was not stored as the key's outcome: once the journal takes it, it is charged.
    unpoison(&app.ledger.db, backend).await;
    let retried = app.gql(&app.service, SPEND, json!({ "a": "erin", "amt": "1", "k": "poison" })).await;
    assert_eq!(outcome(&retried), "ok", "{retried}");
    assert_eq!(app.balance("erin").await, "37");
    app.assert_audit_clean().await;
}

/// PostgreSQL (two batches in flight): while one account's batch waits on its row, the other
/// accounts' spends are answered; that account's next spends wait for its batch and follow it in
/// order. (With lanes by account hash, an account sharing the held one's lane waited too.) The
/// others are sent once the held account's spends are in its batch or queued behind it: a spend
/// arriving together with them could join that very batch, and wait with it, by design.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spend_never_waits_for_another_accounts_batch() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (others, _blocker, lock) = others_and_one_held(&app, 12).await;
    let spend = |account: &str, key: &str| {
        let (client, address, token) = (app.client.clone(), app.address.clone(), app.service.clone());
        let variables = json!({ "a": account, "amt": "1", "k": key });
        tokio::spawn(async move { crate::support::gql_at(&client, &address, &token, SPEND, variables).await })
    };
    let before = app.ledger.spends.stats().spends;
    let first = spend("held", "h-1");
    let second = spend("held", "h-2");
    let placed = async {
        while app.ledger.spends.stats().spends - before + app.ledger.spends.waiting() as u64 != 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), placed).await.expect("the held account's spends reach the queue");
    for (i, account) in others.iter().enumerate() {
        let answered = tokio::time::timeout(std::time::Duration::from_secs(20), spend(account, &format!("o-{i}"))).await;
        let response = answered.unwrap_or_else(|_| panic!("{account}'s spend waited for the held account's batch")).unwrap();
        assert_eq!(outcome(&response), "ok", "{response}");
    }
    assert!(!first.is_finished() && !second.is_finished(), "the held account's spends wait for its row");
    lock.commit().await.unwrap();
    // Each saw the other's take or none, whichever arrived first.
    let mut after: Vec<Value> = vec![];
    for answer in [first.await.unwrap(), second.await.unwrap()] {
        after.push(answer["data"]["spendCredits"]["availableAfter"].clone());
    }
    after.sort_by_key(|v| v.to_string());
    assert_eq!(after, [json!("8"), json!("9")]);
    app.assert_audit_clean().await;
}

/// PostgreSQL: a batch of several accounts does not wait for one that another transaction holds
/// (another process's batch, an operator's write). It commits the others and runs the held
/// account's spends after, together, once the lock goes: each outcome as it would have been.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_commits_its_other_accounts_while_one_is_held_elsewhere() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (others, _blocker, lock) = others_and_one_held(&app, 6).await;
    let mut requests = vec![request("held", "1", "h-1")];
    requests.extend(others.iter().enumerate().map(|(i, account)| request(account, "2", &format!("o-{i}"))));
    requests.push(request("held", "3", "h-2"));
    requests.push(request("nobody", "1", "n-1"));
    let before = app.ledger.spends.stats();
    let ledger = app.ledger.clone();
    let now = app.clock.now();
    let batch = tokio::spawn(async move { ledger.spend_many(requests, now).await });
    // The other accounts' spends are committed (read on another connection) while the held
    // account's still wait for its row.
    let committed = async {
        for account in &others {
            while app.balance(account).await != "8" {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), committed).await.expect("the other accounts waited for the held one");
    assert!(!batch.is_finished(), "the held account's spends wait for its row");
    assert_eq!(app.balance("held").await, "10");
    lock.commit().await.unwrap();
    let outcomes = batch.await.unwrap();
    let kinds: Vec<String> = outcomes.iter().map(code).collect();
    let mut expected = vec!["ok".to_string(); 8];
    expected.push("NotFound".to_string());
    assert_eq!(kinds, expected);
    // The held account's two spends in arrival order, after the lock: 10 - 1, then - 3.
    let after = |i: usize| outcomes[i].as_ref().unwrap().available_after.to_string();
    assert_eq!((after(0), after(7)), ("9".to_string(), "6".to_string()));
    assert_eq!(app.balance("held").await, "6");
    let stats = app.ledger.spends.stats();
    assert_eq!((stats.batches - before.batches, stats.skipped - before.skipped, stats.fallbacks - before.fallbacks), (1, 3, 0));
    app.assert_audit_clean().await;
}

/// The statements an engine of `app`'s program runs on its own connection, as run.
/// The statements a connection ran, in order, as its metric callback saw them.
type Statements = Arc<Mutex<Vec<String>>>;

fn counted_engine(app: &TestApp, db: DatabaseConnection) -> (credits::service::Engine, Statements) {
    let statements = Statements::default();
    let mut engine = credits::service::Engine::new(db, app.ledger.program.clone());
    for db in [&mut engine.db, &mut engine.writer] {
        let seen = statements.clone();
        db.set_metric_callback(move |info| seen.lock().unwrap().push(info.statement.sql.clone()));
    }
    (engine, statements)
}

/// A spend alone is three calls to the database inside its transaction on PostgreSQL (the
/// accounts' lock; the read of its key, holds, lots, limits and an entry id; one write of its
/// lot, balance, entry, lines and key: `store::keyed_debits`) and two on SQLite, whose
/// transaction already holds the whole database, so the read reads the account too (a call of a
/// statement per table). It writes what a posting writes: the entry the receipt names, with the
/// balance after, its lines, and the key's record that replays it.
async fn a_spend_alone_is_three_calls_two_on_sqlite(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("gina").await;
    let now = app.clock.now();
    app.grant("gina", "2", "FREE", Some(now + chrono::Duration::days(3)), "g-1").await;
    app.grant("gina", "10", "PAID", None, "g-2").await;
    let (engine, statements) = counted_engine(&app, credits::db::connect(&app.db.url, 2).await.unwrap());

    let receipt = engine.spend(request("gina", "2.5", "s-1"), now).await.unwrap();
    let run = std::mem::take(&mut *statements.lock().unwrap());
    let reads = match backend {
        Backend::Postgres => {
            assert_eq!(run.len(), 3, "{run:#?}");
            assert!(run[0].contains("FOR UPDATE") && run[1].contains("nextval('journal_entry_ids')"), "{run:#?}");
            1
        }
        Backend::Sqlite => {
            assert_eq!(run.len(), 2, "{run:#?}");
            for part in ["FROM accounts a WHERE a.external_id IN", "JOIN lots", "JOIN idempotency_keys", "sqlite_sequence"] {
                assert!(run[0].contains(part), "{part} in {}", run[0]);
            }
            0
        }
    };
    for table in
        ["UPDATE accounts", "UPDATE lots", "INSERT INTO journal_entries", "INSERT INTO journal_lines", "INSERT INTO idempotency_keys"]
    {
        assert!(run[reads + 1].contains(table), "{table} in {}", run[reads + 1]);
    }
    assert_eq!((receipt.takes.len(), receipt.available_after.to_string()), (2, "9.5".to_string()));
    let row = app
        .ledger
        .db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            app.ledger.db.get_database_backend(),
            format!(
                "SELECT e.amount_micros, e.balance_after_micros, e.idempotency_key, count(l.id), CAST(sum(l.delta_micros) AS bigint) \
                 FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id WHERE e.id = {} \
                 GROUP BY e.amount_micros, e.balance_after_micros, e.idempotency_key",
                if backend == Backend::Postgres { "$1" } else { "?" }
            ),
            [receipt.entry_id.into()],
        ))
        .await
        .unwrap()
        .expect("the receipt's entry");
    let entry: (i64, i64, Option<String>, i64, i64) = (
        row.try_get_by_index(0).unwrap(),
        row.try_get_by_index(1).unwrap(),
        row.try_get_by_index(2).unwrap(),
        row.try_get_by_index(3).unwrap(),
        row.try_get_by_index(4).unwrap(),
    );
    assert_eq!(entry, (-2_500_000, 9_500_000, Some("s-1".to_string()), 2, -2_500_000));
    assert_eq!(app.balance("gina").await, "9.5");

    // Its key replays it: the lock and the read, nothing written.
    assert_eq!(engine.spend(request("gina", "2.5", "s-1"), now).await.unwrap(), receipt);
    assert_eq!(statements.lock().unwrap().len(), reads + 1, "{:#?}", statements.lock().unwrap());
    // The next spend's entry comes after it in the account's sequence.
    let next = engine.spend(request("gina", "1", "s-2"), now).await.unwrap();
    assert!(next.entry_id > receipt.entry_id);
    // Entries numbered by the database (a grant) and by the batch's read interleave in order.
    app.grant("gina", "1", "PAID", None, "g-3").await;
    let granted = app
        .ledger
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.ledger.db.get_database_backend(),
            "SELECT max(id) FROM journal_entries WHERE kind = 'grant'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    let last = engine.spend(request("gina", "1", "s-3"), now).await.unwrap();
    assert!(granted > next.entry_id && last.entry_id > granted, "{} < {granted} < {}", next.entry_id, last.entry_id);
    app.assert_audit_clean().await;
}

/// On a plan with daily free credits (carat) a spend's read also says whether each account's day
/// was claimed, so the day's credits cost no statement of their own: the same calls as above,
/// before the day's lot is written and after, and the claim read ahead is right both times (one
/// day's credits offered once).
async fn a_spend_reads_the_days_claim_with_the_rest(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.create_account("dina").await;
    let now = app.clock.now();
    app.grant("dina", "10", "PAID", None, "g-1").await;
    let (engine, statements) = counted_engine(&app, credits::db::connect(&app.db.url, 2).await.unwrap());
    let calls = match backend {
        Backend::Postgres => 3,
        Backend::Sqlite => 2,
    };

    // Paid credits first: the day's 100 are counted, not written.
    let first = engine.spend(request("dina", "1", "d-1"), now).await.unwrap();
    assert_eq!(first.available_after.to_string(), "109");
    assert_eq!(std::mem::take(&mut *statements.lock().unwrap()).len(), calls, "the day's claim read with the rest");
    // Past the paid credits: the day's lot and its claim are written.
    let second = engine.spend(request("dina", "50", "d-2"), now).await.unwrap();
    assert_eq!(second.available_after.to_string(), "59");
    statements.lock().unwrap().clear();
    // Claimed now: the next spend takes from the written lot, and no second day is offered.
    let third = engine.spend(request("dina", "1", "d-3"), now).await.unwrap();
    assert_eq!(third.available_after.to_string(), "58");
    assert_eq!(std::mem::take(&mut *statements.lock().unwrap()).len(), calls);
    assert_eq!(app.balance("dina").await, "58");
    app.assert_audit_clean().await;
}

/// The one write writes nothing unless every balance and lot is still what the batch read under
/// its locks, and every part wrote the rows asked of it.
async fn the_one_write_refuses_a_balance_or_a_lot_not_as_read(backend: Backend) {
    use credits::store::{idempotency::NewRecord, journal, keyed_debits};
    let app = TestApp::spawn(backend).await;
    let db_backend = app.ledger.db.get_database_backend();
    app.create_account("hank").await;
    let now = app.clock.now();
    app.grant("hank", "5", "PAID", None, "g-h").await;
    let db = &app.ledger.db;
    let one = |sql: &str| {
        let sql = sql.to_string();
        async move {
            let row = db.query_one_raw(sea_orm::Statement::from_string(db_backend, sql)).await.unwrap().unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    let (account, lot) = (
        one("SELECT id FROM accounts WHERE external_id = 'hank'").await,
        one("SELECT l.id FROM lots l JOIN accounts a ON a.id = l.account_id WHERE a.external_id = 'hank'").await,
    );
    let entry_id = match backend {
        Backend::Postgres => one("SELECT nextval('journal_entry_ids')").await,
        Backend::Sqlite => one("SELECT max(id) + 1 FROM journal_entries").await,
    };
    let debits = |balance_before: i64, lot_before: i64| keyed_debits::Debits {
        lots: vec![(lot, Credits::from_micros(lot_before), Credits::from_micros(lot_before - 1_000_000))],
        balances: vec![(account, balance_before, balance_before - 1_000_000)],
        entries: vec![(
            entry_id,
            journal::NewEntry {
                account_id: account,
                kind: journal::EntryKind::Spend,
                effective_at: now,
                created_at: now,
                operation: "spend",
                idempotency_key: Some("w-1"),
                feature: Some("chat"),
                model: None,
                reason: None,
                actor: None,
                detail: None,
                metadata: None,
                lines: vec![(lot, -1_000_000)],
                balance_after_micros: balance_before - 1_000_000,
            },
        )],
    };
    let record = || NewRecord {
        account_id: account,
        operation: "spend",
        key: "w-1",
        request_hash: "h",
        outcome: "{}".to_string(),
        now,
        expires_at: now + chrono::Duration::days(1),
    };
    for (balance, lot_remaining, ok) in [(4_000_000, 5_000_000, false), (5_000_000, 4_000_000, false), (5_000_000, 5_000_000, true)] {
        let txn = db.begin().await.unwrap();
        let wrote = keyed_debits::write(&txn, keyed_debits::prepare(db_backend, &debits(balance, lot_remaining)), &[record()]).await;
        assert_eq!(wrote.is_ok(), ok, "balance {balance}, lot {lot_remaining}: {wrote:?}");
        if ok {
            txn.commit().await.unwrap();
        }
    }
    assert_eq!(app.balance("hank").await, "4");
    assert_eq!(one("SELECT count(*) FROM idempotency_keys WHERE key = 'w-1'").await, 1);
    assert_eq!(one(&format!("SELECT count(*) FROM journal_entries WHERE id = {entry_id}")).await, 1);

    // Two lots (SQLite updates several rows in another form than one): one lot not as read
    // refuses the whole write.
    app.grant("hank", "3", "PAID", None, "g-h2").await;
    let second = one("SELECT max(l.id) FROM lots l JOIN accounts a ON a.id = l.account_id WHERE a.external_id = 'hank'").await;
    let entry_id = match backend {
        Backend::Postgres => one("SELECT nextval('journal_entry_ids')").await,
        Backend::Sqlite => one("SELECT max(id) + 1 FROM journal_entries").await,
    };
    let two_lots = |second_before: i64| {
        let mut d = debits(7_000_000, 4_000_000);
        d.lots.push((second, Credits::from_micros(second_before), Credits::from_micros(second_before - 1_000_000)));
        d.balances[0].2 = 5_000_000;
        d.entries[0].0 = entry_id;
        d.entries[0].1.balance_after_micros = 5_000_000;
        d.entries[0].1.lines.push((second, -1_000_000));
        d.entries[0].1.idempotency_key = Some("w-2");
        d
    };
    for (second_before, ok) in [(2_000_000, false), (3_000_000, true)] {
        let txn = db.begin().await.unwrap();
        let record = NewRecord { key: "w-2", ..record() };
        let wrote = keyed_debits::write(&txn, keyed_debits::prepare(db_backend, &two_lots(second_before)), &[record]).await;
        assert_eq!(wrote.is_ok(), ok, "second lot {second_before}: {wrote:?}");
        if ok {
            txn.commit().await.unwrap();
        }
    }
    assert_eq!(app.balance("hank").await, "5");
    app.assert_audit_clean().await;
}

on_both!(
    concurrent_spends_are_committed_together_and_each_is_exact,
    a_batch_decides_its_spends_in_order,
    a_spend_that_fails_in_the_database_does_not_fail_its_batch,
    a_spend_alone_is_three_calls_two_on_sqlite,
    a_spend_reads_the_days_claim_with_the_rest,
    the_one_write_refuses_a_balance_or_a_lot_not_as_read
);

/// SQLite: a spend of one account from one lot, as at low load, opens no temporary b-tree in its
/// read or its write (each `IN (SELECT ...)`, `RETURNING` and `UPDATE ... FROM` did: nine a
/// spend, 7% of the server's instructions; docs/benchmarks.md, change 31), and finds the
/// account's lapsed holds through the account's own index, not by walking every lapsed hold of
/// every account.
#[tokio::test]
async fn sqlite_a_spend_alone_opens_no_temporary_btree() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_account("ida").await;
    let now = app.clock.now();
    app.grant("ida", "10", "PAID", None, "g-1").await;
    let (engine, statements) = counted_engine(&app, credits::db::connect(&app.db.url, 2).await.unwrap());
    engine.spend(request("ida", "1", "s-1"), now).await.unwrap();
    let run = std::mem::take(&mut *statements.lock().unwrap());
    assert_eq!(run.len(), 2, "{run:#?}");
    let explain = |what: &str, statement: &str, column: &str| {
        let (db, sql, column) = (app.ledger.db.clone(), format!("{what} {statement}"), column.to_string());
        async move {
            let rows = db.query_all_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, sql)).await.unwrap();
            rows.iter().map(|row| row.try_get::<String>("", &column).unwrap()).collect::<Vec<String>>()
        }
    };
    // The control: the form the read had opens one.
    let control = explain("EXPLAIN", "SELECT * FROM lots WHERE account_id IN (SELECT id FROM accounts WHERE external_id IN (?))", "opcode");
    assert!(control.await.iter().any(|op| op == "OpenEphemeral"));
    let statements: Vec<&str> = run.iter().flat_map(|call| call.split(';')).map(str::trim).filter(|s| !s.is_empty()).collect();
    for statement in &statements {
        let opcodes = explain("EXPLAIN", statement, "opcode").await;
        assert!(!opcodes.iter().any(|op| op == "OpenEphemeral"), "a temporary b-tree in {statement}: {opcodes:?}");
    }
    // The read's five tables and the sequence, both updates with their counts, three inserts.
    assert!(statements.len() >= 12, "{statements:#?}");
    let holds = statements.iter().find(|s| s.contains("JOIN reservations")).expect("the holds' read");
    let plan = explain("EXPLAIN QUERY PLAN", holds, "detail").await;
    assert!(plan.iter().any(|step| step.contains("reservations_account_status")), "{plan:?}");
}

/// SQLite: a `recordUsage` batch reads its accounts (their lock there: the transaction holds the
/// whole database) and its keys' records in one call to the connection's thread, as a spend
/// batch does (`executor::keys_only`, `store::spend_reads::accounts_and_keys_sqlite`); a replay
/// of the same batch is that call and nothing written.
#[tokio::test]
async fn sqlite_a_usage_batch_reads_its_accounts_and_keys_in_one_call() {
    use credits::service::metering::{Sample, UsageRequest};
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (account, container) in [("uma", "c-u"), ("vic", "c-v")] {
        app.create_account(account).await;
        app.grant(account, "100", "PAID", None, &format!("g-{account}")).await;
        let started = app
            .gql(
                &app.service,
                "mutation($a: ID!, $c: String!) { startContainer(input: {accountId: $a, containerId: $c, tier: \"micro\", \
                 codeSupporter: false, idempotencyKey: $c}) { container { containerId } } }",
                json!({ "a": account, "c": container }),
            )
            .await;
        assert!(started["errors"].is_null(), "{started}");
    }
    let (engine, statements) = counted_engine(&app, credits::db::connect(&app.db.url, 2).await.unwrap());
    let requests = || {
        [("uma", "c-u"), ("vic", "c-v")]
            .map(|(account, container)| UsageRequest {
                account: account.to_string(),
                sample: Sample::Traffic { container: container.to_string(), bytes: 1_000_000 },
                idempotency_key: format!("t-{account}"),
            })
            .to_vec()
    };
    let now = app.clock.now();
    let first = engine.record_usage_many(requests(), now).await;
    assert!(first.iter().all(Result::is_ok), "{first:?}");
    let run = std::mem::take(&mut *statements.lock().unwrap());
    assert!(
        run[0].contains("FROM accounts a WHERE a.external_id IN (?, ?)") && run[0].contains("JOIN idempotency_keys"),
        "the accounts and the keys in the first call: {run:#?}"
    );
    assert!(!run[1..].iter().any(|sql| sql.contains("external_id IN")), "no second read of the accounts: {run:#?}");
    let again = engine.record_usage_many(requests(), now).await;
    assert_eq!(format!("{again:?}"), format!("{first:?}"), "replayed");
    let replay = std::mem::take(&mut *statements.lock().unwrap());
    assert_eq!(replay.len(), 1, "{replay:#?}");
    app.assert_audit_clean().await;
}

/// SQLite: a process's write transactions run on one connection of their own (`db::writer`), so
/// the pages the last write left stay in its cache, while reads keep the pool and go on beside
/// them. Concurrent spends and reads: every write is the writer's, every read the pool's, and
/// the writer never holds more than its one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_writes_run_on_one_connection_of_their_own() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let accounts: Vec<String> = (0..6).map(|i| format!("w-{i}")).collect();
    for id in &accounts {
        app.create_account(id).await;
        app.grant(id, "10", "PAID", None, &format!("g-{id}")).await;
    }
    let mut engine = credits::service::Engine::new(credits::db::connect(&app.db.url, 4).await.unwrap(), app.ledger.program.clone());
    let (on_pool, on_writer) = (Statements::default(), Statements::default());
    for (db, seen) in [(&mut engine.db, on_pool.clone()), (&mut engine.writer, on_writer.clone())] {
        db.set_metric_callback(move |info| seen.lock().unwrap().push(info.statement.sql.clone()));
    }
    let engine = Arc::new(engine);
    let now = app.clock.now();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (engine, account) = (engine.clone(), accounts[i % accounts.len()].clone());
            tokio::spawn(async move {
                let receipt = engine.spend(request(&account, "1", &format!("s-{i}")), now).await;
                let view = engine.account(&account).await.unwrap();
                engine.balance(&view, now).await.unwrap();
                receipt
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("each spend has 10 credits to take 1 from");
    }
    let writes = |sql: &String| ["INSERT INTO", "UPDATE ", "DELETE FROM"].iter().any(|verb| sql.to_uppercase().contains(verb));
    let (pool, writer) = (on_pool.lock().unwrap().clone(), on_writer.lock().unwrap().clone());
    assert!(writer.iter().any(writes), "the spends' writes ran on the writer: {writer:#?}");
    assert!(!pool.is_empty() && !pool.iter().any(writes), "the pool served the reads and no write: {pool:#?}");
    assert_eq!(engine.writer.get_sqlite_connection_pool().size(), 1, "one connection writes");
    for id in &accounts {
        assert_eq!(app.balance(id).await, "6");
    }
    app.assert_audit_clean().await;
}
