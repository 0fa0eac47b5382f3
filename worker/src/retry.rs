//! When to try again: the endpoint's schedule (or the global one) with ±20 % jitter, at least as
//! long as the endpoint's `Retry-After` asked (bounded to a day), and never after the last entry.

use chrono::{DateTime, Duration, Utc};
use hookline_core::domain::RetrySchedule;
use rand::{Rng, RngExt};

pub const JITTER: f64 = 0.2;
/// The longest `Retry-After` we honour.
pub const MAX_RETRY_AFTER_SECONDS: u64 = 24 * 3600;

/// The time of the next attempt after attempt number `attempt` (1-based) failed, or `None` when
/// that was the last one.
pub fn next_attempt(
    schedule: &RetrySchedule,
    attempt: i32,
    retry_after: Option<u64>,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Option<DateTime<Utc>> {
    let base = *schedule.seconds().get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
    let factor = 1.0 + rng.random_range(-JITTER..=JITTER);
    let mut millis = (f64::from(base) * 1000.0 * factor).round() as i64;
    if let Some(seconds) = retry_after {
        millis = millis.max(seconds.min(MAX_RETRY_AFTER_SECONDS) as i64 * 1000);
    }
    Some(now + Duration::milliseconds(millis))
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn retries_follow_the_schedule_with_bounded_jitter_and_stop_after_the_last() {
        let schedule = RetrySchedule::default();
        let now = Utc::now();
        let mut rng = StdRng::seed_from_u64(7);
        for (attempt, base) in [(1, 5.0), (2, 300.0), (3, 1800.0), (7, 36000.0)] {
            for _ in 0..200 {
                let at = next_attempt(&schedule, attempt, None, now, &mut rng).unwrap();
                let waited = (at - now).num_milliseconds() as f64 / 1000.0;
                assert!(
                    waited >= base * 0.8 - 0.001 && waited <= base * 1.2 + 0.001,
                    "attempt {attempt}: {waited}"
                );
            }
        }
        assert_eq!(next_attempt(&schedule, 8, None, now, &mut rng), None);
        assert_eq!(next_attempt(&schedule, 0, None, now, &mut rng), None);
    }

    #[test]
    fn retry_after_extends_the_wait_but_is_bounded() {
        let schedule = RetrySchedule::new(vec![1]).unwrap();
        let now = Utc::now();
        let mut rng = StdRng::seed_from_u64(1);
        let at = next_attempt(&schedule, 1, Some(60), now, &mut rng).unwrap();
        assert_eq!((at - now).num_seconds(), 60);
        let at = next_attempt(&schedule, 1, Some(10 * 24 * 3600), now, &mut rng).unwrap();
        assert_eq!((at - now).num_seconds(), MAX_RETRY_AFTER_SECONDS as i64);
    }
}
