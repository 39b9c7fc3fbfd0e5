//! What the driver hands the application (inbound messages and peer updates) and the
//! [`Control`] through which code on the loop thread (the callback form, or a closure sent
//! with `NodeHandle::call`) talks to the router.

use std::time::Instant;

use tmp2p_core::address::NodeAddress;
use tmp2p_core::node::Node;
use tmp2p_core::peer_manager::PeerUpdate;
use tmp2p_core::router::{Envelope, PeerError, SendError};
use tmp2p_core::typed::ChannelCodec;
use tmp2p_core::NodeId;

use crate::send_windows::BlockingWindows;

/// Something the application must learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// A message from a peer (`from` is set).
    Message(Envelope),
    /// A peer went up or down.
    PeerUpdate(PeerUpdate),
    /// A send on the loop thread to `node` on `channel` was refused with
    /// `SendError::Full` and that peer's queue for the channel has room again: retry it.
    Writable {
        /// The peer.
        node: NodeId,
        /// The channel.
        channel: u8,
    },
}

/// Reactor code's access to the node, on the loop thread.
pub struct Control<'a> {
    pub(crate) node: &'a mut Node,
    pub(crate) windows: &'a BlockingWindows,
    pub(crate) now: Instant,
}

impl Control<'_> {
    /// Routes an outbound envelope without blocking. Returns how many peers it was
    /// queued for.
    ///
    /// # Errors
    /// `SendError::Full` on a backpressure channel whose queue for a target peer is full:
    /// the envelope comes back (for a broadcast, queued for every other peer) and an
    /// [`AppEvent::Writable`] follows for each such peer once it has room. The other
    /// errors say why nothing was queued (the Router counts those).
    pub fn send(&mut self, envelope: Envelope) -> Result<usize, SendError> {
        self.windows.route_now(self.node, self.now, envelope)
    }

    /// Reports a misbehaving peer (see `Router::report_error`).
    pub fn report_error(&mut self, error: PeerError) {
        self.node.report_error(self.now, error);
    }

    /// Reports good behaviour of a peer.
    pub fn report_good(&mut self, node: NodeId) {
        self.node.report_good(self.now, node);
    }

    /// Adds a peer address to dial. Returns whether it was new.
    pub fn add_peer(&mut self, address: NodeAddress) -> bool {
        match self.node.add_peer(self.now, address) {
            Ok(added) => added,
            Err(error) => {
                tracing::debug!(%error, "peer address refused");
                false
            }
        }
    }

    /// Decodes an inbound envelope with a channel codec; an undecodable message becomes a
    /// fatal [`PeerError`] against its sender (its connection is closed, as in the smol
    /// driver and on CometBFT) and `None`.
    pub fn decode<C: ChannelCodec>(&mut self, codec: &C, envelope: Envelope) -> Option<C::Message> {
        self.node.decode(self.now, codec, envelope)
    }

    /// Peers with an active, routed connection.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        self.node.connected_peers().collect()
    }

    /// The node machine, for inspection (its router, peer manager, node info).
    pub fn node(&self) -> &Node {
        self.node
    }

    /// The time of this turn of the loop.
    pub fn now(&self) -> Instant {
        self.now
    }
}

/// The callback form: runs on the loop thread for every [`AppEvent`], with no extra thread.
pub type Callback = Box<dyn FnMut(&mut Control<'_>, AppEvent) + Send>;
