//! The Router: the node-level machine of ADR 062. It owns the PeerManager, the channel
//! table and the connection table, routes envelopes between channels and connections, turns
//! PeerErrors into score changes or evictions, and tells the driver what to dial, resolve,
//! send, close, deliver and store. Per-connection work (crypto, framing) stays in each
//! connection's [`PeerConnection`](crate::connection::PeerConnection), which the driver owns
//! and may run on any thread; the Router only sees its events.
//!
//! Call order, for a driver (as quinn-proto documents its `Endpoint`):
//! 1. [`Router::new`], then [`Router::open_channel`] for every channel (channels are
//!    advertised in our NodeInfo, so they are fixed once the first connection starts), then
//!    [`Router::add_peer`] for known addresses.
//! 2. Loop:
//!    - drain [`Router::poll_action`] and carry out each [`RouterAction`]: `Dial` → connect,
//!      then [`Router::dial_succeeded`] (create the `PeerConnection` from the returned
//!      [`ConnectionParams`]) or [`Router::dial_failed`]; `Resolve` → DNS, then
//!      [`Router::resolved`]; `Send` → `PeerConnection::send`, then
//!      [`Router::messages_accepted`] once it took the messages; `Close` → close that
//!      connection; `Deliver`, `PeerUpdate`, `Store` → hand to the application / database;
//!    - for each accepted TCP connection call [`Router::accept`] *before* any handshake work;
//!    - feed every `PeerEvent` of every connection to [`Router::handle_connection_event`]
//!      (a `Closed` event is mandatory, also after a `Close` action);
//!    - application sends go to [`Router::send`], reactor complaints to
//!      [`Router::report_error`];
//!    - sleep until [`Router::poll_timeout`] (re-read after every call) and then call
//!      [`Router::handle_timeout`].
//!
//! Outbound flow control: each connection gets at most `send_credit` messages that the
//! driver has not yet confirmed with `messages_accepted` (and at most `send_credit_bytes` of
//! payload); the rest wait in the connection's
//! QoS queue (`crate::queue`), whose policy decides what is dropped under overload. The
//! MConnection's own per-channel queues hold only what the credit lets through, so a
//! message is buffered twice only for that short hand-off (the MConnection must hold whole
//! messages of several channels to interleave their chunks).

mod admission;
mod counters;
mod held;
mod outbound;
mod peer_counters;
mod table;
mod types;
pub mod window;

pub use admission::AdmissionError;
pub use counters::{CountersSnapshot, DropReason, PexMessageType, RouterCounters};
pub use peer_counters::{
    ChannelSnapshot, PeerCounters, PeerOrigin, PeerSnapshot, RttSnapshot, RTT_BUCKETS_SECONDS,
};
pub use table::ConnectionId;
pub use types::{
    Envelope, OverflowPolicy, PeerError, RouterAction, RouterError, SendError, Target,
};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::address::{NodeAddress, Resolution};
use crate::channel_set::ChannelSet;
use crate::connection::{ConnectionError, Direction, PeerConfig, PeerEvent};
use crate::id::NodeId;
use crate::mconn::ChannelDescriptor;
use crate::node_info::NodeInfo;
use crate::peer_manager::{
    ClockAnchor, PeerManager, PeerManagerOptions, PeerRecord, ScoreReport, SubscriptionId,
};
use crate::queue::{new_queue, ChannelQos, MessageQueue, QueueConfig, QueueKind};
use admission::IncomingTracker;
use held::Held;
use table::Table;

/// Most dial attempts started in one pass, so a long run of unusable addresses cannot stall
/// a call.
const DIALS_PER_PASS: usize = 64;

