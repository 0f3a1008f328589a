use crate::on_both;
use crate::support::{Backend, TestApp, error_code, poison, unpoison};
use chrono::Duration;
use credits::service::expiry::MAX_EXPIRY_BATCH;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

async fn query_i64(app: &TestApp, sql: &str) -> i64 {
    let db = &app.ledger.db;
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn low_warnings(app: &TestApp) -> Vec<Value> {
    let db = &app.ledger.db;
    let sql = "SELECT payload FROM outbox WHERE topic = 'credits.low' ORDER BY id";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap()).collect()
}

async fn expired_lots_never_count_and_are_written_off_at_their_instant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("dev").await;
    let start = app.clock.now();
    let expires_at = start + Duration::hours(1);
    app.grant("dev", "30", "PROMOTIONAL", Some(expires_at), "g-1").await;
    app.grant("dev", "5", "PAID", None, "g-2").await;
    app.spend("dev", "10", "s-1").await;
    assert_eq!(app.balance("dev").await, "25");

    // At the expiry instant the lot is gone from every read and from spending, before any write-off.
    app.clock.set(expires_at);
    assert_eq!(app.balance("dev").await, "5");
    let lots =
        app.gql(&app.service, "{ account(id: \"dev\") { lots { edges { node { remaining expired spendable } } } } }", json!({})).await;
    let expired: Vec<_> =
        lots["data"]["account"]["lots"]["edges"].as_array().unwrap().iter().filter(|e| e["node"]["expired"] == json!(true)).collect();
    assert_eq!(expired.len(), 1, "{lots}");
    assert_eq!(expired[0]["node"]["spendable"], json!("0"));
    let short = app.spend("dev", "6", "s-2").await;
    assert_eq!(error_code(&short), "INSUFFICIENT_CREDITS");
    let report = credits::audit::run(&app.ledger.db, app.clock.now()).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.pending_expiry_lots, 1, "the audit knows the lot awaiting write-off");

    // The write-off, run later, is dated at the expiry instant; a second run finds nothing.
    app.clock.set(expires_at + Duration::hours(5));
    let written = app.ledger.expire_due(app.clock.now(), 100).await.unwrap();
    assert_eq!(written.lots, 1);
    assert_eq!(written.credits.to_string(), "20");
    assert_eq!(app.ledger.expire_due(app.clock.now(), 100).await.unwrap().lots, 0);
    let history = app
        .gql(&app.service, "{ account(id: \"dev\") { history(first: 1) { edges { node { kind amount effectiveAt } } } } }", json!({}))
        .await;
    let entry = &history["data"]["account"]["history"]["edges"][0]["node"];
    assert_eq!(entry["kind"], json!("EXPIRE"), "{history}");
    assert_eq!(entry["amount"], json!("-20"));
    assert_eq!(chrono::DateTime::parse_from_rfc3339(entry["effectiveAt"].as_str().unwrap()).unwrap(), expires_at);
    assert_eq!(app.balance("dev").await, "5");
    app.assert_audit_clean().await;
}

/// The expiry job's step drains a backlog larger than one batch, and a second run finds nothing.
async fn the_expiry_step_drains_a_backlog_in_batches(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let start = app.clock.now();
    for account in ["a", "b", "c"] {
        app.create_account(account).await;
        for i in 0..4 {
            app.grant(account, "1.5", "FREE", Some(start + Duration::minutes(i + 1)), &format!("g-{i}")).await;
        }
        app.grant(account, "2", "PAID", None, "g-paid").await;
    }
    app.clock.set(start + Duration::minutes(3));
    let mut written = 0;
    // Batches of 2 over 9 due lots (3 accounts x 3 expired by now).
    loop {
        let report = app.ledger.expire_due(app.clock.now(), 2).await.unwrap();
        written += report.lots;
        if report.lots == 0 {
            break;
        }
    }
    assert_eq!(written, 9);
    app.clock.set(start + Duration::hours(1));
    let job = credits::service::jobs::Job::ExpireLots;
    assert_eq!(app.ledger.run_job(job, app.clock.now()).await.unwrap().items, 3);
    assert_eq!(app.ledger.run_job(job, app.clock.now()).await.unwrap().items, 0);
    for account in ["a", "b", "c"] {
        assert_eq!(app.balance(account).await, "2");
    }
    app.assert_audit_clean().await;
}

