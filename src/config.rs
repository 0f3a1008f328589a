//! Configuration: defaults, then a TOML file, then environment variables.
//!
//! | setting       | file key        | environment           | default                          |
//! |---------------|-----------------|-----------------------|----------------------------------|
//! | database      | `database_url`  | `DATABASE_URL`        | SQLite file `data/credits.db`     |
//! | listen addr   | `bind`          | `CREDITS_BIND`        | `127.0.0.1:8080`                 |
//! | program       | `program`       | `CREDITS_PROGRAM`     | `arkain` (a preset or a path)    |
//! | token secret  | `auth_secret`   | `CREDITS_AUTH_SECRET` | generated beside a SQLite file   |
//! | data dir      | `data_dir`      | `CREDITS_DATA_DIR`    | `data`                           |
//! | key retention | `idempotency_days` | `CREDITS_IDEMPOTENCY_DAYS` | 30                         |
//! | ad callbacks  | `ad_secret`     | `CREDITS_AD_SECRET`   | none: the callback answers 503   |
//! | ad verifier   | `ad_verifier`   | `CREDITS_AD_VERIFIER` | `hmac` (or `admob`, `unsigned-test`) |
//! | AdMob keys URL | `admob_keys_url` | `CREDITS_ADMOB_KEYS_URL` | Google's verifier keys (`ads::admob::DEFAULT_KEYS_URL`) |
//! | AdMob key file | `admob_keys_file` | `CREDITS_ADMOB_KEYS_FILE` | none; set: the keys are read from it instead of the URL |
//! | AdMob key refresh | `admob_keys_refresh_seconds` | `CREDITS_ADMOB_KEYS_REFRESH_SECONDS` | 300: the least time between two fetches of the keys |
//! | webhook URL   | `webhook_url`   | `CREDITS_WEBHOOK_URL` | none: events stay in the outbox  |
//! | webhook key   | `webhook_secret` | `CREDITS_WEBHOOK_SECRET` | none; 32+ bytes with a URL   |
//! | old token secret | `auth_secret_previous` | `CREDITS_AUTH_SECRET_PREVIOUS` | none; accepted during a rotation |
//! | mode          | `mode`          | `CREDITS_MODE`        | `development`; `production` turns off introspection and GraphiQL |
//! | request timeout | `request_timeout_seconds` | `CREDITS_REQUEST_TIMEOUT_SECONDS` | 30           |
//! | shutdown bound | `shutdown_timeout_seconds` | `CREDITS_SHUTDOWN_TIMEOUT_SECONDS` | 30 (SIGTERM: in-flight requests finish, WebSockets close with 1001, then exit) |
//! | body limit    | `max_body_bytes` | `CREDITS_MAX_BODY_BYTES` | 65536                        |
//! | query depth   | `max_depth`     | `CREDITS_MAX_DEPTH`   | 12                               |
//! | complexity    | `max_complexity` | `CREDITS_MAX_COMPLEXITY` | 1000                         |
//! | aliases       | `max_aliases`   | `CREDITS_MAX_ALIASES` | 30                               |
//! | batch size    | `max_batch_size` | `CREDITS_MAX_BATCH_SIZE` | 1 (no batches)               |
//! | claims/min/account | `claims_per_minute_per_account` | `CREDITS_CLAIMS_PER_MINUTE_PER_ACCOUNT` | 20 |
//! | claims/min/IP | `claims_per_minute_per_ip` | `CREDITS_CLAIMS_PER_MINUTE_PER_IP` | 120      |
//! | where claims are counted | `claim_limits` | `CREDITS_CLAIM_LIMITS` | `database` (shared by every process); `memory` (each process its own) |
//! | operations open per WebSocket | `max_subscriptions_per_connection` | `CREDITS_MAX_SUBSCRIPTIONS_PER_CONNECTION` | 20 |
//! | subscriptions per account | `max_subscriptions_per_account` | `CREDITS_MAX_SUBSCRIPTIONS_PER_ACCOUNT` | 100 |
//! | WebSockets per address | `max_websockets_per_address` | `CREDITS_MAX_WEBSOCKETS_PER_ADDRESS` | 50 |
//! | `connection_init` timeout | `websocket_init_timeout_seconds` | `CREDITS_WEBSOCKET_INIT_TIMEOUT_SECONDS` | 10 |
//! | spend lanes   | `spend_lanes`   | `CREDITS_SPEND_LANES` | 1 on SQLite, 2 on PostgreSQL (`service::batch`) |
//! | sweep batch   | `sweep_batch`   | `CREDITS_SWEEP_BATCH` | accounts per step of a job's sweep (`service::jobs`): 20000 for the plan grants, 4000 for the others |
//! | header timeout | `header_timeout_seconds` | `CREDITS_HEADER_TIMEOUT_SECONDS` | 10 (also the keep-alive idle time) |
//! | body timeout  | `body_timeout_seconds` | `CREDITS_BODY_TIMEOUT_SECONDS` | 30 (the whole body)     |
//! | connections   | `max_connections` | `CREDITS_MAX_CONNECTIONS` | 2048, lowered to fit `ulimit -n` |
//! | connections/IP | `max_connections_per_ip` | `CREDITS_MAX_CONNECTIONS_PER_IP` | 256             |
//! | trusted proxies | `trusted_proxies` | `CREDITS_TRUSTED_PROXIES` | none (a list, or commas: `10.0.0.0/8,::1`) |
//! | CORS origins  | `cors_origins`  | `CREDITS_CORS_ORIGINS` | none (a list, or commas: `https://app.example.com,http://localhost:5173`; `*` only in development) |
//! | directives per field | `max_directives` | `CREDITS_MAX_DIRECTIVES` | 4                   |
//! | proxy header  | `trusted_proxy_header` | `CREDITS_TRUSTED_PROXY_HEADER` | `x-forwarded-for` (or `forwarded`) |
//! | scheduler ticks kept | `retain_job_ticks_days` | `CREDITS_RETAIN_JOB_TICKS_DAYS` | 7 |
//! | delivered events kept | `retain_delivered_events_days` | `CREDITS_RETAIN_DELIVERED_EVENTS_DAYS` | 30 |
//! | rate snapshots kept | `retain_rate_snapshots_days` | `CREDITS_RETAIN_RATE_SNAPSHOTS_DAYS` | 90 |
//! | coupon guesses kept | `retain_coupon_failures_days` | `CREDITS_RETAIN_COUPON_FAILURES_DAYS` | 7 |
//! | job period markers kept | `retain_job_markers_days` | `CREDITS_RETAIN_JOB_MARKERS_DAYS` | 90 (at least 31) |
//! | clock         | `clock`         | `CREDITS_CLOCK`       | `system`; `test`: a clock admins move (`advanceClock`), refused in production |
//! | test clock start | `clock_start` | `CREDITS_CLOCK_START` | the wall time of the first start (RFC 3339) |
//! | public URL    | `public_url`    | `CREDITS_PUBLIC_URL`  | none: the bound address in development; required for portal links in production |
//! | checkout page | `checkout_url`  | `CREDITS_CHECKOUT_URL` | none: a simulated payment in development, the app's own in production (placeholders `{purchase_id}`, `{credits}`, `{amount_minor}`, `{currency}`) |
//! | Stripe webhook secret | `stripe_webhook_secret` | `CREDITS_STRIPE_WEBHOOK_SECRET` | none: `/webhooks/stripe` answers 503 (the endpoint's `whsec_...`) |
//! | Stripe secret being rotated out | `stripe_webhook_secret_previous` | `CREDITS_STRIPE_WEBHOOK_SECRET_PREVIOUS` | none |
//! | Stripe signature tolerance | `stripe_webhook_tolerance_seconds` | `CREDITS_STRIPE_WEBHOOK_TOLERANCE_SECONDS` | 300 |
//! | Stripe API key | `stripe_secret_key` | `CREDITS_STRIPE_SECRET_KEY` | none: no Checkout Sessions, refunds not sent to Stripe (`sk_...` or a restricted `rk_...`) |
//! | Stripe API base | `stripe_api_base` | `CREDITS_STRIPE_API_BASE` | `https://api.stripe.com` |
//! | after paying | `stripe_success_url` | `CREDITS_STRIPE_SUCCESS_URL` | required with the key (`{purchase_id}`, and Stripe's `{CHECKOUT_SESSION_ID}`) |
//! | after giving up | `stripe_cancel_url` | `CREDITS_STRIPE_CANCEL_URL` | required with the key |
//! | allow-list only | `persisted_only` | `CREDITS_PERSISTED_ONLY` | `false`; `true`: only documents registered with `credits persisted add` (or by the server's pages) run, and APQ learns none |
//! | metrics listener | `metrics_bind` | `CREDITS_METRICS_BIND` | `127.0.0.1:9464`; `off` (or empty): no metrics listener |
//! | metrics token | `metrics_token` | `CREDITS_METRICS_TOKEN` | none; 32+ characters: `/metrics` also on the main listener with this bearer token |
//! | log format    | `log_format`    | `CREDITS_LOG_FORMAT`  | `text`; `json`: one JSON object per line |
//! | traces        | `otlp_endpoint` | `CREDITS_OTLP_ENDPOINT` (else `OTEL_EXPORTER_OTLP_ENDPOINT`) | none: no traces; an OTLP/HTTP base URL such as `http://127.0.0.1:4318` (spans go to its `/v1/traces`) |
//!
//! The file is `--config PATH`, else `CREDITS_CONFIG`, else `credits.toml` if it exists.

