//! Send and receive rate limits of an MConnection (protocol.md §4.6): bytes are counted in
//! 100 ms windows, each allowing `rate / 10` bytes, with any overshoot carried into the
//! next windows so the long-run rate holds.

use std::time::{Duration, Instant};

/// Length of one counting window (Go's flowrate sample period).
pub(crate) const WINDOW: Duration = Duration::from_millis(100);

/// Windows after which the count simply restarts (an idle link owes nothing).
const MAX_CARRIED_WINDOWS: u128 = 1000;

/// A byte budget per 100 ms window.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_window: u64,
    start: Instant,
    used: u64,
}

impl RateLimit {
    /// `rate` is in bytes per second (validated above zero).
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        Self {
            per_window: (rate / 10).max(1), // cannot panic: constant divisor
            start: now,
            used: 0,
        }
    }

    /// Moves the window forward to `now`, refilling the budget for every window passed.
    pub(crate) fn roll_to(&mut self, now: Instant) {
        // cannot panic: WINDOW is a non-zero constant.
        let windows = now.saturating_duration_since(self.start).as_nanos() / WINDOW.as_nanos();
        if windows == 0 {
            return;
        }
        // cannot panic: `WINDOW * n` runs only for n <= MAX_CARRIED_WINDOWS.
        let step = u32::try_from(windows)
            .ok()
            .filter(|&n| u128::from(n) <= MAX_CARRIED_WINDOWS)
            .and_then(|n| self.start.checked_add(WINDOW * n));
        match step {
            Some(start) => {
                let refill = self.per_window.saturating_mul(windows as u64);
                self.start = start;
                self.used = self.used.saturating_sub(refill);
            }
            None => {
                self.start = now;
                self.used = 0;
            }
        }
    }

    /// Bytes that may pass now.
    pub(crate) fn allowance(&mut self, now: Instant) -> u64 {
        self.roll_to(now);
        self.per_window.saturating_sub(self.used)
    }

    /// Counts bytes that passed.
    pub(crate) fn record(&mut self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.used = self.used.saturating_add(bytes);
    }

    /// When the budget is spent: the end of the current window, when bytes may pass again.
    pub(crate) fn blocked_until(&self) -> Option<Instant> {
        (self.used >= self.per_window)
            .then(|| self.start.checked_add(WINDOW))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_clock::epoch;

    #[test]
    fn cometbft_rate_allows_512000_bytes_per_window() {
        let t0 = epoch();
        let mut r = RateLimit::new(5_120_000, t0);
        assert_eq!(r.allowance(t0), 512_000);
        r.record(500_000);
        assert_eq!(r.allowance(t0 + WINDOW / 2), 12_000);
        assert_eq!(r.blocked_until(), None);
        r.record(13_000);
        assert_eq!(r.allowance(t0 + WINDOW / 2), 0);
        assert_eq!(r.blocked_until(), Some(t0 + WINDOW));
        // The 1000-byte overshoot is carried into the next window.
        assert_eq!(r.allowance(t0 + WINDOW), 511_000);
        assert_eq!(r.allowance(t0 + 1000 * WINDOW), 512_000);
    }

    #[test]
    fn long_run_rate_holds() {
        let t0 = epoch();
        let mut r = RateLimit::new(10_000, t0);
        let mut sent = 0u64;
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            while r.allowance(now) > 0 {
                r.record(300);
                sent += 300;
            }
        }
        // 10 s at 10 000 B/s, give or take one packet per window.
        assert!((100_000..=103_300).contains(&sent), "{sent}");
    }
}
