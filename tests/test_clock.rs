//! Test clocks, through the real binary: `credits serve` started with `CREDITS_CLOCK=test` on
//! each database, moved with `advanceClock` as an integrator would.

use crate::on_both;
use crate::support::serve::{ServeProcess, credits_command};
use crate::support::{Backend, SECRET, TestApp, TestDb, error_code, gql_at};
use credits::auth::{AuthKeys, Role};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

/// A `credits serve` process on a test clock, with its scheduled jobs (`support::serve`).
struct ClockServer {
    serve: ServeProcess,
    _dir: tempfile::TempDir,
}

impl ClockServer {
    async fn start(database_url: &str, program: &str, clock_start: &str) -> ClockServer {
        let dir = tempfile::tempdir().unwrap();
        let serve = ServeProcess::start(clock_command(database_url, program, clock_start), &[], dir.path(), "serve").await;
        ClockServer { serve, _dir: dir }
    }

    fn log(&self) -> String {
        self.serve.log()
    }

    async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        gql_at(&reqwest::Client::new(), &self.serve.address, token, query, variables).await
    }

    async fn now(&self) -> String {
        let r = self.gql(&token(Role::Service, None), "{ program { now testClock } }", json!({})).await;
        assert_eq!(r["data"]["program"]["testClock"], json!(true), "{r}");
        r["data"]["program"]["now"].as_str().unwrap().to_string()
    }

    async fn advance(&self, to: Option<&str>, by: Option<&str>) -> Value {
        self.gql(
            &token(Role::Admin, Some("ops")),
            "mutation($to: DateTime, $by: String) { advanceClock(to: $to, by: $by) { from now stops ran { job periods items } } }",
            json!({ "to": to, "by": by }),
        )
        .await
    }

    /// Advances and returns the payload, failing the test on an error.
    async fn advance_ok(&self, to: Option<&str>, by: Option<&str>) -> Value {
        let r = self.advance(to, by).await;
        assert!(r["errors"].is_null(), "advance to {to:?} by {by:?}: {r}\n{}", self.log());
        r["data"]["advanceClock"].clone()
    }

    async fn balance(&self, account: &str) -> String {
        let r = self
            .gql(&token(Role::Service, None), "query($a: ID!) { account(id: $a) { balance { total } } }", json!({ "a": account }))
            .await;
        r["data"]["account"]["balance"]["total"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
    }

    /// The account's journal, oldest first: (operation, amount, effectiveAt).
    async fn history(&self, account: &str) -> Vec<(String, String, String)> {
        let r = self
            .gql(
                &token(Role::Service, None),
                "query($a: ID!) { account(id: $a) { history(first: 100) { nodes { operation amount effectiveAt } } } }",
                json!({ "a": account }),
            )
            .await;
        let nodes = r["data"]["account"]["history"]["nodes"].as_array().unwrap_or_else(|| panic!("{r}"));
        let mut entries: Vec<_> = nodes
            .iter()
            .map(|n| {
                (
                    n["operation"].as_str().unwrap().to_string(),
                    n["amount"].as_str().unwrap().to_string(),
                    n["effectiveAt"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        entries.reverse();
        entries
    }

    async fn create_account(&self, id: &str, plan: Option<&str>) {
        let r = self
            .gql(
                &token(Role::Service, None),
                "mutation($id: ID!, $plan: String) { createAccount(input: {externalId: $id, plan: $plan}) { created } }",
                json!({ "id": id, "plan": plan }),
            )
            .await;
        assert_eq!(r["data"]["createAccount"]["created"], json!(true), "{r}");
    }
}

fn clock_command(database_url: &str, program: &str, clock_start: &str) -> Command {
    let mut command = credits_command();
    command
        .env("DATABASE_URL", database_url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("CREDITS_PROGRAM", program)
        .env("CREDITS_CLOCK", "test")
        .env("CREDITS_CLOCK_START", clock_start)
        .env("RUST_LOG", "warn");
    command
}

/// Tokens stay on wall time: an advance of months does not expire them.
fn token(role: Role, account: Option<&str>) -> String {
    AuthKeys::new(SECRET).issue(role, account, Duration::from_secs(3600)).unwrap()
}

fn ran<'a>(payload: &'a Value, job: &str) -> Option<&'a Value> {
    payload["ran"].as_array().unwrap().iter().find(|r| r["job"] == job)
}

/// A lot that ends with the month counts until the month's last microsecond and not at its
/// first instant after; the write-off is dated at that instant.
async fn a_lot_ending_at_the_month_end_counts_until_its_last_microsecond(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = ClockServer::start(&db.url, "archipelag", "2026-01-31T12:00:00Z").await;
    assert_eq!(server.now().await, "2026-01-31T12:00:00+00:00");
    server.create_account("ends", None).await;
    let before = server.balance("ends").await;
    let granted = server
        .gql(
            &token(Role::Admin, Some("ops")),
            "mutation { grantCredits(input: {accountId: \"ends\", amount: \"100\", class: PROMOTIONAL, validFor: \"end of month\", idempotencyKey: \"g-1\"}) { lotId } }",
            json!({}),
        )
        .await;
    assert!(granted["errors"].is_null(), "{granted}");
    let with_lot = server.balance("ends").await;
    assert_eq!(dec(&with_lot) - dec(&before), dec("100"), "{before} -> {with_lot}");

    let last = server.advance_ok(Some("2026-01-31T23:59:59.999999Z"), None).await;
    assert_eq!(last["now"], json!("2026-01-31T23:59:59.999999+00:00"));
    assert_eq!(last["stops"], json!(1));
    assert_eq!(server.balance("ends").await, with_lot, "the lot still counts at 23:59:59.999999");

    let next = server.advance_ok(Some("2026-02-01T00:00:00Z"), None).await;
    assert_eq!(server.balance("ends").await, before, "and not at 00:00:00");
    assert_eq!(ran(&next, "ExpireLots").map(|r| r["items"].clone()), Some(json!(1)), "{next}");
    let expiry: Vec<_> = server.history("ends").await.into_iter().filter(|(op, _, _)| op == "expire").collect();
    assert_eq!(expiry, vec![("expire".to_string(), "-100".to_string(), "2026-02-01T00:00:00+00:00".to_string())]);
}

on_both!(a_lot_ending_at_the_month_end_counts_until_its_last_microsecond);

/// A jump of three months grants each month's plan credits once, in order, and writes off each
/// month's credits at its end; a further advance grants nothing twice.
async fn a_jump_of_three_months_grants_each_months_plan_credits_once_in_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = ClockServer::start(&db.url, "arkain", "2026-01-15T12:00:00Z").await;
    server.create_account("member", Some("membership")).await;
    let jump = server.advance_ok(None, Some("3 months")).await;
    assert_eq!(jump["now"], json!("2026-04-15T12:00:00+00:00"));
    assert_eq!(jump["stops"], json!(91), "each midnight from Jan 16 to Apr 15, then the target");
    let grants = ran(&jump, "GrantMonthlyPlanCredits").unwrap_or_else(|| panic!("{jump}"));
    // January too, unless the workers' own tick did it before the advance: the clock started in it.
    let months: Vec<_> = grants["periods"].as_array().unwrap().iter().filter(|p| *p != "2026-01").cloned().collect();
    assert_eq!(months, vec![json!("2026-02"), json!("2026-03"), json!("2026-04")], "{jump}");
    let daily = ran(&jump, "ResetDailyCredits").unwrap();
    assert_eq!(daily["periods"].as_array().unwrap().len(), 90, "each day's reset once: {daily}");

    let history = server.history("member").await;
    let plan: Vec<_> =
        history.iter().filter(|(op, _, _)| op == "plan_credits").map(|(_, amount, at)| (amount.as_str(), at.as_str())).collect();
    assert_eq!(
        plan,
        vec![
            ("1000", "2026-01-15T12:00:00+00:00"),
            ("1000", "2026-02-01T00:00:00+00:00"),
            ("1000", "2026-03-01T00:00:00+00:00"),
            ("1000", "2026-04-01T00:00:00+00:00"),
        ],
        "{history:?}"
    );
    let expired: Vec<_> =
        history.iter().filter(|(op, _, _)| op == "expire").map(|(_, amount, at)| (amount.as_str(), at.as_str())).collect();
    assert_eq!(
        expired,
        vec![("-1000", "2026-02-01T00:00:00+00:00"), ("-1000", "2026-03-01T00:00:00+00:00"), ("-1000", "2026-04-01T00:00:00+00:00")],
        "each month's credits end with it: {history:?}"
    );
    assert_eq!(dec(&server.balance("member").await), dec("1000"), "April's credits only");

    let again = server.advance_ok(None, Some("1 day")).await;
    assert!(ran(&again, "GrantMonthlyPlanCredits").is_none(), "April is granted already: {again}");
    let plan_entries = server.history("member").await.iter().filter(|(op, _, _)| op == "plan_credits").count();
    assert_eq!(plan_entries, 4);
}

on_both!(a_jump_of_three_months_grants_each_months_plan_credits_once_in_order);

/// arkain refunds purchased credits within 7 days: a refund on day 7 passes, one on day 8 is
/// refused, judged by the test clock.
async fn a_refund_on_day_7_passes_and_on_day_8_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = ClockServer::start(&db.url, "arkain", "2026-03-01T10:00:00Z").await;
    let service = token(Role::Service, None);
    let mut purchases = Vec::new();
    for account in ["early", "late"] {
        server.create_account(account, None).await;
        let bought = server
            .gql(
                &service,
                "mutation($a: ID!) { purchaseCredits(input: {accountId: $a, credits: \"100\", idempotencyKey: $a}) { id } }",
                json!({ "a": account }),
            )
            .await;
        let id = bought["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{bought}")).to_string();
        let paid = server
            .gql(
                &service,
                "mutation($id: ID!, $r: String!) { confirmPurchase(input: {purchaseId: $id, paymentReference: $r}) { status } }",
                json!({ "id": id, "r": format!("pay-{account}") }),
            )
            .await;
        assert_eq!(paid["data"]["confirmPurchase"]["status"], json!("PAID"), "{paid}");
        purchases.push(id);
    }
    let refund = |account: &'static str, id: String| {
        let server = &server;
        async move {
            server
                .gql(
                    &token(Role::User, Some(account)),
                    "mutation($id: ID!) { refundPurchase(input: {purchaseId: $id, idempotencyKey: \"r\"}) { credits } }",
                    json!({ "id": id }),
                )
                .await
        }
    };
    // Claims are judged by the clock too: one check-in a day.
    let check_in = |key: &'static str| {
        let server = &server;
        async move {
            let r = server
                .gql(
                    &token(Role::User, Some("early")),
                    "mutation($k: String!) { checkIn(input: {accountId: \"early\", idempotencyKey: $k}) { day } }",
                    json!({ "k": key }),
                )
                .await;
            if r["errors"].is_null() { "ok".to_string() } else { error_code(&r).to_string() }
        }
    };
    assert_eq!(check_in("c-1").await, "ok");
    assert_eq!(check_in("c-2").await, "ALREADY_CLAIMED");
    server.advance_ok(None, Some("1 day")).await;
    assert_eq!(check_in("c-3").await, "ok", "the next day by the clock");

    // Day 7: the last microsecond of the seventh 24 hours.
    server.advance_ok(Some("2026-03-08T09:59:59.999999Z"), None).await;
    let on_day_7 = refund("early", purchases[0].clone()).await;
    assert!(on_day_7["errors"].is_null(), "{on_day_7}");
    // Day 8.
    server.advance_ok(Some("2026-03-08T10:00:00Z"), None).await;
    let on_day_8 = refund("late", purchases[1].clone()).await;
    assert_eq!(error_code(&on_day_8), "REFUND_NOT_ALLOWED", "{on_day_8}");
}