use crate::ledger::retention::Retention;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub database_url: Option<String>,
    pub bind: String,
    pub metrics_bind: String,
    pub metrics_token: Option<String>,
    pub log_format: String,
    /// The OTLP/HTTP base URL traces are sent to (`crate::traces`); none: no traces.
    pub otlp_endpoint: Option<String>,
    pub program: String,
    pub auth_secret: Option<String>,
    pub data_dir: PathBuf,
    /// How long an idempotency key's outcome is kept; domain.md §2 asks for at least 30 days.
    pub idempotency_days: u32,
    /// The secret ad networks sign their server-side callbacks with (HMAC-SHA256).
    pub ad_secret: Option<String>,
    /// "hmac" (the default), "admob" (AdMob's ECDSA signatures, `ads::admob`) or
    /// "unsigned-test", which accepts unsigned callbacks: for local development only.
    pub ad_verifier: String,
    /// Where AdMob's verifier keys are fetched from (`ad_verifier = "admob"`).
    pub admob_keys_url: String,
    /// A file holding AdMob's verifier keys (the document the URL serves), used instead of the
    /// URL: for a deployment without access to Google, or to pin the keys.
    pub admob_keys_file: Option<String>,
    /// The least time between two fetches (or reads) of the AdMob keys, however many callbacks
    /// name a key id we do not hold.
    pub admob_keys_refresh_seconds: u64,
    /// Where outbox events are POSTed as signed webhooks; none: they wait in the outbox.
    pub webhook_url: Option<String>,
    /// The secret webhooks are signed with (HMAC-SHA256); required with a URL.
    pub webhook_secret: Option<String>,
    /// The token secret being rotated out: still accepted, never used to sign.
    pub auth_secret_previous: Option<String>,
    /// "development" or "production".
    pub mode: String,
    pub request_timeout_seconds: u64,
    /// How long `serve` drains on SIGTERM before it exits anyway (`crate::drain`); default 30.
    pub shutdown_timeout_seconds: u64,
    pub max_body_bytes: usize,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_batch_size: usize,
    pub claims_per_minute_per_account: u32,
    pub claims_per_minute_per_ip: u32,
    /// "database" (the default: one count for the whole fleet) or "memory" (per process).
    pub claim_limits: String,
    /// Operations open at once on one WebSocket (subscriptions, and queries or mutations still
    /// running); default 20.
    pub max_subscriptions_per_connection: usize,
    /// `balanceChanged` subscriptions open at once on one account, in each process; default 100.
    pub max_subscriptions_per_account: usize,
    /// WebSocket connections open at once from one client address, in each process; default 50.
    pub max_websockets_per_address: usize,
    /// A WebSocket that sends no `connection_init` within this many seconds is closed (4408);
    /// default 10.
    pub websocket_init_timeout_seconds: u64,
    /// Batches of concurrent spends in flight at most (`service::batch`); none: the database's default.
    pub spend_lanes: Option<usize>,
    /// Accounts per step of a scheduled job's sweep (the cursor in `job_runs` moves once per
    /// step); none: each sweep's own (`service::jobs::GRANT_BATCH` for the plan grants,
    /// `service::jobs::ACCOUNT_BATCH` for the others).
    pub sweep_batch: Option<u64>,
    pub header_timeout_seconds: u64,
    pub body_timeout_seconds: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Addresses and CIDR networks of the reverse proxies in front of the service; a TOML list,
    /// or one string with commas (as the environment variable gives it).
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies write: "x-forwarded-for" or "forwarded". Only that one is read.
    pub trusted_proxy_header: String,
    /// Origins of browser apps allowed to call the API (`crate::cors`); a TOML list, or one
    /// string with commas. Empty by default; `*` (any origin) only in development mode.
    #[serde(deserialize_with = "list_or_commas")]
    pub cors_origins: Vec<String>,
    /// Directives on one field of a document (`@skip`, `@include`, ...); more is refused.
    pub max_directives: usize,
    /// Days the scheduler's finished ticks are kept (`ledger::retention`).
    pub retain_job_ticks_days: u32,
    /// Days a delivered webhook event is kept, to be redelivered on request.
    pub retain_delivered_events_days: u32,
    /// Days market rate snapshots are kept.
    pub retain_rate_snapshots_days: u32,
    /// Days wrong coupon guesses are kept.
    pub retain_coupon_failures_days: u32,
    /// Days the scheduled jobs' period markers are kept; at least the catch-up horizon.
    pub retain_job_markers_days: u32,
    /// "system", or "test": a frozen clock stored in the database that admins move forward
    /// (`advanceClock`), for integrators to see month ends and expiries. Refused in production.
    pub clock: String,
    /// Where a test clock starts on a database's first start (RFC 3339); else the wall time.
    pub clock_start: Option<String>,
    /// Run only registered documents (`credits persisted add`, and the server's own pages'),
    /// by hash or as text; APQ learns nothing new (`graphql::persisted`).
    pub persisted_only: bool,
    /// Where users reach this server, for the links it hands out (the portal's).
    pub public_url: Option<String>,
    /// The program's checkout page for a purchase, a template (`crate::links::CheckoutTemplate`).
    pub checkout_url: Option<String>,
    /// The signing secret of the Stripe webhook endpoint (`crate::stripe::signature`).
    pub stripe_webhook_secret: Option<String>,
    /// The endpoint's previous signing secret, accepted during a rotation.
    pub stripe_webhook_secret_previous: Option<String>,
    pub stripe_webhook_tolerance_seconds: u64,
    /// Stripe's API key: with it, purchases get a Checkout Session and refunds go to Stripe.
    pub stripe_secret_key: Option<String>,
    pub stripe_api_base: String,
    pub stripe_success_url: Option<String>,
    pub stripe_cancel_url: Option<String>,
}

