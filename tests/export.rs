//! `credits export` and `credits import`, through the real binary: a small ledger built over the
//! GraphQL API, exported, loaded into a fresh empty database (of the same backend and of the
//! other), audited, and checked to be the same ledger that still works (replays, refunds).

use crate::on_both;
use crate::support::{Backend, TestApp, TestDb, buy, error_code};
use chrono::Duration;
use serde_json::{Value, json};
use std::path::Path;

const PROGRAM: &str = "arkain";
const ACCOUNTS: [&str; 4] = ["ann", "bob", "cat", "dan"];
const BALANCE: &str = "query($a: ID!) { account(id: $a) { balance { total held available } } }";
const REFUND: &str = "mutation($id: ID!, $k: String!) {
    refundPurchase(input: {purchaseId: $id, idempotencyKey: $k}) { purchase { status } refunded { amountMinor currency } credits revoked } }";
const RELEASE: &str = "mutation($r: ID!, $k: String!) { releaseReservation(input: {reservationId: $r, idempotencyKey: $k}) { status } }";
const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
    reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", holdSeconds: 3600}) { reservationId amount } }";

/// Runs `credits ARGS` against `url`, with nothing else configured.
pub(crate) async fn credits(url: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_credits"));
    command
        .args(args)
        .env_remove("CREDITS_AUTH_SECRET")
        .env_remove("CREDITS_CONFIG")
        .env("DATABASE_URL", url)
        .env("CREDITS_DATA_DIR", dir.path())
        .env("RUST_LOG", "warn")
        .current_dir(dir.path())
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
        drop(pipe);
    }
    child.wait_with_output().await.unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn export_to(url: &str, file: &Path, extra: &[&str]) -> String {
    let mut args = vec!["export", "--output", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = credits(url, &args, None).await;
    assert!(out.status.success(), "export failed: {}", text(&out.stderr));
    std::fs::read_to_string(file).unwrap()
}

/// The row lines of a JSONL export (what must be equal between a ledger and its copy).
fn row_lines(export: &str) -> Vec<&str> {
    export.lines().filter(|l| l.starts_with("{\"table\"")).collect()
}

struct Built {
    app: TestApp,
    /// ann's second purchase, left unrefunded for the copy to refund.
    open_purchase: String,
    /// bob's purchase, refunded in the source.
    refunded_purchase: String,
    /// The spend replayed on the copy, and what it answered on the original.
    spend: Value,
    /// cat's open hold, counted against its spend limits.
    hold: String,
}

/// Purchases (one refunded), grants of three classes, spends, a coupon, an open reservation
/// and an expired lot written off.
async fn build_ledger(backend: Backend) -> Built {
    let app = TestApp::spawn_with(backend, PROGRAM).await;
    for account in ACCOUNTS {
        app.create_account(account).await;
    }
    let now = app.clock.now();
    buy(&app, "ann", Some("100"), None, "pay-ann-1").await;
    let open_purchase = buy(&app, "ann", Some("60"), None, "pay-ann-2").await;
    let refunded = buy(&app, "bob", None, Some("credits-100"), "pay-bob-1").await;
    assert!(app.gql(&app.admin, REFUND, json!({ "id": refunded, "k": "refund-bob" })).await["errors"].is_null());
    for (account, amount, class, expires, key) in [
        ("bob", "25", "PROMOTIONAL", Some(now + Duration::days(10)), "g-1"),
        ("cat", "10.5", "PAID", None, "g-2"),
        ("cat", "3.25", "PROMOTIONAL", Some(now + Duration::hours(1)), "g-3"),
        ("dan", "7", "FREE", Some(now + Duration::days(3)), "g-4"),
    ] {
        let granted = app.grant(account, amount, class, expires, key).await;
        assert!(granted["errors"].is_null(), "{granted}");
    }
    let spend = app.spend("ann", "12.345678", "s-ann-1").await;
    assert!(spend["errors"].is_null(), "{spend}");
    assert!(app.spend("bob", "5", "s-bob-1").await["errors"].is_null());
    let coupon = app
        .gql(&app.admin, "mutation { createCoupon(input: {code: \"WELCOME\", credits: \"5\", maxRedemptions: 10}) { code } }", json!({}))
        .await;
    assert!(coupon["errors"].is_null(), "{coupon}");
    let redeem = "mutation { redeemCoupon(input: {accountId: \"dan\", code: \"welcome\", idempotencyKey: \"c-1\"}) { amount } }";
    assert!(app.gql(&app.user("dan"), redeem, json!({})).await["errors"].is_null());
    // cat's promotional lot expires and is written off; then a hold stays open.
    app.clock.set(now + Duration::hours(2));
    assert_eq!(app.ledger.expire_due(app.clock.now(), 100).await.unwrap().lots, 1);
    // cat has a spend limit, which the spend and the open hold count against.
    let limits = app
        .gql(
            &app.service,
            "mutation { setSpendLimits(input: {accountId: \"cat\", limits: [{period: DAY, max: \"100\"}, {feature: \"video\", period: MONTH, max: \"50\"}]}) { maxPerCharge } }",
            json!({}),
        )
        .await;
    assert!(limits["errors"].is_null(), "{limits}");
    assert!(app.spend("cat", "1.5", "s-cat-1").await["errors"].is_null());
    let held = app.gql(&app.service, RESERVE, json!({ "a": "cat", "amt": "4", "k": "hold-cat" })).await;
    assert!(held["errors"].is_null(), "{held}");
    let hold = held["data"]["reserveCredits"]["reservationId"].as_str().unwrap().to_string();
    app.assert_audit_clean().await;
    Built { app, open_purchase, refunded_purchase: refunded, spend, hold }
}

/// cat's spend limits, each with what its current period counted.
async fn spend_limits(app: &TestApp) -> Value {
    let r = app.gql(&app.service, "query { account(id: \"cat\") { spendLimits { limits { feature period max used } } } }", json!({})).await;
    assert!(r["errors"].is_null(), "{r}");
    r["data"]["account"]["spendLimits"].clone()
}

async fn balances(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    for account in ACCOUNTS {
        all.push(app.gql(&app.service, BALANCE, json!({ "a": account })).await["data"].clone());
    }
    all
}

/// Export from `from`, import into a fresh `to`: audit passes, every row and every balance is
/// the source's, and the copy goes on working: a replayed spend answers as before without
/// charging again, and the purchase left open can be refunded.
async fn round_trip(from: Backend, to: Backend) {
    let source = build_ledger(from).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ledger.jsonl");
    let exported = export_to(&source.app.db.url, &file, &[]).await;
    let header: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], json!("credits-export"));
    assert_eq!(header["since"], Value::Null);
    let checksum: Value = serde_json::from_str(exported.lines().last().unwrap()).unwrap();
    assert_eq!(checksum["rows"], json!(row_lines(&exported).len()));
    for table in ["accounts", "lots", "journal_entries", "journal_lines", "purchases", "reservations", "idempotency_keys", "coupons"] {
        assert!(exported.contains(&format!("{{\"table\":\"{table}\"")), "no {table} row in the export");
    }
    assert!(!exported.contains("\"table\":\"outbox\""), "the outbox is operational, not ledger state");
    // The spend limits' counters and what the open hold counted travel too.
    for table in ["spend_limits", "spend_usage", "spend_limit_holds"] {
        assert!(exported.contains(&format!("{{\"table\":\"{table}\"")), "no {table} row in the export");
    }

    let target = TestDb::new(to).await;
    let imported = credits(&target.url, &["import", file.to_str().unwrap()], None).await;
    assert!(imported.status.success(), "import failed: {}\n{}", text(&imported.stderr), text(&imported.stdout));
    assert!(text(&imported.stdout).contains("OK: conservation holds"), "the import's audit: {}", text(&imported.stdout));

    // The copy, exported again, holds exactly the source's rows.
    let again = export_to(&target.url, &dir.path().join("again.jsonl"), &[]).await;
    assert_eq!(row_lines(&again), row_lines(&exported), "the copy's rows differ from the source's");

    let copy = TestApp::spawn_on(target, to, PROGRAM).await;
    copy.clock.set(source.app.clock.now());
    assert_eq!(balances(&copy).await, balances(&source.app).await);
    copy.assert_audit_clean().await;
    // The copy goes on counting where the source was (not from zero), and settling the hold
    // gives its room back there.
    assert_eq!(spend_limits(&copy).await, spend_limits(&source.app).await);
    assert_eq!(spend_limits(&copy).await["limits"][0]["used"], json!("4"), "the month's video cap: the hold");
    assert_eq!(spend_limits(&copy).await["limits"][1]["used"], json!("5.5"), "the day's cap: the spend and the hold");
    let released = copy.gql(&copy.service, RELEASE, json!({ "r": source.hold, "k": "release-cat" })).await;
    assert!(released["errors"].is_null(), "{released}");
    assert_eq!(spend_limits(&copy).await["limits"][1]["used"], json!("1.5"), "the release gave the hold's room back");

    // A replay answers as the original did, and charges nothing more.
    let before = copy.balance("ann").await;
    assert_eq!(copy.spend("ann", "12.345678", "s-ann-1").await, source.spend);
    assert_eq!(copy.balance("ann").await, before);
    // A new spend takes a new id past the imported ones (PostgreSQL's sequences were moved).
    let fresh = copy.spend("ann", "1", "s-ann-2").await;
    assert!(fresh["errors"].is_null(), "{fresh}");
    let refund = copy.gql(&copy.admin, REFUND, json!({ "id": source.open_purchase, "k": "refund-ann" })).await;
    assert_eq!(refund["data"]["refundPurchase"]["purchase"]["status"], json!("REFUNDED"), "{refund}");
    // bob's purchase was refunded in the source: refunded in the copy too.
    let again = copy.gql(&copy.admin, REFUND, json!({ "id": source.refunded_purchase, "k": "refund-bob-2" })).await;
    assert_eq!(error_code(&again), "REFUND_NOT_ALLOWED", "{again}");
    copy.assert_audit_clean().await;
    let audit = credits(&copy.db.url, &["audit"], None).await;
    assert!(audit.status.success(), "{}", text(&audit.stdout));
}

