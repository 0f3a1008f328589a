//! Startup shared by `main` and the tests: connect, migrate, build the schema and the router.

use crate::ads::admob::{AdMobVerifier, KeyCache, VerifierKeys};
use crate::ads::key_sources::{FileKeySource, UrlKeySource};
use crate::ads::{AdVerifier, HmacSha256Verifier, UnsignedTestVerifier};
use crate::auth::AuthKeys;
use crate::config::Config;
use crate::graphql::{AppData, schema_builder};
use crate::http::{Application, HttpState};
use crate::ledger::retention::Retention;
use crate::program::Program;
use crate::service::webhooks::WebhookSender;
use crate::service::{Clock, Engine};
use std::sync::Arc;

pub struct Settings {
    pub database_url: String,
    pub program: Program,
    pub auth_secret: Vec<u8>,
    pub bind: String,
    /// Where "now" comes from, unless `test_clock` is set.
    pub clock: Clock,
    /// Run on the database's test clock (`Clock::Test`), started where this says on a fresh one.
    pub test_clock: Option<TestClockStart>,
    pub idempotency_days: u32,
    /// Verifies ad networks' callbacks; none: the callback endpoint answers 503.
    pub ad_verifier: Option<Arc<dyn AdVerifier>>,
    /// Delivers the outbox as signed webhooks; none: events stay in the outbox.
    pub webhooks: Option<Arc<WebhookSender>>,
    pub security: Security,
    /// Batches of concurrent spends in flight at most (`service::batch`); none: the database's default.
    pub spend_lanes: Option<usize>,
    /// Accounts per step of a job's sweep; none: the default (`config::Config::sweep_batch`).
    pub sweep_batch: Option<u64>,
    /// How long operational rows are kept (`ledger::retention`).
    pub retention: Retention,
    /// The portal's and the checkout's links (`public_url`, `checkout_url`).
    pub links: crate::links::Links,
    /// Stripe's webhook secrets and API client (`crate::stripe`); the default: no Stripe.
    pub stripe: crate::stripe::StripeSettings,
}

/// A test clock's start on a database's first start; none: the wall time then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestClockStart(pub Option<chrono::DateTime<chrono::Utc>>);