/// A list, or a string of comma-separated items (environment variables have no lists).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(deserializer)? {
        ListOrCommas::List(list) => list,
        ListOrCommas::Commas(items) => items.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
    })
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            bind: "127.0.0.1:8080".to_string(),
            metrics_bind: DEFAULT_METRICS_BIND.to_string(),
            metrics_token: None,
            log_format: "text".to_string(),
            otlp_endpoint: None,
            program: crate::program::DEFAULT_PRESET.to_string(),
            auth_secret: None,
            data_dir: PathBuf::from("data"),
            idempotency_days: crate::service::DEFAULT_IDEMPOTENCY_DAYS as u32,
            ad_secret: None,
            ad_verifier: "hmac".to_string(),
            admob_keys_url: crate::ads::admob::DEFAULT_KEYS_URL.to_string(),
            admob_keys_file: None,
            admob_keys_refresh_seconds: crate::ads::admob::DEFAULT_REFRESH_INTERVAL.as_secs(),
            webhook_url: None,
            webhook_secret: None,
            auth_secret_previous: None,
            mode: "development".to_string(),
            request_timeout_seconds: crate::app::Security::default().request_timeout.as_secs(),
            shutdown_timeout_seconds: crate::app::Security::default().shutdown_timeout.as_secs(),
            max_body_bytes: crate::app::Security::default().max_body_bytes,
            max_depth: crate::app::Security::default().max_depth,
            max_complexity: crate::app::Security::default().max_complexity,
            max_aliases: crate::app::Security::default().max_aliases,
            max_batch_size: crate::app::Security::default().max_batch_size,
            claims_per_minute_per_account: crate::app::Security::default().claims_per_minute_per_account,
            claims_per_minute_per_ip: crate::app::Security::default().claims_per_minute_per_ip,
            claim_limits: "database".to_string(),
            max_subscriptions_per_connection: crate::app::Security::default().max_subscriptions_per_connection,
            max_subscriptions_per_account: crate::app::Security::default().max_subscriptions_per_account,
            max_websockets_per_address: crate::app::Security::default().max_websockets_per_address,
            websocket_init_timeout_seconds: crate::app::Security::default().websocket_init_timeout.as_secs(),
            spend_lanes: None,
            sweep_batch: None,
            header_timeout_seconds: crate::app::Security::default().header_timeout.as_secs(),
            body_timeout_seconds: crate::app::Security::default().body_timeout.as_secs(),
            max_connections: crate::app::Security::default().max_connections,
            max_connections_per_ip: crate::app::Security::default().max_connections_per_ip,
            trusted_proxies: Vec::new(),
            trusted_proxy_header: "x-forwarded-for".to_string(),
            cors_origins: Vec::new(),
            max_directives: crate::graphql::MAX_DIRECTIVES,
            retain_job_ticks_days: Retention::default().job_ticks_days,
            retain_delivered_events_days: Retention::default().delivered_events_days,
            retain_rate_snapshots_days: Retention::default().rate_snapshots_days,
            retain_coupon_failures_days: Retention::default().coupon_failures_days,
            retain_job_markers_days: Retention::default().job_markers_days,
            clock: "system".to_string(),
            clock_start: None,
            persisted_only: crate::app::Security::default().persisted_only,
            public_url: None,
            checkout_url: None,
            stripe_webhook_secret: None,
            stripe_webhook_secret_previous: None,
            stripe_webhook_tolerance_seconds: crate::stripe::DEFAULT_TOLERANCE.as_secs(),
            stripe_secret_key: None,
            stripe_api_base: crate::stripe::client::DEFAULT_API_BASE.to_string(),
            stripe_success_url: None,
            stripe_cancel_url: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("no auth secret: set CREDITS_AUTH_SECRET (a generated one is kept only for a SQLite database file)")]
    NoSecret,
    #[error("cannot keep the generated auth secret at {path}: {source}")]
    SecretFile { path: String, source: std::io::Error },
}

