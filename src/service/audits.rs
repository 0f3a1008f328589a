//! The whole-ledger audit on request (issue 23): an operator asks (`startAudit`), a worker runs
//! it (the `AuditLedger` job), and the result is kept for the console to show. The audit reads
//! every lot, entry and line, so it never runs inside a request: a request only queues it.
//!
//! A run is taken by one worker with a conditional update (queued to running), so workers of a
//! fleet never audit the same request twice at once; a run whose worker died is taken again
//! once it has been running longer than `STALE_AFTER`.

use crate::entity::audit_run;
use crate::service::{Engine, ServiceError};
use crate::store::{self, audit_runs};
use chrono::{DateTime, Duration, Utc};

/// A run still "running" this long after it started lost its worker, and is taken again.
pub const STALE_AFTER: Duration = Duration::hours(1);
/// The most runs `audit_runs` answers.
pub const MAX_AUDIT_RUNS: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStatus {
    Queued,
    Running,
    /// Finished: conservation holds and every balance equals the journal.
    Clean,
    /// Finished, and found problems.
    Problems,
    /// The audit itself could not finish (the database failed); run it again.
    Failed,
}

impl AuditStatus {
    fn parse(text: &str) -> Result<AuditStatus, ServiceError> {
        Ok(match text {
            audit_runs::QUEUED => AuditStatus::Queued,
            audit_runs::RUNNING => AuditStatus::Running,
            audit_runs::CLEAN => AuditStatus::Clean,
            audit_runs::PROBLEMS => AuditStatus::Problems,
            audit_runs::FAILED => AuditStatus::Failed,
            other => return Err(ServiceError::Internal(anyhow::anyhow!("an audit run with the unknown status {other:?}"))),
        })
    }
}

/// An audit run as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRunView {
    pub id: i64,
    pub status: AuditStatus,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub accounts: Option<i64>,
    pub lots: Option<i64>,
    pub entries: Option<i64>,
    pub problems: Vec<String>,
    pub error: Option<String>,
}

impl AuditRunView {
    fn of(row: audit_run::Model) -> Result<AuditRunView, ServiceError> {
        let problems = serde_json::from_str(&row.problems)
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("audit run {}: its problems are not a JSON list: {e}", row.id)))?;
        Ok(AuditRunView {
            id: row.id,
            status: AuditStatus::parse(&row.status)?,
            requested_by: row.requested_by,
            requested_at: row.requested_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            accounts: row.accounts,
            lots: row.lots,
            entries: row.entries,
            problems,
            error: row.error,
        })
    }
}

impl Engine {
    /// Queues a whole-ledger audit for `requested_by`; if one is queued or running already,
    /// answers that one instead (a double click does not queue two).
    pub async fn request_audit(&self, requested_by: &str, now: DateTime<Utc>) -> Result<AuditRunView, ServiceError> {
        if let Some(unfinished) = audit_runs::unfinished(&self.db).await? {
            return AuditRunView::of(unfinished);
        }
        AuditRunView::of(audit_runs::insert(&self.db, requested_by, crate::ledger::time::truncate(now)).await?)
    }

    /// The newest `limit` runs (at most `MAX_AUDIT_RUNS`), newest first.
    pub async fn audit_runs(&self, limit: u64) -> Result<Vec<AuditRunView>, ServiceError> {
        if !(1..=MAX_AUDIT_RUNS).contains(&limit) {
            return Err(ServiceError::bad_input(format!("ask for 1 to {MAX_AUDIT_RUNS} audit runs")));
        }
        audit_runs::latest(&self.db, limit).await?.into_iter().map(AuditRunView::of).collect()
    }

    /// Runs the oldest requested audit, if any is due: 1 if one ran (whatever it found), 0 if
    /// none was waiting or another worker took it first.
    pub async fn run_requested_audit(&self, now: DateTime<Utc>) -> Result<u64, ServiceError> {
        let now = crate::ledger::time::truncate(now);
        let Some(due) = audit_runs::next_due(&self.db, now - STALE_AFTER).await? else { return Ok(0) };
        if !audit_runs::take(&self.db, &due, now).await? {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let report = crate::audit::run_with_program(&self.db, &self.program, now).await;
        // Dated by the clock the run was taken at (a test clock's instant, on one), plus the time
        // it took.
        let finished = crate::ledger::time::truncate(now + Duration::from_std(started.elapsed()).unwrap_or(Duration::zero()));
        let problems;
        let outcome = match &report {
            Ok(report) => {
                problems = serde_json::to_string(&report.problems).map_err(|e| ServiceError::Internal(e.into()))?;
                audit_runs::Outcome {
                    status: if report.is_clean() { audit_runs::CLEAN } else { audit_runs::PROBLEMS },
                    accounts: Some(report.accounts),
                    lots: Some(report.lots),
                    entries: Some(report.entries),
                    problems: &problems,
                    error: None,
                }
            }
            Err(error) => {
                tracing::warn!(audit.run = due.id, error = %error, "an operator's audit failed");
                audit_runs::Outcome {
                    status: audit_runs::FAILED,
                    accounts: None,
                    lots: None,
                    entries: None,
                    problems: "[]",
                    error: Some("the database failed during the audit; run it again"),
                }
            }
        };
        let status = outcome.status;
        if !store::audit_runs::finish(&self.db, due.id, now, outcome, finished).await? {
            tracing::warn!(audit.run = due.id, "an audit run was taken over by another worker before it finished; its result is theirs");
        }
        tracing::info!(audit.run = due.id, status, "audit run finished");
        Ok(1)
    }
}