/// The request limits and hardening switches, each with a safe default (docs/security.md).
#[derive(Debug, Clone)]
pub struct Security {
    /// No introspection and no GraphiQL.
    pub production: bool,
    /// Where `/metrics` is served on a listener of its own (loopback by default in the config);
    /// none: no such listener.
    pub metrics_bind: Option<String>,
    /// A static bearer token that also serves `/metrics` on the main listener; none: it is 404
    /// there.
    pub metrics_token: Option<String>,
    /// A token secret being rotated out: still accepted, never used to sign.
    pub previous_auth_secret: Option<Vec<u8>>,
    /// A GraphQL request that takes longer is answered `TIMEOUT`: its open transaction rolls back
    /// and a spend still queued for its batch is cancelled, but one in a committing batch completes.
    pub request_timeout: std::time::Duration,
    /// How long a shutdown (SIGTERM) waits for in-flight requests to finish and WebSockets to
    /// close before the process exits anyway (`crate::drain`).
    pub shutdown_timeout: std::time::Duration,
    pub max_body_bytes: usize,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Aliases per document: bounds how often one request repeats one mutation.
    pub max_aliases: usize,
    /// Requests per JSON array body; 1 refuses batches.
    pub max_batch_size: usize,
    /// Claims (check-in, coupons, ad rewards, lucky credits) per minute, per account and per
    /// client IP: counted in the database, so across every process on it, unless
    /// `claim_limits_in_memory`.
    pub claims_per_minute_per_account: u32,
    pub claims_per_minute_per_ip: u32,
    /// Count claims in each process's memory instead (`claim_limits = "memory"`): no write per
    /// claim, but each process of a fleet allows the limits on its own. Default off.
    pub claim_limits_in_memory: bool,
    /// How long a client has to send a request's headers, counted from the connection's start or
    /// from the end of the previous response (so also how long an idle keep-alive connection is
    /// kept); then the connection is closed. Default 10 s.
    pub header_timeout: std::time::Duration,
    /// How long a client has to send a whole request body, counted from the end of its headers;
    /// then it gets 408 `TIMEOUT` and the connection is closed. Default 30 s.
    pub body_timeout: std::time::Duration,
    /// Open connections per process, WebSockets included; past it a new connection gets 503
    /// `UNAVAILABLE` at once. Lowered at start to fit the descriptor limit
    /// (`connections::fit_to_descriptors`), with a warning. Default 2,048.
    pub max_connections: usize,
    /// Open connections per client address (the TCP peer's; trusted proxies are held to
    /// `max_connections` only); past it 429 `TOO_MANY_ATTEMPTS`. Default 256.
    pub max_connections_per_ip: usize,
    /// Proxies believed about the client's address (`client_address`); empty by default: the
    /// forwarding headers are ignored and the address is the TCP peer's.
    pub trusted_proxies: crate::client_address::TrustedProxies,
    /// Operations open at once on one WebSocket: subscriptions, and queries or mutations still
    /// running. The next is refused with `LIMIT_EXCEEDED` until one ends. Default 20.
    pub max_subscriptions_per_connection: usize,
    /// `balanceChanged` subscriptions open at once on one account, over all connections of this
    /// process; the next is refused with `LIMIT_EXCEEDED`. Default 100.
    pub max_subscriptions_per_account: usize,
    /// WebSocket connections open at once from one client address, in this process; the next
    /// upgrade is answered 429 with `LIMIT_EXCEEDED`. Default 50.
    pub max_websockets_per_address: usize,
    /// A WebSocket that has sent no `connection_init` within this is closed with 4408, as
    /// graphql-transport-ws specifies. Default 10 s.
    pub websocket_init_timeout: std::time::Duration,
    /// Browser origins allowed to call the API (`crate::cors`); none by default.
    pub cors: crate::cors::CorsOrigins,
    /// Directives on one field of a document; more is refused. Default 4.
    pub max_directives: usize,
    /// Run only the documents the operator (`credits persisted add`) or the server's own pages
    /// registered, and learn none through APQ (`graphql::persisted`). Default off.
    pub persisted_only: bool,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            production: false,
            metrics_bind: None,
            metrics_token: None,
            previous_auth_secret: None,
            request_timeout: std::time::Duration::from_secs(30),
            shutdown_timeout: std::time::Duration::from_secs(30),
            max_body_bytes: crate::http::MAX_BODY_BYTES,
            max_depth: crate::graphql::MAX_DEPTH,
            max_complexity: crate::graphql::MAX_COMPLEXITY,
            max_aliases: crate::graphql::limits::MAX_ALIASES,
            max_batch_size: 1,
            claims_per_minute_per_account: 20,
            claims_per_minute_per_ip: 120,
            claim_limits_in_memory: false,
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            max_connections: 2048,
            max_connections_per_ip: 256,
            trusted_proxies: crate::client_address::TrustedProxies::default(),
            max_subscriptions_per_connection: 20,
            max_subscriptions_per_account: 100,
            max_websockets_per_address: 50,
            websocket_init_timeout: std::time::Duration::from_secs(10),
            cors: crate::cors::CorsOrigins::None,
            max_directives: crate::graphql::MAX_DIRECTIVES,
            persisted_only: false,
        }
    }
}

impl Security {
    pub fn from_config(config: &Config) -> Result<Security, crate::config::ConfigError> {
        Ok(Security {
            production: config.mode == "production",
            metrics_bind: Some(config.metrics_bind.trim()).filter(|b| !b.is_empty() && *b != "off").map(str::to_string),
            metrics_token: config.metrics_token()?,
            previous_auth_secret: config.auth_secret_previous.as_ref().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
            request_timeout: std::time::Duration::from_secs(config.request_timeout_seconds),
            shutdown_timeout: std::time::Duration::from_secs(config.shutdown_timeout_seconds),
            max_body_bytes: config.max_body_bytes,
            max_depth: config.max_depth,
            max_complexity: config.max_complexity,
            max_aliases: config.max_aliases,
            max_batch_size: config.max_batch_size,
            claims_per_minute_per_account: config.claims_per_minute_per_account,
            claims_per_minute_per_ip: config.claims_per_minute_per_ip,
            claim_limits_in_memory: config.claim_limits == "memory",
            header_timeout: std::time::Duration::from_secs(config.header_timeout_seconds),
            body_timeout: std::time::Duration::from_secs(config.body_timeout_seconds),
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            trusted_proxies: config.trusted_proxies()?,
            max_subscriptions_per_connection: config.max_subscriptions_per_connection,
            max_subscriptions_per_account: config.max_subscriptions_per_account,
            max_websockets_per_address: config.max_websockets_per_address,
            websocket_init_timeout: std::time::Duration::from_secs(config.websocket_init_timeout_seconds),
            cors: config.cors_origins()?,
            max_directives: config.max_directives,
            persisted_only: config.persisted_only,
        })
    }

