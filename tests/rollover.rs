//! Rollover of plan credits (issue 25, `ledger::rollover`, `service::rollover`): at a period's
//! end the write-off carries what a plan lot left, up to the plan's maximum, into a ROLLOVER lot
//! valid for the plan's number of later periods; the rest expires. Once, under retries and under
//! two workers at once; never without the option, never for held credits, never for rolled-over
//! credits again, never for a plan lot whose expiry an operator moved or whose plan the account
//! left. On both databases, with the audit clean after each.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Utc};
use credits::ledger::{Credits, LotSource};
use credits::service::corrections::ExpiryRequest;
use credits::service::jobs::Job;
use credits::service::paging::Window;
use credits::service::reads::LotView;
use credits::service::reservations::ReserveRequest;
use serde_json::json;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rollover.toml");
const EVERY_LOT: Window = Window { after: None, before: None, from_end: false, limit: 1000 };
const HISTORY: &str = "query($a: ID!, $k: [EntryKind!]) { account(id: $a) { history(first: 20, filter: {kinds: $k}) { edges { node { kind amount reason effectiveAt lines { lotId amount } } } } } }";
const GRANT: &str = "mutation($a: ID!, $s: LotSource!) { grantCredits(input: {accountId: $a, amount: \"5\", class: FREE, source: $s, idempotencyKey: \"g\"}) { lotId } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn c(n: i64) -> Credits {
    Credits::from_whole(n)
}

/// Every lot of `account`, open or not, in id order.
async fn lots_of(app: &TestApp, account: &str) -> Vec<LotView> {
    let account = app.ledger.account(account).await.unwrap();
    let mut lots = app.ledger.lots_page(account.id, true, &EVERY_LOT).await.unwrap().items;
    lots.sort_by_key(|l| l.lot.id);
    lots
}

async fn rollover_lots(app: &TestApp, account: &str) -> Vec<LotView> {
    lots_of(app, account).await.into_iter().filter(|l| l.lot.source == LotSource::Rollover).collect()
}

async fn spend(app: &TestApp, account: &str, amount: &str, key: &str) {
    let spent = app.spend(account, amount, key).await;
    assert!(spent["errors"].is_null(), "{spent}");
}

