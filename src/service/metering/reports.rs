//! Reports: a month's usage page, a day's container logs, and the AI logs.

use super::LineView;
use crate::ledger::Credits;
use crate::ledger::metering::{MeteredContainer, Resource};
use crate::service::paging::{Page, Window};
use crate::service::{Engine, ServiceError};
use crate::store::metering::{self as meters, StoredLine};

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
    /// Usage per resource, every resource in the order of `Resource::ALL`.
    pub by_resource: Vec<(Resource, Credits)>,
}

/// "2026-11", checked.
pub fn parse_month(month: &str) -> Result<String, ServiceError> {
    chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| month.len() == 7)
        .map(|_| month.to_string())
        .ok_or_else(|| ServiceError::bad_input(format!("month {month:?} is not YYYY-MM")))
}

/// A stored line as the reports show it, with its container's id in the product.
fn line_view(stored: StoredLine, containers: &[MeteredContainer]) -> LineView {
    let mut line = stored.line;
    line.container = line.container_id.and_then(|id| containers.iter().find(|c| c.id == id)).map(|c| c.external_id.clone());
    LineView::from(&line)
}

impl Engine {
    pub async fn usage_report(&self, account_id: i64, month: &str) -> Result<UsageReport, ServiceError> {
        let month = parse_month(month)?;
        let settlements = meters::settlements_in(&self.db, account_id, &month).await?;
        let micros = |f: fn(&crate::entity::settlement::Model) -> i64| Credits::from_micros(settlements.iter().map(f).sum());
        let ids: Vec<i64> = settlements.iter().map(|s| s.id).collect();
        let mut by_resource: Vec<(Resource, Credits)> = Resource::ALL.iter().map(|r| (*r, Credits::ZERO)).collect();
        for stored in meters::lines_of(&self.db, &ids).await? {
            if let Some((_, sum)) = by_resource.iter_mut().find(|(r, _)| *r == stored.line.resource) {
                *sum = sum.checked_add(stored.line.amount).expect("a month's usage fits");
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
        let containers = meters::metered_containers(&self.db, account_id).await?;
        Ok(meters::lines_on_day(&self.db, account_id, &day.to_string()).await?.into_iter().map(|l| line_view(l, &containers)).collect())
    }

    /// AI uses of a month, newest first, with their line ids for the cursors.
    pub async fn ai_logs(&self, account_id: i64, month: &str, window: &Window) -> Result<Page<(i64, LineView)>, ServiceError> {
        let month = parse_month(month)?;
        let containers = meters::metered_containers(&self.db, account_id).await?;
        let lines = meters::ai_lines(&self.db, account_id, &month, window).await?;
        lines.try_map(|l| Ok((l.id, line_view(l, &containers))))
    }

    /// How many AI uses the month holds.
    pub async fn ai_logs_count(&self, account_id: i64, month: &str) -> Result<u64, ServiceError> {
        let month = parse_month(month)?;
        Ok(meters::ai_lines_count(&self.db, account_id, &month).await?)
    }
}