/// Router settings. Every limit is explicit; [`RouterConfig::default`] follows v0.35's node
/// settings where they exist.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// PeerManager limits, scoring and backoff.
    pub peer_manager: PeerManagerOptions,
    /// Template for every connection (AEAD backend, MConnection settings, handshake
    /// timeout); its channel list is filled from the opened channels.
    pub connection: PeerConfig,
    /// Messages one peer's queue for one backpressure channel holds before a send to it
    /// must wait ([`OverflowPolicy::Backpressure`]). Default 1024 (with 16 MiB below: the
    /// bounds the per-peer QoS queue has), so a sender that keeps a few hundred messages in
    /// flight never waits on a peer that keeps up: with 256, the smol one-way bench (512 in
    /// flight) spent about 10 % of its rate waking waiting senders (BENCHMARKS.md).
    pub channel_queue_messages: usize,
    /// Payload bytes one peer's queue for one backpressure channel holds before a send
    /// must wait (one message always fits into an empty queue).
    pub channel_queue_bytes: usize,
    /// Queue policy of each connection's outbound QoS queue (drop channels).
    pub queue_kind: QueueKind,
    /// Messages one connection's QoS queue may hold.
    pub queue_max_items: usize,
    /// Payload bytes one connection's QoS queue may hold.
    pub queue_max_bytes: usize,
    /// Messages handed to a connection and not yet confirmed.
    pub send_credit: usize,
    /// Payload bytes handed to a connection and not yet confirmed: no more is handed over
    /// while this many are outstanding (one message always may be, whatever its size). With
    /// `send_credit` it bounds what a connection holds beyond its QoS queue: without it,
    /// `send_credit` messages of the largest size could wait there.
    pub send_credit_bytes: usize,
    /// How long a TCP connect may take (v0.35 node: 3 s).
    pub dial_timeout: Duration,
    /// Dials (and DNS lookups) in flight at once.
    pub max_concurrent_dials: usize,
    /// Connections in any state at once (dialing, handshaking, active).
    pub max_connections: usize,
    /// Concurrent inbound connections from one IP (v0.35: 100).
    pub max_incoming_per_ip: usize,
    /// Minimum gap before an IP with no open connection may connect again (v0.35: 100 ms).
    pub incoming_window: Duration,
    /// Loopback peers skip `incoming_window` (default `true`): local tools and tests
    /// reconnect at once, and the window exists against remote reconnect storms. The per-IP
    /// cap still applies.
    pub incoming_window_exempts_loopback: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            peer_manager: PeerManagerOptions::node_defaults(),
            connection: PeerConfig::default(),
            channel_queue_messages: 1024,
            channel_queue_bytes: 16 << 20,
            queue_kind: QueueKind::Priority,
            queue_max_items: 1024,
            queue_max_bytes: 16_000_000,
            send_credit: 32,
            send_credit_bytes: 4 << 20,
            dial_timeout: Duration::from_secs(3),
            max_concurrent_dials: 32,
            max_connections: 1024,
            max_incoming_per_ip: 100,
            incoming_window: Duration::from_millis(100),
            incoming_window_exempts_loopback: true,
        }
    }
}

impl RouterConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`RouterError::InvalidConfig`] naming the setting.
    pub fn validate(&self) -> Result<(), RouterError> {
        let bad = |what: &str| Err(RouterError::InvalidConfig(what.to_owned()));
        if self.send_credit == 0 || self.send_credit_bytes == 0 {
            return bad("send_credit and send_credit_bytes must be above zero");
        }
        if self.channel_queue_messages == 0 || self.channel_queue_bytes == 0 {
            return bad("channel_queue_messages and channel_queue_bytes must be above zero");
        }
        if self.max_concurrent_dials == 0 || self.max_connections == 0 {
            return bad("max_concurrent_dials and max_connections must be above zero");
        }
        if self.max_incoming_per_ip == 0 {
            return bad("max_incoming_per_ip must be above zero");
        }
        if self.dial_timeout.is_zero() {
            return bad("dial_timeout must be above zero");
        }
        self.connection
            .mconn
            .validate()
            .map_err(|e| RouterError::InvalidConfig(e.to_string()))?;
        self.peer_manager
            .validate()
            .map_err(|e| RouterError::InvalidConfig(e.to_string()))
    }
}

/// What a driver needs to create the `PeerConnection` of a new connection.
#[derive(Debug, Clone)]
pub struct ConnectionParams {
    /// The router's id for it.
    pub conn: ConnectionId,
    /// Dial direction (with the expected peer id when outbound).
    pub direction: Direction,
    /// Our node info, with the opened channels.
    pub node_info: NodeInfo,
    /// Connection settings, with the opened channels.
    pub config: PeerConfig,
    /// The node's counters, for the connection side to count what it receives and how
    /// its handshake ends.
    pub counters: Arc<RouterCounters>,
}

enum Phase {
    /// TCP connect in flight.
    Dialing { deadline: Instant },
    /// Handshake in flight.
    Handshaking,
    /// Authenticated, accepted by the PeerManager, routed.
    Active {
        node: NodeId,
        channels: ChannelSet,
        /// Drop channels' messages, under the configured QoS policy.
        queue: Box<dyn MessageQueue>,
        /// Backpressure channels' messages.
        held: Held,
        /// The pump takes from `held` next (it alternates with `queue`).
        held_turn: bool,
        credit: usize,
        /// Payload bytes handed over and not yet confirmed.
        in_flight_bytes: usize,
        /// The peer's counters (shared with its `Link` and the registry).
        stats: Arc<PeerCounters>,
    },
    /// Authenticated but refused (the PeerManager already knows); waiting for `Closed`.
    Refused,
}