async fn at_month_end_up_to_the_max_rolls_over_and_the_rest_expires(backend: Backend) {
    let app = TestApp::spawn_with(backend, FIXTURE).await;
    // The option as clients read it.
    let plans = app.gql(&app.service, "{ plans { code rollover { max periods } } }", json!({})).await;
    assert_eq!(
        plans["data"]["plans"],
        json!([
            { "code": "free", "rollover": { "max": "20", "periods": 2 } },
            { "code": "membership", "rollover": { "max": "50", "periods": 1 } },
            { "code": "basic", "rollover": null },
        ])
    );
    app.clock.set(at("2026-01-10T12:00:00Z"));
    let now = app.clock.now();
    for name in ["under", "over", "left", "basic"] {
        app.create_account(name).await;
    }
    // under: 30 - 18 = 12 left, all of it carries. over: 30 left, 20 (the max) carries.
    spend(&app, "under", "18", "s-1").await;
    // left: moved to membership, so its free-plan lot is of a plan it left: it expires whole,
    // while the membership lot (100, max 50) carries 50.
    app.ledger.change_plan("left", "membership", "up-1", now).await.unwrap();
    app.ledger.change_plan("basic", "basic", "b-1", now).await.unwrap();

    // The month ends; the write-off comes 30 seconds late, as a worker's would.
    app.clock.set(at("2026-02-01T00:00:30Z"));
    let report = app.ledger.expire_due(app.clock.now(), 1000).await.unwrap();
    assert_eq!(report.carried, c(12 + 20 + 50), "{report:?}");
    assert_eq!(report.credits, c(10 + 30 + 50 + 30 + 40), "written off: over's 10, left's 30 + 50, basic's 30 + 40");

    let under = rollover_lots(&app, "under").await;
    assert_eq!(under.len(), 1);
    let lot = &under[0];
    assert_eq!((lot.lot.granted, lot.lot.remaining), (c(12), c(12)));
    assert_eq!(lot.lot.expires_at, Some(at("2026-04-01T00:00:00Z")), "two months after January: the end of March");
    assert_eq!((lot.origin_kind.as_deref(), lot.origin_id.as_deref()), (Some("rollover"), Some("free:2026-01")));
    assert_eq!(rollover_lots(&app, "over").await[0].lot.granted, c(20), "at most the plan's max");
    let left = rollover_lots(&app, "left").await;
    assert_eq!(left.len(), 1, "only the plan the account is on rolls");
    assert_eq!((left[0].lot.granted, left[0].lot.expires_at), (c(50), Some(at("2026-03-01T00:00:00Z"))));
    assert!(rollover_lots(&app, "basic").await.is_empty(), "a plan without the option");
    for (name, balance) in [("under", "12"), ("over", "20"), ("left", "50"), ("basic", "0")] {
        assert_eq!(app.balance(name).await, balance, "{name}");
    }

    // The journal: a ROLLOVER of amount 0 out of the plan lot and into the new one, dated at
    // the month's end, then the EXPIRE of the rest.
    let history = app.gql(&app.service, HISTORY, json!({ "a": "over", "k": ["ROLLOVER", "EXPIRE"] })).await;
    let entries = &history["data"]["account"]["history"]["edges"];
    let plan_lot = lots_of(&app, "over").await[0].lot.id.to_string();
    let new_lot = rollover_lots(&app, "over").await[0].lot.id.to_string();
    assert_eq!(entries[0]["node"]["kind"], json!("EXPIRE"), "{history}");
    assert_eq!(entries[0]["node"]["amount"], json!("-10"));
    let rollover = &entries[1]["node"];
    assert_eq!((&rollover["kind"], &rollover["amount"]), (&json!("ROLLOVER"), &json!("0")), "{history}");
    assert_eq!(rollover["effectiveAt"], json!("2026-02-01T00:00:00+00:00"));
    assert_eq!(rollover["lines"], json!([{ "lotId": plan_lot, "amount": "-20" }, { "lotId": new_lot, "amount": "20" }]));

    // What a read showed before the write-off ran: the January lot had ended, nothing had
    // carried yet. After it: the carried credits.
    let view = app.ledger.account("over").await.unwrap();
    let before = app.ledger.balance_at(&view, at("2026-02-01T00:00:10Z"), app.clock.now()).await.unwrap().unwrap();
    assert_eq!(before.available, Credits::ZERO);
    let january = app.ledger.balance_at(&view, at("2026-01-31T23:59:59Z"), app.clock.now()).await.unwrap().unwrap();
    assert_eq!(january.available, c(30));
    assert_eq!(app.ledger.balance_at(&view, app.clock.now(), app.clock.now()).await.unwrap().unwrap().available, c(20));

    // The new month's grant comes beside it, and spends take lots soonest expiry first: over's
    // carried credits last two months, so February's own go first; left's carried credits end
    // with February's, and were granted first, so they go first.
    app.ledger.run_job(Job::GrantMonthlyPlanCredits, app.clock.now()).await.unwrap();
    assert_eq!(app.balance("over").await, "50");
    spend(&app, "over", "25", "s-2").await;
    assert_eq!(rollover_lots(&app, "over").await[0].lot.remaining, c(20), "February's credits went first");
    assert_eq!(app.balance("left").await, "150");
    spend(&app, "left", "60", "s-3").await;
    assert_eq!(rollover_lots(&app, "left").await[0].lot.remaining, Credits::ZERO, "the carried credits went first");

    // Rolled-over credits never roll again: at the end of March, under's carried 12 expire.
    app.clock.set(at("2026-04-01T00:00:00Z"));
    let before_end = app.ledger.balance(&app.ledger.account("under").await.unwrap(), at("2026-03-31T23:59:59Z")).await.unwrap();
    assert!(before_end.available >= c(12), "{before_end:?}");
    app.ledger.run_job(Job::ExpireLots, app.clock.now()).await.unwrap();
    let under = rollover_lots(&app, "under").await;
    let from_january: Vec<_> = under.iter().filter(|l| l.origin_id.as_deref() == Some("free:2026-01")).collect();
    assert_eq!(from_january.len(), 1, "{under:?}");
    assert_eq!(from_january[0].lot.remaining, Credits::ZERO, "expired at the end of March");
    // February's plan lot, written off late, carried too; the January carry made nothing.
    let origins: Vec<_> = under.iter().map(|l| l.origin_id.as_deref()).collect();
    assert_eq!(origins, [Some("free:2026-01"), Some("free:2026-02")], "{under:?}");
    app.assert_audit_clean().await;

    // The audit checks each rollover lot against its plan's max in the program it runs with:
    // with Free's max lowered to 15, the lots that carried 20 are reported (over's from January,
    // under's from February), and no other.
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let lower = text.replacen(r#"max = "20""#, r#"max = "15""#, 1);
    let lower = credits::program::Program::parse("lower", &lower).unwrap();
    let mut report = credits::audit::run_with_program(&app.ledger.db, &lower, app.clock.now()).await.unwrap().problems;
    report.sort();
    let mut expected = Vec::new();
    for name in ["under", "over"] {
        for lot in rollover_lots(&app, name).await.into_iter().filter(|l| l.lot.granted > c(15)) {
            expected.push(format!(
                "rollover lot over its plan's max: id {}: carried 20000000 micro-credits, plan free max 15000000",
                lot.lot.id
            ));
        }
    }
    expected.sort();
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert_eq!(report, expected);

    // No one grants rolled-over credits by hand: they come only from a plan lot.
    let granted = app.gql(&app.admin, GRANT, json!({ "a": "under", "s": "ROLLOVER" })).await;
    assert_eq!(error_code(&granted), "BAD_USER_INPUT", "{granted}");
}

/// The period's write-off runs again (a retry, a restart, the daily reset's catch-up, another
/// worker at the same time): the period carries once.
async fn a_period_rolls_over_once_under_retries_and_two_workers(backend: Backend) {
    let app = TestApp::spawn_with(backend, FIXTURE).await;
    app.clock.set(at("2026-01-20T08:00:00Z"));
    let accounts: Vec<String> = (0..40).map(|i| format!("acct-{i}")).collect();
    for (i, name) in accounts.iter().enumerate() {
        app.create_account(name).await;
        if i % 3 == 0 {
            spend(&app, name, "15", &format!("s-{i}")).await;
        }
    }
    app.clock.set(at("2026-02-01T00:00:05Z"));
    let now = app.clock.now();
    // Two workers at once, through different paths: the continuous job and the daily reset's
    // write-off before its periods, plus a bare batch, all racing on the same lots.
    let (a, b, c3) = tokio::join!(
        app.ledger.run_job(Job::ExpireLots, now),
        app.ledger.run_job(Job::ResetDailyCredits, now),
        app.ledger.expire_due(now, 7),
    );
    a.unwrap();
    b.unwrap();
    c3.unwrap();
    // And a retry later.
    let retry = app.ledger.expire_due(now + chrono::Duration::minutes(1), 1000).await.unwrap();
    assert_eq!((retry.lots, retry.carried), (0, Credits::ZERO), "nothing left to end");
    for (i, name) in accounts.iter().enumerate() {
        let carried = rollover_lots(&app, name).await;
        assert_eq!(carried.len(), 1, "{name}: {carried:?}");
        let expected = if i % 3 == 0 { c(15) } else { c(20) };
        assert_eq!(carried[0].lot.granted, expected, "{name}");
        assert_eq!(app.balance(name).await, expected.to_string(), "{name}");
    }
    let claims = count(&app, "SELECT COUNT(*) FROM claims WHERE kind = 'plan_rollover'").await;
    assert_eq!(claims, accounts.len() as i64);
    let entries = count(&app, "SELECT COUNT(*) FROM journal_entries WHERE kind = 'rollover'").await;
    assert_eq!(entries, accounts.len() as i64);
    app.assert_audit_clean().await;
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &app.ledger.db;
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Credits a reservation holds at the period's end are out of the lot: they do not carry, and
/// given back after the end they expire. An operator's moved expiry ends the lot where the
/// operator said, with nothing carried.
async fn held_credits_and_moved_expiries_do_not_roll_over(backend: Backend) {
    let app = TestApp::spawn_with(backend, FIXTURE).await;
    app.clock.set(at("2026-01-10T12:00:00Z"));
    app.create_account("holder").await;
    app.create_account("moved").await;
    app.clock.set(at("2026-01-28T12:00:00Z"));
    let now = app.clock.now();
    let hold = app
        .ledger
        .reserve(
            ReserveRequest {
                account: "holder".into(),
                amount: c(25),
                idempotency_key: "h-1".into(),
                feature: "render".into(),
                model: None,
                reason: None,
                hold_seconds: Some(7 * 24 * 3600),
                metadata: None,
            },
            now,
        )
        .await
        .unwrap();
    let moved_lot = lots_of(&app, "moved").await[0].lot.id;
    let request = ExpiryRequest {
        lot_id: moved_lot,
        expires_at: at("2026-02-03T00:00:00Z"),
        reason: "goodwill".into(),
        idempotency_key: "x-1".into(),
        actor: Some("ops@example.com".into()),
    };
    app.ledger.change_lot_expiry(request, now).await.unwrap();

    app.clock.set(at("2026-02-01T00:00:00Z"));
    app.ledger.run_job(Job::ExpireLots, app.clock.now()).await.unwrap();
    let carried = rollover_lots(&app, "holder").await;
    assert_eq!(carried.len(), 1);
    assert_eq!(carried[0].lot.granted, c(5), "only what the lot held: the 25 held stay out");
    let released = app.ledger.release(&hold.reservation_id.to_string(), "r-1", app.clock.now()).await.unwrap();
    assert_eq!(released.expired, c(25), "given back after the period's end, they expire");
    assert_eq!(app.balance("holder").await, "5");

    app.clock.set(at("2026-02-03T00:00:00Z"));
    let report = app.ledger.expire_due(app.clock.now(), 1000).await.unwrap();
    assert_eq!((report.lots, report.credits, report.carried), (1, c(30), Credits::ZERO));
    assert!(rollover_lots(&app, "moved").await.is_empty(), "the operator decided its end");
    app.assert_audit_clean().await;
}

/// A subscription (carat's periods from the plan's start) carries to its renewals, counted on
/// the anchor: a lot ending on Feb 28 carries to Mar 31, not Mar 28. Presets have no rollover,
/// so the test writes carat with the option on Plus.
async fn subscriptions_roll_over_to_their_renewals_and_presets_do_not(backend: Backend) {
    let carat = credits::program::Program::load("carat").map(|_| include_str!("../config/presets/carat.toml")).unwrap();
    let with = carat.replacen(r#"monthly_credits = "10000""#, "monthly_credits = \"10000\"\nrollover = { max = \"3000\", periods = 1 }", 1);
    assert_ne!(with, carat);
    let path = std::env::temp_dir().join(format!("carat-rollover-{}-{:?}.toml", std::process::id(), backend));
    std::fs::write(&path, with).unwrap();
    let app = TestApp::spawn_with(backend, path.to_str().unwrap()).await;
    app.clock.set(at("2026-01-31T10:00:00Z"));
    app.create_account("sub").await;
    app.ledger.change_plan("sub", "plus", "p-1", app.clock.now()).await.unwrap();
    spend(&app, "sub", "4000", "s-1").await;
    app.clock.set(at("2026-02-28T10:00:00Z"));
    app.ledger.run_job(Job::ExpireLots, app.clock.now()).await.unwrap();
    app.ledger.run_job(Job::RenewDueSubscriptions, app.clock.now()).await.unwrap();
    let carried = rollover_lots(&app, "sub").await;
    assert_eq!(carried.len(), 1);
    assert_eq!((carried[0].lot.granted, carried[0].lot.expires_at), (c(3000), Some(at("2026-03-31T10:00:00Z"))));
    assert_eq!(app.balance("sub").await, "13000", "the renewal's 10,000 and the 3,000 carried");
    app.assert_audit_clean().await;
    std::fs::remove_file(&path).ok();

    // arkain has no rollover: the month's end writes the plan lot off whole.
    let arkain = TestApp::spawn_with(backend, "arkain").await;
    arkain.clock.set(at("2026-01-10T12:00:00Z"));
    arkain.create_account("coder").await;
    arkain.clock.set(at("2026-02-01T00:00:00Z"));
    let report = arkain.ledger.expire_due(arkain.clock.now(), 1000).await.unwrap();
    assert_eq!((report.lots, report.credits, report.carried), (1, c(50), Credits::ZERO));
    assert!(rollover_lots(&arkain, "coder").await.is_empty());
    let history = arkain.gql(&arkain.service, HISTORY, json!({ "a": "coder", "k": ["ROLLOVER"] })).await;
    assert_eq!(history["data"]["account"]["history"]["edges"], json!([]), "{history}");
    arkain.assert_audit_clean().await;
}

on_both!(
    at_month_end_up_to_the_max_rolls_over_and_the_rest_expires,
    a_period_rolls_over_once_under_retries_and_two_workers,
    held_credits_and_moved_expiries_do_not_roll_over,
    subscriptions_roll_over_to_their_renewals_and_presets_do_not,
);
