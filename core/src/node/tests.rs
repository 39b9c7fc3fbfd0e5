//! The node machine driven as a driver would, over an in-memory network: every node's
//! outputs carried out, every link's bytes moved to its other end, virtual time advanced
//! by hand. A node can stop reading (its inbound bytes pile up, the sender's links stop
//! transmitting once a socket's worth waits), to show backpressure and the close linger.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::key::NodeKey;
use crate::peer_manager::PeerStatus;
use crate::test_clock::epoch;
use crate::typed::echo::EchoInner;
use crate::typed::RawCodec;
use tmp2p_proto::echo::EchoMessage;

const DATA: u8 = 0x20;
/// What a socket holds for a reader that stopped reading before the writer must wait.
const SOCKET_BYTES: usize = 64 * 1024;

fn ip_of(i: usize) -> IpAddr {
    IpAddr::from([10, 0, 0, i as u8 + 1])
}

fn descriptor(id: u8) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority: 1,
        send_queue_capacity: 4,
        recv_message_capacity: 1 << 20,
    }
}

struct Peer {
    key: NodeKey,
    node: Node,
    links: BTreeMap<ConnectionId, Link>,
    delivered: Vec<Envelope>,
    updates: Vec<PeerUpdate>,
    writable: Vec<(NodeId, u8)>,
    pex: Vec<PexEvent>,
    /// Bytes that arrived for each link while the node was not reading.
    unread: BTreeMap<ConnectionId, BytesMut>,
}

struct Net {
    peers: Vec<Peer>,
    wires: BTreeMap<(usize, ConnectionId), (usize, ConnectionId)>,
    /// Nodes that do not read their sockets.
    deaf: BTreeSet<usize>,
    now: Instant,
    rng: ChaCha20Rng,
    next_port: u16,
}

impl Net {
    fn new(
        n: usize,
        edit: impl Fn(usize, &mut NodeConfig),
        setup: impl Fn(usize, &mut Node),
    ) -> Net {
        let now = epoch();
        let clock = ClockAnchor {
            instant: now,
            since_unix_epoch: Duration::from_secs(1_700_000_000),
        };
        let peers = (0..n)
            .map(|i| {
                let key = NodeKey::from_seed([i as u8 + 1; 32]);
                let mut config = NodeConfig::new("net", SocketAddr::new(ip_of(i), 26656));
                config.router.peer_manager.min_retry_time = Duration::from_millis(100);
                edit(i, &mut config);
                let rng = ChaCha20Rng::seed_from_u64(i as u64);
                let mut node = Node::new(&config, key.node_id(), clock, now, vec![], rng).unwrap();
                setup(i, &mut node);
                Peer {
                    key,
                    node,
                    links: BTreeMap::new(),
                    delivered: vec![],
                    updates: vec![],
                    writable: vec![],
                    pex: vec![],
                    unread: BTreeMap::new(),
                }
            })
            .collect();
        let mut net = Net {
            peers,
            wires: BTreeMap::new(),
            deaf: BTreeSet::new(),
            now,
            rng: ChaCha20Rng::seed_from_u64(99),
            next_port: 40000,
        };
        for i in 0..n {
            net.peers[i].node.start(now).unwrap();
        }
        net.drive();
        net
    }

    fn id(&self, i: usize) -> NodeId {
        self.peers[i].key.node_id()
    }

    fn address(&self, i: usize) -> NodeAddress {
        NodeAddress::parse(&format!("{}@{}:26656", self.id(i), ip_of(i))).unwrap()
    }

    fn connect(&mut self, from: usize, to: usize) {
        let address = self.address(to);
        self.peers[from].node.add_peer(self.now, address).unwrap();
        self.drive();
    }

    fn link(&mut self, i: usize, params: ConnectionParams) {
        let peer = &mut self.peers[i];
        let linger = peer.node.close_linger();
        let link = Link::new(self.now, &peer.key, params.clone(), linger, &mut self.rng);
        peer.links.insert(params.conn, link);
    }

    fn step_outputs(&mut self, i: usize) -> bool {
        let mut busy = false;
        while let Some(output) = self.peers[i].node.poll_output() {
            busy = true;
            match output {
                NodeOutput::Dial { conn, socket, .. } => self.dial(i, conn, socket),
                NodeOutput::Link { conn, command } => {
                    if let Some(link) = self.peers[i].links.get_mut(&conn) {
                        link.handle_command(self.now, command);
                    }
                }
                NodeOutput::Deliver(envelope) => self.peers[i].delivered.push(envelope),
                NodeOutput::PeerUpdate(update) => self.peers[i].updates.push(update),
                NodeOutput::Writable { node, channel } => {
                    self.peers[i].writable.push((node, channel));
                }
                NodeOutput::Pex(event) => self.peers[i].pex.push(event),
                NodeOutput::Store(_) | NodeOutput::Resolve { .. } => {}
            }
        }
        busy
    }

