//! Per-peer counters, per channel: messages and bytes sent and received, the depth of the
//! peer's outbound queue for each backpressure channel and of what its connection holds for
//! the application, and drops by reason; per peer its ping round-trip times (last value
//! and a histogram) and where it came from ([`PeerOrigin`]). Atomics behind one `Arc` per peer: the Router
//! updates what it sends and queues, the peer's `Link` what it receives (each only for its
//! own peer, so the cache lines are not contended), and an exporter on any thread reads
//! them. Each counter has exactly one writer (the Router, or the peer's `Link`), so an
//! update is a plain relaxed load and store, not a locked read-modify-write. Core keeps no registry behind a lock: the node machine hands out each peer's
//! `Arc` (`Node::peer_counters`) when the peer comes up, and a driver keeps the list its
//! exporters read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::id::NodeId;
use crate::node_info::NodeInfo;

/// Upper bounds (seconds) of the ping round-trip histogram's buckets; a last, unbounded
/// bucket takes the rest. From loopback (sub-millisecond) to a peer across the world on a
/// loaded link.
pub const RTT_BUCKETS_SECONDS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Who a routed peer is and where its connection came from, fixed when the peer is
/// routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOrigin {
    /// We dialed it.
    pub outbound: bool,
    /// The socket address at the other end.
    pub remote: SocketAddr,
    /// When it was routed (the node machine's clock).
    pub since: Instant,
    /// The NodeInfo it sent in the handshake (moniker, version, network, listen address,
    /// channels), shared by every snapshot.
    pub info: Arc<NodeInfo>,
}

/// One channel's counters of one peer.
#[derive(Debug, Default)]
struct ChannelCounters {
    sent_messages: AtomicU64,
    sent_bytes: AtomicU64,
    received_messages: AtomicU64,
    received_bytes: AtomicU64,
    /// Messages put in the peer's backpressure queue for this channel (all of which are
    /// sent from there: the depth is this less `sent_messages`).
    enqueued: AtomicU64,
    /// Their payload bytes.
    enqueued_bytes: AtomicU64,
}

/// Ping round-trip times: the last one, and a histogram (per-bucket counts, not
/// cumulative) with their sum.
#[derive(Debug, Default)]
struct RttCounters {
    last_nanos: AtomicU64,
    buckets: [AtomicU64; RTT_BUCKETS_SECONDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// The counters of one routed peer (see the module docs).
#[derive(Debug)]
pub struct PeerCounters {
    node: NodeId,
    origin: PeerOrigin,
    rtt: RttCounters,
    /// The channels the peer and we share, ids ascending.
    channels: Vec<(u8, ChannelCounters)>,
    dropped_queue_full: AtomicU64,
    dropped_peer_gone: AtomicU64,
    inbound_held: AtomicU64,
}

/// Counters are the same when they are one peer's (commands that carry them compare).
impl PartialEq for PeerCounters {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl Eq for PeerCounters {}

/// A copy of one channel's counters of one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelSnapshot {
    /// The channel.
    pub channel: u8,
    /// Messages handed to the peer's connection.
    pub sent_messages: u64,
    /// Payload bytes handed to the peer's connection.
    pub sent_bytes: u64,
    /// Messages received from the peer once it was routed.
    pub received_messages: u64,
    /// Payload bytes received from the peer once it was routed.
    pub received_bytes: u64,
    /// Messages waiting in the peer's outbound queue for this backpressure channel.
    pub queued: u64,
    /// Their payload bytes.
    pub queued_bytes: u64,
}

/// A copy of a peer's ping round-trip times.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RttSnapshot {
    /// The last one measured; `None` before the first pong.
    pub last: Option<Duration>,
    /// Per bucket of [`RTT_BUCKETS_SECONDS`] (then the unbounded one), how many fell in
    /// it (not cumulative).
    pub buckets: Vec<u64>,
    /// The sum of all of them.
    pub sum: Duration,
}

impl RttSnapshot {
    /// How many were measured.
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |n, b| n.saturating_add(*b))
    }
}