struct Conn {
    /// The dialed address (outbound) or `None` (inbound).
    dialed: Option<NodeAddress>,
    /// The remote socket address: the one dialed, or the one that connected.
    remote: SocketAddr,
    phase: Phase,
    /// A `Close` action was emitted.
    closing: bool,
}

/// The node-level machine (see the module docs for the call order).
pub struct Router {
    config: RouterConfig,
    node_info: NodeInfo,
    peers: PeerManager,
    subscription: SubscriptionId,
    channels: BTreeMap<u8, ChannelDescriptor>,
    /// Channels opened with [`OverflowPolicy::Drop`].
    drop_channels: ChannelSet,
    counters: Arc<RouterCounters>,
    conns: Table<Conn>,
    by_node: BTreeMap<NodeId, ConnectionId>,
    dial_deadlines: BTreeSet<(Instant, ConnectionId)>,
    resolving: BTreeSet<String>,
    dials_in_flight: usize,
    incoming: IncomingTracker,
    ip_filter: Option<Box<dyn Fn(IpAddr) -> bool + Send>>,
    id_filter: Option<Box<dyn Fn(NodeId) -> bool + Send>>,
    actions: VecDeque<RouterAction>,
    rng: Box<dyn RngCore + Send>,
    started: bool,
    /// `Router::stop` was called: no new dials or connections.
    stopping: bool,
    /// Reused list of an envelope's target connections (no allocation per send).
    targets: Vec<ConnectionId>,
    /// Set at construction: the first `handle_timeout` is due at once, so peers loaded from
    /// the store are dialed without waiting for another input (after the driver opened its
    /// channels, which must come before any dial).
    first_pass_due: Option<Instant>,
}

impl Router {
    /// A router for the node described by `node_info` (its channel list is replaced by
    /// the channels opened later), with the peers in `records` (from the peer store).
    ///
    /// # Errors
    /// [`RouterError::InvalidConfig`].
    pub fn new(
        config: RouterConfig,
        mut node_info: NodeInfo,
        clock: ClockAnchor,
        now: Instant,
        records: Vec<PeerRecord>,
        rng: Box<dyn RngCore + Send>,
    ) -> Result<Self, RouterError> {
        config.validate()?;
        node_info.channels.clear();
        let mut peers = PeerManager::from_records(
            node_info.node_id,
            config.peer_manager.clone(),
            clock,
            now,
            records,
        )
        .map_err(|e| RouterError::InvalidConfig(e.to_string()))?;
        let subscription = peers.subscribe();
        let mut router = Router {
            incoming: IncomingTracker::new(
                config.max_incoming_per_ip,
                config.incoming_window,
                config.incoming_window_exempts_loopback,
            ),
            config,
            node_info,
            peers,
            subscription,
            channels: BTreeMap::new(),
            drop_channels: ChannelSet::default(),
            counters: Arc::default(),
            conns: Table::new(),
            by_node: BTreeMap::new(),
            dial_deadlines: BTreeSet::new(),
            resolving: BTreeSet::new(),
            dials_in_flight: 0,
            ip_filter: None,
            id_filter: None,
            actions: VecDeque::new(),
            rng,
            started: false,
            stopping: false,
            targets: Vec::new(),
            first_pass_due: Some(now),
        };
        router.drain_peer_manager();
        Ok(router)
    }

    /// Opens a channel with the default [`OverflowPolicy::Backpressure`]; see
    /// [`Router::open_channel_with_policy`].
    ///
    /// # Errors
    /// As [`Router::open_channel_with_policy`].
    pub fn open_channel(&mut self, descriptor: ChannelDescriptor) -> Result<(), RouterError> {
        self.open_channel_with_policy(descriptor, OverflowPolicy::Backpressure)
    }

