//! Routers with PEX reactors, joined in memory by real `PeerConnection`s, in virtual time:
//! four nodes in a line (0 knows 1, 1 knows 2, 2 knows 3) all learn each other; three
//! nodes that know only a seed learn each other from it, and the seed drops them after
//! answering; a seed does not redial a peer it crawled within its re-crawl interval. The
//! small driver here does what a real one does for each `RouterAction` and `PexOutput`
//! (in order: a `Close` never overtakes the messages queued before it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::connection::{Outbox, PeerConnection, PeerEvent};
use tmp2p_core::node_info::{NodeInfo, ProtocolVersions};
use tmp2p_core::peer_manager::ClockAnchor;
use tmp2p_core::pex::{self, PexConfig, PexOutput, PexReactor, PEX_CHANNEL};
use tmp2p_core::router::{
    ConnectionId, ConnectionParams, PeerError, Router, RouterAction, RouterConfig,
};
use tmp2p_core::{NodeId, NodeKey};

const N: usize = 4;

fn ip_of(i: usize) -> IpAddr {
    IpAddr::from([10, 0, 0, i as u8 + 1])
}

fn key_of(i: usize) -> NodeKey {
    NodeKey::from_seed([i as u8 + 1; 32])
}

fn address_of(i: usize) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{}:26656", key_of(i).node_id(), ip_of(i))).unwrap()
}

struct Node {
    key: NodeKey,
    router: Router,
    pex: PexReactor,
    conns: BTreeMap<ConnectionId, PeerConnection>,
    /// The Router's sends and closes per connection, in its order (a seed's answer must
    /// go out before its disconnect).
    outboxes: BTreeMap<ConnectionId, Outbox>,
    rng: ChaCha20Rng,
    peer_errors: Vec<PeerError>,
    /// Node info of authenticated peers, for `PexReactor::handle_peer_info`.
    infos: BTreeMap<NodeId, NodeInfo>,
    /// Seed mode: peers we asked the router to drop.
    disconnected: Vec<NodeId>,
    /// Every dial this node's router started: when, and to which IP.
    dials: Vec<(Instant, IpAddr)>,
}

struct Net {
    nodes: Vec<Node>,
    links: BTreeMap<(usize, ConnectionId), (usize, ConnectionId)>,
    rng: ChaCha20Rng,
    now: Instant,
    next_port: u16,
}

