//! The operator's admin API for the machinery (issue 23): scheduled jobs (`scheduledJobs`,
//! `jobRuns`, `runJob`) and the webhook outbox (`outbox`, `redeliverEvent`). Admin only: a user
//! or service token is `FORBIDDEN`.

use crate::graphql::context::{app, require_admin};
use crate::graphql::error::ApiResult;
use crate::graphql::paging::{Counted, Paged, connection};
use crate::ledger::schedule::Cadence;
use crate::service::ServiceError;
use crate::service::operations::{self, JobRunView, OutboxEventView, ScheduledJobView};
use crate::service::paging::{self, List};
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A scheduled job, as the workers run it (and `credits jobs` lists it).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "workers::Job")]
pub enum JobName {
    /// Continuously: writes off lots past their expiry, in bounded batches.
    ExpireLots,
    /// Continuously: releases reservations nobody captured or released by their deadline.
    ExpireReservations,
    /// Daily at 00:00 UTC: writes off yesterday's daily free and lucky credits, then draws the
    /// day's lucky drop for each paid subscriber.
    ResetDailyCredits,
    /// Monthly, on the 1st: settles what every metered account accrued in the month that ended.
    SettleMonthlyUsage,
    /// Monthly, on the 1st: the monthly plan credits of every account on a calendar-month plan.
    GrantMonthlyPlanCredits,
    /// Continuously: subscription credits whose month from the plan's start came round.
    RenewDueSubscriptions,
    /// Daily: the sweep behind the continuous renewal, for subscriptions it does not see.
    RenewSubscriptions,
    /// Continuously: referral purchase bonuses whose hold has passed.
    ReleaseReferralBonuses,
    /// Hourly: forgets idempotency keys past their retention.
    PurgeIdempotencyKeys,
    /// Hourly: deletes operational rows past their retention (ticks, delivered events, rate
    /// snapshots, coupon guesses, old period markers).
    PurgeOperationalRows,
    /// Hourly: tells account holders of credits that expire soon, once per lot.
    NotifyExpiringCredits,
    /// Every 5 minutes: snapshots each workload's market rate.
    SnapshotMarketRates,
    /// Every 5 seconds: sends due outbox events as signed webhooks, retrying failures.
    DeliverWebhooks,
    /// Every minute: expires pending purchases not paid within the program's
    /// `pendingPurchaseLifetime`, each dated at its own expiry instant.
    ExpirePendingPurchases,
    /// Every 10 seconds: runs the whole-ledger audit an operator asked for (`startAudit`).
    AuditLedger,
    /// Every 10 seconds: charges pending auto top-ups to the card the product saved, through
    /// Stripe (only with a Stripe key).
    ChargeAutoTopUps,
    /// Hourly: on PostgreSQL, creates the journal's monthly partitions for this month and the
    /// next two (nothing on SQLite).
    PrepareJournalMonths,
}

/// How a job's work is keyed.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum JobCadence {
    /// Runs whenever it ticks, on whatever is due; keyed by nothing, so it has no periods in
    /// `jobRuns`.
    Continuous,
    /// Once per UTC day (periods like "2026-02-01"), missed days caught up in order.
    Daily,
    /// Once per UTC month (periods like "2026-02"), from the 1st 00:00.
    Monthly,
}

impl From<Option<Cadence>> for JobCadence {
    fn from(cadence: Option<Cadence>) -> JobCadence {
        match cadence {
            None => JobCadence::Continuous,
            Some(Cadence::Daily) => JobCadence::Daily,
            Some(Cadence::Monthly) => JobCadence::Monthly,
        }
    }
}

/// Where a job's period stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::service::operations::JobRunStatus")]
pub enum JobRunStatus {
    /// Started, not finished: running now, or stopped by a crash; the next run resumes it.
    Running,
    /// Every batch done: this period is never run again.
    Done,
    /// The last attempt failed (see `lastError`); the next run resumes from where it stopped.
    Failed,
}

/// One period of a periodic job.
pub struct JobRun(JobRunView);

