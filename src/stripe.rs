//! Stripe (issue 27), both ways. Inbound: `POST /webhooks/stripe` verifies the
//! `Stripe-Signature` header (`signature`), reads the events the ledger cares about
//! (`events`), and `service::stripe` maps them to purchases idempotently on the event id.
//! Outbound: a Checkout Session for a pending purchase and a refund of a paid one (`client`),
//! only when an API key is configured; without one nothing changes.
//!
//! A Checkout Session carries the purchase id in `metadata.purchase_id`, in
//! `client_reference_id` and in `payment_intent_data.metadata.purchase_id` (api.md), so every
//! event about its payment leads back to the purchase, whichever arrives first.

pub mod client;
pub mod events;
pub mod signature;

/// What the configuration says about Stripe; each part optional.
#[derive(Clone)]
pub struct StripeSettings {
    /// The endpoint's signing secrets (`whsec_...`): the current one, and during a rotation the
    /// one going out. Empty: `/webhooks/stripe` answers 503.
    pub webhook_secrets: Vec<String>,
    /// How old an event's signature may be (and how far in the future): Stripe's libraries
    /// default to 5 minutes.
    pub tolerance: std::time::Duration,
    /// Calls to Stripe's API; none without an API key.
    pub client: Option<std::sync::Arc<client::StripeClient>>,
}

impl Default for StripeSettings {
    /// No Stripe: no secrets, no client, Stripe's own tolerance (a derived zero would refuse
    /// every signature once secrets are added).
    fn default() -> Self {
        StripeSettings { webhook_secrets: Vec::new(), tolerance: DEFAULT_TOLERANCE, client: None }
    }
}

impl std::fmt::Debug for StripeSettings {
    // Never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("tolerance", &self.tolerance)
            .field("client", &self.client.is_some())
            .finish()
    }
}

/// Stripe's default signature tolerance.
pub const DEFAULT_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);
