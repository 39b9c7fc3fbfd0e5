//! A deterministic whole-network simulator (issue #8): N nodes of real core machines (real
//! crypto, framing, Router and PeerManager) over an in-memory network with virtual time, in
//! the style of quinn-proto's test `Pair` grown to a network.
//!
//! - Time is an `Instant` taken once when the [`Sim`] is built plus virtual offsets;
//!   nothing reads the wall clock during a run.
//! - One seed drives everything (ChaCha20): node keys, ephemeral keys, router RNGs, jitter
//!   and loss. The same seed gives the same run byte for byte; [`Sim::trace`] hashes every
//!   segment, delivery, peer update and network event to prove it.
//! - Links ([`network`]) have latency, jitter, loss (a lost segment kills the link: both
//!   ends get EOF) and bandwidth; partitions black-hole links and dials across them; nodes
//!   crash (peers get EOF, the store survives) and restart from their stored records.
//! - [`Sim::step`] advances to the next network event or timer; [`Sim::drive`] runs until
//!   the network is quiet; [`Sim::run_for`] runs a stretch of virtual time. A machine that
//!   asks to be woken at or before `now` and then does nothing, or a node whose timers
//!   come due [`MAX_FIRES_PER_INSTANT`] times at one instant, is a [`SimError::HotLoop`]
//!   (`--test sim_reactor_timers` trips both with a deliberately broken reactor).
//! - Every node's work runs in a `tracing` span `node{idx, inc}`.
//! - Reactors ([`reactor`]) are closures or small structs over the typed-channel API, with
//!   an optional timer of their own.
//! - PEX ([`pex`]): [`Sim::enable_pex`] runs the real PEX reactor (or a request flooder)
//!   on a node's channel 0x00; `cargo test -p tmp2p-tests --test sim_pex`.
//!
//! Running: the scenario tests are `cargo test -p tmp2p-tests --test sim_scenarios`; the
//! chaos runs `cargo test -p tmp2p-tests --test sim_fuzz` (6 seeds), the full count
//! `SIM_SEEDS=1000 cargo test --release -p tmp2p-tests --test sim_fuzz -- --nocapture`, one
//! seed `SIM_SEED=<n> ...`; the speed bench `cargo bench -p tmp2p-tests --bench sim`.
//!
//! The driver duties (what to do with each `RouterAction` and `PeerEvent`) follow the
//! router's module docs; this is the multi-node, faulty-network form of the harness in
//! `core/src/router/tests.rs`.

mod engine;
mod limits;
pub mod network;
pub mod node;
pub mod pex;
pub mod reactor;
pub mod stamp;
pub mod trace;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::node::{Node, NodeError};
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::ClockAnchor;
use tmp2p_core::pex::{channel_descriptor as pex_channel, PEX_CHANNEL};
use tmp2p_core::router::{Envelope, OverflowPolicy, PeerError, RouterError};
use tmp2p_core::{NodeId, NodeKey};

pub use network::LinkParams;
pub use node::{channel, NodeSpec, Received, SimNode, LISTEN_PORT};
pub use pex::{PexLog, PexRole};
pub use reactor::{Reactor, ReactorCtx, TypedReactor};
pub use trace::Trace;

use network::{EventQueue, Link, LinkId, Partition};
use node::Running;

/// Wall-clock seconds since the Unix epoch that virtual time zero stands for.
const EPOCH_SECS: u64 = 1_700_000_000;

/// Steps one `drive` or `run_for` may take before it is declared runaway.
const MAX_STEPS: u64 = 50_000_000;
/// Times one node's timers may come due at one virtual instant before it is a hot loop.
pub const MAX_FIRES_PER_INSTANT: u32 = 10_000;

/// Counts of what the network did, to show a run exercised its faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Links (TCP connections) set up.
    pub links: u64,
    /// Segments carried.
    pub segments: u64,
    /// Links killed by a lost segment.
    pub lost: u64,
    /// Links cut by a partition.
    pub blackholed: u64,
    /// Dials that reached nobody listening.
    pub refused: u64,
}

