//! Startup shared by `main` and the tests: connect, migrate, build the schema and the router.

use crate::ads::{AdVerifier, HmacSha256Verifier, UnsignedTestVerifier};
use crate::auth::AuthKeys;
use crate::config::Config;
use crate::graphql::{AppData, schema_builder};
use crate::http::{Application, HttpState};
use crate::program::Program;
use crate::service::webhooks::WebhookSender;
use crate::service::{Clock, Ledger};
use std::sync::Arc;

pub struct Settings {
    pub database_url: String,
    pub program: Program,
    pub auth_secret: Vec<u8>,
    pub bind: String,
    pub clock: Clock,
    pub idempotency_days: u32,
    /// Verifies ad networks' callbacks; none: the callback endpoint answers 503.
    pub ad_verifier: Option<Arc<dyn AdVerifier>>,
    /// Delivers the outbox as signed webhooks; none: events stay in the outbox.
    pub webhooks: Option<Arc<WebhookSender>>,
}

impl Settings {
    pub fn from_config(config: &Config) -> anyhow::Result<Settings> {
        Ok(Settings {
            database_url: config.database_url(),
            program: Program::load(&config.program)?,
            auth_secret: config.auth_secret()?,
            bind: config.bind.clone(),
            clock: Clock::System,
            idempotency_days: config.idempotency_days,
            ad_verifier: ad_verifier(config)?,
            webhooks: webhook_sender(config)?,
        })
    }
}

fn ad_verifier(config: &Config) -> anyhow::Result<Option<Arc<dyn AdVerifier>>> {
    let secret = config.ad_secret.as_deref().filter(|s| !s.is_empty());
    match (config.ad_verifier.as_str(), secret) {
        ("hmac", Some(secret)) => Ok(Some(Arc::new(HmacSha256Verifier::new(secret.as_bytes())))),
        ("hmac", None) => Ok(None),
        ("unsigned-test", _) => {
            tracing::warn!("ad callbacks are NOT verified (ad_verifier = \"unsigned-test\"): never use this in production");
            Ok(Some(Arc::new(UnsignedTestVerifier)))
        }
        (other, _) => anyhow::bail!("unknown ad_verifier {other:?}: \"hmac\" or \"unsigned-test\""),
    }
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

/// Connects, migrates and binds; the returned application is ready to serve.
pub async fn build(settings: Settings) -> anyhow::Result<(Application, Ledger)> {
    let db = crate::db::connect(&settings.database_url, pool_size(&settings.database_url)).await?;
    crate::db::migrate(&db).await?;
    let mut ledger = Ledger::new(db.clone(), Arc::new(settings.program));
    ledger.idempotency_ttl = chrono::Duration::days(i64::from(settings.idempotency_days));
    ledger.webhooks = settings.webhooks;
    let feed = crate::feed::BalanceFeed::start(&db);
    let schema = schema_builder().data(AppData { ledger: ledger.clone(), clock: settings.clock.clone() }).data(feed).finish();
    let ads = settings.ad_verifier;
    let state =
        HttpState { schema, auth: Arc::new(AuthKeys::new(&settings.auth_secret)), db, ledger: ledger.clone(), clock: settings.clock, ads };
    let app = Application::bind(&settings.bind, state).await?;
    tracing::info!(address = %app.address(), program = %ledger.program.name, "listening");
    Ok((app, ledger))
}
