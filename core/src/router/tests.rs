//! Routers wired together in memory: real PeerConnections (real crypto, real framing)
//! joined by a tiny in-test byte pipe, with the driver's duties done by a small harness.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::connection::{Outbox, PeerConnection, Taken};
use crate::key::NodeKey;
use crate::node_info::ProtocolVersions;
use crate::peer_manager::PeerUpdate;

use crate::test_clock::epoch;

fn ip_of(i: usize) -> IpAddr {
    IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8 + 1])
}

struct Node {
    key: NodeKey,
    router: Router,
    conns: BTreeMap<ConnectionId, PeerConnection>,
    /// The Router's sends and closes per connection, in order.
    outboxes: BTreeMap<ConnectionId, Outbox>,
    delivered: Vec<Envelope>,
    updates: Vec<PeerUpdate>,
    closed: Vec<ConnectionId>,
    /// `Writable` announcements, in order.
    writable: Vec<(NodeId, u8)>,
}

struct Net {
    nodes: Vec<Node>,
    /// (node, conn) → (node, conn) of the other end.
    links: BTreeMap<(usize, ConnectionId), (usize, ConnectionId)>,
    rng: ChaCha20Rng,
    now: Instant,
    next_port: u16,
}

fn descriptor(id: u8, priority: u32) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority,
        send_queue_capacity: 8,
        recv_message_capacity: 1 << 20,
    }
}

impl Net {
    fn new(n: usize, channels: &[&[u8]], config: impl Fn(&mut RouterConfig)) -> Net {
        let now = epoch();
        let mut nodes = Vec::new();
        for i in 0..n {
            let key = NodeKey::from_seed([i as u8 + 1; 32]);
            let info = NodeInfo {
                protocol_version: ProtocolVersions {
                    p2p: 8,
                    block: 11,
                    app: 0,
                },
                node_id: key.node_id(),
                listen_addr: format!("tcp://{}:26656", ip_of(i)),
                network: "net".into(),
                version: "1".into(),
                channels: vec![],
                moniker: format!("node{i}"),
                tx_index: String::new(),
                rpc_address: String::new(),
            };
            let mut cfg = RouterConfig::default();
            cfg.peer_manager.min_retry_time = Duration::from_millis(100);
            config(&mut cfg);
            let clock = ClockAnchor {
                instant: now,
                since_unix_epoch: Duration::from_secs(1_700_000_000),
            };
            let mut router = Router::new(
                cfg,
                info,
                clock,
                now,
                vec![],
                Box::new(ChaCha20Rng::seed_from_u64(i as u64)),
            )
            .unwrap();
            for &ch in channels.get(i).copied().unwrap_or(channels[0]) {
                router
                    .open_channel(descriptor(ch, 1 + u32::from(ch % 5)))
                    .unwrap();
            }
            nodes.push(Node {
                key,
                router,
                conns: BTreeMap::new(),
                outboxes: BTreeMap::new(),
                delivered: vec![],
                updates: vec![],
                closed: vec![],
                writable: vec![],
            });
        }
        Net {
            nodes,
            links: BTreeMap::new(),
            rng: ChaCha20Rng::seed_from_u64(99),
            now,
            next_port: 40000,
        }
    }

    fn id(&self, i: usize) -> NodeId {
        self.nodes[i].key.node_id()
    }

    fn address(&self, i: usize) -> NodeAddress {
        NodeAddress::parse(&format!("{}@{}:26656", self.id(i), ip_of(i))).unwrap()
    }

    fn connect(&mut self, from: usize, to: usize) {
        let addr = self.address(to);
        self.nodes[from].router.add_peer(self.now, addr).unwrap();
    }

    fn make_conn(&mut self, node: usize, params: ConnectionParams) {
        let n = &mut self.nodes[node];
        let pc = PeerConnection::new(
            self.now,
            &n.key,
            params.node_info,
            params.direction,
            params.config,
            &mut self.rng,
        );
        n.conns.insert(params.conn, pc);
    }

