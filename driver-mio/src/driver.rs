//! The embeddable driver: a value that runs a node's Router and connections on a mio
//! `Registry` someone else polls. See the crate docs for the call order.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::event::Event;
use mio::net::TcpListener;
use mio::{Interest, Registry, Waker};
use rand_core::OsRng;
use slab::Slab;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::node::{LinkCommand, Node, NodeOutput};
use tmp2p_core::peer_manager::{ClockAnchor, StoreOp};
use tmp2p_core::router::window::WindowChange;
use tmp2p_core::router::{
    ConnectionId, Envelope, OverflowPolicy, PeerError, PeerSnapshot, SendError,
};
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_store::PeerStore;

use crate::app::{AppEvent, Callback, Control};
use crate::error::DriverError;
use crate::handle::{Command, Inbound, NodeHandle, Notify, Shared};
use crate::link::{Link, Stage};
use crate::send_windows::BlockingWindows;
use crate::setup::{DriverLimits, DriverSetup};
use crate::tokens::TokenRange;

mod connect;
mod delivery;
mod turn;

/// Size of the one read buffer all connections share.
const SCRATCH_SIZE: usize = 64 * 1024;

/// How often DNS results are checked when no notifier can wake the loop.
const RESOLVE_POLL: Duration = Duration::from_millis(50);

/// Where inbound events go.
enum Sink {
    /// Kept for `Driver::poll_event`.
    Poll,
    /// Pushed into the bounded channel of an [`Inbound`].
    Channel(SyncSender<AppEvent>),
    /// Handed to a callback on the loop thread.
    Callback(Callback),
}

/// The cross-thread side, once created.
struct Remote {
    commands: Receiver<Command>,
    shared: Arc<Shared>,
    sender: Sender<Command>,
}

/// A node driven on a caller's mio `Registry` (see the crate docs for the call order).
pub struct Driver {
    node: Node,
    /// The senders' backpressure windows (shared with every handle).
    windows: Arc<BlockingWindows>,
    /// What this turn's actions change in `windows`, applied at the end of the turn.
    window_changes: Vec<WindowChange>,
    key: NodeKey,
    node_id: NodeId,
    registry: Registry,
    tokens: TokenRange,
    listener: TcpListener,
    local_addr: SocketAddr,
    listener_ready: bool,
    links: Slab<Link>,
    by_conn: HashMap<ConnectionId, usize>,
    timers: BTreeSet<(Instant, ConnectionId)>,
    ready: VecDeque<usize>,
    /// Links holding messages the application's queue had no room for.
    waiting: Vec<usize>,
    store: Box<dyn PeerStore + Send>,
    store_ops: Vec<StoreOp>,
    events: VecDeque<AppEvent>,
    sink: Sink,
    remote: Option<Remote>,
    resolved_tx: Sender<(NodeAddress, Vec<IpAddr>)>,
    resolved_rx: Receiver<(NodeAddress, Vec<IpAddr>)>,
    resolving: usize,
    limits: DriverLimits,
    scratch: Vec<u8>,
    now: Instant,
    shutdown: bool,
    /// Same-thread code called into the router since the last turn: its actions wait.
    touched: bool,
}

fn clock_anchor(now: Instant) -> ClockAnchor {
    ClockAnchor {
        instant: now,
        since_unix_epoch: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    }
}

impl Driver {
    /// Validates the setup, loads the peer store, builds the Router with the channels and
    /// initial peers, binds the listener and registers it on `registry` with
    /// `tokens.listener()`. Connections get tokens from `tokens` only.
    ///
    /// # Errors
    /// Invalid configuration, unreadable store, or a listener that cannot bind/register.
    pub fn new(
        setup: DriverSetup,
        registry: &Registry,
        tokens: TokenRange,
    ) -> Result<Driver, DriverError> {
        let DriverSetup {
            config,
            key,
            channels,
            drop_channels,
            pex,
            store,
            limits,
        } = setup;
        let node_id = key.node_id();
        let now = Instant::now();
        let records = store.load()?;
        // Bound before the node machine is built, so the NodeInfo (and PEX) advertise the
        // port actually bound when the configuration asked for port 0.
        let mut listener =
            TcpListener::bind(config.listen).map_err(|source| DriverError::Bind {
                addr: config.listen,
                source,
            })?;
        set_backlog(&listener, config.listen_backlog);
        let local_addr = listener.local_addr()?;
        let mut config = config;
        config.listen = local_addr;
        let mut node = Node::new(&config, node_id, clock_anchor(now), now, records, OsRng)?;
        for channel in channels {
            let policy = if drop_channels.contains(&channel.id) {
                OverflowPolicy::Drop
            } else {
                OverflowPolicy::Backpressure
            };
            node.open_channel(channel, policy)?;
        }
        if let Some(pex) = pex {
            node.enable_pex(pex)?;
        }
        let windows = Arc::new(BlockingWindows::new(
            node.window_limits(),
            drop_channels.into_iter().collect(),
        ));
        node.start(now)?;
        let registry = registry.try_clone()?;
        registry.register(&mut listener, tokens.listener(), Interest::READABLE)?;
        let (resolved_tx, resolved_rx) = mpsc::channel();
        tracing::info!(%node_id, %local_addr, "mio driver listening");
        Ok(Driver {
            node,
            windows,
            window_changes: Vec::new(),
            key,
            node_id,
            registry,
            tokens,
            listener,
            local_addr,
            listener_ready: true,
            links: Slab::new(),
            by_conn: HashMap::new(),
            timers: BTreeSet::new(),
            ready: VecDeque::new(),
            waiting: Vec::new(),
            store,
            store_ops: Vec::new(),
            events: VecDeque::new(),
            sink: Sink::Poll,
            remote: None,
            resolved_tx,
            resolved_rx,
            resolving: 0,
            limits,
            scratch: vec![0; SCRATCH_SIZE],
            now,
            shutdown: false,
            touched: false,
        })
    }