async fn a_ledger_survives_export_and_import(backend: Backend) {
    round_trip(backend, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_ledger_moves_to_postgres() {
    round_trip(Backend::Sqlite, Backend::Postgres).await;
}

/// A changed byte or a cut file is refused before anything is written; a database that already
/// holds a ledger is refused; an incremental export is refused. Each leaves the target as it was.
async fn import_refuses_what_is_not_a_whole_intact_export(backend: Backend) {
    let source = build_ledger(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ledger.jsonl");
    let exported = export_to(&source.app.db.url, &file, &[]).await;
    let target = TestDb::new(backend).await;

    // One balance changed by one digit: still valid JSON, still a valid row.
    let line = exported.lines().find(|l| l.contains("\"balance_micros\":")).unwrap();
    let start = line.find("\"balance_micros\":").unwrap() + "\"balance_micros\":".len();
    let digit = line.as_bytes()[start];
    let other = if digit == b'1' { '2' } else { '1' };
    let tampered_line = format!("{}{other}{}", &line[..start], &line[start + 1..]);
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, exported.replacen(line, &tampered_line, 1)).unwrap();
    let refused = credits(&target.url, &["import", tampered.to_str().unwrap()], None).await;
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("checksum does not match"), "{}", text(&refused.stderr));

    // Cut before its checksum line.
    let cut = dir.path().join("cut.jsonl");
    let lines: Vec<&str> = exported.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let refused = credits(&target.url, &["import", cut.to_str().unwrap()], None).await;
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("truncated"), "{}", text(&refused.stderr));

    // The same over stdin: read once, loaded inside the transaction that the bad checksum rolls back.
    let tampered_bytes = std::fs::read(&tampered).unwrap();
    let refused = credits(&target.url, &["import", "-"], Some(&tampered_bytes)).await;
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("checksum does not match"), "{}", text(&refused.stderr));

    // An incremental export is not a ledger.
    let partial = dir.path().join("since.jsonl");
    let since = export_to(&source.app.db.url, &partial, &["--since", "2000-01-01"]).await;
    assert!(since.lines().next().unwrap().contains("\"since\":\"2000-01-01T00:00:00Z\""), "{since}");
    let refused = credits(&target.url, &["import", partial.to_str().unwrap()], None).await;
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("incremental"), "{}", text(&refused.stderr));

    // Nothing was written by any of those: the intact file still loads (into an empty
    // database only), and over stdin as well as from a file.
    let loaded = credits(&target.url, &["import", "-"], Some(exported.as_bytes())).await;
    assert!(loaded.status.success(), "{}", text(&loaded.stderr));

    // Now it holds a ledger: a second import is refused and changes nothing.
    let before = export_to(&target.url, &dir.path().join("before.jsonl"), &[]).await;
    let refused = credits(&target.url, &["import", file.to_str().unwrap()], None).await;
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("not empty"), "{}", text(&refused.stderr));
    let after = export_to(&target.url, &dir.path().join("after.jsonl"), &[]).await;
    assert_eq!(row_lines(&after), row_lines(&before));
    // And so is an import into the source itself.
    let refused = credits(&source.app.db.url, &["import", file.to_str().unwrap()], None).await;
    assert!(text(&refused.stderr).contains("not empty"), "{}", text(&refused.stderr));
}

