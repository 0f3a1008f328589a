//! Rules of claims: the daily check-in streak and coupon codes and windows.

use chrono::{DateTime, NaiveDate, Utc};

/// Consecutive claimed days ending today, or yesterday if today is not claimed yet (the streak
/// is still alive until today ends). `days` may be in any order and hold duplicates.
pub fn streak(days: &[NaiveDate], today: NaiveDate) -> u32 {
    let mut sorted: Vec<NaiveDate> = days.iter().copied().filter(|d| *d <= today).collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    let mut expected = match sorted.first() {
        Some(first) if *first == today => today,
        Some(first) if Some(*first) == today.pred_opt() => *first,
        _ => return 0,
    };
    let mut count = 0;
    for day in sorted {
        if day != expected {
            break;
        }
        count += 1;
        match expected.pred_opt() {
            Some(previous) => expected = previous,
            None => break,
        }
    }
    count
}

pub const MIN_COUPON_CODE_CHARS: usize = 3;
pub const MAX_COUPON_CODE_CHARS: usize = 64;

/// Coupon codes are case-insensitive: stored and compared upper-cased. Letters, digits, `-`, `_`.
pub fn normalize_coupon_code(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    let valid = (MIN_COUPON_CODE_CHARS..=MAX_COUPON_CODE_CHARS).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then_some(code)
}

/// Why a coupon cannot be redeemed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CouponRefusal {
    NotFound,
    NotYetValid,
    Expired,
    Exhausted,
    AlreadyRedeemed,
}

/// The redemption window: from `starts_at` (inclusive) to `ends_at` (exclusive); and for a coupon
/// whose credits expire at a fixed instant, redeeming after that instant would grant nothing.
pub fn check_window(
    now: DateTime<Utc>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    credits_expire_at: Option<DateTime<Utc>>,
) -> Result<(), CouponRefusal> {
    if starts_at.is_some_and(|start| now < start) {
        return Err(CouponRefusal::NotYetValid);
    }
    if ends_at.is_some_and(|end| now >= end) || credits_expire_at.is_some_and(|at| now >= at) {
        return Err(CouponRefusal::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn streaks_count_consecutive_days_up_to_today_or_yesterday() {
        let today = d(2026, 3, 1);
        assert_eq!(streak(&[], today), 0);
        assert_eq!(streak(&[d(2026, 3, 1)], today), 1);
        // Across a 28-day February.
        assert_eq!(streak(&[d(2026, 2, 27), d(2026, 2, 28), d(2026, 3, 1)], today), 3);
        assert_eq!(streak(&[d(2026, 2, 27), d(2026, 2, 28)], today), 2, "alive until today ends");
        assert_eq!(streak(&[d(2026, 2, 26), d(2026, 2, 28), d(2026, 3, 1)], today), 2, "a gap ends it");
        assert_eq!(streak(&[d(2026, 2, 27)], today), 0, "broken");
        assert_eq!(streak(&[d(2026, 3, 1), d(2026, 3, 1), d(2026, 2, 28)], today), 2);
    }

    #[test]
    fn coupon_codes_are_case_insensitive_and_bounded() {
        assert_eq!(normalize_coupon_code(" Welcome-2026 ").as_deref(), Some("WELCOME-2026"));
        assert_eq!(normalize_coupon_code("ab"), None);
        assert_eq!(normalize_coupon_code("has space"), None);
        assert_eq!(normalize_coupon_code(&"x".repeat(65)), None);
    }

    #[test]
    fn windows_are_inclusive_at_the_start_and_exclusive_at_the_end() {
        let start = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
        let end = start + Duration::days(1);
        assert_eq!(check_window(start - Duration::microseconds(1), Some(start), Some(end), None), Err(CouponRefusal::NotYetValid));
        assert_eq!(check_window(start, Some(start), Some(end), None), Ok(()));
        assert_eq!(check_window(end - Duration::microseconds(1), Some(start), Some(end), None), Ok(()));
        assert_eq!(check_window(end, Some(start), Some(end), None), Err(CouponRefusal::Expired));
        assert_eq!(check_window(end, None, None, Some(end)), Err(CouponRefusal::Expired));
    }
}
