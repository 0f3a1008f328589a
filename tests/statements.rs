//! Monthly statements (issue 26) on both databases: a month with grants from several sources,
//! spends under several features, a captured hold, a refund and an expiry, every total and
//! every lot row checked, the digest recomputed here from docs/statements.md (a second,
//! independent implementation of the documented format), who may read it, bad months; and
//! `credits statement show` / `verify` against a tampered file and a database changed after the
//! statement was made.

use crate::on_both;
use crate::support::{Backend, TestApp, buy, error_code};
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement as Sql};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const STATEMENT: &str = "query($a: ID!, $m: String!) { account(id: $a) { statement(month: $m) {
    format month from to asOf complete opening closing
    grantsBySource { source credits } spendsByFeature { feature credits } expired refunded
    movements { kind credits }
    lots { id source class grantedAt expiresAt opening creditsIn creditsOut expired closing }
    entryCount digest json } } }";
const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $f: String!) {
    spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: $f}) { sequence } }";
const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
    reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"video\", holdSeconds: 3600}) { reservationId } }";
const CAPTURE: &str = "mutation($r: ID!, $amt: CreditAmount!, $k: String!) {
    captureReservation(input: {reservationId: $r, amount: $amt, idempotencyKey: $k}) { status } }";
const REFUND: &str = "mutation($id: ID!, $k: String!) { refundPurchase(input: {purchaseId: $id, idempotencyKey: $k}) { credits } }";
const GRANT: &str = "mutation($a: ID!, $amt: CreditAmount!, $s: LotSource!, $c: LotClass!, $e: DateTime, $k: String!) {
    grantCredits(input: {accountId: $a, amount: $amt, source: $s, class: $c, expiresAt: $e, idempotencyKey: $k}) { lotId } }";

fn ok(response: Value) -> Value {
    assert!(response["errors"].is_null(), "{response}");
    response
}

fn day(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
}

async fn statement(app: &TestApp, token: &str, account: &str, month: &str) -> Value {
    let r = ok(app.gql(token, STATEMENT, json!({ "a": account, "m": month })).await);
    r["data"]["account"]["statement"].clone()
}

async fn grant(app: &TestApp, account: &str, amount: &str, source: &str, class: &str, expires: Option<DateTime<Utc>>, key: &str) -> String {
    let r = app
        .gql(
            &app.admin,
            GRANT,
            json!({ "a": account, "amt": amount, "s": source, "c": class, "e": expires.map(|e| e.to_rfc3339()), "k": key }),
        )
        .await;
    ok(r)["data"]["grantCredits"]["lotId"].as_str().unwrap().to_string()
}

async fn spend(app: &TestApp, account: &str, amount: &str, feature: &str, key: &str) {
    ok(app.gql(&app.service, SPEND, json!({ "a": account, "amt": amount, "k": key, "f": feature })).await);
}

// --- The digest as docs/statements.md describes it, written again from the document alone. ---

fn doc_amount(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let mut fraction = format!("{:06}", abs % 1_000_000);
    while fraction.ends_with('0') {
        fraction.pop();
    }
    if fraction.is_empty() { format!("{sign}{}", abs / 1_000_000) } else { format!("{sign}{}.{fraction}", abs / 1_000_000) }
}