/// Where `/metrics` listens by default: loopback, for a scraper on the same host (or a sidecar).
pub const DEFAULT_METRICS_BIND: &str = "127.0.0.1:9464";

/// How log lines are written: `text` for people, `json` (one object per line) for collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The shortest secret accepted: HS256 keys shorter than the hash are weak.
const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Defaults, then the file, then the environment, unchecked (`credits config check` lists
    /// every problem of it; everything else calls `load`).
    pub fn read(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file.map(Path::to_path_buf).or_else(|| std::env::var_os("CREDITS_CONFIG").map(PathBuf::from));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::Invalid(format!("config file {} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("credits.toml").exists() => figment = figment.merge(Toml::file("credits.toml")),
            None => {}
        }
        // The OpenTelemetry variable every collector's documentation names; like any variable it
        // overrides the file, and CREDITS_OTLP_ENDPOINT, merged after it, wins over it.
        figment = figment.merge(Env::raw().only(&["OTEL_EXPORTER_OTLP_ENDPOINT"]).map(|_| "otlp_endpoint".into()));
        figment =
            figment.merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database_url".into())).merge(Env::prefixed("CREDITS_").only(&[
                "BIND",
                "PROGRAM",
                "AUTH_SECRET",
                "DATA_DIR",
                "IDEMPOTENCY_DAYS",
                "AD_SECRET",
                "AD_VERIFIER",
                "ADMOB_KEYS_URL",
                "ADMOB_KEYS_FILE",
                "ADMOB_KEYS_REFRESH_SECONDS",
                "WEBHOOK_URL",
                "WEBHOOK_SECRET",
                "AUTH_SECRET_PREVIOUS",
                "MODE",
                "REQUEST_TIMEOUT_SECONDS",
                "SHUTDOWN_TIMEOUT_SECONDS",
                "MAX_BODY_BYTES",
                "MAX_DEPTH",
                "MAX_COMPLEXITY",
                "MAX_ALIASES",
                "MAX_BATCH_SIZE",
                "CLAIMS_PER_MINUTE_PER_ACCOUNT",
                "CLAIMS_PER_MINUTE_PER_IP",
                "CLAIM_LIMITS",
                "MAX_SUBSCRIPTIONS_PER_CONNECTION",
                "MAX_SUBSCRIPTIONS_PER_ACCOUNT",
                "MAX_WEBSOCKETS_PER_ADDRESS",
                "WEBSOCKET_INIT_TIMEOUT_SECONDS",
                "SPEND_LANES",
                "SWEEP_BATCH",
                "HEADER_TIMEOUT_SECONDS",
                "BODY_TIMEOUT_SECONDS",
                "MAX_CONNECTIONS",
                "MAX_CONNECTIONS_PER_IP",
                "TRUSTED_PROXIES",
                "TRUSTED_PROXY_HEADER",
                "CORS_ORIGINS",
                "MAX_DIRECTIVES",
                "RETAIN_JOB_TICKS_DAYS",
                "RETAIN_DELIVERED_EVENTS_DAYS",
                "RETAIN_RATE_SNAPSHOTS_DAYS",
                "RETAIN_COUPON_FAILURES_DAYS",
                "RETAIN_JOB_MARKERS_DAYS",
                "CLOCK",
                "CLOCK_START",
                "PERSISTED_ONLY",
                "PUBLIC_URL",
                "METRICS_BIND",
                "METRICS_TOKEN",
                "LOG_FORMAT",
                "OTLP_ENDPOINT",
                "CHECKOUT_URL",
                "STRIPE_WEBHOOK_SECRET",
                "STRIPE_WEBHOOK_SECRET_PREVIOUS",
                "STRIPE_WEBHOOK_TOLERANCE_SECONDS",
                "STRIPE_SECRET_KEY",
                "STRIPE_API_BASE",
                "STRIPE_SUCCESS_URL",
                "STRIPE_CANCEL_URL",
            ]));
        figment.extract().map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The configuration, checked: the first problem is the error.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let config = Config::read(file)?;
        if let Some(first) = config.problems().into_iter().next() {
            return Err(first);
        }
        Ok(config)
    }

    /// Every problem of the settings `load` checks, in the order it checks them.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.mode != "development" && self.mode != "production" {
            problems.push(ConfigError::Invalid(format!("mode {:?}: \"development\" or \"production\"", self.mode)));
        }
        if let Err(e) = self.test_clock() {
            problems.push(e);
        }
        if let Err(e) = self.log_format() {
            problems.push(e);
        }
        if let Err(e) = self.traces() {
            problems.push(e);
        }
        if let Err(e) = self.metrics_token() {
            problems.push(e);
        }
        if let Err(e) = self.links() {
            problems.push(e);
        }
        if let Err(e) = self.stripe() {
            problems.push(e);
        }
        if !(1..=300).contains(&self.request_timeout_seconds) {
            problems.push(ConfigError::Invalid("request_timeout_seconds must be 1 to 300".into()));
        }
        if !(1..=3600).contains(&self.shutdown_timeout_seconds) {
            problems.push(ConfigError::Invalid("shutdown_timeout_seconds must be 1 to 3600".into()));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            problems.push(ConfigError::Invalid("max_body_bytes must be 1 KiB to 16 MiB".into()));
        }
        if !(4..=64).contains(&self.max_depth) || !(50..=100_000).contains(&self.max_complexity) {
            problems.push(ConfigError::Invalid("max_depth must be 4 to 64 and max_complexity 50 to 100000".into()));
        }
        if !(1..=1000).contains(&self.max_aliases) || !(1..=100).contains(&self.max_batch_size) {
            problems.push(ConfigError::Invalid("max_aliases must be 1 to 1000 and max_batch_size 1 to 100".into()));
        }
        if self.claim_limits != "database" && self.claim_limits != "memory" {
            problems.push(ConfigError::Invalid(format!("claim_limits {:?}: \"database\" or \"memory\"", self.claim_limits)));
        }
        if self.claims_per_minute_per_account == 0 || self.claims_per_minute_per_ip == 0 {
            problems.push(ConfigError::Invalid("claims_per_minute_per_account and claims_per_minute_per_ip must be at least 1".into()));
        }
        if !(1..=1000).contains(&self.max_subscriptions_per_connection)
            || !(1..=100_000).contains(&self.max_subscriptions_per_account)
            || !(1..=100_000).contains(&self.max_websockets_per_address)
        {
            problems.push(ConfigError::Invalid(
                "max_subscriptions_per_connection must be 1 to 1000, max_subscriptions_per_account and max_websockets_per_address 1 to 100000"
                    .into(),
            ));
        }
        if !(1..=300).contains(&self.websocket_init_timeout_seconds) {
            problems.push(ConfigError::Invalid("websocket_init_timeout_seconds must be 1 to 300".into()));
        }
        if self.auth_secret_previous.as_ref().is_some_and(|s| !s.is_empty() && s.len() < MIN_SECRET_BYTES) {
            problems.push(ConfigError::Invalid(format!("CREDITS_AUTH_SECRET_PREVIOUS must be at least {MIN_SECRET_BYTES} bytes")));
        }
        if self.spend_lanes.is_some_and(|lanes| !(1..=64).contains(&lanes)) {
            problems.push(ConfigError::Invalid("spend_lanes must be 1 to 64".into()));
        }
        if self.sweep_batch.is_some_and(|batch| !(1..=100_000).contains(&batch)) {
            problems.push(ConfigError::Invalid("sweep_batch must be 1 to 100000".into()));
        }
        if !(1..=300).contains(&self.header_timeout_seconds) || !(1..=600).contains(&self.body_timeout_seconds) {
            problems.push(ConfigError::Invalid("header_timeout_seconds must be 1 to 300 and body_timeout_seconds 1 to 600".into()));
        }
        if !(16..=1_000_000).contains(&self.max_connections) || !(1..=1_000_000).contains(&self.max_connections_per_ip) {
            problems.push(ConfigError::Invalid("max_connections must be 16 to 1000000 and max_connections_per_ip at least 1".into()));
        }
        if let Err(e) = self.trusted_proxies() {
            problems.push(e);
        }
        if let Err(e) = self.cors_origins() {
            problems.push(e);
        }
        if !(1..=50).contains(&self.max_directives) {
            problems.push(ConfigError::Invalid("max_directives must be 1 to 50".into()));
        }
        if let Err(e) = self.retention().check() {
            problems.push(ConfigError::Invalid(e));
        }
        if !(1..=3650).contains(&self.idempotency_days) {
            problems.push(ConfigError::Invalid("idempotency_days must be between 1 and 3650".into()));
        }
        problems
    }

    /// Whether this deployment runs on a test clock, and where that clock starts on a fresh
    /// database (none: the wall time). A test clock lets an admin move time for every account,
    /// so production mode refuses it.
    pub fn test_clock(&self) -> Result<Option<crate::app::TestClockStart>, ConfigError> {
        match self.clock.as_str() {
            "system" if self.clock_start.is_some() => {
                Err(ConfigError::Invalid("clock_start (CREDITS_CLOCK_START) is for a test clock: set clock = \"test\" too".into()))
            }
            "system" => Ok(None),
            "test" if self.mode == "production" => Err(ConfigError::Invalid(
                "clock = \"test\" (CREDITS_CLOCK=test) is refused in production mode: a test clock lets an admin move time for every \
                 account. Use it on a development or staging deployment with its own database"
                    .into(),
            )),
            "test" => {
                let start = self
                    .clock_start
                    .as_deref()
                    .map(|s| {
                        chrono::DateTime::parse_from_rfc3339(s.trim()).map(|at| at.to_utc()).map_err(|e| {
                            ConfigError::Invalid(format!("clock_start {s:?}: an RFC 3339 instant such as 2026-01-31T12:00:00Z ({e})"))
                        })
                    })
                    .transpose()?;
                Ok(Some(crate::app::TestClockStart(start)))
            }
            other => Err(ConfigError::Invalid(format!("clock {other:?}: \"system\" or \"test\""))),
        }
    }

    /// The browser origins allowed to call the API (`crate::cors`).
    /// The portal's and the checkout's links (`crate::links`).
    pub fn links(&self) -> Result<crate::links::Links, ConfigError> {
        use crate::links::{Checkout, CheckoutTemplate, Links, parse_public_url};
        let public_url =
            self.public_url.as_deref().filter(|s| !s.is_empty()).map(parse_public_url).transpose().map_err(ConfigError::Invalid)?;
        let stripe = self.stripe_secret_key.as_deref().is_some_and(|k| !k.trim().is_empty());
        let checkout = match self.checkout_url.as_deref().filter(|s| !s.is_empty()) {
            Some(_) if stripe => {
                return Err(ConfigError::Invalid(
                    "checkout_url and stripe_secret_key are two ways to take payments: set one (with the key, purchases pay on Stripe Checkout)".into(),
                ));
            }
            None if stripe => Checkout::Stripe,
            Some(template) => Checkout::External(CheckoutTemplate::parse(template).map_err(ConfigError::Invalid)?),
            None if self.mode == "production" => Checkout::None,
            None => Checkout::Simulated,
        };
        Ok(Links::new(public_url, checkout))
    }

    /// The metrics token, if set: at least 32 characters, since it opens `/metrics` on the
    /// public listener.
    pub fn metrics_token(&self) -> Result<Option<String>, ConfigError> {
        match self.metrics_token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) if token.len() < MIN_SECRET_BYTES => {
                Err(ConfigError::Invalid(format!("metrics_token has fewer than {MIN_SECRET_BYTES} characters")))
            }
            token => Ok(token.map(str::to_string)),
        }
    }

    /// How log lines are written.
    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.log_format.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(ConfigError::Invalid(format!("log_format {other:?}: \"text\" or \"json\""))),
        }
    }

    /// Where traces are sent (`crate::traces`), if anywhere: an empty value is none.
    pub fn traces(&self) -> Result<Option<crate::traces::TracesEndpoint>, ConfigError> {
        match self.otlp_endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            None => Ok(None),
            Some(base) => crate::traces::TracesEndpoint::parse(base).map(Some).map_err(|e| ConfigError::Invalid(e.to_string())),
        }
    }

    pub fn cors_origins(&self) -> Result<crate::cors::CorsOrigins, ConfigError> {
        crate::cors::CorsOrigins::parse(&self.cors_origins, self.mode == "production").map_err(ConfigError::Invalid)
    }

    /// How long operational rows are kept (`ledger::retention`).
    pub fn retention(&self) -> Retention {
        Retention {
            job_ticks_days: self.retain_job_ticks_days,
            delivered_events_days: self.retain_delivered_events_days,
            rate_snapshots_days: self.retain_rate_snapshots_days,
            coupon_failures_days: self.retain_coupon_failures_days,
            job_markers_days: self.retain_job_markers_days,
        }
    }

    /// The proxies whose forwarding header is believed (`client_address`).
    pub fn trusted_proxies(&self) -> Result<crate::client_address::TrustedProxies, ConfigError> {
        let header = self.trusted_proxy_header.parse().map_err(ConfigError::Invalid)?;
        crate::client_address::TrustedProxies::parse(&self.trusted_proxies, header).map_err(ConfigError::Invalid)
    }

    /// The embedded default: a SQLite file (WAL) in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sqlite://{}?mode=rwc", self.data_dir.join("credits.db").display()),
        }
    }

    /// How ad callbacks are verified (`ad_verifier` and the settings it reads), as plain data the
    /// app builds its verifier from.
    pub fn ad_verification(&self) -> Result<AdVerification, ConfigError> {
        match self.ad_verifier.as_str() {
            "hmac" => Ok(match self.ad_secret.as_deref().filter(|s| !s.is_empty()) {
                Some(secret) => AdVerification::Hmac(secret.as_bytes().to_vec()),
                None => AdVerification::Off,
            }),
            "unsigned-test" => Ok(AdVerification::UnsignedTest),
            "admob" => {
                let refresh_seconds = self.admob_keys_refresh_seconds;
                if !(10..=86_400).contains(&refresh_seconds) {
                    return Err(ConfigError::Invalid("admob_keys_refresh_seconds must be 10 to 86400".into()));
                }
                let refresh_interval = std::time::Duration::from_secs(refresh_seconds);
                if let Some(path) = self.admob_keys_file.as_deref().filter(|p| !p.trim().is_empty()) {
                    return Ok(AdVerification::AdMob(AdMobKeys { from: AdMobKeysFrom::File(PathBuf::from(path)), refresh_interval }));
                }
                let url = url::Url::parse(self.admob_keys_url.trim())
                    .map_err(|e| ConfigError::Invalid(format!("admob_keys_url {:?}: {e}", self.admob_keys_url)))?;
                match url.scheme() {
                    "https" => {}
                    "http" if self.mode != "production" => {}
                    "http" => {
                        return Err(ConfigError::Invalid(
                            "admob_keys_url must be https in production mode: the keys decide which callbacks mint credits".into(),
                        ));
                    }
                    other => return Err(ConfigError::Invalid(format!("admob_keys_url: an https URL, not {other:?}"))),
                }
                Ok(AdVerification::AdMob(AdMobKeys { from: AdMobKeysFrom::Url(url), refresh_interval }))
            }
            other => Err(ConfigError::Invalid(format!("ad_verifier {other:?}: \"hmac\", \"admob\" or \"unsigned-test\""))),
        }
    }

    /// The webhook receiver, if one is configured. A URL without a strong secret is refused:
    /// the receiver could not tell our events from forged ones.
    pub fn webhook(&self) -> Result<Option<WebhookEndpoint>, ConfigError> {
        let Some(url) = self.webhook_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let min = crate::service::webhooks::MIN_SECRET_BYTES;
        match self.webhook_secret.as_deref().filter(|s| s.len() >= min) {
            Some(secret) => Ok(Some(WebhookEndpoint { url: url.to_string(), secret: secret.as_bytes().to_vec() })),
            None => Err(ConfigError::Invalid(format!(
                "CREDITS_WEBHOOK_URL is set, so CREDITS_WEBHOOK_SECRET (webhook_secret) must be set too, at least {min} bytes"
            ))),
        }
    }

    /// Stripe, as configured: webhook secrets (the current one first), the tolerance, and an API
    /// client when a key is set, which needs both return URLs.
    pub fn stripe(&self) -> Result<crate::stripe::StripeSettings, ConfigError> {
        let set = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let webhook_secrets: Vec<String> =
            [&self.stripe_webhook_secret, &self.stripe_webhook_secret_previous].into_iter().filter_map(set).collect();
        if set(&self.stripe_webhook_secret_previous).is_some() && set(&self.stripe_webhook_secret).is_none() {
            return Err(ConfigError::Invalid("stripe_webhook_secret_previous is for a rotation: set stripe_webhook_secret too".into()));
        }
        if !(1..=3600).contains(&self.stripe_webhook_tolerance_seconds) {
            return Err(ConfigError::Invalid("stripe_webhook_tolerance_seconds must be 1 to 3600".into()));
        }
        let client = match set(&self.stripe_secret_key) {
            None => None,
            Some(key) => {
                let (Some(success), Some(cancel)) = (set(&self.stripe_success_url), set(&self.stripe_cancel_url)) else {
                    return Err(ConfigError::Invalid(
                        "CREDITS_STRIPE_SECRET_KEY is set, so stripe_success_url and stripe_cancel_url must be set too (where Checkout sends the user back)".into(),
                    ));
                };
                let client = crate::stripe::client::StripeClient::new(&self.stripe_api_base, &key, &success, &cancel)
                    .map_err(ConfigError::Invalid)?;
                Some(std::sync::Arc::new(client))
            }
        };
        Ok(crate::stripe::StripeSettings {
            webhook_secrets,
            tolerance: std::time::Duration::from_secs(self.stripe_webhook_tolerance_seconds),
            client,
        })
    }

    /// The configured secret, or for a SQLite file the one kept beside it, generated on first use
    /// so that `serve` and `token` agree without any setup.
    pub fn auth_secret(&self) -> Result<Vec<u8>, ConfigError> {
        if let Some(secret) = self.auth_secret.as_ref().filter(|s| !s.is_empty()) {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::Invalid(format!("CREDITS_AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes")));
            }
            return Ok(secret.as_bytes().to_vec());
        }
        let path = sqlite_file(&self.database_url()).ok_or(ConfigError::NoSecret)?.with_extension("secret");
        let io_err = |source| ConfigError::SecretFile { path: path.display().to_string(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let generated = hex::encode(rand::random::<[u8; 32]>());
        if publish_private(&path, &generated).map_err(io_err)? {
            tracing::info!(path = %path.display(), "generated an auth secret for the embedded database");
        }
        // Whoever published first, the file's secret is the one every process signs with.
        let kept = std::fs::read_to_string(&path).map_err(io_err)?;
        let kept = kept.trim();
        if kept.len() < MIN_SECRET_BYTES {
            // An empty or short file would become the HS256 key: anyone could forge an admin.
            return Err(ConfigError::Invalid(format!(
                "the auth secret file {} holds {} bytes, fewer than {MIN_SECRET_BYTES}: delete it to have one generated, \
                 or write a longer secret into it",
                path.display(),
                kept.len()
            )));
        }
        Ok(kept.as_bytes().to_vec())
    }
}