on_both!(a_refund_on_day_7_passes_and_on_day_8_is_refused);

/// Every process on the database reads the one stored clock, a restart resumes it, and it moves
/// forward only, by an admin only.
async fn processes_share_the_clock_which_moves_forward_only(backend: Backend) {
    let db = TestDb::new(backend).await;
    let first = ClockServer::start(&db.url, "carat", "2026-05-10T08:00:00Z").await;
    let second = ClockServer::start(&db.url, "carat", "2030-01-01T00:00:00Z").await;
    assert_eq!(second.now().await, "2026-05-10T08:00:00+00:00", "the first start set the clock; later starts take it up");
    first.advance_ok(None, Some("36 hours")).await;
    assert_eq!(second.now().await, "2026-05-11T20:00:00+00:00", "the other process sees the advance at once");

    let back = second.advance(Some("2026-05-11T19:59:59Z"), None).await;
    assert_eq!(error_code(&back), "BAD_USER_INPUT", "{back}");
    assert!(back["errors"][0]["message"].as_str().unwrap().contains("forward only"), "{back}");
    for (to, by) in [(None, None), (Some("2026-06-01T00:00:00Z"), Some("1 day")), (None, Some("never")), (None, Some("2 fortnights"))] {
        assert_eq!(error_code(&second.advance(to, by).await), "BAD_USER_INPUT", "to {to:?} by {by:?}");
    }
    assert_eq!(error_code(&second.advance(None, Some("401 days")).await), "BAD_USER_INPUT");
    let as_service = second.gql(&token(Role::Service, None), "mutation { advanceClock(by: \"1 day\") { now } }", json!({})).await;
    assert_eq!(error_code(&as_service), "FORBIDDEN");
    assert_eq!(first.now().await, "2026-05-11T20:00:00+00:00", "refusals moved nothing");

    drop(first);
    let restarted = ClockServer::start(&db.url, "carat", "2020-01-01T00:00:00Z").await;
    assert_eq!(restarted.now().await, "2026-05-11T20:00:00+00:00", "a restart resumes the stored clock");
}

