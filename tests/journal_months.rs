//! The journal by month (issue 29): on PostgreSQL a month that has ended is archived (its
//! partitions detached from the live tables and kept, closed to changes, in `journal_archive`)
//! and everything that reads the journal reads it as before: history with its running balances,
//! a statement of the archived month, a balance at an instant in it, a hold taken in it and
//! captured after, an export, the audit. The audit notices an archived month changed behind its
//! back. An existing database is partitioned in place by the migration. SQLite keeps one table
//! and says so.

use crate::support::{Backend, TestApp, TestDb};
use chrono::{DateTime, Duration, Utc};
use credits::store::journal_months::{self as months, Month, Place};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

const HISTORY: &str =
    "query($a: ID!) { account(id: $a) { history(first: 100) { nodes { sequence kind amount balanceAfter recordedAt } } } }";
const STATEMENT: &str = "query($a: ID!, $m: String!) { account(id: $a) { statement(month: $m) { digest json } } }";
const BALANCE_AT: &str = "query($a: ID!, $t: DateTime!) { account(id: $a) { balanceAt(at: $t) { available held } } }";
const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
    reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", holdSeconds: 604800}) { reservationId } }";
const CAPTURE: &str = "mutation($r: ID!, $amt: CreditAmount!, $k: String!) {
    captureReservation(input: {reservationId: $r, amount: $amt, idempotencyKey: $k}) { status } }";

fn ok(response: Value) -> Value {
    assert!(response["errors"].is_null(), "{response}");
    response
}

/// The month `back` months before `instant`'s.
fn months_before(instant: DateTime<Utc>, back: u32) -> Month {
    let mut month = Month::of(instant);
    for _ in 0..back {
        month =
            if month.month == 1 { Month { year: month.year - 1, month: 12 } } else { Month { year: month.year, month: month.month - 1 } };
    }
    month
}

async fn read_all(app: &TestApp, account: &str, month: Month, inside: DateTime<Utc>) -> (Value, Value, Value) {
    let history = ok(app.gql(&app.service, HISTORY, json!({ "a": account })).await)["data"]["account"]["history"].clone();
    let statement =
        ok(app.gql(&app.service, STATEMENT, json!({ "a": account, "m": month.to_string() })).await)["data"]["account"]["statement"].clone();
    let at = ok(app.gql(&app.service, BALANCE_AT, json!({ "a": account, "t": inside.to_rfc3339() })).await)["data"]["account"]["balanceAt"]
        .clone();
    (history, statement, at)
}

