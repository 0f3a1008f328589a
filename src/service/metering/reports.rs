//! Reports: a month's usage page, a day's container logs, and the AI logs.

use super::LineView;
use crate::entity::{container, usage_line};
use crate::ledger::Credits;
use crate::service::{Ledger, ServiceError};
use crate::store::metering as meters;
use rust_decimal::Decimal;
use std::str::FromStr;

/// A month's usage page (domain.md §7): what was used, what was deducted, and the difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub month: String,
    /// What the month's usage came to.
    pub total: Credits,
    /// What was actually taken from the account.
    pub deducted: Credits,
    /// Usage that could not be charged (overuse).
    pub uncollected: Credits,
    /// Usage per resource: container, addon, storage, traffic, ai.
    pub by_resource: Vec<(String, Credits)>,
}

/// "2026-11", checked.
pub fn parse_month(month: &str) -> Result<String, ServiceError> {
    chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| month.len() == 7)
        .map(|_| month.to_string())
        .ok_or_else(|| ServiceError::bad_input(format!("month {month:?} is not YYYY-MM")))
}

fn line_view(line: &usage_line::Model, containers: &[container::Model]) -> Result<LineView, ServiceError> {
    Ok(LineView {
        container: line.container_id.and_then(|id| containers.iter().find(|c| c.id == id)).map(|c| c.external_id.clone()),
        resource: line.resource.clone(),
        kind: line.kind.clone(),
        model: line.model.clone(),
        quantity: Decimal::from_str(&line.quantity).map_err(|e| anyhow::anyhow!("usage line {}: {e}", line.id))?,
        unit: line.unit.clone(),
        started_at: line.started_at,
        ended_at: line.ended_at,
        amount: Credits::from_micros(line.amount_micros),
    })
}

impl Ledger {
    pub async fn usage_report(&self, account_id: i64, month: &str) -> Result<UsageReport, ServiceError> {
        let month = parse_month(month)?;
        let settlements = meters::settlements_in(&self.db, account_id, &month).await?;
        let micros = |f: fn(&crate::entity::settlement::Model) -> i64| Credits::from_micros(settlements.iter().map(f).sum());
        let ids: Vec<i64> = settlements.iter().map(|s| s.id).collect();
        let mut by_resource: Vec<(String, Credits)> =
            ["container", "addon", "storage", "traffic", "ai"].iter().map(|r| (r.to_string(), Credits::ZERO)).collect();
        for line in meters::lines_of(&self.db, &ids).await? {
            if let Some((_, sum)) = by_resource.iter_mut().find(|(r, _)| *r == line.resource) {
                *sum = sum.checked_add(Credits::from_micros(line.amount_micros)).expect("a month's usage fits");
            }
        }
        Ok(UsageReport {
            month,
            total: micros(|s| s.total_micros),
            deducted: micros(|s| s.charged_micros),
            uncollected: micros(|s| s.uncollected_micros),
            by_resource,
        })
    }

    /// Every container line of one UTC day: the per-container logs of the usage page.
    pub async fn container_day(&self, account_id: i64, day: chrono::NaiveDate) -> Result<Vec<LineView>, ServiceError> {
        let containers = meters::containers(&self.db, account_id).await?;
        meters::lines_on_day(&self.db, account_id, &day.to_string()).await?.iter().map(|l| line_view(l, &containers)).collect()
    }

    /// AI uses of a month, newest first, with their line ids for paging.
    pub async fn ai_logs(
        &self,
        account_id: i64,
        month: &str,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, LineView)>, ServiceError> {
        let month = parse_month(month)?;
        let containers = meters::containers(&self.db, account_id).await?;
        meters::ai_lines(&self.db, account_id, &month, before, limit)
            .await?
            .iter()
            .map(|l| Ok((l.id, line_view(l, &containers)?)))
            .collect()
    }
}
