//! Delivering the outbox as signed webhooks (domain.md §6: "signed webhooks from an outbox,
//! retried, never lost").
//!
//! Events are written in the transaction of the change they announce (`store::outbox::publish`),
//! so an event exists exactly when its change committed. This module sends them, at least once:
//! each attempt first takes a short lease on the event (a compare-and-set, so two workers never
//! send it at the same moment), then POSTs it; a 2xx marks it delivered for good, anything else
//! schedules a retry with backoff (`ledger::backoff`), for ever. A worker that dies between the
//! POST and the record leaves the lease to run out, and the event is sent again: receivers
//! de-duplicate on `Credits-Event-Id`, which is the same on every attempt.
//!
//! Each request carries `Credits-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`, as Stripe signs its webhooks; `verify_signature` is the receiver's side.
//! It also carries the Standard Webhooks headers (standardwebhooks.com): `webhook-id` (the event
//! id), `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(key,
//! "<id>.<timestamp>.<body>")>`, so a receiver can verify with that spec's libraries. The spec's
//! key is the bytes behind a `whsec_<base64>` secret; ours are the configured secret's bytes, so
//! the receiver's secret is `whsec_` + base64 of `webhook_secret` (`standard_secret`).

use crate::entity::outbox;
use crate::ledger::backoff::retry_delay;
use crate::ledger::time::truncate;
use crate::service::{Engine, ServiceError};
use crate::store;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most events one call looks at; the job calls again until a batch comes back short.
pub const MAX_WEBHOOK_BATCH: u64 = 100;
/// The whole request, connection to last byte: a slow receiver must not hold the worker.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an attempt owns its event. Well above `REQUEST_TIMEOUT`, so the lease outlives the
/// request it covers; short enough that a crashed worker delays its event by a minute only.
pub const DELIVERY_LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// After this much wall time a call takes no new event, so a tick (and a graceful shutdown)
/// waits at most this plus one request, not a batch of timeouts.
const RUN_BUDGET: Duration = Duration::from_secs(20);
/// The shortest signing secret accepted, as for the token secret.
pub const MIN_SECRET_BYTES: usize = 32;

pub const EVENT_ID_HEADER: &str = "Credits-Event-Id";
pub const SIGNATURE_HEADER: &str = "Credits-Signature";
/// The Standard Webhooks headers.
pub const STANDARD_ID_HEADER: &str = "webhook-id";
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";