async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_string())).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archived_month_is_read_as_before_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let today = Utc::now();
    let old = months_before(today, 3);
    let after = old.next();
    assert!(months::is_partitioned(&app.ledger.db).await.unwrap());

    // The months before the database existed have no partitions until someone makes them.
    let made = app.ledger.prepare_journal_months(old.first_instant()).await.unwrap();
    assert_eq!(made, 3, "{old} and the two months after it predate the database");
    assert_eq!(app.ledger.prepare_journal_months(old.first_instant()).await.unwrap(), 0, "once made, nothing to do");

    // Entries in the old month: a grant, a spend, and on its last day a hold that stays open;
    // then a spend the month after.
    app.clock.set(old.first_instant() + Duration::days(3));
    app.create_account("arch").await;
    ok(app.grant("arch", "100", "PAID", None, "arch-grant").await);
    ok(app.spend("arch", "10", "arch-spend-1").await);
    app.clock.set(after.first_instant() - Duration::days(1));
    let held = ok(app.gql(&app.service, RESERVE, json!({ "a": "arch", "amt": "20", "k": "arch-hold" })).await);
    let reservation = held["data"]["reserveCredits"]["reservationId"].as_str().unwrap().to_string();
    app.clock.set(after.first_instant() + Duration::days(1));
    ok(app.spend("arch", "5", "arch-spend-2").await);
    let inside = after.first_instant() - Duration::hours(12);
    let before = read_all(&app, "arch", old, inside).await;
    assert_eq!(before.0["nodes"].as_array().unwrap().len(), 4, "{}", before.0);
    assert_eq!(before.2, json!({ "available": "70", "held": "20" }));
    let listed = months::months(&app.ledger.db).await.unwrap();
    let old_row = listed.iter().find(|m| m.month == old).expect("the old month is listed");
    assert_eq!((old_row.place, old_row.entries, old_row.lines), (Place::Live, 3, 3));

    // The month in progress is not archived, nor one that never had a partition.
    let now = after.first_instant() + Duration::days(2);
    app.clock.set(now);
    let refused = app.ledger.archive_journal_month(Month::of(now), now).await.unwrap_err();
    assert!(refused.to_string().contains("has not ended"), "{refused}");
    let absent = app.ledger.archive_journal_month(months_before(today, 30), now).await.unwrap_err();
    assert!(absent.to_string().contains("has no partition"), "{absent}");

    let archived = app.ledger.archive_journal_month(old, now).await.unwrap();
    assert!(archived.now);
    assert_eq!((archived.record.entries, archived.record.lines), (3, 3));
    assert_eq!(archived.record.amount_micros, 100_000_000 - 10_000_000 - 20_000_000);
    let again = app.ledger.archive_journal_month(old, now).await.unwrap();
    assert!(!again.now, "archiving twice does nothing the second time");
    let listed = months::months(&app.ledger.db).await.unwrap();
    assert_eq!(listed.iter().find(|m| m.month == old).unwrap().place, Place::Archived);
    let db = &app.ledger.db;
    let suffix = format!("y{:04}m{:02}", old.year, old.month);
    assert_eq!(
        count(
            db,
            &format!("SELECT COUNT(*) FROM ONLY journal_entries WHERE created_at < TIMESTAMPTZ '{}'", after.first_instant().to_rfc3339())
        )
        .await,
        0
    );
    assert_eq!(count(db, &format!("SELECT COUNT(*) FROM journal_archive.journal_entries_{suffix}")).await, 3);

    // Every read sees the archived month as it saw it live.
    let read_after = read_all(&app, "arch", old, inside).await;
    assert_eq!(read_after, before, "history, the statement of the archived month and a balance in it read the same");
    app.assert_audit_clean().await;

    // The hold taken in the archived month is captured now: its lines are read from the archive.
    ok(app.gql(&app.service, CAPTURE, json!({ "r": reservation, "amt": "12", "k": "arch-capture" })).await);
    assert_eq!(app.balance("arch").await, "73");
    app.assert_audit_clean().await;

    // An export carries the archived month too.
    let mut export = Vec::new();
    credits::service::export::export(db, credits::service::export::Format::Jsonl, None, now, &mut export).await.unwrap();
    let export = String::from_utf8(export).unwrap();
    let entries = count(db, "SELECT COUNT(*) FROM journal_entries_all").await;
    assert!(entries >= 5, "grant, two spends, the hold and its capture: {entries}");
    let exported = export.lines().filter(|l| l.starts_with("{\"table\":\"journal_entries\"")).count();
    assert_eq!(exported as i64, entries, "{export}");

    // The archive refuses changes, and the audit sees one made behind its back.
    let refused = db
        .execute_unprepared(&format!("UPDATE journal_archive.journal_entries_{suffix} SET amount_micros = 0"))
        .await
        .expect_err("an archived month does not change");
    assert!(refused.to_string().contains("does not change"), "{refused}");
    for sql in [
        format!("ALTER TABLE journal_archive.journal_lines_{suffix} DISABLE TRIGGER USER"),
        format!("DELETE FROM journal_archive.journal_lines_{suffix} WHERE delta_micros < 0 AND delta_micros > -15000000"),
        format!("ALTER TABLE journal_archive.journal_lines_{suffix} ENABLE TRIGGER USER"),
    ] {
        db.execute_unprepared(&sql).await.unwrap();
    }
    let report = credits::audit::run(db, Utc::now()).await.unwrap();
    assert!(report.problems.iter().any(|p| p.contains(&format!("archived journal month {old} changed"))), "{report}");
    assert!(report.problems.iter().any(|p| p.starts_with("journal entry differs")), "the entry that lost its line is named too: {report}");
}

