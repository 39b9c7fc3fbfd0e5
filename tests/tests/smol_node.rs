//! The smol driver over real loopback TCP: a five-node mesh of persistent peers exchanging
//! on a wrapper channel (ADR 062 echo) and a raw channel, a node restarted with the same
//! redb store reconnecting to its peers, and `stop()` delivering every queued message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::typed::echo::EchoInner;
use tmp2p_core::typed::WrapperCodec;
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_driver_smol::{echo, Channel, Envelope, NodeBuilder, NodeHandle, PeerUpdates};
use tmp2p_proto::echo::{EchoMessage, Ping};
use tmp2p_store::{MemoryPeerStore, PeerStore, RedbPeerStore};
use tmp2p_tests::smol_support::{descriptor, within, WAIT};

const ECHO: u8 = 0x20;
const RAW: u8 = 0x21;

/// Free loopback ports (bound then released; the OS does not hand them out again at once).
fn free_ports(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn key(i: usize) -> NodeKey {
    NodeKey::from_seed([i as u8 + 1; 32])
}

fn address(key: &NodeKey, at: SocketAddr) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{at}", key.node_id())).unwrap()
}

fn config(listen: SocketAddr, peers: Vec<NodeAddress>) -> NodeConfig {
    let mut config = NodeConfig::new("smol-test", listen);
    config.persistent_peers = peers;
    // Nodes start one after another: an early dial to a later node is refused, and its
    // retry must not wait the default jitter of seconds.
    config.router.peer_manager.min_retry_time = Duration::from_millis(100);
    config.router.peer_manager.retry_time_jitter = Duration::from_millis(50);
    config
}

struct Started {
    handle: NodeHandle,
    echo: Option<Channel<EchoInner>>,
    raw: Channel<Bytes>,
    updates: PeerUpdates,
}

fn start(config: NodeConfig, key: NodeKey, store: Box<dyn PeerStore + Send>) -> Started {
    let mut builder = NodeBuilder::new(config, key, store).unwrap();
    let echo = builder
        .open_channel(
            descriptor(ECHO),
            WrapperCodec::<EchoMessage, EchoInner>::new(),
        )
        .unwrap();
    let raw = builder.open_raw_channel(descriptor(RAW)).unwrap();
    let updates = builder.subscribe();
    let handle = smol::block_on(builder.start()).unwrap();
    Started {
        handle,
        echo: Some(echo),
        raw,
        updates,
    }
}

/// Waits until `updates` reported every peer of `expected` up (and returns at once if so).
async fn wait_up(updates: &PeerUpdates, expected: &BTreeSet<NodeId>) {
    let mut up = BTreeSet::new();
    while !expected.is_subset(&up) {
        let update = updates.recv().await.unwrap();
        match update.status {
            PeerStatus::Up => up.insert(update.node_id),
            PeerStatus::Down => up.remove(&update.node_id),
        };
    }
}

