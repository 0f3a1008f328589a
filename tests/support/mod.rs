//! The test app: a real server on a real database, one fresh database per test.
//!
//! SQLite tests get a file in a temporary directory; PostgreSQL tests get their own database
//! on the server at `CREDITS_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped when the test ends.

#![allow(dead_code)]

pub mod browser;
pub mod otlp;
pub mod pgbouncer;
pub mod private_pg;
pub mod proxy;
pub mod receiver;
pub mod serve;
pub mod wire;
pub mod ws;

use credits::auth::{AuthKeys, Role};
use credits::program::Program;
use credits::service::{Clock, Engine};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const LEDGER_PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ledger.toml");

pub const AD_SECRET: &[u8] = b"ad-network-test-secret";

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// The operator `TestApp::admin` names: what the journal and the operators' log record.
pub const ADMIN_SUBJECT: &str = "ops@test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn name(backend: Backend)` on both databases, as `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    )+};
}

pub fn pg_admin_url() -> String {
    std::env::var("CREDITS_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("credits.db").display());
                TestDb { url, pg_name: None, _dir: Some(dir) }
            }
            Backend::Postgres => {
                let name =
                    format!("credits_test_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), rand::random::<u32>());
                let admin = credits::db::connect(&pg_admin_url(), 1)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {} is needed for the postgres tests: {e}", pg_admin_url()));
                use sea_orm::ConnectionTrait;
                admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
                let _ = admin.close().await;
                let mut url = url::Url::parse(&pg_admin_url()).expect("CREDITS_TEST_PG_URL is a URL");
                url.set_path(&name);
                let url = url.to_string();
                TestDb { url, pg_name: Some(name), _dir: None }
            }
        }
    }
}

