//! A small in-memory network of node machines (`tmp2p_core::node`), driven exactly as a
//! driver drives them: every `NodeOutput` carried out, every `Link`'s bytes moved to its
//! other end, reports fed back, virtual time advanced by hand. No loss, no delay: the
//! deterministic simulator (`sim`) is the place for faults. A node can stop reading its
//! sockets (bytes for it pile up until a socket's worth waits, then its senders' links
//! stop transmitting), to show backpressure and the close linger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::connection::PeerEvent;
use tmp2p_core::node::{Link, LinkCommand, LinkReport, Node, NodeOutput, PexEvent};
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::{ClockAnchor, PeerStatus, PeerUpdate};
use tmp2p_core::router::window::{Reserve, SendWindows};
use tmp2p_core::router::{ConnectionId, ConnectionParams, Envelope, SendError};
use tmp2p_core::{NodeId, NodeKey};

/// What a reader's socket holds, once it stopped reading, before its writer must wait.
const SOCKET_BYTES: usize = 64 * 1024;

/// The IP of node `i`.
pub fn ip_of(i: usize) -> IpAddr {
    IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8 + 1])
}

/// The key of node `i`.
pub fn key_of(i: usize) -> NodeKey {
    NodeKey::from_seed([i as u8 + 1; 32])
}

/// The listen address of node `i`.
pub fn address_of(i: usize) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{}:26656", key_of(i).node_id(), ip_of(i))).unwrap()
}

/// One node: its machine, its links and what its application saw.
pub struct MemNode {
    /// The node machine.
    pub node: Node,
    key: NodeKey,
    links: BTreeMap<ConnectionId, Link>,
    /// Bytes that arrived for each link while the node was not reading.
    unread: BTreeMap<ConnectionId, BytesMut>,
    /// Inbound application messages.
    pub delivered: Vec<Envelope>,
    /// Peer updates.
    pub updates: Vec<PeerUpdate>,
    /// Room announcements.
    pub writable: Vec<(NodeId, u8)>,
    /// What its PEX reactor did.
    pub pex: Vec<PexEvent>,
    /// Every dial it started: when, and to which IP.
    pub dials: Vec<(Instant, IpAddr)>,
    /// The senders' windows a driver keeps, following `NodeOutput::Windows`.
    pub windows: SendWindows,
    /// Each peer update with whether the windows knew the peer when it arrived.
    pub windows_at_update: Vec<(NodeId, PeerStatus, bool)>,
    /// Each `LinkCommand::Admit` (from then on the connection delivers to the
    /// application) with whether the windows knew the peer when it arrived.
    pub windows_at_admit: Vec<(NodeId, bool)>,
}

impl MemNode {
    /// Whether `peer` went down here.
    pub fn saw_down(&self, peer: NodeId) -> bool {
        self.updates
            .iter()
            .any(|u| u.node_id == peer && u.status == PeerStatus::Down)
    }

    /// The payloads delivered on `channel`, in order.
    pub fn messages(&self, channel: u8) -> Vec<Bytes> {
        self.delivered
            .iter()
            .filter(|e| e.channel == channel)
            .map(|e| e.message.clone())
            .collect()
    }
}

/// The network (see the module docs).
pub struct MemNet {
    /// The nodes, by index.
    pub nodes: Vec<MemNode>,
    wires: BTreeMap<(usize, ConnectionId), (usize, ConnectionId)>,
    /// Nodes that do not read their sockets.
    pub deaf: BTreeSet<usize>,
    /// Virtual time.
    pub now: Instant,
    rng: ChaCha20Rng,
    next_port: u16,
}

