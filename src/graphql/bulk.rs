//! Bulk mutations: many independent charges in one request, for a backend that flushes many
//! users' usage at once. Each item has its own account, key, outcome and error; one item's
//! refusal never fails the request or its neighbours. Only what makes the request itself
//! unusable (the caller's role, an empty or oversized list, a value the schema refuses) is a
//! request-level error.

use crate::graphql::context::{app, require_service};
use crate::graphql::error::{ApiError, ApiResult};
use crate::graphql::metering::{RecordUsageInput, RecordUsagePayload};
use crate::graphql::spending::{SpendCreditsInput, SpendCreditsPayload};
use crate::service::ServiceError;
use crate::service::metering::UsageRequest;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

/// Items in one bulk request at most. The service commits up to 64 of them per transaction
/// (`service::batch::MAX_BATCH`), so a full request is two transactions.
pub const MAX_BULK_ITEMS: usize = 100;

/// Many spends in one request (service).
#[derive(InputObject)]
pub struct SpendCreditsBatchInput {
    /// 1 to 100 spends, each exactly as `spendCredits` takes it. They are charged in this order
    /// (two spends of one account: the second sees the first's takes) and each is independent:
    /// keyed, all or nothing, and answered in `results` at its index.
    pub items: Vec<SpendCreditsInput>,
}

/// One item's refusal: what `spendCredits` or `recordUsage` alone would have answered as an
/// error.
#[derive(SimpleObject)]
pub struct BatchItemError {
    /// The stable error code, as a request-level error carries in `extensions.code`
    /// (INSUFFICIENT_CREDITS, IDEMPOTENCY_CONFLICT, NOT_FOUND, BAD_USER_INPUT, ...).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The figures a request-level error carries in `extensions` besides its code (for
    /// INSUFFICIENT_CREDITS `requested` and `available`; for SPEND_LIMIT_REACHED `period`,
    /// `limit`, `used`, `requested`, `resetsAt`): credits as decimal strings, instants as RFC 3339.
    pub details: Vec<ErrorDetail>,
}

/// A named figure of a refusal.
#[derive(SimpleObject)]
pub struct ErrorDetail {
    /// The name, as in a request-level error's `extensions`.
    pub name: String,
    /// Its value as text.
    pub value: String,
}

impl From<ServiceError> for BatchItemError {
    fn from(err: ServiceError) -> Self {
        let err = ApiError::from(err);
        let details = err.details().into_iter().map(|(name, value)| ErrorDetail { name: name.to_string(), value }).collect();
        BatchItemError { code: err.code().to_string(), message: err.message(), details }
    }
}

/// One spend's outcome in a batch.
#[derive(SimpleObject)]
pub struct SpendBatchResult {
    /// The item's position in `items`, from 0.
    pub index: i32,
    /// The item's account, as given.
    pub account_id: ID,
    /// The item's idempotency key, as given.
    pub idempotency_key: String,
    /// Whether the spend was charged (or replayed a charge): then `receipt` is set, else `error`.
    pub ok: bool,
    /// The receipt, the same as `spendCredits` answers and the same on every replay of the key.
    pub receipt: Option<SpendCreditsPayload>,
    /// Why this spend was refused; nothing of it was charged.
    pub error: Option<BatchItemError>,
}

/// Every item's outcome, in the order of `items`.
#[derive(SimpleObject)]
pub struct SpendCreditsBatchPayload {
    /// One result per item, at its index.
    pub results: Vec<SpendBatchResult>,
}

/// Many usage samples in one request (service).
#[derive(InputObject)]
pub struct RecordUsageBatchInput {
    /// 1 to 100 samples, each exactly as `recordUsage` takes it, recorded in this order; each is
    /// independent: keyed, all or nothing, and answered in `results` at its index.
    pub items: Vec<RecordUsageInput>,
}

