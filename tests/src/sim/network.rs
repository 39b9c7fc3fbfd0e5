//! The simulated wire: TCP-like links between two connection ends, with per-link latency,
//! jitter, loss and bandwidth, and the queue of timed network events (segments, FINs,
//! connection set-up) that the simulator pops in (time, sequence) order.
//!
//! A link is an ordered, reliable byte stream in each direction, like TCP: jitter never
//! reorders segments of one direction. A lost segment kills the link as a socket error
//! would: both ends get EOF and nothing more is carried. A segment sent across a partition
//! is silently dropped and the link stays black-holed for good (the ends find out through
//! their own keepalive or close), like a TCP connection whose path vanished.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use tmp2p_core::router::ConnectionId;

/// Properties of the path between two nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkParams {
    /// One-way delay.
    pub latency: Duration,
    /// Extra one-way delay, uniform in `[0, jitter)` per segment (order is kept).
    pub jitter: Duration,
    /// Probability that a segment is lost, which kills the link (both ends get EOF).
    pub loss: f64,
    /// Bytes per second each direction carries; `None` is unlimited.
    pub bandwidth: Option<u64>,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth: None,
        }
    }
}

impl LinkParams {
    /// A jittered one-way delay.
    pub(crate) fn delay(&self, rng: &mut ChaCha20Rng) -> Duration {
        let jitter = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        let extra = if jitter == 0 {
            0
        } else {
            rng.next_u64() % jitter
        };
        self.latency + Duration::from_nanos(extra)
    }

    /// Whether the next segment is lost.
    pub(crate) fn lose(&self, rng: &mut ChaCha20Rng) -> bool {
        if self.loss <= 0.0 {
            return false;
        }
        // 53 random bits as a uniform float in [0, 1).
        let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        draw < self.loss
    }

    /// Time to put `len` bytes on the wire.
    pub(crate) fn serialization(&self, len: usize) -> Duration {
        match self.bandwidth {
            Some(bps) if bps > 0 => {
                let nanos = (len as u128).saturating_mul(1_000_000_000) / u128::from(bps);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
            _ => Duration::ZERO,
        }
    }
}

/// One end of a link: a node incarnation and, once known, its connection id.
#[derive(Debug, Clone)]
pub(crate) struct End {
    pub(crate) node: usize,
    pub(crate) incarnation: u32,
    pub(crate) conn: Option<ConnectionId>,
    /// Still able to send (no FIN sent from this end).
    pub(crate) open: bool,
    /// Bytes that arrived before the connection existed (the dialer learns of the accept
    /// one latency after the acceptor starts talking).
    pub(crate) early: BytesMut,
    /// EOF arrived before the connection existed.
    pub(crate) early_eof: bool,
}

/// A TCP-like connection between two ends (`ends[0]` dialed `ends[1]`).
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) ends: [End; 2],
    pub(crate) params: LinkParams,
    /// Transmitter busy until (per sending side), for bandwidth.
    pub(crate) busy_until: [Instant; 2],
    /// Arrival of the last segment sent by each side (keeps order under jitter).
    pub(crate) last_arrival: [Instant; 2],
    /// A segment was lost: the link carries nothing more.
    pub(crate) dead: bool,
    /// A partition cut the link: segments vanish silently.
    pub(crate) blackholed: bool,
}

impl Link {
    pub(crate) fn new(ends: [End; 2], params: LinkParams, now: Instant) -> Link {
        Link {
            ends,
            params,
            busy_until: [now; 2],
            last_arrival: [now; 2],
            dead: false,
            blackholed: false,
        }
    }

    /// The arrival time at the far end of a segment of `len` bytes sent now by `side`.
    pub(crate) fn schedule(
        &mut self,
        side: usize,
        len: usize,
        now: Instant,
        rng: &mut ChaCha20Rng,
    ) -> Instant {
        let i = side & 1;
        let start = self.busy_until[i].max(now);
        let done = start + self.params.serialization(len);
        self.busy_until[i] = done;
        let arrival = (done + self.params.delay(rng)).max(self.last_arrival[i]);
        self.last_arrival[i] = arrival;
        arrival
    }
}