/// A month's end: many accounts' lots expire at one instant and one batch writes them all off,
/// each lot in an entry of its own (two lots alike in amount and instant included), with the
/// low-credit warning for the accounts it leaves short.
async fn one_batch_writes_off_many_accounts(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    let month_end = app.clock.now() + Duration::hours(1);
    for i in 0..20 {
        let account = format!("calm-{i:02}");
        app.create_account(&account).await;
        app.grant(&account, "4", "FREE", Some(month_end), "g-1").await;
        app.grant(&account, "4", "FREE", Some(month_end), "g-2").await;
        app.grant(&account, "20", "PAID", None, "g-3").await;
    }
    for i in 0..3 {
        // 5 left of the sign-up grant (warned), 8 expiring, then a spend that re-arms the nudge.
        let account = format!("low-{i}");
        app.create_account(&account).await;
        app.ledger.set_identity_verified(&account, true).await.unwrap(); // archipelag: spending needs it
        assert!(app.spend(&account, "9995", "s-1").await["errors"].is_null());
        app.grant(&account, "4", "FREE", Some(month_end), "g-1").await;
        app.grant(&account, "4", "FREE", Some(month_end), "g-2").await;
        assert!(app.spend(&account, "1", "s-2").await["errors"].is_null());
    }
    assert_eq!(low_warnings(&app).await.len(), 3);

    app.clock.set(month_end + Duration::minutes(1));
    // A worker's instant can carry nanoseconds, which PostgreSQL does not keep: the entries are
    // still matched to their ids.
    let report = app.ledger.expire_due(app.clock.now() + Duration::nanoseconds(987), MAX_EXPIRY_BATCH).await.unwrap();
    assert_eq!((report.lots, report.transactions), (46, 1), "23 accounts, one transaction");
    assert_eq!(app.ledger.expire_due(app.clock.now(), MAX_EXPIRY_BATCH).await.unwrap().lots, 0);
    for i in 0..20 {
        assert_eq!(app.balance(&format!("calm-{i:02}")).await, "10020");
    }
    let warnings = low_warnings(&app).await;
    assert_eq!(warnings.len(), 6, "one more per short account: {warnings:?}");
    for warning in &warnings[3..] {
        let account = warning["account"].as_str().unwrap();
        assert!(account.starts_with("low-"), "{warning}");
        assert_eq!(warning["balance"].as_str().unwrap(), app.balance(account).await);
    }
    // One entry per lot, its one line the entry's whole amount.
    let lines = "FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id WHERE e.kind = 'expire'";
    assert_eq!(query_i64(&app, &format!("SELECT COUNT(*) {lines} AND l.delta_micros = e.amount_micros")).await, 46);
    assert_eq!(query_i64(&app, &format!("SELECT COUNT(DISTINCT l.lot_id) {lines}")).await, 46);
    assert_eq!(query_i64(&app, "SELECT COUNT(*) FROM journal_entries WHERE kind = 'expire'").await, 46);
    app.assert_audit_clean().await;
}