/// A copy of [`PeerCounters`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// The peer.
    pub node: NodeId,
    /// Where its connection came from.
    pub origin: PeerOrigin,
    /// Its ping round-trip times.
    pub rtt: RttSnapshot,
    /// Per shared channel, ids ascending.
    pub channels: Vec<ChannelSnapshot>,
    /// Messages a drop-policy queue dropped.
    pub dropped_queue_full: u64,
    /// Messages still queued when the peer went down (counted then).
    pub dropped_peer_gone: u64,
    /// Received messages its connection holds for the application.
    pub inbound_held: u64,
}

/// Adds to a counter with one writer (see the module docs): readers see each value whole.
fn add(counter: &AtomicU64, value: usize) {
    let value = u64::try_from(value).unwrap_or(u64::MAX);
    let sum = counter.load(Ordering::Relaxed).saturating_add(value);
    counter.store(sum, Ordering::Relaxed);
}

impl PeerCounters {
    /// Counters for `node` on `channels` (the ones both sides have).
    pub(crate) fn new(
        node: NodeId,
        channels: impl IntoIterator<Item = u8>,
        origin: PeerOrigin,
    ) -> Self {
        let mut ids: Vec<u8> = channels.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        PeerCounters {
            node,
            origin,
            rtt: RttCounters::default(),
            channels: ids.into_iter().map(|c| (c, Default::default())).collect(),
            dropped_queue_full: AtomicU64::new(0),
            dropped_peer_gone: AtomicU64::new(0),
            inbound_held: AtomicU64::new(0),
        }
    }

    /// The peer.
    pub fn node(&self) -> NodeId {
        self.node
    }

    fn channel(&self, channel: u8) -> Option<&ChannelCounters> {
        let index = self.channels.binary_search_by_key(&channel, |(c, _)| *c);
        index
            .ok()
            .and_then(|i| self.channels.get(i))
            .map(|(_, c)| c)
    }

    pub(crate) fn sent(&self, channel: u8, bytes: usize) {
        if let Some(c) = self.channel(channel) {
            add(&c.sent_messages, 1);
            add(&c.sent_bytes, bytes);
        }
    }

    pub(crate) fn received(&self, channel: u8, bytes: usize) {
        if let Some(c) = self.channel(channel) {
            add(&c.received_messages, 1);
            add(&c.received_bytes, bytes);
        }
    }

    /// A message of `bytes` entered the peer's backpressure queue for `channel`.
    pub(crate) fn enqueued(&self, channel: u8, bytes: usize) {
        if let Some(c) = self.channel(channel) {
            add(&c.enqueued, 1);
            add(&c.enqueued_bytes, bytes);
        }
    }

    /// The peer answered a ping after `rtt`.
    pub(crate) fn rtt(&self, rtt: Duration) {
        let nanos = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        self.rtt.last_nanos.store(nanos, Ordering::Relaxed);
        let seconds = rtt.as_secs_f64();
        let bucket = RTT_BUCKETS_SECONDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(RTT_BUCKETS_SECONDS.len());
        if let Some(counter) = self.rtt.buckets.get(bucket) {
            add(counter, 1);
        }
        let sum = self
            .rtt
            .sum_nanos
            .load(Ordering::Relaxed)
            .saturating_add(nanos);
        self.rtt.sum_nanos.store(sum, Ordering::Relaxed);
    }

    /// Where the peer's connection came from.
    pub fn origin(&self) -> &PeerOrigin {
        &self.origin
    }

    pub(crate) fn dropped_queue_full(&self, messages: usize) {
        add(&self.dropped_queue_full, messages);
    }

    pub(crate) fn dropped_peer_gone(&self, messages: usize) {
        add(&self.dropped_peer_gone, messages);
    }

