//! The application side usable from any thread: [`NodeHandle`] sends commands to the loop
//! (waking it through a caller-supplied notifier, normally a `mio::Waker`), and
//! [`Inbound`] receives [`AppEvent`]s from a bounded channel. When that channel is full
//! the driver stops reading sockets (TCP backpressure) until the application catches up;
//! each receive wakes the loop while it is paused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use tmp2p_core::address::NodeAddress;
use tmp2p_core::node::CountersView;
use tmp2p_core::router::window::{Reservation, SendRefused, SendStep};
use tmp2p_core::router::{CountersSnapshot, Envelope, PeerError, PeerSnapshot, SendError, Target};
use tmp2p_core::typed::{ChannelCodec, TypedChannel};
use tmp2p_core::NodeId;

use crate::app::{AppEvent, Control};
use crate::error::DriverError;
use crate::send_windows::BlockingWindows;

/// A send the windows refused, as this driver reports it.
fn send_error(refused: SendRefused) -> DriverError {
    DriverError::Send(refused.into())
}

/// Wakes the loop thread (e.g. `move || waker.wake()`).
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// A closure run on the loop thread.
pub type LoopCall = Box<dyn FnOnce(&mut Control<'_>) + Send>;

/// A request from another thread.
pub(crate) enum Command {
    /// An envelope, with the room reserved for it (backpressure channels).
    Send(Envelope, Option<Reservation>),
    ReportError(PeerError),
    AddPeer(NodeAddress),
    Call(LoopCall),
    Shutdown,
}

/// State shared by the driver and its handles.
pub(crate) struct Shared {
    pub(crate) notify: Notify,
    /// The driver stopped reading because the inbound channel is full.
    pub(crate) paused: AtomicBool,
    /// The senders' backpressure windows.
    pub(crate) windows: Arc<BlockingWindows>,
    /// The node machine's counters, for any thread.
    pub(crate) view: CountersView,
}

/// Sends requests to a node's loop from any thread. Cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) commands: Sender<Command>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) node_id: NodeId,
}

impl NodeHandle {
    fn command(&self, command: Command) -> Result<(), DriverError> {
        self.commands
            .send(command)
            .map_err(|_| DriverError::Stopped)?;
        (self.shared.notify)();
        Ok(())
    }

    /// Our node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The Router's delivery counters now: messages handed to connections and every drop
    /// by reason (read without waking the loop).
    pub fn counters(&self) -> CountersSnapshot {
        self.shared.view.counters()
    }

    /// Each routed peer's counters now, per channel (read without waking the loop).
    pub fn peer_counters(&self) -> Vec<PeerSnapshot> {
        self.shared.view.peer_counters()
    }

    /// Routes an outbound envelope. On a backpressure channel (the default) it blocks the
    /// calling thread while the target peer's queue for the channel is full; a full peer
    /// never blocks a send to another peer. A broadcast is queued at once for every peer
    /// with room, then waits for each full peer in turn, so a slow peer delays only its own
    /// copy. What it accepted is written to the peer's connection unless the peer goes down
    /// first (an `AppEvent::PeerUpdate` tells). Never call it on the loop thread (a callback
    /// or a [`NodeHandle::call`] closure): use [`Control::send`] there.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the loop is gone; [`DriverError::Send`] when the peer
    /// is not connected (or went down while the send waited) or lacks the channel.
    pub fn send(&self, envelope: Envelope) -> Result<(), DriverError> {
        let windows = &self.shared.windows;
        let (channel, len) = (envelope.channel, envelope.message.len());
        let Some(to) = envelope.to.filter(|_| windows.is_bounded(channel)) else {
            return self.command(Command::Send(envelope, None));
        };
        let mut steps = windows.start(to, channel, len).map_err(send_error)?;
        while let Some((node, reservation)) =
            windows.next_blocking(&mut steps).map_err(send_error)?
        {
            self.send_reserved(node, &envelope, reservation)?;
        }
        Ok(())
    }