/// A write-off the database refuses (a trigger on one account's entries) fails its batch; the
/// other accounts are still written off one by one, and the failing one is once it can be.
async fn a_write_off_that_fails_in_the_database_does_not_hold_up_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let expiry = app.clock.now() + Duration::hours(1);
    for i in 0..5 {
        let account = format!("acc-{i}");
        app.create_account(&account).await;
        app.grant(&account, "3", "FREE", Some(expiry), "g-1").await;
        app.grant(&account, "1", "PAID", None, "g-2").await;
    }
    let stuck = credits::store::accounts::by_external_id(&app.ledger.db, "acc-2").await.unwrap().unwrap();
    poison(&app.ledger.db, backend, &format!("NEW.kind = 'expire' AND NEW.account_id = {}", stuck.id)).await;
    app.clock.set(expiry);
    assert!(app.ledger.expire_due(app.clock.now(), MAX_EXPIRY_BATCH).await.is_err());
    let pending = "SELECT COUNT(*) FROM lots WHERE open = TRUE AND expires_at IS NOT NULL";
    assert_eq!(query_i64(&app, pending).await, 1, "only the refused account's lot is left");
    assert_eq!(query_i64(&app, "SELECT COUNT(*) FROM journal_entries WHERE kind = 'expire'").await, 4);
    unpoison(&app.ledger.db, backend).await;
    let rest = app.ledger.expire_due(app.clock.now(), MAX_EXPIRY_BATCH).await.unwrap();
    assert_eq!((rest.lots, rest.transactions), (1, 1));
    for i in 0..5 {
        assert_eq!(app.balance(&format!("acc-{i}")).await, "1");
    }
    app.assert_audit_clean().await;
}

/// Spends over HTTP while the write-off runs on the same accounts: both lock the accounts, so
/// no balance update is lost and nothing is overdrawn.
async fn spends_racing_the_write_off_lose_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let expiry = app.clock.now() + Duration::hours(1);
    for i in 0..8 {
        let account = format!("acc-{i}");
        app.create_account(&account).await;
        for g in 0..3 {
            app.grant(&account, "2", "FREE", Some(expiry), &format!("g-{g}")).await;
        }
        app.grant(&account, "10", "PAID", None, "g-paid").await;
    }
    app.clock.set(expiry);
    let spends = (0..40).map(|i| {
        let app = &app;
        async move { app.spend(&format!("acc-{}", i % 8), "1", &format!("s-{i}")).await }
    });
    let (answers, written) = tokio::join!(futures::future::join_all(spends), app.ledger.expire_due(app.clock.now(), MAX_EXPIRY_BATCH));
    assert!(answers.iter().all(|a| a["errors"].is_null()), "{answers:?}");
    assert_eq!(written.unwrap().lots, 24);
    for i in 0..8 {
        assert_eq!(app.balance(&format!("acc-{i}")).await, "5", "10 paid less 5 spends");
    }
    app.assert_audit_clean().await;
}

/// A batch split into parts written off side by side (on PostgreSQL; one after the other on
/// SQLite), while spends go on: each part its own transaction over its own accounts.
async fn a_batch_in_parts_writes_off_each_lot_once(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    app.ledger.job_part = 6;
    let expiry = app.clock.now() + Duration::hours(1);
    for i in 0..12 {
        let account = format!("acc-{i:02}");
        app.create_account(&account).await;
        for g in 0..3 {
            app.grant(&account, "1.25", "FREE", Some(expiry), &format!("g-{g}")).await;
        }
        app.grant(&account, "4", "PAID", None, "g-paid").await;
    }
    app.clock.set(expiry);
    let spends = (0..24).map(|i| {
        let app = &app;
        async move { app.spend(&format!("acc-{:02}", i % 12), "1", &format!("s-{i}")).await }
    });
    let (answers, written) = tokio::join!(futures::future::join_all(spends), app.ledger.expire_due(app.clock.now(), MAX_EXPIRY_BATCH));
    assert!(answers.iter().all(|a| a["errors"].is_null()), "{answers:?}");
    let written = written.unwrap();
    assert_eq!((written.lots, written.transactions), (36, 6), "two accounts' three lots per part");
    assert_eq!(written.credits.to_string(), "45");
    for i in 0..12 {
        assert_eq!(app.balance(&format!("acc-{i:02}")).await, "2");
    }
    assert_eq!(
        query_i64(
            &app,
            "SELECT COUNT(DISTINCT l.lot_id) FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id WHERE e.kind = 'expire'"
        )
        .await,
        36
    );
    app.assert_audit_clean().await;
}

