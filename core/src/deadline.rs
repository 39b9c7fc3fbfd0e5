//! Deadlines from configured durations: `now + d` without the panic `Instant + Duration`
//! has when a (misconfigured, e.g. `Duration::MAX`) timeout overflows the platform clock.

use std::time::{Duration, Instant};

/// How far ahead a deadline lands when `now + d` is not representable.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

/// `now + d`, or about a year ahead of `now` when that overflows (`now` itself only if
/// even that does not fit).
pub fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_clock::epoch;

    #[test]
    fn adds_representable_durations_exactly() {
        let now = epoch();
        assert_eq!(
            later(now, Duration::from_secs(3)),
            now + Duration::from_secs(3)
        );
    }

    #[test]
    fn an_unrepresentable_duration_lands_far_ahead_instead_of_panicking() {
        let now = epoch();
        assert_eq!(later(now, Duration::MAX), now + FAR_FUTURE);
    }
}
