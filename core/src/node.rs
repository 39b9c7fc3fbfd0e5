//! The node machine: one sans-IO object that makes every node-level decision, so the
//! drivers, the simulator and the test harnesses only move bytes, run timers and wake
//! tasks. [`Node`] owns the [`Router`] (and through it the PeerManager, the QoS queues, the
//! send windows and the delivery counters) and the built-in PEX reactor (seed mode
//! included). It builds the Router from a [`NodeConfig`], batches each connection's sends
//! into one [`LinkCommand`], confirms send credit from the connections' [`LinkReport`]s,
//! gathers store operations into at most one batch per interval (`store_batch`), and turns an undecodable typed message into a fatal
//! `PeerError`.
//!
//! The transport seam (ADR 062's Transport / Connection / Endpoint): the node machine knows
//! connections only by [`ConnectionId`] and the remote's socket address. Whether the bytes
//! travel over TCP, the simulator's in-memory network or a later QUIC stream is the
//! driver's business; each connection's machine is a [`Link`], a separate object the
//! driver may run on any task or thread, which talks to the node machine only through
//! [`LinkCommand`]s and [`LinkReport`]s (quinn-proto's Endpoint / Connection split).
//!
//! Call order, for a driver:
//! 1. [`Node::new`], then [`Node::open_channel`] for every channel and optionally
//!    [`Node::enable_pex`], then [`Node::start`] (which adds the configured peers; channels
//!    are advertised in NodeInfo, so they are fixed from then on).
//! 2. Loop:
//!    - drain [`Node::poll_output`] and carry out each [`NodeOutput`]: `Dial` → connect,
//!      then [`Node::dial_succeeded`] (start a [`Link`] with the returned params) or
//!      [`Node::dial_failed`]; `Resolve` → DNS, then [`Node::resolved`]; `Link` → that
//!      connection's [`Link::handle_command`]; `Windows` → the senders' windows, if the
//!      driver keeps them; `PeerUpdate`, `Writable`, `Pex` → the application; `Store` →
//!      the peer store, in one transaction;
//!    - for each accepted connection call [`Node::accept`] before any handshake work;
//!    - feed every [`Link::poll_report`] of every connection to
//!      [`Node::handle_link_report`] (the `Closed` event is mandatory), and hand the
//!      application what [`Link::poll_delivery`] gives (the inbound flow-control rule is
//!      the link's: see [`Link`]);
//!    - application sends go to [`Node::send`] ([`Node::send_reserved`] when the sender
//!      reserved room in the windows), reactor complaints to
//!      [`Node::report_error`], typed inbound messages through [`Node::decode`];
//!    - call [`Node::handle_timeout`] at [`Node::poll_timeout`] (re-read after every call).
//! 3. To stop: [`Node::stop`] with [`Node::stop_timeout`], and go on looping until
//!    [`Node::is_stopped`] (every connection closed once what was accepted for it was
//!    handed over, or at the deadline) and each connection's `Link` is finished; a driver
//!    stops waiting for connections at [`Node::stop_give_up`].
//!
//! Tests: `tests/tests/node_machine.rs` drives it over the shared in-memory network of
//! `tmp2p_tests::memnet`, which `tests/tests/pex_line.rs` uses too.
//!
//! The delivery contract is the Router's (`router::outbound`): what `send` accepted reaches
//! the peer's connection unless the peer goes down first; backpressure channels hand a
//! message back when the peer's queue is full and announce room with
//! [`NodeOutput::Writable`]; drop channels count each drop.

mod counters_view;
mod inbox;
mod link;
mod output;
mod pex_host;
mod sending;
mod store_batch;

pub use counters_view::CountersView;
pub use link::{Link, LinkCommand, LinkReport, LinkSettings};
pub use output::{NodeError, NodeOutput};
pub use pex_host::PexEvent;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_core::RngCore;

