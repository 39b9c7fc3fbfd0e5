//! One simulated node: its key and settings, its stored peer records (which survive a
//! crash), what it received, its reactors, and, while it runs, its Router, its
//! `PeerConnection`s and the sends waiting for a connection to take them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node::{Link as ConnLink, Node};
use tmp2p_core::peer_manager::{PeerRecord, PeerUpdate, StoreOp};
use tmp2p_core::router::{ConnectionId, Envelope, Router, RouterConfig, SendError, Target};
use tmp2p_core::{NodeId, NodeKey};

use super::network::LinkId;
use super::pex::{PexRole, SimPex};
use super::reactor::Reactor;

/// The port every simulated node listens on.
pub const LISTEN_PORT: u16 = 26656;

/// A channel as the simulator opens it by default: 64 queued messages, 1 MiB messages.
pub fn channel(id: u8, priority: u32) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority,
        send_queue_capacity: 64,
        recv_message_capacity: 1 << 20,
    }
}

/// How to build a node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its IP (the port is [`LISTEN_PORT`]).
    pub ip: IpAddr,
    /// The channels it opens (with `OverflowPolicy::Backpressure` unless listed in
    /// `drop_channels`).
    pub channels: Vec<ChannelDescriptor>,
    /// Channels opened with `OverflowPolicy::Drop`.
    pub drop_channels: Vec<u8>,
    /// Router settings (persistent peers go in `config.peer_manager`).
    pub config: RouterConfig,
    /// Node indices added as peers at every start (like configured persistent or bootstrap
    /// peers; peers added later with `Sim::add_peer` come back only from the store).
    pub boot_peers: Vec<usize>,
}

impl NodeSpec {
    /// A node at `ip` with `channels` (priority 1 each) and settings suited to simulation:
    /// the node defaults with a 100 ms base retry, 1 s jitter, no IP-group caps.
    pub fn new(ip: IpAddr, channels: &[u8]) -> NodeSpec {
        let mut config = RouterConfig::default();
        config.peer_manager.min_retry_time = Duration::from_millis(100);
        config.peer_manager.retry_time_jitter = Duration::from_secs(1);
        config.peer_manager.max_connected_per_ip_group = 0;
        config.peer_manager.max_stored_per_ip_group = 0;
        NodeSpec {
            ip,
            channels: channels.iter().map(|&c| channel(c, 1)).collect(),
            drop_channels: Vec::new(),
            config,
            boot_peers: Vec::new(),
        }
    }
}

/// One delivered message, as the node's application saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Virtual time of the delivery.
    pub at: Duration,
    /// The sender.
    pub from: NodeId,
    /// The channel.
    pub channel: u8,
    /// The message.
    pub message: Bytes,
    /// How many peer updates the application had seen when the message arrived (orders
    /// messages and updates of the same virtual instant).
    pub updates_before: usize,
}

/// A connection the node's driver owns: its machine and the end of the simulated link it
/// is on.
pub(crate) struct SimConn {
    pub(crate) machine: ConnLink,
    pub(crate) link: LinkId,
    pub(crate) side: usize,
}

/// The parts of a node that exist only while it runs.
pub(crate) struct Running {
    /// The node machine: Router, PeerManager, PEX, send batching, credit, store batching.
    pub(crate) node: Node,
    pub(crate) conns: BTreeMap<ConnectionId, SimConn>,
    /// Ephemeral keys of new connections.
    pub(crate) rng: ChaCha20Rng,
    /// The PEX log (and flooder) of this incarnation, if the node has a PEX role.
    pub(crate) pex: Option<SimPex>,
    /// Reactor sends the node handed back (a full peer queue under backpressure), one per
    /// peer, in order: retried when the node announces room.
    pub(crate) held_sends: Vec<Envelope>,
}

impl Running {
    /// Sends as a reactor does under backpressure: what a full peer refuses waits here.
    pub(crate) fn send(&mut self, now: Instant, envelope: Envelope) {
        match self.node.send(now, envelope) {
            Ok(_) => {}
            Err(SendError::Full { envelope, peers }) => {
                for peer in peers {
                    let copy = Envelope::to_peer(peer, envelope.channel, envelope.message.clone());
                    self.held_sends.push(copy);
                }
            }
            Err(error) => tracing::debug!(%error, "simulated send not queued"),
        }
    }

