//! Two seeds of different networks on one listen address (issue [seed]: a seed operator
//! serves many chains on one port), through the smol driver's `SharedListener`. The
//! clients are CometBFT nodes' first contact as the independent crates make it
//! (tendermint-p2p's handshake writes its NodeInfo, then reads ours; tendermint-proto's
//! `PexRequest` / `PexAddrs`), each of one network: each is answered with its own network's
//! NodeInfo and only its own network's addresses, then let go; a client of a network
//! nobody serves is told another network and refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;

use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::NodeKey;
use tmp2p_driver_smol::{
    DriverError, DriverOptions, NodeBuilder, NodeHandle, SharedLimits, SharedListener,
};
use tmp2p_store::MemoryPeerStore;
use tmp2p_tests::reference_peer::{ask_seed, handshake, reference_info};
use tmp2p_tests::smol_support::within;

const NETWORKS: [&str; 2] = ["chain-a", "chain-b"];
/// Known addresses per network.
const KNOWN: usize = 20;

/// A known peer of network `n` (on loopback, port 9: the seed's crawl of it fails at once).
fn known(n: usize, i: usize) -> NodeAddress {
    let mut seed = [0x40 + n as u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let id = NodeKey::from_seed(seed).node_id();
    NodeAddress::parse(&format!("{id}@127.{}.{}.1:9", n + 1, i + 1)).unwrap()
}

/// An executor run by two threads for as long as the test runs.
fn running_executor() -> Arc<smol::Executor<'static>> {
    let executor = Arc::new(smol::Executor::new());
    for _ in 0..2 {
        let executor = Arc::clone(&executor);
        std::thread::spawn(move || smol::block_on(executor.run(future::pending::<()>())));
    }
    executor
}