impl Net {
    fn new(pex_config: impl Fn(usize) -> PexConfig) -> Net {
        let now = Instant::now();
        let nodes = (0..N)
            .map(|i| {
                let key = key_of(i);
                let info = NodeInfo {
                    protocol_version: ProtocolVersions {
                        p2p: 8,
                        block: 11,
                        app: 0,
                    },
                    node_id: key.node_id(),
                    listen_addr: format!("tcp://{}:26656", ip_of(i)),
                    network: "pex-line".into(),
                    version: "1".into(),
                    channels: vec![],
                    moniker: format!("node{i}"),
                    tx_index: String::new(),
                    rpc_address: String::new(),
                };
                let mut config = RouterConfig::default();
                config.peer_manager.self_address = Some(address_of(i));
                config.peer_manager.min_retry_time = Duration::from_millis(100);
                let clock = ClockAnchor {
                    instant: now,
                    since_unix_epoch: Duration::from_secs(1_700_000_000),
                };
                let rng = Box::new(ChaCha20Rng::seed_from_u64(i as u64));
                let mut router = Router::new(config, info, clock, now, vec![], rng).unwrap();
                router.open_channel(pex::channel_descriptor()).unwrap();
                Node {
                    key,
                    router,
                    pex: PexReactor::new(pex_config(i)).unwrap(),
                    conns: BTreeMap::new(),
                    outboxes: BTreeMap::new(),
                    rng: ChaCha20Rng::seed_from_u64(100 + i as u64),
                    peer_errors: vec![],
                    infos: BTreeMap::new(),
                    disconnected: vec![],
                    dials: vec![],
                }
            })
            .collect();
        Net {
            nodes,
            links: BTreeMap::new(),
            rng: ChaCha20Rng::seed_from_u64(99),
            now,
            next_port: 40000,
        }
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

    fn index_of(&self, id: NodeId) -> Option<usize> {
        (0..N).find(|&t| self.nodes[t].key.node_id() == id)
    }

    /// Carries out one node's router actions and PEX outputs; `true` if there were any.
    fn step_node(&mut self, i: usize) -> bool {
        let mut busy = false;
        while let Some(action) = self.nodes[i].router.poll_action() {
            busy = true;
            let now = self.now;
            match action {
                RouterAction::Dial { conn, socket, .. } => {
                    self.nodes[i].dials.push((now, socket.ip()));
                    let target = (0..N).find(|&t| ip_of(t) == socket.ip());
                    self.next_port += 1;
                    let from = SocketAddr::new(ip_of(i), self.next_port);
                    match target.map(|t| (t, self.nodes[t].router.accept(now, from))) {
                        Some((t, Ok(params))) => {
                            let theirs = params.conn;
                            self.make_conn(t, params);
                            let ours = self.nodes[i]
                                .router
                                .dial_succeeded(now, conn, socket)
                                .unwrap();
                            self.make_conn(i, ours);
                            self.links.insert((i, conn), (t, theirs));
                            self.links.insert((t, theirs), (i, conn));
                        }
                        _ => self.nodes[i].router.dial_failed(now, conn),
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
                RouterAction::Deliver(envelope) => {
                    let node = &mut self.nodes[i];
                    if let (Some(from), PEX_CHANNEL) = (envelope.from, envelope.channel) {
                        node.pex.handle_message(
                            now,
                            from,
                            envelope.message,
                            &mut node.router,
                            &mut node.rng,
                        );
                    }
                }
                RouterAction::PeerUpdate(update) => {
                    let peer_ip = self.index_of(update.node_id).map(ip_of);
                    let node = &mut self.nodes[i];
                    node.pex.handle_peer_update(now, &update, &mut node.router);
                    if let Some(ip) = peer_ip {
                        node.pex.set_peer_ip(update.node_id, ip);
                    }
                    if let Some(info) = node.infos.get(&update.node_id) {
                        node.pex.handle_peer_info(now, info, &mut node.router);
                    }
                }
                RouterAction::Store(_)
                | RouterAction::Resolve { .. }
                | RouterAction::Writable { .. } => {}
            }
        }
        let now = self.now;
        let node = &mut self.nodes[i];
        while let Some(output) = node.pex.poll_output() {
            busy = true;
            match output {
                PexOutput::Send(envelope) => {
                    // One PEX message per peer at a time: far below a peer's window.
                    node.router.send(envelope).unwrap();
                }
                PexOutput::PeerError(e) => {
                    let e = PeerError::from(e);
                    node.peer_errors.push(e.clone());
                    node.router.report_error(now, e);
                }
                PexOutput::Disconnect { node: peer } => {
                    node.disconnected.push(peer);
                    // Graceful, as the pex module docs ask: the answer queued before it
                    // still goes out, and the peer's score is untouched.
                    let _ = node.router.disconnect(peer);
                }
                PexOutput::Learned { .. } => {}
            }
        }
        for (conn, outbox) in &mut node.outboxes {
            if let Some(pc) = node.conns.get_mut(conn) {
                let taken = outbox.flush(now, pc);
                node.router.messages_accepted(*conn, taken);
            }
        }
        let conns = &node.conns;
        node.outboxes
            .retain(|conn, outbox| !outbox.is_empty() && conns.contains_key(conn));
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
        for i in 0..N {
            let ids: Vec<ConnectionId> = self.nodes[i].conns.keys().copied().collect();
            for conn in ids {
                let events: Vec<PeerEvent> = match self.nodes[i].conns.get_mut(&conn) {
                    Some(pc) => std::iter::from_fn(|| pc.poll_event()).collect(),
                    None => vec![],
                };
                for event in events {
                    busy = true;
                    let closed = matches!(event, PeerEvent::Closed { .. });
                    if let PeerEvent::Authenticated { node_info, .. } = &event {
                        self.nodes[i]
                            .infos
                            .insert(node_info.node_id, (**node_info).clone());
                    }
                    self.nodes[i]
                        .router
                        .handle_connection_event(self.now, conn, event);
                    if closed {
                        self.nodes[i].conns.remove(&conn);
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

    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            for i in 0..N {
                busy |= self.step_node(i);
            }
            busy |= self.step_bytes();
            if !busy {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Jumps virtual time to the earliest timer anywhere and fires it.
    fn advance(&mut self) {
        let mut next: Option<Instant> = None;
        for node in &self.nodes {
            let timers = [node.router.poll_timeout(), node.pex.poll_timeout()]
                .into_iter()
                .chain(node.conns.values().map(|pc| pc.poll_timeout()));
            for at in timers.flatten() {
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
            }
        }
        let at = next.expect("some timer is always pending while peers are connected");
        self.now = self.now.max(at);
        let now = self.now;
        for node in &mut self.nodes {
            node.router.handle_timeout(now);
            node.pex.handle_timeout(now, &mut node.router);
            for pc in node.conns.values_mut() {
                if pc.poll_timeout().is_some_and(|t| t <= now) {
                    pc.handle_timeout(now);
                }
            }
        }
    }

    fn knows_everyone(&self) -> bool {
        self.all_know(0..N)
    }

    fn all_know(&self, nodes: std::ops::Range<usize>) -> bool {
        nodes.clone().all(|i| {
            nodes.clone().filter(|&j| j != i).all(|j| {
                self.nodes[i]
                    .router
                    .peer_manager()
                    .addresses(self.nodes[j].key.node_id())
                    .contains(&address_of(j))
            })
        })
    }
}

#[test]
fn four_nodes_in_a_line_learn_about_each_other_through_pex() {
    let mut net = Net::new(|_| PexConfig::default());
    for i in 0..N - 1 {
        let now = net.now;
        net.nodes[i]
            .router
            .add_peer(now, address_of(i + 1))
            .unwrap();
    }
    let start = net.now;
    net.settle();
    while !net.knows_everyone() {
        assert!(
            net.now - start < Duration::from_secs(300),
            "not everyone learned everyone within 300 s of virtual time"
        );
        net.advance();
        net.settle();
    }
    // Learned through PEX alone, with nobody misbehaving: no peer errors anywhere.
    for (i, node) in net.nodes.iter().enumerate() {
        assert!(
            node.peer_errors.is_empty(),
            "node {i}: {:?}",
            node.peer_errors
        );
    }
    // Node 0 started knowing only node 1; it now also knows 2 and 3 (their own addresses,
    // advertised first in their answers, relayed along the line).
    let pm = net.nodes[0].router.peer_manager();
    assert!(pm.peer_count() >= N - 1);
}

#[test]
fn nodes_that_know_only_a_seed_learn_each_other_and_the_seed_drops_them() {
    let mut net = Net::new(|i| PexConfig {
        seed_mode: i == 0,
        ..PexConfig::default()
    });
    for i in 1..N {
        let now = net.now;
        net.nodes[i].router.add_peer(now, address_of(0)).unwrap();
    }
    let start = net.now;
    net.settle();
    while !net.knows_everyone() {
        assert!(
            net.now - start < Duration::from_secs(300),
            "not everyone learned everyone within 300 s of virtual time"
        );
        net.advance();
        net.settle();
    }
    for (i, node) in net.nodes.iter().enumerate() {
        assert!(
            node.peer_errors.is_empty(),
            "node {i}: {:?}",
            node.peer_errors
        );
    }
    // The seed learned the clients from their listen addresses and dropped each after
    // answering; the clients now know each other without the seed's help.
    let seed = &net.nodes[0];
    assert!(seed.disconnected.len() >= N - 1, "{:?}", seed.disconnected);
    for i in 1..N {
        assert!(seed.disconnected.contains(&net.nodes[i].key.node_id()));
    }
    assert!(net.all_know(1..N));
}

#[test]
fn a_seed_does_not_redial_a_peer_it_crawled_within_its_recrawl_interval() {
    let mut net = Net::new(|i| PexConfig {
        seed_mode: i == 0,
        ..PexConfig::default()
    });
    let interval = net.nodes[0].pex.config().seed_recrawl_interval;
    let now = net.now;
    net.nodes[0].router.add_peer(now, address_of(1)).unwrap();
    let start = net.now;
    net.settle();
    while net.now < start + interval {
        net.advance();
        net.settle();
    }
    let seed = &net.nodes[0];
    // Crawled at once (asked, answered, dropped) ...
    assert!(
        seed.disconnected.contains(&net.nodes[1].key.node_id()),
        "{:?}",
        seed.disconnected
    );
    // ... and not dialed again within the interval (with the PeerManager's 2 s cooldown
    // alone it would be redialed and re-asked every 2 s).
    let redials: Vec<Duration> = seed
        .dials
        .iter()
        .filter(|&&(at, ip)| ip == ip_of(1) && at < start + interval)
        .map(|&(at, _)| at - start)
        .collect();
    assert_eq!(redials, vec![Duration::ZERO], "seed dials of node 1");
    assert!(seed.peer_errors.is_empty(), "{:?}", seed.peer_errors);
}