impl MemNet {
    /// `n` started nodes on network "memnet": `edit` adjusts node `i`'s configuration
    /// (after a 100 ms retry base is set), `setup` opens its channels (and PEX) before it
    /// starts.
    pub fn new(
        n: usize,
        edit: impl Fn(usize, &mut NodeConfig),
        setup: impl Fn(usize, &mut Node),
    ) -> MemNet {
        let now = Instant::now();
        let clock = ClockAnchor {
            instant: now,
            since_unix_epoch: Duration::from_secs(1_700_000_000),
        };
        let nodes = (0..n)
            .map(|i| {
                let key = key_of(i);
                let mut config = NodeConfig::new("memnet", SocketAddr::new(ip_of(i), 26656));
                config.router.peer_manager.min_retry_time = Duration::from_millis(100);
                edit(i, &mut config);
                let rng = ChaCha20Rng::seed_from_u64(i as u64);
                let mut node = Node::new(&config, key.node_id(), clock, now, vec![], rng).unwrap();
                setup(i, &mut node);
                node.start(now).unwrap();
                let windows = SendWindows::new(node.window_limits());
                MemNode {
                    node,
                    key,
                    links: BTreeMap::new(),
                    unread: BTreeMap::new(),
                    delivered: vec![],
                    updates: vec![],
                    writable: vec![],
                    pex: vec![],
                    dials: vec![],
                    windows,
                    windows_at_update: vec![],
                    windows_at_admit: vec![],
                }
            })
            .collect();
        let mut net = MemNet {
            nodes,
            wires: BTreeMap::new(),
            deaf: BTreeSet::new(),
            now,
            rng: ChaCha20Rng::seed_from_u64(99),
            next_port: 40000,
        };
        net.settle();
        net
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].key.node_id()
    }

    /// Node `from` adds node `to`'s address; the network settles.
    pub fn connect(&mut self, from: usize, to: usize) {
        self.nodes[from]
            .node
            .add_peer(self.now, address_of(to))
            .unwrap();
        self.settle();
    }

    /// Node `i` sends; the network settles.
    ///
    /// # Errors
    /// The node machine's refusal.
    pub fn send(&mut self, i: usize, envelope: Envelope) -> Result<usize, SendError> {
        let sent = self.nodes[i].node.send(self.now, envelope);
        self.settle();
        sent
    }

    /// Node `i` sends as a driver's sender does on a backpressure channel: it reserves
    /// room in the windows first (a full or unknown window refuses without calling the
    /// node), then hands the message to `Node::send_reserved`; the network settles.
    ///
    /// # Errors
    /// The windows' refusal (outside), or the node machine's (inside).
    pub fn send_reserved(
        &mut self,
        i: usize,
        peer: NodeId,
        channel: u8,
        message: Bytes,
    ) -> Result<Result<usize, SendError>, Reserve> {
        let n = &mut self.nodes[i];
        let reservation = match n.windows.try_reserve(peer, channel, message.len()) {
            Reserve::Reserved(reservation) => reservation,
            refused => return Err(refused),
        };
        let envelope = Envelope::to_peer(peer, channel, message);
        let sent = n.node.send_reserved(self.now, envelope, reservation);
        self.settle();
        Ok(sent)
    }

    /// Moves everything that needs no time to pass until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                busy |= self.step_outputs(i);
                busy |= self.step_reports(i);
            }
            busy |= self.step_bytes();
            if !busy {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advances virtual time by `by`, fires what is due, settles.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.fire_due();
        self.settle();
    }

    /// Jumps to the earliest timer anywhere, fires what is due then, settles.
    pub fn advance_to_next_timer(&mut self) {
        let next = self
            .nodes
            .iter()
            .flat_map(|n| {
                std::iter::once(n.node.poll_timeout())
                    .chain(n.links.values().map(Link::poll_timeout))
            })
            .flatten()
            .min()
            .expect("a timer is pending");
        self.now = self.now.max(next);
        self.fire_due();
        self.settle();
    }

    fn fire_due(&mut self) {
        let now = self.now;
        for n in &mut self.nodes {
            if n.node.poll_timeout().is_some_and(|at| at <= now) {
                n.node.handle_timeout(now);
            }
            for link in n.links.values_mut() {
                if link.poll_timeout().is_some_and(|at| at <= now) {
                    link.handle_timeout(now);
                }
            }
        }
    }

    fn step_outputs(&mut self, i: usize) -> bool {
        let mut busy = false;
        while let Some(output) = self.nodes[i].node.poll_output() {
            busy = true;
            let n = &mut self.nodes[i];
            match output {
                NodeOutput::Dial { conn, socket, .. } => {
                    n.dials.push((self.now, socket.ip()));
                    self.dial(i, conn, socket);
                }
                NodeOutput::Link { conn, command } => {
                    if let LinkCommand::Admit { peer, .. } = &command {
                        n.windows_at_admit.push((*peer, n.windows.is_up(*peer)));
                    }
                    if let Some(link) = n.links.get_mut(&conn) {
                        link.handle_command(self.now, command);
                    }
                }
                NodeOutput::Windows(changes) => {
                    for change in changes {
                        n.windows.apply(change);
                    }
                }
                NodeOutput::PeerUpdate(update) => {
                    let known = n.windows.is_up(update.node_id);
                    n.windows_at_update
                        .push((update.node_id, update.status, known));
                    n.updates.push(update);
                }
                NodeOutput::Writable { node, channel } => n.writable.push((node, channel)),
                NodeOutput::Pex(event) => n.pex.push(event),
                NodeOutput::Store(_) => {}
                NodeOutput::Resolve { address } => n.node.resolved(self.now, &address, &[]),
            }
        }
        busy
    }

    fn dial(&mut self, i: usize, conn: ConnectionId, socket: SocketAddr) {
        let now = self.now;
        self.next_port = self.next_port.wrapping_add(1);
        let from = SocketAddr::new(ip_of(i), self.next_port);
        let target = (0..self.nodes.len()).find(|&t| ip_of(t) == socket.ip());
        let accepted = target.map(|t| (t, self.nodes[t].node.accept(now, from)));
        let Some((t, Ok(theirs))) = accepted else {
            self.nodes[i].node.dial_failed(now, conn);
            return;
        };
        let Ok(ours) = self.nodes[i].node.dial_succeeded(now, conn, socket) else {
            return;
        };
        self.wires.insert((i, conn), (t, theirs.conn));
        self.wires.insert((t, theirs.conn), (i, conn));
        self.start_link(t, theirs);
        self.start_link(i, ours);
    }

    fn start_link(&mut self, i: usize, params: ConnectionParams) {
        let n = &mut self.nodes[i];
        let settings = n.node.link_settings();
        let conn = params.conn;
        let link = Link::new(self.now, &n.key, params, settings, &mut self.rng);
        n.links.insert(conn, link);
    }

    fn step_bytes(&mut self) -> bool {
        let mut busy = false;
        for ((a, ca), (b, cb)) in self.wires.clone() {
            let waiting = self.nodes[b].unread.get(&cb).map_or(0, BytesMut::len);
            if waiting >= SOCKET_BYTES {
                continue; // the reader's socket is full: the writer waits
            }
            let mut out = BytesMut::new();
            if let Some(link) = self.nodes[a].links.get_mut(&ca) {
                while out.len() < SOCKET_BYTES && link.poll_transmit(self.now, &mut out) {}
            }
            if !out.is_empty() {
                busy = true;
                self.nodes[b]
                    .unread
                    .entry(cb)
                    .or_default()
                    .extend_from_slice(&out);
            }
        }
        for i in 0..self.nodes.len() {
            if self.deaf.contains(&i) {
                continue;
            }
            for (conn, bytes) in std::mem::take(&mut self.nodes[i].unread) {
                busy = true;
                if let Some(link) = self.nodes[i].links.get_mut(&conn) {
                    let _ = link.handle_input(self.now, &bytes);
                }
            }
        }
        busy
    }

    fn step_reports(&mut self, i: usize) -> bool {
        let mut busy = false;
        let conns: Vec<ConnectionId> = self.nodes[i].links.keys().copied().collect();
        for conn in conns {
            let n = &mut self.nodes[i];
            let Some(link) = n.links.get_mut(&conn) else {
                continue;
            };
            let mut closed = false;
            while let Some(report) = link.poll_report() {
                busy = true;
                closed |= matches!(report, LinkReport::Event(PeerEvent::Closed { .. }));
                n.node.handle_link_report(self.now, conn, report);
            }
            while let Some(envelope) = link.poll_delivery() {
                busy = true;
                n.delivered.push(envelope);
            }
            if closed {
                n.links.remove(&conn);
                n.unread.remove(&conn);
                if let Some((b, cb)) = self.wires.remove(&(i, conn)) {
                    self.wires.remove(&(b, cb));
                    if let Some(link) = self.nodes[b].links.get_mut(&cb) {
                        link.handle_eof(self.now);
                    }
                }
            }
        }
        busy
    }
}