    pub fn auth_keys(&self, secret: &[u8]) -> AuthKeys {
        let keys = AuthKeys::new(secret);
        match &self.previous_auth_secret {
            Some(previous) => keys.with_previous(previous),
            None => keys,
        }
    }
}

impl Settings {
    pub fn from_config(config: &Config) -> anyhow::Result<Settings> {
        Ok(Settings {
            database_url: config.database_url(),
            program: Program::load(&config.program)?,
            auth_secret: config.auth_secret()?,
            bind: config.bind.clone(),
            clock: Clock::System,
            test_clock: config.test_clock()?,
            idempotency_days: config.idempotency_days,
            ad_verifier: ad_verifier(config)?,
            webhooks: webhook_sender(config)?,
            security: Security::from_config(config)?,
            spend_lanes: config.spend_lanes,
            sweep_batch: config.sweep_batch,
            retention: config.retention(),
            links: config.links()?,
            stripe: config.stripe()?,
        })
    }
}

fn ad_verifier(config: &Config) -> anyhow::Result<Option<Arc<dyn AdVerifier>>> {
    use crate::config::AdVerification;
    match config.ad_verification()? {
        AdVerification::Off => Ok(None),
        AdVerification::Hmac(secret) => Ok(Some(Arc::new(HmacSha256Verifier::new(&secret)))),
        AdVerification::UnsignedTest => {
            tracing::warn!("ad callbacks are NOT verified (ad_verifier = \"unsigned-test\"): never use this in production");
            Ok(Some(Arc::new(UnsignedTestVerifier)))
        }
        AdVerification::AdMob(keys) => Ok(Some(Arc::new(admob_verifier(&keys.from, keys.refresh_interval)?))),
    }
}

/// AdMob's verifier over its keys' source. A key file is read now, so a missing or broken one
/// stops the start; the URL is fetched on the first callback (the server starts without Google).
pub fn admob_verifier(from: &crate::config::AdMobKeysFrom, refresh_interval: std::time::Duration) -> anyhow::Result<AdMobVerifier> {
    use crate::config::AdMobKeysFrom;
    let cache = match from {
        AdMobKeysFrom::Url(url) => {
            tracing::info!(admob.source = %url, "ad callbacks are verified as AdMob's, with the keys published there");
            KeyCache::new(Box::new(UrlKeySource::new(url.clone()).map_err(anyhow::Error::msg)?), refresh_interval)
        }
        AdMobKeysFrom::File(path) => {
            let source = FileKeySource::new(path.clone());
            let keys =
                source.read_now().and_then(|json| VerifierKeys::parse(&json)).map_err(|e| anyhow::anyhow!("admob_keys_file: {e}"))?;
            tracing::info!(admob.source = %path.display(), admob.keys = keys.len(), "ad callbacks are verified as AdMob's, with the keys in this file");
            KeyCache::preloaded(Box::new(source), refresh_interval, keys, std::time::Instant::now())
        }
    };
    Ok(AdMobVerifier::new(cache))
}