impl TestDb {
    /// The same database, for a second app on it (another process of a fleet): dropping it
    /// drops nothing, so the original must outlive it.
    pub fn shared(&self) -> TestDb {
        TestDb { url: self.url.clone(), pg_name: None, _dir: None }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs outside any runtime we may block: use a thread with its own.
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async {
                use sea_orm::ConnectionTrait;
                if let Ok(admin) = credits::db::connect(&pg_admin_url(), 1).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

pub struct TestApp {
    pub address: String,
    /// `http://...` of the metrics listener, when `Security::metrics_bind` asked for one.
    pub metrics_address: Option<String>,
    pub ledger: Engine,
    pub clock: Clock,
    pub client: reqwest::Client,
    pub keys: AuthKeys,
    pub service: String,
    pub admin: String,
    pub backend: Backend,
    /// The schema served: what it carries (`Schema::data`), such as the balance watchers.
    pub schema: credits::graphql::CreditsSchema,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// The test leaves a job run failed or an outbox event stuck on purpose
    /// (`expect_job_failures`): the end-of-test check lets it pass.
    job_failures_expected: bool,
    pub db: TestDb,
}

impl TestApp {
    /// On the ledger fixture: arkain's rules without free-credit features (see the file).
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, LEDGER_PROGRAM).await
    }

    pub async fn spawn_with(backend: Backend, program: &str) -> TestApp {
        let db = TestDb::new(backend).await;
        TestApp::spawn_on(db, backend, program).await
    }

    pub async fn spawn_on(db: TestDb, backend: Backend, program: &str) -> TestApp {
        // Tests claim a month of days within a second of real time: the per-minute claim limits
        // are tested on their own (tests/limits.rs) and out of the way elsewhere.
        let security =
            credits::app::Security { claims_per_minute_per_account: 100_000, claims_per_minute_per_ip: 100_000, ..Default::default() };
        TestApp::spawn_secured(db, backend, program, security).await
    }

    /// With other limits or switches than the defaults (production mode, a short timeout, ...).
    pub async fn spawn_secured(db: TestDb, backend: Backend, program: &str, security: credits::app::Security) -> TestApp {
        TestApp::spawn_clocked(db, backend, program, security, None, None).await
    }

    /// On a deployment's test clock starting at `start`, moved by `ledger.advance_clock` (not
    /// `clock.set`, which panics on it).
    pub async fn spawn_on_test_clock(backend: Backend, program: &str, start: chrono::DateTime<chrono::Utc>) -> TestApp {
        let db = TestDb::new(backend).await;
        let security =
            credits::app::Security { claims_per_minute_per_account: 100_000, claims_per_minute_per_ip: 100_000, ..Default::default() };
        TestApp::spawn_clocked(db, backend, program, security, Some(start), None).await
    }

    /// With the server's own webhook receiver configured, for what the API does with it
    /// (`redeliverEvent`); other tests set `ledger.webhooks` on their side only.
    pub async fn spawn_with_webhooks(
        backend: Backend,
        program: &str,
        webhooks: std::sync::Arc<credits::service::webhooks::WebhookSender>,
    ) -> TestApp {
        let db = TestDb::new(backend).await;
        let security =
            credits::app::Security { claims_per_minute_per_account: 100_000, claims_per_minute_per_ip: 100_000, ..Default::default() };
        TestApp::spawn_clocked(db, backend, program, security, None, Some(webhooks)).await
    }

    /// With another verifier of ad callbacks than the HMAC one every other test app has (AdMob's).
    pub async fn spawn_with_ad_verifier(
        backend: Backend,
        program: &str,
        ad_verifier: std::sync::Arc<dyn credits::ads::AdVerifier>,
    ) -> TestApp {
        let db = TestDb::new(backend).await;
        let security =
            credits::app::Security { claims_per_minute_per_account: 100_000, claims_per_minute_per_ip: 100_000, ..Default::default() };
        TestApp::spawn_verified(db, backend, program, security, None, None, ad_verifier, Default::default()).await
    }

    /// With Stripe configured: its webhook secrets, and an API client if the test gives one.
    pub async fn spawn_with_stripe(backend: Backend, program: &str, stripe: credits::stripe::StripeSettings) -> TestApp {
        let db = TestDb::new(backend).await;
        let security =
            credits::app::Security { claims_per_minute_per_account: 100_000, claims_per_minute_per_ip: 100_000, ..Default::default() };
        let hmac = std::sync::Arc::new(credits::ads::HmacSha256Verifier::new(AD_SECRET));
        TestApp::spawn_verified(db, backend, program, security, None, None, hmac, stripe).await
    }

    async fn spawn_clocked(
        db: TestDb,
        backend: Backend,
        program: &str,
        security: credits::app::Security,
        test_clock: Option<chrono::DateTime<chrono::Utc>>,
        webhooks: Option<std::sync::Arc<credits::service::webhooks::WebhookSender>>,
    ) -> TestApp {
        let hmac = std::sync::Arc::new(credits::ads::HmacSha256Verifier::new(AD_SECRET));
        TestApp::spawn_verified(db, backend, program, security, test_clock, webhooks, hmac, Default::default()).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn spawn_verified(
        db: TestDb,
        backend: Backend,
        program: &str,
        security: credits::app::Security,
        test_clock: Option<chrono::DateTime<chrono::Utc>>,
        webhooks: Option<std::sync::Arc<credits::service::webhooks::WebhookSender>>,
        ad_verifier: std::sync::Arc<dyn credits::ads::AdVerifier>,
        stripe: credits::stripe::StripeSettings,
    ) -> TestApp {
        let clock = Clock::manual(chrono::Utc::now());
        let settings = credits::app::Settings {
            database_url: db.url.clone(),
            program: Program::load(program).expect("a preset"),
            auth_secret: SECRET.to_vec(),
            bind: "127.0.0.1:0".to_string(),
            clock: clock.clone(),
            test_clock: test_clock.map(|start| credits::app::TestClockStart(Some(start))),
            idempotency_days: 30,
            ad_verifier: Some(ad_verifier),
            // Tests that deliver webhooks set `ledger.webhooks` to their own receiver, or give the
            // server one (`spawn_with_webhooks`).
            webhooks,
            security,
            spend_lanes: None,
            sweep_batch: None,
            retention: Default::default(),
            links: Default::default(),
            stripe,
        };
        let (app, ledger) = credits::app::build(settings).await.expect("the app starts");
        // On a test clock, the clock the app reads is the ledger's.
        let clock = if ledger.clock.is_test() { ledger.clock.clone() } else { clock };
        let address = format!("http://{}", app.address());
        let metrics_address = app.metrics_address().map(|a| format!("http://{a}"));
        let schema = app.schema().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.serve(async {
                let _ = rx.await;
            })
            .await
            .expect("the server runs");
        });
        let keys = AuthKeys::new(SECRET);
        let service = keys.issue(Role::Service, None, Duration::from_secs(3600)).unwrap();
        let admin = keys.issue(Role::Admin, Some(ADMIN_SUBJECT), Duration::from_secs(3600)).unwrap();
        TestApp {
            address,
            metrics_address,
            ledger,
            clock,
            client: reqwest::Client::new(),
            keys,
            service,
            admin,
            backend,
            schema,
            shutdown: Some(tx),
            server: Some(server),
            job_failures_expected: false,
            db,
        }
    }