fn doc_instant(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn doc_text(value: Option<String>) -> String {
    value.map_or("null".to_string(), |s| serde_json::to_string(&s).unwrap())
}

/// SHA-256 over the account's entries effective in [from, until), in id order, as the doc says.
async fn documented_digest(app: &TestApp, account: &str, from: DateTime<Utc>, until: DateTime<Utc>) -> (String, usize) {
    let db = &app.ledger.db;
    let backend = db.get_database_backend();
    let p = |n: usize| if backend == DbBackend::Postgres { format!("${n}") } else { "?".to_string() };
    let sql = format!(
        "SELECT e.id, e.kind, e.operation, e.effective_at, e.created_at, e.amount_micros, e.feature, e.model, e.reason \
         FROM journal_entries e JOIN accounts a ON a.id = e.account_id \
         WHERE a.external_id = {} AND e.effective_at >= {} AND e.effective_at < {} ORDER BY e.id",
        p(1),
        p(2),
        p(3)
    );
    let rows = db.query_all_raw(Sql::from_sql_and_values(backend, sql, [account.into(), from.into(), until.into()])).await.unwrap();
    let mut text = String::new();
    for row in &rows {
        let id: i64 = row.try_get_by_index(0).unwrap();
        let lines_sql = format!("SELECT lot_id, delta_micros FROM journal_lines WHERE entry_id = {} ORDER BY id", p(1));
        let lines = db.query_all_raw(Sql::from_sql_and_values(backend, lines_sql, [id.into()])).await.unwrap();
        let lines: Vec<String> = lines
            .iter()
            .map(|l| {
                let (lot, delta): (i64, i64) = (l.try_get_by_index(0).unwrap(), l.try_get_by_index(1).unwrap());
                format!("{{\"lot\":{lot},\"delta\":\"{}\"}}", doc_amount(delta))
            })
            .collect();
        let text_of = |i: usize| doc_text(row.try_get_by_index::<Option<String>>(i).unwrap());
        let kind: String = row.try_get_by_index(1).unwrap();
        let operation: String = row.try_get_by_index(2).unwrap();
        let effective: DateTime<Utc> = row.try_get_by_index(3).unwrap();
        let recorded: DateTime<Utc> = row.try_get_by_index(4).unwrap();
        let amount: i64 = row.try_get_by_index(5).unwrap();
        text.push_str(&format!(
            "{{\"id\":{id},\"kind\":{},\"operation\":{},\"effectiveAt\":\"{}\",\"recordedAt\":\"{}\",\"amount\":\"{}\",\"feature\":{},\"model\":{},\"reason\":{},\"lines\":[{}]}}\n",
            serde_json::to_string(&kind).unwrap(),
            serde_json::to_string(&operation).unwrap(),
            doc_instant(effective),
            doc_instant(recorded),
            doc_amount(amount),
            text_of(6),
            text_of(7),
            text_of(8),
            lines.join(",")
        ));
    }
    let digest: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    (digest, rows.len())
}

fn amount(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("an amount: {v}"));
    let (negative, s) = s.strip_prefix('-').map_or((false, s), |rest| (true, rest));
    let micros = credits::ledger::Credits::parse_str(s).unwrap().micros();
    if negative { -micros } else { micros }
}

fn whole(credits: i64) -> i64 {
    credits * 1_000_000
}

