//! `DriverError`: every way the smol driver's API can fail, one enum for the crate.

use std::net::SocketAddr;

use tmp2p_core::node::NodeError;
use tmp2p_core::node_config::NodeConfigError;
use tmp2p_core::pex::PexError;
use tmp2p_core::router::window::SendRefused;
use tmp2p_core::router::RouterError;
use tmp2p_core::NodeId;
use tmp2p_store::StoreError;

use crate::envelope::Envelope;

/// Why a node could not start or a request to a running node failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The node configuration is invalid (checked before anything starts).
    #[error("invalid node configuration: {0}")]
    Config(#[from] NodeConfigError),
    /// The Router refused a channel or a peer address.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The peer store could not be read at start.
    #[error("peer store: {0}")]
    Store(#[from] StoreError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// An executor thread could not be started.
    #[error("cannot start executor thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A driver option is out of range; the text names it and its limit.
    #[error("invalid driver option: {0}")]
    Options(String),
    /// The PEX configuration is invalid (checked by [`crate::NodeBuilder::enable_pex`]).
    #[error("invalid PEX configuration: {0}")]
    Pex(#[from] PexError),
    /// The node has stopped (or is stopping): the request was not carried out.
    #[error("the node is not running")]
    Stopped,
    /// The target peer is not connected, or went down while the send waited for room: the
    /// message was not sent.
    #[error("peer {0} is not connected")]
    NotConnected(NodeId),
    /// The target peer did not advertise the channel: the message was not sent.
    #[error("peer {node} did not advertise channel {channel:#04x}")]
    NoChannel {
        /// The peer.
        node: NodeId,
        /// The channel.
        channel: u8,
    },
    /// An envelope without a target (`to` is `None`).
    #[error("envelope has no target")]
    NoTarget,
}

impl From<SendRefused> for DriverError {
    fn from(refused: SendRefused) -> Self {
        match refused {
            SendRefused::NotConnected(node) => DriverError::NotConnected(node),
            SendRefused::NoChannel { node, channel } => DriverError::NoChannel { node, channel },
        }
    }
}

impl DriverError {
    /// The node machine's refusal, as this crate reports it.
    pub(crate) fn from_node(error: NodeError) -> Self {
        match error {
            NodeError::Config(e) => DriverError::Config(e),
            NodeError::Router(e) | NodeError::InitialPeer { error: e, .. } => {
                DriverError::Router(e)
            }
            NodeError::Pex(e) => DriverError::Pex(e),
            NodeError::AlreadyStarted => {
                DriverError::Options("the node has already started".into())
            }
        }
    }
}

/// Why [`ChannelSender::try_send`](crate::ChannelSender::try_send) did not queue a message.
#[derive(Debug, thiserror::Error)]
pub enum TrySendError<M> {
    /// Backpressure: these peers' queues for the channel are full. The envelope comes back;
    /// for a broadcast it was queued for every other peer, so retry it for `peers` only.
    #[error("the queue of {} peer(s) for the channel is full", peers.len())]
    Full {
        /// The envelope, handed back.
        envelope: Envelope<M>,
        /// The peers it was not queued for.
        peers: Vec<NodeId>,
    },
    /// Any other failure, as [`ChannelSender::send`](crate::ChannelSender::send) reports it.
    #[error(transparent)]
    Failed(DriverError),
}