/// The webhook sender for the configured receiver, if any; called once per process at start
/// (by `serve`, `worker` and `jobs`), which is where it says whether webhooks are on.
pub fn webhook_sender(config: &Config) -> anyhow::Result<Option<Arc<WebhookSender>>> {
    let Some(endpoint) = config.webhook()? else {
        tracing::info!("webhooks are off (no CREDITS_WEBHOOK_URL): events stay in the outbox until one is set");
        return Ok(None);
    };
    let sender = WebhookSender::new(&endpoint.url, &endpoint.secret).map_err(|e| anyhow::anyhow!("CREDITS_WEBHOOK_URL: {e}"))?;
    tracing::info!(webhook.endpoint = %sender.endpoint(), "webhooks are on");
    Ok(Some(Arc::new(sender)))
}

/// Pool sizes: SQLite has one writer anyway, PostgreSQL scales with processes.
fn pool_size(url: &str) -> u32 {
    if crate::db::is_sqlite(url) { 8 } else { 16 }
}

/// What opening the ledger takes from the configuration.
struct LedgerSettings<'a> {
    database_url: &'a str,
    pool: u32,
    program: Program,
    idempotency_days: u32,
    webhooks: Option<Arc<WebhookSender>>,
    spend_lanes: Option<usize>,
    sweep_batch: Option<u64>,
    retention: Retention,
    clock: Clock,
    test_clock: Option<TestClockStart>,
    stripe: crate::stripe::StripeSettings,
}

/// The one way a process opens the ledger: connect, migrate, then the program and every ledger
/// setting (idempotency retention, webhooks, spend lanes). `serve` opens it through `build`,
/// `worker` and `jobs` through `ledger_from_config`, so no subcommand skips a setting.
async fn open_ledger(settings: LedgerSettings<'_>) -> anyhow::Result<Engine> {
    let db = crate::db::connect(settings.database_url, settings.pool).await?;
    crate::db::migrate(&db).await?;
    let mut ledger = Engine::new(db, Arc::new(settings.program));
    ledger.idempotency_ttl = chrono::Duration::days(i64::from(settings.idempotency_days));
    ledger.webhooks = settings.webhooks;
    ledger.retention = settings.retention;
    ledger.stripe = settings.stripe;
    ledger.clock = match settings.test_clock {
        Some(TestClockStart(start)) => {
            let clock = Clock::start_test(&ledger.db, start).await?;
            tracing::warn!(now = %clock.now(), "this deployment runs on a TEST CLOCK: time stands still until an admin advances it");
            clock
        }
        None => settings.clock,
    };
    if let Some(batch) = settings.sweep_batch {
        ledger.sweep_batch = Some(batch);
    }
    if let Some(lanes) = settings.spend_lanes {
        ledger.spends = Arc::new(crate::service::batch::SpendQueue::new(lanes));
    }
    Ok(ledger)
}

/// The ledger of a process that serves no API (`worker`, `jobs`), with `pool` connections.
pub async fn ledger_from_config(config: &Config, pool: u32) -> anyhow::Result<Engine> {
    open_ledger(LedgerSettings {
        database_url: &config.database_url(),
        pool,
        program: Program::load(&config.program)?,
        idempotency_days: config.idempotency_days,
        webhooks: webhook_sender(config)?,
        spend_lanes: config.spend_lanes,
        sweep_batch: config.sweep_batch,
        retention: config.retention(),
        clock: Clock::System,
        test_clock: config.test_clock()?,
        stripe: config.stripe()?,
    })
    .await
}

/// The GraphQL documents of the server's own pages, registered at every start
/// (`service::persisted::register_server_documents`). GraphiQL sends what its user types, so it
/// has none (and is off in production, where `persisted_only` is meant for). The portal sends
/// every operation from one document (`web/portal/portal.graphql`), registered here; the console
/// its own (`web/console/console.graphql`) the same way.
pub const SERVER_DOCUMENTS: &[&str] = &[crate::portal::DOCUMENT, crate::console::DOCUMENT];

