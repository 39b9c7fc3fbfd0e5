//! Channel ids ≥ 0x80 as CometBFT sends on them (issue [wire]): Go's MConnection cuts every
//! message into 1024-byte chunks whatever the channel id, so a full final chunk on such a
//! channel is a 1035-byte packet, one byte above the limit Go itself enforces. We accept
//! it (and refuse one byte more), and we send at most 1034 bytes per packet there, so a Go
//! peer accepts ours.
//!
//! The packets come from tendermint-proto's encoder and the live peer is the reference
//! peer (tendermint-p2p + tendermint-proto, `tmp2p_tests::reference_peer`), whose reader
//! refuses any packet over 1034 bytes as Go's does: every echo that comes back intact also
//! shows our chunking keeps to Go's limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message;
use tendermint_proto::v0_38::p2p::{packet::Sum, DefaultNodeInfo, Packet, PacketMsg};
use tmp2p_core::mconn::{ChannelDescriptor, MConnConfig, MConnError, MConnEvent, MConnection};
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::router::Envelope;
use tmp2p_core::NodeKey;
use tmp2p_driver_mio::{AppEvent, DriverSetup, RunningNode};
use tmp2p_driver_smol::echo::run_raw_echo;
use tmp2p_driver_smol::NodeBuilder;
use tmp2p_store::MemoryPeerStore;
use tmp2p_tests::reference_peer::{reference_info, RefEvent, ReferencePeer};
use tmp2p_tests::smol_support::within;

const HIGH: u8 = 0x80;
const THEIR_SEED: [u8; 32] = [0x43; 32];
const NETWORK: &str = "high-channel";
const WAIT: Duration = Duration::from_secs(30);
/// The message sizes Go relays on such channels: one full chunk, two, and 1 MiB.
const SIZES: [usize; 3] = [1024, 2048, 1 << 20];

fn descriptor(id: u8) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority: 5,
        send_queue_capacity: 8,
        recv_message_capacity: 2 << 20,
    }
}

/// One `PacketMsg` as tendermint-proto encodes it, with its length prefix.
fn go_packet(channel: u8, eof: bool, data: Vec<u8>) -> Vec<u8> {
    let packet = Packet {
        sum: Some(Sum::PacketMsg(PacketMsg {
            channel_id: i32::from(channel),
            eof,
            data,
        })),
    };
    packet.encode_length_delimited_to_vec()
}

fn feed(channel: u8, wire: Vec<u8>) -> (Result<(), MConnError>, Vec<MConnEvent>) {
    let now = std::time::Instant::now();
    let mut conn =
        MConnection::new(MConnConfig::default(), vec![descriptor(channel)], now).unwrap();
    let mut input = BytesMut::from(&wire[..]);
    let result = conn.handle_input(now, &mut input);
    let events = std::iter::from_fn(|| conn.poll_event()).collect();
    (result, events)
}

#[test]
fn a_full_chunk_with_eof_is_accepted_on_every_channel_id_and_one_byte_more_is_not() {
    for channel in [0x01u8, 0x80, 0xff] {
        let data: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
        let (result, events) = feed(channel, go_packet(channel, true, data.clone()));
        assert_eq!(result, Ok(()), "channel {channel:#x}");
        let delivered = MConnEvent::Message {
            channel,
            message: Bytes::from(data),
        };
        assert_eq!(events, vec![delivered], "channel {channel:#x}");

        // One byte over the limit: the most data that still makes a 1036-byte packet.
        let extra = if channel < 0x80 { 2 } else { 1 };
        let wire = go_packet(channel, true, vec![7; 1024 + extra]);
        let announced = wire.len() - 2;
        assert_eq!(announced, 1036);
        let (result, events) = feed(channel, wire);
        assert!(
            matches!(result, Err(MConnError::OversizedPacket { len, .. }) if len == announced as u64),
            "channel {channel:#x}: {result:?}"
        );
        assert!(events.is_empty());
    }
    // The limits themselves: what Go emits on 0x80..=0xFF, and what Go accepts.
    assert_eq!(tmp2p_core::mconn::max_received_packet_size(1024), 1035);
    assert_eq!(tmp2p_core::mconn::max_sent_packet_size(1024), 1034);
}

fn their_info() -> DefaultNodeInfo {
    reference_info(THEIR_SEED, NETWORK, &[HIGH])
}

fn message(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 253) as u8 ^ (size as u8)).collect()
}

/// The reference peer connects to `node`, sends every size on 0x80 in 1024-byte chunks,
/// and checks each echo.
fn echoes_come_back_intact(node: std::net::SocketAddr) {
    let stream = TcpStream::connect(node).unwrap();
    let reference = thread::spawn(move || ReferencePeer::start(stream, THEIR_SEED, their_info()))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(reference.their_info.channels, vec![HIGH]);
    for size in SIZES {
        reference.send(HIGH, message(size));
    }
    let mut echoed = Vec::new();
    while echoed.len() < SIZES.len() {
        match reference.events.recv_timeout(WAIT).unwrap() {
            RefEvent::Message(channel, data) => {
                assert_eq!(channel, HIGH);
                echoed.push(data);
            }
            RefEvent::Ping | RefEvent::Pong => {}
            RefEvent::Closed(reason) => panic!("the connection ended: {reason}"),
        }
    }
    for (size, data) in SIZES.into_iter().zip(echoed) {
        assert!(data == message(size), "the echo of {size} B differs");
    }
}

fn config() -> NodeConfig {
    NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap())
}

#[test]
fn a_smol_node_echoes_what_go_sends_on_channel_0x80() {
    let key = NodeKey::from_seed([0x18; 32]);
    let mut builder = NodeBuilder::new(config(), key, Box::new(MemoryPeerStore::new())).unwrap();
    let channel = builder.open_raw_channel(descriptor(HIGH)).unwrap();
    let node = smol::block_on(builder.start()).unwrap();
    let echo = node.spawn(run_raw_echo(channel));
    echoes_come_back_intact(node.local_addr());
    within("stop", node.stop());
    drop(echo);
}

#[test]
fn a_mio_node_echoes_what_go_sends_on_channel_0x80() {
    let setup = DriverSetup::new(
        config(),
        NodeKey::from_seed([0x19; 32]),
        vec![descriptor(HIGH)],
    );
    let mut node = RunningNode::spawn(setup, 64).unwrap();
    let inbound = node.take_inbound().unwrap();
    let handle = node.handle().clone();
    let echo = thread::spawn(move || {
        while let Ok(event) = inbound.recv() {
            if let AppEvent::Message(envelope) = event {
                let from = envelope.from.unwrap();
                let reply = Envelope::to_peer(from, envelope.channel, envelope.message);
                if handle.send(reply).is_err() {
                    return;
                }
            }
        }
    });
    echoes_come_back_intact(node.local_addr());
    node.stop().unwrap();
    echo.join().unwrap();
}