async fn a_month_of_every_kind(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.clock.set(day(2, 20, 9));
    app.create_account("s").await;
    let before = grant(&app, "s", "40", "EVENT", "PAID", None, "g-feb").await;

    // March: a purchase, a coupon grant that expires mid-month, spends under two features, a
    // hold captured in part, the purchase refunded, the coupon's rest written off.
    app.clock.set(day(3, 2, 10));
    let purchase = buy(&app, "s", Some("100"), None, "pay-1").await;
    let coupon = grant(&app, "s", "20", "COUPON", "PROMOTIONAL", Some(day(3, 10, 0)), "g-coupon").await;
    app.clock.set(day(3, 3, 10));
    spend(&app, "s", "5", "chat", "s-1").await;
    spend(&app, "s", "3.5", "image", "s-2").await;
    let held =
        ok(app.gql(&app.service, RESERVE, json!({ "a": "s", "amt": "10", "k": "r-1" })).await)["data"]["reserveCredits"]["reservationId"]
            .clone();
    app.clock.set(day(3, 3, 10) + chrono::Duration::minutes(30));
    ok(app.gql(&app.service, CAPTURE, json!({ "r": held, "amt": "4", "k": "c-1" })).await);
    app.clock.set(day(3, 4, 10));
    assert_eq!(
        ok(app.gql(&app.service, REFUND, json!({ "id": purchase, "k": "refund-1" })).await)["data"]["refundPurchase"]["credits"],
        json!("100")
    );
    app.clock.set(day(3, 11, 0));
    let _ = app.ledger.expire_due(app.clock.now(), 100).await.unwrap().lots;
    // April: one spend, so that April has a month in progress to show.
    app.clock.set(day(4, 15, 12));
    spend(&app, "s", "1", "chat", "s-3").await;

    let march = statement(&app, &app.service, "s", "2026-03").await;
    assert_eq!(march["format"], json!("credits-statement-v1"));
    assert_eq!(
        (march["from"].as_str().unwrap(), march["to"].as_str().unwrap()),
        ("2026-03-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00")
    );
    assert_eq!(march["asOf"], march["to"]);
    assert_eq!(march["complete"], json!(true));
    // arkain: the Free plan's 50 for February (valid to March 1, 00:00) and the February grant.
    assert_eq!(amount(&march["opening"]), whole(90));
    let mut sources: Vec<(String, i64)> = march["grantsBySource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["source"].as_str().unwrap().to_string(), amount(&g["credits"])))
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        vec![("COUPON".to_string(), whole(20)), ("FIRST_PURCHASE_BONUS".to_string(), whole(30)), ("PURCHASE".to_string(), whole(100))]
    );
    let features: Vec<(Value, i64)> =
        march["spendsByFeature"].as_array().unwrap().iter().map(|s| (s["feature"].clone(), amount(&s["credits"]))).collect();
    assert_eq!(features, vec![(json!("chat"), whole(5)), (json!("image"), 3_500_000), (json!("video"), whole(4))]);
    // The plan's 50 at March 1, 00:00; the coupon's 20: 5 + 3.5 spent, 4 captured (the hold's
    // 10 came back first), 7.5 left at its expiry.
    assert_eq!(amount(&march["expired"]), 57_500_000);
    assert_eq!(amount(&march["refunded"]), whole(100));
    let movements: Vec<(String, i64)> =
        march["movements"].as_array().unwrap().iter().map(|m| (m["kind"].as_str().unwrap().to_string(), amount(&m["credits"]))).collect();
    assert_eq!(
        movements,
        vec![
            ("EXPIRE".to_string(), -57_500_000),
            ("GRANT".to_string(), whole(150)),
            ("HOLD".to_string(), whole(-10)),
            ("REFUND".to_string(), whole(-100)),
            ("RELEASE".to_string(), whole(10)),
            // The refunded purchase's first-purchase bonus, taken back whole.
            ("REVOKE".to_string(), whole(-30)),
            ("SPEND".to_string(), -12_500_000),
        ]
    );
    let closing = amount(&march["closing"]);
    assert_eq!(closing, whole(40));
    assert_eq!(amount(&march["opening"]) + movements.iter().map(|(_, m)| m).sum::<i64>(), closing);
    // Per lot: the February grant untouched, the purchase in and refunded, the coupon in, spent, expired.
    let lots = march["lots"].as_array().unwrap();
    let row = |id: &str| lots.iter().find(|l| l["id"] == json!(id)).unwrap_or_else(|| panic!("lot {id} in {march}"));
    let totals = |l: &Value| ["opening", "creditsIn", "creditsOut", "expired", "closing"].map(|k| amount(&l[k]));
    assert_eq!(totals(row(&before)), [whole(40), 0, 0, 0, whole(40)]);
    assert_eq!(row(&before)["source"], json!("EVENT"));
    assert_eq!(totals(row(&coupon)), [0, whole(30), 22_500_000, 7_500_000, 0], "granted 20, a hold's 10 back; 5 + 3.5 + 10 + 4 out");
    assert_eq!(row(&coupon)["expiresAt"], json!("2026-03-10T00:00:00+00:00"));
    assert_eq!(lots.len(), 5, "{march}");
    let by_source = |source: &str| lots.iter().find(|l| l["source"] == json!(source)).unwrap();
    assert_eq!(totals(by_source("MONTHLY_PLAN")), [whole(50), 0, 0, whole(50), 0]);
    assert_eq!(totals(by_source("PURCHASE")), [0, whole(100), whole(100), 0, 0]);
    assert_eq!(totals(by_source("FIRST_PURCHASE_BONUS")), [0, whole(30), whole(30), 0, 0]);
    for lot in lots {
        let [opening, credits_in, credits_out, expired, closing] = totals(lot);
        assert_eq!(opening + credits_in - credits_out - expired, closing, "{lot}");
    }
    assert_eq!(lots.iter().map(|l| amount(&l["closing"])).sum::<i64>(), closing);

    // The digest is the documented one, the same on every call, and it moves with an entry.
    let (digest, count) = documented_digest(&app, "s", day(3, 1, 0), day(4, 1, 0)).await;
    assert_eq!(march["digest"], json!(digest));
    assert_eq!(march["entryCount"], json!(count));
    assert_eq!(count, 12, "grant x3, spend x3, hold, release, refund, revoke, expire x2");
    let again = statement(&app, &app.service, "s", "2026-03").await;
    assert_eq!(again, march, "stable across calls");
    // The JSON document carries the same figures as the typed fields.
    let document: Value = serde_json::from_str(march["json"].as_str().unwrap()).unwrap();
    assert_eq!(document["digest"], march["digest"]);
    assert_eq!((document["opening"].as_str(), document["closing"].as_str()), (Some("90"), Some("40")));
    assert_eq!(document["asOf"], json!("2026-04-01T00:00:00.000000Z"));
    assert_eq!(document["account"], json!("s"));
    let db = &app.ledger.db;
    db.execute_unprepared("UPDATE journal_entries SET reason = 'changed' WHERE feature = 'image'").await.unwrap();
    let changed = statement(&app, &app.service, "s", "2026-03").await;
    assert_ne!(changed["digest"], march["digest"]);
    assert_eq!(changed["digest"], json!(documented_digest(&app, "s", day(3, 1, 0), day(4, 1, 0)).await.0));

    // April, in progress: as of now, not complete; its opening is March's closing.
    let april = statement(&app, &app.user("s"), "s", "2026-04").await;
    assert_eq!((april["complete"].clone(), april["asOf"].clone()), (json!(false), json!("2026-04-15T12:00:00+00:00")));
    assert_eq!((amount(&april["opening"]), amount(&april["closing"])), (whole(40), whole(39)));
    assert_eq!(april["entryCount"], json!(1));
    // Before the account: nothing at all (the digest of no lines).
    let january = statement(&app, &app.service, "s", "2026-01").await;
    assert_eq!((amount(&january["opening"]), amount(&january["closing"]), january["entryCount"].clone()), (0, 0, json!(0)));
    assert_eq!(january["lots"], json!([]));
    assert_eq!(january["digest"], json!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));

    // Bad months; a month not started; another user's statement.
    for bad in ["2026-4", "2026-13", "April", "", "2026-05"] {
        let r = app.gql(&app.service, STATEMENT, json!({ "a": "s", "m": bad })).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{bad}: {r}");
    }
    app.create_account("other").await;
    let refused = app.gql(&app.user("other"), STATEMENT, json!({ "a": "s", "m": "2026-03" })).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    let own = ok(app.gql(&app.user("s"), "query { me { statement(month: \"2026-03\") { digest } } }", json!({})).await);
    assert_eq!(own["data"]["me"]["statement"]["digest"], changed["digest"]);
    let by_admin = statement(&app, &app.admin, "s", "2026-03").await;
    assert_eq!(by_admin["digest"], changed["digest"]);
    app.assert_audit_clean().await;
}

