//! The whole-ledger audit on request (admin): `startAudit` queues it, a worker runs it
//! (`AUDIT_LEDGER`), `auditRuns` shows where each stands and what it found.

use crate::graphql::context::{app, caller, require_admin};
use crate::graphql::error::ApiResult;
use crate::service::audits::AuditRunView;
use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};

/// Where an audit run stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::service::audits::AuditStatus")]
pub enum AuditStatus {
    /// Waiting for a worker (the `AUDIT_LEDGER` job looks every 10 seconds).
    Queued,
    /// A worker is auditing now.
    Running,
    /// Finished: credits are conserved and every lot, entry and balance equals the journal.
    Clean,
    /// Finished, and found problems (`problems`).
    Problems,
    /// The audit could not finish (the database failed); `error` says so. Start another.
    Failed,
}

/// One whole-ledger audit an operator asked for.
pub struct AuditRun(pub AuditRunView);

#[Object]
impl AuditRun {
    /// The run's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where it stands.
    async fn status(&self) -> AuditStatus {
        self.0.status.into()
    }

    /// The operator who asked (the admin token's subject).
    async fn requested_by(&self) -> &str {
        &self.0.requested_by
    }

    /// When it was asked for.
    async fn requested_at(&self) -> DateTime<Utc> {
        self.0.requested_at
    }

    /// When a worker took it; null while queued.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    /// When it finished; null until then.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// Accounts audited; null until it finished.
    async fn accounts(&self) -> Option<i64> {
        self.0.accounts
    }

    /// Lots audited, open and closed; null until it finished.
    async fn lots(&self) -> Option<i64> {
        self.0.lots
    }

    /// Journal entries audited; null until it finished.
    async fn entries(&self) -> Option<i64> {
        self.0.entries
    }

    /// What disagrees, one line each (at most 50 of each kind, then a count of the rest);
    /// empty unless the status is PROBLEMS.
    async fn problems(&self) -> &[String] {
        &self.0.problems
    }

    /// Why a FAILED run could not finish; null otherwise.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}

/// Runs shown when `first` is not given.
const DEFAULT_AUDIT_RUNS: i32 = 10;

#[derive(Default)]
pub struct AuditsQuery;

#[Object]
impl AuditsQuery {
    /// The latest whole-ledger audits, newest first (admin).
    async fn audit_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many: 1 to 50; 10 when omitted or null.")] first: Option<i32>,
    ) -> ApiResult<Vec<AuditRun>> {
        require_admin(ctx)?;
        let limit = u64::try_from(first.unwrap_or(DEFAULT_AUDIT_RUNS)).unwrap_or(0);
        Ok(app(ctx).ledger.audit_runs(limit).await?.into_iter().map(AuditRun).collect())
    }
}

#[derive(Default)]
pub struct AuditsMutation;

#[Object]
impl AuditsMutation {
    /// Queues the whole-ledger audit (the same checks as `credits audit`) for a worker, and
    /// answers the run at once, QUEUED (admin): it reads every lot, entry and line, so it never
    /// runs inside a request. Follow it with `auditRuns`. While one is queued or running,
    /// answers that one instead of queueing another.
    async fn start_audit(&self, ctx: &Context<'_>) -> ApiResult<AuditRun> {
        require_admin(ctx)?;
        let app = app(ctx);
        let requested_by = caller(ctx)?.actor().unwrap_or(crate::auth::UNNAMED_ADMIN).to_string();
        Ok(AuditRun(app.ledger.request_audit(&requested_by, app.clock.now()).await?))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_page_is_within_the_bound() {
        assert!(u64::try_from(super::DEFAULT_AUDIT_RUNS).unwrap() <= crate::service::audits::MAX_AUDIT_RUNS);
    }
}
