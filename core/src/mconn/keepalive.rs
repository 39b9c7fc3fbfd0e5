//! Ping/pong keep-alive of an MConnection (protocol.md §4.5): a ping every interval, a
//! deadline for the pong after each ping, owed pongs collapsed into one, and the round-trip
//! time of our pings.

use std::time::{Duration, Instant};

use super::MConnError;

/// Keep-alive timers and flags.
#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    /// When the next periodic ping is queued; `None` if it lies past the clock's range.
    next_ping: Option<Instant>,
    /// A ping waits to be written.
    ping_due: bool,
    /// A pong is owed to the peer (several pings collapse into one pong).
    pong_due: bool,
    /// The connection fails at this instant unless a pong arrives first.
    pong_deadline: Option<Instant>,
    /// When our oldest unanswered ping was written, for the round-trip time.
    ping_written_at: Option<Instant>,
}

impl Keepalive {
    pub(crate) fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Self {
            interval,
            timeout,
            next_ping: now.checked_add(interval),
            ping_due: false,
            pong_due: false,
            pong_deadline: None,
            ping_written_at: None,
        }
    }

    /// Fails on a missed pong deadline; queues the periodic ping when it is due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), MConnError> {
        if self.pong_deadline.is_some_and(|deadline| now >= deadline) {
            return Err(MConnError::PongTimeout(self.timeout));
        }
        if self.next_ping.is_some_and(|at| now >= at) {
            self.queue_ping(now);
            self.next_ping = now.checked_add(self.interval);
        }
        Ok(())
    }

    /// Queues a ping now and starts the pong deadline (unless one already runs).
    pub(crate) fn queue_ping(&mut self, now: Instant) {
        self.ping_due = true;
        if self.pong_deadline.is_none() {
            // Past the clock's range the deadline cannot come; leave it unset.
            self.pong_deadline = now.checked_add(self.timeout);
        }
    }

    /// The peer pinged us: one pong is owed.
    pub(crate) fn on_ping(&mut self) {
        self.pong_due = true;
    }

    /// The peer answered (solicited or not): the deadline is cancelled. Returns the
    /// round-trip time when one of our pings was outstanding.
    pub(crate) fn on_pong(&mut self, now: Instant) -> Option<Duration> {
        self.pong_deadline = None;
        self.ping_written_at
            .take()
            .map(|at| now.saturating_duration_since(at))
    }

    /// Takes the queued ping, if any, noting when it was written.
    pub(crate) fn take_ping(&mut self, now: Instant) -> bool {
        if !self.ping_due {
            return false;
        }
        self.ping_due = false;
        self.ping_written_at.get_or_insert(now);
        true
    }

    /// Takes the owed pong, if any.
    pub(crate) fn take_pong(&mut self) -> bool {
        std::mem::take(&mut self.pong_due)
    }

    /// Whether a ping or pong waits to be written.
    pub(crate) fn has_pending(&self) -> bool {
        self.ping_due || self.pong_due
    }

    /// The next instant the keep-alive needs [`Keepalive::handle_timeout`].
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_ping, self.pong_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_clock::epoch;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn pings_every_interval_and_times_out_without_pong() {
        let t0 = epoch();
        let mut k = Keepalive::new(60 * SEC, 45 * SEC, t0);
        assert_eq!(k.poll_timeout(), Some(t0 + 60 * SEC));
        k.handle_timeout(t0 + 59 * SEC).unwrap();
        assert!(!k.take_ping(t0 + 59 * SEC));
        k.handle_timeout(t0 + 60 * SEC).unwrap();
        assert!(k.take_ping(t0 + 60 * SEC));
        assert_eq!(k.poll_timeout(), Some(t0 + 105 * SEC));
        assert_eq!(
            k.handle_timeout(t0 + 105 * SEC),
            Err(MConnError::PongTimeout(45 * SEC))
        );
    }

    #[test]
    fn pong_cancels_deadline_and_reports_rtt() {
        let t0 = epoch();
        let mut k = Keepalive::new(60 * SEC, 45 * SEC, t0);
        k.queue_ping(t0);
        assert!(k.take_ping(t0 + SEC));
        assert_eq!(k.on_pong(t0 + 3 * SEC), Some(2 * SEC));
        assert_eq!(k.on_pong(t0 + 4 * SEC), None, "unsolicited pong: no rtt");
        k.handle_timeout(t0 + 50 * SEC).unwrap();
    }

    #[test]
    fn pings_collapse_into_one_pong() {
        let mut k = Keepalive::new(60 * SEC, 45 * SEC, epoch());
        k.on_ping();
        k.on_ping();
        assert!(k.take_pong());
        assert!(!k.take_pong());
    }
}