    fn dial(&mut self, i: usize, conn: ConnectionId, socket: SocketAddr) {
        let now = self.now;
        self.next_port += 1;
        let from = SocketAddr::new(ip_of(i), self.next_port);
        let target = (0..self.peers.len()).find(|&t| ip_of(t) == socket.ip());
        let accepted = target.map(|t| (t, self.peers[t].node.accept(now, from)));
        let Some((t, Ok(theirs))) = accepted else {
            self.peers[i].node.dial_failed(now, conn);
            return;
        };
        let ours = self.peers[i]
            .node
            .dial_succeeded(now, conn, socket)
            .unwrap();
        self.wires.insert((i, conn), (t, theirs.conn));
        self.wires.insert((t, theirs.conn), (i, conn));
        self.link(t, theirs);
        self.link(i, ours);
    }

    fn step_bytes(&mut self) -> bool {
        let mut busy = false;
        for ((a, ca), (b, cb)) in self.wires.clone() {
            let waiting = self.peers[b].unread.get(&cb).map_or(0, BytesMut::len);
            if waiting >= SOCKET_BYTES {
                continue; // the reader's socket is full: the writer waits
            }
            let mut out = BytesMut::new();
            if let Some(link) = self.peers[a].links.get_mut(&ca) {
                while out.len() < SOCKET_BYTES && link.poll_transmit(self.now, &mut out) {}
            }
            if out.is_empty() {
                continue;
            }
            busy = true;
            self.peers[b]
                .unread
                .entry(cb)
                .or_default()
                .extend_from_slice(&out);
        }
        for i in 0..self.peers.len() {
            if self.deaf.contains(&i) {
                continue;
            }
            for (conn, bytes) in std::mem::take(&mut self.peers[i].unread) {
                busy = true;
                if let Some(link) = self.peers[i].links.get_mut(&conn) {
                    let _ = link.handle_input(self.now, &bytes);
                }
            }
        }
        busy
    }

    fn step_reports(&mut self, i: usize) -> bool {
        let mut busy = false;
        let conns: Vec<ConnectionId> = self.peers[i].links.keys().copied().collect();
        for conn in conns {
            let peer = &mut self.peers[i];
            let Some(link) = peer.links.get_mut(&conn) else {
                continue;
            };
            let mut closed = false;
            while let Some(report) = link.poll_report() {
                busy = true;
                closed |= matches!(report, LinkReport::Event(PeerEvent::Closed { .. }));
                peer.node.handle_link_report(self.now, conn, report);
            }
            if closed {
                peer.links.remove(&conn);
                peer.unread.remove(&conn);
                if let Some((b, cb)) = self.wires.remove(&(i, conn)) {
                    self.wires.remove(&(b, cb));
                    if let Some(link) = self.peers[b].links.get_mut(&cb) {
                        link.handle_eof();
                    }
                }
            }
        }
        busy
    }

