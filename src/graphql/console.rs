//! Signing in to the operator console: the one-time link's exchange for a short-lived admin
//! token (`openConsoleSession`), and `viewer`, which tells any page who its token is.

use crate::auth::{AuthError, AuthKeys, Caller, Role};
use crate::graphql::context::{TokenExpiry, app, caller};
use crate::graphql::error::{ApiError, ApiResult};
use crate::service::ServiceError;
use crate::service::console_links::SESSION_TTL;
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A role a bearer token carries.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::auth::Role")]
pub enum TokenRole {
    /// One account's user: reads and acts on that account only.
    User,
    /// The product's backend: acts on any account.
    Service,
    /// An operator: everything the service may, plus grants, coupons, refunds past the user's
    /// window, and the operator's reads and actions.
    Admin,
}

/// Who the request's token says the caller is.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The token's role.
    pub role: TokenRole,
    /// A user token's account (the product's own id); null for other roles.
    pub account_id: Option<ID>,
    /// An admin token's operator, as recorded with each of their actions; null for other roles,
    /// and for an admin token issued before tokens named their operator (recorded as "admin").
    pub subject: Option<String>,
    /// When the token stops being accepted.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An operator's console session, opened by a one-time link.
#[derive(SimpleObject)]
pub struct ConsoleSession {
    /// An admin token naming the link's operator, valid for one hour: send it as
    /// `Authorization: Bearer <token>`. Keep it in the tab's session storage only.
    pub token: String,
    /// The operator the link was made for (`credits console-link --subject`).
    pub subject: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ConsoleQuery;

#[Object]
impl ConsoleQuery {
    /// The caller as its token says: role, account or operator, and expiry. Any valid token;
    /// none, or an expired one, is UNAUTHENTICATED.
    async fn viewer(&self, ctx: &Context<'_>) -> ApiResult<Viewer> {
        let caller = caller(ctx)?;
        let expires_at = ctx.data_opt::<TokenExpiry>().and_then(|TokenExpiry(at)| DateTime::from_timestamp(*at, 0));
        let account_id = match caller {
            Caller::User { account } => Some(ID(account.clone())),
            _ => None,
        };
        let subject = match caller {
            Caller::Admin { subject } => subject.clone(),
            _ => None,
        };
        Ok(Viewer { role: caller.role().into(), account_id, subject, expires_at })
    }
}

#[derive(Default)]
pub struct ConsoleMutation;

#[Object]
impl ConsoleMutation {
    /// Exchanges the code of a one-time console link (`credits console-link`, in the link's
    /// `#code=` fragment) for an admin token naming the link's operator, valid for one hour.
    /// Needs no token. A code works once and only until the link expires (10 minutes by
    /// default); an unknown, used or expired code is UNAUTHENTICATED, alike.
    async fn open_console_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The code from the link's fragment (`#code=...`): 43 characters of base64url.")] code: String,
    ) -> ApiResult<ConsoleSession> {
        let app = app(ctx);
        let Some(subject) = app.ledger.redeem_console_link(&code, app.clock.now()).await? else {
            return Err(ApiError::Unauthenticated(AuthError::UnknownLink));
        };
        let keys = ctx
            .data_opt::<Arc<AuthKeys>>()
            .ok_or_else(|| ApiError::from(ServiceError::Internal(anyhow::anyhow!("no token keys in the schema"))))?;
        let issued_at = Utc::now();
        let ttl = SESSION_TTL.to_std().unwrap_or(std::time::Duration::from_secs(3600));
        let token = keys
            .issue(Role::Admin, Some(&subject), ttl)
            .map_err(|e| ApiError::from(ServiceError::Internal(anyhow::anyhow!("issuing a console token: {e}"))))?;
        tracing::info!(operator = %subject, "console session opened");
        Ok(ConsoleSession { token, subject, expires_at: issued_at + SESSION_TTL })
    }
}