    /// Our node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The tokens this driver uses.
    pub fn tokens(&self) -> TokenRange {
        self.tokens
    }

    /// The node machine, for inspection (its router, peer manager, node info).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Open TCP connections (dialing, handshaking, active or flushing).
    pub fn connection_count(&self) -> usize {
        self.links.len()
    }

    /// Each routed peer's counters now, per channel.
    pub fn peer_counters(&self) -> Vec<PeerSnapshot> {
        self.node.peer_snapshots()
    }

    /// Connected, routed peers.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        self.node.connected_peers().collect()
    }

    /// Whether a shutdown was requested and every connection is gone.
    pub fn is_finished(&self) -> bool {
        self.shutdown && self.links.is_empty()
    }

    /// Whether a shutdown was requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown
    }

    /// Reactor access on the caller's thread (embedded use). Call [`Driver::process`]
    /// afterwards so the resulting actions are carried out.
    pub fn control(&mut self, now: Instant) -> Control<'_> {
        self.touched = true;
        Control {
            node: &mut self.node,
            windows: &self.windows,
            now,
        }
    }

    /// Routes an outbound envelope without blocking, as [`Control::send`] (embedded use;
    /// call [`Driver::process`] afterwards).
    ///
    /// # Errors
    /// As [`Control::send`].
    pub fn send(&mut self, envelope: Envelope) -> Result<usize, SendError> {
        self.touched = true;
        let now = self.now;
        self.windows.route_now(&mut self.node, now, envelope)
    }

    /// Reports a misbehaving peer (embedded use; call [`Driver::process`] afterwards).
    pub fn report_error(&mut self, now: Instant, error: PeerError) {
        self.touched = true;
        self.node.report_error(now, error);
    }

    /// The next inbound event, when no channel or callback was installed.
    pub fn poll_event(&mut self) -> Option<AppEvent> {
        match self.sink {
            Sink::Poll => self.events.pop_front(),
            _ => None,
        }
    }

    /// Creates the application channels: a [`NodeHandle`] for any thread and an
    /// [`Inbound`] receiving at most `capacity` queued events. `notify` must wake the loop
    /// that polls this driver's registry (see [`Driver::channels_with_waker`]).
    ///
    /// # Errors
    /// [`DriverError::ChannelsTaken`] when called twice or after a callback was set.
    pub fn channels(
        &mut self,
        capacity: usize,
        notify: Notify,
    ) -> Result<(NodeHandle, Inbound), DriverError> {
        if !matches!(self.sink, Sink::Poll) {
            return Err(DriverError::ChannelsTaken);
        }
        let handle = self.handle(notify)?;
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        self.sink = Sink::Channel(tx);
        let inbound = Inbound {
            events: rx,
            shared: Arc::clone(&handle.shared),
        };
        Ok((handle, inbound))
    }

    /// [`Driver::channels`] with a `mio::Waker` the driver registers at
    /// `tokens().waker()`. mio allows one waker per `Poll`: callers that already have
    /// one pass a notifier to [`Driver::channels`] instead.
    ///
    /// # Errors
    /// Registering the waker failed, or [`DriverError::ChannelsTaken`].
    pub fn channels_with_waker(
        &mut self,
        capacity: usize,
    ) -> Result<(NodeHandle, Inbound), DriverError> {
        let waker = Arc::new(Waker::new(&self.registry, self.tokens.waker())?);
        self.channels(capacity, waker_notify(waker))
    }

    /// Installs the callback form: every inbound event runs `callback` on the loop thread.
    ///
    /// # Errors
    /// [`DriverError::ChannelsTaken`] when channels or a callback were set already.
    pub fn set_callback(&mut self, callback: Callback) -> Result<(), DriverError> {
        if !matches!(self.sink, Sink::Poll) {
            return Err(DriverError::ChannelsTaken);
        }
        self.sink = Sink::Callback(callback);
        while let Some(event) = self.events.pop_front() {
            self.run_callback(event);
        }
        Ok(())
    }

    /// A command handle for other threads (without an inbound channel: for the callback
    /// form). Repeated calls share one command queue; the first `notify` is kept.
    ///
    /// # Errors
    /// Never at present; kept fallible for symmetry with [`Driver::channels`].
    pub fn handle(&mut self, notify: Notify) -> Result<NodeHandle, DriverError> {
        let remote = self.remote.get_or_insert_with(|| {
            let (sender, commands) = mpsc::channel();
            Remote {
                commands,
                sender,
                shared: Arc::new(Shared {
                    notify,
                    paused: Default::default(),
                    windows: Arc::clone(&self.windows),
                    view: self.node.counters_view(),
                }),
            }
        });
        Ok(NodeHandle {
            commands: remote.sender.clone(),
            shared: Arc::clone(&remote.shared),
            node_id: self.node_id,
        })
    }

    /// Records a mio event. Events for tokens outside this driver's range are ignored, so
    /// a caller may pass every event it polled. Cheap: the work happens in
    /// [`Driver::process`].
    pub fn handle_event(&mut self, event: &Event) {
        let token = event.token();
        if token == self.tokens.listener() {
            self.listener_ready = true;
            return;
        }
        let Some(slot) = self.tokens.slot(token) else {
            return;
        };
        let Some(link) = self.links.get_mut(slot) else {
            return;
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            link.readable = true;
        }
        if event.is_read_closed() || event.is_error() {
            link.read_closed = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            link.writable = true;
        }
        if !link.queued {
            link.queued = true;
            self.ready.push_back(slot);
        }
    }

    /// When [`Driver::process`] must run next: already due while work is left over from
    /// the last turn; `None` when only events can bring work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let leftover = self.touched
            || !self.ready.is_empty()
            || self.listener_ready
            || (!self.waiting.is_empty() && self.has_inbound_room())
            || (self.shutdown && self.links.is_empty())
            || (matches!(self.sink, Sink::Callback(_)) && !self.events.is_empty());
        if leftover {
            return Some(self.now);
        }
        let resolve =
            (self.resolving > 0 && self.remote.is_none()).then(|| self.now + RESOLVE_POLL);
        [
            self.node.poll_timeout(),
            self.timers.first().map(|(at, _)| *at),
            resolve,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// [`Driver::poll_timeout`] as a duration for `mio::Poll::poll`.
    pub fn poll_duration(&self, now: Instant) -> Option<Duration> {
        self.poll_timeout()
            .map(|at| at.saturating_duration_since(now))
    }

    /// One bounded turn of work: commands from other threads, DNS results, timers,
    /// accepts, up to `links_per_turn` ready connections (each within its read and write
    /// budget), router actions, inbound delivery and the peer store.
    pub fn process(&mut self, now: Instant) {
        self.now = now;
        self.touched = false;
        self.run_commands(now);
        self.run_resolutions(now);
        if self.node.poll_timeout().is_some_and(|at| at <= now) {
            self.node.handle_timeout(now);
        }
        self.fire_timers(now);
        self.run_outputs(now);
        self.accept(now);
        let turn = self.ready.len().min(self.limits.links_per_turn);
        for _ in 0..turn {
            let Some(slot) = self.ready.pop_front() else {
                break;
            };
            if let Some(link) = self.links.get_mut(slot) {
                link.queued = false;
            }
            if self.service(slot, now) {
                self.enqueue(slot);
            }
        }
        self.deliver(now);
        self.resume_waiting();
        self.flush_store();
    }

    /// Closes every connection gracefully and refuses new ones; the driver is finished
    /// once they are gone ([`Driver::is_finished`]).
    pub fn shutdown(&mut self, now: Instant) {
        if self.shutdown {
            return;
        }
        self.shutdown = true;
        if let Err(error) = self.registry.deregister(&mut self.listener) {
            tracing::debug!(%error, "listener deregister failed");
        }
        self.listener_ready = false;
        // The node machine closes each connection once what it accepted is handed over,
        // at the latest after the stop timeout; each link then closes and finishes its
        // close within the close linger each (core's `Link`).
        let within = self.node.stop_timeout();
        self.node.stop(now, within);
        self.run_outputs(now);
    }

    /// Whether the application's queue of pending events has room.
    fn has_inbound_room(&self) -> bool {
        self.events.len() < self.limits.max_pending_inbound
    }

    fn enqueue(&mut self, slot: usize) {
        if let Some(link) = self.links.get_mut(slot) {
            if !link.queued {
                link.queued = true;
                self.ready.push_back(slot);
            }
        }
    }

    fn run_commands(&mut self, now: Instant) {
        for _ in 0..self.limits.commands_per_turn {
            let Some(remote) = &self.remote else {
                return;
            };
            let command = match remote.commands.try_recv() {
                Ok(command) => command,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            match command {
                Command::Send(envelope, reservation) => {
                    self.windows
                        .route_reserved(&mut self.node, now, envelope, reservation)
                }
                Command::ReportError(error) => self.node.report_error(now, error),
                Command::AddPeer(address) => {
                    if let Err(error) = self.node.add_peer(now, address) {
                        tracing::debug!(%error, "peer address refused");
                    }
                }
                Command::Call(call) => call(&mut Control {
                    node: &mut self.node,
                    windows: &self.windows,
                    now,
                }),
                Command::Shutdown => self.shutdown(now),
            }
            self.run_outputs(now);
        }
    }

    fn run_resolutions(&mut self, now: Instant) {
        while let Ok((address, ips)) = self.resolved_rx.try_recv() {
            self.resolving = self.resolving.saturating_sub(1);
            self.node.resolved(now, &address, &ips);
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, conn));
            let Some(&slot) = self.by_conn.get(&conn) else {
                continue;
            };
            let Some(link) = self.links.get_mut(slot) else {
                continue;
            };
            link.timer = None;
            link.handle_timeout(now);
            self.enqueue(slot);
        }
    }

    /// Carries out the node machine's outputs, then lets the senders' windows follow.
    fn run_outputs(&mut self, now: Instant) {
        while let Some(output) = self.node.poll_output() {
            match output {
                NodeOutput::Dial { conn, socket, .. } => self.dial(now, conn, socket),
                NodeOutput::Resolve { address } => self.resolve(address),
                NodeOutput::Link { conn, command } => self.command_link(now, conn, command),
                NodeOutput::PeerUpdate(update) => self.push_event(AppEvent::PeerUpdate(update)),
                NodeOutput::Windows(changes) => self.window_changes.extend(changes),
                // Loop-thread sends are checked against the windows first, so the node
                // itself never refuses one; room is announced from the windows below.
                NodeOutput::Writable { .. } => {}
                NodeOutput::Store(ops) => self.store_ops.extend(ops),
                NodeOutput::Pex(event) => tracing::debug!(?event, "PEX"),
            }
        }
        let mut writable = Vec::new();
        self.windows.apply(&mut self.window_changes, &mut writable);
        for (node, channel) in writable {
            self.push_event(AppEvent::Writable { node, channel });
        }
    }

    /// A command of the node for connection `conn`: a close of a dial still connecting
    /// abandons it.
    fn command_link(&mut self, now: Instant, conn: ConnectionId, command: LinkCommand) {
        let Some(&slot) = self.by_conn.get(&conn) else {
            return;
        };
        let Some(link) = self.links.get_mut(slot) else {
            return;
        };
        let close = matches!(command, LinkCommand::Close | LinkCommand::Stop);
        if close && matches!(link.stage, Stage::Connecting { .. }) {
            self.remove(slot, now);
            return;
        }
        link.handle_command(now, command);
        self.enqueue(slot);
    }

    /// Queues an inbound event; it reaches the sink at the end of the turn, outside the
    /// action loop (a callback may itself cause actions).
    fn push_event(&mut self, event: AppEvent) {
        self.events.push_back(event);
    }

    fn flush_store(&mut self) {
        if self.store_ops.is_empty() {
            return;
        }
        if let Err(error) = self.store.apply(&self.store_ops) {
            tracing::warn!(%error, ops = self.store_ops.len(), "peer store write failed");
        }
        self.store_ops.clear();
    }
}

/// Raises the listener's backlog from mio's fixed 128 (calling `listen(2)` again on a
/// listening socket only changes its backlog). A failure leaves mio's backlog in place.
#[cfg(unix)]
fn set_backlog(listener: &TcpListener, backlog: u32) {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    if let Err(error) = rustix::net::listen(listener, backlog) {
        tracing::warn!(%error, backlog, "cannot raise the listen backlog");
    }
}

/// Other platforms keep mio's backlog.
#[cfg(not(unix))]
fn set_backlog(_listener: &TcpListener, _backlog: u32) {}

/// A notifier that wakes `waker`.
pub fn waker_notify(waker: Arc<Waker>) -> Notify {
    Arc::new(move || {
        if let Err(error) = waker.wake() {
            tracing::warn!(%error, "waking the loop failed");
        }
    })
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("node_id", &self.node_id)
            .field("local_addr", &self.local_addr)
            .field("connections", &self.links.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