    fn step_actions(&mut self) -> bool {
        let mut busy = false;
        for i in 0..self.nodes.len() {
            while let Some(action) = self.nodes[i].router.poll_action() {
                busy = true;
                match action {
                    RouterAction::Dial { conn, socket, .. } => {
                        let target = (0..self.nodes.len()).find(|&t| ip_of(t) == socket.ip());
                        self.next_port += 1;
                        let from = SocketAddr::new(ip_of(i), self.next_port);
                        let accepted =
                            target.map(|t| (t, self.nodes[t].router.accept(self.now, from)));
                        match accepted {
                            Some((t, Ok(params))) => {
                                let their = params.conn;
                                self.make_conn(t, params);
                                let ours = self.nodes[i]
                                    .router
                                    .dial_succeeded(self.now, conn, socket)
                                    .unwrap();
                                self.make_conn(i, ours);
                                self.links.insert((i, conn), (t, their));
                                self.links.insert((t, their), (i, conn));
                            }
                            _ => {
                                self.nodes[i].router.dial_failed(self.now, conn);
                            }
                        }
                    }
                    RouterAction::Send {
                        conn,
                        channel,
                        message,
                        ..
                    } => self.nodes[i]
                        .outboxes
                        .entry(conn)
                        .or_default()
                        .push_send(channel, message),
                    RouterAction::Close { conn } => {
                        self.nodes[i]
                            .outboxes
                            .entry(conn)
                            .or_default()
                            .request_close();
                    }
                    RouterAction::Deliver(env) => self.nodes[i].delivered.push(env),
                    RouterAction::PeerUpdate(u) => self.nodes[i].updates.push(u),
                    RouterAction::Writable { node, channel } => {
                        self.nodes[i].writable.push((node, channel))
                    }
                    RouterAction::Store(_) | RouterAction::Resolve { .. } => {}
                }
            }
            // Hand queued sends (and then closes) to their connections.
            let now = self.now;
            let node = &mut self.nodes[i];
            for (conn, outbox) in &mut node.outboxes {
                if let Some(pc) = node.conns.get_mut(conn) {
                    let taken = outbox.flush(now, pc);
                    node.router.messages_accepted(*conn, taken);
                }
            }
            let conns = &node.conns;
            node.outboxes
                .retain(|conn, outbox| !outbox.is_empty() && conns.contains_key(conn));
        }
        busy
    }

    fn step_bytes(&mut self) -> bool {
        let mut busy = false;
        let keys: Vec<_> = self.links.keys().copied().collect();
        for (a, ca) in keys {
            let Some(&(b, cb)) = self.links.get(&(a, ca)) else {
                continue;
            };
            let mut out = BytesMut::new();
            if let Some(pc) = self.nodes[a].conns.get_mut(&ca) {
                while pc.poll_transmit(self.now, &mut out) {}
            }
            if !out.is_empty() {
                busy = true;
                if let Some(pc) = self.nodes[b].conns.get_mut(&cb) {
                    let _ = pc.handle_input(self.now, &out);
                }
            }
        }
        for i in 0..self.nodes.len() {
            let ids: Vec<ConnectionId> = self.nodes[i].conns.keys().copied().collect();
            for conn in ids {
                let mut events = vec![];
                if let Some(pc) = self.nodes[i].conns.get_mut(&conn) {
                    while let Some(e) = pc.poll_event() {
                        events.push(e);
                    }
                }
                for e in events {
                    busy = true;
                    let closed = matches!(e, PeerEvent::Closed { .. });
                    self.nodes[i]
                        .router
                        .handle_connection_event(self.now, conn, e);
                    if closed {
                        self.nodes[i].conns.remove(&conn);
                        self.nodes[i].closed.push(conn);
                        if let Some((b, cb)) = self.links.remove(&(i, conn)) {
                            self.links.remove(&(b, cb));
                            if let Some(pc) = self.nodes[b].conns.get_mut(&cb) {
                                pc.handle_eof();
                            }
                        }
                    }
                }
            }
        }
        busy
    }