/// The public id of an outbox event: stable across retries, so receivers de-duplicate on it.
pub fn event_id(outbox_id: i64) -> String {
    format!("evt_{outbox_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    #[error("the webhook URL {0:?} is not an http(s) URL")]
    InvalidUrl(String),
    #[error("the webhook secret must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("cannot build the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver answered, but not with a 2xx (a redirect is not followed: it counts here).
    #[error("the receiver answered HTTP {0}")]
    Rejected(u16),
    /// No answer: refused, timed out, reset. The URL is left out of the message (it may hold a
    /// token).
    #[error("the receiver could not be reached")]
    Unreachable(#[source] reqwest::Error),
    /// The stored payload is not JSON: a bug where the event was published. It is kept and
    /// retried like any failure, so that a fix delivers it.
    #[error("the event's payload is not JSON")]
    Payload(#[source] serde_json::Error),
}

/// Signs and POSTs events to one endpoint. Holding one means the URL and secret were checked.
pub struct WebhookSender {
    url: reqwest::Url,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new(url: &str, secret: &[u8]) -> Result<WebhookSender, WebhookSetupError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| WebhookSetupError::InvalidUrl(url.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(WebhookSetupError::InvalidUrl(url.to_string()));
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WebhookSetupError::ShortSecret);
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("credits-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(WebhookSetupError::Client)?;
        Ok(WebhookSender { url: parsed, secret: secret.to_vec(), client })
    }

    /// Where events go, without any credentials or query: for logs.
    pub fn endpoint(&self) -> String {
        format!("{}://{}{}", self.url.scheme(), self.url.host_str().unwrap_or_default(), self.url.path())
    }

    /// One attempt: POSTs `body`, signed at `at`. Ok only for a 2xx.
    pub async fn send(&self, event_id: &str, body: Vec<u8>, at: DateTime<Utc>) -> Result<(), SendError> {
        let signature = sign(&self.secret, at.timestamp(), &body);
        let standard = sign_standard(&self.secret, event_id, at.timestamp(), &body);
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, event_id)
            .header(SIGNATURE_HEADER, signature)
            .header(STANDARD_ID_HEADER, event_id)
            .header(STANDARD_TIMESTAMP_HEADER, at.timestamp().to_string())
            .header(STANDARD_SIGNATURE_HEADER, standard)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Unreachable(e.without_url()))?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(SendError::Rejected(status.as_u16())) }
    }
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Credits-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

/// The `webhook-signature` value (Standard Webhooks) for event `id`'s `body` sent at `timestamp`.
pub fn sign_standard(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// The secret a Standard Webhooks library is given to verify our requests: `whsec_` and the
/// base64 of the configured secret's bytes.
pub fn standard_secret(secret: &[u8]) -> String {
    use base64::Engine as _;
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(secret))
}

/// The most comma-separated parts of a signature header looked at.
const MAX_SIGNATURE_PARTS: usize = 8;

/// What a receiver checks: `header` (a `Credits-Signature` value) signs exactly `body` (the raw
/// bytes received, before any JSON parsing) with `secret`, and its timestamp is within
/// `tolerance` of `now`, which bounds replays of a captured request. Several `v1=` values are
/// accepted (any one may match), so a sender can sign with an old and a new secret during a
/// rotation. The comparison is constant-time.
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8], now: DateTime<Utc>, tolerance: chrono::Duration) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',').take(MAX_SIGNATURE_PARTS) {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                if timestamp.is_some() {
                    return false; // Two timestamps: which one was signed is ambiguous.
                }
                match value.parse::<i64>() {
                    Ok(t) => timestamp = Some(t),
                    Err(_) => return false,
                }
            }
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {} // Other schemes, for forward compatibility.
        }
    }
    let Some(timestamp) = timestamp else { return false };
    if now.timestamp().abs_diff(timestamp) > tolerance.num_seconds().max(0).unsigned_abs() {
        return false;
    }
    signatures.iter().any(|signature| mac(secret, timestamp, body).verify_slice(signature).is_ok())
}

/// The JSON body of an event, the same on every attempt.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    id: String,
    topic: &'a str,
    /// The product's own id of the account, if the event is about one.
    account: Option<&'a str>,
    created_at: String,
    data: serde_json::Value,
}

fn envelope(event: &outbox::Model, account: Option<&str>) -> Result<Vec<u8>, serde_json::Error> {
    let data = serde_json::from_str(&event.payload)?;
    let envelope = Envelope { id: event_id(event.id), topic: &event.topic, account, created_at: event.created_at.to_rfc3339(), data };
    serde_json::to_vec(&envelope)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Acknowledged with a 2xx.
    pub delivered: u64,
    /// Attempted and failed; each is due again after its backoff.
    pub failed: u64,
    /// Due, but another worker took it first.
    pub skipped: u64,
    /// The call stopped before the end of its batch: the receiver was unreachable, or the run's
    /// time budget was spent. The rest wait for the next call.
    pub stopped: bool,
}

impl DeliveryReport {
    /// Events this call looked at.
    pub fn examined(&self) -> u64 {
        self.delivered + self.failed + self.skipped
    }
}