/// How ad callbacks are verified (`Config::ad_verification`).
#[derive(Clone, PartialEq, Eq)]
pub enum AdVerification {
    /// No verifier: `/callbacks/ads` answers 503 (`ad_verifier = "hmac"` without a secret).
    Off,
    /// HMAC-SHA256 with this shared secret.
    Hmac(Vec<u8>),
    /// AdMob's ECDSA signatures, checked with its published keys.
    AdMob(AdMobKeys),
    /// Unsigned callbacks accepted: local development only.
    UnsignedTest,
}

/// Never prints the secret.
impl std::fmt::Debug for AdVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdVerification::Off => f.write_str("Off"),
            AdVerification::Hmac(_) => f.write_str("Hmac(<redacted>)"),
            AdVerification::AdMob(keys) => f.debug_tuple("AdMob").field(keys).finish(),
            AdVerification::UnsignedTest => f.write_str("UnsignedTest"),
        }
    }
}

/// Where AdMob's verifier keys come from, and the least time between two fetches of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdMobKeys {
    pub from: AdMobKeysFrom,
    pub refresh_interval: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdMobKeysFrom {
    Url(url::Url),
    File(PathBuf),
}

/// A webhook receiver and the secret its requests are signed with.
pub struct WebhookEndpoint {
    pub url: String,
    pub secret: Vec<u8>,
}

