//! What goes in and out of the Router: envelopes, peer errors, actions and errors.

use std::net::SocketAddr;

use bytes::Bytes;

use super::table::ConnectionId;
use crate::address::NodeAddress;
use crate::id::NodeId;
use crate::peer_manager::{PeerUpdate, StoreOp};

/// Where an outbound envelope goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One connected peer.
    Peer(NodeId),
    /// Every connected peer that advertised the channel.
    Broadcast,
}

/// A message on a channel: inbound (`from` set) or outbound (`to` set). The core routes
/// bytes; `tmp2p_core::typed` turns them into typed messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sender (inbound envelopes).
    pub from: Option<NodeId>,
    /// The destination (outbound envelopes).
    pub to: Option<Target>,
    /// The channel id.
    pub channel: u8,
    /// The encoded message.
    pub message: Bytes,
}

impl Envelope {
    /// An outbound envelope for one peer.
    pub fn to_peer(peer: NodeId, channel: u8, message: Bytes) -> Self {
        Envelope {
            from: None,
            to: Some(Target::Peer(peer)),
            channel,
            message,
        }
    }

    /// An outbound envelope for every peer that advertised `channel`.
    pub fn broadcast(channel: u8, message: Bytes) -> Self {
        Envelope {
            from: None,
            to: Some(Target::Broadcast),
            channel,
            message,
        }
    }
}

/// A reactor's complaint about a peer (ADR 062 `PeerError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError {
    /// The peer.
    pub node: NodeId,
    /// What it did wrong (for logs).
    pub reason: String,
    /// `true`: disconnect now. `false`: lower its score (or evict it when at capacity).
    pub fatal: bool,
}

impl From<crate::typed::UndecodableMessage> for PeerError {
    /// An undecodable message is fatal for its sender, as on CometBFT (whose reactors fail
    /// on it and the switch disconnects the peer); v0.35 only dropped it.
    fn from(e: crate::typed::UndecodableMessage) -> Self {
        PeerError {
            node: e.from,
            reason: e.error.to_string(),
            fatal: true,
        }
    }
}

/// What the driver must do for the Router (pulled with `Router::poll_action`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterAction {
    /// Open a TCP connection to `socket` for `conn`, then report `dial_succeeded` or
    /// `dial_failed`. The router times the dial out itself (a `Close` follows).
    Dial {
        /// The connection this dial is for.
        conn: ConnectionId,
        /// The peer's address being dialed.
        address: NodeAddress,
        /// Where to connect.
        socket: SocketAddr,
    },
    /// Resolve the address's hostname and report with `Router::resolved`.
    Resolve {
        /// The address whose hostname needs DNS.
        address: NodeAddress,
    },
    /// Hand `message` to the connection's `PeerConnection::send`, then confirm with
    /// `Router::messages_accepted` once the connection took it.
    Send {
        /// The connection.
        conn: ConnectionId,
        /// The peer on it.
        node: NodeId,
        /// The channel.
        channel: u8,
        /// The encoded message.
        message: Bytes,
    },
    /// Close the connection (gracefully if it is up; abandon the dial if it is dialing).
    /// The driver still reports the connection's `Closed` event.
    Close {
        /// The connection.
        conn: ConnectionId,
    },
    /// An inbound envelope reported to the Router (under the node machine: only its own
    /// channels' messages, such as PEX; the application's leave each connection's `Link`
    /// directly).
    Deliver(Envelope),
    /// A peer went up or down.
    PeerUpdate(PeerUpdate),
    /// Apply to the peer database.
    Store(StoreOp),
    /// A send to `node` on the backpressure channel `channel` was refused with
    /// [`SendError::Full`] and that peer's queue for the channel has room again: retry it.
    Writable {
        /// The peer.
        node: NodeId,
        /// The channel.
        channel: u8,
    },
}

/// What a channel does when a peer's queue for it is full (chosen when it is opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// The send waits: [`Router::send`](super::Router::send) hands the message back with
    /// [`SendError::Full`] and announces room with [`RouterAction::Writable`]. Nothing the
    /// Router accepted is dropped unless the peer goes down first. Each peer has its own
    /// queue per channel, so a full peer never holds up another.
    #[default]
    Backpressure,
    /// The connection's QoS queue (`RouterConfig::queue_kind`: FIFO, priority or WDRR)
    /// drops by its policy; every drop is counted
    /// ([`DropReason::QueueFull`](super::DropReason::QueueFull)) and logged at debug. For
    /// gossip that a later message supersedes.
    Drop,
}

/// Why [`Router::send`](super::Router::send) did not queue a message for every target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The channel is not open on this node.
    #[error("channel {0:#04x} is not open")]
    ChannelNotOpen(u8),
    /// The target peer is not connected (or is being disconnected), or a broadcast found no
    /// connected peer with the channel.
    #[error("no connected peer to send to")]
    NotConnected,
    /// The target peer did not advertise the channel.
    #[error("peer {node} did not advertise channel {channel:#04x}")]
    NoChannel {
        /// The peer.
        node: NodeId,
        /// The channel.
        channel: u8,
    },
    /// Backpressure: these peers' queues for the channel are full; the message was queued
    /// for every other target. Retry for `peers` after [`RouterAction::Writable`].
    #[error("the queue of {} peer(s) for channel {:#04x} is full", peers.len(), envelope.channel)]
    Full {
        /// The envelope, handed back.
        envelope: Envelope,
        /// The peers whose queue is full.
        peers: Vec<NodeId>,
    },
}

/// Why the Router refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// The channel id is already open.
    #[error("channel {0:#04x} is already open")]
    DuplicateChannel(u8),
    /// Channels are advertised in NodeInfo, so they must be opened before any connection.
    #[error("channels must be opened before the first connection")]
    ChannelsFrozen,
    /// A channel descriptor or queue setting is invalid.
    #[error("invalid channel configuration: {0}")]
    InvalidChannel(String),
    /// The configuration is invalid.
    #[error("invalid router configuration: {0}")]
    InvalidConfig(String),
    /// The connection id is unknown or stale.
    #[error("unknown or stale connection {0}")]
    UnknownConnection(ConnectionId),
    /// The PeerManager refused the request (e.g. an address of ourselves, an inactive peer,
    /// a full IP group).
    #[error(transparent)]
    Peer(#[from] crate::peer_manager::PeerManagerError),
    /// The peer is not connected.
    #[error("peer {0} is not connected")]
    NotConnected(NodeId),
}
