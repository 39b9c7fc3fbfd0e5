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
    pex_request_bytes_received: AtomicU64,
    pex_request_bytes_sent: AtomicU64,
    pex_addrs_bytes_received: AtomicU64,
    pex_addrs_bytes_sent: AtomicU64,
}

/// The PEX messages (`tendermint.p2p.Message`'s two kinds), for per-type byte counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PexMessageType {
    /// `PexRequest`.
    Request,
    /// `PexAddrs`.
    Addrs,
}

impl PexMessageType {
    /// The kind of an encoded `tendermint.p2p.Message`, read off its first field tag (the
    /// oneof holds exactly one field: 1 request, 2 addresses); `None` for anything else.
    pub fn of(message: &[u8]) -> Option<Self> {
        match message.first() {
            Some(0x0a) => Some(PexMessageType::Request),
            Some(0x12) => Some(PexMessageType::Addrs),
            _ => None,
        }
    }

    /// CometBFT's `message_type` metric label: the Go package and type.
    pub fn metric_label(self) -> &'static str {
        match self {
            PexMessageType::Request => "p2p_PexRequest",
            PexMessageType::Addrs => "p2p_PexAddrs",
        }
    }
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
    /// Bytes of `PexRequest`s received.
    pub pex_request_bytes_received: u64,
    /// Bytes of `PexRequest`s sent.
    pub pex_request_bytes_sent: u64,
    /// Bytes of `PexAddrs` received.
    pub pex_addrs_bytes_received: u64,
    /// Bytes of `PexAddrs` sent.
    pub pex_addrs_bytes_sent: u64,
}

impl CountersSnapshot {
    /// PEX bytes of `kind`, received or `sent`.
    pub fn pex_bytes(&self, kind: PexMessageType, sent: bool) -> u64 {
        match (kind, sent) {
            (PexMessageType::Request, false) => self.pex_request_bytes_received,
            (PexMessageType::Request, true) => self.pex_request_bytes_sent,
            (PexMessageType::Addrs, false) => self.pex_addrs_bytes_received,
            (PexMessageType::Addrs, true) => self.pex_addrs_bytes_sent,
        }
    }

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
        add(&self.sent_messages, 1);
        add(&self.sent_bytes, bytes);
    }

    pub(crate) fn received(&self, messages: usize, bytes: usize) {
        add(&self.received_messages, messages);
        add(&self.received_bytes, bytes);
    }

    pub(crate) fn undelivered(&self, messages: usize) {
        if messages > 0 {
            add(&self.undelivered_inbound, messages);
        }
    }

    pub(crate) fn dial(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.dials_succeeded
        } else {
            &self.dials_failed
        };
        add(counter, 1);
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
        add(counter, 1);
    }

    pub(crate) fn dropped(&self, reason: DropReason, messages: usize) {
        let counter = match reason {
            DropReason::QueueFull => &self.dropped_queue_full,
            DropReason::PeerGone => &self.dropped_peer_gone,
            DropReason::NotConnected => &self.dropped_not_connected,
            DropReason::NoChannel => &self.dropped_no_channel,
            DropReason::ChannelNotOpen => &self.dropped_channel_not_open,
        };
        add(counter, messages);
    }

    pub(crate) fn pex_answer(&self, received: usize, new: usize) {
        add(&self.pex_addresses_received, received);
        add(&self.pex_addresses_new, new);
    }

    /// A PEX message was received (`sent` false) or sent; counted by its type.
    pub(crate) fn pex_message(&self, message: &[u8], sent: bool) {
        let counter = match (PexMessageType::of(message), sent) {
            (Some(PexMessageType::Request), false) => &self.pex_request_bytes_received,
            (Some(PexMessageType::Request), true) => &self.pex_request_bytes_sent,
            (Some(PexMessageType::Addrs), false) => &self.pex_addrs_bytes_received,
            (Some(PexMessageType::Addrs), true) => &self.pex_addrs_bytes_sent,
            (None, _) => return,
        };
        add(counter, message.len());
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
            pex_request_bytes_received: get(&self.pex_request_bytes_received),
            pex_request_bytes_sent: get(&self.pex_request_bytes_sent),
            pex_addrs_bytes_received: get(&self.pex_addrs_bytes_received),
            pex_addrs_bytes_sent: get(&self.pex_addrs_bytes_sent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::pex::PexInner;
    use crate::typed::{ChannelCodec, WrapperCodec};
    use tmp2p_proto::p2p::{Message, PexAddrs, PexRequest};

    #[test]
    fn pex_bytes_are_counted_by_type_and_direction() {
        let codec = WrapperCodec::<Message, PexInner>::new();
        let request = codec.encode(&PexInner::Request(PexRequest {}));
        let addrs = codec.encode(&PexInner::Addrs(PexAddrs { addrs: Vec::new() }));
        assert_eq!(PexMessageType::of(&request), Some(PexMessageType::Request));
        assert_eq!(PexMessageType::of(&addrs), Some(PexMessageType::Addrs));
        assert_eq!(PexMessageType::of(&[0x1a, 0]), None);
        assert_eq!(PexMessageType::of(&[]), None);
        let counters = RouterCounters::default();
        counters.pex_message(&request, false);
        counters.pex_message(&addrs, true);
        counters.pex_message(&addrs, true);
        counters.pex_message(&[0xff], true);
        let snapshot = counters.snapshot();
        assert_eq!(
            snapshot.pex_bytes(PexMessageType::Request, false),
            request.len() as u64
        );
        assert_eq!(snapshot.pex_bytes(PexMessageType::Request, true), 0);
        assert_eq!(
            snapshot.pex_bytes(PexMessageType::Addrs, true),
            2 * addrs.len() as u64
        );
    }
}
