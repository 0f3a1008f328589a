//! When a failed delivery is tried again: exponential backoff from 10 seconds, doubling, capped
//! at one hour. Nothing is ever given up on: past the cap an event is retried hourly, because an
//! outbox event announces a change that already happened, and dropping it would leave the other
//! system wrong for good.

use chrono::Duration;

/// The wait after the first failure.
pub const FIRST_RETRY_SECONDS: i64 = 10;
/// The longest wait between two attempts.
pub const MAX_RETRY_SECONDS: i64 = 3600;

/// How long to wait before the next attempt, after `failures` failed attempts in a row: 10 s,
/// 20 s, 40 s, ... 2,560 s, then 1 h for ever. No failure yet means no wait.
pub fn retry_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::zero();
    }
    // 2^(failures - 1) overflows only for counts far past the cap: saturate.
    let factor = 2i64.checked_pow(failures - 1).unwrap_or(i64::MAX);
    Duration::seconds(factor.saturating_mul(FIRST_RETRY_SECONDS).min(MAX_RETRY_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds() {
        let seconds: Vec<i64> = (1..=10).map(|n| retry_delay(n).num_seconds()).collect();
        assert_eq!(seconds, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]);
    }

    #[test]
    fn no_failure_means_no_wait() {
        assert_eq!(retry_delay(0), Duration::zero());
    }

    #[test]
    fn capped_at_an_hour_for_ever() {
        for failures in [10, 11, 62, 63, 64, 65, 1000, u32::MAX] {
            assert_eq!(retry_delay(failures), Duration::hours(1), "{failures}");
        }
    }

    #[test]
    fn never_shrinks() {
        let delays: Vec<Duration> = (0..200).map(retry_delay).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    }
}
