//! Dial-retry delay: exponential backoff plus jitter, capped after the jitter is added.
//!
//! v0.35.9 grows the delay linearly (`MinRetryTime × failures`); v0.35.0 doubled it but
//! capped before adding jitter. Here the delay is `min_retry_time × 2^(failures−1)`, then
//! the jitter drawn at the failure is added, then the cap (persistent peers have their own)
//! applies, so the result never exceeds the cap. All arithmetic saturates: any failure
//! count, up to `u32::MAX`, gives a defined delay. The redial cooldown after brief
//! connections in a row grows the same way, within the same caps.

use std::time::Duration;

/// The retry settings [`retry_delay`] needs (a copy of the relevant options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Base delay after the first failure; zero disables retries.
    pub min_retry_time: Duration,
    /// Cap on the delay (after jitter); zero means no cap.
    pub max_retry_time: Duration,
    /// Cap for persistent peers; zero means use `max_retry_time`.
    pub max_retry_time_persistent: Duration,
}

/// How long after its last failure an address with `failures` consecutive dial failures
/// waits before it is dialed again, given the `jitter` drawn at that failure. `None` means
/// never (retries disabled by a zero `min_retry_time`).
pub fn retry_delay(
    policy: &RetryPolicy,
    failures: u32,
    persistent: bool,
    jitter: Duration,
) -> Option<Duration> {
    if failures == 0 {
        return Some(Duration::ZERO);
    }
    if policy.min_retry_time.is_zero() {
        return None;
    }
    let doublings = failures.saturating_sub(1);
    let factor = 1u32.checked_shl(doublings).unwrap_or(0);
    let base = if factor == 0 {
        Duration::MAX
    } else {
        policy
            .min_retry_time
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
    };
    Some(capped(policy, persistent, base.saturating_add(jitter)))
}

/// The most doublings of the redial cooldown, whatever the streak: without a retry cap it
/// would otherwise grow towards `Duration::MAX` (2^10 × the 2 s default is 34 min).
pub const MAX_COOLDOWN_DOUBLINGS: u32 = 10;

/// How long after a disconnection the peer waits before it is redialed: `cooldown`, doubled
/// for each brief connection in a row beyond the first (`brief_streak`, at most
/// [`MAX_COOLDOWN_DOUBLINGS`] times). The retry cap bounds the growth, never `cooldown`
/// itself.
pub fn redial_cooldown(
    policy: &RetryPolicy,
    cooldown: Duration,
    brief_streak: u32,
    persistent: bool,
) -> Duration {
    let doublings = brief_streak.saturating_sub(1).min(MAX_COOLDOWN_DOUBLINGS);
    if doublings == 0 {
        return cooldown;
    }
    let grown = cooldown.saturating_mul(1 << doublings);
    capped(policy, persistent, grown).max(cooldown)
}

/// `delay` within the retry cap (persistent peers have their own; zero means none).
fn capped(policy: &RetryPolicy, persistent: bool, delay: Duration) -> Duration {
    let cap = if persistent && !policy.max_retry_time_persistent.is_zero() {
        policy.max_retry_time_persistent
    } else {
        policy.max_retry_time
    };
    if !cap.is_zero() && delay > cap {
        cap
    } else {
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min_ms: u64, max_ms: u64, persistent_ms: u64) -> RetryPolicy {
        RetryPolicy {
            min_retry_time: Duration::from_millis(min_ms),
            max_retry_time: Duration::from_millis(max_ms),
            max_retry_time_persistent: Duration::from_millis(persistent_ms),
        }
    }

    #[test]
    fn the_redial_cooldown_grows_within_the_cap_and_never_drops_below_its_base() {
        let s = Duration::from_secs;
        let p = policy(250, 60_000, 30_000);
        let cooldowns: Vec<Duration> = (0..9)
            .map(|streak| redial_cooldown(&p, s(2), streak, false))
            .collect();
        assert_eq!(
            cooldowns,
            [2, 2, 4, 8, 16, 32, 60, 60, 60].map(s).to_vec(),
            "plain for none or one brief connection, then doubled up to the cap"
        );
        assert_eq!(redial_cooldown(&p, s(2), 8, true), s(30));
        // A base above the cap (a seed's re-crawl interval) is kept as it is.
        assert_eq!(redial_cooldown(&p, s(120), 1, false), s(120));
        assert_eq!(redial_cooldown(&p, s(120), 5, false), s(120));
        // No cap: growth stops after MAX_COOLDOWN_DOUBLINGS.
        let uncapped = policy(250, 0, 0);
        let most = s(2) * (1 << MAX_COOLDOWN_DOUBLINGS);
        assert_eq!(redial_cooldown(&uncapped, s(2), u32::MAX, false), most);
    }

    #[test]
    fn no_failures_means_no_delay_and_zero_min_means_never() {
        let p = policy(100, 500, 0);
        assert_eq!(
            retry_delay(&p, 0, false, Duration::ZERO),
            Some(Duration::ZERO)
        );
        let never = policy(0, 0, 0);
        assert_eq!(retry_delay(&never, 1, false, Duration::ZERO), None);
    }

    /// Go v0.35.9 is linear (100, 200, 300, 400, 500 ms); we double (100, 200, 400, 500).
    #[test]
    fn delay_doubles_per_failure_then_caps() {
        let p = policy(100, 500, 0);
        let ms: Vec<u128> = (1..=6)
            .map(|f| {
                retry_delay(&p, f, false, Duration::ZERO)
                    .unwrap()
                    .as_millis()
            })
            .collect();
        assert_eq!(ms, vec![100, 200, 400, 500, 500, 500]);
    }

    /// v0.35.0 capped before adding jitter, so a capped delay could exceed the cap.
    #[test]
    fn cap_applies_after_jitter() {
        let p = policy(100, 500, 0);
        let d = retry_delay(&p, 10, false, Duration::from_millis(300)).unwrap();
        assert_eq!(d, Duration::from_millis(500));
        let d = retry_delay(&p, 1, false, Duration::from_millis(50)).unwrap();
        assert_eq!(d, Duration::from_millis(150));
    }

    #[test]
    fn persistent_peers_use_their_own_cap() {
        let p = policy(100, 10_000, 300);
        assert_eq!(
            retry_delay(&p, 20, true, Duration::ZERO),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            retry_delay(&p, 20, false, Duration::ZERO),
            Some(Duration::from_millis(10_000))
        );
    }

    #[test]
    fn no_overflow_at_any_failure_count() {
        let uncapped = policy(250, 0, 0);
        for failures in [31, 32, 33, 64, 1000, u32::MAX] {
            let d = retry_delay(&uncapped, failures, false, Duration::MAX).unwrap();
            assert_eq!(d, Duration::MAX);
        }
        let capped = policy(250, 1_800_000, 0);
        let d = retry_delay(&capped, u32::MAX, false, Duration::from_secs(5)).unwrap();
        assert_eq!(d, Duration::from_secs(1800));
    }
}
