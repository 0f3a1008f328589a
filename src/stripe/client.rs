//! Calls to Stripe's API: a Checkout Session for a pending purchase, and a refund of a paid one.
//! Form-encoded POSTs with the secret key as bearer and our own idempotency key, so a call
//! repeated after a timeout (or by a replayed mutation) gets Stripe's first answer instead of a
//! second session or refund. Request and response shapes are those of Stripe's API reference
//! ("Create a Checkout Session", "Create a refund"); `tests/stripe.rs` runs them against a local
//! fake of those endpoints.

use chrono::{DateTime, Duration, Utc};
use std::time::Duration as StdDuration;

/// Stripe's API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// How long one call may take: a mutation waits for it.
pub const CALL_TIMEOUT: StdDuration = StdDuration::from_secs(20);
/// `metadata.credits_flow` of a PaymentIntent made by our Checkout Session: a failed attempt on
/// it does not end the purchase (`events::Failure::checkout_may_retry`).
pub const CHECKOUT_FLOW: &str = "checkout";
/// `metadata.credits_flow` of an auto top-up's PaymentIntent.
pub const AUTO_TOPUP_FLOW: &str = "auto_topup";
/// Stripe takes a session's `expires_at` between 30 minutes and 24 hours after it is made.
const SESSION_LIFETIME_MIN: Duration = Duration::minutes(30);
const SESSION_LIFETIME_MAX: Duration = Duration::hours(24);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// Stripe could not be reached, or answered something that is not its API's.
    #[error("Stripe could not be reached: {0}")]
    Unreachable(String),
    /// Stripe refused the call; its error's type, code and message.
    #[error("Stripe refused: {message} ({kind}{code})")]
    Refused {
        status: u16,
        kind: String,
        code: String,
        message: String,
        /// A declined payment's PaymentIntent (`error.payment_intent.id`).
        payment_intent: Option<String>,
    },
}

/// The settings of outbound calls.
pub struct StripeClient {
    http: reqwest::Client,
    api_base: url::Url,
    secret_key: String,
    /// Where Checkout sends the user after paying and after giving up; `{purchase_id}` is
    /// filled in, Stripe fills `{CHECKOUT_SESSION_ID}`.
    success_url: String,
    cancel_url: String,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient").field("api_base", &self.api_base.as_str()).finish_non_exhaustive()
    }
}

/// What a Checkout Session is made for.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    pub purchase_id: i64,
    /// The line's name on the payment page.
    pub name: &'a str,
    pub amount_minor: i64,
    /// ISO 4217; sent in lower case.
    pub currency: &'a str,
    /// When the purchase stops waiting for its payment; the session closes then too, within
    /// Stripe's bounds.
    pub pending_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub url: String,
}

/// An auto top-up's charge on a saved card.
#[derive(Debug, Clone)]
pub struct OffSessionPayment<'a> {
    pub purchase_id: i64,
    pub amount_minor: i64,
    pub currency: &'a str,
    /// `cus_...` and `pm_...`, as the product saved them.
    pub customer: &'a str,
    pub payment_method: &'a str,
    pub description: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    pub id: String,
    /// `succeeded`, `processing`, `requires_action`, `requires_payment_method`, ...
    pub status: String,
    pub amount_received: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    /// `succeeded`, `pending`, `requires_action`, `failed` or `canceled`.
    pub status: String,
}

impl StripeClient {
    pub fn new(api_base: &str, secret_key: &str, success_url: &str, cancel_url: &str) -> Result<StripeClient, String> {
        let api_base = url::Url::parse(api_base).map_err(|e| format!("stripe_api_base: {e}"))?;
        for (name, url) in [("stripe_success_url", success_url), ("stripe_cancel_url", cancel_url)] {
            let sample = url.replace("{purchase_id}", "1").replace("{CHECKOUT_SESSION_ID}", "cs_1");
            match url::Url::parse(&sample) {
                Ok(parsed) if parsed.scheme() == "https" || parsed.scheme() == "http" => {}
                _ => return Err(format!("{name} must be an absolute http(s) URL")),
            }
        }
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Stripe: {e}"))?;
        Ok(StripeClient {
            http,
            api_base,
            secret_key: secret_key.to_string(),
            success_url: success_url.to_string(),
            cancel_url: cancel_url.to_string(),
        })
    }