    fn drive(&mut self) {
        for _ in 0..100_000 {
            let a = self.step_actions();
            let b = self.step_bytes();
            if !a && !b {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advances virtual time to every router's next timeout, `rounds` times.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        for n in &mut self.nodes {
            n.router.handle_timeout(self.now);
            let ids: Vec<_> = n.conns.keys().copied().collect();
            for c in ids {
                if let Some(pc) = n.conns.get_mut(&c) {
                    pc.handle_timeout(self.now);
                }
            }
        }
        self.drive();
    }

    fn delivered(&self, i: usize, channel: u8) -> Vec<(NodeId, Bytes)> {
        self.nodes[i]
            .delivered
            .iter()
            .filter(|e| e.channel == channel)
            .map(|e| (e.from.unwrap(), e.message.clone()))
            .collect()
    }
}

#[test]
fn two_routers_connect_and_exchange_on_three_channels() {
    let mut net = Net::new(2, &[&[0x20, 0x21, 0x30]], |_| {});
    net.connect(0, 1);
    net.drive();
    assert_eq!(
        net.nodes[0].router.connected_peers().collect::<Vec<_>>(),
        vec![net.id(1)]
    );
    assert_eq!(
        net.nodes[1].router.connected_peers().collect::<Vec<_>>(),
        vec![net.id(0)]
    );
    for node in 0..2 {
        let ups: Vec<_> = net.nodes[node]
            .updates
            .iter()
            .filter(|u| u.status == crate::peer_manager::PeerStatus::Up)
            .collect();
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].channels, vec![0x20, 0x21, 0x30]);
    }
    let (id0, id1) = (net.id(0), net.id(1));
    for (k, ch) in [0x20u8, 0x21, 0x30].into_iter().enumerate() {
        for j in 0..5u8 {
            let msg = Bytes::from(vec![ch ^ j; 100 * (k + 1) + usize::from(j)]);
            net.nodes[0]
                .router
                .send(Envelope::to_peer(id1, ch, msg.clone()))
                .unwrap();
            net.nodes[1]
                .router
                .send(Envelope::to_peer(id0, ch, msg))
                .unwrap();
        }
    }
    net.drive();
    for (node, from) in [(1, id0), (0, id1)] {
        for (k, ch) in [0x20u8, 0x21, 0x30].into_iter().enumerate() {
            let got = net.delivered(node, ch);
            assert_eq!(got.len(), 5, "node {node} channel {ch:#x}");
            for (j, (sender, msg)) in got.iter().enumerate() {
                assert_eq!(*sender, from);
                assert_eq!(msg.len(), 100 * (k + 1) + j, "order within the channel");
                assert!(msg.iter().all(|&b| b == ch ^ j as u8));
            }
        }
    }
}

#[test]
fn broadcast_reaches_exactly_the_peers_that_advertised_the_channel() {
    // Node 0 and 1 serve 0x20 and 0x30; node 2 serves only 0x30.
    let mut net = Net::new(3, &[&[0x20, 0x30], &[0x20, 0x30], &[0x30]], |_| {});
    net.connect(0, 1);
    net.connect(0, 2);
    net.drive();
    assert_eq!(net.nodes[0].router.connected_peers().count(), 2);
    let router = &mut net.nodes[0].router;
    assert_eq!(
        router.send(Envelope::broadcast(0x20, Bytes::from_static(b"only-20"))),
        Ok(1)
    );
    assert_eq!(
        router.send(Envelope::broadcast(0x30, Bytes::from_static(b"all-30"))),
        Ok(2)
    );
    // Each refusal says why, and is counted.
    let id2 = net.id(2);
    let unknown = NodeKey::from_seed([77; 32]).node_id();
    let id0 = net.id(0);
    let router = &mut net.nodes[0].router;
    assert_eq!(
        router.send(Envelope::to_peer(id2, 0x20, Bytes::from_static(b"nope"))),
        Err(SendError::NoChannel {
            node: id2,
            channel: 0x20
        })
    );
    for to in [unknown, id0] {
        assert_eq!(
            router.send(Envelope::to_peer(to, 0x30, Bytes::from_static(b"x"))),
            Err(SendError::NotConnected)
        );
    }
    assert_eq!(
        router.send(Envelope::broadcast(0x55, Bytes::from_static(b"x"))),
        Err(SendError::ChannelNotOpen(0x55))
    );
    let counted = router.counters().snapshot();
    assert_eq!(
        (
            counted.dropped_no_channel,
            counted.dropped_not_connected,
            counted.dropped_channel_not_open
        ),
        (1, 2, 1)
    );
    net.drive();
    assert_eq!(net.delivered(1, 0x20).len(), 1);
    assert_eq!(net.delivered(1, 0x30).len(), 1);
    assert_eq!(net.delivered(2, 0x20).len(), 0);
    assert_eq!(net.delivered(2, 0x30).len(), 1);
    assert_eq!(&net.delivered(2, 0x30)[0].1[..], b"all-30");
    assert!(
        net.nodes[2].closed.is_empty(),
        "nothing was sent on a channel node 2 lacks"
    );
}

