//! Admission of inbound connections before any handshake work: a per-IP cap on concurrent
//! connections and a minimum gap between connections from an IP (v0.35's connection
//! tracker, protocol.md §6.6), plus the operator's IP filter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why an inbound connection was refused before its handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The IP already has the maximum number of open connections.
    #[error("{ip} already has {limit} open connections")]
    TooManyFromIp {
        /// The remote IP.
        ip: IpAddr,
        /// The per-IP limit.
        limit: usize,
    },
    /// The IP connected again sooner than the attempt window allows.
    #[error("{ip} reconnected within {window:?} of its previous connection")]
    TooSoon {
        /// The remote IP.
        ip: IpAddr,
        /// The window.
        window: Duration,
    },
    /// The operator's IP filter refused it.
    #[error("{0} refused by the IP filter")]
    Filtered(IpAddr),
    /// The router holds its maximum number of connections (all states).
    #[error("router holds its maximum of {0} connections")]
    TooManyConnections(usize),
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopping,
}

#[derive(Debug, Clone, Copy)]
struct IpState {
    open: usize,
    last_accepted: Option<Instant>,
}

/// Counts open inbound connections per IP.
#[derive(Debug)]
pub(crate) struct IncomingTracker {
    max_per_ip: usize,
    window: Duration,
    window_exempts_loopback: bool,
    ips: HashMap<IpAddr, IpState>,
}

impl IncomingTracker {
    pub(crate) fn new(max_per_ip: usize, window: Duration, window_exempts_loopback: bool) -> Self {
        IncomingTracker {
            max_per_ip,
            window,
            window_exempts_loopback,
            ips: HashMap::new(),
        }
    }

    /// Admits a connection from `ip` or says why not.
    pub(crate) fn add(&mut self, now: Instant, ip: IpAddr) -> Result<(), AdmissionError> {
        self.forget_old(now);
        let state = self.ips.entry(ip).or_insert(IpState {
            open: 0,
            last_accepted: None,
        });
        if state.open >= self.max_per_ip {
            return Err(AdmissionError::TooManyFromIp {
                ip,
                limit: self.max_per_ip,
            });
        }
        let recent = state
            .last_accepted
            .is_some_and(|t| now.saturating_duration_since(t) < self.window);
        let exempt = self.window_exempts_loopback && ip.is_loopback();
        if state.open == 0 && recent && !exempt {
            return Err(AdmissionError::TooSoon {
                ip,
                window: self.window,
            });
        }
        state.open += 1; // cannot panic: counts open connections, each one in memory
        state.last_accepted = Some(now);
        Ok(())
    }

    /// A connection from `ip` closed.
    pub(crate) fn remove(&mut self, now: Instant, ip: IpAddr) {
        if let Some(state) = self.ips.get_mut(&ip) {
            state.open = state.open.saturating_sub(1);
        }
        self.forget_old(now);
    }

    /// IPs tracked (open or within their window).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ips.len()
    }

    /// Forgets IPs with no open connection whose window has passed, so the map stays
    /// bounded by the open connections plus recent attempts.
    fn forget_old(&mut self, now: Instant) {
        let window = self.window;
        self.ips.retain(|_, s| {
            s.open > 0
                || s.last_accepted
                    .is_some_and(|t| now.saturating_duration_since(t) < window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_clock::epoch;

    /// protocol.md §7.6 TestConnTracker, in our form.
    #[test]
    fn per_ip_counts_limits_and_window() {
        let now = epoch();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut t = IncomingTracker::new(2, Duration::from_millis(100), true);
        t.add(now, ip).unwrap();
        t.add(now, ip).unwrap();
        assert_eq!(t.len(), 1, "repeat adds of one IP count once");
        assert!(matches!(
            t.add(now, ip),
            Err(AdmissionError::TooManyFromIp { .. })
        ));
        t.remove(now, ip);
        t.add(now, ip).unwrap();
        t.remove(now, ip);
        t.remove(now, ip);
        // No connection open: a reconnect inside the window is refused, after it allowed.
        assert!(matches!(
            t.add(now + Duration::from_millis(50), ip),
            Err(AdmissionError::TooSoon { .. })
        ));
        t.add(now + Duration::from_millis(150), ip).unwrap();
        for i in 0..100u8 {
            t.add(now, IpAddr::from([10, 1, 0, i])).unwrap();
        }
        assert_eq!(t.len(), 101);
        for i in 0..100u8 {
            t.remove(now + Duration::from_secs(1), IpAddr::from([10, 1, 0, i]));
        }
        assert_eq!(t.len(), 1, "closed IPs are forgotten after their window");
        // Loopback skips the window (local tools reconnect at once) but not the cap.
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        t.add(now, lo).unwrap();
        t.remove(now, lo);
        t.add(now + Duration::from_millis(1), lo).unwrap();
        t.add(now + Duration::from_millis(1), lo).unwrap();
        assert!(matches!(
            t.add(now + Duration::from_millis(1), lo),
            Err(AdmissionError::TooManyFromIp { .. })
        ));
        let mut strict = IncomingTracker::new(2, Duration::from_millis(100), false);
        strict.add(now, lo).unwrap();
        strict.remove(now, lo);
        assert!(matches!(
            strict.add(now + Duration::from_millis(1), lo),
            Err(AdmissionError::TooSoon { .. })
        ));
    }
}