/// Why a simulation stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// A machine asked to be woken at or before `now`, was woken, and did nothing; or a
    /// node's timers came due more than [`MAX_FIRES_PER_INSTANT`] times at one instant
    /// (busy without letting time pass).
    #[error("hot loop at {at:?}: node {node} {machine} is due again without doing anything")]
    HotLoop {
        /// Virtual time.
        at: Duration,
        /// Node index.
        node: usize,
        /// `router`, `pex`, the connection, the reactor, or the driver's service loop.
        machine: String,
    },
    /// `drive` did not reach a quiet network within its virtual-time budget.
    #[error("network not quiet after {budget:?} of virtual time ({events} events pending)")]
    NotQuiescent {
        /// The budget.
        budget: Duration,
        /// Events still queued.
        events: usize,
    },
    /// More than the step limit in one call.
    #[error("more than {0} steps in one call")]
    Runaway(u64),
    /// A node index out of range.
    #[error("no node {0}")]
    NoSuchNode(usize),
    /// The node is down (or up) when the call needs the opposite.
    #[error("node {node} is in the wrong state: {what}")]
    WrongState {
        /// Node index.
        node: usize,
        /// What was expected.
        what: &'static str,
    },
    /// The router refused a setting or call.
    #[error("node {node}: {error}")]
    Router {
        /// Node index.
        node: usize,
        /// The router's error.
        error: RouterError,
    },
    /// The node machine refused a setting at start.
    #[error("node {node}: {error}")]
    Node {
        /// Node index.
        node: usize,
        /// The node machine's error.
        error: NodeError,
    },
    /// An invariant check failed.
    #[error("invariant violated at {at:?}: {what}")]
    Invariant {
        /// Virtual time.
        at: Duration,
        /// What.
        what: String,
    },
}

/// The simulated network.
pub struct Sim {
    seed: u64,
    base: Instant,
    now: Instant,
    rng: ChaCha20Rng,
    nodes: Vec<SimNode>,
    by_ip: BTreeMap<IpAddr, usize>,
    by_id: BTreeMap<NodeId, usize>,
    links: BTreeMap<LinkId, Link>,
    next_link: LinkId,
    next_port: u32,
    events: EventQueue,
    default_link: LinkParams,
    link_params: BTreeMap<(usize, usize), LinkParams>,
    partition: Partition,
    trace: Trace,
    /// Every running node's earliest timer, indexed by time (kept by `refresh_timer`).
    timers: BTreeSet<(Instant, usize)>,
    timer_of: BTreeMap<usize, Instant>,
    /// Per node: the instant its timers last came due and how often in a row at it.
    fires_at: BTreeMap<usize, (Instant, u32)>,
    stats: SimStats,
    /// Budget of virtual time for one `drive`.
    pub drive_budget: Duration,
}