#[test]
fn five_nodes_form_the_mesh_and_exchange_on_two_channels() {
    const N: usize = 5;
    let ports = free_ports(N);
    let keys: Vec<NodeKey> = (0..N).map(key).collect();
    let mut nodes: Vec<Started> = (0..N)
        .map(|i| {
            // Node i dials every node after it: each pair is configured once.
            let peers = (i + 1..N).map(|j| address(&keys[j], ports[j])).collect();
            start(
                config(ports[i], peers),
                keys[i].clone(),
                Box::new(MemoryPeerStore::new()),
            )
        })
        .collect();
    let ids: Vec<NodeId> = keys.iter().map(NodeKey::node_id).collect();
    for (i, node) in nodes.iter().enumerate() {
        let others: BTreeSet<NodeId> = ids.iter().copied().filter(|&id| id != ids[i]).collect();
        within(
            &format!("node {i} to see its 4 peers up"),
            wait_up(&node.updates, &others),
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        let connected = smol::block_on(node.handle.connected_peers()).unwrap();
        assert_eq!(connected.len(), N - 1, "node {i} connected peers");
    }

    // Wrapper channel: nodes 1..5 run the echo reactor; node 0 pings each of them.
    for node in nodes.iter_mut().skip(1) {
        let channel = node.echo.take().unwrap();
        node.handle.spawn(echo::run_echo(channel)).detach();
    }
    let pinger = nodes[0].echo.take().unwrap();
    within("pings to be sent", async {
        for (j, &peer) in ids.iter().enumerate().skip(1) {
            let ping = EchoInner::Ping(Ping {
                payload: Bytes::from(format!("ping-{j}")),
            });
            pinger
                .outbound
                .send(Envelope::to_peer(peer, ping))
                .await
                .unwrap();
        }
    });
    let mut pongs = BTreeMap::new();
    within("a pong from every echo node", async {
        while pongs.len() < N - 1 {
            let envelope = pinger.inbound.recv().await.unwrap();
            assert_eq!(envelope.channel, ECHO);
            let EchoInner::Pong(pong) = envelope.message else {
                panic!("node 0 got a ping back, expected pongs only");
            };
            pongs.insert(envelope.from.unwrap(), pong.payload);
        }
    });
    for (j, &peer) in ids.iter().enumerate().skip(1) {
        assert_eq!(
            pongs[&peer],
            Bytes::from(format!("ping-{j}")),
            "pong of node {j}"
        );
    }

    // Raw channel: every node broadcasts; every node hears each other node exactly once.
    for (i, node) in nodes.iter().enumerate() {
        within("a broadcast to be sent", async {
            node.raw
                .outbound
                .send(Envelope::broadcast(Bytes::from(vec![i as u8; 1000 + i])))
                .await
                .unwrap();
        });
    }
    for (i, node) in nodes.iter().enumerate() {
        let mut heard = BTreeMap::new();
        within(&format!("node {i} to hear every broadcast"), async {
            while heard.len() < N - 1 {
                let envelope = node.raw.inbound.recv().await.unwrap();
                let from = envelope.from.unwrap();
                assert!(
                    heard.insert(from, envelope.message).is_none(),
                    "duplicate from {from}"
                );
            }
        });
        for (j, &peer) in ids.iter().enumerate().filter(|&(j, _)| j != i) {
            assert_eq!(
                heard[&peer],
                Bytes::from(vec![j as u8; 1000 + j]),
                "node {i} from {j}"
            );
        }
    }
    for node in nodes {
        within("stop", node.handle.stop());
    }
}

fn redb(dir: &Path) -> Box<dyn PeerStore + Send> {
    Box::new(RedbPeerStore::open(dir.join("peers.redb")).unwrap())
}

#[test]
fn a_restarted_node_reconnects_to_its_peers_from_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<NodeKey> = (10..13).map(key).collect();
    let ids: BTreeSet<NodeId> = keys[1..].iter().map(NodeKey::node_id).collect();
    let any = || "127.0.0.1:0".parse().unwrap();
    // Nodes 1 and 2 only listen; node 0 knows them from its configuration.
    let b = start(
        config(any(), vec![]),
        keys[1].clone(),
        Box::new(MemoryPeerStore::new()),
    );
    let c = start(
        config(any(), vec![]),
        keys[2].clone(),
        Box::new(MemoryPeerStore::new()),
    );
    let peers = vec![
        address(&keys[1], b.handle.local_addr()),
        address(&keys[2], c.handle.local_addr()),
    ];
    let a = start(config(any(), peers), keys[0].clone(), redb(dir.path()));
    within("first run to reach both peers", wait_up(&a.updates, &ids));
    within("first run to stop", a.handle.stop());
    let a_id = keys[0].node_id();
    for (name, node) in [("b", &b), ("c", &c)] {
        within(&format!("{name} to see the first run go down"), async {
            loop {
                let update = node.updates.recv().await.unwrap();
                if update.node_id == a_id && update.status == PeerStatus::Down {
                    return;
                }
            }
        });
    }

    // Same key, same store, no configured peers: only the store knows b and c.
    let a = start(config(any(), vec![]), keys[0].clone(), redb(dir.path()));
    within(
        "restarted node to reach both peers again",
        wait_up(&a.updates, &ids),
    );
    for node in [a, b, c] {
        within("stop", node.handle.stop());
    }
}

#[test]
fn stop_delivers_every_message_already_sent() {
    const MESSAGES: usize = 500;
    const SIZE: usize = 4000;
    let any = || "127.0.0.1:0".parse().unwrap();
    let (ka, kb) = (key(20), key(21));
    let b = start(
        config(any(), vec![]),
        kb.clone(),
        Box::new(MemoryPeerStore::new()),
    );
    let peers = vec![address(&kb, b.handle.local_addr())];
    let a = start(
        config(any(), peers),
        ka.clone(),
        Box::new(MemoryPeerStore::new()),
    );
    let only_b = BTreeSet::from([kb.node_id()]);
    within("a to reach b", wait_up(&a.updates, &only_b));

    within("the sends to be accepted", async {
        for n in 0..MESSAGES {
            let mut message = vec![(n % 251) as u8; SIZE];
            message[..8].copy_from_slice(&(n as u64).to_be_bytes());
            a.raw
                .outbound
                .send(Envelope::to_peer(kb.node_id(), Bytes::from(message)))
                .await
                .unwrap();
        }
    });
    // Stop right away: most messages are still queued in the router or the connection.
    within("a to stop", a.handle.stop());
    let mut received = Vec::new();
    within(&format!("b to receive all {MESSAGES} messages"), async {
        while received.len() < MESSAGES {
            let envelope = b.raw.inbound.recv().await.unwrap();
            assert_eq!(envelope.from, Some(ka.node_id()));
            received.push(envelope.message);
        }
    });
    for (n, message) in received.iter().enumerate() {
        assert_eq!(message.len(), SIZE);
        assert_eq!(
            message[..8],
            (n as u64).to_be_bytes(),
            "message {n} in order"
        );
    }
    within("b to stop", b.handle.stop());
}

