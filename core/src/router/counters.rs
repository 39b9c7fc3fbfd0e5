//! The node's counters: what the Router handed to connections and every message it did not,
//! by reason; what the connections received; dials and handshakes by outcome. Atomics
//! behind an `Arc` (the Router and every connection's `Link` share one), so a metrics
//! exporter on another thread reads them without a lock and without asking the owner.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::connection::{ConnectionError, FailureKind};

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
    received_messages: AtomicU64,
    received_bytes: AtomicU64,
    dials_succeeded: AtomicU64,
    dials_failed: AtomicU64,
    handshakes_succeeded: AtomicU64,
    handshakes_auth_failure: AtomicU64,
    handshakes_invalid_node_info: AtomicU64,
    handshakes_incompatible: AtomicU64,
    handshakes_self: AtomicU64,
    handshakes_other_failure: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_peer_gone: AtomicU64,
    dropped_not_connected: AtomicU64,
    dropped_no_channel: AtomicU64,
    dropped_channel_not_open: AtomicU64,
    undelivered_inbound: AtomicU64,
    pex_addresses_received: AtomicU64,
    pex_addresses_new: AtomicU64,
    store_transactions: AtomicU64,
    store_operations: AtomicU64,
}

/// A copy of [`RouterCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Messages handed to connections.
    pub sent_messages: u64,
    /// Payload bytes handed to connections.
    pub sent_bytes: u64,
    /// Messages received (every channel, PEX included).
    pub received_messages: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Dials whose connect succeeded.
    pub dials_succeeded: u64,
    /// Dials whose connect failed or timed out.
    pub dials_failed: u64,
    /// Handshakes (SecretConnection and NodeInfo) that completed.
    pub handshakes_succeeded: u64,
    /// Handshakes that failed: the peer could not prove its identity, or timed out.
    pub handshakes_auth_failure: u64,
    /// Handshakes that failed on an invalid NodeInfo.
    pub handshakes_invalid_node_info: u64,
    /// Handshakes with a peer on another network or block version, or no common channel.
    pub handshakes_incompatible: u64,
    /// Handshakes that reached ourselves.
    pub handshakes_self: u64,
    /// Handshakes that ended otherwise (the peer closed, a protocol error).
    pub handshakes_other_failure: u64,
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
    /// Received messages the application never took: the connection ended (or its peer's
    /// messages were discarded as undecodable) while they waited.
    pub undelivered_inbound: u64,
    /// Addresses in the PEX answers received.
    pub pex_addresses_received: u64,
    /// Of those, the ones the peer store took as new.
    pub pex_addresses_new: u64,
    /// Batches of peer-store operations handed to the store (one transaction each).
    pub store_transactions: u64,
    /// Peer-store operations (record upserts and deletions) in those batches.
    pub store_operations: u64,
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

/// Adds `value` to a counter any thread may update.
fn add(counter: &AtomicU64, value: usize) {
    counter.fetch_add(u64::try_from(value).unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl RouterCounters {
    pub(crate) fn sent(&self, bytes: usize) {
        self.sent_messages.fetch_add(1, Ordering::Relaxed);
        self.sent_bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn received(&self, messages: usize, bytes: usize) {
        self.received_messages.fetch_add(
            u64::try_from(messages).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.received_bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn undelivered(&self, messages: usize) {
        if messages > 0 {
            self.undelivered_inbound.fetch_add(
                u64::try_from(messages).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
    }

    pub(crate) fn dial(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.dials_succeeded
        } else {
            &self.dials_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A handshake ended: `None` when it completed, else the reason the connection closed
    /// before it did.
    pub(crate) fn handshake(&self, failure: Option<&ConnectionError>) {
        let counter = match failure.map(ConnectionError::kind) {
            None => &self.handshakes_succeeded,
            Some(FailureKind::AuthFailure) => &self.handshakes_auth_failure,
            Some(FailureKind::InvalidNodeInfo) => &self.handshakes_invalid_node_info,
            Some(FailureKind::Incompatible) => &self.handshakes_incompatible,
            Some(FailureKind::SelfConnection) => &self.handshakes_self,
            Some(FailureKind::Protocol | FailureKind::Closed) => &self.handshakes_other_failure,
        };
        counter.fetch_add(1, Ordering::Relaxed);
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

    pub(crate) fn pex_answer(&self, received: usize, new: usize) {
        add(&self.pex_addresses_received, received);
        add(&self.pex_addresses_new, new);
    }

    pub(crate) fn store_batch(&self, operations: usize) {
        add(&self.store_transactions, 1);
        add(&self.store_operations, operations);
    }

    /// The current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            sent_messages: get(&self.sent_messages),
            sent_bytes: get(&self.sent_bytes),
            received_messages: get(&self.received_messages),
            received_bytes: get(&self.received_bytes),
            dials_succeeded: get(&self.dials_succeeded),
            dials_failed: get(&self.dials_failed),
            handshakes_succeeded: get(&self.handshakes_succeeded),
            handshakes_auth_failure: get(&self.handshakes_auth_failure),
            handshakes_invalid_node_info: get(&self.handshakes_invalid_node_info),
            handshakes_incompatible: get(&self.handshakes_incompatible),
            handshakes_self: get(&self.handshakes_self),
            handshakes_other_failure: get(&self.handshakes_other_failure),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_peer_gone: get(&self.dropped_peer_gone),
            dropped_not_connected: get(&self.dropped_not_connected),
            dropped_no_channel: get(&self.dropped_no_channel),
            dropped_channel_not_open: get(&self.dropped_channel_not_open),
            undelivered_inbound: get(&self.undelivered_inbound),
            pex_addresses_received: get(&self.pex_addresses_received),
            pex_addresses_new: get(&self.pex_addresses_new),
            store_transactions: get(&self.store_transactions),
            store_operations: get(&self.store_operations),
        }
    }
}
