//! Per-peer counters, per channel: messages and bytes sent and received, the depth of the
//! peer's outbound queue for each backpressure channel and of what its connection holds for
//! the application, and drops by reason. Atomics behind one `Arc` per peer: the Router
//! updates what it sends and queues, the peer's `Link` what it receives (each only for its
//! own peer, so the cache lines are not contended), and an exporter on any thread reads
//! them. Each counter has exactly one writer (the Router, or the peer's `Link`), so an
//! update is a plain relaxed load and store, not a locked read-modify-write. Core keeps no registry behind a lock: the node machine hands out each peer's
//! `Arc` (`Node::peer_counters`) when the peer comes up, and a driver keeps the list its
//! exporters read.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::id::NodeId;

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
}

/// The counters of one routed peer (see the module docs).
#[derive(Debug)]
pub struct PeerCounters {
    node: NodeId,
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
}

/// A copy of [`PeerCounters`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// The peer.
    pub node: NodeId,
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
    pub(crate) fn new(node: NodeId, channels: impl IntoIterator<Item = u8>) -> Self {
        let mut ids: Vec<u8> = channels.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        PeerCounters {
            node,
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

    /// A message entered the peer's backpressure queue for `channel`.
    pub(crate) fn enqueued(&self, channel: u8) {
        if let Some(c) = self.channel(channel) {
            add(&c.enqueued, 1);
        }
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
        PeerSnapshot {
            node: self.node,
            channels: self
                .channels
                .iter()
                .map(|(channel, c)| {
                    // `sent` first: read in this order the depth is never below the truth.
                    let sent_messages = get(&c.sent_messages);
                    let enqueued = get(&c.enqueued);
                    ChannelSnapshot {
                        channel: *channel,
                        sent_messages,
                        sent_bytes: get(&c.sent_bytes),
                        received_messages: get(&c.received_messages),
                        received_bytes: get(&c.received_bytes),
                        queued: enqueued.saturating_sub(sent_messages),
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

    #[test]
    fn counts_land_on_their_channel_and_unknown_channels_are_ignored() {
        let node = NodeId::from_bytes([3; 20]);
        let peer = PeerCounters::new(node, [0x30, 0x20, 0x30]);
        peer.sent(0x20, 100);
        peer.sent(0x20, 50);
        peer.received(0x30, 7);
        peer.sent(0x99, 1_000);
        for _ in 0..4 {
            peer.enqueued(0x30);
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
        assert_eq!(
            (
                snapshot.dropped_queue_full,
                snapshot.dropped_peer_gone,
                snapshot.inbound_held
            ),
            (2, 3, 5)
        );
    }
}
