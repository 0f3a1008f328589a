//! Many balances read at once (`Engine::balances_of`, the balance watchers' grouped reads,
//! `credits::balance_reader`): each account's balance is the one it has read alone, whatever
//! the other accounts in the read hold.

use crate::on_both;
use crate::support::{Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use credits::balance_reader::BalanceReader;
use credits::service::accounts::AccountView;
use credits::service::reads::BalanceView;
use serde_json::json;
use std::collections::HashMap;

const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $s: Int) {
    reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", model: \"ltx\", holdSeconds: $s}) {
      reservationId } }";

async fn reserve(app: &TestApp, account: &str, amount: &str, key: &str, hold_seconds: i64) {
    let r = app.gql(&app.service, RESERVE, json!({ "a": account, "amt": amount, "k": key, "s": hold_seconds })).await;
    assert!(r["errors"].is_null(), "{r}");
}

async fn views(app: &TestApp, ids: &[&str]) -> Vec<AccountView> {
    let mut views = Vec::new();
    for id in ids {
        views.push(app.ledger.account(id).await.unwrap());
    }
    views
}

/// Each account's balance read alone, and all of them read together: the same.
async fn alone_and_together(app: &TestApp, accounts: &[AccountView], at: DateTime<Utc>) -> HashMap<String, BalanceView> {
    let together = app.ledger.balances_of(accounts, at).await.unwrap();
    assert_eq!(together.len(), accounts.len());
    let mut by_name = HashMap::new();
    for account in accounts {
        let alone = app.ledger.balances_of(std::slice::from_ref(account), at).await.unwrap().remove(&account.id).unwrap();
        assert_eq!(together[&account.id], alone, "{}: read with the others as alone", account.external_id);
        by_name.insert(account.external_id.clone(), alone);
    }
    by_name
}

fn figures(view: &BalanceView) -> (String, String) {
    (view.available.to_string(), view.held.to_string())
}

/// Holds open and lapsed, one of them over a lot it emptied (closed since), beside accounts
/// with none: read together at an instant past the short holds' deadline.
async fn holds_lapsed_and_open_read_together(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = app.clock.now();
    for id in ["plain", "held", "emptied", "empty"] {
        app.create_account(id).await;
    }
    app.grant("plain", "10", "PAID", None, "g").await;
    app.grant("held", "100", "PAID", None, "g").await;
    reserve(&app, "held", "30", "open", 600).await;
    reserve(&app, "held", "20", "short", 60).await;
    // Free credits go first: the 8 empties the free lot (5) and takes 3 paid; it lapses.
    app.grant("emptied", "5", "FREE", Some(now + Duration::hours(2)), "g-free").await;
    app.grant("emptied", "10", "PAID", None, "g-paid").await;
    reserve(&app, "emptied", "8", "short", 60).await;
    reserve(&app, "emptied", "4", "open", 600).await;
    let accounts = views(&app, &["plain", "held", "emptied", "empty"]).await;

    let before = alone_and_together(&app, &accounts, now + Duration::seconds(30)).await;
    assert_eq!(figures(&before["held"]), ("50".into(), "50".into()));
    assert_eq!(figures(&before["emptied"]), ("3".into(), "12".into()));
    let after = alone_and_together(&app, &accounts, now + Duration::seconds(61)).await;
    assert_eq!(figures(&after["plain"]), ("10".into(), "0".into()));
    assert_eq!(figures(&after["held"]), ("70".into(), "30".into()));
    assert_eq!(figures(&after["emptied"]), ("11".into(), "4".into()), "the lapsed 8 is back, 5 of it in the closed free lot");
    assert_eq!(figures(&after["empty"]), ("0".into(), "0".into()));
    // What the API answers for one account is the same read.
    app.clock.set(now + Duration::seconds(61));
    assert_eq!(app.balance("emptied").await, "15");
}

/// The day's free credits (carat): waiting, taken (the day's claim written), and not yet
/// shown, side by side in one read.
async fn daily_free_credits_read_together(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.clock.set("2026-06-10T08:00:00Z".parse().unwrap());
    for id in ["fresh", "taken", "waiting"] {
        app.create_account(id).await;
    }
    let spent = app.spend("taken", "30", "s").await;
    assert!(spent["errors"].is_null(), "{spent}");
    app.grant("waiting", "20", "FREE", None, "g").await;
    let accounts = views(&app, &["fresh", "taken", "waiting"]).await;
    let read = alone_and_together(&app, &accounts, app.clock.now()).await;
    assert_eq!(read["fresh"].available.to_string(), "100");
    assert_eq!(read["taken"].available.to_string(), "70");
    assert_eq!(read["waiting"].available.to_string(), "120");
    assert!(read["waiting"].bars.iter().any(|bar| bar.waiting), "{:?}", read["waiting"].bars);
}

/// Fifty reads asked at once are made in a few grouped reads, each answered with its own
/// account's balance.
async fn concurrent_requests_share_a_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let names: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        app.create_account(name).await;
        app.grant(name, &(i + 1).to_string(), "PAID", None, "g").await;
    }
    let accounts = views(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let reader = BalanceReader::new(app.ledger.clone(), app.clock.clone());
    let readings = futures::future::join_all(accounts.iter().map(|a| reader.read(a.id))).await;
    for (i, (account, reading)) in accounts.iter().zip(readings).enumerate() {
        let (read, view, _) = reading.expect("every account is read");
        assert_eq!(read.id, account.id);
        assert_eq!(view.available.to_string(), (i + 1).to_string(), "{}", account.external_id);
    }
    assert!(reader.batches() <= 3, "fifty requests at once: {} reads", reader.batches());
    // An account that does not exist gets no reading; the others in its read still do.
    let (missing, found) = tokio::join!(reader.read(i64::MAX), reader.read(accounts[0].id));
    assert!(missing.is_none());
    assert_eq!(found.unwrap().1.available.to_string(), "1");
}

/// Requests that arrive one after another within a read's linger share that read: a change
/// each, as spends of subscribed accounts arrive, are not read one by one. (A long linger here,
/// so that a slow machine's timers cannot split them.)
async fn requests_arriving_within_the_linger_share_a_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let names = ["l0", "l1", "l2", "l3", "l4"];
    for name in names {
        app.create_account(name).await;
        app.grant(name, "7", "PAID", None, "g").await;
    }
    let accounts = views(&app, &names).await;
    let reader = BalanceReader::with_linger(app.ledger.clone(), app.clock.clone(), std::time::Duration::from_secs(2));
    let started = std::time::Instant::now();
    let requests = accounts.iter().enumerate().map(|(i, account)| {
        let reader = reader.clone();
        let id = account.id;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(100 * i as u64)).await;
            reader.read(id).await
        }
    });
    let readings = futures::future::join_all(requests).await;
    assert!(readings.iter().all(|r| r.as_ref().is_some_and(|(_, view, _)| view.available.to_string() == "7")));
    assert_eq!(reader.batches(), 1, "five requests 100 ms apart within a 2 s linger");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "the read waited for its linger");
    // With no linger, the same requests are read one by one.
    let eager = BalanceReader::with_linger(app.ledger.clone(), app.clock.clone(), std::time::Duration::ZERO);
    for (i, account) in accounts.iter().enumerate() {
        assert!(eager.read(account.id).await.is_some());
        assert_eq!(eager.batches(), i as u64 + 1);
    }
}

on_both!(
    holds_lapsed_and_open_read_together,
    daily_free_credits_read_together,
    concurrent_requests_share_a_read,
    requests_arriving_within_the_linger_share_a_read
);