/// Identifies a link.
pub(crate) type LinkId = u64;

/// Something the network does at a given instant.
#[derive(Debug)]
pub(crate) enum NetEvent {
    /// A dialer's connection request reaches the target's listener.
    Connect {
        dialer: usize,
        incarnation: u32,
        conn: ConnectionId,
        from: SocketAddr,
        to: SocketAddr,
    },
    /// The dialer learns its connection `conn` to `to` was accepted.
    Accepted {
        link: LinkId,
        conn: ConnectionId,
        to: SocketAddr,
    },
    /// The dialer learns nobody listens there.
    Refused {
        dialer: usize,
        incarnation: u32,
        conn: ConnectionId,
    },
    /// Bytes reach end `to` of `link`.
    Segment {
        link: LinkId,
        to: usize,
        bytes: Bytes,
    },
    /// EOF (or a socket error) reaches end `to` of `link`.
    Fin { link: LinkId, to: usize },
}

impl NetEvent {
    /// A short name for traces.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            NetEvent::Connect { .. } => "connect",
            NetEvent::Accepted { .. } => "accepted",
            NetEvent::Refused { .. } => "refused",
            NetEvent::Segment { .. } => "segment",
            NetEvent::Fin { .. } => "fin",
        }
    }
}

/// Timed network events, popped in (time, insertion) order.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    events: BTreeMap<(Instant, u64), NetEvent>,
    next_seq: u64,
}

impl EventQueue {
    pub(crate) fn push(&mut self, at: Instant, event: NetEvent) {
        self.next_seq += 1;
        self.events.insert((at, self.next_seq), event);
    }

    pub(crate) fn next_time(&self) -> Option<Instant> {
        self.events.first_key_value().map(|((at, _), _)| *at)
    }

    /// The earliest event due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<NetEvent> {
        let (&(at, _), _) = self.events.first_key_value()?;
        if at > now {
            return None;
        }
        self.events.pop_first().map(|(_, event)| event)
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Which nodes can reach which: each node is in one group; only equal groups connect.
#[derive(Debug, Default, Clone)]
pub(crate) struct Partition {
    groups: BTreeMap<usize, u32>,
}

impl Partition {
    /// Puts `nodes` in a group of their own (everything else stays in group 0).
    pub(crate) fn isolate(&mut self, nodes: &[usize], group: u32) {
        for &n in nodes {
            self.groups.insert(n, group);
        }
    }

    pub(crate) fn heal(&mut self) {
        self.groups.clear();
    }

    pub(crate) fn separated(&self, a: usize, b: usize) -> bool {
        self.groups.get(&a).copied().unwrap_or(0) != self.groups.get(&b).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn jitter_never_reorders_a_direction_and_bandwidth_serializes() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let now = Instant::now();
        let end = |node| End {
            node,
            incarnation: 0,
            conn: None,
            open: true,
            early: BytesMut::new(),
            early_eof: false,
        };
        let params = LinkParams {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(50),
            loss: 0.0,
            bandwidth: Some(1_000_000),
        };
        let mut link = Link::new([end(0), end(1)], params, now);
        let mut last = now;
        for _ in 0..100 {
            let at = link.schedule(0, 1000, now, &mut rng);
            assert!(at >= last);
            last = at;
        }
        // 100 kB at 1 MB/s takes 100 ms before the last one even leaves.
        assert!(last >= now + Duration::from_millis(110));
    }

    #[test]
    fn loss_probability_is_roughly_honoured() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let params = LinkParams {
            loss: 0.25,
            ..LinkParams::default()
        };
        let lost = (0..4000).filter(|_| params.lose(&mut rng)).count();
        assert!((800..1200).contains(&lost), "{lost}");
        assert!(!LinkParams::default().lose(&mut rng));
    }
}
