//! What the node machine hands its driver: the outputs it must carry out, and why it
//! refused a request.

use std::net::SocketAddr;

use crate::address::NodeAddress;
use crate::id::NodeId;
use crate::node_config::NodeConfigError;
use crate::peer_manager::{PeerUpdate, StoreOp};
use crate::pex::PexError;
use crate::router::window::WindowChange;
use crate::router::{ConnectionId, RouterError};

#[cfg(doc)]
use super::{Link, Node};
use super::{LinkCommand, PexEvent};

/// What the driver must do for the node machine (pulled with [`Node::poll_output`]).
#[derive(Debug, Clone, PartialEq)]
pub enum NodeOutput {
    /// Open a connection to `socket` for `conn`, then report [`Node::dial_succeeded`] or
    /// [`Node::dial_failed`]. The node times the dial out itself (a `Link` close follows).
    Dial {
        /// The connection this dial is for.
        conn: ConnectionId,
        /// The peer's address being dialed.
        address: NodeAddress,
        /// Where to connect.
        socket: SocketAddr,
    },
    /// Resolve the address's hostname and report with [`Node::resolved`].
    Resolve {
        /// The address whose hostname needs DNS.
        address: NodeAddress,
    },
    /// Hand this command to connection `conn`'s [`Link`] (a dial in flight: abandon it on
    /// `Close`). A `Send` for a peer comes before that peer's next `PeerUpdate`.
    Link {
        /// The connection.
        conn: ConnectionId,
        /// The command.
        command: LinkCommand,
    },
    /// The senders' windows must follow these changes (see
    /// [`SendWindows`](crate::router::window::SendWindows)); they come before the
    /// `PeerUpdate` they belong to. A driver without senders on other threads ignores them.
    Windows(Vec<WindowChange>),
    /// A peer went up or down.
    PeerUpdate(PeerUpdate),
    /// Apply these to the peer store, in one transaction.
    Store(Vec<StoreOp>),
    /// A send to `node` on `channel` was refused as full; its queue has room again.
    Writable {
        /// The peer.
        node: NodeId,
        /// The channel.
        channel: u8,
    },
    /// What the built-in PEX reactor did.
    Pex(PexEvent),
}

/// Why the node machine refused a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error("invalid node configuration: {0}")]
    Config(#[from] NodeConfigError),
    /// The Router refused a channel or a setting.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The PEX configuration is invalid.
    #[error("invalid PEX configuration: {0}")]
    Pex(#[from] PexError),
    /// A configured persistent or bootstrap peer was refused at start.
    #[error("configured peer {address} refused: {error}")]
    InitialPeer {
        /// The address.
        address: Box<NodeAddress>,
        /// Why.
        error: RouterError,
    },
    /// Channels and PEX must be set up before [`Node::start`], and it runs once.
    #[error("the node has already started")]
    AlreadyStarted,
}