on_both!(processes_share_the_clock_which_moves_forward_only);

/// Production mode refuses a test clock at start and says why; a deployment on the system
/// clock refuses to move it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_clock_is_refused_in_production_and_absent_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("credits.db").display());
    let out = clock_command(&url, "arkain", "2026-01-01T00:00:00Z")
        .current_dir(dir.path())
        .env("CREDITS_MODE", "production")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "production started on a test clock");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused in production mode"), "{stderr}");
    let bad_start =
        clock_command(&url, "arkain", "yesterday").current_dir(dir.path()).args(["serve", "--bind", "127.0.0.1:0"]).output().unwrap();
    assert!(!bad_start.status.success());
    assert!(String::from_utf8_lossy(&bad_start.stderr).contains("clock_start"), "{}", String::from_utf8_lossy(&bad_start.stderr));

    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app.gql(&app.admin, "mutation { advanceClock(by: \"1 day\") { now } }", json!({})).await;
    assert_eq!(error_code(&r), "FEATURE_DISABLED", "{r}");
    let program = app.gql(&app.service, "{ program { testClock } }", json!({})).await;
    assert_eq!(program["data"]["program"]["testClock"], json!(false));
}

fn dec(s: &str) -> rust_decimal::Decimal {
    s.parse().unwrap_or_else(|_| panic!("a decimal: {s}"))
}