/// Never prints the secret.
impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint").field("url", &self.url).field("secret", &"<redacted>").finish()
    }
}

/// The file behind a `sqlite:` URL, if it is a file and not memory.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// Creates `path` holding `content`, readable by the owner only, unless it already exists;
/// true if this call created it. The content is written to a private temporary file first and
/// then hard-linked into place: a link never replaces an existing file and publishes a complete
/// one, so processes racing on a fresh directory all end up reading one whole secret (creating
/// the file and then writing it let a racer read it empty).
fn publish_private(path: &Path, content: &str) -> std::io::Result<bool> {
    use std::io::Write;
    if path.exists() {
        return Ok(false);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("secret");
    let temporary = path.with_file_name(format!(".{name}.{}.{:x}", std::process::id(), rand::random::<u64>()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(content.as_bytes())?;
        file.sync_all()
    });
    let published = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match published {
        Ok(()) => Ok(true),
        // Another process published first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_secret_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credits.secret");
        assert!(publish_private(&path, "first").unwrap());
        assert!(!publish_private(&path, "second").unwrap(), "the second writer loses");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn finds_the_sqlite_file() {
        assert_eq!(sqlite_file("sqlite://data/credits.db?mode=rwc"), Some(PathBuf::from("data/credits.db")));
        assert_eq!(sqlite_file("sqlite:/tmp/x.db"), Some(PathBuf::from("/tmp/x.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/credits"), None);
    }

    #[test]
    fn the_ad_verifier_is_chosen_by_name() {
        let mut config = Config::default();
        assert_eq!(config.ad_verification().unwrap(), AdVerification::Off, "hmac without a secret");
        config.ad_secret = Some("network-secret".into());
        assert_eq!(config.ad_verification().unwrap(), AdVerification::Hmac(b"network-secret".to_vec()));
        config.ad_verifier = "admob".into();
        let google = AdMobKeys {
            from: AdMobKeysFrom::Url(url::Url::parse(crate::ads::admob::DEFAULT_KEYS_URL).unwrap()),
            refresh_interval: std::time::Duration::from_secs(300),
        };
        assert_eq!(config.ad_verification().unwrap(), AdVerification::AdMob(google), "Google's keys by default; the secret is not used");
        config.admob_keys_url = "http://127.0.0.1:9/keys.json".into();
        assert!(config.ad_verification().is_ok(), "plain HTTP in development (a local test server)");
        config.mode = "production".into();
        assert!(config.ad_verification().unwrap_err().to_string().contains("https"));
        config.admob_keys_file = Some("/etc/credits/admob-keys.json".into());
        let AdVerification::AdMob(keys) = config.ad_verification().unwrap() else { panic!("admob") };
        assert_eq!(keys.from, AdMobKeysFrom::File(PathBuf::from("/etc/credits/admob-keys.json")), "the file wins over the URL");
        config.admob_keys_refresh_seconds = 1;
        assert!(config.ad_verification().unwrap_err().to_string().contains("admob_keys_refresh_seconds"));
        config.ad_verifier = "ecdsa".into();
        assert!(config.ad_verification().unwrap_err().to_string().contains("\"admob\""));
    }

    #[test]
    fn a_webhook_url_needs_a_strong_secret() {
        let mut config = Config::default();
        assert!(config.webhook().unwrap().is_none(), "off by default");
        config.webhook_url = Some("https://example.com/hooks".into());
        assert!(config.webhook().is_err(), "no secret");
        config.webhook_secret = Some("short".into());
        assert!(config.webhook().unwrap_err().to_string().contains("CREDITS_WEBHOOK_SECRET"));
        config.webhook_secret = Some("x".repeat(32));
        let endpoint = config.webhook().unwrap().unwrap();
        assert_eq!((endpoint.url.as_str(), endpoint.secret.len()), ("https://example.com/hooks", 32));
    }
}