/// The migration turns an existing journal into the partitioned one: rows, ids, balances and
/// the running balance carry over, lines take their entry's instant, and the service goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_existing_database_is_partitioned_in_place() {
    use migration::MigratorTrait;
    let db = TestDb::new(Backend::Postgres).await;
    let conn = credits::db::connect(&db.url, 1).await.unwrap();
    let names: Vec<String> = migration::Migrator::migrations().iter().map(|m| m.name().to_string()).collect();
    let before_partitioning = names.iter().position(|n| n == "m20261204_000033_partition_journal").expect("the migration") as u32;
    migration::Migrator::up(&conn, Some(before_partitioning)).await.unwrap();
    assert!(!months::is_partitioned(&conn).await.unwrap());
    let long_ago = "2025-05-14 10:00:00+00";
    for sql in [
        format!(
            "INSERT INTO accounts (id, external_id, plan, status, identity_verified, credit_mail_enabled, balance_micros, created_at) \
                 VALUES (7, 'veteran', 'free', 'active', false, true, 70000000, TIMESTAMPTZ '{long_ago}')"
        ),
        format!(
            "INSERT INTO lots (id, account_id, class, source, granted_micros, remaining_micros, granted_at, open) \
                 VALUES (9, 7, 'paid', 'adjustment', 100000000, 70000000, TIMESTAMPTZ '{long_ago}', true)"
        ),
        format!(
            "INSERT INTO journal_entries (id, account_id, kind, amount_micros, effective_at, created_at, operation, balance_after_micros) VALUES \
                 (41, 7, 'grant', 100000000, TIMESTAMPTZ '{long_ago}', TIMESTAMPTZ '{long_ago}', 'grantCredits', 100000000), \
                 (42, 7, 'spend', -30000000, TIMESTAMPTZ '2025-06-02 08:00:00+00', TIMESTAMPTZ '2025-06-02 08:00:00+00', 'spendCredits', 70000000)"
        ),
        "INSERT INTO journal_lines (id, entry_id, lot_id, delta_micros) VALUES (51, 41, 9, 100000000), (52, 42, 9, -30000000)".to_string(),
        "SELECT setval(pg_get_serial_sequence('journal_entries', 'id'), 42)".to_string(),
        "SELECT setval(pg_get_serial_sequence('journal_lines', 'id'), 52)".to_string(),
        "SELECT setval(pg_get_serial_sequence('accounts', 'id'), 7)".to_string(),
        "SELECT setval(pg_get_serial_sequence('lots', 'id'), 9)".to_string(),
    ] {
        conn.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let _ = conn.close().await;

    // The app migrates the rest on start.
    let app = TestApp::spawn_on(db, Backend::Postgres, crate::support::LEDGER_PROGRAM).await;
    let db = &app.ledger.db;
    assert!(months::is_partitioned(db).await.unwrap());
    let listed = months::months(db).await.unwrap();
    let may = listed.iter().find(|m| m.month == Month { year: 2025, month: 5 }).expect("the first entry's month has a partition");
    let june = listed.iter().find(|m| m.month == Month { year: 2025, month: 6 }).unwrap();
    assert_eq!((may.entries, may.lines, june.entries, june.lines), (1, 1, 1, 1));
    let this = listed.iter().filter(|m| m.month >= Month::of(Utc::now())).count();
    assert_eq!(this, 3, "this month and the two after it: {listed:?}");
    assert_eq!(months::outside_months(db).await.unwrap(), 0);
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id AND e.created_at = l.created_at").await,
        2,
        "each line took its entry's instant"
    );

    let history = ok(app.gql(&app.service, HISTORY, json!({ "a": "veteran" })).await);
    let nodes = history["data"]["account"]["history"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["balanceAfter"], "70");
    let spent = ok(app.spend("veteran", "5", "after-migration").await);
    assert_eq!(spent["data"]["spendCredits"]["availableAfter"], "65");
    assert_eq!(count(db, "SELECT MAX(id) FROM journal_entries").await, 43, "ids go on from the old sequence");
    assert_eq!(count(db, "SELECT MAX(id) FROM journal_lines").await, 53);
    app.assert_audit_clean().await;

    // May 2025 has ended long ago: it is archived, and the account reads the same.
    let archived = app.ledger.archive_journal_month(Month { year: 2025, month: 5 }, Utc::now()).await.unwrap();
    assert_eq!((archived.record.entries, archived.record.amount_micros), (1, 100_000_000));
    let again = ok(app.gql(&app.service, HISTORY, json!({ "a": "veteran" })).await);
    assert_eq!(again["data"]["account"]["history"]["nodes"].as_array().unwrap().len(), 3);
    app.assert_audit_clean().await;
}

/// SQLite keeps one table each: nothing to prepare, nothing to archive, and it says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_keeps_one_journal_and_says_so() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert!(!months::is_partitioned(&app.ledger.db).await.unwrap());
    assert_eq!(app.ledger.prepare_journal_months(Utc::now()).await.unwrap(), 0);
    let refused = app.ledger.archive_journal_month(months_before(Utc::now(), 2), Utc::now()).await.unwrap_err();
    assert!(refused.to_string().contains("PostgreSQL only"), "{refused}");
    app.ledger.run_job(credits::service::jobs::Job::PrepareJournalMonths, Utc::now()).await.unwrap();
}

