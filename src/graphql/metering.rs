//! The metering part of the schema: containers, usage samples, settlements and the usage page.

use crate::graphql::amount::DecimalValue;
use crate::graphql::amount::{CreditAmount, Quantity};
use crate::graphql::context::app;
use crate::graphql::error::ApiResult;
use crate::graphql::paging::{Counted, Paged, connection};
use crate::graphql::types::{credits, mirror_enum};
use crate::ledger::metering as rules;
use crate::service::metering::{self as service, LineView, SettlementView};
use crate::service::paging::{self, List};
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

mirror_enum!(
    /// Which AI a use was of.
    AiKind <=> rules::AiKind {
        /// AI Supporter, priced by model and tokens.
        AiSupporter,
        /// Side Chat, priced by model and tokens.
        Chat,
        /// Snap, priced per use.
        Snap,
    }
);
mirror_enum!(
    /// Where a container stands.
    ContainerState <=> rules::ContainerState {
        /// Running: its time is charged.
        Running,
        /// Stopped by the product, or for overuse while holding no storage.
        Stopped,
        /// Stopped for overuse while holding storage.
        Inactive,
    }
);
mirror_enum!(
    /// What a usage line charges for.
    UsageResource <=> rules::Resource {
        /// A container's running time at its tier.
        Container,
        /// An add-on's time on a container (Code Supporter).
        Addon,
        /// The account's storage over its plan's quota, all containers together.
        Storage,
        /// A container's traffic over the month's free allowance.
        Traffic,
        /// One AI use.
        Ai,
    }
);
mirror_enum!(
    /// The unit of a usage line's quantity.
    UsageUnit <=> rules::Unit {
        /// Running time of a container or an add-on.
        Second,
        /// Storage over the quota: gigabytes (10^9 bytes) times seconds.
        GbSecond,
        /// Bytes of traffic (10^9 bytes = 1 GB).
        Byte,
        /// Tokens of an AI use (AI Supporter, Chat).
        Token,
        /// One AI use priced per use (Snap).
        Use,
    }
);

