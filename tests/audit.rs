use crate::on_both;
use crate::support::{Backend, TestApp};
use sea_orm::ConnectionTrait;

async fn the_audit_finds_a_tampered_ledger(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("dev").await;
    app.grant("dev", "10", "PAID", None, "g").await;
    app.spend("dev", "4", "s").await;
    app.assert_audit_clean().await;

    // Someone edits a lot by hand: the lot no longer matches its journal, nor the cached balance.
    app.ledger.db.execute_unprepared("UPDATE lots SET remaining_micros = remaining_micros + 1").await.unwrap();
    let report = credits::audit::run(&app.ledger.db, app.clock.now()).await.unwrap();
    assert!(!report.is_clean());
    let text = report.to_string();
    assert!(text.contains("lot remaining differs from its journal lines"), "{text}");
    assert!(text.contains("cached balance differs from the sum of lots"), "{text}");
    assert!(text.contains("conservation broken"), "{text}");
}

/// `credits audit` is the operator's command: exit 0 on a clean ledger, non-zero with a report.
async fn the_audit_command_exits_non_zero_on_problems(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("dev").await;
    app.grant("dev", "10", "PAID", None, "g").await;
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_credits"))
            .arg("audit")
            .env("DATABASE_URL", &app.db.url)
            .env("CREDITS_AUTH_SECRET", std::str::from_utf8(crate::support::SECRET).unwrap())
            .output()
            .expect("the binary runs")
    };
    let clean = run();
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stdout));
    app.ledger.db.execute_unprepared("UPDATE accounts SET balance_micros = balance_micros + 5").await.unwrap();
    let dirty = run();
    assert!(!dirty.status.success());
    assert!(String::from_utf8_lossy(&dirty.stdout).contains("cached balance differs from the journal"));
}

on_both!(the_audit_finds_a_tampered_ledger, the_audit_command_exits_non_zero_on_problems);