/// Connects, migrates and binds; the returned application is ready to serve.
pub async fn build(settings: Settings) -> anyhow::Result<(Application, Engine)> {
    // Before anything is counted: metrics recorded before the recorder exists are lost.
    crate::telemetry::handle();
    let ledger = open_ledger(LedgerSettings {
        database_url: &settings.database_url,
        pool: pool_size(&settings.database_url),
        program: settings.program,
        idempotency_days: settings.idempotency_days,
        webhooks: settings.webhooks,
        spend_lanes: settings.spend_lanes,
        sweep_batch: settings.sweep_batch,
        retention: settings.retention,
        clock: settings.clock,
        test_clock: settings.test_clock,
        stripe: settings.stripe,
    })
    .await?;
    let clock = ledger.clock.clone();
    if clock.is_test() {
        // Live balances read the clock without a request to refresh it: a second's lag at most
        // behind an advance made by another process.
        let (clock, db) = (clock.clone(), ledger.db.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                every.tick().await;
                if let Err(e) = clock.refresh(&db).await {
                    tracing::debug!(error = %e, "could not read the test clock");
                }
            }
        });
    }
    let db = ledger.db.clone();
    let feed = crate::feed::BalanceFeed::start(&db);
    let security = settings.security.clone();
    let production = security.production;
    let watches = crate::balance_watch::BalanceWatches::new(ledger.clone(), clock.clone(), feed, security.max_subscriptions_per_account);
    // The server's own pages register their documents before the first request, so
    // `persisted_only` never refuses them.
    crate::service::persisted::register_server_documents(&db, SERVER_DOCUMENTS).await?;
    let documents = crate::service::persisted::PersistedDocuments::new(db.clone(), security.persisted_only);
    if security.persisted_only {
        tracing::info!("persisted_only: only registered documents run (credits persisted add)");
    }
    // Extensions run in this order, each around the next: codes are stamped on what all the
    // others answer.
    let mut builder = schema_builder()
        .limit_depth(security.max_depth)
        .limit_complexity(security.max_complexity)
        .limit_directives(security.max_directives)
        .extension(crate::graphql::error::ErrorCodes)
        // Inside the codes, outside the rest: a request the limits refuse is counted.
        .extension(crate::graphql::telemetry::RequestMetrics)
        .extension(crate::graphql::transport::HttpRules)
        // Before the limits: a hash-only request becomes its stored text, which they then check.
        .extension(crate::graphql::persisted::PersistedQueries { documents: documents.clone() })
        .extension(crate::graphql::session::SessionLimits)
        .extension(crate::graphql::limits::DocumentLimits::new(security.max_aliases, security.max_complexity))
        .extension(crate::graphql::timeout::RequestTimeout { timeout: security.request_timeout })
        // Inside the timeout: a mutation cut short by it is not logged as done.
        .extension(crate::graphql::admin_log::AdminLog)
        .data(AppData { ledger: ledger.clone(), clock: clock.clone() })
        .data(crate::graphql::context::ClaimLimits {
            counter: Arc::new(if security.claim_limits_in_memory {
                crate::ratelimit::ClaimCounter::Memory(crate::ratelimit::RateLimiter::new(std::time::Duration::from_secs(60)))
            } else {
                crate::ratelimit::ClaimCounter::Database { db: db.clone(), window: std::time::Duration::from_secs(60) }
            }),
            per_account: security.claims_per_minute_per_account,
            per_ip: security.claims_per_minute_per_ip,
        })
        .data(watches);
    if security.production {
        // Suggestions ("Did you mean ...?") would give away the schema introspection hides.
        builder = builder.disable_introspection().disable_suggestions();
    }
    let auth = Arc::new(security.auth_keys(&settings.auth_secret));
    let mut links = settings.links.clone();
    if ledger.stripe.client.is_some() {
        links.checkout = crate::links::Checkout::Stripe;
    }
    let schema = builder.data(auth.clone()).data(links.clone()).finish();
    let ads = settings.ad_verifier;
    let state = HttpState {
        schema,
        auth,
        db,
        ledger: ledger.clone(),
        clock,
        ads,
        websockets: crate::ws::WebSocketCounts::new(security.max_websockets_per_address),
        security,
        jobs: workers::JobHealth::new(),
        persisted: documents,
        migrations_current: Arc::default(),
        drain: crate::drain::Drain::new(),
    };
    let app = Application::bind(&settings.bind, state).await?;
    if !production {
        links.default_to_bound_address(app.address());
    }
    tracing::info!(address = %app.address(), program = %ledger.program.name, "listening");
    Ok((app, ledger))
}
