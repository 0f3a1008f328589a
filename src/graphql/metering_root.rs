//! Metering's root fields: containers and recorded usage (the types are in `metering.rs`).

use crate::graphql::context::{app, require_service};
use crate::graphql::error::ApiResult;
use crate::graphql::metering::{ContainerPayload, RecordUsageInput, RecordUsagePayload, StartContainerInput, StopContainerInput};
use async_graphql::{Context, Object};

#[derive(Default)]
pub struct MeteringMutation;

#[Object]
impl MeteringMutation {
    /// Starts a metered container at a tier (service); a restart first charges the storage used
    /// while it was stopped.
    async fn start_container(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the container, its tier and add-on, and an idempotency key.")] input: StartContainerInput,
    ) -> ApiResult<ContainerPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let receipt = app
            .ledger
            .start_container(
                &input.account_id,
                &input.container_id,
                &input.tier,
                input.code_supporter,
                &input.idempotency_key,
                app.clock.now(),
            )
            .await?;
        Ok(receipt.into())
    }

    /// Stops a container and charges its session in one deduction: time at its tier, add-on,
    /// traffic, and the account's storage so far (service).
    async fn stop_container(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, the container, and an idempotency key.")] input: StopContainerInput,
    ) -> ApiResult<ContainerPayload> {
        require_service(ctx)?;
        let app = app(ctx);
        Ok(app.ledger.stop_container(&input.account_id, &input.container_id, &input.idempotency_key, app.clock.now()).await?.into())
    }

    /// Records a usage sample (service): storage (GB now) and traffic (bytes) accrue until the next
    /// settlement; an AI use is charged at once.
    async fn record_usage(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account, exactly one sample, and an idempotency key.")] input: RecordUsageInput,
    ) -> ApiResult<RecordUsagePayload> {
        require_service(ctx)?;
        let app = app(ctx);
        let (account, key) = (input.account_id.to_string(), input.idempotency_key.clone());
        let receipt = app.ledger.record_usage(&account, input.sample()?, &key, app.clock.now()).await?;
        Ok(RecordUsagePayload { settlement: receipt.settlement.map(Into::into) })
    }
}