/// Two processes advance the same clock at once while spends arrive: each month's plan credits
/// are granted once, the clock ends at the target, and the audit is clean at its instant.
async fn concurrent_advances_in_two_processes_do_each_period_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let first = ClockServer::start(&db.url, "arkain", "2026-01-15T12:00:00Z").await;
    let second = ClockServer::start(&db.url, "arkain", "2026-01-15T12:00:00Z").await;
    first.create_account("raced", Some("membership")).await;
    let target = "2026-03-15T12:00:00Z";
    let spends = (0..20).map(|n| {
        let server = if n % 2 == 0 { &first } else { &second };
        async move {
            server
                .gql(
                    &token(Role::Service, None),
                    "mutation($k: String!) { spendCredits(input: {accountId: \"raced\", amount: \"1\", idempotencyKey: $k, feature: \"chat\"}) { sequence } }",
                    json!({ "k": format!("spend-{n}") }),
                )
                .await
        }
    });
    let (a, b, spent) =
        tokio::join!(first.advance(Some(target), None), second.advance(Some(target), None), futures_util::future::join_all(spends));
    let outcomes: Vec<_> = [&a, &b].iter().map(|r| if r["errors"].is_null() { "ok" } else { error_code(r) }).collect();
    assert!(outcomes.contains(&"ok"), "one advance at least completes: {a} {b}\n{}\n{}", first.log(), second.log());
    assert!(
        outcomes.iter().all(|o| *o == "ok" || *o == "BAD_USER_INPUT"),
        "the other completes too or finds the clock there: {a} {b}\n{}\n{}",
        first.log(),
        second.log()
    );
    for r in &spent {
        assert!(r["errors"].is_null() || error_code(r) == "INSUFFICIENT_CREDITS", "{r}");
    }
    assert_eq!(first.now().await, "2026-03-15T12:00:00+00:00");
    assert_eq!(second.now().await, "2026-03-15T12:00:00+00:00");
    let history = first.history("raced").await;
    let plan: Vec<_> = history.iter().filter(|(op, _, _)| op == "plan_credits").map(|(_, _, at)| at.as_str()).collect();
    assert_eq!(plan, vec!["2026-01-15T12:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"], "{history:?}");
    let expired = history.iter().filter(|(op, _, _)| op == "expire").count();
    assert_eq!(expired, 2, "January's and February's credits ended once each: {history:?}");

    let dir = tempfile::tempdir().unwrap();
    let audit = clock_command(&db.url, "arkain", "2026-01-15T12:00:00Z").current_dir(dir.path()).arg("audit").output().unwrap();
    assert!(audit.status.success(), "{}{}", String::from_utf8_lossy(&audit.stdout), String::from_utf8_lossy(&audit.stderr));
}

