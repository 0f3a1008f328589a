use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// Where "now" comes from. Tests set it by hand to cross expiry instants without sleeping.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    /// Microsecond precision, as stored.
    pub fn now(&self) -> DateTime<Utc> {
        crate::ledger::time::truncate(match self {
            Clock::System => Utc::now(),
            Clock::Manual(at) => *at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        })
    }

    pub fn set(&self, to: DateTime<Utc>) {
        match self {
            Clock::System => panic!("the system clock cannot be set"),
            Clock::Manual(at) => *at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = to,
        }
    }
}