/// A container to start (service).
#[derive(InputObject)]
pub struct StartContainerInput {
    /// The account's external id.
    pub account_id: ID,
    /// The product's id for the container.
    pub container_id: String,
    /// A performance tier of the program (`micro`, `small`, ...); XLarge and GPU need Membership.
    pub tier: String,
    /// The Code Supporter add-on (free on GPU tiers).
    #[graphql(default)]
    pub code_supporter: bool,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// A container to stop (service).
#[derive(InputObject)]
pub struct StopContainerInput {
    /// The account's external id.
    pub account_id: ID,
    /// The product's id for the container (letters, digits and `._:/-`, up to 64 characters).
    pub container_id: String,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
}

/// A storage sample: a container's storage now.
#[derive(InputObject)]
pub struct StorageSampleInput {
    /// The product's id for the container (letters, digits and `._:/-`, up to 64 characters).
    pub container_id: String,
    /// The container's storage now, in GB (1 GB = 10^9 bytes): 0 to 1000000, at most 9 decimal
    /// places.
    pub gb: Quantity,
}

/// A traffic sample: bytes a container moved.
#[derive(InputObject)]
pub struct TrafficSampleInput {
    /// The product's id for the container (letters, digits and `._:/-`, up to 64 characters).
    pub container_id: String,
    /// Bytes moved since the last sample: a whole number, 1 to 1000000000000000 (10^15).
    pub bytes: Quantity,
}

/// One AI use.
#[derive(InputObject)]
pub struct AiUsageInput {
    /// Which AI was used: decides the pricing (tokens or per use).
    pub kind: AiKind,
    /// The container it was used from, if any (shown in the AI logs).
    pub container_id: Option<String>,
    /// Chat and AI Supporter: the model (the program's default when not given).
    pub model: Option<String>,
    /// Chat and AI Supporter: the tokens the use took. Snap is priced per use.
    pub tokens: Option<crate::graphql::types::TokenUsageInput>,
}

/// Exactly one of `storage`, `traffic`, `ai`.
#[derive(InputObject)]
pub struct RecordUsageInput {
    /// The account's external id.
    pub account_id: ID,
    /// 1 to 128 printable ASCII characters. A retry with the same key replays the first outcome;
    /// the same key with another request is IDEMPOTENCY_CONFLICT.
    pub idempotency_key: String,
    /// A storage sample; accrues until the next settlement.
    pub storage: Option<StorageSampleInput>,
    /// A traffic sample; accrues until the next settlement.
    pub traffic: Option<TrafficSampleInput>,
    /// An AI use; charged at once.
    pub ai: Option<AiUsageInput>,
}

impl RecordUsageInput {
    pub fn sample(self) -> Result<service::Sample, crate::service::ServiceError> {
        use crate::service::ServiceError;
        match (self.storage, self.traffic, self.ai) {
            (Some(s), None, None) => Ok(service::Sample::Storage { container: s.container_id, gb: s.gb.0 }),
            (None, Some(t), None) => {
                let bytes = t.bytes.0.normalize();
                let bytes = (bytes.scale() == 0).then(|| u64::try_from(bytes.mantissa()).ok()).flatten();
                let bytes = bytes.ok_or_else(|| ServiceError::bad_input("bytes must be a whole, non-negative number"))?;
                Ok(service::Sample::Traffic { container: t.container_id, bytes })
            }
            (None, None, Some(ai)) => Ok(service::Sample::Ai {
                kind: ai.kind.into(),
                container: ai.container_id,
                model: ai.model,
                tokens: ai.tokens.map(Into::into),
                tokens_key: None,
            }),
            _ => Err(ServiceError::bad_input("give exactly one of storage, traffic, ai")),
        }
    }
}

/// A metered container of an account.
#[derive(SimpleObject)]
pub struct Container {
    /// The product's id for the container.
    pub container_id: String,
    /// Its performance tier (`micro`, `small`, ...).
    pub tier: String,
    /// Whether the Code Supporter add-on runs with it.
    pub code_supporter: bool,
    /// Running, stopped, or inactive.
    pub state: ContainerState,
    /// Its storage as last sampled, in GB (10^9 bytes), as a decimal string ("6.5").
    pub storage_gb: DecimalValue,
    /// When its state or storage last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<service::ContainerView> for Container {
    fn from(c: service::ContainerView) -> Self {
        Container {
            container_id: c.id,
            tier: c.tier,
            code_supporter: c.code_supporter,
            state: c.state.into(),
            storage_gb: DecimalValue(c.storage_gb),
            updated_at: c.updated_at,
        }
    }
}

/// One priced line: a container's seconds in one UTC day, its add-on, storage, traffic, or an
/// AI use. Each line is computed exactly and rounded once, half up, to 0.000001 credit.
#[derive(SimpleObject)]
pub struct UsageLine {
    /// The container the line is for; null for storage (the account's, all containers
    /// together) and for an AI use that named none.
    pub container_id: Option<String>,
    /// What the line charges for.
    pub resource: UsageResource,
    /// AI uses only.
    pub kind: Option<AiKind>,
    /// Shown for Chat only.
    pub model: Option<String>,
    /// How much was used, in `unit`, exact, as a decimal string ("3600", "0.5").
    pub quantity: DecimalValue,
    /// The unit of `quantity`.
    pub unit: UsageUnit,
    /// Container and add-on lines: the start of the priced seconds (within one UTC day).
    /// Storage, traffic and AI lines: the instant they were priced, as `endedAt`.
    pub started_at: DateTime<Utc>,
    /// Container and add-on lines: the end of the priced seconds (exclusive). Storage,
    /// traffic and AI lines: the instant they were priced.
    pub ended_at: DateTime<Utc>,
    /// Its price, rounded once, half up, to 0.000001 credit.
    pub amount: CreditAmount,
}

impl From<LineView> for UsageLine {
    fn from(l: LineView) -> Self {
        let model = if l.kind == Some(rules::AiKind::Chat) { l.model } else { None };
        UsageLine {
            container_id: l.container,
            resource: l.resource.into(),
            kind: l.kind.map(Into::into),
            model,
            quantity: DecimalValue(l.quantity),
            unit: l.unit.into(),
            started_at: l.started_at,
            ended_at: l.ended_at,
            amount: credits(l.amount),
        }
    }
}

/// What a deduction of metered usage was triggered by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::ledger::metering::Trigger")]
pub enum SettlementTrigger {
    /// A container stopped: its time, add-on, and the account's storage and traffic so far.
    Stop,
    /// A container started: the storage used while it was stopped.
    Start,
    /// The 1st of the month: everything accrued by every container.
    Monthly,
    /// A plan change: everything accrued so far, at the old plan's quota.
    PlanChange,
    /// One AI use, charged as it happens.
    Ai,
}

/// One deduction of metered usage.
#[derive(SimpleObject)]
pub struct Settlement {
    /// The settlement's id.
    pub settlement_id: ID,
    /// What the deduction was triggered by.
    pub trigger: SettlementTrigger,
    /// What the usage came to: the sum of `lines`.
    pub total: CreditAmount,
    /// What was actually taken: less than `total` on overuse.
    pub charged: CreditAmount,
    /// `total - charged`: usage recorded but not paid (overuse); not taken from later credits.
    pub uncollected: CreditAmount,
    /// The priced lines.
    pub lines: Vec<UsageLine>,
    /// Containers stopped for overuse (the stop-all command is in the outbox).
    pub stopped_containers: Vec<String>,
}

impl From<SettlementView> for Settlement {
    fn from(s: SettlementView) -> Self {
        Settlement {
            settlement_id: ID(s.id.to_string()),
            trigger: s.trigger.into(),
            total: credits(s.total),
            charged: credits(s.charged),
            uncollected: credits(s.uncollected),
            lines: s.lines.into_iter().map(Into::into).collect(),
            stopped_containers: s.stopped_containers,
        }
    }
}

/// A container after a start or stop, and what it charged.
#[derive(SimpleObject)]
pub struct ContainerPayload {
    /// The container now.
    pub container: Container,
    /// What starting or stopping charged, if anything accrued.
    pub settlement: Option<Settlement>,
}

impl From<service::ContainerReceipt> for ContainerPayload {
    fn from(r: service::ContainerReceipt) -> Self {
        ContainerPayload { container: r.container.into(), settlement: r.settlement.map(Into::into) }
    }
}

/// What recording a usage sample charged.
#[derive(SimpleObject)]
pub struct RecordUsagePayload {
    /// AI uses are charged at once; storage and traffic accrue until the next settlement.
    pub settlement: Option<Settlement>,
}

/// What one resource came to in a month.
#[derive(SimpleObject)]
pub struct ResourceUsage {
    /// The resource.
    pub resource: UsageResource,
    /// The sum of its lines in the month's settlements.
    pub amount: CreditAmount,
}

/// A month's usage page: totals, per resource, per container for a chosen day, AI logs.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct UsageReport {
    /// The UTC month, "YYYY-MM".
    pub month: String,
    /// What the month's usage came to.
    pub total: CreditAmount,
    /// What was actually deducted; less than `total` when usage went uncollected.
    pub deducted: CreditAmount,
    /// `total - deducted`: usage recorded but not paid (overuse).
    pub uncollected: CreditAmount,
    /// What each resource came to, every resource once.
    pub resources: Vec<ResourceUsage>,
    #[graphql(skip)]
    pub account_id: i64,
}