    /// This test leaves a job run failed or an outbox event stuck on purpose: the check at its
    /// end (`Drop`) does not fail it for that.
    pub fn expect_job_failures(&mut self) {
        self.job_failures_expected = true;
    }

    /// The failed job runs and stuck outbox events in the database now, one line each: what
    /// fails a test that leaves them (`Drop`), unless it expects them.
    pub async fn job_leftovers(&self) -> Vec<String> {
        job_leftovers(&self.ledger.db).await
    }

    pub fn user(&self, account: &str) -> String {
        self.keys.issue(Role::User, Some(account), Duration::from_secs(3600)).unwrap()
    }

    /// Posts a GraphQL request and returns the whole JSON response.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        gql_at(&self.client, &self.address, token, query, variables).await
    }

    pub async fn create_account(&self, id: &str) {
        let r = self
            .gql(&self.service, "mutation($id: ID!) { createAccount(input: {externalId: $id}) { created } }", json!({ "id": id }))
            .await;
        assert_eq!(r["data"]["createAccount"]["created"], json!(true), "{r}");
    }

    pub async fn grant(
        &self,
        account: &str,
        amount: &str,
        class: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        key: &str,
    ) -> Value {
        self.gql(
            &self.admin,
            "mutation($a: ID!, $amt: CreditAmount!, $c: LotClass!, $e: DateTime, $k: String!) {
               grantCredits(input: {accountId: $a, amount: $amt, class: $c, expiresAt: $e, idempotencyKey: $k}) { lotId sequence } }",
            json!({ "a": account, "amt": amount, "c": class, "e": expires_at.map(|e| e.to_rfc3339()), "k": key }),
        )
        .await
    }

    pub async fn spend(&self, account: &str, amount: &str, key: &str) -> Value {
        self.gql(
            &self.service,
            "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
               spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"chat\"}) { sequence amount availableAfter takes { lotId amount } } }",
            json!({ "a": account, "amt": amount, "k": key }),
        )
        .await
    }

    pub async fn balance(&self, account: &str) -> String {
        let r = self.gql(&self.service, "query($a: ID!) { account(id: $a) { balance { total } } }", json!({ "a": account })).await;
        r["data"]["account"]["balance"]["total"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
    }

    pub async fn assert_audit_clean(&self) {
        let report =
            credits::audit::run_with_program(&self.ledger.db, &self.ledger.program, self.clock.now()).await.expect("the audit runs");
        assert!(report.is_clean(), "{report}");
    }
}

impl Drop for TestApp {
    /// Stops the server, then fails the test if it left a job run failed or an outbox event
    /// stuck (as crates.io's test app does), unless it said it expects that. A test that is
    /// already failing is not checked: a second panic would abort the whole binary and hide the
    /// first failure.
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if self.job_failures_expected || std::thread::panicking() {
            return;
        }
        let leftovers = leftovers_at(self.db.url.clone());
        assert!(leftovers.is_empty(), "the test left jobs failed (call `expect_job_failures` if it means to):\n{}", leftovers.join("\n"));
    }
}

/// An outbox event whose delivery failed this often is stuck: the backoff reached its hourly
/// cap at the 10th failure (`ledger::backoff`), so it is no longer waiting out a short retry.
pub const STUCK_AFTER_ATTEMPTS: i32 = 10;

