//! The Router's delivery counters: what it handed to connections and every message it did
//! not, by reason. Atomics behind an `Arc`, so a metrics exporter on another thread reads
//! them without a lock and without asking the Router's owner.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why an outbound message was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A drop-policy channel's queue was full and its policy dropped the message.
    QueueFull,
    /// The peer went down (or was being closed) while the message waited for it.
    PeerGone,
    /// No connected peer to send to (a send to an unknown peer, or a broadcast with none).
    NotConnected,
    /// The peer did not advertise the channel.
    NoChannel,
    /// The channel is not open on this node.
    ChannelNotOpen,
}

/// Counters shared with whoever exports them (see the module docs).
#[derive(Debug, Default)]
pub struct RouterCounters {
    sent_messages: AtomicU64,
    sent_bytes: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_peer_gone: AtomicU64,
    dropped_not_connected: AtomicU64,
    dropped_no_channel: AtomicU64,
    dropped_channel_not_open: AtomicU64,
}

/// A copy of [`RouterCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Messages handed to connections.
    pub sent_messages: u64,
    /// Payload bytes handed to connections.
    pub sent_bytes: u64,
    /// Dropped by a drop-policy queue.
    pub dropped_queue_full: u64,
    /// Dropped because the peer went down first.
    pub dropped_peer_gone: u64,
    /// Dropped for want of a connected peer.
    pub dropped_not_connected: u64,
    /// Dropped because the peer lacks the channel.
    pub dropped_no_channel: u64,
    /// Dropped because the channel is not open here.
    pub dropped_channel_not_open: u64,
}

impl CountersSnapshot {
    /// Every drop, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            .saturating_add(self.dropped_peer_gone)
            .saturating_add(self.dropped_not_connected)
            .saturating_add(self.dropped_no_channel)
            .saturating_add(self.dropped_channel_not_open)
    }
}

impl RouterCounters {
    pub(crate) fn sent(&self, bytes: usize) {
        self.sent_messages.fetch_add(1, Ordering::Relaxed);
        self.sent_bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, reason: DropReason, messages: usize) {
        let counter = match reason {
            DropReason::QueueFull => &self.dropped_queue_full,
            DropReason::PeerGone => &self.dropped_peer_gone,
            DropReason::NotConnected => &self.dropped_not_connected,
            DropReason::NoChannel => &self.dropped_no_channel,
            DropReason::ChannelNotOpen => &self.dropped_channel_not_open,
        };
        counter.fetch_add(
            u64::try_from(messages).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            sent_messages: get(&self.sent_messages),
            sent_bytes: get(&self.sent_bytes),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_peer_gone: get(&self.dropped_peer_gone),
            dropped_not_connected: get(&self.dropped_not_connected),
            dropped_no_channel: get(&self.dropped_no_channel),
            dropped_channel_not_open: get(&self.dropped_channel_not_open),
        }
    }
}