    /// `node`'s queue for `channel` has room: retry what waits for it, in order, until it
    /// is full again.
    pub(crate) fn retry_held(&mut self, now: Instant, node: NodeId, channel: u8) {
        let waiting = std::mem::take(&mut self.held_sends);
        let mut refused = false;
        for envelope in waiting {
            let for_it = envelope.channel == channel && envelope.to == Some(Target::Peer(node));
            if !for_it || refused {
                self.held_sends.push(envelope);
                continue;
            }
            match self.node.send(now, envelope) {
                Ok(_) => {}
                Err(SendError::Full { envelope, .. }) => {
                    refused = true;
                    self.held_sends.push(envelope);
                }
                Err(error) => tracing::debug!(%error, "simulated send not queued"),
            }
        }
    }
}

/// A simulated node.
pub struct SimNode {
    pub(crate) key: NodeKey,
    pub(crate) spec: NodeSpec,
    pub(crate) running: Option<Running>,
    /// Starts so far (restarts give new incarnations; stale events are dropped).
    pub(crate) incarnation: u32,
    /// The peer database, kept across crashes.
    pub(crate) store: BTreeMap<NodeId, PeerRecord>,
    pub(crate) received: Vec<Received>,
    pub(crate) received_count: u64,
    pub(crate) record_messages: bool,
    pub(crate) updates: Vec<(Duration, PeerUpdate)>,
    pub(crate) reactors: BTreeMap<u8, Box<dyn Reactor>>,
    pub(crate) paused: BTreeSet<u8>,
    pub(crate) inbox: BTreeMap<u8, VecDeque<Envelope>>,
    /// What it runs on the PEX channel at every start (`Sim::enable_pex`).
    pub(crate) pex_role: Option<PexRole>,
}

impl SimNode {
    pub(crate) fn new(key: NodeKey, spec: NodeSpec) -> SimNode {
        SimNode {
            key,
            spec,
            running: None,
            incarnation: 0,
            store: BTreeMap::new(),
            received: Vec::new(),
            received_count: 0,
            record_messages: true,
            updates: Vec::new(),
            reactors: BTreeMap::new(),
            paused: BTreeSet::new(),
            inbox: BTreeMap::new(),
            pex_role: None,
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.key.node_id()
    }

    /// Its settings.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// Whether it runs (not crashed, started).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Its router, while it runs.
    pub fn router(&self) -> Option<&Router> {
        self.running.as_ref().map(|r| r.node.router())
    }

    /// Messages delivered to its application (all incarnations; empty if recording is off).
    pub fn received(&self) -> &[Received] {
        &self.received
    }

    /// Messages delivered, counted even when recording is off.
    pub fn received_count(&self) -> u64 {
        self.received_count
    }

    /// Peer updates (all incarnations), with their virtual times.
    pub fn updates(&self) -> &[(Duration, PeerUpdate)] {
        &self.updates
    }

    /// Its stored peer records.
    pub fn stored(&self) -> &BTreeMap<NodeId, PeerRecord> {
        &self.store
    }

    /// Connected peers (empty while down).
    pub fn connected(&self) -> Vec<NodeId> {
        self.router()
            .map(|r| r.connected_peers().collect())
            .unwrap_or_default()
    }

    /// Connections the driver holds (any state).
    pub fn connection_count(&self) -> usize {
        self.running.as_ref().map_or(0, |r| r.conns.len())
    }

    /// Its counters of each routed peer (empty while down).
    pub fn peer_counters(&self) -> Vec<tmp2p_core::router::PeerSnapshot> {
        self.running
            .as_ref()
            .map_or_else(Vec::new, |r| r.node.peer_snapshots())
    }

    /// Received messages its connections hold for its paused channels (core's inbound
    /// rule keeps them in the connection until the channel resumes).
    pub fn held_in_connections(&self) -> usize {
        let conns = self.running.iter().flat_map(|r| r.conns.values());
        conns.map(|c| c.machine.held_inbound().0).sum()
    }

    /// Messages waiting in its paused channel's inbox.
    pub fn inbox_len(&self, channel: u8) -> usize {
        self.inbox.get(&channel).map_or(0, VecDeque::len)
    }

    pub(crate) fn apply_store(&mut self, op: StoreOp) {
        match op {
            StoreOp::Upsert(record) => {
                self.store.insert(record.node_id, record);
            }
            StoreOp::Delete(id) => {
                self.store.remove(&id);
            }
        }
    }
}