#[test]
fn fatal_peer_error_disconnects_and_the_peer_comes_back() {
    let mut net = Net::new(2, &[&[0x20]], |_| {});
    net.connect(0, 1);
    net.drive();
    let id1 = net.id(1);
    net.nodes[0].router.report_error(
        net.now,
        PeerError {
            node: id1,
            reason: "test".into(),
            fatal: true,
        },
    );
    net.drive();
    assert_eq!(net.nodes[0].router.connected_peers().count(), 0);
    let statuses: Vec<_> = net.nodes[0].updates.iter().map(|u| u.status).collect();
    use crate::peer_manager::PeerStatus::{Down, Up};
    assert_eq!(statuses, vec![Up, Down]);
    // Node 0 dialed node 1: it redials after the backoff and the cooldown.
    for _ in 0..50 {
        net.advance(Duration::from_millis(500));
    }
    assert_eq!(
        net.nodes[0].router.connected_peers().collect::<Vec<_>>(),
        vec![id1]
    );
    let statuses: Vec<_> = net.nodes[0].updates.iter().map(|u| u.status).collect();
    assert_eq!(statuses, vec![Up, Down, Up]);
}

#[test]
fn non_fatal_peer_error_lowers_the_score_only() {
    let mut net = Net::new(2, &[&[0x20]], |_| {});
    net.connect(0, 1);
    net.drive();
    let id1 = net.id(1);
    let before = net.nodes[0].router.peer_manager().score(id1).unwrap();
    net.nodes[0].router.report_error(
        net.now,
        PeerError {
            node: id1,
            reason: "meh".into(),
            fatal: false,
        },
    );
    net.drive();
    assert_eq!(net.nodes[0].router.connected_peers().count(), 1);
    assert_eq!(
        net.nodes[0].router.peer_manager().score(id1).unwrap(),
        before - 1
    );
}

#[test]
fn stale_connection_ids_are_ignored() {
    let mut net = Net::new(2, &[&[0x20]], |_| {});
    net.connect(0, 1);
    net.drive();
    let id1 = net.id(1);
    let conn = *net.nodes[0].conns.keys().next().unwrap();
    net.nodes[0].router.report_error(
        net.now,
        PeerError {
            node: id1,
            reason: "x".into(),
            fatal: true,
        },
    );
    net.drive();
    assert!(net.nodes[0].conns.is_empty());
    // Late events and calls for the old id change nothing and do not panic.
    let r = &mut net.nodes[0].router;
    r.handle_connection_event(
        net.now,
        conn,
        PeerEvent::Message {
            channel: 0x20,
            message: Bytes::from_static(b"late"),
        },
    );
    r.handle_connection_event(net.now, conn, PeerEvent::Closed { reason: None });
    r.messages_accepted(
        conn,
        Taken {
            messages: 1,
            bytes: 4,
        },
    );
    r.dial_failed(net.now, conn);
    assert!(r
        .dial_succeeded(net.now, conn, SocketAddr::new(ip_of(1), 26656))
        .is_err());
    assert!(std::iter::from_fn(|| r.poll_action()).all(|a| !matches!(a, RouterAction::Deliver(_))));
}

#[test]
fn channels_are_fixed_once_connections_start_and_duplicates_are_refused() {
    let mut net = Net::new(2, &[&[0x20]], |_| {});
    assert_eq!(
        net.nodes[0].router.open_channel(descriptor(0x20, 1)),
        Err(RouterError::DuplicateChannel(0x20))
    );
    assert_eq!(net.nodes[0].router.node_info().channels, vec![0x20]);
    net.connect(0, 1);
    net.drive();
    assert_eq!(
        net.nodes[0].router.open_channel(descriptor(0x21, 1)),
        Err(RouterError::ChannelsFrozen)
    );
}

#[test]
fn incoming_admission_per_ip_and_filters() {
    let mut net = Net::new(1, &[&[0x20]], |c| c.max_incoming_per_ip = 2);
    let r = &mut net.nodes[0].router;
    let ip = ip_of(9);
    r.accept(net.now, SocketAddr::new(ip, 1)).unwrap();
    r.accept(net.now, SocketAddr::new(ip, 2)).unwrap();
    assert!(matches!(
        r.accept(net.now, SocketAddr::new(ip, 3)),
        Err(AdmissionError::TooManyFromIp { .. })
    ));
    r.set_ip_filter(|ip| ip != IpAddr::from([10, 0, 0, 50]));
    assert_eq!(
        r.accept(net.now, SocketAddr::new(IpAddr::from([10, 0, 0, 50]), 1))
            .unwrap_err(),
        AdmissionError::Filtered(IpAddr::from([10, 0, 0, 50]))
    );
}