/// `--since` takes only what was recorded at or after the instant: nothing from the future, and
/// from the past as much as the whole export holds of those tables.
async fn since_exports_only_what_changed(backend: Backend) {
    let source = build_ledger(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let whole = export_to(&source.app.db.url, &dir.path().join("whole.jsonl"), &[]).await;
    let future = export_to(&source.app.db.url, &dir.path().join("future.jsonl"), &["--since", "2999-01-01T00:00:00Z"]).await;
    assert_eq!(row_lines(&future), Vec::<&str>::new(), "{future}");
    let past = export_to(&source.app.db.url, &dir.path().join("past.jsonl"), &["--since", "2000-01-01"]).await;
    let entries = |export: &str| export.lines().filter(|l| l.starts_with("{\"table\":\"journal_")).count();
    assert_eq!(entries(&past), entries(&whole));
    assert!(entries(&whole) > 10);
    // Between: the entries after the expiry (the write-off is dated at the expiry, but recorded
    // at the clock's later instant) and nothing before.
    let middle = (source.app.clock.now() - Duration::minutes(1)).to_rfc3339();
    let recent = export_to(&source.app.db.url, &dir.path().join("recent.jsonl"), &["--since", &middle]).await;
    let recent_entries: Vec<Value> = recent
        .lines()
        .filter(|l| l.starts_with("{\"table\":\"journal_entries\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["row"]["kind"].clone())
        .collect();
    assert_eq!(recent_entries, vec![json!("expire"), json!("spend"), json!("hold")], "{recent}");
}

/// The CSV for accountants: one record per journal line under a fixed header, amounts exact, and
/// a checksum comment over the bytes before it.
async fn csv_export_parses_and_adds_up(backend: Backend) {
    use sha2::Digest;
    let source = build_ledger(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = export_to(&source.app.db.url, &dir.path().join("journal.csv"), &["--format", "csv"]).await;
    let jsonl = export_to(&source.app.db.url, &dir.path().join("ledger.jsonl"), &[]).await;
    let (body, last) = csv.trim_end_matches('\n').rsplit_once('\n').unwrap();
    let body = format!("{body}\n");
    let expected = format!("# sha256:{} rows:", hex::encode(sha2::Sha256::digest(body.as_bytes())));
    assert!(last.starts_with(&expected), "{last} vs {expected}");
    let mut records = body.lines();
    assert_eq!(records.next(), Some(credits::service::export::CSV_COLUMNS));
    let records: Vec<Vec<&str>> = records.map(|r| r.split(',').collect()).collect();
    let lines_in_jsonl = jsonl.lines().filter(|l| l.starts_with("{\"table\":\"journal_lines\"")).count();
    assert_eq!(records.len(), lines_in_jsonl);
    assert!(last.ends_with(&format!("rows:{}", records.len())));
    // No field here holds a comma, so a plain split is the parse; every record is whole.
    assert!(records.iter().all(|r| r.len() == 15), "{csv}");
    // The lines add up to what the lots hold, and each credits column is its micros exactly.
    let lines_sum: i64 = records.iter().map(|r| r[9].parse::<i64>().unwrap()).sum();
    let lots_sum: i64 = jsonl
        .lines()
        .filter(|l| l.starts_with("{\"table\":\"lots\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["row"]["remaining_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(lines_sum, lots_sum);
    for r in &records {
        let credits: rust_decimal::Decimal = r[10].parse().unwrap();
        assert_eq!(credits * rust_decimal::Decimal::from(1_000_000), rust_decimal::Decimal::from(r[9].parse::<i64>().unwrap()));
    }
    assert!(records.iter().any(|r| r[4] == "ann" && r[5] == "spend" && r[10] == "-12.345678"), "{csv}");
    let refused = credits(&source.app.db.url, &["export", "--format", "xml"], None).await;
    assert!(!refused.status.success());
}

/// An export made before journal entries carried `balance_after_micros` (migration 000020):
/// its entries load without it, and the import gives each the running balance the migration
/// gave old entries, so the copy is the same ledger as the source. Its journal lines have no
/// `created_at` either (migration 000033): each takes its entry's.
async fn an_export_from_before_balance_after_gets_it_recomputed(backend: Backend) {
    use sha2::Digest;
    let source = build_ledger(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let exported = export_to(&source.app.db.url, &dir.path().join("ledger.jsonl"), &[]).await;
    assert!(exported.contains("\"balance_after_micros\":"), "a current export carries it");
    let field = without_balance_after(&exported);
    let mut body = String::new();
    for line in field.lines().filter(|l| !l.starts_with("{\"checksum\"")) {
        let line = if line.starts_with("{\"format\"") {
            let mut header: Value = serde_json::from_str(line).unwrap();
            header["schema"] = json!("m20261203_000017_add_operator_records");
            header.to_string()
        } else if line.starts_with("{\"table\":\"journal_lines\"") {
            // Lines had no instant of their own before migration 000033: the import gives each
            // its entry's (`journal::fill_line_instants`).
            let mut record: Value = serde_json::from_str(line).unwrap();
            assert!(record["row"].as_object_mut().unwrap().remove("created_at").is_some(), "a current export carries it: {line}");
            format!("{{\"table\":\"journal_lines\",\"row\":{}}}", record["row"])
        } else {
            line.to_string()
        };
        body.push_str(&line);
        body.push('\n');
    }
    let rows = body.lines().filter(|l| l.starts_with("{\"table\"")).count();
    let checksum = format!("sha256:{}", hex::encode(sha2::Sha256::digest(body.as_bytes())));
    body.push_str(&format!("{}\n", json!({ "checksum": checksum, "rows": rows })));
    let old = dir.path().join("old.jsonl");
    std::fs::write(&old, &body).unwrap();

    let target = TestDb::new(backend).await;
    let imported = credits(&target.url, &["import", old.to_str().unwrap()], None).await;
    assert!(imported.status.success(), "import failed: {}\n{}", text(&imported.stderr), text(&imported.stdout));
    let again = export_to(&target.url, &dir.path().join("again.jsonl"), &[]).await;
    assert_eq!(row_lines(&again), row_lines(&exported), "balances after, and lines' instants, recomputed as they were written");
}

/// The export's text without any `"balance_after_micros":N` field, as an older binary wrote it.
fn without_balance_after(export: &str) -> String {
    let key = ",\"balance_after_micros\":";
    let mut out = String::with_capacity(export.len());
    let mut rest = export;
    while let Some(at) = rest.find(key) {
        out.push_str(&rest[..at]);
        let after = &rest[at + key.len()..];
        let end = after.find(|c: char| c != '-' && !c.is_ascii_digit()).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

on_both!(
    an_export_from_before_balance_after_gets_it_recomputed,
    a_ledger_survives_export_and_import,
    import_refuses_what_is_not_a_whole_intact_export,
    since_exports_only_what_changed,
    csv_export_parses_and_adds_up
);