fn run_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_credits"))
        .args(args)
        .env("DATABASE_URL", &app.db.url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(crate::support::SECRET).unwrap())
        .env_remove("CREDITS_CONFIG")
        .output()
        .expect("the binary runs")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn the_cli_shows_and_verifies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(day(5, 10, 9));
    app.create_account("c").await;
    grant(&app, "c", "10", "COUPON", "PROMOTIONAL", Some(day(5, 20, 0)), "g-1").await;
    grant(&app, "c", "5", "EVENT", "PAID", None, "g-2").await;
    spend(&app, "c", "1", "chat", "s-1").await;
    // June 2: May is over, but the coupon's write-off (dated May 20) has not run yet.
    app.clock.set(day(6, 2, 9));
    let dir = tempfile::tempdir().unwrap();
    let shown = run_cli(&app, &["statement", "show", "--account", "c", "--month", "2026-05"]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let text = stdout(&shown);
    let document: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!((document["complete"].clone(), document["closing"].clone()), (json!(false), json!("14")), "{document}");
    let via_api = statement(&app, &app.service, "c", "2026-05").await;
    assert_eq!(text.trim(), via_api["json"].as_str().unwrap(), "the CLI prints what the API's json holds");
    let file = dir.path().join("may.json");
    std::fs::write(&file, &text).unwrap();
    let file = file.to_str().unwrap();
    let verified = run_cli(&app, &["statement", "verify", file]);
    assert!(verified.status.success(), "{}{}", stdout(&verified), String::from_utf8_lossy(&verified.stderr));
    assert_eq!(stdout(&verified).trim(), "statement verified");

    // A tampered total is named.
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, text.replace("\"closing\":\"14\"", "\"closing\":\"140\"")).unwrap();
    let refused = run_cli(&app, &["statement", "verify", tampered.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stdout(&refused).contains("differs: closing: \"140\" in the file, \"14\" in the database"), "{}", stdout(&refused));
    assert!(!stdout(&refused).contains("digest"), "{}", stdout(&refused));
    // Not a statement at all: refused with a reason.
    std::fs::write(dir.path().join("junk.json"), "{\"format\":1}").unwrap();
    let junk = run_cli(&app, &["statement", "verify", dir.path().join("junk.json").to_str().unwrap()]);
    assert!(!junk.status.success());
    assert!(String::from_utf8_lossy(&junk.stderr).contains("not a statement document"), "{}", String::from_utf8_lossy(&junk.stderr));

    // The worker writes the coupon off, dated in May: the statement no longer matches.
    assert_eq!(app.ledger.expire_due(app.clock.now(), 100).await.unwrap().lots, 1);
    let changed = run_cli(&app, &["statement", "verify", file]);
    assert_eq!(changed.status.code(), Some(1));
    let report = stdout(&changed);
    for field in ["digest", "expired", "closing", "entryCount", "complete"] {
        assert!(report.contains(&format!("differs: {field}")), "{field}: {report}");
    }

    // The month in progress, as of now; another spend at that same instant is in its window.
    let june = statement(&app, &app.service, "c", "2026-06").await;
    let june_file = dir.path().join("june.json");
    std::fs::write(&june_file, june["json"].as_str().unwrap()).unwrap();
    let june_file = june_file.to_str().unwrap();
    assert!(run_cli(&app, &["statement", "verify", june_file]).status.success());
    spend(&app, "c", "1", "chat", "s-2").await;
    let moved = run_cli(&app, &["statement", "verify", june_file]);
    assert_eq!(moved.status.code(), Some(1));
    assert!(stdout(&moved).contains("differs: digest"), "{}", stdout(&moved));
    // Unknown account and malformed month from the CLI.
    let unknown = run_cli(&app, &["statement", "show", "--account", "nobody", "--month", "2026-05"]);
    assert!(!unknown.status.success());
    let malformed = run_cli(&app, &["statement", "show", "--account", "c", "--month", "May"]);
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("YYYY-MM"), "{}", String::from_utf8_lossy(&malformed.stderr));
}

on_both!(a_month_of_every_kind, the_cli_shows_and_verifies);
