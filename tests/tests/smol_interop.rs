//! A smol node against the reference peer made of independent crates (tendermint-p2p's
//! SecretConnection, tendermint-proto's NodeInfo and Packets; `tmp2p_tests::reference_peer`)
//! over loopback TCP, in both dial directions: node info both ways, messages both ways on
//! two channels, and the node's peer update.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use tendermint_proto::v0_38::p2p::DefaultNodeInfo;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::typed::echo::EchoInner;
use tmp2p_core::typed::WrapperCodec;
use tmp2p_core::NodeKey;
use tmp2p_driver_smol::{Envelope, NodeBuilder};
use tmp2p_proto::echo::EchoMessage;
use tmp2p_store::MemoryPeerStore;
use tmp2p_tests::reference_peer::{reference_info, RefEvent, ReferencePeer};
use tmp2p_tests::smol_support::within;

const WAIT: Duration = Duration::from_secs(20);
const CHANNELS: [u8; 2] = [0x20, 0x21];
const THEIR_SEED: [u8; 32] = [0x42; 32];
const NETWORK: &str = "smol-interop";

fn their_info() -> DefaultNodeInfo {
    their_info_as(8, "0.38.25")
}

/// The reference peer's node info with another p2p protocol version and version string.
fn their_info_as(p2p: u64, version: &str) -> DefaultNodeInfo {
    let mut info = reference_info(THEIR_SEED, NETWORK, &CHANNELS);
    if let Some(versions) = &mut info.protocol_version {
        versions.p2p = p2p;
    }
    info.version = version.into();
    info
}

fn message(channel: u8, size: usize) -> Vec<u8> {
    (0..size).map(|i| (i as u8) ^ channel).collect()
}

fn run(we_dial: bool) {
    run_with(we_dial, their_info());
}

fn run_with(we_dial: bool, info: DefaultNodeInfo) {
    let key = NodeKey::from_seed([0x17; 32]);
    let their_id = NodeKey::from_seed(THEIR_SEED).node_id();
    let mut config = NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap());
    config.moniker = "smol".into();
    let mut builder =
        NodeBuilder::new(config, key.clone(), Box::new(MemoryPeerStore::new())).unwrap();
    let channels: Vec<_> = CHANNELS
        .iter()
        .map(|&id| {
            builder
                .open_raw_channel(ChannelDescriptor {
                    id,
                    priority: 5,
                    send_queue_capacity: 8,
                    recv_message_capacity: 1 << 20,
                })
                .unwrap()
        })
        .collect();
    let updates = builder.subscribe();
    let node = smol::block_on(builder.start()).unwrap();

    let stream = if we_dial {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let address = NodeAddress::parse(&format!("{their_id}@{at}")).unwrap();
        assert!(within("add_peer", node.add_peer(address)).unwrap());
        listener.accept().unwrap().0
    } else {
        TcpStream::connect(node.local_addr()).unwrap()
    };
    let reference = thread::spawn(move || ReferencePeer::start(stream, THEIR_SEED, info))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(reference.remote_id, key.node_id().to_string());
    assert_eq!(reference.their_info.network, NETWORK);
    assert_eq!(reference.their_info.channels, CHANNELS.to_vec());
    assert_eq!(reference.their_info.moniker, "smol");
    let update = within("the peer update", updates.recv()).unwrap();
    assert_eq!(update.node_id, their_id);
    assert_eq!(update.status, PeerStatus::Up);
    assert_eq!(update.channels, vec![0x20, 0x21]);

    // Reference → node, on both channels, chunked by the reference peer.
    for (k, &channel) in CHANNELS.iter().enumerate() {
        reference.send(channel, message(channel, 3000 + k));
    }
    for (k, (&channel, ours)) in CHANNELS.iter().zip(&channels).enumerate() {
        let envelope = within("a message from the reference peer", ours.inbound.recv()).unwrap();
        assert_eq!(envelope.from, Some(their_id));
        assert_eq!(envelope.channel, channel);
        assert_eq!(envelope.message, Bytes::from(message(channel, 3000 + k)));
    }

    // Node → reference, on both channels.
    for (k, (&channel, ours)) in CHANNELS.iter().zip(&channels).enumerate() {
        let payload = Bytes::from(message(channel, 5000 + k));
        within(
            "a send",
            ours.outbound.send(Envelope::to_peer(their_id, payload)),
        )
        .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < CHANNELS.len() {
        match reference.events.recv_timeout(WAIT).unwrap() {
            RefEvent::Message(channel, data) => got.push((channel, data)),
            RefEvent::Ping | RefEvent::Pong => {}
            RefEvent::Closed(reason) => panic!("reference peer closed: {reason}"),
        }
    }
    got.sort();
    for (k, &channel) in CHANNELS.iter().enumerate() {
        assert_eq!(got[k], (channel, message(channel, 5000 + k)));
    }

    within("stop", node.stop());
    loop {
        match reference.events.recv_timeout(WAIT).unwrap() {
            RefEvent::Closed(_) => break,
            other => assert!(
                matches!(other, RefEvent::Ping | RefEvent::Pong),
                "{other:?}"
            ),
        }
    }
}

#[test]
fn smol_node_dials_the_reference_peer() {
    run(true);
}

#[test]
fn reference_peer_dials_the_smol_node() {
    run(false);
}

/// CometBFT v1.x advertises p2p 9 (v0.34..v0.40: 8); compatibility rests on the block
/// version, the network and a shared channel only, never on p2p or the version string.
#[test]
fn a_peer_advertising_another_p2p_dialect_is_accepted() {
    run_with(false, their_info_as(9, "1.0.1"));
    run_with(true, their_info_as(u64::MAX, "v2-custom+build"));
}

#[test]
fn an_undecodable_message_disconnects_its_sender() {
    let mut config = NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap());
    config.moniker = "smol".into();
    let key = NodeKey::from_seed([0x18; 32]);
    let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).unwrap();
    let descriptor = |id| ChannelDescriptor {
        id,
        priority: 5,
        send_queue_capacity: 8,
        recv_message_capacity: 1 << 20,
    };
    let echo = builder
        .open_channel(
            descriptor(0x20),
            WrapperCodec::<EchoMessage, EchoInner>::new(),
        )
        .unwrap();
    let _raw = builder.open_raw_channel(descriptor(0x21)).unwrap();
    let updates = builder.subscribe();
    let node = smol::block_on(builder.start()).unwrap();
    let stream = TcpStream::connect(node.local_addr()).unwrap();
    let reference = ReferencePeer::start(stream, THEIR_SEED, their_info()).unwrap();
    let up = within("the peer to come up", updates.recv()).unwrap();
    assert_eq!(up.status, PeerStatus::Up);
    // Field 1 with wire type 7, which does not exist: not an EchoMessage.
    reference.send(0x20, vec![0x0f]);
    let down = within("the peer to be disconnected", updates.recv()).unwrap();
    assert_eq!((down.node_id, down.status), (up.node_id, PeerStatus::Down));
    loop {
        match reference.events.recv_timeout(WAIT).unwrap() {
            RefEvent::Closed(_) => break,
            RefEvent::Message(channel, data) => panic!("unexpected message {channel} {data:?}"),
            RefEvent::Ping | RefEvent::Pong => {}
        }
    }
    assert!(
        echo.inbound.try_recv().is_err(),
        "nothing half-parsed was delivered"
    );
    within("stop", node.stop());
}