    fn drive(&mut self) {
        for _ in 0..100_000 {
            let mut busy = false;
            for i in 0..self.peers.len() {
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

    fn advance(&mut self, by: Duration) {
        self.now += by;
        for peer in &mut self.peers {
            if peer.node.poll_timeout().is_some_and(|at| at <= self.now) {
                peer.node.handle_timeout(self.now);
            }
            for link in peer.links.values_mut() {
                if link.poll_timeout().is_some_and(|at| at <= self.now) {
                    link.handle_timeout(self.now);
                }
            }
        }
        self.drive();
    }

    fn send(&mut self, i: usize, envelope: Envelope) -> Result<usize, SendError> {
        let sent = self.peers[i].node.send(self.now, envelope);
        self.drive();
        sent
    }

    fn data(&self, i: usize) -> Vec<Bytes> {
        self.peers[i]
            .delivered
            .iter()
            .filter(|e| e.channel == DATA)
            .map(|e| e.message.clone())
            .collect()
    }

    fn is_down(&self, i: usize, peer: NodeId) -> bool {
        self.peers[i]
            .updates
            .iter()
            .any(|u| u.node_id == peer && u.status == PeerStatus::Down)
    }
}

fn data_channel(_: usize, node: &mut Node) {
    node.open_channel(descriptor(DATA), OverflowPolicy::Backpressure)
        .unwrap();
}

#[test]
fn two_nodes_connect_and_exchange_in_order() {
    let mut net = Net::new(2, |_, _| {}, data_channel);
    net.connect(0, 1);
    assert_eq!(net.peers[0].node.connected_peers().count(), 1);
    let id1 = net.id(1);
    for n in 0..50u8 {
        let message = Bytes::from(vec![n; 3000]);
        assert_eq!(net.send(0, Envelope::to_peer(id1, DATA, message)), Ok(1));
    }
    let got: Vec<u8> = net.data(1).iter().map(|m| m[0]).collect();
    assert_eq!(got, (0..50).collect::<Vec<u8>>());
    assert_eq!(net.peers[0].node.counters().snapshot().sent_messages, 50);
}

#[test]
fn a_peer_that_stops_reading_fills_its_window_and_the_rest_waits_without_loss() {
    let mut net = Net::new(
        3,
        |_, c| {
            c.router.channel_queue_messages = 8;
            c.router.send_credit = 4;
        },
        data_channel,
    );
    net.connect(1, 0);
    net.connect(2, 0);
    let (id1, id2) = (net.id(1), net.id(2));
    net.deaf.insert(1);
    let mut accepted = 0u32;
    let refused = loop {
        let message = Bytes::from(vec![accepted as u8; 16_000]);
        match net.send(0, Envelope::to_peer(id1, DATA, message)) {
            Ok(_) => accepted += 1,
            Err(SendError::Full { envelope, peers }) => {
                assert_eq!(peers, vec![id1]);
                break envelope;
            }
            Err(error) => panic!("{error}"),
        }
        assert!(accepted < 1000, "a deaf peer's window never filled");
    };
    // The other peer is not held up.
    let other = Envelope::to_peer(id2, DATA, Bytes::from_static(b"other"));
    assert_eq!(net.send(0, other), Ok(1));
    assert_eq!(net.data(2).len(), 1);
    // Node 1 reads again: room is announced, the refused message goes out after the rest.
    net.deaf.clear();
    net.drive();
    assert_eq!(net.peers[0].writable, vec![(id1, DATA)]);
    net.send(0, refused).unwrap();
    let got: Vec<u32> = net.data(1).iter().map(|m| u32::from(m[0])).collect();
    assert_eq!(got, (0..=accepted).map(|n| n % 256).collect::<Vec<_>>());
    assert_eq!(net.peers[0].node.counters().snapshot().dropped(), 0);
}

#[test]
fn a_close_towards_a_peer_that_stopped_reading_gives_up_after_the_linger() {
    let linger = Duration::from_secs(2);
    let mut net = Net::new(2, |_, c| c.close_linger = linger, data_channel);
    net.connect(1, 0);
    let id1 = net.id(1);
    net.deaf.insert(1);
    while net
        .send(
            0,
            Envelope::to_peer(id1, DATA, Bytes::from(vec![7; 16_000])),
        )
        .is_ok()
    {}
    net.peers[0].node.report_error(
        net.now,
        PeerError {
            node: id1,
            reason: "test".into(),
            fatal: true,
        },
    );
    net.drive();
    assert!(
        !net.is_down(0, id1),
        "the close waits for the sends before it"
    );
    net.advance(linger - Duration::from_millis(1));
    assert!(!net.is_down(0, id1));
    net.advance(Duration::from_millis(1));
    assert!(net.is_down(0, id1), "given up at the linger");
    assert!(net.peers[0].node.counters().snapshot().dropped_peer_gone > 0);
}

#[test]
fn an_undecodable_typed_message_is_fatal_for_its_sender() {
    let mut net = Net::new(2, |_, _| {}, data_channel);
    net.connect(1, 0);
    let id0 = net.id(0);
    // Channel 0x20 carries echo messages at node 0; node 1 sends bytes that are not one.
    net.send(
        1,
        Envelope::to_peer(id0, DATA, Bytes::from_static(&[0xff, 0xff])),
    )
    .unwrap();
    let envelope = net.peers[0].delivered.pop().unwrap();
    let now = net.now;
    let codec = crate::typed::WrapperCodec::<EchoMessage, EchoInner>::new();
    assert!(net.peers[0].node.decode(now, &codec, envelope).is_none());
    net.drive();
    assert!(net.is_down(0, net.id(1)));
    // The same bytes on a raw channel are a message like any other.
    let raw = Envelope {
        from: Some(net.id(1)),
        to: None,
        channel: DATA,
        message: Bytes::from_static(&[0xff, 0xff]),
    };
    let decoded = net.peers[0].node.decode(now, &RawCodec, raw);
    assert_eq!(decoded.as_deref(), Some(&[0xff, 0xff][..]));
}

#[test]
fn pex_runs_inside_the_node_machine_and_a_node_learns_its_peers_peer() {
    let mut net = Net::new(
        3,
        |_, _| {},
        |_, node| {
            data_channel(0, node);
            node.enable_pex(PexConfig::default()).unwrap();
        },
    );
    net.connect(1, 0);
    net.connect(2, 1);
    // Node 2 only knows node 1; node 1's answer carries node 0's address.
    for _ in 0..20 {
        net.advance(Duration::from_secs(1));
    }
    let id0 = net.id(0);
    assert!(
        net.peers[2].node.connected_peers().any(|p| p == id0),
        "learned by PEX and dialed"
    );
    assert!(net.peers[2]
        .pex
        .iter()
        .any(|e| matches!(e, PexEvent::Learned { count, .. } if *count > 0)));
    assert!(
        net.data(2).is_empty(),
        "PEX messages never reach the application"
    );
}

#[test]
fn channels_are_fixed_once_started() {
    let mut net = Net::new(1, |_, _| {}, data_channel);
    assert_eq!(
        net.peers[0]
            .node
            .open_channel(descriptor(0x21), OverflowPolicy::Drop),
        Err(NodeError::AlreadyStarted)
    );
    assert_eq!(
        net.peers[0].node.start(net.now),
        Err(NodeError::AlreadyStarted)
    );
}
