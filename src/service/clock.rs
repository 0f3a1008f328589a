use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use std::sync::{Arc, Mutex};

/// Where "now" comes from. Tests inside the repo set a manual clock by hand to cross expiry
/// instants without sleeping; a deployment started with `clock = "test"` runs on a test clock
/// that integrators move through the API (`Engine::advance_clock`).
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
    /// A deployment's test clock: frozen, and stored in the database (`store::test_clock`) so
    /// that every process on it agrees. This is the process's copy of it, refreshed from the
    /// database at each request and each job tick.
    Test(Arc<TestClock>),
}

#[derive(Debug)]
pub struct TestClock {
    at: Mutex<DateTime<Utc>>,
    /// Held for the whole of an advance: one at a time in a process.
    pub(crate) advancing: tokio::sync::Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    /// The test clock stored in `db`, set to `start` (else the wall time) if this is the
    /// database's first start on a test clock; afterwards it resumes where it stood.
    pub async fn start_test(db: &DatabaseConnection, start: Option<DateTime<Utc>>) -> Result<Clock, DbErr> {
        let wall = crate::ledger::time::truncate(Utc::now());
        let at = crate::store::test_clock::start(db, start.map_or(wall, crate::ledger::time::truncate), wall).await?;
        Ok(Clock::Test(Arc::new(TestClock { at: Mutex::new(at), advancing: tokio::sync::Mutex::new(()) })))
    }

    /// Microsecond precision, as stored.
    pub fn now(&self) -> DateTime<Utc> {
        crate::ledger::time::truncate(match self {
            Clock::System => Utc::now(),
            Clock::Manual(at) => *lock(at),
            Clock::Test(test) => *lock(&test.at),
        })
    }

    pub fn set(&self, to: DateTime<Utc>) {
        match self {
            Clock::System => panic!("the system clock cannot be set"),
            Clock::Manual(at) => *lock(at) = to,
            Clock::Test(_) => panic!("a test clock moves only through Engine::advance_clock"),
        }
    }

    pub fn is_test(&self) -> bool {
        matches!(self, Clock::Test(_))
    }

    /// Takes up a test clock's stored instant, which another process may have moved; the copy
    /// never goes back. Nothing to do on other clocks.
    pub async fn refresh(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        if let Clock::Test(test) = self
            && let Some(stored) = crate::store::test_clock::read(db).await?
        {
            let mut at = lock(&test.at);
            *at = (*at).max(stored);
        }
        Ok(())
    }

    /// The instant a scheduled tick runs at: the test clock's stored instant on a test clock,
    /// else the tick's own `wall` time.
    pub async fn tick_instant(&self, db: &DatabaseConnection, wall: DateTime<Utc>) -> Result<DateTime<Utc>, DbErr> {
        match self {
            Clock::Test(_) => {
                self.refresh(db).await?;
                Ok(self.now())
            }
            _ => Ok(wall),
        }
    }
}
