//! Admission and routing for a listen address shared by the nodes of several networks (one
//! node key; a seed serving many chains on one port). Sans-IO.
//!
//! Behind a shared address each connection's handshake runs before any node knows it (the
//! dialer's network only comes with its NodeInfo: `PeerConnection::answering`), so the
//! nodes' own admission (`Node::accept`: per-IP limits, the reconnect gap, the IP filter)
//! can only come after it. [`SharedAddress`] bounds what those handshakes may cost before
//! it: at most [`SharedLimits::max_answering`] at once and
//! [`SharedLimits::max_answering_per_ip`] from one IP, each within the nodes' handshake
//! timeout; a connection past a limit is refused at once, before any crypto. It routes each
//! dialer to the node of its network (the first node when none serves it, which then
//! refuses it as incompatible, with the typed reason in its own log and counters) and
//! counts the outcomes for operators ([`SharedAddressCounters`], readable from any thread).
//!
//! Call order, for a driver:
//! 1. [`SharedAddress::new`] with the nodes' networks, in node order.
//! 2. For each accepted connection, [`SharedAddress::admit`] with the remote IP; on `Err`
//!    close the socket.
//! 3. Run an answering `PeerConnection` on it until `peer_info` is known (then
//!    [`SharedAddress::route`], or [`Routes::route`] in another task, names the node to
//!    hand it to) or until it closes.
//! 4. [`SharedAddress::finished`] with the [`Ticket`] and the [`Outcome`], exactly once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Limits on the connections in their handshake before a node admits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedLimits {
    /// Connections in their handshake at once (default 256).
    pub max_answering: usize,
    /// Of those, from one IP (default 8).
    pub max_answering_per_ip: u32,
}

impl Default for SharedLimits {
    fn default() -> Self {
        SharedLimits {
            max_answering: 256,
            max_answering_per_ip: 8,
        }
    }
}

/// Why a shared address cannot be set up, or refuses a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedAddressError {
    /// No network to serve.
    #[error("a shared address needs at least one network")]
    NoNetwork,
    /// Two nodes of one network.
    #[error("network {0:?} is served twice on one address")]
    DuplicateNetwork(String),
    /// A limit is zero.
    #[error("the limits of a shared address must be above zero")]
    ZeroLimit,
    /// As many connections as allowed are in their handshake.
    #[error("{0} connections are in their handshake already")]
    Busy(usize),
    /// As many connections from this IP as allowed are in their handshake.
    #[error("{ip} has {limit} connections in their handshake already")]
    BusyIp {
        /// The remote IP.
        ip: IpAddr,
        /// The per-IP limit.
        limit: u32,
    },
}

/// One admitted connection's claim on the limits, given back with
/// [`SharedAddress::finished`].
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    ip: IpAddr,
}

/// How an admitted connection's handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its network was known and the connection went to the node of that network.
    HandedOver,
    /// It failed or timed out before its network was known.
    Failed,
}

/// What a shared address did, for metrics and summaries (monotonic counts).
#[derive(Debug, Default)]
pub struct SharedAddressCounters {
    handed_over: AtomicU64,
    unknown_network: AtomicU64,
    failed: AtomicU64,
    refused_busy: AtomicU64,
}

/// A copy of [`SharedAddressCounters`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedAddressSnapshot {
    /// Connections handed to the node of their network.
    pub handed_over: u64,
    /// Of those, dialers of a network nobody here serves (handed to the first node, which
    /// refuses them).
    pub unknown_network: u64,
    /// Handshakes that failed or timed out before the dialer's network was known.
    pub failed: u64,
    /// Connections refused at once because a limit was reached.
    pub refused_busy: u64,
}

