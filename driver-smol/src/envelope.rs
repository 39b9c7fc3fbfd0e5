//! The application's side of a channel: typed [`Envelope`]s, the [`Channel`] bundle that
//! `open_channel` returns (inbound receiver, outbound sender, error sender) and the router
//! commands those senders carry.

use std::sync::Arc;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::peer_manager::PeerUpdate;
use tmp2p_core::router::{self, PeerError, RouterError, Target};
use tmp2p_core::NodeId;

use crate::error::DriverError;

/// A typed message on a channel: inbound (`from` set) or outbound (`to` set), the typed
/// form of the core's `tmp2p_core::router::Envelope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<M> {
    /// The sender (inbound envelopes).
    pub from: Option<NodeId>,
    /// The destination (outbound envelopes); `None` is dropped by the router.
    pub to: Option<Target>,
    /// The channel id.
    pub channel: u8,
    /// The message.
    pub message: M,
}

impl<M> Envelope<M> {
    /// An outbound envelope for one peer (`channel` is filled in by the sender).
    pub fn to_peer(peer: NodeId, message: M) -> Self {
        Envelope {
            from: None,
            to: Some(Target::Peer(peer)),
            channel: 0,
            message,
        }
    }

    /// An outbound envelope for every connected peer that advertised the channel.
    pub fn broadcast(message: M) -> Self {
        Envelope {
            from: None,
            to: Some(Target::Broadcast),
            channel: 0,
            message,
        }
    }
}

/// What the application asks of the router task (in order, over one bounded queue).
pub(crate) enum AppCommand {
    /// Route an encoded envelope.
    Send(router::Envelope),
    /// A reactor's complaint about a peer.
    Error(PeerError),
    /// Add a peer address; the reply says whether it was new.
    AddPeer(NodeAddress, Sender<Result<bool, RouterError>>),
    /// Register a peer-update subscriber.
    Subscribe(Sender<PeerUpdate>),
    /// Reply with the connected peers.
    ConnectedPeers(Sender<Vec<NodeId>>),
    /// Stop gracefully; the reply comes once everything is flushed and synced.
    Stop(Sender<()>),
}

type Encoder<M> = Arc<dyn Fn(&M) -> Bytes + Send + Sync>;

/// The outbound half of a channel. Cloneable; sending awaits while the router's command
/// queue is full (back-pressure); once routed, the per-peer queue policy decides what is
/// dropped under overload.
pub struct ChannelSender<M> {
    channel: u8,
    encode: Encoder<M>,
    commands: Sender<AppCommand>,
}

impl<M> Clone for ChannelSender<M> {
    fn clone(&self) -> Self {
        ChannelSender {
            channel: self.channel,
            encode: Arc::clone(&self.encode),
            commands: self.commands.clone(),
        }
    }
}

impl<M> ChannelSender<M> {
    pub(crate) fn new(channel: u8, encode: Encoder<M>, commands: Sender<AppCommand>) -> Self {
        ChannelSender {
            channel,
            encode,
            commands,
        }
    }

    /// The channel id.
    pub fn channel(&self) -> u8 {
        self.channel
    }

    /// Encodes and hands `envelope` to the router (its `channel` field is ignored: this
    /// sender's channel is used). Returns once the router task has it queued.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the node no longer runs.
    pub async fn send(&self, envelope: Envelope<M>) -> Result<(), DriverError> {
        let message = (self.encode)(&envelope.message);
        let envelope = router::Envelope {
            from: None,
            to: envelope.to,
            channel: self.channel,
            message,
        };
        self.commands
            .send(AppCommand::Send(envelope))
            .await
            .map_err(|_| DriverError::Stopped)
    }
}

/// Where a reactor reports a misbehaving peer (ADR 062's error channel).
#[derive(Clone)]
pub struct ErrorSender {
    commands: Sender<AppCommand>,
}

impl ErrorSender {
    pub(crate) fn new(commands: Sender<AppCommand>) -> Self {
        ErrorSender { commands }
    }

    /// Reports `error`: fatal disconnects the peer, otherwise its score goes down.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the node no longer runs.
    pub async fn report(&self, error: PeerError) -> Result<(), DriverError> {
        self.commands
            .send(AppCommand::Error(error))
            .await
            .map_err(|_| DriverError::Stopped)
    }
}

/// One open channel, as ADR 062 hands it to a reactor.
pub struct Channel<M> {
    /// The channel id.
    pub id: u8,
    /// Decoded inbound messages (`from` set). Bounded: when the application does not keep
    /// up, each connection with a message for this channel stops reading from its peer
    /// until there is room (TCP backpressure; nothing taken off the wire is dropped). A
    /// peer that waits too long for our pongs meanwhile may close the connection.
    pub inbound: Receiver<Envelope<M>>,
    /// Outbound messages.
    pub outbound: ChannelSender<M>,
    /// Peer errors.
    pub errors: ErrorSender,
}