/// One period of a periodic job: how its run went (admin).
#[Object]
impl JobRun {
    /// The period: a UTC day ("2026-02-01") or month ("2026-02").
    async fn period(&self) -> &str {
        &self.0.period
    }
    /// RUNNING, DONE or FAILED.
    async fn status(&self) -> JobRunStatus {
        self.0.status.into()
    }
    /// Items handled in this period (accounts swept), each once whatever the retries.
    async fn items(&self) -> i64 {
        i64::try_from(self.0.items).unwrap_or(i64::MAX)
    }
    /// Batches done (the sweep's cursor moved once per batch).
    async fn batches(&self) -> i64 {
        i64::try_from(self.0.batches).unwrap_or(i64::MAX)
    }
    /// Attempts at this period: 1, plus one per failure.
    async fn attempts(&self) -> i64 {
        i64::try_from(self.0.attempts).unwrap_or(i64::MAX)
    }
    /// Why the last failed attempt failed (the account it failed on, and the error), if one did.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When the period's first attempt started.
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    /// The last change: a batch, a failure, or the end.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// When the period was done; null until then.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// A scheduled job, for a dashboard: its schedule, when it runs next, its latest period.
pub struct ScheduledJob(ScheduledJobView);

/// A scheduled job, for a dashboard: its schedule, when it runs next, its latest period (admin).
#[Object]
impl ScheduledJob {
    /// The job.
    async fn name(&self) -> JobName {
        self.0.job.into()
    }
    /// How its work is keyed: CONTINUOUS, DAILY or MONTHLY.
    async fn cadence(&self) -> JobCadence {
        self.0.cadence.into()
    }
    /// When the workers tick it: a cron expression with seconds first, in UTC
    /// ("5 0 * * * *": five seconds past each hour). A periodic job ticks more often than its
    /// cadence, so a process started late catches up soon; each period still runs once.
    async fn schedule(&self) -> &str {
        self.0.schedule
    }
    /// When its next period starts; null for a continuous job.
    async fn next_start(&self) -> Option<DateTime<Utc>> {
        self.0.next_start
    }
    /// Its latest period; null for a continuous job, or a periodic one that never ran.
    async fn latest_run(&self) -> Option<JobRun> {
        self.0.latest_run.clone().map(JobRun)
    }
}

/// What `runJob` did.
#[derive(SimpleObject)]
pub struct RunJobPayload {
    /// The job that ran.
    pub job: JobName,
    /// The instant it ran at: the service clock's now.
    pub ran_at: DateTime<Utc>,
    /// The periods this run completed, oldest first; empty for a continuous job, and for a
    /// periodic one whose due periods were already done (they are never redone).
    pub periods: Vec<String>,
    /// Items handled by this run: lots, bonuses, accounts swept, events sent. 0 when there was
    /// nothing to do.
    pub items: i64,
}

/// Where an outbox event stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::service::operations::OutboxStatus")]
pub enum OutboxStatus {
    /// Not delivered yet. As the `outbox` filter, the whole backlog (FAILED events included);
    /// as an event's `status`, one that has not failed yet.
    Pending,
    /// Not delivered, and at least one attempt failed (see `lastError`): retried with backoff.
    Failed,
    /// Acknowledged by the receiver with a 2xx.
    Delivered,
}

/// An event for another system, delivered as a signed webhook.
pub struct OutboxEvent(OutboxEventView);

/// An event for another system (a refund for the payment system, a notice, a stop-container
/// command), delivered as a signed webhook (admin).
#[Object]
impl OutboxEvent {
    /// The event's id in the outbox: what `redeliverEvent` takes.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The id receivers see (`Credits-Event-Id` and the body's `id`), the same on every attempt
    /// and redelivery: they de-duplicate on it.
    async fn event_id(&self) -> &str {
        &self.0.event_id
    }
    /// What happened: "purchase.refunded", ...
    async fn topic(&self) -> &str {
        &self.0.topic
    }
    /// The product's own id of the account the event is about; null if it is about none.
    async fn account_id(&self) -> Option<&str> {
        self.0.account.as_deref()
    }
    /// When the change it announces committed.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// PENDING, FAILED or DELIVERED.
    async fn status(&self) -> OutboxStatus {
        self.0.status.into()
    }
    /// Failed attempts so far.
    async fn attempts(&self) -> i32 {
        i32::try_from(self.0.attempts).unwrap_or(i32::MAX)
    }
    /// When it is tried next (its retry, or the end of a worker's lease while it is being sent);
    /// null when it is due now, or delivered.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    /// Why the last failed attempt failed ("the receiver answered HTTP 500", ...), if one did.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When the receiver acknowledged it; null until then.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    /// The event's data as a JSON text: the body's `data`.
    async fn payload(&self) -> &str {
        &self.0.payload
    }
}

fn parse_event_id(id: &ID) -> Result<i64, ServiceError> {
    match id.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ServiceError::NotFound(format!("no outbox event {:?}", id.as_str()))),
    }
}

