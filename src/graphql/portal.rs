//! What the customer portal (`/portal`) needs beyond the account reads: a way in for a user the
//! product's backend vouches for (`createPortalSession`), and a way to try buying without a
//! payment provider (`simulatePayment`, development mode only).

use crate::auth::{AuthKeys, Caller, Role};
use crate::graphql::context::{app, caller, require_service};
use crate::graphql::error::{ApiError, ApiResult};
use crate::graphql::purchases::Purchase;
use crate::links::{Checkout, Links};
use crate::service::ServiceError;
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A portal session lasts this long unless the backend asks for another length.
pub const DEFAULT_TTL_SECONDS: i32 = 3600;
/// The longest: a link that leaks stays usable no longer than a day.
pub const MAX_TTL_SECONDS: i32 = 24 * 3600;
/// The shortest: long enough to open the link.
pub const MIN_TTL_SECONDS: i32 = 60;

/// A way into the customer portal for one account.
#[derive(SimpleObject)]
pub struct PortalSession {
    /// A user token for the account, valid until `expiresAt`: the portal sends it as
    /// `Authorization: Bearer ...`. Give it only to that account's user.
    pub token: String,
    /// The portal's address with the token in its fragment (`.../portal#token=...`): send the
    /// user's browser there. A fragment is never sent to a server, so the token reaches no log,
    /// proxy or `Referer`; the portal takes it out of the address bar at once.
    pub url: String,
    /// When the token stops working, by the wall clock (tokens are not on a test clock).
    pub expires_at: DateTime<Utc>,
}

/// How the portal's user pays for a purchase (`program.checkout`).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CheckoutMode {
    /// A payment page outside this server: a pending purchase's `checkoutUrl` leads there (the
    /// program's checkout page, `checkout_url`, or the purchase's Stripe Checkout Session).
    External,
    /// Development mode with no checkout page: `simulatePayment` pays with a fake payment.
    Simulated,
    /// Production mode with no checkout page: the product's own app takes the payment.
    None,
}

impl From<&Checkout> for CheckoutMode {
    fn from(checkout: &Checkout) -> CheckoutMode {
        match checkout {
            Checkout::External(_) | Checkout::Stripe => CheckoutMode::External,
            Checkout::Simulated => CheckoutMode::Simulated,
            Checkout::None => CheckoutMode::None,
        }
    }
}

/// The configured links; a schema built without them (a unit test's) has the defaults.
pub fn links<'a>(ctx: &Context<'a>) -> Option<&'a Links> {
    ctx.data_opt::<Links>()
}

#[derive(Default)]
pub struct PortalMutation;

#[Object]
impl PortalMutation {
    /// Opens the customer portal for an account (service, admin): a short-lived user token and
    /// the portal's URL carrying it, to redirect the user's browser to. `ttl` is in seconds:
    /// 3600 when not given, 60 to 86400. Needs `public_url` in production mode
    /// (`FEATURE_DISABLED` without it).
    async fn create_portal_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The product's id of the account whose user gets the portal.")] account_id: ID,
        #[graphql(desc = "How long the session lasts, in seconds: 60 to 86400 (24 hours); 3600 when not given.")] ttl: Option<i32>,
    ) -> ApiResult<PortalSession> {
        require_service(ctx)?;
        let ttl = ttl.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
            return Err(ServiceError::bad_input(format!("ttl must be {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS} seconds")).into());
        }
        // Only an account that exists gets a session: a typo in the backend is NOT_FOUND now, not
        // a portal that fails later.
        let account = app(ctx).ledger.account(&account_id).await?;
        let keys = ctx
            .data_opt::<Arc<AuthKeys>>()
            .ok_or_else(|| ApiError::from(ServiceError::Internal(anyhow::anyhow!("no token keys in the schema"))))?;
        let issued_at = Utc::now();
        let token = keys
            .issue(Role::User, Some(&account.external_id), std::time::Duration::from_secs(ttl as u64))
            .map_err(|e| ApiError::from(ServiceError::Internal(anyhow::anyhow!("issuing a portal token: {e}"))))?;
        let url = links(ctx)
            .and_then(|links| links.portal(&token))
            .ok_or_else(|| ServiceError::FeatureDisabled("portal links need public_url (CREDITS_PUBLIC_URL) in production mode".into()))?;
        tracing::info!(account.id = %account.external_id, ttl_seconds = ttl, "portal session opened");
        Ok(PortalSession { token, url, expires_at: issued_at + chrono::Duration::seconds(i64::from(ttl)) })
    }

    /// Pays a PENDING purchase with a fake payment, so the buying flow can be tried without a
    /// payment provider: only where `program.checkout` is SIMULATED (development mode with no
    /// `checkout_url`), else `FEATURE_DISABLED`. The purchase's user, or the service or admin on
    /// its behalf. Paying again answers the paid purchase; its payment reference is
    /// `simulated-{id}`. An ended purchase (EXPIRED, or past `expiresAt`; CANCELLED, FAILED) is
    /// INVALID_STATE: its checkout closed.
    async fn simulate_payment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The pending purchase, from `purchaseCredits`.")] purchase_id: ID,
    ) -> ApiResult<Purchase> {
        let caller = caller(ctx)?;
        if links(ctx).map_or(Checkout::Simulated, |links| links.checkout.clone()) != Checkout::Simulated {
            return Err(
                ServiceError::FeatureDisabled("simulated payments are only for development mode without a checkout_url".into()).into()
            );
        }
        let id = purchase_id.parse::<i64>().map_err(|_| ServiceError::NotFound(format!("no purchase {:?}", purchase_id.as_str())))?;
        let app = app(ctx);
        if let Caller::User { account } = caller
            && app.ledger.purchase_owner(id).await.ok().as_deref() != Some(account.as_str())
        {
            return Err(ApiError::Forbidden("a user pays its own purchases only".into()));
        }
        Ok(Purchase(app.ledger.simulate_payment(id, app.clock.now()).await?))
    }
}