impl SharedAddressCounters {
    /// The counts now.
    pub fn snapshot(&self) -> SharedAddressSnapshot {
        SharedAddressSnapshot {
            handed_over: self.handed_over.load(Ordering::Relaxed),
            unknown_network: self.unknown_network.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            refused_busy: self.refused_busy.load(Ordering::Relaxed),
        }
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Which node each network's dialers go to; cheap to clone, for the tasks that run the
/// handshakes.
#[derive(Debug, Clone)]
pub struct Routes {
    networks: Arc<[String]>,
}

impl Routes {
    /// The index of the node a dialer of `network` goes to: the node of that network, else
    /// the first.
    pub fn route(&self, network: &str) -> usize {
        self.networks
            .iter()
            .position(|served| served == network)
            .unwrap_or(0)
    }

    /// Whether a node here serves `network`.
    pub fn serves(&self, network: &str) -> bool {
        self.networks.iter().any(|served| served == network)
    }
}

/// The shared address's state (see the module docs for the call order).
#[derive(Debug)]
pub struct SharedAddress {
    routes: Routes,
    limits: SharedLimits,
    answering: usize,
    per_ip: BTreeMap<IpAddr, u32>,
    counters: Arc<SharedAddressCounters>,
}

impl SharedAddress {
    /// A shared address for nodes of `networks`, in node order.
    ///
    /// # Errors
    /// [`SharedAddressError::NoNetwork`], [`SharedAddressError::DuplicateNetwork`],
    /// [`SharedAddressError::ZeroLimit`].
    pub fn new(networks: Vec<String>, limits: SharedLimits) -> Result<Self, SharedAddressError> {
        if networks.is_empty() {
            return Err(SharedAddressError::NoNetwork);
        }
        if limits.max_answering == 0 || limits.max_answering_per_ip == 0 {
            return Err(SharedAddressError::ZeroLimit);
        }
        for (i, network) in networks.iter().enumerate() {
            if networks.iter().skip(i + 1).any(|other| other == network) {
                return Err(SharedAddressError::DuplicateNetwork(network.clone()));
            }
        }
        Ok(SharedAddress {
            routes: Routes {
                networks: networks.into(),
            },
            limits,
            answering: 0,
            per_ip: BTreeMap::new(),
            counters: Arc::default(),
        })
    }

    /// Admits a connection from `ip` to its handshake, or refuses it (counted) when a limit
    /// is reached.
    ///
    /// # Errors
    /// [`SharedAddressError::Busy`], [`SharedAddressError::BusyIp`].
    pub fn admit(&mut self, ip: IpAddr) -> Result<Ticket, SharedAddressError> {
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        let refusal = if self.answering >= self.limits.max_answering {
            Some(SharedAddressError::Busy(self.answering))
        } else if from_ip >= self.limits.max_answering_per_ip {
            Some(SharedAddressError::BusyIp {
                ip,
                limit: self.limits.max_answering_per_ip,
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            SharedAddressCounters::add(&self.counters.refused_busy);
            return Err(refusal);
        }
        self.answering = self.answering.saturating_add(1);
        self.per_ip.insert(ip, from_ip.saturating_add(1));
        Ok(Ticket { ip })
    }

    /// The index of the node a dialer of `network` goes to (see [`Routes::route`]).
    pub fn route(&self, network: &str) -> usize {
        self.routes.route(network)
    }

    /// The routes, for the tasks that run the handshakes.
    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    /// The handshake of `ticket`'s connection ended; `network` is the dialer's when known.
    pub fn finished(&mut self, ticket: Ticket, outcome: Outcome, network: Option<&str>) {
        self.answering = self.answering.saturating_sub(1);
        if let Some(count) = self.per_ip.get_mut(&ticket.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&ticket.ip);
            }
        }
        match outcome {
            Outcome::HandedOver => {
                SharedAddressCounters::add(&self.counters.handed_over);
                if network.is_some_and(|n| !self.routes.serves(n)) {
                    SharedAddressCounters::add(&self.counters.unknown_network);
                }
            }
            Outcome::Failed => SharedAddressCounters::add(&self.counters.failed),
        }
    }

    /// Connections in their handshake now.
    pub fn answering(&self) -> usize {
        self.answering
    }

    /// The counters, for a reader on any thread.
    pub fn counters(&self) -> Arc<SharedAddressCounters> {
        Arc::clone(&self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    fn address(max_answering: usize, per_ip: u32) -> SharedAddress {
        let limits = SharedLimits {
            max_answering,
            max_answering_per_ip: per_ip,
        };
        SharedAddress::new(vec!["a".into(), "b".into()], limits).unwrap()
    }

    #[test]
    fn one_ip_cannot_take_every_slot_and_slots_come_back() {
        let mut shared = address(4, 2);
        let first = shared.admit(ip(1)).unwrap();
        let _second = shared.admit(ip(1)).unwrap();
        assert_eq!(
            shared.admit(ip(1)),
            Err(SharedAddressError::BusyIp {
                ip: ip(1),
                limit: 2
            })
        );
        let _third = shared.admit(ip(2)).unwrap();
        let _fourth = shared.admit(ip(3)).unwrap();
        assert_eq!(shared.admit(ip(4)), Err(SharedAddressError::Busy(4)));
        shared.finished(first, Outcome::Failed, None);
        assert_eq!(shared.answering(), 3);
        assert!(shared.admit(ip(1)).is_ok(), "the IP's slot came back");
        let counts = shared.counters().snapshot();
        assert_eq!((counts.refused_busy, counts.failed), (2, 1));
    }

    #[test]
    fn dialers_go_to_their_network_and_strangers_to_the_first() {
        let mut shared = address(4, 4);
        assert_eq!(shared.route("b"), 1);
        assert_eq!(shared.route("a"), 0);
        assert_eq!(shared.route("c"), 0);
        let ticket = shared.admit(ip(1)).unwrap();
        shared.finished(ticket, Outcome::HandedOver, Some("c"));
        let ticket = shared.admit(ip(1)).unwrap();
        shared.finished(ticket, Outcome::HandedOver, Some("b"));
        let counts = shared.counters().snapshot();
        assert_eq!((counts.handed_over, counts.unknown_network), (2, 1));
        assert_eq!(shared.answering(), 0);
    }

    #[test]
    fn bad_setups_are_refused() {
        let limits = SharedLimits::default();
        assert_eq!(
            SharedAddress::new(Vec::new(), limits).unwrap_err(),
            SharedAddressError::NoNetwork
        );
        assert_eq!(
            SharedAddress::new(vec!["a".into(), "a".into()], limits).unwrap_err(),
            SharedAddressError::DuplicateNetwork("a".into())
        );
        let zero = SharedLimits {
            max_answering_per_ip: 0,
            ..limits
        };
        assert_eq!(
            SharedAddress::new(vec!["a".into()], zero).unwrap_err(),
            SharedAddressError::ZeroLimit
        );
    }
}
