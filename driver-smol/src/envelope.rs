//! The application's side of a channel: typed [`Envelope`]s, the [`Channel`] bundle that
//! `open_channel` returns (inbound receiver, outbound sender, error sender) and the router
//! commands those senders carry.

use std::sync::Arc;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::peer_manager::PeerUpdate;
use tmp2p_core::router::window::{Reservation, SendRefused, SendStep};
use tmp2p_core::router::{self, OverflowPolicy, PeerError, RouterError, Target};
use tmp2p_core::NodeId;

use crate::error::{DriverError, TrySendError};
use crate::send_windows::SharedWindows;

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
    /// Route an encoded envelope, with the room reserved for it (backpressure channels).
    Send(router::Envelope, Option<Reservation>),
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

/// The outbound half of a channel. Cloneable. What a send accepted is written to the
/// peer's connection unless the peer goes down first (the application sees its `Down`
/// update); see [`ChannelSender::send`] for how a full peer queue is handled.
pub struct ChannelSender<M> {
    channel: u8,
    policy: OverflowPolicy,
    encode: Encoder<M>,
    commands: Sender<AppCommand>,
    windows: Arc<SharedWindows>,
}

impl<M> Clone for ChannelSender<M> {
    fn clone(&self) -> Self {
        ChannelSender {
            channel: self.channel,
            policy: self.policy,
            encode: Arc::clone(&self.encode),
            commands: self.commands.clone(),
            windows: Arc::clone(&self.windows),
        }
    }
}

impl<M> ChannelSender<M> {
    pub(crate) fn new(
        channel: u8,
        policy: OverflowPolicy,
        encode: Encoder<M>,
        commands: Sender<AppCommand>,
        windows: Arc<SharedWindows>,
    ) -> Self {
        ChannelSender {
            channel,
            policy,
            encode,
            commands,
            windows,
        }
    }

    /// The channel id.
    pub fn channel(&self) -> u8 {
        self.channel
    }

    /// Encodes and sends `envelope` (its `channel` field is ignored: this sender's channel
    /// is used).
    ///
    /// Under [`OverflowPolicy::Backpressure`] (the default) it waits while the target
    /// peer's queue for this channel is full; a full peer never delays a send to another
    /// peer. A broadcast is queued at once for every peer with room and then waits for
    /// each full peer in turn, so a slow peer delays only its own copy. Under
    /// [`OverflowPolicy::Drop`] it never waits for a peer: the queue's policy drops, and
    /// the Router counts every drop.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the node no longer runs; [`DriverError::NotConnected`]
    /// when the peer is not connected or goes down while the send waits;
    /// [`DriverError::NoChannel`] when it did not advertise the channel;
    /// [`DriverError::NoTarget`].
    pub async fn send(&self, envelope: Envelope<M>) -> Result<(), DriverError> {
        let message = (self.encode)(&envelope.message);
        let to = envelope.to.ok_or(DriverError::NoTarget)?;
        if self.policy == OverflowPolicy::Drop {
            return self.hand_over(to, message, None).await;
        }
        let mut steps = self.windows.start(to, self.channel, message.len())?;
        while let Some((node, reservation)) = self.windows.next(&mut steps).await? {
            self.hand_over(Target::Peer(node), message.clone(), Some(reservation))
                .await?;
        }
        Ok(())
    }

    /// Like [`ChannelSender::send`] but never waits for a peer: a full peer queue hands
    /// the envelope back. (It may still wait briefly for room in the router task's command
    /// queue.)
    ///
    /// # Errors
    /// [`TrySendError::Full`], or [`TrySendError::Failed`] with what `send` reports.
    pub async fn try_send(&self, envelope: Envelope<M>) -> Result<(), TrySendError<M>> {
        let message = (self.encode)(&envelope.message);
        let Some(to) = envelope.to else {
            return Err(TrySendError::Failed(DriverError::NoTarget));
        };
        if self.policy == OverflowPolicy::Drop {
            let sent = self.hand_over(to, message, None).await;
            return sent.map_err(TrySendError::Failed);
        }
        let refused = |error: SendRefused| TrySendError::Failed(error.into());
        let mut steps = self
            .windows
            .start(to, self.channel, message.len())
            .map_err(refused)?;
        loop {
            match self.windows.next_now(&mut steps).map_err(refused)? {
                SendStep::HandOver(node, reservation) => {
                    let to = Target::Peer(node);
                    let sent = self.hand_over(to, message.clone(), Some(reservation)).await;
                    sent.map_err(TrySendError::Failed)?;
                }
                SendStep::Wait(_) => {
                    let peers = steps.waiting_for();
                    return Err(TrySendError::Full { envelope, peers });
                }
                SendStep::Done => return Ok(()),
            }
        }
    }

    async fn hand_over(
        &self,
        to: Target,
        message: Bytes,
        reservation: Option<Reservation>,
    ) -> Result<(), DriverError> {
        let envelope = router::Envelope {
            from: None,
            to: Some(to),
            channel: self.channel,
            message,
        };
        self.commands
            .send(AppCommand::Send(envelope, reservation))
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
    /// up, each connection with messages for this channel holds them (its other channels
    /// and its pings go on) up to `NodeConfig::inbound_hold_bytes`, then stops reading
    /// from its peer until there is room (TCP backpressure; nothing taken off the wire is
    /// dropped).
    pub inbound: Receiver<Envelope<M>>,
    /// Outbound messages.
    pub outbound: ChannelSender<M>,
    /// Peer errors.
    pub errors: ErrorSender,
}
