//! A peer that sends right after its handshake and closes at once: everything it sent
//! reaches the application, on both drivers. Core `Link` holds the peer's `Closed` until
//! the node's verdict on the peer and then until the application took the messages; over
//! real sockets whether the close arrives before the verdict depends on timing, so the
//! exact order (close first, verdict after) is pinned down by core's `node::link` tests.
//! The peer is the reference peer's handshake and framing (tendermint-p2p and
//! tendermint-proto only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::NodeKey;
use tmp2p_tests::reference_peer::{handshake, reference_info, write_message};
use tmp2p_tests::smol_support::descriptor;

const NETWORK: &str = "early-close";
const CHANNEL: u8 = 0x30;
const COUNT: u8 = 50;
const PEER_SEED: [u8; 32] = [3; 32];

fn config() -> NodeConfig {
    let mut config = NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap());
    config.router.incoming_window = Duration::ZERO;
    config
}

/// Handshakes with the node at `addr`, writes `COUNT` messages and closes, without reading
/// anything more.
fn send_and_close(addr: SocketAddr) {
    let stream = TcpStream::connect(addr).unwrap();
    let info = reference_info(PEER_SEED, NETWORK, &[CHANNEL]);
    let mut peer = handshake(stream, PEER_SEED, &info).unwrap();
    for i in 0..COUNT {
        write_message(&mut peer.conn, CHANNEL, &[i; 100]).unwrap();
    }
}

fn expected() -> Vec<u8> {
    (0..COUNT).collect()
}

#[test]
fn mio_a_peer_that_closes_before_its_admission_is_still_heard() {
    use tmp2p_driver_mio::{AppEvent, DriverSetup, RunningNode};

    let setup = DriverSetup::new(
        config(),
        NodeKey::from_seed([1; 32]),
        vec![descriptor(CHANNEL)],
    );
    let node = RunningNode::spawn(setup, 1024).unwrap();
    send_and_close(node.local_addr());
    let inbound = node.inbound().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < usize::from(COUNT) {
        let left = deadline.saturating_duration_since(Instant::now());
        match inbound.recv_timeout(left).unwrap() {
            Some(AppEvent::Message(envelope)) => got.push(envelope.message[0]),
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(got, expected());
    assert_eq!(node.handle().counters().undelivered_inbound, 0);
    node.stop().unwrap();
}

#[test]
fn smol_a_peer_that_closes_before_its_admission_is_still_heard() {
    use tmp2p_driver_smol::{NodeBuilder, PeerUpdates};
    use tmp2p_store::MemoryPeerStore;

    let key = NodeKey::from_seed([1; 32]);
    let store = Box::new(MemoryPeerStore::new());
    let mut builder = NodeBuilder::new(config(), key, store).unwrap();
    let channel = builder.open_raw_channel(descriptor(CHANNEL)).unwrap();
    let _updates: PeerUpdates = builder.subscribe();
    smol::block_on(async {
        let node = builder.start().await.unwrap();
        send_and_close(node.local_addr());
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < usize::from(COUNT) && Instant::now() < deadline {
            let next =
                futures_lite::future::or(async { channel.inbound.recv().await.ok() }, async {
                    smol::Timer::at(deadline).await;
                    None
                });
            match next.await {
                Some(envelope) => got.push(envelope.message[0]),
                None => break,
            }
        }
        assert_eq!(got, expected());
        assert_eq!(node.counters().undelivered_inbound, 0);
        node.stop().await;
    });
}