#[test]
fn id_filter_refuses_after_the_handshake() {
    let mut net = Net::new(2, &[&[0x20]], |_| {});
    let id0 = net.id(0);
    net.nodes[1].router.set_id_filter(move |id| id != id0);
    net.connect(0, 1);
    net.drive();
    assert_eq!(net.nodes[1].router.connected_peers().count(), 0);
    assert_eq!(net.nodes[0].router.connected_peers().count(), 0);
}

#[test]
fn dial_timeout_fails_the_dial() {
    let mut net = Net::new(1, &[&[0x20]], |c| c.dial_timeout = Duration::from_secs(3));
    let addr = NodeAddress::parse(&format!(
        "{}@10.9.9.9:26656",
        NodeKey::from_seed([50; 32]).node_id()
    ))
    .unwrap();
    let r = &mut net.nodes[0].router;
    r.add_peer(net.now, addr).unwrap();
    let Some(RouterAction::Dial { conn, .. }) =
        std::iter::from_fn(|| r.poll_action()).find(|a| matches!(a, RouterAction::Dial { .. }))
    else {
        panic!("no dial");
    };
    assert_eq!(
        r.poll_timeout(),
        Some(net.now),
        "the first pass is due at once"
    );
    r.handle_timeout(net.now);
    assert_eq!(r.poll_timeout(), Some(net.now + Duration::from_secs(3)));
    r.handle_timeout(net.now + Duration::from_secs(3));
    let actions: Vec<_> = std::iter::from_fn(|| r.poll_action()).collect();
    assert!(
        actions.contains(&RouterAction::Close { conn }),
        "{actions:?}"
    );
    assert!(r
        .dial_succeeded(net.now, conn, SocketAddr::new(ip_of(0), 1))
        .is_err());
}

#[test]
fn concurrent_dials_are_capped() {
    let mut net = Net::new(1, &[&[0x20]], |c| c.max_concurrent_dials = 3);
    let r = &mut net.nodes[0].router;
    for i in 0..10u8 {
        let addr = NodeAddress::parse(&format!(
            "{}@10.9.9.{}:26656",
            NodeKey::from_seed([100 + i; 32]).node_id(),
            i + 1
        ))
        .unwrap();
        r.add_peer(net.now, addr).unwrap();
    }
    let dials = std::iter::from_fn(|| r.poll_action())
        .filter(|a| matches!(a, RouterAction::Dial { .. }))
        .count();
    assert_eq!(dials, 3);
}

#[test]
fn three_routers_form_a_triangle_and_route() {
    let mut net = Net::new(3, &[&[0x20, 0x21]], |_| {});
    net.connect(0, 1);
    net.connect(1, 2);
    net.connect(2, 0);
    net.drive();
    for i in 0..3 {
        assert_eq!(net.nodes[i].router.connected_peers().count(), 2, "node {i}");
    }
    net.nodes[1]
        .router
        .send(Envelope::broadcast(0x21, Bytes::from_static(b"hello")))
        .unwrap();
    net.drive();
    assert_eq!(net.delivered(0, 0x21).len(), 1);
    assert_eq!(net.delivered(2, 0x21).len(), 1);
    assert_eq!(net.delivered(1, 0x21).len(), 0);
}

#[test]
fn wrapper_channel_round_trip_and_undecodable_message_is_a_fatal_peer_error() {
    use crate::typed::echo::EchoInner;
    use crate::typed::{decode_inbound, ChannelCodec, WrapperCodec};
    use tmp2p_proto::echo::{EchoMessage, Ping};

    let codec = WrapperCodec::<EchoMessage, EchoInner>::new();
    let mut net = Net::new(2, &[&[0x20, 0x21, 0x40]], |_| {});
    net.connect(0, 1);
    net.drive();
    let (id0, id1) = (net.id(0), net.id(1));
    let ping = EchoInner::Ping(Ping {
        payload: Bytes::from_static(b"are you there"),
    });
    net.nodes[0]
        .router
        .send(Envelope::to_peer(id1, 0x40, codec.encode(&ping)))
        .unwrap();
    net.nodes[0]
        .router
        .send(Envelope::to_peer(id1, 0x20, Bytes::from_static(b"raw")))
        .unwrap();
    net.nodes[0]
        .router
        .send(Envelope::to_peer(id1, 0x21, Bytes::from_static(b"other")))
        .unwrap();
    // Garbage on the wrapper channel.
    net.nodes[0]
        .router
        .send(Envelope::to_peer(
            id1,
            0x40,
            Bytes::from_static(&[0xff, 0xff]),
        ))
        .unwrap();
    net.drive();
    let got = net.delivered(1, 0x40);
    assert_eq!(got.len(), 2);
    assert_eq!(
        decode_inbound(&codec, got[0].0, got[0].1.clone()).unwrap(),
        ping
    );
    assert_eq!(net.delivered(1, 0x20).len(), 1);
    assert_eq!(net.delivered(1, 0x21).len(), 1);
    let bad = decode_inbound(&codec, got[1].0, got[1].1.clone()).unwrap_err();
    assert_eq!(bad.from, id0);
    let now = net.now;
    net.nodes[1].router.report_error(now, PeerError::from(bad));
    net.drive();
    assert_eq!(
        net.nodes[1].router.connected_peers().count(),
        0,
        "the sender is disconnected"
    );
    assert_eq!(net.nodes[0].router.connected_peers().count(), 0);
}

