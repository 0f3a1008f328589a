//! Subscriptions, over WebSocket (`/graphql/ws`, the graphql-transport-ws protocol).

use crate::auth::Caller;
use crate::feed::{BalanceFeed, FeedEvent};
use crate::graphql::amount::CreditAmount;
use crate::graphql::context::{app, caller, require_account};
use crate::graphql::error::ApiError;
use crate::graphql::types::Balance;
use async_graphql::{Context, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

pub struct SubscriptionRoot;

/// An account's balance at an instant.
#[derive(SimpleObject)]
pub struct BalanceUpdate {
    pub account_id: ID,
    pub balance: Balance,
    pub at: DateTime<Utc>,
}

#[Subscription]
impl SubscriptionRoot {
    /// The account's balance now, then again each time its credits change, whoever changed them
    /// (this server, another one, or a worker's expiry or settlement). A user's token watches
    /// its own account (`accountId` may be left out); service and admin tokens name one.
    async fn balance_changed(
        &self,
        ctx: &Context<'_>,
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
        let data = app(ctx);
        let (ledger, clock) = (data.ledger.clone(), data.clock.clone());
        let account = ledger.account(&external_id).await?;
        let events = ctx.data_unchecked::<BalanceFeed>().subscribe();
        let state = (ledger, clock, account, events, None::<(CreditAmount, CreditAmount)>, true);
        Ok(futures_util::stream::unfold(state, |(ledger, clock, account, mut events, last, first)| async move {
            let mut wake = first;
            loop {
                if !wake {
                    match events.recv().await {
                        Ok(FeedEvent::Changed(id)) if id == account.id => {}
                        Ok(FeedEvent::Changed(_)) => continue,
                        Ok(FeedEvent::Resync) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    }
                }
                wake = false;
                let now = clock.now();
                let Ok(view) = ledger.balance(&account, now).await else {
                    tracing::warn!(account.id = account.id, "balance feed: cannot read the balance");
                    continue;
                };
                let balance = Balance::from(view);
                // Only changes are pushed: a resync that finds the same balance stays quiet.
                let current = (balance.total, balance.held);
                if last == Some(current) {
                    continue;
                }
                let update = BalanceUpdate { account_id: ID(account.external_id.clone()), balance, at: now };
                return Some((update, (ledger, clock, account, events, Some(current), false)));
            }
        }))
    }
}