    /// A Checkout Session in `payment` mode for one line at the purchase's price, carrying the
    /// purchase id where every event about it will show it (api.md). Idempotent per purchase.
    pub async fn create_checkout_session(&self, request: &CheckoutRequest<'_>) -> Result<Session, StripeError> {
        let id = request.purchase_id.to_string();
        let fill = |url: &str| url.replace("{purchase_id}", &id);
        let expires_at = request.pending_until.clamp(request.now + SESSION_LIFETIME_MIN, request.now + SESSION_LIFETIME_MAX);
        let currency = request.currency.to_ascii_lowercase();
        let form = [
            ("mode", "payment".to_string()),
            ("line_items[0][quantity]", "1".to_string()),
            ("line_items[0][price_data][currency]", currency),
            ("line_items[0][price_data][unit_amount]", request.amount_minor.to_string()),
            ("line_items[0][price_data][product_data][name]", request.name.to_string()),
            ("success_url", fill(&self.success_url)),
            ("cancel_url", fill(&self.cancel_url)),
            ("client_reference_id", id.clone()),
            ("metadata[purchase_id]", id.clone()),
            ("payment_intent_data[metadata][purchase_id]", id.clone()),
            ("payment_intent_data[metadata][credits_flow]", CHECKOUT_FLOW.to_string()),
            ("expires_at", expires_at.timestamp().to_string()),
        ];
        let body = self.post("/v1/checkout/sessions", &form, &format!("credits-checkout-{id}")).await?;
        match (body["id"].as_str(), body["url"].as_str()) {
            (Some(id), Some(url)) => Ok(Session { id: id.to_string(), url: url.to_string() }),
            _ => Err(StripeError::Unreachable("the session has no id or url".into())),
        }
    }

    /// A refund of `amount_minor` of the payment, marked as ours (`metadata.purchase_id`), under
    /// `idempotency_key`.
    pub async fn create_refund(
        &self,
        payment_intent: &str,
        amount_minor: i64,
        purchase_id: i64,
        idempotency_key: &str,
    ) -> Result<Refund, StripeError> {
        let form = [
            ("payment_intent", payment_intent.to_string()),
            ("amount", amount_minor.to_string()),
            ("metadata[purchase_id]", purchase_id.to_string()),
        ];
        let body = self.post("/v1/refunds", &form, idempotency_key).await?;
        match (body["id"].as_str(), body["status"].as_str()) {
            (Some(id), Some(status)) => Ok(Refund { id: id.to_string(), status: status.to_string() }),
            _ => Err(StripeError::Unreachable("the refund has no id or status".into())),
        }
    }

    /// Charges a saved payment method for an auto top-up, off-session and confirmed at once,
    /// keyed per purchase: `credits-topup-<id>`. The PaymentIntent carries the purchase id, so its
    /// events lead back to it. A decline is `Refused` with the PaymentIntent's id.
    pub async fn create_off_session_payment(&self, request: &OffSessionPayment<'_>) -> Result<PaymentIntent, StripeError> {
        let id = request.purchase_id.to_string();
        let form = [
            ("amount", request.amount_minor.to_string()),
            ("currency", request.currency.to_ascii_lowercase()),
            ("customer", request.customer.to_string()),
            ("payment_method", request.payment_method.to_string()),
            ("off_session", "true".to_string()),
            ("confirm", "true".to_string()),
            ("description", request.description.to_string()),
            ("metadata[purchase_id]", id.clone()),
            ("metadata[credits_flow]", AUTO_TOPUP_FLOW.to_string()),
        ];
        let body = self.post("/v1/payment_intents", &form, &format!("credits-topup-{id}")).await?;
        match (body["id"].as_str(), body["status"].as_str()) {
            (Some(id), Some(status)) => {
                Ok(PaymentIntent { id: id.to_string(), status: status.to_string(), amount_received: body["amount_received"].as_i64() })
            }
            _ => Err(StripeError::Unreachable("the PaymentIntent has no id or status".into())),
        }
    }

    async fn post(&self, path: &str, form: &[(&str, String)], idempotency_key: &str) -> Result<serde_json::Value, StripeError> {
        let url = self.api_base.join(path).map_err(|e| StripeError::Unreachable(e.to_string()))?;
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str()))).finish();
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| StripeError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let json: serde_json::Value = response.json().await.map_err(|e| StripeError::Unreachable(format!("{status}: {e}")))?;
        if status.is_success() {
            return Ok(json);
        }
        let error = &json["error"];
        let text = |field: &str| error[field].as_str().unwrap_or_default().to_string();
        if status.is_server_error() || error.is_null() {
            return Err(StripeError::Unreachable(format!("{status}: {}", text("message"))));
        }
        let code = text("code");
        Err(StripeError::Refused {
            status: status.as_u16(),
            kind: text("type"),
            code: if code.is_empty() { code } else { format!(", {code}") },
            message: text("message"),
            payment_intent: error["payment_intent"]["id"].as_str().map(str::to_string),
        })
    }
}