    /// Opens a channel with `policy` for full peer queues. Must happen before the first
    /// connection (channels are advertised in NodeInfo).
    ///
    /// # Errors
    /// [`RouterError::DuplicateChannel`], [`RouterError::ChannelsFrozen`],
    /// [`RouterError::InvalidChannel`].
    pub fn open_channel_with_policy(
        &mut self,
        descriptor: ChannelDescriptor,
        policy: OverflowPolicy,
    ) -> Result<(), RouterError> {
        if self.started {
            return Err(RouterError::ChannelsFrozen);
        }
        if self.channels.contains_key(&descriptor.id) {
            return Err(RouterError::DuplicateChannel(descriptor.id));
        }
        if descriptor.priority == 0 {
            return Err(RouterError::InvalidChannel(format!(
                "channel {:#04x} has priority 0",
                descriptor.id
            )));
        }
        self.node_info.channels.push(descriptor.id);
        if policy == OverflowPolicy::Drop {
            self.drop_channels.insert(descriptor.id);
        }
        self.channels.insert(descriptor.id, descriptor);
        self.queue_config()
            .validate()
            .map_err(|e| RouterError::InvalidChannel(e.to_string()))
    }

    /// Closes a channel: its inbound messages are dropped and nothing more is sent on it.
    /// (Peers keep seeing it in our NodeInfo until they reconnect.)
    pub fn close_channel(&mut self, channel: u8) {
        self.channels.remove(&channel);
    }

    /// Installs a filter that refuses inbound connections by IP before any handshake work.
    pub fn set_ip_filter(&mut self, filter: impl Fn(IpAddr) -> bool + Send + 'static) {
        self.ip_filter = Some(Box::new(filter));
    }

    /// Installs a filter that refuses inbound peers by id after the handshake.
    pub fn set_id_filter(&mut self, filter: impl Fn(NodeId) -> bool + Send + 'static) {
        self.id_filter = Some(Box::new(filter));
    }

    /// Our node info as advertised (with the opened channels).
    pub fn node_info(&self) -> &NodeInfo {
        &self.node_info
    }

    /// The delivery counters, shared: keep the `Arc` to read them from any thread.
    pub fn counters(&self) -> &Arc<RouterCounters> {
        &self.counters
    }

    /// The PeerManager, for inspection.
    pub fn peer_manager(&self) -> &PeerManager {
        &self.peers
    }

    /// The PeerManager, for reactors that need it (PEX: `add`, `advertise`). Call
    /// [`Router::handle_timeout`] or any other input afterwards so its outputs are drained.
    pub fn peer_manager_mut(&mut self) -> &mut PeerManager {
        &mut self.peers
    }

    /// Adds a peer address (e.g. a persistent peer or one learned by PEX).
    ///
    /// # Errors
    /// [`RouterError::Peer`] with the PeerManager's refusal.
    pub fn add_peer(&mut self, now: Instant, address: NodeAddress) -> Result<bool, RouterError> {
        let added = self.peers.add(now, address).map_err(RouterError::Peer);
        self.try_dials(now);
        self.drain_peer_manager();
        added
    }

    /// Connected peers (active connections).
    pub fn connected_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.by_node.keys().copied()
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<RouterAction> {
        self.actions.pop_front()
    }

