//! `tmp2p crawl` over a large local network (issue [seed] part 4): how long the real binary
//! takes to find and census `CRAWL_NODES` nodes (default 1 000) by PEX alone, with its
//! default concurrency (or `CRAWL_CONCURRENCY`).
//!
//! The network runs in this process: smol-driver nodes on one shared two-thread executor,
//! each listening on 127.0.0.1 with PEX on and an in-memory peer store. Node i is given only
//! node i−1 as a bootstrap peer, so the crawl (started at node 0) has to walk the addresses
//! the nodes learned from each other. Each node dials at most 2 peers (16 connections in all), so
//! the network's sockets stay within the descriptor limit. The crawl is the binary
//! (`TMP2P_BIN`, by default `target/release/tmp2p`) in a process of its own.
//!
//! Run: `cargo build --release -p tmp2p-cli && cargo bench -p tmp2p-tests --bench crawl`
//! (`CRAWL_DEBUG=1` also prints the census and the crawl's debug log).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::Executor;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::NodeKey;
use tmp2p_driver_smol::{NodeBuilder, NodeHandle, PexConfig};
use tmp2p_store::MemoryPeerStore;
use tmp2p_tests::release_binary::tmp2p_binary;

const NETWORK: &str = "crawl-bench";
/// How long the network may settle (each node reaching its bootstrap peer and exchanging
/// addresses) before the crawl starts.
const SETTLE: Duration = Duration::from_secs(10);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts node `index` on `executor`, bootstrapping from `previous`.
fn start_node(
    index: usize,
    previous: Option<&NodeAddress>,
    executor: &Arc<Executor<'static>>,
) -> (NodeHandle, NodeAddress) {
    let mut config = NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap());
    config.moniker = format!("node-{index}");
    config.bootstrap_peers.extend(previous.cloned());
    config.router.incoming_window = Duration::ZERO;
    let peers = &mut config.router.peer_manager;
    peers.exempt_loopback = true;
    peers.max_connected = 16;
    peers.max_outgoing_connections = 2;
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
    let key = NodeKey::from_seed(seed);
    let id = key.node_id();
    let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).unwrap();
    builder.enable_pex(PexConfig::default()).unwrap();
    let node = smol::block_on(builder.start_on(Arc::clone(executor))).unwrap();
    let address = NodeAddress::parse(&format!("{id}@{}", node.local_addr())).unwrap();
    (node, address)
}

fn main() {
    // `cargo bench` passes `--bench`; this bench has no filters.
    let nodes = env_usize("CRAWL_NODES", 1000);
    let concurrency = std::env::var("CRAWL_CONCURRENCY").ok();
    let executor = Arc::new(Executor::new());
    let (quit, quit_rx) = smol::channel::bounded::<()>(1);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (executor, quit_rx) = (Arc::clone(&executor), quit_rx.clone());
            std::thread::spawn(move || smol::block_on(executor.run(quit_rx.recv())))
        })
        .collect();
    let started = Instant::now();
    let mut network: Vec<(NodeHandle, NodeAddress)> = Vec::with_capacity(nodes);
    for index in 0..nodes {
        let previous = network.last().map(|(_, address)| address.clone());
        network.push(start_node(index, previous.as_ref(), &executor));
    }
    println!(
        "crawl bench: {nodes} nodes started in {:.1}s; settling {SETTLE:?}",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(SETTLE);

    let start = network[0].1.to_string();
    let max_nodes = (nodes + 10).to_string();
    let mut args = vec![
        "crawl",
        &start,
        "--json",
        "--network",
        NETWORK,
        "--max-nodes",
        &max_nodes,
    ];
    if let Some(concurrency) = &concurrency {
        args.extend(["--concurrency", concurrency]);
    }
    let began = Instant::now();
    let output = Command::new(tmp2p_binary())
        .args(&args)
        .env(
            "RUST_LOG",
            if std::env::var_os("CRAWL_DEBUG").is_some() {
                "debug"
            } else {
                "error"
            },
        )
        .output()
        .unwrap();
    let took = began.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let census: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    if std::env::var_os("CRAWL_DEBUG").is_some() {
        eprintln!("{census:#}\n{}", String::from_utf8_lossy(&output.stderr));
    }
    let reached = census["summary"]["reached"].as_u64().unwrap_or(0);
    let found = census["summary"]["found"].as_u64().unwrap_or(0);
    println!(
        "crawl nodes={nodes} concurrency={}: found {found}, reached {reached} of {nodes} in {:.2}s ({:.0} nodes/s)",
        concurrency.as_deref().unwrap_or("default"),
        took.as_secs_f64(),
        reached as f64 / took.as_secs_f64()
    );
    smol::block_on(async {
        for (node, _) in network {
            node.stop().await;
        }
    });
    drop(quit);
    for thread in threads {
        let _ = thread.join();
    }
}
