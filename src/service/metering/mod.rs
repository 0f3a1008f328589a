//! Metered usage (domain.md §4 "When metered usage is charged", arkain): containers run at a
//! tier with add-ons, the account stores data and moves traffic, and AI is used; each is priced
//! by `ledger::pricing` and settled by one deduction at the moments the spec names: a stop (the
//! session's time, add-on, storage and traffic), a start (the storage used while stopped), the
//! 1st of the month (everything, through the worker), a plan change (everything, at the old
//! plan's quota), and each AI use. Every settlement runs under the account's lock and moves the
//! meters it charged forward, so a stop racing the monthly settlement charges each second once.
//!
//! Overuse: a settlement that exceeds what the account can spend takes what there is, records
//! the rest as uncollected usage, stops every running container (charging their time too) and
//! writes a stop-all-containers command to the outbox in the same transaction; containers that
//! hold storage become inactive.

mod containers;
mod reports;
mod settle;
mod usage;

pub use reports::{UsageReport, parse_month};
pub(crate) use settle::settle_all;
pub use usage::UsageRequest;

pub use crate::ledger::metering::{AiKind, CODE_SUPPORTER};

use crate::entity::account;
use crate::ledger::Credits;
use crate::ledger::metering::{ContainerState, MeteredContainer, Resource, Trigger, Unit, UsageLine};
use crate::ledger::pricing::{Metering, TokenUsage};
use crate::program::Program;
use crate::service::ServiceError;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The most storage one container reports: 1 PB, far above any plan, far below overflow.
pub const MAX_STORAGE_GB: u64 = 1_000_000;
/// The most traffic one sample reports: 1 PB.
pub const MAX_TRAFFIC_BYTES: u64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Sample {
    /// The container's storage now, in GB (decimal, 1 GB = 10^9 bytes).
    Storage { container: String, gb: Decimal },
    /// Bytes the container moved since the last sample.
    Traffic { container: String, bytes: u64 },
    /// One AI use: tokens for AI Supporter and Chat, none for Snap (priced per use).
    Ai {
        kind: AiKind,
        container: Option<String>,
        model: Option<String>,
        #[serde(skip)]
        tokens: Option<TokenUsage>,
        tokens_key: Option<[u64; 4]>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    pub container: Option<String>,
    pub resource: Resource,
    pub kind: Option<AiKind>,
    pub model: Option<String>,
    pub quantity: Decimal,
    pub unit: Unit,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub amount: Credits,
}

impl From<&UsageLine> for LineView {
    fn from(l: &UsageLine) -> Self {
        LineView {
            container: l.container.clone(),
            resource: l.resource,
            kind: l.kind,
            model: l.model.clone(),
            quantity: l.quantity,
            unit: l.unit,
            started_at: l.started_at,
            ended_at: l.ended_at,
            amount: l.amount,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementView {
    pub id: i64,
    pub trigger: Trigger,
    pub total: Credits,
    pub charged: Credits,
    pub uncollected: Credits,
    pub lines: Vec<LineView>,
    /// Running containers this settlement stopped for overuse.
    pub stopped_containers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerView {
    pub id: String,
    pub tier: String,
    pub code_supporter: bool,
    pub state: ContainerState,
    pub storage_gb: Decimal,
    pub updated_at: DateTime<Utc>,
}

impl From<&MeteredContainer> for ContainerView {
    fn from(c: &MeteredContainer) -> Self {
        ContainerView {
            id: c.external_id.clone(),
            tier: c.tier.clone(),
            code_supporter: c.code_supporter,
            state: c.state,
            storage_gb: Decimal::from_i128_with_scale(i128::from(c.storage_bytes), 9).normalize(),
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReceipt {
    pub container: ContainerView,
    pub settlement: Option<SettlementView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReceipt {
    pub settlement: Option<SettlementView>,
}

fn metering(program: &Program) -> Result<&Metering, ServiceError> {
    program.metering.as_ref().ok_or_else(|| ServiceError::FeatureDisabled("this program meters no containers".into()))
}

fn quota_gb(program: &Program, account: &account::Model) -> Decimal {
    program.plan(&account.plan).and_then(|p| p.storage_quota_gb).unwrap_or(Decimal::ZERO)
}