/// Through the real binary: `credits journal archive` and `months`, refusals with a reason and
/// a non-zero exit, and an export of a ledger with an archived month loaded into a fresh
/// PostgreSQL, whose import gives the old months their partitions again and audits clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_archives_lists_and_an_export_carries_archived_months() {
    use crate::export::{credits, text};
    let app = TestApp::spawn(Backend::Postgres).await;
    let old = months_before(Utc::now(), 2);
    app.ledger.prepare_journal_months(old.first_instant()).await.unwrap();
    app.clock.set(old.first_instant() + Duration::days(5));
    app.create_account("cli").await;
    ok(app.grant("cli", "40", "PAID", None, "cli-grant").await);
    ok(app.spend("cli", "15", "cli-spend").await);
    app.clock.set(Utc::now());

    let url = &app.db.url;
    let not_over = credits(url, &["journal", "archive", "--month", &Month::of(Utc::now()).to_string()], None).await;
    assert!(!not_over.status.success());
    assert!(text(&not_over.stderr).contains("has not ended"), "{}", text(&not_over.stderr));
    let malformed = credits(url, &["journal", "archive", "--month", "2026-13"], None).await;
    assert!(!malformed.status.success());
    assert!(text(&malformed.stderr).contains("is not a month"), "{}", text(&malformed.stderr));

    let archived = credits(url, &["journal", "archive", "--month", &old.to_string()], None).await;
    assert!(archived.status.success(), "{}", text(&archived.stderr));
    assert_eq!(text(&archived.stdout).trim(), format!("{old} archived: 2 entries, 2 lines"));
    let listed = credits(url, &["journal", "months"], None).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains(&format!("{old}  archived  2 entries  2 lines")), "{}", text(&listed.stdout));
    let audit = credits(url, &["audit"], None).await;
    assert!(audit.status.success(), "{}", text(&audit.stdout));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ledger.jsonl");
    let exported = credits(url, &["export", "--output", file.to_str().unwrap()], None).await;
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let target = TestDb::new(Backend::Postgres).await;
    let imported = credits(&target.url, &["import", file.to_str().unwrap()], None).await;
    assert!(imported.status.success(), "{}\n{}", text(&imported.stderr), text(&imported.stdout));
    let listed = credits(&target.url, &["journal", "months"], None).await;
    let listed = text(&listed.stdout);
    assert!(listed.contains(&format!("{old}  live      2 entries  2 lines")), "the imported month has its partition again:\n{listed}");
    assert!(listed.contains("outside any month: 0 entries"), "{listed}");

    let sqlite = TestDb::new(Backend::Sqlite).await;
    let refused = credits(&sqlite.url, &["journal", "months"], None).await;
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("PostgreSQL only"), "{}", text(&refused.stderr));
}

/// Archiving takes the live journal's lock for its catalog changes only: spends made over the
/// API while a month is archived all succeed (they wait at most that long), and the ledger
/// audits clean after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spends_during_an_archive_all_succeed() {
    let app = std::sync::Arc::new(TestApp::spawn(Backend::Postgres).await);
    let old = months_before(Utc::now(), 2);
    app.ledger.prepare_journal_months(old.first_instant()).await.unwrap();
    app.clock.set(old.first_instant() + Duration::days(1));
    for i in 0..4 {
        app.create_account(&format!("busy{i}")).await;
        ok(app.grant(&format!("busy{i}"), "1000", "PAID", None, &format!("busy-grant-{i}")).await);
        for j in 0..20 {
            ok(app.spend(&format!("busy{i}"), "1", &format!("busy-old-{i}-{j}")).await);
        }
    }
    app.clock.set(Utc::now());
    let spenders: Vec<_> = (0..4)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                for j in 0..25 {
                    ok(app.spend(&format!("busy{i}"), "2", &format!("busy-new-{i}-{j}")).await);
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(spenders.iter().any(|s| !s.is_finished()), "the spends are still going when the archive begins");
    let archived = app.ledger.archive_journal_month(old, Utc::now()).await.unwrap();
    assert_eq!(archived.record.entries, 4 * 21);
    for spender in spenders {
        spender.await.unwrap();
    }
    for i in 0..4 {
        assert_eq!(app.balance(&format!("busy{i}")).await, "930");
    }
    app.assert_audit_clean().await;
}

