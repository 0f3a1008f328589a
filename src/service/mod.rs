//! Use cases: load what the rules need, decide with `ledger`, persist with `store`, in one
//! transaction each.

pub mod accounts;
pub mod checkin;
pub mod clock;
pub mod coupons;
pub mod daily_free;
pub mod error;
pub mod expiry;
pub mod input;
pub mod keyed;
pub mod plans;
pub mod posting;
pub mod purchases;
pub mod reads;
pub mod refunds;
pub mod spending;
pub mod tx;

pub use clock::Clock;
pub use error::ServiceError;

use crate::program::Program;
use sea_orm::DatabaseConnection;
use std::sync::Arc;

/// How long an idempotency key's outcome is kept (domain.md §2: at least 30 days).
pub const DEFAULT_IDEMPOTENCY_DAYS: i64 = 30;

/// The ledger's use cases over one database and one program.
#[derive(Clone)]
pub struct Ledger {
    pub db: DatabaseConnection,
    pub program: Arc<Program>,
    pub idempotency_ttl: chrono::Duration,
}

impl Ledger {
    pub fn new(db: DatabaseConnection, program: Arc<Program>) -> Ledger {
        Ledger { db, program, idempotency_ttl: chrono::Duration::days(DEFAULT_IDEMPOTENCY_DAYS) }
    }
}