/// Periods `jobRuns` answers when not told.
const DEFAULT_JOB_RUNS: i32 = 12;

#[derive(Default)]
pub struct OperationsQuery;

#[Object]
impl OperationsQuery {
    /// Every scheduled job with its cadence, next start and latest period, in the workers'
    /// order (admin).
    async fn scheduled_jobs(&self, ctx: &Context<'_>) -> ApiResult<Vec<ScheduledJob>> {
        require_admin(ctx)?;
        let app = app(ctx);
        let jobs = app.ledger.scheduled_jobs(app.clock.now()).await?;
        Ok(jobs.into_iter().map(ScheduledJob).collect())
    }

    /// A periodic job's recent periods, newest first: status, items, batches, attempts, last
    /// error (admin). Empty for a continuous job, which has no periods.
    async fn job_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job.")] job: JobName,
        #[graphql(desc = "How many periods, newest first: 1 to 100; 12 (a year of a monthly job) when omitted or null.")] limit: Option<
            i32,
        >,
    ) -> ApiResult<Vec<JobRun>> {
        require_admin(ctx)?;
        let limit = u64::try_from(limit.unwrap_or(DEFAULT_JOB_RUNS)).unwrap_or(0);
        let runs = app(ctx).ledger.job_runs(job.into(), limit).await?;
        Ok(runs.into_iter().map(JobRun).collect())
    }

    /// Outbox events, newest first: all of them, or those of one status, with attempts and the
    /// last error (admin).
    async fn outbox(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Only events of this status: PENDING is the whole backlog (every event not delivered yet, FAILED ones included), FAILED those with at least one failed attempt, DELIVERED those acknowledged. All events when omitted."
        )]
        status: Option<OutboxStatus>,
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
    ) -> ApiResult<Paged<OutboxEvent>> {
        require_admin(ctx)?;
        let status = status.map(operations::OutboxStatus::from);
        let window = paging::window(List::Outbox, first, after.as_deref(), last, before.as_deref())?;
        let page = app(ctx).ledger.outbox_page(status, &window).await?;
        connection(List::Outbox, page, Counted::Outbox { status }, |event| Ok((event.id, OutboxEvent(event))))
    }
}

#[derive(Default)]
pub struct OperationsMutation;

#[Object]
impl OperationsMutation {
    /// Runs one scheduled job now, at the service clock's now, to completion, and answers what
    /// it did (admin). The exactly-once rules are the workers': a period already done is not
    /// redone (the answer then says 0 items and no periods), a failed one is resumed. While an
    /// operator's run of the same job is still going in this process, `INVALID_STATE`. A job
    /// that fails answers its error, and `jobRuns` shows it on the period.
    async fn run_job(&self, ctx: &Context<'_>, #[graphql(desc = "The job to run.")] job: JobName) -> ApiResult<RunJobPayload> {
        require_admin(ctx)?;
        let app = app(ctx);
        let (ran_at, report) = app.ledger.run_job_now(job.into(), app.clock.now()).await?;
        Ok(RunJobPayload { job, ran_at, periods: report.periods, items: i64::try_from(report.items).unwrap_or(i64::MAX) })
    }

    /// Makes one outbox event due now and sends it at once to the configured webhook receiver; answers the event as it then stands (DELIVERED, or FAILED with the new error,
    /// retried with backoff from then on). A delivered event is sent again under the same
    /// `eventId`: receivers de-duplicate on it, so pressing twice is harmless (admin). Without a
    /// webhook receiver (`CREDITS_WEBHOOK_URL`), `FEATURE_DISABLED`; an unknown id, `NOT_FOUND`.
    async fn redeliver_event(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The event's `id` (not its `eventId`).")] id: ID,
    ) -> ApiResult<OutboxEvent> {
        require_admin(ctx)?;
        let app = app(ctx);
        if app.ledger.webhooks.is_none() {
            return Err(ServiceError::FeatureDisabled("webhooks are off: no receiver is configured (CREDITS_WEBHOOK_URL)".into()).into());
        }
        let id = parse_event_id(&id)?;
        Ok(OutboxEvent(app.ledger.redeliver_event(id, app.clock.now()).await?))
    }
}
