//! Abuse control for claims (check-in, coupons, ad rewards, lucky credits): a fixed-window count
//! per account and per client IP, in this process's memory. It bounds how fast one account or one
//! address can hammer the claim paths; the once-per-period rules themselves live in the ledger
//! and hold across processes whatever this allows. The IP is the TCP peer's, or behind a proxy
//! listed in `trusted_proxies` the one it forwards (`crate::client_address`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most keys remembered; past it, expired windows are dropped, then the map is cleared
/// (forgetting counts errs towards letting a client through, never towards blocking one).
const MAX_KEYS: usize = 100_000;

pub struct RateLimiter {
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(window: Duration) -> RateLimiter {
        RateLimiter { window, counts: Mutex::new(HashMap::new()) }
    }

    /// Counts one attempt for `key`; Err(seconds until the window ends) past `limit`.
    pub fn check(&self, key: &str, limit: u32, now: Instant) -> Result<(), u64> {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
            if counts.len() >= MAX_KEYS {
                counts.clear();
            }
        }
        let entry = counts.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_limit_then_refuses_until_it_ends() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("a", 3, start), Ok(()));
        }
        assert_eq!(limiter.check("a", 3, start + Duration::from_secs(10)), Err(50));
        assert_eq!(limiter.check("b", 3, start), Ok(()), "keys are counted apart");
        assert_eq!(limiter.check("a", 3, start + Duration::from_secs(60)), Ok(()), "a new window");
    }
}
