//! Moving a test clock (a deployment started with `clock = "test"`).

use crate::graphql::context::{app, require_admin};
use crate::graphql::error::ApiResult;
use crate::ledger::test_clock::Advance;
use crate::service::ServiceError;
use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// What an advance of the test clock did.
#[derive(SimpleObject)]
pub struct AdvanceClockPayload {
    /// Where the clock stood before.
    pub from: DateTime<Utc>,
    /// Where it stands now (also `program { now }`).
    pub now: DateTime<Utc>,
    /// The instants it stopped at to run what fell due: each UTC midnight crossed, then `now`.
    pub stops: i32,
    /// Each scheduled job that did something on the way, in the order the jobs run at a stop.
    pub ran: Vec<ClockJobRun>,
}

/// One scheduled job's work during an advance, summed over its stops.
#[derive(SimpleObject)]
pub struct ClockJobRun {
    /// The job, as `credits jobs` names it (`ResetDailyCredits`, `GrantMonthlyPlanCredits`, ...).
    pub job: String,
    /// The periods it completed, oldest first: UTC days ("2026-02-01") or months ("2026-02").
    pub periods: Vec<String>,
    /// What it handled: accounts swept, lots written off, holds released, events sent.
    pub items: i64,
}

#[derive(Default)]
pub struct ClockMutation;

#[Object]
impl ClockMutation {
    /// Moves a test clock forward, to an instant or by a length of time, and runs what falls
    /// due on the way as if on time: at each UTC midnight crossed, then at the target, every
    /// scheduled job runs at that instant (daily resets, expiries, monthly grants and
    /// settlements, renewals, hold deadlines, referral holds, webhook retries), each period
    /// once. Answers when that work is done. At most 400 days at once; never backwards
    /// (`BAD_USER_INPUT`). Only on a deployment started with `clock = "test"`, else
    /// `FEATURE_DISABLED` (admin).
    async fn advance_clock(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The instant to move to (after the clock's). Give this or `by`.")] to: Option<DateTime<Utc>>,
        #[graphql(desc = "How far to move: \"36 hours\", \"3 days\", \"1 month\" (calendar months), or \"end of month\" \
                          (the first instant of next month). Give this or `to`.")]
        by: Option<String>,
    ) -> ApiResult<AdvanceClockPayload> {
        require_admin(ctx)?;
        let advance = match (to, by) {
            (Some(to), None) => Advance::To(to),
            (None, Some(by)) => Advance::By(by.parse().map_err(|e| ServiceError::bad_input(format!("by: {e}")))?),
            _ => return Err(ServiceError::bad_input("give either `to` or `by`").into()),
        };
        // The advance runs on its own task: a request that times out does not stop it halfway
        // (it would resume on the next advance anyway, but an answer-less half is confusing).
        let ledger = app(ctx).ledger.clone();
        let report = tokio::spawn(async move { ledger.advance_clock(advance).await })
            .await
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("the advance stopped: {e}")))??;
        Ok(AdvanceClockPayload {
            from: report.from,
            now: report.to,
            stops: i32::try_from(report.stops).unwrap_or(i32::MAX),
            ran: report
                .jobs
                .into_iter()
                .map(|(job, ran)| ClockJobRun {
                    job: job.name().to_string(),
                    periods: ran.periods,
                    items: i64::try_from(ran.items).unwrap_or(i64::MAX),
                })
                .collect(),
        })
    }
}