/// A write-off part large enough for PostgreSQL's array statements
/// (`store::pg_array::FROM_ROWS` lots and more) writes exactly what small parts (`VALUES` lists)
/// write: the same entries, lines, lots and balances, account for account.
async fn a_large_write_off_part_writes_what_small_ones_do(backend: Backend) {
    use credits::store::pg_array::FROM_ROWS;
    let mut app = TestApp::spawn(backend).await;
    let first = app.clock.now() + Duration::hours(1);
    let second = first + Duration::hours(1);
    let per_half = FROM_ROWS + 2;
    for i in 0..2 * per_half {
        let account = format!("acc-{i:03}");
        app.create_account(&account).await;
        let expiry = if i < per_half { first } else { second };
        app.grant(&account, "4", "FREE", Some(expiry), "g-free").await;
        app.grant(&account, "20", "PAID", None, "g-paid").await;
        if (i % per_half).is_multiple_of(3) {
            // Some lots partly spent, alike in both halves: the write-off takes what is left.
            assert!(app.spend(&account, "1.5", "s-1").await["errors"].is_null());
        }
    }
    app.ledger.job_part = 1000;
    app.clock.set(first);
    // With a worker's nanoseconds, which the arrays' text drops as PostgreSQL does: the part's
    // entries are still matched to their ids (a mismatch would fail the part and go one by one).
    let large = app.ledger.expire_due(app.clock.now() + Duration::nanoseconds(987), MAX_EXPIRY_BATCH).await.unwrap();
    assert_eq!((large.lots, large.transactions), (per_half as u64, 1), "one part");
    app.ledger.job_part = 10;
    app.clock.set(second);
    let small = app.ledger.expire_due(app.clock.now(), MAX_EXPIRY_BATCH).await.unwrap();
    assert_eq!(small.lots, per_half as u64);
    assert!(small.transactions > 1, "parts of ten");
    assert_eq!(large.credits, small.credits);
    // Each write-off as everything written for it but its ids and instants, counted per half.
    let split = query_i64(&app, &format!("SELECT id FROM accounts WHERE external_id = 'acc-{per_half:03}'")).await;
    let sql = format!(
        "SELECT sig, SUM(CASE WHEN account_id < {split} THEN 1 ELSE 0 END), SUM(CASE WHEN account_id < {split} THEN 0 ELSE 1 END) \
         FROM (SELECT l.account_id, l.class || '|' || l.source || '|' || CAST(l.granted_micros AS TEXT) || '|' || \
               CAST(l.remaining_micros AS TEXT) || '|' || CAST(l.\"open\" AS TEXT) || '|' || e.kind || '|' || \
               CAST(e.amount_micros AS TEXT) || '|' || CAST(e.balance_after_micros AS TEXT) || '|' || \
               COALESCE(e.operation, '-') || '|' || COALESCE(e.reason, '-') || '|' || CAST(jl.delta_micros AS TEXT) || '|' || \
               CAST(a.balance_micros AS TEXT) AS sig \
               FROM lots l JOIN journal_lines jl ON jl.lot_id = l.id JOIN journal_entries e ON e.id = jl.entry_id \
               JOIN accounts a ON a.id = l.account_id WHERE e.kind = 'expire') AS w GROUP BY sig"
    );
    let db = &app.ledger.db;
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let counts: Vec<(String, i64, i64)> =
        rows.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap(), r.try_get_by_index(2).unwrap())).collect();
    assert_eq!(counts.iter().map(|c| c.1).sum::<i64>(), per_half as i64, "{counts:?}");
    assert_eq!(counts.len(), 2, "spent or not: {counts:?}");
    for (sig, in_large, in_small) in &counts {
        assert_eq!(in_large, in_small, "written alike in both halves: {sig}");
    }
    app.assert_audit_clean().await;
}

on_both!(
    a_large_write_off_part_writes_what_small_ones_do,
    a_batch_in_parts_writes_off_each_lot_once,
    expired_lots_never_count_and_are_written_off_at_their_instant,
    the_expiry_step_drains_a_backlog_in_batches,
    one_batch_writes_off_many_accounts,
    a_write_off_that_fails_in_the_database_does_not_hold_up_the_rest,
    spends_racing_the_write_off_lose_nothing
);