    /// The next instant at which [`Router::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.first_pass_due.is_some() {
            return self.first_pass_due;
        }
        let dial = self.dial_deadlines.first().map(|(at, _)| *at);
        match (dial, self.peers.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Timers: dial timeouts, retry backoffs, new dials.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.first_pass_due = None;
        while let Some(&(at, conn)) = self.dial_deadlines.first() {
            if at > now {
                break;
            }
            self.dial_deadlines.remove(&(at, conn));
            tracing::info!(%conn, "dial timed out");
            self.fail_dial(now, conn);
            self.actions.push_back(RouterAction::Close { conn });
        }
        self.peers.handle_timeout(now);
        self.try_dials(now);
        self.drain_peer_manager();
    }

    /// The hostname of `address` resolved to `ips` (empty: it did not resolve).
    pub fn resolved(&mut self, now: Instant, address: &NodeAddress, ips: &[IpAddr]) {
        if !self.resolving.remove(&address.to_string()) {
            tracing::debug!(%address, "resolution for an address we are not resolving");
            return;
        }
        let socket = address
            .endpoints_from_ips(ips)
            .iter()
            .find_map(|e| e.mconn_dial_addr().ok());
        match socket {
            // The lookup's place in `dials_in_flight` passes to the dial.
            Some(socket) => self.start_dial(now, address.clone(), socket),
            None => {
                self.dials_in_flight = self.dials_in_flight.saturating_sub(1);
                self.peers.dial_failed(now, address, &mut self.rng);
            }
        }
        self.try_dials(now);
        self.drain_peer_manager();
    }

    /// The TCP connect of `conn` succeeded. Returns what the driver needs to start the
    /// connection's `PeerConnection`.
    ///
    /// # Errors
    /// [`RouterError::UnknownConnection`] for a stale or timed-out dial (close the socket).
    pub fn dial_succeeded(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        remote: SocketAddr,
    ) -> Result<ConnectionParams, RouterError> {
        let _ = now;
        let Some(entry) = self.conns.get_mut(conn) else {
            tracing::debug!(%conn, "dial result for a stale connection");
            return Err(RouterError::UnknownConnection(conn));
        };
        let Phase::Dialing { deadline } = entry.phase else {
            return Err(RouterError::UnknownConnection(conn));
        };
        entry.phase = Phase::Handshaking;
        entry.remote = remote;
        let expected = entry.dialed.as_ref().map(|a| a.node_id);
        self.dial_deadlines.remove(&(deadline, conn));
        self.dials_in_flight = self.dials_in_flight.saturating_sub(1);
        self.counters.dial(true);
        let direction = match expected {
            Some(expected) => Direction::Outbound { expected },
            None => Direction::Inbound,
        };
        Ok(self.params(conn, direction))
    }

    /// The TCP connect of `conn` failed. Returns whether the dial was still pending (a
    /// driver logs a late failure of a dial the Router already timed out at debug only).
    pub fn dial_failed(&mut self, now: Instant, conn: ConnectionId) -> bool {
        let pending = self.fail_dial(now, conn);
        self.try_dials(now);
        self.drain_peer_manager();
        pending
    }

    /// A TCP connection from `remote` arrived. Call before any handshake work: on `Err`
    /// close the socket at once.
    ///
    /// # Errors
    /// [`AdmissionError`] saying why it was refused.
    pub fn accept(
        &mut self,
        now: Instant,
        remote: SocketAddr,
    ) -> Result<ConnectionParams, AdmissionError> {
        let ip = remote.ip();
        if self.stopping {
            return Err(AdmissionError::Stopping);
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(AdmissionError::TooManyConnections(
                self.config.max_connections,
            ));
        }
        if let Some(filter) = &self.ip_filter {
            if !filter(ip) {
                return Err(AdmissionError::Filtered(ip));
            }
        }
        self.incoming.add(now, ip)?;
        self.started = true;
        let conn = self.conns.insert(Conn {
            dialed: None,
            remote,
            phase: Phase::Handshaking,
            closing: false,
        });
        Ok(self.params(conn, Direction::Inbound))
    }

    /// An event of connection `conn`'s `PeerConnection`. Events for stale ids are ignored.
    pub fn handle_connection_event(&mut self, now: Instant, conn: ConnectionId, event: PeerEvent) {
        if self.conns.get(conn).is_none() {
            tracing::debug!(%conn, "event for a stale connection ignored");
            return;
        }
        match event {
            PeerEvent::Authenticated { node_info, .. } => {
                self.on_authenticated(now, conn, &node_info)
            }
            PeerEvent::Message { channel, message } => self.on_message(conn, channel, message),
            PeerEvent::Pong { rtt } => self.on_pong(conn, rtt),
            PeerEvent::Closed { reason } => {
                self.log_close(conn, reason.as_ref());
                let incompatible = reason
                    .as_ref()
                    .is_some_and(|r| r.kind() == crate::connection::FailureKind::Incompatible);
                self.on_closed(now, conn, incompatible);
            }
        }
        self.evict(now);
        self.try_dials(now);
        self.drain_peer_manager();
    }

    /// The peer connection `conn` is routed to: `Some` once its `Authenticated` event made
    /// it an active peer (accepted by the PeerManager) and while no `Close` was emitted for
    /// it. The node machine asks this after passing on the `Authenticated` event, to admit
    /// the connection's `Link` (a `None` there means the peer was refused and a `Close`
    /// follows).
    pub fn routed_peer(&self, conn: ConnectionId) -> Option<NodeId> {
        match self.conns.get(conn)? {
            Conn {
                phase: Phase::Active { node, .. },
                closing: false,
                ..
            } => Some(*node),
            _ => None,
        }
    }

    /// The counters of routed peer `node` (shared: keep the `Arc` to read them from any
    /// thread while the peer is up).
    pub fn peer_counters_of(&self, node: NodeId) -> Option<Arc<PeerCounters>> {
        let conn = *self.by_node.get(&node)?;
        self.peer_counters(conn)
    }

    /// The counters of the peer connection `conn` is routed to (see [`Router::routed_peer`]).
    pub fn peer_counters(&self, conn: ConnectionId) -> Option<Arc<PeerCounters>> {
        match self.conns.get(conn)? {
            Conn {
                phase: Phase::Active { stats, .. },
                closing: false,
                ..
            } => Some(Arc::clone(stats)),
            _ => None,
        }
    }

    /// A reactor's complaint: fatal (or at capacity) evicts the peer; otherwise its score
    /// goes down.
    pub fn report_error(&mut self, now: Instant, error: PeerError) {
        // Once per disconnect: a closing peer's further errors (messages it sent before
        // the close still arrive) are debug, so a peer cannot flood the log.
        let open = self
            .by_node
            .get(&error.node)
            .and_then(|&c| self.conns.get(c));
        if error.fatal && open.is_some_and(|entry| !entry.closing) {
            tracing::info!(peer = %error.node, reason = %error.reason, "fatal peer error: disconnecting");
        } else {
            tracing::debug!(peer = %error.node, reason = %error.reason, "peer error");
        }
        let max = usize::from(self.config.peer_manager.max_connected);
        let at_capacity = max > 0 && self.peers.connected_count() >= max;
        if error.fatal || at_capacity {
            self.peers.errored(error.node);
        } else if let Err(e) = self.peers.report(error.node, ScoreReport::Bad) {
            tracing::debug!(node = %error.node, %e, "score report ignored");
        }
        self.evict(now);
        self.drain_peer_manager();
    }

    /// Disconnects a connected peer gracefully: messages already handed to its connection
    /// are still flushed (the driver closes the connection with `PeerConnection::close`).
    /// Its score is untouched; use [`Router::report_error`] to punish a peer. (PEX seed
    /// mode uses this after answering a request.)
    ///
    /// # Errors
    /// [`RouterError::NotConnected`].
    pub fn disconnect(&mut self, node: NodeId) -> Result<(), RouterError> {
        let conn = *self
            .by_node
            .get(&node)
            .ok_or(RouterError::NotConnected(node))?;
        if let Some(entry) = self.conns.get_mut(conn) {
            if !entry.closing {
                entry.closing = true;
                self.actions.push_back(RouterAction::Close { conn });
            }
        }
        Ok(())
    }

    /// Starts a graceful stop: no new dials or inbound connections from now on. Close the
    /// connections with [`Router::close_flushed`].
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Connections in any state (dialing, handshaking, active, closing).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// During a stop: closes every connection that has nothing left to hand over (its
    /// queues are empty and its connection confirmed everything), every handshake and
    /// every dial; with `force`, every connection whatever it still holds (what is left is
    /// counted when it closes).
    pub fn close_flushed(&mut self, now: Instant, force: bool) {
        let send_credit = self.config.send_credit;
        let mut close = Vec::new();
        let mut dials = Vec::new();
        for (conn, entry) in self.conns.iter() {
            if entry.closing {
                continue;
            }
            match &entry.phase {
                Phase::Active {
                    queue,
                    held,
                    credit,
                    ..
                } => {
                    let credit = *credit;
                    let flushed = queue.is_empty() && held.len() == 0 && credit == send_credit;
                    if force || flushed {
                        close.push(conn);
                    }
                }
                Phase::Dialing { .. } => dials.push(conn),
                Phase::Handshaking | Phase::Refused => close.push(conn),
            }
        }
        for conn in dials {
            self.fail_dial(now, conn);
            self.actions.push_back(RouterAction::Close { conn });
        }
        for conn in close {
            if let Some(entry) = self.conns.get_mut(conn) {
                entry.closing = true;
                self.actions.push_back(RouterAction::Close { conn });
            }
        }
        self.drain_peer_manager();
    }

    /// Reports good behaviour of a peer (score up).
    pub fn report_good(&mut self, node: NodeId) {
        let _ = self.peers.report(node, ScoreReport::Good);
        self.drain_peer_manager();
    }

    fn params(&mut self, conn: ConnectionId, direction: Direction) -> ConnectionParams {
        self.started = true;
        let mut config = self.config.connection.clone();
        config.channels = self.channels.values().cloned().collect();
        ConnectionParams {
            conn,
            direction,
            node_info: self.node_info.clone(),
            config,
            counters: Arc::clone(&self.counters),
        }
    }

    fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            kind: self.config.queue_kind,
            max_items: self.config.queue_max_items,
            max_bytes: self.config.queue_max_bytes,
            channels: self
                .channels
                .values()
                .map(|d| ChannelQos {
                    channel: d.id,
                    priority: d.priority,
                    weight: d.priority,
                })
                .collect(),
        }
    }

    fn on_authenticated(&mut self, now: Instant, conn: ConnectionId, info: &NodeInfo) {
        let node = info.node_id;
        let Some(entry) = self.conns.get(conn) else {
            return;
        };
        if !matches!(entry.phase, Phase::Handshaking) {
            return;
        }
        let (dialed, ip, remote) = (entry.dialed.clone(), Some(entry.remote.ip()), entry.remote);
        let queue = match new_queue(&self.queue_config()) {
            Ok(queue) => queue,
            Err(e) => {
                // Validated when the channels opened; kept total all the same.
                tracing::warn!(%conn, %e, "cannot build the peer queue");
                if let Some(address) = &dialed {
                    self.peers.dial_failed(now, address, &mut self.rng);
                }
                self.refuse(conn);
                return;
            }
        };
        let result = match &dialed {
            Some(address) => self
                .peers
                .dialed(now, address, ip)
                .map_err(|e| e.to_string()),
            None => match &self.id_filter {
                Some(filter) if !filter(node) => Err(format!("{node} refused by the id filter")),
                _ => self
                    .peers
                    .accepted(now, node, ip)
                    .map_err(|e| e.to_string()),
            },
        };
        if let Err(reason) = result {
            tracing::info!(%conn, peer = %node, %reason, "peer refused after handshake");
            self.refuse(conn);
            return;
        }
        if let Some(entry) = self.conns.get_mut(conn) {
            let shared = info.channels.iter().copied();
            let shared = shared.filter(|c| self.channels.contains_key(c));
            let origin = PeerOrigin {
                outbound: dialed.is_some(),
                remote,
                since: now,
                info: Arc::new(info.clone()),
            };
            let stats = Arc::new(PeerCounters::new(node, shared, origin));
            entry.phase = Phase::Active {
                node,
                channels: ChannelSet::from_ids(&info.channels),
                queue,
                held: Held::default(),
                held_turn: true,
                credit: self.config.send_credit,
                in_flight_bytes: 0,
                stats,
            };
            self.by_node.insert(node, conn);
            let channels = info.channels.iter().map(|&c| u16::from(c)).collect();
            self.peers.ready(node, channels);
            tracing::debug!(%conn, %node, "peer routed");
        }
    }

    /// A routed peer answered a ping: its round-trip time goes to its counters.
    fn on_pong(&mut self, conn: ConnectionId, rtt: Duration) {
        tracing::trace!(%conn, ?rtt, "pong");
        if let Some(Conn {
            phase: Phase::Active { stats, .. },
            ..
        }) = self.conns.get(conn)
        {
            stats.rtt(rtt);
        }
    }

    /// Logs a connection's end once, at info when an operator needs it: a routed peer's
    /// disconnect, or a handshake that failed (an incompatible peer's reason shows only
    /// here). A refused peer's close was logged with the refusal, a dial's with its failure.
    fn log_close(&self, conn: ConnectionId, reason: Option<&ConnectionError>) {
        let phase = self.conns.get(conn).map(|entry| &entry.phase);
        let cause = reason.map_or_else(|| "closed by this node".to_owned(), ToString::to_string);
        match phase {
            Some(Phase::Active { node, .. }) => {
                tracing::info!(%conn, peer = %node, reason = %cause, "peer disconnected");
            }
            Some(Phase::Handshaking) if reason.is_some() => {
                tracing::info!(%conn, reason = %cause, "handshake failed");
            }
            _ => tracing::debug!(%conn, reason = %cause, "connection closed"),
        }
    }

    fn refuse(&mut self, conn: ConnectionId) {
        if let Some(entry) = self.conns.get_mut(conn) {
            entry.phase = Phase::Refused;
            entry.closing = true;
            self.actions.push_back(RouterAction::Close { conn });
        }
    }

    fn on_message(&mut self, conn: ConnectionId, channel: u8, message: bytes::Bytes) {
        let Some(Conn {
            phase: Phase::Active { node, .. },
            ..
        }) = self.conns.get(conn)
        else {
            tracing::debug!(%conn, "message before the peer was routed: dropped");
            return;
        };
        if !self.channels.contains_key(&channel) {
            tracing::debug!(%node, channel, "message on a channel we do not have open: dropped");
            return;
        }
        self.actions.push_back(RouterAction::Deliver(Envelope {
            from: Some(*node),
            to: None,
            channel,
            message,
        }));
    }

    /// Cleans up after a connection. `incompatible`: its handshake showed the peer cannot
    /// talk to us (other network, block version or no common channel); a dialed peer is
    /// then marked inactive, as v0.35 does, so it is not redialed until it connects to us.
    fn on_closed(&mut self, now: Instant, conn: ConnectionId, incompatible: bool) {
        let Some(entry) = self.conns.remove(conn) else {
            return;
        };
        if entry.dialed.is_none() {
            self.incoming.remove(now, entry.remote.ip());
        }
        match entry.phase {
            Phase::Active {
                node,
                queue,
                held,
                stats,
                ..
            } => {
                let lost = queue.len().saturating_add(held.len());
                if lost > 0 {
                    tracing::debug!(%node, lost, "peer gone with messages still queued for it");
                    self.counters.dropped(counters::DropReason::PeerGone, lost);
                    stats.dropped_peer_gone(lost);
                }
                self.by_node.remove(&node);
                self.peers.disconnected(now, node);
            }
            Phase::Dialing { deadline } => {
                self.dial_deadlines.remove(&(deadline, conn));
                self.dials_in_flight = self.dials_in_flight.saturating_sub(1);
                if let Some(address) = &entry.dialed {
                    self.peers.dial_failed(now, address, &mut self.rng);
                }
            }
            Phase::Handshaking => {
                if let Some(address) = &entry.dialed {
                    self.peers.dial_failed(now, address, &mut self.rng);
                    if incompatible {
                        let _ = self.peers.inactivate(address.node_id);
                    }
                }
            }
            Phase::Refused => {}
        }
    }

    fn fail_dial(&mut self, now: Instant, conn: ConnectionId) -> bool {
        let Some(entry) = self.conns.get(conn) else {
            return false;
        };
        let pending = matches!(entry.phase, Phase::Dialing { .. });
        if pending {
            self.counters.dial(false);
            self.on_closed(now, conn, false);
        }
        pending
    }

    fn evict(&mut self, _now: Instant) {
        while let Some(node) = self.peers.try_evict_next() {
            let Some(&conn) = self.by_node.get(&node) else {
                continue;
            };
            if let Some(entry) = self.conns.get_mut(conn) {
                if !entry.closing {
                    entry.closing = true;
                    tracing::debug!(%conn, %node, "evicting peer");
                    self.actions.push_back(RouterAction::Close { conn });
                }
            }
        }
    }

    fn try_dials(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        for _ in 0..DIALS_PER_PASS {
            // cannot panic: both are counts of in-memory entries.
            if self.dials_in_flight >= self.config.max_concurrent_dials
                || self.conns.len() + self.resolving.len() >= self.config.max_connections
            {
                return;
            }
            let Some(address) = self.peers.try_dial_next(now) else {
                return;
            };
            match address.resolution() {
                Ok(Resolution::Endpoints(endpoints)) => {
                    match endpoints.iter().find_map(|e| e.mconn_dial_addr().ok()) {
                        Some(socket) => {
                            self.dials_in_flight += 1; // cannot panic: < max_concurrent_dials
                            self.start_dial(now, address, socket);
                        }
                        None => {
                            tracing::debug!(%address, "no dialable endpoint");
                            self.peers.dial_failed(now, &address, &mut self.rng);
                        }
                    }
                }
                Ok(Resolution::Lookup { .. }) => {
                    self.dials_in_flight += 1; // cannot panic: < max_concurrent_dials
                    self.resolving.insert(address.to_string());
                    self.actions.push_back(RouterAction::Resolve { address });
                }
                Err(e) => {
                    tracing::debug!(%address, %e, "address cannot be dialed");
                    self.peers.dial_failed(now, &address, &mut self.rng);
                }
            }
        }
    }

    /// Allocates a dialing connection (the caller counted it in `dials_in_flight`).
    fn start_dial(&mut self, now: Instant, address: NodeAddress, socket: SocketAddr) {
        self.started = true;
        let deadline = crate::deadline::later(now, self.config.dial_timeout);
        let conn = self.conns.insert(Conn {
            dialed: Some(address.clone()),
            remote: socket,
            phase: Phase::Dialing { deadline },
            closing: false,
        });
        self.dial_deadlines.insert((deadline, conn));
        self.actions.push_back(RouterAction::Dial {
            conn,
            address,
            socket,
        });
    }

    fn drain_peer_manager(&mut self) {
        while let Some(op) = self.peers.poll_store_op() {
            self.actions.push_back(RouterAction::Store(op));
        }
        loop {
            match self.peers.poll_update(self.subscription) {
                Ok(Some(update)) => self.actions.push_back(RouterAction::PeerUpdate(update)),
                Ok(None) => break,
                Err(closed) => {
                    // Our own queue overflowed: resubscribe so later updates still flow.
                    tracing::warn!(%closed, "router's peer-update subscription lagged");
                    self.subscription = self.peers.subscribe();
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