#[test]
fn raw_echo_reactor_sends_every_message_back_to_its_sender() {
    let any = || "127.0.0.1:0".parse().unwrap();
    let (ka, kb) = (key(30), key(31));
    let b = start(
        config(any(), vec![]),
        kb.clone(),
        Box::new(MemoryPeerStore::new()),
    );
    let peers = vec![address(&kb, b.handle.local_addr())];
    let a = start(
        config(any(), peers),
        ka.clone(),
        Box::new(MemoryPeerStore::new()),
    );
    within(
        "a to reach b",
        wait_up(&a.updates, &BTreeSet::from([kb.node_id()])),
    );
    let Started { handle, raw, .. } = b;
    handle.spawn(echo::run_raw_echo(raw)).detach();
    let sizes = [0usize, 1, 1024, 1025, 70_000];
    within("the echoes", async {
        for &size in &sizes {
            let message = Bytes::from(vec![size as u8; size]);
            a.raw
                .outbound
                .send(Envelope::to_peer(kb.node_id(), message))
                .await
                .unwrap();
        }
        for &size in &sizes {
            let envelope = a.raw.inbound.recv().await.unwrap();
            assert_eq!(envelope.from, Some(kb.node_id()));
            assert_eq!(envelope.message, Bytes::from(vec![size as u8; size]));
        }
    });
    within("stop", a.handle.stop());
    within("stop", handle.stop());
}

#[test]
fn a_peer_named_by_hostname_is_resolved_and_dialed() {
    let any = || "127.0.0.1:0".parse().unwrap();
    let (ka, kb) = (key(40), key(41));
    let b = start(
        config(any(), vec![]),
        kb.clone(),
        Box::new(MemoryPeerStore::new()),
    );
    let port = b.handle.local_addr().port();
    let named = NodeAddress::parse(&format!("{}@localhost:{port}", kb.node_id())).unwrap();
    let a = start(
        config(any(), vec![named]),
        ka,
        Box::new(MemoryPeerStore::new()),
    );
    within(
        "a to reach b through a DNS lookup of localhost",
        wait_up(&a.updates, &BTreeSet::from([kb.node_id()])),
    );
    within("stop", a.handle.stop());
    within("stop", b.handle.stop());
}

#[test]
fn admission_refuses_before_any_handshake_byte() {
    use std::io::Read;
    let mut config = config("127.0.0.1:0".parse().unwrap(), vec![]);
    config.router.max_incoming_per_ip = 1;
    let node = start(config, key(50), Box::new(MemoryPeerStore::new()));
    let at = node.handle.local_addr();
    let mut first = std::net::TcpStream::connect(at).unwrap();
    first.set_read_timeout(Some(WAIT)).unwrap();
    let mut ephemeral = [0u8; 34];
    first.read_exact(&mut ephemeral).unwrap();
    // The first connection holds the one slot: the second is closed unanswered.
    let mut second = std::net::TcpStream::connect(at).unwrap();
    second.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    match second.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "refused connection got handshake bytes"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    drop(first);
    within("stop", node.handle.stop());
}

/// The application's own executor: one thread it runs itself (until the sender is used
/// or dropped), shared by the nodes started on it.
struct AppExecutor {
    executor: std::sync::Arc<smol::Executor<'static>>,
    quit: smol::channel::Sender<()>,
    runner: std::thread::JoinHandle<Result<(), smol::channel::RecvError>>,
}

impl AppExecutor {
    fn start() -> Self {
        let executor = std::sync::Arc::new(smol::Executor::new());
        let (quit, quit_rx) = smol::channel::bounded::<()>(1);
        let runner = {
            let executor = std::sync::Arc::clone(&executor);
            std::thread::spawn(move || smol::block_on(executor.run(quit_rx.recv())))
        };
        AppExecutor {
            executor,
            quit,
            runner,
        }
    }

    fn finish(self) {
        self.quit.try_send(()).unwrap();
        self.runner.join().unwrap().unwrap();
    }
}