    pub(crate) fn set_inbound_held(&self, messages: usize) {
        let value = u64::try_from(messages).unwrap_or(u64::MAX);
        self.inbound_held.store(value, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> PeerSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let last = get(&self.rtt.last_nanos);
        PeerSnapshot {
            node: self.node,
            origin: self.origin.clone(),
            rtt: RttSnapshot {
                last: (last > 0).then(|| Duration::from_nanos(last)),
                buckets: self.rtt.buckets.iter().map(get).collect(),
                sum: Duration::from_nanos(get(&self.rtt.sum_nanos)),
            },
            channels: self
                .channels
                .iter()
                .map(|(channel, c)| {
                    // `sent` first: read in this order the depth is never below the truth.
                    let sent_messages = get(&c.sent_messages);
                    let sent_bytes = get(&c.sent_bytes);
                    let enqueued = get(&c.enqueued);
                    let enqueued_bytes = get(&c.enqueued_bytes);
                    ChannelSnapshot {
                        channel: *channel,
                        sent_messages,
                        sent_bytes,
                        received_messages: get(&c.received_messages),
                        received_bytes: get(&c.received_bytes),
                        queued: enqueued.saturating_sub(sent_messages),
                        queued_bytes: enqueued_bytes.saturating_sub(sent_bytes),
                    }
                })
                .collect(),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_peer_gone: get(&self.dropped_peer_gone),
            inbound_held: get(&self.inbound_held),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_config::NodeConfig;

    /// The NodeInfo a default configuration gives `node`.
    fn info(node: NodeId) -> Arc<NodeInfo> {
        let config = NodeConfig::new("test-chain", "127.0.0.1:26656".parse().unwrap());
        Arc::new(config.node_info(node))
    }

    #[test]
    fn counts_land_on_their_channel_and_unknown_channels_are_ignored() {
        let node = NodeId::from_bytes([3; 20]);
        let origin = PeerOrigin {
            outbound: true,
            remote: "10.0.0.1:26656".parse().unwrap(),
            since: crate::test_clock::epoch(),
            info: info(node),
        };
        let peer = PeerCounters::new(node, [0x30, 0x20, 0x30], origin.clone());
        peer.sent(0x20, 100);
        peer.sent(0x20, 50);
        peer.received(0x30, 7);
        peer.sent(0x99, 1_000);
        for _ in 0..4 {
            peer.enqueued(0x30, 10);
        }
        peer.dropped_queue_full(2);
        peer.dropped_peer_gone(3);
        peer.set_inbound_held(5);
        let snapshot = peer.snapshot();
        assert_eq!(snapshot.node, node);
        let ids: Vec<u8> = snapshot.channels.iter().map(|c| c.channel).collect();
        assert_eq!(ids, vec![0x20, 0x30]);
        assert_eq!(
            (
                snapshot.channels[0].sent_messages,
                snapshot.channels[0].sent_bytes
            ),
            (2, 150)
        );
        assert_eq!(
            (
                snapshot.channels[1].received_messages,
                snapshot.channels[1].received_bytes
            ),
            (1, 7)
        );
        assert_eq!(snapshot.channels[1].queued, 4);
        assert_eq!(snapshot.channels[1].queued_bytes, 40);
        assert_eq!(snapshot.origin, origin);
        assert_eq!(snapshot.rtt.last, None);
        assert_eq!(
            (
                snapshot.dropped_queue_full,
                snapshot.dropped_peer_gone,
                snapshot.inbound_held
            ),
            (2, 3, 5)
        );
    }

    #[test]
    fn round_trip_times_fall_in_their_buckets_and_add_up() {
        let origin = PeerOrigin {
            outbound: false,
            remote: "127.0.0.1:1".parse().unwrap(),
            since: crate::test_clock::epoch(),
            info: info(NodeId::from_bytes([4; 20])),
        };
        let peer = PeerCounters::new(NodeId::from_bytes([4; 20]), [0x00], origin);
        let ms = Duration::from_millis;
        for rtt in [
            Duration::from_micros(100),
            ms(1),
            ms(3),
            ms(3),
            Duration::from_secs(9),
        ] {
            peer.rtt(rtt);
        }
        let rtt = peer.snapshot().rtt;
        assert_eq!(rtt.last, Some(Duration::from_secs(9)));
        assert_eq!(rtt.count(), 5);
        assert_eq!(
            rtt.sum,
            Duration::from_micros(100) + ms(7) + Duration::from_secs(9)
        );
        // <= 0.5 ms, <= 1 ms (inclusive), <= 5 ms twice, and the unbounded bucket.
        let mut expected = vec![0u64; RTT_BUCKETS_SECONDS.len() + 1];
        expected[0] = 1;
        expected[1] = 1;
        expected[3] = 2;
        expected[RTT_BUCKETS_SECONDS.len()] = 1;
        assert_eq!(rtt.buckets, expected);
    }
}