#[test]
fn an_incompatible_dialed_peer_is_marked_inactive() {
    // Node 1 is on another network. As in v0.35, inactive stops new addresses being taken
    // for the peer (PeerManager::add refuses them); dialing goes on with backoff.
    let mut net = Net::new(2, &[&[0x20]], |_| {});
    net.nodes[1].router.node_info.network = "other".into();
    net.connect(0, 1);
    net.drive();
    assert_eq!(net.nodes[0].router.connected_peers().count(), 0);
    let id1 = net.id(1);
    let record = net.nodes[0]
        .router
        .peer_manager()
        .records()
        .into_iter()
        .find(|r| r.node_id == id1)
        .unwrap();
    assert!(record.inactive);
    let other = NodeAddress::parse(&format!("{id1}@10.0.0.99:26656")).unwrap();
    assert!(net.nodes[0].router.add_peer(net.now, other).is_err());
}

/// §7.6 TestRouter_Network and TestRouter_Channel_Broadcast: 8 nodes in a full mesh;
/// unicast echo to every peer; broadcast reaches all; broadcast still works after a node
/// leaves.
#[test]
fn eight_node_network_echo_and_broadcast_survive_a_departure() {
    let n = 8;
    let mut net = Net::new(n, &[&[0x20]], |_| {});
    for i in 0..n {
        for j in (i + 1)..n {
            net.connect(i, j);
        }
    }
    net.drive();
    for i in 0..n {
        assert_eq!(
            net.nodes[i].router.connected_peers().count(),
            n - 1,
            "node {i}"
        );
    }
    // Node 0 sends to each peer; each echoes back what it got.
    for j in 1..n {
        let id = net.id(j);
        net.nodes[0]
            .router
            .send(Envelope::to_peer(id, 0x20, Bytes::from(vec![j as u8; 10])))
            .unwrap();
    }
    net.drive();
    for j in 1..n {
        let got = net.delivered(j, 0x20);
        assert_eq!(got.len(), 1);
        let (from, msg) = got[0].clone();
        net.nodes[j]
            .router
            .send(Envelope::to_peer(from, 0x20, msg))
            .unwrap();
    }
    net.drive();
    let mut echoes: Vec<u8> = net.delivered(0, 0x20).iter().map(|(_, m)| m[0]).collect();
    echoes.sort();
    assert_eq!(echoes, (1..n as u8).collect::<Vec<_>>());
    // Node 7 leaves (every connection of it closes); node 0 broadcasts.
    let conns: Vec<ConnectionId> = net.nodes[7].conns.keys().copied().collect();
    for c in conns {
        net.nodes[7].conns.get_mut(&c).unwrap().close();
    }
    net.nodes[7].router.close_channel(0x20);
    net.drive();
    net.nodes[0]
        .router
        .send(Envelope::broadcast(0x20, Bytes::from_static(b"all")))
        .unwrap();
    net.drive();
    for j in 1..7 {
        assert!(
            net.delivered(j, 0x20).iter().any(|(_, m)| &m[..] == b"all"),
            "node {j}"
        );
    }
}