    /// Like [`NodeHandle::send`] but never blocks: a full peer queue hands the envelope
    /// back.
    ///
    /// # Errors
    /// [`DriverError::Send`] with `SendError::Full` (for a broadcast, the envelope was
    /// queued for every peer not listed), or as [`NodeHandle::send`].
    pub fn try_send(&self, envelope: Envelope) -> Result<(), DriverError> {
        let windows = &self.shared.windows;
        let (channel, len) = (envelope.channel, envelope.message.len());
        let Some(to) = envelope.to.filter(|_| windows.is_bounded(channel)) else {
            return self.command(Command::Send(envelope, None));
        };
        let mut steps = windows.start(to, channel, len).map_err(send_error)?;
        loop {
            match windows.next_now(&mut steps).map_err(send_error)? {
                SendStep::HandOver(node, reservation) => {
                    self.send_reserved(node, &envelope, reservation)?;
                }
                SendStep::Wait(_) => {
                    let peers = steps.waiting_for();
                    return Err(DriverError::Send(SendError::Full { envelope, peers }));
                }
                SendStep::Done => return Ok(()),
            }
        }
    }

    /// Queues `envelope`'s message for `node`, whose room is reserved.
    fn send_reserved(
        &self,
        node: NodeId,
        envelope: &Envelope,
        reservation: Reservation,
    ) -> Result<(), DriverError> {
        let copy = Envelope::to_peer(node, envelope.channel, envelope.message.clone());
        self.command(Command::Send(copy, Some(reservation)))
    }

    /// Reports a misbehaving peer.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the loop is gone.
    pub fn report_error(&self, error: PeerError) -> Result<(), DriverError> {
        self.command(Command::ReportError(error))
    }

    /// Adds a peer address to dial.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the loop is gone.
    pub fn add_peer(&self, address: NodeAddress) -> Result<(), DriverError> {
        self.command(Command::AddPeer(address))
    }

    /// Runs `call` on the loop thread with access to the router.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the loop is gone.
    pub fn call(
        &self,
        call: impl FnOnce(&mut Control<'_>) + Send + 'static,
    ) -> Result<(), DriverError> {
        self.command(Command::Call(Box::new(call)))
    }

    /// Sends `message` on a typed channel (see [`DriverSetup::open_typed`]), waiting as
    /// [`NodeHandle::send`] does.
    ///
    /// # Errors
    /// As [`NodeHandle::send`].
    ///
    /// [`DriverSetup::open_typed`]: crate::DriverSetup::open_typed
    pub fn send_typed<C: ChannelCodec>(
        &self,
        channel: &TypedChannel<C>,
        to: Target,
        message: &C::Message,
    ) -> Result<(), DriverError> {
        self.send(channel.envelope(to, message))
    }

    /// Decodes an inbound envelope of a typed channel: its sender and message, or `None`
    /// when it is another channel's, or does not decode. An undecodable message is
    /// reported as a fatal [`PeerError`] against its sender (its connection is closed, as
    /// in the smol driver and on CometBFT).
    pub fn receive_typed<C: ChannelCodec>(
        &self,
        channel: &TypedChannel<C>,
        envelope: Envelope,
    ) -> Option<(NodeId, C::Message)> {
        match channel.decode(envelope)? {
            Ok(received) => Some(received),
            Err(undecodable) => {
                let _ = self.report_error(PeerError::from(undecodable));
                None
            }
        }
    }

    /// Asks the loop to close every connection and stop.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the loop is already gone.
    pub fn shutdown(&self) -> Result<(), DriverError> {
        self.command(Command::Shutdown)
    }
}

/// Inbound messages and peer updates of a node, for one consumer thread.
pub struct Inbound {
    pub(crate) events: Receiver<AppEvent>,
    pub(crate) shared: Arc<Shared>,
}

impl Inbound {
    fn taken(&self, event: AppEvent) -> AppEvent {
        if self.shared.paused.load(Ordering::Acquire) {
            (self.shared.notify)();
        }
        event
    }

    /// Waits for the next event.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the loop is gone and nothing is left.
    pub fn recv(&self) -> Result<AppEvent, DriverError> {
        let event = self.events.recv().map_err(|_| DriverError::Stopped)?;
        Ok(self.taken(event))
    }

    /// Waits at most `timeout` for the next event (`Ok(None)` on timeout).
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the loop is gone and nothing is left.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<AppEvent>, DriverError> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Ok(Some(self.taken(event))),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(DriverError::Stopped),
        }
    }

    /// The next event if one is waiting.
    ///
    /// # Errors
    /// [`DriverError::Stopped`] when the loop is gone and nothing is left.
    pub fn try_recv(&self) -> Result<Option<AppEvent>, DriverError> {
        match self.events.try_recv() {
            Ok(event) => Ok(Some(self.taken(event))),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(DriverError::Stopped),
        }
    }
}
