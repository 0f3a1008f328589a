//! Per-request identity and what each role may do (api.md, "Who may call what").

use crate::auth::{AuthError, Caller};
use crate::graphql::error::ApiError;
use crate::service::{Clock, Ledger};
use async_graphql::Context;

/// What the schema carries for every request.
#[derive(Clone)]
pub struct AppData {
    pub ledger: Ledger,
    pub clock: Clock,
}

/// Attached by the HTTP handler to each request.
pub type Authentication = Result<Caller, AuthError>;

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
        Caller::Service | Caller::Admin => Ok(()),
        Caller::User { .. } => Err(ApiError::Forbidden("this operation needs a service or admin token".into())),
    }
}

pub fn require_admin(ctx: &Context<'_>) -> Result<(), ApiError> {
    match caller(ctx)? {
        Caller::Admin => Ok(()),
        _ => Err(ApiError::Forbidden("this operation needs an admin token".into())),
    }
}

/// A user acts on its own account only; service and admin act on any.
pub fn require_account(ctx: &Context<'_>, account: &str) -> Result<(), ApiError> {
    match caller(ctx)? {
        Caller::Service | Caller::Admin => Ok(()),
        Caller::User { account: own } if own == account => Ok(()),
        Caller::User { .. } => Err(ApiError::Forbidden("a user token acts on its own account only".into())),
    }
}