/// A builder with the raw channel and a peer-update subscription.
fn raw_builder(config: NodeConfig, key: NodeKey) -> (NodeBuilder, Channel<Bytes>, PeerUpdates) {
    let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).unwrap();
    let raw = builder.open_raw_channel(descriptor(RAW)).unwrap();
    let updates = builder.subscribe();
    (builder, raw, updates)
}

#[test]
fn two_nodes_run_on_the_applications_own_executor() {
    let any = || "127.0.0.1:0".parse().unwrap();
    let (ka, kb) = (key(50), key(51));
    // The application's executor: one thread it runs itself, shared by both nodes.
    let app = AppExecutor::start();
    let executor = &app.executor;
    let (builder_b, raw_b, _updates_b) = raw_builder(config(any(), vec![]), kb.clone());
    let b = within("b to start", builder_b.start_on(executor.clone())).unwrap();
    let peers = vec![address(&kb, b.local_addr())];
    let (builder_a, raw_a, updates_a) = raw_builder(config(any(), peers), ka.clone());
    let a = within("a to start", builder_a.start_on(executor.clone())).unwrap();
    within(
        "a to reach b",
        wait_up(&updates_a, &BTreeSet::from([kb.node_id()])),
    );
    within("a message from a to b", async {
        let message = Bytes::from_static(b"on the application's executor");
        raw_a
            .outbound
            .send(Envelope::to_peer(kb.node_id(), message.clone()))
            .await
            .unwrap();
        let envelope = raw_b.inbound.recv().await.unwrap();
        assert_eq!(
            (envelope.from, envelope.message),
            (Some(ka.node_id()), message)
        );
    });
    within("both to stop", async {
        a.stop().await;
        b.stop().await;
    });
    // The nodes are gone; the application's executor is not.
    assert_eq!(within("the executor", executor.spawn(async { 7 })), 7);
    app.finish();
}

/// A node on the application's executor whose handle is dropped without `stop`: its
/// connection tasks, which that executor keeps running, end with the router task, so its
/// peers see it go `Down` at once instead of at their next ping timeout.
#[test]
fn dropping_a_handle_on_the_applications_executor_ends_its_connections() {
    let any = || "127.0.0.1:0".parse().unwrap();
    let (ka, kb) = (key(52), key(53));
    let app = AppExecutor::start();
    let executor = &app.executor;
    let (builder_b, _raw_b, updates_b) = raw_builder(config(any(), vec![]), kb.clone());
    let b = within("b to start", builder_b.start_on(executor.clone())).unwrap();
    let peers = vec![address(&kb, b.local_addr())];
    let (builder_a, _raw_a, _updates_a) = raw_builder(config(any(), peers), ka.clone());
    let a = within("a to start", builder_a.start_on(executor.clone())).unwrap();
    within(
        "b to see a",
        wait_up(&updates_b, &BTreeSet::from([ka.node_id()])),
    );
    let dropped = std::time::Instant::now();
    drop(a);
    within("b to see a go down", async {
        loop {
            let update = updates_b.recv().await.unwrap();
            if update.node_id == ka.node_id() && update.status == PeerStatus::Down {
                return;
            }
        }
    });
    let took = dropped.elapsed();
    assert!(took < Duration::from_secs(5), "a went down after {took:?}");
    within("b to stop", b.stop());
    app.finish();
}

/// Connects to `addr` `count` times (keeping every connection open), each within `timeout`;
/// returns how many completed before the first that did not.
fn connects_until_refused(addr: SocketAddr, count: usize, timeout: Duration) -> usize {
    let mut open = Vec::new();
    for _ in 0..count {
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => open.push(stream),
            Err(_) => break,
        }
    }
    open.len()
}

#[test]
fn the_listen_backlog_holds_a_burst_the_node_has_not_accepted_yet() {
    // A built but not started node: its listener is bound and listening, nothing accepts,
    // so every connection waits in the kernel's accept queue, whose length is the backlog.
    let any = || "127.0.0.1:0".parse().unwrap();
    let builder = NodeBuilder::new(
        config(any(), vec![]),
        key(60),
        Box::new(MemoryPeerStore::new()),
    )
    .unwrap();
    let burst = 300; // more than the 128 that std's listener would queue
    assert_eq!(
        connects_until_refused(builder.local_addr(), burst, Duration::from_secs(2)),
        burst,
        "the default backlog (1024) holds the whole burst"
    );
    drop(builder);

    // The setting is what decides: with a backlog of 4, the queue fills after a handful.
    let mut small = config(any(), vec![]);
    small.listen_backlog = 4;
    let builder = NodeBuilder::new(small, key(61), Box::new(MemoryPeerStore::new())).unwrap();
    let held = connects_until_refused(builder.local_addr(), 50, Duration::from_millis(300));
    assert!(held < 50, "a backlog of 4 held {held} connections");
}