impl Sim {
    /// An empty network driven by `seed`.
    pub fn new(seed: u64) -> Sim {
        // The one wall-clock read: the base every virtual instant is an offset from.
        let base = Instant::now();
        Sim {
            seed,
            base,
            now: base,
            rng: ChaCha20Rng::seed_from_u64(seed),
            nodes: Vec::new(),
            by_ip: BTreeMap::new(),
            by_id: BTreeMap::new(),
            links: BTreeMap::new(),
            next_link: 0,
            next_port: 0,
            events: EventQueue::default(),
            default_link: LinkParams::default(),
            link_params: BTreeMap::new(),
            partition: Partition::default(),
            trace: Trace::default(),
            timers: BTreeSet::new(),
            timer_of: BTreeMap::new(),
            fires_at: BTreeMap::new(),
            stats: SimStats::default(),
            drive_budget: Duration::from_secs(600),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now.duration_since(self.base)
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// What the network did so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// The trace so far.
    pub fn trace(&self) -> Trace {
        self.trace
    }

    /// Sets the link properties used for every pair without its own.
    pub fn set_default_link(&mut self, params: LinkParams) {
        self.default_link = params;
    }

    /// Sets the link properties between `a` and `b` (for links opened from now on).
    pub fn set_link(&mut self, a: usize, b: usize, params: LinkParams) {
        self.link_params.insert((a.min(b), a.max(b)), params);
    }

    pub(crate) fn link_between(&self, a: usize, b: usize) -> LinkParams {
        self.link_params
            .get(&(a.min(b), a.max(b)))
            .copied()
            .unwrap_or(self.default_link)
    }

    /// Adds a node (not started): its key comes from the seed and its index.
    pub fn add_node(&mut self, spec: NodeSpec) -> usize {
        let index = self.nodes.len();
        let mut seed = [0u8; 32];
        let mut keys = ChaCha20Rng::seed_from_u64(self.seed ^ 0x6b65_7973);
        keys.set_word_pos(u128::try_from(index).unwrap_or(0).saturating_mul(8));
        keys.fill_bytes(&mut seed);
        let key = NodeKey::from_seed(seed);
        self.by_ip.insert(spec.ip, index);
        self.by_id.insert(key.node_id(), index);
        self.nodes.push(SimNode::new(key, spec));
        index
    }

    /// Node `i`.
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn node(&self, i: usize) -> Result<&SimNode, SimError> {
        self.nodes.get(i).ok_or(SimError::NoSuchNode(i))
    }

    fn node_mut(&mut self, i: usize) -> Result<&mut SimNode, SimError> {
        self.nodes.get_mut(i).ok_or(SimError::NoSuchNode(i))
    }

    /// Node `i`'s running state; `what` says why it must run.
    fn running_mut(&mut self, i: usize, what: &'static str) -> Result<&mut Running, SimError> {
        let running = self.node_mut(i)?.running.as_mut();
        running.ok_or(SimError::WrongState { node: i, what })
    }

    /// All nodes.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// The id of node `i` (a default id for an unknown index is never returned: `None`).
    pub fn id(&self, i: usize) -> Option<NodeId> {
        self.nodes.get(i).map(SimNode::id)
    }

    /// The index of the node with `id`.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The settings of node `i`, to change before it starts.
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn spec_mut(&mut self, i: usize) -> Result<&mut NodeSpec, SimError> {
        Ok(&mut self.node_mut(i)?.spec)
    }

    /// Node `i`'s dialable address.
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`], or an address that does not parse (reported as invariant).
    pub fn address(&self, i: usize) -> Result<NodeAddress, SimError> {
        let node = self.node(i)?;
        let text = format!("{}@{}:{LISTEN_PORT}", node.id(), node.spec.ip);
        NodeAddress::parse(&text).map_err(|e| SimError::Invariant {
            at: self.elapsed(),
            what: format!("address {text} does not parse: {e}"),
        })
    }

    /// Installs the reactor of `channel` on node `i` (kept across restarts).
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn set_reactor(
        &mut self,
        i: usize,
        channel: u8,
        reactor: impl Reactor + 'static,
    ) -> Result<(), SimError> {
        self.node_mut(i)?
            .reactors
            .insert(channel, Box::new(reactor));
        // Its timer (if any) joins the node's.
        self.refresh_timer(i);
        Ok(())
    }

    /// Stops (or resumes) handing `channel`'s messages to node `i`'s reactor; they wait in
    /// its inbox meanwhile.
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn pause_channel(&mut self, i: usize, channel: u8, paused: bool) -> Result<(), SimError> {
        let node = self.node_mut(i)?;
        if paused {
            node.paused.insert(channel);
        } else {
            node.paused.remove(&channel);
            if let Some(running) = node.running.as_mut() {
                for c in running.conns.values_mut() {
                    c.machine.has_room(channel);
                }
            }
        }
        self.service(i)
    }

    /// Whether node `i` keeps every delivered message in [`SimNode::received`] (default on;
    /// benchmarks turn it off).
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn record_messages(&mut self, i: usize, on: bool) -> Result<(), SimError> {
        self.node_mut(i)?.record_messages = on;
        Ok(())
    }

    /// Starts node `i` (or restarts it after a crash) from its stored peer records, with
    /// its channels opened and its boot peers added.
    ///
    /// # Errors
    /// [`SimError::WrongState`] if it runs; [`SimError::Router`] for a bad setting.
    pub fn start(&mut self, i: usize) -> Result<(), SimError> {
        let now = self.now;
        let elapsed = self.elapsed();
        let seed = self.seed;
        let boot: Vec<NodeAddress> = self
            .node(i)?
            .spec
            .boot_peers
            .iter()
            .map(|&p| self.address(p))
            .collect::<Result<_, _>>()?;
        let (pex, pex_reactor) = self.pex_for_start(i)?;
        let node = self.node_mut(i)?;
        if node.running.is_some() {
            return Err(SimError::WrongState {
                node: i,
                what: "must be down to start",
            });
        }
        node.incarnation += 1;
        let node_err = |error| SimError::Node { node: i, error };
        let mut config = NodeConfig::new("sim", SocketAddr::new(node.spec.ip, LISTEN_PORT));
        config.moniker = format!("sim{i}");
        config.version = "0.0.0".into();
        config.router = node.spec.config.clone();
        config.bootstrap_peers = boot;
        let clock = ClockAnchor {
            instant: now,
            since_unix_epoch: Duration::from_secs(EPOCH_SECS) + elapsed,
        };
        let stream = (u64::try_from(i).unwrap_or(u64::MAX) << 16) | u64::from(node.incarnation);
        let mut node_rng = ChaCha20Rng::seed_from_u64(seed);
        node_rng.set_stream(stream);
        let mut conn_rng = ChaCha20Rng::seed_from_u64(seed ^ 0x636f_6e6e);
        conn_rng.set_stream(stream);
        let records = node.store.values().cloned().collect();
        let mut machine =
            Node::new(&config, node.id(), clock, now, records, node_rng).map_err(node_err)?;
        for descriptor in &node.spec.channels {
            let policy = if node.spec.drop_channels.contains(&descriptor.id) {
                OverflowPolicy::Drop
            } else {
                OverflowPolicy::Backpressure
            };
            machine
                .open_channel(descriptor.clone(), policy)
                .map_err(node_err)?;
        }
        let spec_has_pex_channel = node.spec.channels.iter().any(|c| c.id == PEX_CHANNEL);
        match (&pex, pex_reactor) {
            (_, Some(reactor)) => machine.enable_pex(reactor).map_err(node_err)?,
            // A flooder sends on the PEX channel without running the reactor.
            (Some(_), None) if !spec_has_pex_channel => machine
                .open_channel(pex_channel(), OverflowPolicy::Backpressure)
                .map_err(node_err)?,
            _ => {}
        }
        machine.start(now).map_err(node_err)?;
        node.running = Some(Running {
            node: machine,
            conns: BTreeMap::new(),
            rng: conn_rng,
            pex,
            held_sends: Vec::new(),
        });
        tracing::debug!(node = i, "started");
        self.record("start", &[i as u64], &[]);
        self.service(i)
    }

    /// Starts every node that is down.
    ///
    /// # Errors
    /// As [`Sim::start`].
    pub fn start_all(&mut self) -> Result<(), SimError> {
        for i in 0..self.nodes.len() {
            if !self.nodes.get(i).is_some_and(SimNode::is_running) {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// Crashes node `i`: its machines vanish, each peer gets EOF one latency later, and
    /// its store survives for [`Sim::start`].
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn crash(&mut self, i: usize) -> Result<(), SimError> {
        let running = self.node_mut(i)?.running.take();
        if let Some(running) = running {
            for conn in running.conns.values() {
                self.close_end(conn.link, conn.side);
            }
            // Links whose dialer side had no connection yet.
            let orphan: Vec<(LinkId, usize)> = self
                .links
                .iter()
                .flat_map(|(&id, link)| {
                    link.ends
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| e.node == i && e.open)
                        .map(move |(side, _)| (id, side))
                })
                .collect();
            for (link, side) in orphan {
                self.close_end(link, side);
            }
            self.refresh_timer(i);
            self.record("crash", &[i as u64], &[]);
            tracing::debug!(node = i, "crashed");
        }
        Ok(())
    }

    /// Stops node `i` gracefully, as the drivers do (but a link goes at its `Closed`, with
    /// no wait for the peer's EOF, which simulated links do not need): its node machine
    /// closes every
    /// connection once what it accepted is handed over (within `NodeConfig::stop_timeout`,
    /// then each within the close linger); once they are closed the node is down, its store
    /// kept for [`Sim::start`]. What the application still holds (sends the node refused as
    /// full) was never accepted and is dropped with it. Returns whether the stop completed
    /// before the node's give-up time (`Node::stop_give_up`; else the node is crashed).
    ///
    /// # Errors
    /// [`SimError::WrongState`] if the node is down.
    pub fn stop(&mut self, i: usize) -> Result<bool, SimError> {
        let now = self.now;
        let running = self.running_mut(i, "must run to stop")?;
        let within = running.node.stop_timeout();
        running.node.stop(now, within);
        let give_up = running.node.stop_give_up().unwrap_or(now);
        self.service(i)?;
        let limit = give_up.saturating_duration_since(now);
        let stopped = self.run_until(limit, |sim| {
            let running = sim.nodes.get(i).and_then(|n| n.running.as_ref());
            running.is_none_or(|r| r.node.is_stopped() && r.conns.is_empty())
        })?;
        self.crash(i)?;
        Ok(stopped)
    }

    /// Sends node `i`'s application holds because a peer's queue was full (not yet
    /// accepted by the node).
    pub fn held_sends(&self, i: usize) -> usize {
        let running = self.nodes.get(i).and_then(|n| n.running.as_ref());
        running.map_or(0, |r| r.held_sends.len())
    }

    /// Adds `peer`'s address to node `i`'s router (stored, not re-added on restart).
    ///
    /// # Errors
    /// [`SimError::WrongState`] if the node is down; [`SimError::Router`].
    pub fn add_peer(&mut self, i: usize, peer: usize) -> Result<(), SimError> {
        let address = self.address(peer)?;
        let now = self.now;
        let running = self.running_mut(i, "must run to add a peer")?;
        running
            .node
            .add_peer(now, address)
            .map_err(|error| SimError::Router { node: i, error })?;
        self.service(i)
    }

    /// Hands an envelope to node `i`'s router as a reactor would (dropped if the node is
    /// down; held and retried while a peer's queue is full).
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn send(&mut self, i: usize, envelope: Envelope) -> Result<(), SimError> {
        let now = self.now;
        if let Some(running) = self.node_mut(i)?.running.as_mut() {
            running.send(now, envelope);
        }
        self.service(i)
    }

    /// Reports a peer error on node `i` (ignored if the node is down).
    ///
    /// # Errors
    /// [`SimError::NoSuchNode`].
    pub fn report_error(&mut self, i: usize, error: PeerError) -> Result<(), SimError> {
        let now = self.now;
        if let Some(running) = self.node_mut(i)?.running.as_mut() {
            running.node.report_error(now, error);
        }
        self.service(i)
    }

    /// Puts `nodes` in partition group `group` (others stay in group 0): links between
    /// groups black-hole and dials between them time out.
    pub fn partition(&mut self, nodes: &[usize], group: u32) {
        self.partition.isolate(nodes, group);
        self.record("partition", &[u64::from(group), nodes.len() as u64], &[]);
    }

    /// Ends every partition (black-holed links stay dead, as their TCP state is lost).
    pub fn heal(&mut self) {
        self.partition.heal();
        self.record("heal", &[], &[]);
    }

    /// Runs until no network event is pending (timers fire as they come due meanwhile).
    ///
    /// # Errors
    /// [`SimError::NotQuiescent`] after `drive_budget` of virtual time, or a step's error.
    pub fn drive(&mut self) -> Result<(), SimError> {
        let deadline = self.now + self.drive_budget;
        for _ in 0..MAX_STEPS {
            if self.events.is_empty() {
                return Ok(());
            }
            if self.next_time().is_some_and(|t| t > deadline) {
                return Err(SimError::NotQuiescent {
                    budget: self.drive_budget,
                    events: self.events.len(),
                });
            }
            self.step()?;
        }
        Err(SimError::Runaway(MAX_STEPS))
    }

    /// Runs every event and timer due within `span`, then sets the clock to its end.
    ///
    /// # Errors
    /// A step's error.
    pub fn run_for(&mut self, span: Duration) -> Result<(), SimError> {
        let end = self.now + span;
        for _ in 0..MAX_STEPS {
            match self.next_time() {
                Some(t) if t <= end => {
                    self.step()?;
                }
                _ => {
                    self.now = end;
                    return Ok(());
                }
            }
        }
        Err(SimError::Runaway(MAX_STEPS))
    }

    /// Runs until `done(self)` holds (checked after every step) or `limit` of virtual time
    /// has passed; returns whether it holds.
    ///
    /// # Errors
    /// A step's error.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<bool, SimError> {
        let end = self.now + limit;
        for _ in 0..MAX_STEPS {
            if done(self) {
                return Ok(true);
            }
            match self.next_time() {
                Some(t) if t <= end => {
                    self.step()?;
                }
                _ => {
                    self.now = end;
                    return Ok(done(self));
                }
            }
        }
        Err(SimError::Runaway(MAX_STEPS))
    }
}
