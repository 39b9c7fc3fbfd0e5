//! A node stops while bytes its peer sent still wait unread in its socket, and while its own
//! last messages are still on their way to a peer that reads slowly. Closing a socket that
//! has unread input makes the kernel answer with a reset, which throws away what it had not
//! sent yet; both drivers instead write everything, half-close and read on to the peer's
//! EOF (core `Link`'s close phase), so the peer gets every message the node accepted, and
//! the stop ends when the peer closes too. The peer is the reference peer (tendermint-p2p
//! and tendermint-proto only), which closes its socket once it reads the end of stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_tests::reference_peer::{reference_info, RefEvent, ReferencePeer};
use tmp2p_tests::smol_support::descriptor;

const NETWORK: &str = "close-test";
const CHANNEL: u8 = 0x30;
/// What the node sends: 6.4 MB, more than loopback's socket buffers hold while the peer
/// reads slowly.
const OUT_COUNT: usize = 400;
const OUT_SIZE: usize = 16 * 1024;
const PEER_SEED: [u8; 32] = [2; 32];

fn config() -> NodeConfig {
    let mut config = NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap());
    config.router.incoming_window = Duration::ZERO;
    // The node holds little of what its application does not take, then stops reading:
    // the rest of the peer's flood waits unread in the socket.
    config.inbound_hold_bytes = 16 * 1024;
    // Far longer than the stop takes when the peer's EOF ends it.
    config.close_linger = LINGER;
    config
}

const LINGER: Duration = Duration::from_secs(20);

/// The peer read everything, saw our close as an end of stream (not a reset) and closed
/// too, and the node's stop ended on that, well before the close linger.
fn assert_clean_end(peer: &ReferencePeer, stop_took: Duration) {
    let (got, end) = received_until_closed(peer);
    assert_eq!(
        got, OUT_COUNT,
        "the peer saw the end after {got} messages: {end}"
    );
    // tendermint-p2p reads whole frames, so our end of stream reaches the peer as an
    // unexpected EOF in a frame; a reset would read "Connection reset by peer".
    let eof = ["eof", "failed to fill whole buffer"];
    assert!(
        eof.contains(&end.as_str()),
        "the peer's end of the connection: {end}"
    );
    assert!(stop_took < LINGER / 2, "the stop took {stop_took:?}");
}

/// The reference peer dials `addr`; it reads one packet (at most 1 KiB) per 100 µs.
fn dial(addr: SocketAddr) -> ReferencePeer {
    let stream = TcpStream::connect(addr).unwrap();
    let info = reference_info(PEER_SEED, NETWORK, &[CHANNEL]);
    ReferencePeer::start_paced(stream, PEER_SEED, info, Duration::from_micros(100)).unwrap()
}

/// The peer floods the node, which takes none of it, for long enough to fill the node's
/// hold budget and socket.
fn flood(peer: &ReferencePeer) {
    for i in 0..64u8 {
        peer.send(CHANNEL, vec![i; 4096]);
    }
    std::thread::sleep(Duration::from_millis(300));
}

fn message(i: usize) -> Bytes {
    Bytes::from(vec![(i % 251) as u8; OUT_SIZE])
}

/// How many messages the peer received on the channel, checked in order, until the
/// connection ended, and how it ended.
fn received_until_closed(peer: &ReferencePeer) -> (usize, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match peer.events.recv_timeout(left) {
            Ok(RefEvent::Message(CHANNEL, data)) => {
                assert_eq!(data, message(got), "message {got} differs");
                got += 1;
            }
            Ok(RefEvent::Closed(reason)) => return (got, reason),
            Ok(_) => {}
            Err(_) => panic!("the connection did not end; {got} messages"),
        }
    }
}

#[test]
fn mio_a_stop_with_unread_input_loses_nothing_it_accepted() {
    use tmp2p_core::router::Envelope;
    use tmp2p_driver_mio::{AppEvent, DriverSetup, RunningNode};

    let mut setup = DriverSetup::new(
        config(),
        NodeKey::from_seed([1; 32]),
        vec![descriptor(CHANNEL)],
    );
    setup.limits.max_pending_inbound = 1;
    let node = RunningNode::spawn(setup, 1).unwrap();
    let peer = dial(node.local_addr());
    let inbound = node.inbound().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let peer_id: NodeId = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match inbound.recv_timeout(left).unwrap() {
            Some(AppEvent::PeerUpdate(u)) if u.status == PeerStatus::Up => break u.node_id,
            Some(_) => {}
            None => panic!("the peer did not come up"),
        }
    };
    flood(&peer);
    for i in 0..OUT_COUNT {
        let envelope = Envelope::to_peer(peer_id, CHANNEL, message(i));
        node.handle().send(envelope).unwrap();
    }
    let stopping = Instant::now();
    node.stop().unwrap();
    assert_clean_end(&peer, stopping.elapsed());
}

#[test]
fn smol_a_stop_with_unread_input_loses_nothing_it_accepted() {
    use tmp2p_driver_smol::{DriverOptions, Envelope, NodeBuilder};
    use tmp2p_store::MemoryPeerStore;

    let options = DriverOptions {
        inbound_capacity: 1,
        ..DriverOptions::default()
    };
    let key = NodeKey::from_seed([1; 32]);
    let store = Box::new(MemoryPeerStore::new());
    let mut builder = NodeBuilder::with_options(config(), key, store, options).unwrap();
    let channel = builder.open_raw_channel(descriptor(CHANNEL)).unwrap();
    let updates = builder.subscribe();
    smol::block_on(async {
        let node = builder.start().await.unwrap();
        let peer = dial(node.local_addr());
        let peer_id = loop {
            let update = updates.recv().await.unwrap();
            if update.status == PeerStatus::Up {
                break update.node_id;
            }
        };
        flood(&peer);
        for i in 0..OUT_COUNT {
            let envelope = Envelope::to_peer(peer_id, message(i));
            channel.outbound.send(envelope).await.unwrap();
        }
        let stopping = Instant::now();
        node.stop().await;
        assert_clean_end(&peer, stopping.elapsed());
    });
}