/// The instant a run has reached: the instant it was given, advanced by the real time it has
/// spent in whole seconds. Leases must be measured against the clocks of the other workers, and
/// an HTTP round trip takes real time; whole seconds keep a run that takes under a second (as in
/// tests) exactly at the instant it was given.
pub(crate) fn run_instant(start: DateTime<Utc>, started: Instant) -> DateTime<Utc> {
    let elapsed = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
    let elapsed = chrono::Duration::try_seconds(elapsed).unwrap_or(chrono::Duration::MAX);
    truncate(start).checked_add_signed(elapsed).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What one attempt at one event came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Acknowledged with a 2xx.
    Delivered,
    /// Sent and failed; due again after its backoff. `unreachable`: no answer at all.
    Failed { unreachable: bool },
    /// Another worker holds (or took) the event: this call left it alone. `unreachable`: this
    /// call did send it, got no answer, and lost its lease before recording that.
    Skipped { unreachable: bool },
}

impl Engine {
    /// Sends at most `batch` due events, oldest first, each under its own lease; see the module
    /// documentation. Errors only for the database: a failed delivery is recorded, not returned.
    pub async fn deliver_webhooks(&self, sender: &WebhookSender, now: DateTime<Utc>, batch: u64) -> Result<DeliveryReport, ServiceError> {
        let started = Instant::now();
        let due = store::outbox::due(&self.db, truncate(now), Utc::now(), batch.clamp(1, MAX_WEBHOOK_BATCH)).await?;
        let mut report = DeliveryReport::default();
        // Accounts' external ids within this batch; events of one account come in runs.
        let mut accounts: HashMap<i64, Option<String>> = HashMap::new();
        for event in due {
            if report.stopped || started.elapsed() >= RUN_BUDGET {
                report.stopped = true;
                break;
            }
            match self.attempt_delivery(sender, event, now, started, &mut accounts).await? {
                Attempt::Delivered => report.delivered += 1,
                Attempt::Failed { unreachable } => {
                    report.failed += 1;
                    // An unreachable receiver is likely down for every event: stop here rather
                    // than spend a timeout on each; the others stay due for the next call.
                    report.stopped = unreachable;
                }
                Attempt::Skipped { unreachable } => {
                    report.skipped += 1;
                    report.stopped = unreachable;
                }
            }
        }
        Ok(report)
    }