/// One sample's outcome in a batch.
#[derive(SimpleObject)]
pub struct RecordUsageBatchResult {
    /// The item's position in `items`, from 0.
    pub index: i32,
    /// The item's account, as given.
    pub account_id: ID,
    /// The item's idempotency key, as given.
    pub idempotency_key: String,
    /// Whether the sample was recorded (or replayed): then `receipt` is set, else `error`.
    pub ok: bool,
    /// What `recordUsage` answers for it.
    pub receipt: Option<RecordUsagePayload>,
    /// Why this sample was refused; nothing of it was recorded.
    pub error: Option<BatchItemError>,
}

/// Every sample's outcome, in the order of `items`.
#[derive(SimpleObject)]
pub struct RecordUsageBatchPayload {
    /// One result per item, at its index.
    pub results: Vec<RecordUsageBatchResult>,
}

/// The request-level rule on a bulk list's size.
fn check_size(items: usize) -> ApiResult<()> {
    if items == 0 || items > MAX_BULK_ITEMS {
        return Err(ServiceError::bad_input(format!("items: give 1 to {MAX_BULK_ITEMS}, not {items}")).into());
    }
    Ok(())
}

#[derive(Default)]
pub struct BulkMutation;

#[Object]
impl BulkMutation {
    /// Charges many spends in one request (service): each item as `spendCredits` would, in the
    /// order given, with its own outcome. Up to 100 items; committed together where they can be.
    async fn spend_credits_batch(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The spends, 1 to 100.")] input: SpendCreditsBatchInput,
    ) -> ApiResult<SpendCreditsBatchPayload> {
        require_service(ctx)?;
        check_size(input.items.len())?;
        let app = app(ctx);
        let given: Vec<(ID, String)> = input.items.iter().map(|i| (i.account_id.clone(), i.idempotency_key.clone())).collect();
        let requests = input.items.into_iter().map(SpendCreditsInput::into_request).collect();
        let outcomes = app.ledger.spend_many(requests, app.clock.now()).await;
        let results = given.into_iter().zip(outcomes).enumerate().map(|(index, ((account_id, idempotency_key), outcome))| {
            let (receipt, error) = match outcome {
                Ok(receipt) => (Some(SpendCreditsPayload::from(receipt)), None),
                Err(err) => (None, Some(BatchItemError::from(err))),
            };
            SpendBatchResult { index: index as i32, account_id, idempotency_key, ok: receipt.is_some(), receipt, error }
        });
        Ok(SpendCreditsBatchPayload { results: results.collect() })
    }

    /// Records many usage samples in one request (service): each item as `recordUsage` would, in
    /// the order given, with its own outcome. Up to 100 items.
    async fn record_usage_batch(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The samples, 1 to 100.")] input: RecordUsageBatchInput,
    ) -> ApiResult<RecordUsageBatchPayload> {
        require_service(ctx)?;
        check_size(input.items.len())?;
        let app = app(ctx);
        let given: Vec<(ID, String)> = input.items.iter().map(|i| (i.account_id.clone(), i.idempotency_key.clone())).collect();
        // A sample that names none or several of storage, traffic and ai is refused alone.
        let mut samples: Vec<Option<Result<_, ServiceError>>> = Vec::with_capacity(given.len());
        let mut requests = Vec::new();
        for item in input.items {
            let (account, idempotency_key) = (item.account_id.to_string(), item.idempotency_key.clone());
            match item.sample() {
                Ok(sample) => {
                    requests.push(UsageRequest { account, sample, idempotency_key });
                    samples.push(None);
                }
                Err(err) => samples.push(Some(Err(err))),
            }
        }
        let mut recorded = app.ledger.record_usage_many(requests, app.clock.now()).await.into_iter();
        let results = given.into_iter().zip(samples).enumerate().map(|(index, ((account_id, idempotency_key), refused))| {
            let outcome = refused.unwrap_or_else(|| recorded.next().expect("one outcome per request"));
            let (receipt, error) = match outcome {
                Ok(receipt) => (Some(RecordUsagePayload { settlement: receipt.settlement.map(Into::into) }), None),
                Err(err) => (None, Some(BatchItemError::from(err))),
            };
            RecordUsageBatchResult { index: index as i32, account_id, idempotency_key, ok: receipt.is_some(), receipt, error }
        });
        Ok(RecordUsageBatchPayload { results: results.collect() })
    }
}
