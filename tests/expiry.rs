use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::Duration;
use serde_json::json;

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

on_both!(expired_lots_never_count_and_are_written_off_at_their_instant, the_expiry_step_drains_a_backlog_in_batches);
