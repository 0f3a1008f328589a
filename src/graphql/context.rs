//! Per-request identity and what each role may do (api.md, "Who may call what").

use crate::auth::{AuthError, Caller};
use crate::graphql::error::ApiError;
use crate::service::{Clock, Engine};
use async_graphql::Context;

/// What the schema carries for every request.
#[derive(Clone)]
pub struct AppData {
    pub ledger: Engine,
    pub clock: Clock,
}

/// Attached by the HTTP handler to each request.
pub type Authentication = Result<Caller, AuthError>;

/// When the request's token expires (Unix seconds), attached beside a valid `Authentication`.
#[derive(Debug, Clone, Copy)]
pub struct TokenExpiry(pub i64);

pub fn app<'a>(ctx: &Context<'a>) -> &'a AppData {
    ctx.data_unchecked::<AppData>()
}

pub fn caller<'a>(ctx: &Context<'a>) -> Result<&'a Caller, ApiError> {
    match ctx.data_opt::<Authentication>() {
        Some(Ok(caller)) => Ok(caller),
        Some(Err(e)) => Err(ApiError::Unauthenticated(e.clone())),
        None => Err(ApiError::Unauthenticated(AuthError::Missing)),
    }
}

/// The product's backend or the operator.
pub fn require_service(ctx: &Context<'_>) -> Result<(), ApiError> {
    match caller(ctx)? {
        Caller::Service | Caller::Admin { .. } => Ok(()),
        Caller::User { .. } => Err(ApiError::Forbidden("this operation needs a service or admin token".into())),
    }
}

pub fn require_admin(ctx: &Context<'_>) -> Result<(), ApiError> {
    match caller(ctx)? {
        Caller::Admin { .. } => Ok(()),
        _ => Err(ApiError::Forbidden("this operation needs an admin token".into())),
    }
}

/// A user acts on its own account only; service and admin act on any.
pub fn require_account(ctx: &Context<'_>, account: &str) -> Result<(), ApiError> {
    match caller(ctx)? {
        Caller::Service | Caller::Admin { .. } => Ok(()),
        Caller::User { account: own } if own == account => Ok(()),
        Caller::User { .. } => Err(ApiError::Forbidden("a user token acts on its own account only".into())),
    }
}

/// The client's address, attached by the HTTP handler.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

/// The limits on claims and where they are counted (see `crate::ratelimit`).
pub struct ClaimLimits {
    pub counter: std::sync::Arc<crate::ratelimit::ClaimCounter>,
    pub per_account: u32,
    pub per_ip: u32,
}

/// Counts a claim by `account` (and, for a user's token, the caller's IP); `TOO_MANY_ATTEMPTS`
/// past the limits. The address limit is for users farming claims over many accounts; the
/// product's backend checks in on behalf of all its users from a few addresses, so a service or
/// admin token is held to the per-account limit only.
pub async fn limit_claims(ctx: &Context<'_>, account: &str) -> Result<(), ApiError> {
    let Some(limits) = ctx.data_opt::<ClaimLimits>() else { return Ok(()) };
    let refuse = |seconds: u64, whom: &str| {
        ApiError::from(crate::service::ServiceError::TooManyAttempts(format!("too many claims from this {whom}; retry in {seconds} s")))
    };
    limits.counter.check(&format!("account:{account}"), limits.per_account).await.map_err(|s| refuse(s, "account"))?;
    let trusted = matches!(caller(ctx), Ok(Caller::Service | Caller::Admin { .. }));
    if let Some(ClientIp(ip)) = ctx.data_opt::<ClientIp>().filter(|_| !trusted) {
        limits.counter.check(&format!("ip:{ip}"), limits.per_ip).await.map_err(|s| refuse(s, "address"))?;
    }
    Ok(())
}