/// The failed job runs and stuck outbox events in `db`, one line each.
pub async fn job_leftovers(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let backend = db.get_database_backend();
    let mut found = Vec::new();
    let failed_runs = "SELECT job, period, last_error FROM job_runs WHERE status = 'failed' ORDER BY id";
    let rows = db.query_all_raw(Statement::from_string(backend, failed_runs)).await.expect("job runs can be read");
    for row in rows {
        let (job, period, error): (String, String, Option<String>) = row.try_get_many_by_index().expect("a job run");
        found.push(format!("job run {job} {period} failed: {}", error.unwrap_or_default()));
    }
    let stuck = format!(
        "SELECT id, topic, attempts, last_error FROM outbox WHERE delivered_at IS NULL AND attempts >= {STUCK_AFTER_ATTEMPTS} ORDER BY id"
    );
    let rows = db.query_all_raw(Statement::from_string(backend, stuck)).await.expect("the outbox can be read");
    for row in rows {
        let (id, topic, attempts, error): (i64, String, i32, Option<String>) = row.try_get_many_by_index().expect("an event");
        found.push(format!("outbox event {id} ({topic}) undelivered after {attempts} attempts: {}", error.unwrap_or_default()));
    }
    found
}

/// `job_leftovers` from a `Drop`: on a thread with its own runtime and connection, since the
/// test's runtime may be single-threaded and cannot be blocked on. A database that cannot be
/// reached any more (a test that stopped its server) has nothing to check.
fn leftovers_at(url: String) -> Vec<String> {
    let check = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let Ok(db) = credits::db::connect(&url, 1).await else { return Vec::new() };
            let found = job_leftovers(&db).await;
            let _ = db.close().await;
            found
        })
    });
    check.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

pub async fn gql_at(client: &reqwest::Client, address: &str, token: &str, query: &str, variables: Value) -> Value {
    let response = client
        .post(format!("{address}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 200, "GraphQL answers 200");
    response.json().await.expect("a JSON body")
}

/// The code of the first error, or a panic showing the response.
pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("expected an error: {response}"))
}

/// A trigger that makes the journal refuse the entries matching `when` (SQL over `NEW`), so a
/// batch holding one fails in the database. `unpoison` drops it.
pub async fn poison(db: &sea_orm::DatabaseConnection, backend: Backend, when: &str) {
    use sea_orm::ConnectionTrait;
    let statements = match backend {
        Backend::Sqlite => {
            vec![format!("CREATE TRIGGER poison BEFORE INSERT ON journal_entries WHEN {when} BEGIN SELECT RAISE(ABORT, 'poisoned'); END")]
        }
        Backend::Postgres => vec![
            format!(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF {when} THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$"
            ),
            "CREATE TRIGGER poison BEFORE INSERT ON journal_entries FOR EACH ROW EXECUTE FUNCTION poison()".to_string(),
        ],
    };
    for statement in statements {
        db.execute_unprepared(&statement).await.unwrap();
    }
}

pub async fn unpoison(db: &sea_orm::DatabaseConnection, backend: Backend) {
    use sea_orm::ConnectionTrait;
    let drop = match backend {
        Backend::Sqlite => "DROP TRIGGER poison",
        Backend::Postgres => "DROP TRIGGER poison ON journal_entries",
    };
    db.execute_unprepared(drop).await.unwrap();
}

/// Buys `credits` (custom amount or package) and confirms the payment; returns the purchase id.
pub async fn buy(app: &TestApp, account: &str, credits: Option<&str>, package: Option<&str>, reference: &str) -> String {
    let r = app
        .gql(
            &app.service,
            "mutation($a: ID!, $c: CreditAmount, $p: String, $k: String!) { purchaseCredits(input: {accountId: $a, credits: $c, package: $p, idempotencyKey: $k}) { id } }",
            json!({ "a": account, "c": credits, "p": package, "k": reference }),
        )
        .await;
    let id = r["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    let paid = app
        .gql(
            &app.service,
            "mutation($id: ID!, $r: String!) { confirmPurchase(input: {purchaseId: $id, paymentReference: $r}) { status } }",
            json!({ "id": id, "r": reference }),
        )
        .await;
    assert_eq!(paid["data"]["confirmPurchase"]["status"], json!("PAID"), "{paid}");
    id
}

/// The mutation fields the schema serves, read by the GraphQL parser (not by lines: a field's
/// arguments may be printed on lines of their own), for the tests that must cover every one.
pub fn mutation_names() -> Vec<String> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let document = async_graphql::parser::parse_schema(credits::graphql::sdl()).expect("the SDL parses");
    let mut names = Vec::new();
    for definition in document.definitions {
        if let TypeSystemDefinition::Type(ty) = definition
            && ty.node.name.node == "MutationRoot"
            && let TypeKind::Object(object) = &ty.node.kind
        {
            names.extend(object.fields.iter().map(|field| field.node.name.node.to_string()));
        }
    }
    names
}