on_both!(concurrent_advances_in_two_processes_do_each_period_once);

/// A carat subscription renews at the instant its month ends, not at the next daily run; a jump
/// past a renewal dates it at that instant.
async fn a_subscription_renews_at_its_own_instant(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = ClockServer::start(&db.url, "carat", "2026-01-30T09:00:00Z").await;
    server.create_account("cam", Some("plus")).await;
    server.advance_ok(Some("2026-02-28T08:59:59.999999Z"), None).await;
    assert_eq!(dec(&server.balance("cam").await), dec("10000"), "the first month still runs");
    let renewal = server.advance_ok(Some("2026-02-28T09:00:00Z"), None).await;
    // The advance renews it, unless the process's own scheduled renewal (every 10 s, at the test
    // clock's instant) came between the clock's move and the advance's turn for that job: either
    // way at 09:00, once.
    let by_advance = ran(&renewal, "RenewDueSubscriptions").map(|r| r["items"].clone());
    assert!(by_advance.is_none() || by_advance == Some(json!(1)), "{renewal}");
    let renewed: Vec<String> = server
        .history("cam")
        .await
        .into_iter()
        .filter(|(op, _, at)| op == "plan_credits" && at == "2026-02-28T09:00:00+00:00")
        .map(|(_, _, at)| at)
        .collect();
    assert_eq!(renewed.len(), 1, "renewed once, at its own instant: {renewal}");
    assert_eq!(dec(&server.balance("cam").await), dec("10000"), "the next month's credits at the same instant");

    // Past the next renewal (Jan 30 + 2 months = Mar 30, 09:00) in one jump.
    server.advance_ok(Some("2026-04-05T00:00:00Z"), None).await;
    let history = server.history("cam").await;
    let dated = |op: &str| -> Vec<String> { history.iter().filter(|(o, _, _)| o == op).map(|(_, _, at)| at.clone()).collect() };
    assert_eq!(
        dated("plan_credits"),
        vec!["2026-01-30T09:00:00+00:00", "2026-02-28T09:00:00+00:00", "2026-03-30T09:00:00+00:00"],
        "{history:?}"
    );
    assert_eq!(dated("expire"), vec!["2026-02-28T09:00:00+00:00", "2026-03-30T09:00:00+00:00"], "{history:?}");
    assert_eq!(dec(&server.balance("cam").await), dec("10000"));
}

on_both!(a_subscription_renews_at_its_own_instant);