fn client_seed(i: usize) -> [u8; 32] {
    let mut seed = [0x6Du8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed
}

fn seed_node(network: &str, key: &NodeKey, shared: &SharedListener) -> NodeBuilder {
    seed_node_with(network, key, shared, Duration::from_secs(20))
}

fn seed_node_with(
    network: &str,
    key: &NodeKey,
    shared: &SharedListener,
    handshake_timeout: Duration,
) -> NodeBuilder {
    let mut config = NodeConfig::new(network, shared.local_addr());
    config.router.incoming_window = Duration::ZERO;
    config.router.connection.handshake_timeout = handshake_timeout;
    let mut builder = NodeBuilder::on_shared_listener(
        config,
        key.clone(),
        Box::new(MemoryPeerStore::new()),
        DriverOptions::default(),
        shared,
    )
    .unwrap();
    builder
        .enable_pex(PexConfig {
            seed_mode: true,
            ..PexConfig::default()
        })
        .unwrap();
    builder
}

#[test]
fn each_dialer_meets_the_seed_of_its_own_network_on_one_shared_address() {
    let key = NodeKey::from_seed([0x77; 32]);
    let shared = SharedListener::bind("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let addr: SocketAddr = shared.local_addr();
    let executor = running_executor();
    let nodes: Vec<NodeHandle> = NETWORKS
        .iter()
        .map(|network| {
            let builder = seed_node(network, &key, &shared);
            within("a seed to start", builder.start_on(Arc::clone(&executor)))
        })
        .map(Result::unwrap)
        .collect();
    assert!(nodes.iter().all(|node| node.local_addr() == addr));
    within("the known addresses to be added", async {
        for (n, node) in nodes.iter().enumerate() {
            for i in 0..KNOWN {
                node.add_peer(known(n, i)).await.unwrap();
            }
        }
    });
    let serving = shared
        .serve(
            &executor,
            &nodes.iter().collect::<Vec<_>>(),
            SharedLimits::default(),
        )
        .unwrap();

    // Each network's ids: its known peers and its clients (a seed learns and hands out the
    // listen addresses of the peers that visit it).
    let client_id = |i: usize| reference_info(client_seed(i), "", &[]).default_node_id;
    let ids: Vec<BTreeSet<String>> = (0..NETWORKS.len())
        .map(|n| {
            let known_ids = (0..KNOWN).map(|i| known(n, i).node_id.to_string());
            let clients = (n..40).step_by(NETWORKS.len()).map(client_id);
            known_ids.chain(clients).collect()
        })
        .collect();
    // Clients of both networks, interleaved, two at a time.
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let ids = ids.clone();
            std::thread::spawn(move || {
                for i in (t..40).step_by(2) {
                    let n = i % NETWORKS.len();
                    let seed = client_seed(i);
                    let info = reference_info(seed, NETWORKS[n], &[0x00]);
                    let stream = TcpStream::connect(addr).unwrap();
                    let answer = ask_seed(stream, seed, &info, Duration::from_secs(10))
                        .unwrap_or_else(|e| panic!("client {i} of {}: {e}", NETWORKS[n]));
                    assert!(!answer.addresses.is_empty(), "client {i}: no addresses");
                    for address in &answer.addresses {
                        assert!(
                            ids[n].contains(&address.id),
                            "client {i} of {} was handed {} (not of its network)",
                            NETWORKS[n],
                            address.id
                        );
                    }
                    assert!(answer.closed, "client {i}: the seed kept the connection");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // The NodeInfo each dialer reads names its own network.
    for network in NETWORKS {
        let seed = client_seed(100);
        let info = reference_info(seed, network, &[0x00]);
        let shaken = handshake(TcpStream::connect(addr).unwrap(), seed, &info).unwrap();
        assert_eq!(shaken.their_info.network, network);
        assert_eq!(shaken.remote_id, key.node_id().to_string());
    }
    // A network nobody serves: told the first one, then refused.
    let seed = client_seed(101);
    let info = reference_info(seed, "chain-c", &[0x00]);
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let shaken = handshake(socket.try_clone().unwrap(), seed, &info).unwrap();
    assert_eq!(shaken.their_info.network, NETWORKS[0]);
    let mut rest = Vec::new();
    let closed = (&socket).read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "the refused client was not let go: {closed:?}"
    );
    // The accept loop counts each hand-over once the handshake task reports back.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let counts = loop {
        let counts = serving.counters().snapshot();
        if counts.handed_over >= 43 || std::time::Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(counts.handed_over, 40 + 3, "{counts:?}");
    assert_eq!(counts.unknown_network, 1, "{counts:?}");
    assert_eq!((counts.failed, counts.refused_busy), (0, 0), "{counts:?}");
    // Every answered client is gone again.
    within("the seeds to drop every client", async {
        for node in &nodes {
            while !node.connected_peers().await.unwrap().is_empty() {
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        }
    });
    drop(serving);
    for node in nodes {
        within("a seed to stop", node.stop());
    }
}

/// What the listener sends a fresh connection first: the start of our handshake (its
/// ephemeral key) when admitted, nothing (the connection closed at once) when refused.
fn first_bytes(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = (&stream)
        .read(&mut buf)
        .unwrap_or_else(|e| panic!("neither bytes nor a close within 10 s: {e}"));
    (stream, buf[..n].to_vec())
}

/// One IP cannot hold more handshakes than its share: past it, a connection is closed at
/// once, before any crypto; a slot comes back when its connection ends, and a real dialer
/// is answered as before.
#[test]
fn one_ip_holds_at_most_its_share_of_handshakes_in_flight() {
    let key = NodeKey::from_seed([0x78; 32]);
    let shared = SharedListener::bind("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let addr = shared.local_addr();
    let executor = running_executor();
    let node = within(
        "a seed to start",
        seed_node(NETWORKS[0], &key, &shared).start_on(Arc::clone(&executor)),
    )
    .unwrap();
    let limits = SharedLimits {
        max_answering: 64,
        max_answering_per_ip: 2,
    };
    let serving = shared.serve(&executor, &[&node], limits).unwrap();
    // Two idle dialers from this IP take its share: each gets our ephemeral key.
    let (first, key_bytes) = first_bytes(addr);
    assert!(
        !key_bytes.is_empty(),
        "an admitted connection starts the handshake"
    );
    let (_second, key_bytes) = first_bytes(addr);
    assert!(!key_bytes.is_empty());
    let (_third, nothing) = first_bytes(addr);
    assert!(nothing.is_empty(), "a third is refused at once");
    assert_eq!(serving.counters().snapshot().refused_busy, 1);
    // The first leaves: its slot comes back (once the listener saw its end).
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_again, bytes) = first_bytes(addr);
        if !bytes.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
    }
    drop(_second);
    let seed = client_seed(200);
    let info = reference_info(seed, NETWORKS[0], &[0x00]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let shaken = loop {
        match handshake(TcpStream::connect(addr).unwrap(), seed, &info) {
            Ok(shaken) => break shaken,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(shaken.their_info.network, NETWORKS[0]);
    assert!(serving.counters().snapshot().failed >= 1);
    drop(serving);
    within("the seed to stop", node.stop());
}

/// `serve` takes only nodes built on its listener, of one key, each of its own network.
#[test]
fn a_shared_listener_refuses_nodes_it_cannot_answer_for() {
    let key = NodeKey::from_seed([0x79; 32]);
    let executor = running_executor();
    let start = |builder: NodeBuilder| {
        within("a node to start", builder.start_on(Arc::clone(&executor))).unwrap()
    };
    let listener = || SharedListener::bind("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let refusal = |shared: SharedListener, nodes: &[&NodeHandle]| match shared.serve(
        &executor,
        nodes,
        SharedLimits::default(),
    ) {
        Err(DriverError::Options(why)) => why,
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("served"),
    };
    assert!(refusal(listener(), &[]).contains("at least one network"));

    let own = NodeBuilder::new(
        NodeConfig::new(NETWORKS[0], "127.0.0.1:0".parse().unwrap()),
        key.clone(),
        Box::new(MemoryPeerStore::new()),
    )
    .unwrap();
    assert!(refusal(listener(), &[&start(own)]).contains("not built on this listener"));

    let shared = listener();
    let twice = [
        start(seed_node(NETWORKS[0], &key, &shared)),
        start(seed_node(NETWORKS[0], &key, &shared)),
    ];
    assert!(refusal(shared, &[&twice[0], &twice[1]]).contains("served twice"));

    let shared = listener();
    let other_key = NodeKey::from_seed([0x7A; 32]);
    let keys = [
        start(seed_node(NETWORKS[0], &key, &shared)),
        start(seed_node(NETWORKS[1], &other_key, &shared)),
    ];
    assert!(refusal(shared, &[&keys[0], &keys[1]]).contains("one key"));

    let shared = listener();
    let good = start(seed_node(NETWORKS[0], &key, &shared));
    assert!(shared
        .serve(&executor, &[&good], SharedLimits::default())
        .is_ok());
}

/// A dialer that never completes its handshake holds its slot (here the address's only
/// one) only until the handshake timeout: then the slot is free again and the failure is
/// counted.
#[test]
fn a_silent_dialer_gives_its_slot_back_at_the_handshake_timeout() {
    let key = NodeKey::from_seed([0x7B; 32]);
    let shared = SharedListener::bind("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let addr = shared.local_addr();
    let executor = running_executor();
    let builder = seed_node_with(NETWORKS[0], &key, &shared, Duration::from_secs(2));
    let node = within("a seed to start", builder.start_on(Arc::clone(&executor))).unwrap();
    let limits = SharedLimits {
        max_answering: 1,
        max_answering_per_ip: 8,
    };
    let serving = shared.serve(&executor, &[&node], limits).unwrap();
    let (silent, key_bytes) = first_bytes(addr);
    assert!(!key_bytes.is_empty());
    let (_refused, nothing) = first_bytes(addr);
    assert!(nothing.is_empty(), "the one slot of the address is taken");
    // The silent dialer is let go at the timeout: the socket reads its end.
    let mut rest = Vec::new();
    let ended = (&silent).read_to_end(&mut rest);
    assert!(ended.is_ok(), "the silent dialer was not let go: {ended:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let next = loop {
        let (next, bytes) = first_bytes(addr);
        if !bytes.is_empty() {
            break next;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
    };
    // Read while `next` still holds its slot: only the silent dialer failed so far.
    let counts = serving.counters().snapshot();
    assert_eq!(counts.failed, 1, "{counts:?}");
    assert!(counts.refused_busy >= 1, "{counts:?}");
    drop(next);
    drop(serving);
    within("the seed to stop", node.stop());
}
