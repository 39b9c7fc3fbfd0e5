//! A seed under churn (issue [seed]): a smol node in seed mode, holding a few hundred known
//! addresses, answers 1 000 short-lived clients over loopback TCP and disconnects each.
//! The clients are CometBFT nodes' first contact as the independent crates make it
//! (tendermint-p2p's handshake, tendermint-proto's `PexRequest` / `PexAddrs`:
//! `reference_peer::ask_seed`), each with a new node id, four at a time. CometBFT's rules
//! are checked on every answer: at most 250 addresses, never the asker's own, then the
//! close; and the seed keeps no connection afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::NodeKey;
use tmp2p_driver_smol::NodeBuilder;
use tmp2p_store::MemoryPeerStore;
use tmp2p_tests::reference_peer::{ask_seed, reference_info};
use tmp2p_tests::smol_support::within;

const NETWORK: &str = "seed-churn";
const CLIENTS: usize = 1000;
const THREADS: usize = 4;
/// Known addresses the seed starts with: more than one answer holds.
const KNOWN: usize = 300;

/// A known peer's address: on loopback (a seed crawls what it knows, and these dials must
/// stay on this machine; port 9 refuses them at once), two per IP group (the store keeps
/// at most 32 addresses per group).
fn known(i: usize) -> NodeAddress {
    let mut seed = [0xA5u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let id = NodeKey::from_seed(seed).node_id();
    let ip = format!("127.{}.{}.1", i % 250 + 1, i / 250);
    NodeAddress::parse(&format!("{id}@{ip}:9")).unwrap()
}

fn client_seed(i: usize) -> [u8; 32] {
    let mut seed = [0x5Cu8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed
}

#[test]
fn a_seed_answers_and_disconnects_a_thousand_clients() {
    let mut config = NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap());
    // Hold every known address (the default keeps 260 peers); take connections as fast as
    // the clients come.
    config.router.peer_manager.max_peers = 2000;
    config.router.peer_manager.max_connected = 1000;
    config.router.incoming_window = Duration::ZERO;
    let key = NodeKey::from_seed([0x33; 32]);
    let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).unwrap();
    builder
        .enable_pex(PexConfig {
            seed_mode: true,
            ..PexConfig::default()
        })
        .unwrap();
    let node = within("the seed to start", builder.start()).unwrap();
    within("the known addresses to be added", async {
        for i in 0..KNOWN {
            node.add_peer(known(i)).await.unwrap();
        }
    });
    let addr: SocketAddr = node.local_addr();

    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (next, answered) = (next.clone(), answered.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CLIENTS {
                    return;
                }
                let seed = client_seed(i);
                let info = reference_info(seed, NETWORK, &[0x00]);
                let stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                let answer = ask_seed(stream, seed, &info, Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("client {i}: {e}"));
                let count = answer.addresses.len();
                assert!((1..=250).contains(&count), "client {i}: {count} addresses");
                assert!(
                    answer
                        .addresses
                        .iter()
                        .all(|a| a.id != info.default_node_id),
                    "client {i} was handed its own address"
                );
                assert!(answer.closed, "client {i}: the seed kept the connection");
                answered.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(answered.load(Ordering::Relaxed), CLIENTS);
    // Nothing is left connected once the clients are gone.
    within("the seed to drop every client", async {
        loop {
            if node.connected_peers().await.unwrap().is_empty() {
                break;
            }
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    });
    within("the seed to stop", node.stop());
}
