//! Interop of tmp2p's full per-peer stack (`PeerConnection`: SecretConnection, node-info
//! exchange, MConnection) with a reference peer made of independent crates
//! (tendermint-p2p + tendermint-proto, see `tmp2p_tests::reference_peer`), over loopback
//! TCP, in both dial directions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tendermint_proto::v0_38::p2p::DefaultNodeInfo;
use tmp2p_core::connection::{Direction, PeerConfig, PeerEvent};
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_info::{NodeInfo, ProtocolVersions};
use tmp2p_core::NodeKey;
use tmp2p_tests::blocking_peer::{self, PeerCommand};
use tmp2p_tests::reference_peer::{reference_info, RefEvent, ReferencePeer};

const CHANNELS: [u8; 3] = [0x20, 0x21, 0x30];
const SIZES: [usize; 6] = [0, 1, 1000, 1024, 1025, 100_000];
const THEIR_SEED: [u8; 32] = [0x42; 32];
const WAIT: Duration = Duration::from_secs(20);

fn our_info(key: &NodeKey) -> NodeInfo {
    NodeInfo {
        protocol_version: ProtocolVersions {
            p2p: 8,
            block: 11,
            app: 0,
        },
        node_id: key.node_id(),
        listen_addr: "tcp://127.0.0.1:26656".into(),
        network: "interop-chain".into(),
        version: "0.1.0".into(),
        channels: CHANNELS.to_vec(),
        moniker: "tmp2p".into(),
        tx_index: "off".into(),
        rpc_address: String::new(),
    }
}

fn their_info() -> DefaultNodeInfo {
    reference_info(THEIR_SEED, "interop-chain", &CHANNELS)
}

fn message(channel: u8, size: usize, salt: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8) ^ channel ^ salt).collect()
}

fn config() -> PeerConfig {
    PeerConfig {
        channels: CHANNELS
            .iter()
            .map(|&id| ChannelDescriptor {
                id,
                priority: 5,
                send_queue_capacity: 8,
                recv_message_capacity: 1 << 20,
            })
            .collect(),
        ..PeerConfig::default()
    }
}

fn run(we_dial: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = thread::spawn(move || listener.accept().unwrap().0);
    let dialed = TcpStream::connect(addr).unwrap();
    let accepted = accept.join().unwrap();
    let (ours, theirs) = if we_dial {
        (dialed, accepted)
    } else {
        (accepted, dialed)
    };

    let key = NodeKey::from_seed([0x17; 32]);
    let their_id = NodeKey::from_seed(THEIR_SEED).node_id();
    let direction = if we_dial {
        Direction::Outbound { expected: their_id }
    } else {
        Direction::Inbound
    };
    let reference = thread::spawn(move || ReferencePeer::start(theirs, THEIR_SEED, their_info()));
    let us = blocking_peer::start(ours, key.clone(), our_info(&key), direction, config(), 1);
    let reference = reference.join().unwrap().unwrap();

    // Node info, both ways.
    assert_eq!(reference.remote_id, key.node_id().to_string());
    assert_eq!(
        reference.their_info.default_node_id,
        key.node_id().to_string()
    );
    assert_eq!(reference.their_info.network, "interop-chain");
    assert_eq!(reference.their_info.channels, CHANNELS.to_vec());
    assert!(
        reference.their_info.protocol_version.is_some() && reference.their_info.other.is_some()
    );
    match us.events.recv_timeout(WAIT).unwrap() {
        PeerEvent::Authenticated {
            node_info,
            public_key,
        } => {
            assert_eq!(node_info.node_id, their_id);
            assert_eq!(public_key.node_id(), their_id);
            assert_eq!(node_info.moniker, "reference");
            assert_eq!(node_info.version, "0.38.25");
        }
        other => panic!("{other:?}"),
    }

    // Pings both ways.
    us.commands.send(PeerCommand::Ping).unwrap();
    reference.ping();

    // Messages on three channels, interleaved, both directions at once.
    for (i, &size) in SIZES.iter().enumerate() {
        for &channel in &CHANNELS {
            let _ = i;
            us.commands
                .send(PeerCommand::Send(
                    channel,
                    Bytes::from(message(channel, size, 1)),
                ))
                .unwrap();
            reference.send(channel, message(channel, size, 2));
        }
    }

    let expected_per_channel = SIZES.len();
    let deadline = Instant::now() + WAIT;
    let mut ours_got: HashMap<u8, Vec<Vec<u8>>> = HashMap::new();
    let mut ref_got: HashMap<u8, Vec<Vec<u8>>> = HashMap::new();
    let (mut we_got_pong, mut ref_got_pong, mut ref_got_ping) = (false, false, false);
    let done = |m: &HashMap<u8, Vec<Vec<u8>>>| {
        CHANNELS
            .iter()
            .all(|c| m.get(c).map_or(0, Vec::len) == expected_per_channel)
    };
    while !(done(&ours_got) && done(&ref_got) && we_got_pong && ref_got_pong && ref_got_ping) {
        assert!(
            Instant::now() < deadline,
            "timed out: ours {ours_got:?} ref {ref_got:?}"
        );
        while let Ok(event) = us.events.try_recv() {
            match event {
                PeerEvent::Message { channel, message } => {
                    ours_got.entry(channel).or_default().push(message.to_vec())
                }
                PeerEvent::Pong { .. } => we_got_pong = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        while let Ok(event) = reference.events.try_recv() {
            match event {
                RefEvent::Message(channel, data) => ref_got.entry(channel).or_default().push(data),
                RefEvent::Pong => ref_got_pong = true,
                RefEvent::Ping => ref_got_ping = true,
                RefEvent::Closed(e) => panic!("reference peer closed: {e}"),
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    for &channel in &CHANNELS {
        for (i, &size) in SIZES.iter().enumerate() {
            assert!(
                ours_got[&channel][i] == message(channel, size, 2),
                "ours ch {channel} #{i}"
            );
            assert!(
                ref_got[&channel][i] == message(channel, size, 1),
                "ref ch {channel} #{i}"
            );
        }
    }
    us.commands.send(PeerCommand::Close).unwrap();
}

#[test]
fn we_dial_the_reference_peer() {
    run(true);
}

#[test]
fn the_reference_peer_dials_us() {
    run(false);
}