/// §7.6 TestRouter_AcceptPeers_HeadOfLineBlocking: inbound connections whose handshakes
/// stall do not keep another peer from connecting.
#[test]
fn stalled_inbound_handshakes_do_not_block_other_peers() {
    let mut net = Net::new(2, &[&[0x20]], |_| {});
    for port in 1..=3 {
        net.nodes[1]
            .router
            .accept(
                net.now,
                SocketAddr::new(IpAddr::from([10, 7, 7, port]), 5000),
            )
            .unwrap();
    }
    net.connect(0, 1);
    net.drive();
    assert_eq!(net.nodes[1].router.connected_peers().count(), 1);
}

#[test]
fn graceful_disconnect_flushes_what_was_sent_first() {
    let mut net = Net::new(2, &[&[0x20]], |_| {});
    net.connect(0, 1);
    net.drive();
    let id1 = net.id(1);
    net.nodes[0]
        .router
        .send(Envelope::to_peer(id1, 0x20, Bytes::from_static(b"bye")))
        .unwrap();
    net.nodes[0].router.disconnect(id1).unwrap();
    net.drive();
    assert_eq!(
        net.delivered(1, 0x20).len(),
        1,
        "queued message flushed before the close"
    );
    assert_eq!(net.nodes[0].router.connected_peers().count(), 0);
    assert_eq!(
        net.nodes[0].router.disconnect(id1),
        Err(RouterError::NotConnected(id1))
    );
    let own = net.address(0);
    assert!(matches!(
        net.nodes[0].router.add_peer(net.now, own),
        Err(RouterError::Peer(_))
    ));
}

#[test]
fn stored_peers_are_dialed_on_the_first_timeout_after_a_restart() {
    let net = Net::new(2, &[&[0x20]], |_| {});
    let now = net.now;
    let peer = net.address(1);
    let mut pm = PeerManager::new(
        net.id(0),
        PeerManagerOptions::node_defaults(),
        ClockAnchor {
            instant: now,
            since_unix_epoch: Duration::from_secs(1_700_000_000),
        },
    )
    .unwrap();
    pm.add(now, peer.clone()).unwrap();
    let records = pm.records();
    let mut router = Router::new(
        RouterConfig::default(),
        net.nodes[0].router.node_info().clone(),
        ClockAnchor {
            instant: now,
            since_unix_epoch: Duration::from_secs(1_700_000_000),
        },
        now,
        records,
        Box::new(ChaCha20Rng::seed_from_u64(5)),
    )
    .unwrap();
    // Channels can still be opened: nothing was dialed yet.
    router.open_channel(descriptor(0x21, 1)).unwrap();
    assert_eq!(
        router.poll_timeout(),
        Some(now),
        "a first pass is due at once"
    );
    router.handle_timeout(now);
    let dialed: Vec<_> = std::iter::from_fn(|| router.poll_action())
        .filter_map(|a| match a {
            RouterAction::Dial { address, .. } => Some(address),
            _ => None,
        })
        .collect();
    assert_eq!(dialed, vec![peer]);
}

#[test]
fn send_credit_bytes_bounds_the_payload_handed_to_a_connection() {
    let mut net = Net::new(2, &[&[0x20]], |c| {
        c.send_credit = 32;
        c.send_credit_bytes = 2500;
    });
    net.connect(0, 1);
    net.drive();
    let id1 = net.id(1);
    let conn = *net.nodes[0].conns.keys().next().unwrap();
    for j in 0..10u8 {
        let message = Bytes::from(vec![j; 1000]);
        net.nodes[0]
            .router
            .send(Envelope::to_peer(id1, 0x20, message))
            .unwrap();
    }
    let sends = |net: &mut Net| {
        let mut count = 0;
        while let Some(action) = net.nodes[0].router.poll_action() {
            if let RouterAction::Send {
                conn,
                channel,
                message,
                ..
            } = action
            {
                count += 1;
                let outbox = net.nodes[0].outboxes.entry(conn).or_default();
                outbox.push_send(channel, message);
            }
        }
        count
    };
    // 0, 1000 and 2000 bytes outstanding are below 2 500: three messages, then it waits.
    assert_eq!(sends(&mut net), 3);
    // Two confirmed: 1 000 bytes outstanding, room for two more.
    net.nodes[0].router.messages_accepted(
        conn,
        Taken {
            messages: 2,
            bytes: 2000,
        },
    );
    assert_eq!(sends(&mut net), 2);
    // Everything still arrives, in order, as the driver confirms what the connection took.
    net.drive();
    let got = net.delivered(1, 0x20);
    assert_eq!(got.len(), 10);
    for (j, (_, message)) in got.iter().enumerate() {
        assert_eq!(message[0], j as u8);
    }
}