#[ComplexObject]
impl UsageReport {
    /// Every container's lines on one UTC day.
    async fn container_day(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The UTC day, \"YYYY-MM-DD\".")] day: NaiveDate,
    ) -> ApiResult<Vec<UsageLine>> {
        Ok(app(ctx).ledger.container_day(self.account_id, day).await?.into_iter().map(Into::into).collect())
    }

    /// The month's AI uses, newest first: type, container, and the model for Chat only.
    async fn ai_logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size from the start of the list, or from `after`: 1 to 100. Not with `last`. With neither `first` nor `last` a page holds 20: from the start, or back from `before` when `before` alone is given."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "An opaque cursor of this list (an edge's `cursor`; `pageInfo.endCursor` for the next page): the page starts after it. A cursor of another list, or a plain number (the old format), is BAD_USER_INPUT."
        )]
        after: Option<String>,
        #[graphql(
            desc = "Page size from the end of the list, or back from `before`: 1 to 100. The nodes still come in the list's order. Not with `first`."
        )]
        last: Option<i32>,
        #[graphql(
            desc = "An opaque cursor of this list (`pageInfo.startCursor` for the page before): the page ends before it. A cursor of another list, or a plain number (the old format), is BAD_USER_INPUT."
        )]
        before: Option<String>,
    ) -> ApiResult<Paged<UsageLine>> {
        let window = paging::window(List::AiLogs, first, after.as_deref(), last, before.as_deref())?;
        let page = app(ctx).ledger.ai_logs(self.account_id, &self.month, &window).await?;
        let counted = Counted::AiLogs { account_id: self.account_id, month: self.month.clone() };
        connection(List::AiLogs, page, counted, |(id, line)| Ok((id, UsageLine::from(line))))
    }
}

impl UsageReport {
    pub fn new(account_id: i64, report: service::UsageReport) -> UsageReport {
        UsageReport {
            month: report.month,
            total: credits(report.total),
            deducted: credits(report.deducted),
            uncollected: credits(report.uncollected),
            resources: report
                .by_resource
                .into_iter()
                .map(|(resource, amount)| ResourceUsage { resource: resource.into(), amount: credits(amount) })
                .collect(),
            account_id,
        }
    }
}