    /// One attempt at `event` (as read while due), under its own lease: takes the lease, POSTs,
    /// records the outcome. `accounts` caches external ids across a batch.
    pub(crate) async fn attempt_delivery(
        &self,
        sender: &WebhookSender,
        event: outbox::Model,
        now: DateTime<Utc>,
        started: Instant,
        accounts: &mut HashMap<i64, Option<String>>,
    ) -> Result<Attempt, ServiceError> {
        // Wall time: a lease is about this process, and a test clock may jump past any instant.
        let lease_until = truncate(Utc::now()) + DELIVERY_LEASE;
        if !store::outbox::claim(&self.db, &event, lease_until).await? {
            return Ok(Attempt::Skipped { unreachable: false });
        }
        let account = match event.account_id {
            Some(id) => match accounts.get(&id) {
                Some(known) => known.clone(),
                None => {
                    let external = store::accounts::by_id(&self.db, id).await?.map(|a| a.external_id);
                    accounts.insert(id, external.clone());
                    external
                }
            },
            None => None,
        };
        let sent = match envelope(&event, account.as_deref()) {
            // Receivers compare the signature's timestamp with their own clocks: on a test
            // clock it stays the wall time.
            Ok(body) => {
                let signed_at = if self.clock.is_test() { Utc::now() } else { run_instant(now, started) };
                sender.send(&event_id(event.id), body, signed_at).await
            }
            Err(e) => Err(SendError::Payload(e)),
        };
        let done_at = run_instant(now, started);
        // This attempt's number; if it fails, also the failure count the backoff follows.
        let attempt = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
        match sent {
            Ok(()) => {
                metrics::counter!(crate::telemetry::WEBHOOK_ATTEMPTS, "outcome" => "delivered").increment(1);
                store::outbox::mark_delivered(&self.db, event.id, done_at).await?;
                tracing::debug!(event.id = event.id, event.topic = %event.topic, attempts = attempt, "webhook delivered");
                Ok(Attempt::Delivered)
            }
            Err(e) => {
                metrics::counter!(crate::telemetry::WEBHOOK_ATTEMPTS, "outcome" => "failed").increment(1);
                let unreachable = matches!(e, SendError::Unreachable(_));
                let error = format!("{:#}", anyhow::Error::new(e));
                let retry_at = done_at + retry_delay(attempt);
                if store::outbox::record_failure(&self.db, event.id, lease_until, retry_at, &error).await? {
                    tracing::warn!(event.id = event.id, event.topic = %event.topic, attempts = attempt, retry_at = %retry_at, error = %error, "webhook not delivered; will retry");
                    Ok(Attempt::Failed { unreachable })
                } else {
                    // Our lease ran out and another worker took the event: its attempt counts.
                    tracing::warn!(event.id = event.id, error = %error, "webhook not delivered, and its lease was lost");
                    Ok(Attempt::Skipped { unreachable })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(SECRET, 1_790_000_000, body);
        assert!(header.starts_with("t=1790000000,v1="), "{header}");
        let tolerance = chrono::Duration::minutes(5);
        assert!(verify_signature(SECRET, &header, body, at(1_790_000_000), tolerance));
        assert!(verify_signature(SECRET, &header, body, at(1_790_000_300), tolerance), "at the edge");
        assert!(!verify_signature(SECRET, &header, body, at(1_790_000_301), tolerance), "too old: a replay");
        assert!(!verify_signature(SECRET, &header, body, at(1_789_999_699), tolerance), "from the future");
        assert!(!verify_signature(SECRET, &header, br#"{"id":"evt_2"}"#, at(1_790_000_000), tolerance), "another body");
        assert!(!verify_signature(b"another-secret-another-secret-xx", &header, body, at(1_790_000_000), tolerance));
        let moved = header.replace("t=1790000000", "t=1790000001");
        assert!(!verify_signature(SECRET, &moved, body, at(1_790_000_000), tolerance), "the timestamp is signed");
    }

    #[test]
    fn malformed_headers_do_not_verify() {
        let body = b"{}";
        let now = at(1_790_000_000);
        let tolerance = chrono::Duration::minutes(5);
        let good = sign(SECRET, now.timestamp(), body);
        let v1 = good.split_once(",v1=").unwrap().1;
        for header in ["", "t=1790000000", &format!("v1={v1}"), &format!("t=x,v1={v1}"), &format!("t=1790000000,t=1790000000,v1={v1}")] {
            assert!(!verify_signature(SECRET, header, body, now, tolerance), "{header:?}");
        }
        // During a secret rotation a header may carry two signatures; one match is enough.
        let rotated = format!("t=1790000000,v1={},v1={v1}", "00".repeat(32));
        assert!(verify_signature(SECRET, &rotated, body, now, tolerance));
    }

    #[test]
    fn the_sender_checks_its_url_and_secret() {
        assert!(WebhookSender::new("https://example.com/hooks", SECRET).is_ok());
        assert!(matches!(WebhookSender::new("ftp://example.com/", SECRET), Err(WebhookSetupError::InvalidUrl(_))));
        assert!(matches!(WebhookSender::new("not a url", SECRET), Err(WebhookSetupError::InvalidUrl(_))));
        assert!(matches!(WebhookSender::new("https://example.com/", b"short"), Err(WebhookSetupError::ShortSecret)));
        let sender = WebhookSender::new("https://user:pass@example.com/hooks?token=t", SECRET).unwrap();
        assert_eq!(sender.endpoint(), "https://example.com/hooks");
    }

    #[test]
    fn the_body_wraps_the_payload() {
        let event = outbox::Model {
            id: 7,
            topic: "purchase.refunded".into(),
            account_id: Some(1),
            payload: r#"{"purchaseId":"9"}"#.into(),
            created_at: at(1_790_000_000),
            delivered_at: None,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            leased_until: None,
        };
        let body: serde_json::Value = serde_json::from_slice(&envelope(&event, Some("alice")).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": "evt_7", "topic": "purchase.refunded", "account": "alice",
                "createdAt": "2026-09-21T14:13:20+00:00", "data": { "purchaseId": "9" }
            })
        );
    }
}