/// A month made ahead of time while a posting stands between its two steps (its lot updated,
/// the journal not yet touched): the posting goes on and the month is made. `CREATE TABLE ...
/// PARTITION OF` locks the journal's table first and the table its foreign key points at
/// second, the opposite of a posting's order; PostgreSQL broke that cycle by failing one of
/// them (the fleet test's deadlocks at each month's start), until the partition took the
/// referenced table's lock first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_month_made_ahead_waits_for_a_posting_between_its_steps() {
    use sea_orm::TransactionTrait;
    let app = TestApp::spawn(Backend::Postgres).await;
    app.create_account("ahead").await;
    ok(app.grant("ahead", "100", "PAID", None, "ahead-grant").await);
    let lot = count(&app.ledger.db, "SELECT MAX(id) FROM lots").await;
    // Past the months the server prepares, so this one is still to be made.
    let mut month = Month::of(Utc::now());
    for _ in 0..=months::MONTHS_AHEAD {
        month = month.next();
    }

    let posting = app.ledger.db.begin().await.unwrap();
    posting.execute_unprepared(&format!("UPDATE lots SET remaining_micros = remaining_micros WHERE id = {lot}")).await.unwrap();
    let maker = {
        let db = app.ledger.db.clone();
        tokio::spawn(async move { months::ensure(&db, month, month).await })
    };
    // The maker is waiting for the posting by now; the posting reads the journal's lines, as a
    // capture does before it writes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let read = posting
        .query_one_raw(Statement::from_string(DbBackend::Postgres, format!("SELECT COUNT(*) FROM journal_lines WHERE lot_id = {lot}")))
        .await;
    assert!(read.is_ok(), "the posting's read of the journal: {read:?}");
    posting.commit().await.unwrap();
    let made = maker.await.unwrap().unwrap();
    assert_eq!(made, vec![month], "the month was made once the posting ended");
    let partitions =
        count(&app.ledger.db, &format!("SELECT COUNT(*) FROM pg_class WHERE relname LIKE 'journal_%_{}'", month_suffix(month))).await;
    assert_eq!(partitions, 2, "its entries' and its lines' partitions");

    // Made inside a caller's transaction (as an import does), the caller keeps its own
    // lock_timeout: the partition's short one ends with the partition.
    let caller = app.ledger.db.begin().await.unwrap();
    caller.execute_unprepared("SET LOCAL lock_timeout = '7s'").await.unwrap();
    let after = month.next();
    assert_eq!(months::ensure(&caller, after, after).await.unwrap(), vec![after]);
    let shown = caller.query_one_raw(Statement::from_string(DbBackend::Postgres, "SHOW lock_timeout")).await.unwrap().unwrap();
    assert_eq!(shown.try_get_by_index::<String>(0).unwrap(), "7s");
    caller.commit().await.unwrap();
}

/// A partition or an archive that waited too long for its locks fails with PostgreSQL's lock
/// timeout (55P03): the database busy, which the job's next run (or the test clock's next
/// attempt) can get past, and not a failure of the job itself. A fleet run once gave up its
/// clock advance on it, answered as an internal error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_timeout_is_the_database_busy() {
    use sea_orm::TransactionTrait;
    let app = TestApp::spawn(Backend::Postgres).await;
    let holder = app.ledger.db.begin().await.unwrap();
    holder.execute_unprepared("LOCK TABLE lots IN SHARE ROW EXCLUSIVE MODE").await.unwrap();
    let waiter = app.ledger.db.begin().await.unwrap();
    waiter.execute_unprepared("SET LOCAL lock_timeout = '50ms'").await.unwrap();
    let err = waiter.execute_unprepared("LOCK TABLE lots IN SHARE ROW EXCLUSIVE MODE").await.unwrap_err();
    assert!(months::waited_too_long(&err), "{err}");
    let (sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(sqlx)) | sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(sqlx))) = &err
    else {
        panic!("a driver's error: {err:?}")
    };
    assert_eq!(workers::FailureKind::of_sqlx(sqlx), Some(workers::FailureKind::DatabaseBusy));
    waiter.rollback().await.unwrap();
    holder.rollback().await.unwrap();
}

fn month_suffix(month: Month) -> String {
    format!("y{:04}m{:02}", month.year, month.month)
}

/// The views and the archive list their columns: a column added to the journal and not to
/// them would be missing from every read (or refused by the next archive). This fails then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_views_and_the_archive_have_every_column_of_the_journal() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let columns = |schema: &'static str, table: &'static str| {
        let db = app.ledger.db.clone();
        async move {
            let sql = format!(
                "SELECT column_name || ' ' || data_type FROM information_schema.columns \
                 WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY ordinal_position"
            );
            let rows = db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap();
            rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect::<Vec<_>>()
        }
    };
    for (table, view, archive) in [("journal_entries", "journal_entries_all", "entries"), ("journal_lines", "journal_lines_all", "lines")] {
        let live = columns("public", table).await;
        assert!(live.len() >= 5, "{live:?}");
        assert_eq!(columns("public", view).await, live, "{view} lists every column of {table}, in its order");
        assert_eq!(columns("journal_archive", archive).await, live, "journal_archive.{archive} has every column of {table}");
    }
}
