//! Use cases: load what the rules need, decide with `ledger`, persist with `store`, in one
//! transaction each.

pub mod accounts;
pub mod ad_rewards;
pub mod admin_log;
pub mod audits;
pub mod auto_topup;
pub mod balance_at;
pub mod batch;
pub mod benefits;
pub mod checkin;
pub mod clock;
pub mod console_links;
pub mod corrections;
pub mod coupons;
pub mod daily_free;
pub mod error;
pub mod executor;
pub mod expiry;
pub mod export;
pub mod gifts;
pub mod input;
pub mod jobs;
pub mod journal_months;
pub mod keyed;
pub mod lucky;
pub mod market;
pub mod metadata;
pub mod metering;
pub mod moved;
pub mod notices;
pub mod operations;
pub mod paging;
pub mod persisted;
pub mod plans;
pub mod posting;
pub mod prices;
pub mod purchase_end;
pub mod purchases;
pub mod reads;
pub mod referrals;
pub mod refunds;
pub mod reservations;
pub mod retention;
pub mod rollover;
pub mod runway;
pub mod spend_limits;
pub mod spending;
pub mod statements;
pub mod stripe;
pub mod stripe_topups;
pub mod test_clock;
pub mod tx;
pub mod webhooks;

pub use clock::Clock;
pub use error::{Refusal, ServiceError};

use crate::program::Program;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sea_orm::DatabaseConnection;
use std::sync::{Arc, Mutex};

/// How long an idempotency key's outcome is kept (domain.md §2: at least 30 days).
pub const DEFAULT_IDEMPOTENCY_DAYS: i64 = 30;

/// The ledger's use cases over one database and one program: every operation of the API and
/// of the jobs is a method on it (named `Engine` so that it is not confused with the rules in
/// `crate::ledger`).
#[derive(Clone)]
pub struct Engine {
    /// Reads, and the writes outside `tx::write` (jobs' bookkeeping, the outbox's deliveries).
    pub db: DatabaseConnection,
    /// Where `tx::write`'s transactions run: `db::writer` (on SQLite a connection of its own,
    /// which keeps its page cache between write transactions; on PostgreSQL `db` itself).
    pub writer: DatabaseConnection,
    pub program: Arc<Program>,
    pub idempotency_ttl: chrono::Duration,
    /// Random draws (lucky credits, ad rewards): seeded from the OS, a cryptographically secure
    /// generator; tests seed it to check distributions.
    pub draws: Arc<Mutex<StdRng>>,
    /// Accounts per batch of a scheduled sweep; none: each sweep's own default (`Sweep::STEP`).
    pub sweep_batch: Option<u64>,
    /// Where the outbox is delivered; none: events stay in the outbox until one is configured.
    pub webhooks: Option<Arc<webhooks::WebhookSender>>,
    /// Spends waiting to be committed together (`batch`), shared by the clones of this ledger.
    pub spends: Arc<batch::SpendQueue>,
    /// Transactions a scheduled job runs side by side on disjoint accounts (the month's
    /// write-offs and grants): 1 on SQLite, which commits one writer at a time.
    pub job_parallelism: usize,
    /// Items (lots written off, accounts granted) per transaction of those jobs.
    pub job_part: usize,
    /// How long operational rows are kept (`retention`): ticks, delivered events, snapshots.
    pub retention: crate::ledger::retention::Retention,
    /// Where scheduled ticks take "now" from (`Clock::tick_instant`) and what
    /// `advance_clock` moves: the system clock unless the deployment runs a test clock.
    pub clock: Clock,
    /// The jobs an operator started (`runJob`) that are still running in this process.
    pub operator_jobs: Arc<operations::RunningJobs>,
    /// Stripe's webhook secrets and API client (`crate::stripe`); empty: no Stripe.
    pub stripe: crate::stripe::StripeSettings,
}

impl Engine {
    pub fn new(db: DatabaseConnection, program: Arc<Program>) -> Engine {
        let backend = db.get_database_backend();
        let spends = Arc::new(batch::SpendQueue::new(batch::default_lanes(backend)));
        Engine {
            job_parallelism: jobs::parts_side_by_side(backend),
            job_part: jobs::ITEMS_PER_TRANSACTION,
            writer: crate::db::writer(&db),
            db,
            program,
            idempotency_ttl: chrono::Duration::days(DEFAULT_IDEMPOTENCY_DAYS),
            draws: Arc::new(Mutex::new(StdRng::from_os_rng())),
            sweep_batch: None,
            webhooks: None,
            stripe: crate::stripe::StripeSettings::default(),
            retention: crate::ledger::retention::Retention::default(),
            clock: Clock::System,
            operator_jobs: Arc::default(),
            spends,
        }
    }

    /// Replaces the generator with a seeded one: for tests only.
    pub fn seed_draws(&self, seed: u64) {
        *self.draws.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = StdRng::seed_from_u64(seed);
    }

    /// A draw from `distribution`, capped at `cap` whole credits.
    pub(crate) fn draw(&self, distribution: &crate::ledger::draw::Distribution, cap: Option<u32>) -> crate::ledger::Credits {
        let mut rng = self.draws.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        distribution.sample(&mut *rng, cap)
    }
}