#[test]
fn backpressure_hands_back_a_full_peers_message_and_never_holds_up_another_peer() {
    let mut net = Net::new(3, &[&[0x20]], |c| {
        c.send_credit = 2;
        c.channel_queue_messages = 4;
    });
    net.connect(0, 1);
    net.connect(0, 2);
    net.drive();
    let (id1, id2) = (net.id(1), net.id(2));
    let router = &mut net.nodes[0].router;
    // Two go to the connection on credit, four wait in the peer's channel queue.
    for j in 0..6u8 {
        let message = Bytes::from(vec![j; 100]);
        assert_eq!(router.send(Envelope::to_peer(id1, 0x20, message)), Ok(1));
    }
    let refused = Envelope::to_peer(id1, 0x20, Bytes::from(vec![6; 100]));
    assert_eq!(
        router.send(refused.clone()),
        Err(SendError::Full {
            envelope: refused.clone(),
            peers: vec![id1],
        })
    );
    // The other peer is not held up by the full one.
    let other = Envelope::to_peer(id2, 0x20, Bytes::from_static(b"other"));
    assert_eq!(router.send(other), Ok(1));
    // A broadcast is queued for the peer with room and handed back for the full one.
    let all = Envelope::broadcast(0x20, Bytes::from_static(b"all"));
    assert_eq!(
        router.send(all.clone()),
        Err(SendError::Full {
            envelope: all,
            peers: vec![id1],
        })
    );
    net.drive();
    assert_eq!(
        net.nodes[0].writable,
        vec![(id1, 0x20)],
        "room announced once"
    );
    net.nodes[0].router.send(refused).unwrap();
    net.drive();
    let got: Vec<u8> = net.delivered(1, 0x20).iter().map(|(_, m)| m[0]).collect();
    assert_eq!(got, (0..7).collect::<Vec<u8>>(), "all, in order");
    assert_eq!(net.delivered(2, 0x20).len(), 2);
    let counted = net.nodes[0].router.counters().snapshot();
    assert_eq!(counted.dropped(), 0);
    assert_eq!(counted.sent_messages, 9);
}

#[test]
fn a_drop_channel_counts_exactly_what_it_drops() {
    let mut net = Net::new(2, &[&[], &[0x20]], |c| {
        c.send_credit = 1;
        c.queue_kind = crate::queue::QueueKind::Fifo;
        c.queue_max_items = 3;
    });
    net.nodes[0]
        .router
        .open_channel_with_policy(descriptor(0x20, 1), OverflowPolicy::Drop)
        .unwrap();
    assert_eq!(
        net.nodes[0].router.channel_policy(0x20),
        Some(OverflowPolicy::Drop)
    );
    net.connect(0, 1);
    net.drive();
    let id1 = net.id(1);
    for j in 0..10u8 {
        let sent = net.nodes[0]
            .router
            .send(Envelope::to_peer(id1, 0x20, Bytes::from(vec![j; 10])));
        assert_eq!(sent, Ok(1), "a drop channel never makes the sender wait");
    }
    net.drive();
    let dropped = net.nodes[0].router.counters().snapshot().dropped_queue_full;
    let delivered = net.delivered(1, 0x20).len() as u64;
    assert_eq!(delivered, 4, "one on credit, three in the queue");
    assert_eq!(dropped, 10 - delivered);
}

#[test]
fn messages_still_queued_when_a_peer_goes_down_are_counted_as_peer_gone() {
    let mut net = Net::new(2, &[&[0x20]], |c| c.send_credit = 1);
    net.connect(0, 1);
    net.drive();
    let id1 = net.id(1);
    for j in 0..5u8 {
        net.nodes[0]
            .router
            .send(Envelope::to_peer(id1, 0x20, Bytes::from(vec![j; 10])))
            .unwrap();
    }
    // The peer closes before any of it was confirmed: one is with the connection, four
    // wait in the router.
    let conns: Vec<ConnectionId> = net.nodes[1].conns.keys().copied().collect();
    for c in conns {
        net.nodes[1].conns.get_mut(&c).unwrap().close();
    }
    net.drive();
    assert_eq!(net.nodes[0].router.connected_peers().count(), 0);
    let counted = net.nodes[0].router.counters().snapshot();
    assert!(counted.dropped_peer_gone >= 3, "{counted:?}");
    assert_eq!(
        counted.sent_messages + counted.dropped_peer_gone,
        5,
        "every accepted message was handed to the connection or counted as lost"
    );
}