use crate::address::NodeAddress;
use crate::connection::PeerEvent;
use crate::id::NodeId;
use crate::mconn::ChannelDescriptor;
use crate::node_config::NodeConfig;
use crate::peer_manager::{ClockAnchor, PeerRecord, PeerStatus};
use crate::pex::{self, PexConfig, PexReactor, PEX_CHANNEL};
use crate::router::window::{WindowChange, WindowLimits};
use crate::router::{
    AdmissionError, ConnectionId, ConnectionParams, Envelope, OverflowPolicy, PeerCounters,
    PeerError, PeerSnapshot, Router, RouterAction, RouterCounters, RouterError,
};
use crate::typed::{decode_inbound, ChannelCodec};
use pex_host::PexHost;
use store_batch::StoreBatch;

/// The node machine (see the module docs for the call order).
pub struct Node {
    router: Router,
    pex: Option<PexHost>,
    /// The second copy of the caller's RNG, for PEX once it is enabled.
    pex_rng: Option<Box<dyn RngCore + Send>>,
    initial_peers: Vec<NodeAddress>,
    started: bool,
    link_settings: LinkSettings,
    /// Each connection's remote IP, for PEX (which learns inbound peers' addresses).
    remote_ips: BTreeMap<ConnectionId, IpAddr>,
    /// Sends gathered while draining the Router, one command per connection.
    batches: BTreeMap<ConnectionId, Vec<(u8, Bytes)>>,
    /// Peer-store writes waiting for their batch.
    store: StoreBatch,
    /// Changes for the senders' windows since the last `NodeOutput::Windows`.
    window_changes: Vec<WindowChange>,
    /// Each routed peer's connection, as the senders' windows name it (`WindowChange::Up`).
    epochs: BTreeMap<NodeId, u64>,
    /// The epoch of the next peer to come up.
    next_epoch: u64,
    outputs: VecDeque<NodeOutput>,
    /// Set by [`Node::stop`]: past it, connections close whatever they still hold.
    stop_deadline: Option<Instant>,
    /// [`NodeConfig::stop_timeout`].
    stop_timeout: Duration,
    /// The counters for other threads, the routed peers' kept as they come and go.
    view: CountersView,
}

