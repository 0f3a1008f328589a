//! Subscriptions, over WebSocket (`/graphql/ws`, the graphql-transport-ws protocol).

use crate::auth::Caller;
use crate::balance_watch::BalanceWatches;
use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{caller, require_account};
use crate::graphql::error::ApiError;
use crate::graphql::types::Balance;
use async_graphql::{Context, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;

pub struct SubscriptionRoot;

/// An account's balance at an instant.
#[derive(SimpleObject)]
pub struct BalanceUpdate {
    /// The account's external id.
    pub account_id: ID,
    /// Its balance then.
    pub balance: Balance,
    /// The instant the balance was read at.
    pub at: DateTime<Utc>,
}

/// Subscriptions, over WebSocket (`/graphql/ws`, the graphql-transport-ws protocol).
#[Subscription]
impl SubscriptionRoot {
    /// The account's balance now, then again each time its credits change, whoever changed them
    /// (this server, another one, or a worker's expiry or settlement). A user's token watches
    /// its own account (`accountId` may be left out); service and admin tokens name one.
    async fn balance_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The account's external id: required for service and admin tokens; a user token may leave it out or name only its own."
        )]
        account_id: Option<ID>,
    ) -> Result<impl Stream<Item = BalanceUpdate> + use<>, ApiError> {
        let external_id = match (caller(ctx)?, account_id) {
            (_, Some(id)) => id.to_string(),
            (Caller::User { account }, None) => account.clone(),
            (_, None) => {
                return Err(crate::service::ServiceError::bad_input("accountId is required").into());
            }
        };
        require_account(ctx, &external_id)?;
        let watches = ctx.data_unchecked::<BalanceWatches>();
        let account = watches.account(&external_id).await?;
        // One watcher per account reads the balance once per change for all its subscribers.
        let watch = watches.watch(&account).map_err(|e| ApiError::LimitExceeded(e.to_string()))?;
        Ok(futures_util::stream::unfold((watch, None::<(CreditAmount, CreditAmount)>), |(mut watch, last)| async move {
            loop {
                let (view, at) = watch.next().await?;
                let balance = Balance::of(view, watch.external_id().to_string());
                // Only changes are pushed: a resync that finds the same balance stays quiet.
                let current = (balance.total, balance.held);
                if last == Some(current) {
                    continue;
                }
                let update = BalanceUpdate { account_id: ID(watch.external_id().to_string()), balance, at };
                return Some((update, (watch, Some(current))));
            }
        }))
    }
}