impl Node {
    /// A node for `config` with id `node_id` and the peers in `records` (from the peer
    /// store). `rng` is cloned once: the Router's retry jitter and PEX's address sampling
    /// each get a copy.
    ///
    /// # Errors
    /// [`NodeError::Config`], [`NodeError::Router`].
    pub fn new<R: RngCore + Clone + Send + 'static>(
        config: &NodeConfig,
        node_id: NodeId,
        clock: ClockAnchor,
        now: Instant,
        records: Vec<PeerRecord>,
        rng: R,
    ) -> Result<Self, NodeError> {
        config.validate(node_id)?;
        let router = Router::new(
            config.router_config(),
            config.node_info(node_id),
            clock,
            now,
            records,
            Box::new(rng.clone()),
        )?;
        let view = CountersView::new(Arc::clone(router.counters()));
        Ok(Node {
            view,
            router,
            pex: None,
            pex_rng: Some(Box::new(rng)),
            initial_peers: config.initial_peers().cloned().collect(),
            started: false,
            link_settings: LinkSettings {
                close_linger: config.close_linger,
                inbound_hold_bytes: config.inbound_hold_bytes,
            },
            remote_ips: BTreeMap::new(),
            batches: BTreeMap::new(),
            store: StoreBatch::new(config.store_flush_interval),
            window_changes: Vec::new(),
            epochs: BTreeMap::new(),
            next_epoch: 1,
            outputs: VecDeque::new(),
            stop_deadline: None,
            stop_timeout: config.stop_timeout,
        })
    }

    /// Opens a channel with `policy` for full peer queues (before [`Node::start`]).
    ///
    /// # Errors
    /// [`NodeError::AlreadyStarted`], or the Router's refusal.
    pub fn open_channel(
        &mut self,
        descriptor: ChannelDescriptor,
        policy: OverflowPolicy,
    ) -> Result<(), NodeError> {
        if self.started {
            return Err(NodeError::AlreadyStarted);
        }
        Ok(self.router.open_channel_with_policy(descriptor, policy)?)
    }

    /// Runs the built-in PEX reactor (seed mode included) on channel 0x00, opened as
    /// CometBFT declares it. Its messages never reach the application; what it does is
    /// reported as [`NodeOutput::Pex`].
    ///
    /// # Errors
    /// [`NodeError::Pex`], [`NodeError::AlreadyStarted`], or the Router's refusal (0x00
    /// already open).
    pub fn enable_pex(&mut self, config: PexConfig) -> Result<(), NodeError> {
        let reactor = PexReactor::new(config)?;
        self.open_channel(pex::channel_descriptor(), OverflowPolicy::Backpressure)?;
        // Present until `start`, and taken once: the channel was opened just above.
        let Some(rng) = self.pex_rng.take() else {
            return Err(NodeError::AlreadyStarted);
        };
        self.pex = Some(PexHost::new(reactor, rng));
        Ok(())
    }

    /// Starts: adds the configured persistent and bootstrap peers (the first dials follow
    /// at once) and freezes the channels.
    ///
    /// # Errors
    /// [`NodeError::InitialPeer`] for a configured peer the PeerManager refuses (a typo in
    /// a peer list should stop the node, not be found later in a log);
    /// [`NodeError::AlreadyStarted`].
    pub fn start(&mut self, now: Instant) -> Result<(), NodeError> {
        if self.started {
            return Err(NodeError::AlreadyStarted);
        }
        self.started = true;
        self.pex_rng = None;
        for address in std::mem::take(&mut self.initial_peers) {
            if let Err(error) = self.router.add_peer(now, address.clone()) {
                let address = Box::new(address);
                return Err(NodeError::InitialPeer { address, error });
            }
        }
        self.router.handle_timeout(now);
        self.drain(now);
        Ok(())
    }

    /// Stops gracefully: no new dials or connections; each connection closes once every
    /// message accepted for it has been handed to it (the `Link` then flushes it within
    /// the close linger), and at the latest `within` from now, when what is left is
    /// dropped and counted. Handshakes and dials in flight end at once. Done when
    /// [`Node::is_stopped`].
    pub fn stop(&mut self, now: Instant, within: Duration) {
        self.router.stop();
        self.stop_deadline = Some(crate::deadline::later(now, within));
        self.drain(now);
    }

    /// Whether a stop finished: no connection is left.
    pub fn is_stopped(&self) -> bool {
        self.stop_deadline.is_some() && self.router.connection_count() == 0 && self.store.is_empty()
    }

    /// The next output for the driver.
    pub fn poll_output(&mut self) -> Option<NodeOutput> {
        // Released room goes out last, in one batch however many calls freed it: a driver
        // then takes its windows' lock and wakes its senders once. Releasing after the
        // sends that freed it is always safe; a peer update takes what is pending first.
        self.outputs.pop_front().or_else(|| {
            (!self.window_changes.is_empty())
                .then(|| NodeOutput::Windows(std::mem::take(&mut self.window_changes)))
        })
    }

    /// When [`Node::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pex = self.pex.as_ref().and_then(PexHost::poll_timeout);
        let stop = self.stop_deadline.filter(|_| !self.is_stopped());
        [
            self.router.poll_timeout(),
            pex,
            stop,
            self.store.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Timers: dial timeouts, retry backoffs, new dials, PEX requests.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.router.poll_timeout().is_some_and(|at| at <= now) {
            self.router.handle_timeout(now);
        }
        if let Some(pex) = &mut self.pex {
            pex.handle_timeout(now, &mut self.router);
        }
        self.drain(now);
    }

    /// A connection from `remote` arrived. Call before any handshake work (on an address
    /// shared by several networks, once its answering handshake has named this node's
    /// network: see [`crate::shared_address`] and [`Link::answer`]): on `Err` close
    /// the socket at once; on `Ok` start a [`Link`] with the params.
    ///
    /// # Errors
    /// [`AdmissionError`] saying why it was refused.
    pub fn accept(
        &mut self,
        now: Instant,
        remote: SocketAddr,
    ) -> Result<ConnectionParams, AdmissionError> {
        let params = match self.router.accept(now, remote) {
            Ok(params) => params,
            Err(error) => {
                tracing::info!(%remote, %error, "inbound connection refused");
                return Err(error);
            }
        };
        self.remote_ips.insert(params.conn, remote.ip());
        self.drain(now);
        Ok(params)
    }

    /// The connect of `conn` succeeded: start a [`Link`] with the returned params.
    ///
    /// # Errors
    /// [`RouterError::UnknownConnection`] for a stale or timed-out dial (close it).
    pub fn dial_succeeded(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        remote: SocketAddr,
    ) -> Result<ConnectionParams, RouterError> {
        let params = self.router.dial_succeeded(now, conn, remote);
        if params.is_ok() {
            self.remote_ips.insert(conn, remote.ip());
        }
        self.drain(now);
        params
    }

    /// The connect of `conn` failed. Returns whether the dial was still pending: a late
    /// failure of a dial the node already timed out (and logged) needs no second log.
    pub fn dial_failed(&mut self, now: Instant, conn: ConnectionId) -> bool {
        let pending = self.router.dial_failed(now, conn);
        self.drain(now);
        pending
    }

    /// The hostname of `address` resolved to `ips` (empty: it did not resolve).
    pub fn resolved(&mut self, now: Instant, address: &NodeAddress, ips: &[IpAddr]) {
        self.router.resolved(now, address, ips);
        self.drain(now);
    }

    /// A report of connection `conn`'s [`Link`].
    pub fn handle_link_report(&mut self, now: Instant, conn: ConnectionId, report: LinkReport) {
        match report {
            LinkReport::Taken(taken) => self.router.messages_accepted(conn, taken),
            LinkReport::Event(event) => {
                match &event {
                    PeerEvent::Authenticated { node_info, .. } => {
                        if let Some(pex) = &mut self.pex {
                            pex.on_authenticated(node_info, self.remote_ips.get(&conn).copied());
                        }
                    }
                    PeerEvent::Closed { .. } => {
                        self.remote_ips.remove(&conn);
                    }
                    PeerEvent::Message { .. } | PeerEvent::Pong { .. } => {}
                }
                let authenticated = matches!(event, PeerEvent::Authenticated { .. });
                self.router.handle_connection_event(now, conn, event);
                if authenticated {
                    // The peer's windows and its `Up` go out before the connection may
                    // deliver: an application answering the peer's first message at once
                    // (on another thread) must find the peer's window.
                    self.drain(now);
                    self.admit(conn);
                }
            }
        }
        self.drain(now);
    }

    /// Tells a connection whose peer the Router just routed to deliver its messages (a
    /// refused one gets a `Close` instead). Called after the peer's windows and `Up` are
    /// out, so the application never hears from a peer its windows do not know.
    fn admit(&mut self, conn: ConnectionId) {
        let (Some(peer), Some(counters)) = (
            self.router.routed_peer(conn),
            self.router.peer_counters(conn),
        ) else {
            return;
        };
        let internal = if self.pex.is_some() {
            vec![PEX_CHANNEL]
        } else {
            Vec::new()
        };
        let command = LinkCommand::Admit {
            peer,
            internal,
            counters,
        };
        self.outputs.push_back(NodeOutput::Link { conn, command });
    }

    /// A reactor's complaint: fatal disconnects the peer, otherwise its score goes down.
    pub fn report_error(&mut self, now: Instant, error: PeerError) {
        self.router.report_error(now, error);
        self.drain(now);
    }

    /// Reports good behaviour of a peer (its score goes up).
    pub fn report_good(&mut self, now: Instant, node: NodeId) {
        self.router.report_good(node);
        self.drain(now);
    }

    /// Decodes an inbound envelope with `codec`. A message that does not decode is a fatal
    /// `PeerError` against its sender (as on CometBFT) and gives `None`.
    pub fn decode<C: ChannelCodec>(
        &mut self,
        now: Instant,
        codec: &C,
        envelope: Envelope,
    ) -> Option<C::Message> {
        let from = envelope.from?;
        match decode_inbound(codec, from, envelope.message) {
            Ok(message) => Some(message),
            Err(undecodable) => {
                self.report_error(now, PeerError::from(undecodable));
                None
            }
        }
    }

    /// Adds a peer address. Returns whether it was new.
    ///
    /// # Errors
    /// The PeerManager's refusal.
    pub fn add_peer(&mut self, now: Instant, address: NodeAddress) -> Result<bool, RouterError> {
        let added = self.router.add_peer(now, address);
        self.drain(now);
        added
    }

    /// Disconnects a peer gracefully (what was sent to it first still goes out).
    ///
    /// # Errors
    /// [`RouterError::NotConnected`].
    pub fn disconnect(&mut self, now: Instant, node: NodeId) -> Result<(), RouterError> {
        let done = self.router.disconnect(node);
        self.drain(now);
        done
    }

    /// Connected, routed peers.
    pub fn connected_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.router.connected_peers()
    }

    /// The counters of routed peer `node`, shared: a driver takes them when the peer's
    /// `PeerUpdate` says it is up, for exporters on other threads.
    pub fn peer_counters(&self, node: NodeId) -> Option<Arc<PeerCounters>> {
        self.router.peer_counters_of(node)
    }

    /// A reader of the node's counters for other threads (a metrics exporter's): the
    /// totals and every routed peer's, kept up to date as peers come and go.
    pub fn counters_view(&self) -> CountersView {
        self.view.clone()
    }

    /// Every routed peer's counters now, peers ascending (on the owner's thread).
    pub fn peer_snapshots(&self) -> Vec<PeerSnapshot> {
        let peers = self.router.connected_peers();
        let mut snapshots: Vec<PeerSnapshot> = peers
            .filter_map(|node| self.router.peer_counters_of(node))
            .map(|counters| counters.snapshot())
            .collect();
        snapshots.sort_by_key(|s| s.node);
        snapshots
    }

    /// The delivery counters, shared: keep the `Arc` to read them from any thread.
    pub fn counters(&self) -> &Arc<RouterCounters> {
        self.router.counters()
    }

    /// How long a connection's close may take ([`NodeConfig::close_linger`]).
    pub fn close_linger(&self) -> Duration {
        self.link_settings.close_linger
    }

    /// How long a graceful stop waits to hand over what was accepted
    /// ([`NodeConfig::stop_timeout`]): what a driver passes to [`Node::stop`].
    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout
    }

    /// After [`Node::stop`]: when every connection has had its time to hand over, close and
    /// finish its close (the stop's deadline plus twice the close linger). A driver that
    /// still waits for connections then gives up on them.
    pub fn stop_give_up(&self) -> Option<Instant> {
        let linger = self.close_linger();
        let closed = crate::deadline::later(self.stop_deadline?, linger);
        Some(crate::deadline::later(closed, linger))
    }

    /// The settings to give every [`Link::new`].
    pub fn link_settings(&self) -> LinkSettings {
        self.link_settings
    }

    /// The overflow policy `channel` was opened with (`None`: not open).
    pub fn channel_policy(&self, channel: u8) -> Option<OverflowPolicy> {
        self.router.channel_policy(channel)
    }

    /// The bounds of each peer's queue for each backpressure channel, for the drivers'
    /// send windows.
    pub fn window_limits(&self) -> WindowLimits {
        self.router.window_limits()
    }

    /// The Router, for inspection (peer manager, node info, channel policies, windows).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Carries out the Router's actions and the PEX reactor's outputs until neither has
    /// any, gathering each connection's sends and the store operations into one output.
    fn drain(&mut self, now: Instant) {
        self.drain_actions(now);
        if let Some(deadline) = self.stop_deadline {
            self.router.close_flushed(now, now >= deadline);
            self.drain_actions(now);
        }
        self.flush_batches();
        if let Some(ops) = self.store.take_due(now, self.stop_deadline.is_some()) {
            self.router.counters().store_batch(ops.len());
            self.outputs.push_back(NodeOutput::Store(ops));
        }
    }

    fn drain_actions(&mut self, now: Instant) {
        loop {
            if let Some(pex) = &mut self.pex {
                if let Some(event) = pex.carry_out(now, &mut self.router) {
                    self.outputs.extend(event.map(NodeOutput::Pex));
                    continue;
                }
            }
            let Some(action) = self.router.poll_action() else {
                break;
            };
            self.on_action(now, action);
        }
    }

    /// Emits the gathered sends, one command per connection (the room they free waits in
    /// `window_changes` for `poll_output`).
    fn flush_batches(&mut self) {
        for (conn, messages) in std::mem::take(&mut self.batches) {
            let command = LinkCommand::Send(messages);
            self.outputs.push_back(NodeOutput::Link { conn, command });
        }
    }

    fn on_action(&mut self, now: Instant, action: RouterAction) {
        let output = match action {
            RouterAction::Dial {
                conn,
                address,
                socket,
            } => NodeOutput::Dial {
                conn,
                address,
                socket,
            },
            RouterAction::Resolve { address } => NodeOutput::Resolve { address },
            RouterAction::Send {
                conn,
                node,
                channel,
                message,
            } => {
                if self.windowed(channel) {
                    let released = WindowChange::Released(node, channel, message.len());
                    self.window_changes.push(released);
                }
                self.batches
                    .entry(conn)
                    .or_default()
                    .push((channel, message));
                return;
            }
            RouterAction::Close { conn } => {
                // The sends queued before the close go first (all of them: simpler than
                // picking this connection's, and the order per connection is the same).
                self.flush_batches();
                let command = match self.stop_deadline {
                    Some(_) => LinkCommand::Stop,
                    None => LinkCommand::Close,
                };
                NodeOutput::Link { conn, command }
            }
            RouterAction::Deliver(envelope) => {
                // Links report only the node machine's own channels (the application's
                // messages leave through `Link::poll_delivery`).
                if let (Some(pex), Some(from)) = (&mut self.pex, envelope.from) {
                    if envelope.channel == PEX_CHANNEL {
                        pex.on_message(now, from, envelope.message, &mut self.router);
                        return;
                    }
                }
                tracing::debug!(
                    channel = envelope.channel,
                    "message for no reactor: dropped"
                );
                return;
            }
            RouterAction::PeerUpdate(update) => {
                // What was sent to a peer before it went down (or to its previous
                // connection) goes out, and frees its room, before the update; the
                // windows follow the update before the application hears of it.
                self.flush_batches();
                let change = self.window_change(&update);
                let mut changes = std::mem::take(&mut self.window_changes);
                changes.push(change);
                self.outputs.push_back(NodeOutput::Windows(changes));
                if let Some(pex) = &mut self.pex {
                    pex.on_peer_update(now, &update, &mut self.router);
                }
                match self.router.peer_counters_of(update.node_id) {
                    Some(counters) if update.status == PeerStatus::Up => {
                        self.view.peer_up(update.node_id, counters);
                    }
                    _ => self.view.peer_down(update.node_id),
                }
                NodeOutput::PeerUpdate(update)
            }
            RouterAction::Store(op) => {
                self.store.push(now, op);
                return;
            }
            RouterAction::Writable { node, channel } => NodeOutput::Writable { node, channel },
        };
        self.outputs.push_back(output);
    }
}
