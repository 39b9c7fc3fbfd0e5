#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The plaintext wire messages of `testdata/session_vectors.json` (an A↔B session checked
//! against Go-compatible implementations), rebuilt from their field values with our types:
//! the ephemeral-key `BytesValue`, the AuthSig messages, both `DefaultNodeInfo`s, and A's
//! MConnection packet stream.

use bytes::Bytes;
use prost::Message as _;
use serde_json::Value;
use tmp2p_proto::crypto::{PublicKey, PublicKeySum};
use tmp2p_proto::p2p::{
    AuthSigMessage, DefaultNodeInfo, DefaultNodeInfoOther, Packet, PacketMsg, PacketPing,
    PacketPong, PacketSum, ProtocolVersion,
};
use tmp2p_proto::BytesValue;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/session_vectors.json"
);

/// MConnection's default maximum payload per PacketMsg (protocol.md §4.2).
const MAX_PACKET_MSG_PAYLOAD: usize = 1024;

fn vectors() -> Value {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("{VECTORS}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(text(v, key)).unwrap_or_else(|e| panic!("`{key}` is not hex: {e}"))
}

fn number(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

fn node<'a>(vectors: &'a Value, name: &str) -> &'a Value {
    &vectors["nodes"][name]
}

/// Our `DefaultNodeInfo` from the vector's `node_info` field values.
fn node_info_from_fields(f: &Value) -> DefaultNodeInfo {
    DefaultNodeInfo {
        protocol_version: ProtocolVersion {
            p2p: number(f, "p2p"),
            block: number(f, "block"),
            app: number(f, "app"),
        },
        default_node_id: text(f, "id").to_owned(),
        listen_addr: text(f, "listen_addr").to_owned(),
        network: text(f, "network").to_owned(),
        version: text(f, "version").to_owned(),
        channels: Bytes::from(hex_field(f, "channels")),
        moniker: text(f, "moniker").to_owned(),
        other: DefaultNodeInfoOther {
            tx_index: text(f, "tx_index").to_owned(),
            rpc_address: text(f, "rpc_address").to_owned(),
        },
    }
}

#[test]
fn ephemeral_key_messages_are_reproduced() {
    let vectors = vectors();
    for name in ["A", "B"] {
        let n = node(&vectors, name);
        let expected = hex_field(n, "wire_eph_msg");
        let msg = BytesValue {
            value: Bytes::from(hex_field(n, "x25519_eph_pub")),
        };
        let encoded = msg.encode_length_delimited_to_vec();
        assert_eq!(hex::encode(&encoded), hex::encode(&expected), "node {name}");
        assert_eq!(encoded.len(), 35, "node {name}");
        assert_eq!(encoded[..3], [0x22, 0x0a, 0x20], "node {name}");
        assert_eq!(
            BytesValue::decode_length_delimited(expected.as_slice()).unwrap(),
            msg,
            "node {name}"
        );
    }
}

#[test]
fn auth_sig_plaintexts_are_reproduced() {
    let vectors = vectors();
    for name in ["A", "B"] {
        let n = node(&vectors, name);
        let expected = hex_field(n, "auth_sig_plaintext_delimited");
        let msg = AuthSigMessage {
            pub_key: Some(PublicKey {
                sum: Some(PublicKeySum::Ed25519(Bytes::from(hex_field(
                    n,
                    "ed25519_pub",
                )))),
            }),
            sig: Bytes::from(hex_field(n, "challenge_signature")),
        };
        let encoded = msg.encode_length_delimited_to_vec();
        assert_eq!(hex::encode(&encoded), hex::encode(&expected), "node {name}");
        assert_eq!(encoded.len(), 103, "node {name}");
        assert_eq!(
            AuthSigMessage::decode_length_delimited(expected.as_slice()).unwrap(),
            msg,
            "node {name}"
        );
    }
}

#[test]
fn node_info_plaintexts_are_reproduced() {
    let vectors = vectors();
    for name in ["A", "B"] {
        let n = node(&vectors, name);
        let expected = hex_field(n, "node_info_plaintext_delimited");
        let info = node_info_from_fields(&n["node_info"]);
        let encoded = info.encode_length_delimited_to_vec();
        assert_eq!(hex::encode(&encoded), hex::encode(&expected), "node {name}");
        assert_eq!(
            DefaultNodeInfo::decode_length_delimited(expected.as_slice()).unwrap(),
            info,
            "node {name}"
        );
    }
}

/// tendermint-proto's `DefaultNodeInfo` matches Go only when fields 1 and 8 are `Some`.
#[test]
fn tendermint_proto_node_info_matches_go_only_with_some() {
    use tendermint_proto::v0_38::p2p as theirs;
    let vectors = vectors();
    for name in ["A", "B"] {
        let n = node(&vectors, name);
        let go = hex_field(n, "node_info_plaintext_delimited");
        let ours = node_info_from_fields(&n["node_info"]);
        let mut with_some = theirs::DefaultNodeInfo {
            protocol_version: Some(theirs::ProtocolVersion {
                p2p: ours.protocol_version.p2p,
                block: ours.protocol_version.block,
                app: ours.protocol_version.app,
            }),
            default_node_id: ours.default_node_id.clone(),
            listen_addr: ours.listen_addr.clone(),
            network: ours.network.clone(),
            version: ours.version.clone(),
            channels: ours.channels.to_vec(),
            moniker: ours.moniker.clone(),
            other: Some(theirs::DefaultNodeInfoOther {
                tx_index: ours.other.tx_index.clone(),
                rpc_address: ours.other.rpc_address.clone(),
            }),
        };
        assert_eq!(
            with_some.encode_length_delimited_to_vec(),
            go,
            "node {name}"
        );

        // With None they drop the fields Go always writes; ours cannot.
        with_some.protocol_version = None;
        with_some.other = None;
        let without = with_some.encode_length_delimited_to_vec();
        assert_ne!(without, go, "node {name}");
        assert!(without.len() < go.len(), "node {name}");

        // Ours carries both fields: tendermint-proto reads them back as Some.
        let ours_bytes = ours.encode_to_vec();
        assert_eq!(ours_bytes[0], 0x0a, "node {name}: field 1 first");
        let read_back = theirs::DefaultNodeInfo::decode(ours_bytes.as_slice()).unwrap();
        assert!(read_back.protocol_version.is_some(), "node {name}: field 1");
        assert!(read_back.other.is_some(), "node {name}: field 8");
    }
    // With empty values the difference is plain: Go (and ours) write `0a 00` and `42 00`.
    assert_eq!(
        DefaultNodeInfo::default().encode_to_vec(),
        [0x0a, 0x00, 0x42, 0x00]
    );
    assert!(theirs::DefaultNodeInfo::default()
        .encode_to_vec()
        .is_empty());
}

/// Splits a channel message into PacketMsgs as MConnection does: full chunks with
/// `eof = false`, and a last (possibly empty) chunk with `eof = true`.
fn packets_for_message(channel_id: i32, data: &Bytes) -> Vec<Packet> {
    let mut packets = Vec::new();
    let mut rest = data.clone();
    loop {
        let chunk = rest.split_to(rest.len().min(MAX_PACKET_MSG_PAYLOAD));
        let eof = rest.is_empty();
        packets.push(Packet {
            sum: Some(PacketSum::PacketMsg(PacketMsg {
                channel_id,
                eof,
                data: chunk,
            })),
        });
        if eof {
            return packets;
        }
    }
}

/// The messages of `mconn_stream_from_A`, as (channel, payload).
fn stream_messages(stream: &Value) -> Vec<(i32, Bytes)> {
    let messages = stream["messages"].as_array().unwrap();
    messages
        .iter()
        .map(|m| {
            let channel = i32::try_from(number(m, "channel")).unwrap();
            let data = if m.get("data_hex").is_some() {
                hex_field(m, "data_hex")
            } else {
                assert_eq!(text(m, "data_rule"), "byte i = (7*i+3) mod 256");
                let len = usize::try_from(number(m, "data_len")).unwrap();
                (0..len).map(|i| ((7 * i + 3) % 256) as u8).collect()
            };
            (channel, Bytes::from(data))
        })
        .collect()
}

/// The packets A writes: a ping, a pong, then every message in PacketMsgs.
fn expected_packets(messages: &[(i32, Bytes)]) -> Vec<Packet> {
    let mut packets = vec![
        Packet {
            sum: Some(PacketSum::PacketPing(PacketPing {})),
        },
        Packet {
            sum: Some(PacketSum::PacketPong(PacketPong {})),
        },
    ];
    for (channel, data) in messages {
        packets.extend(packets_for_message(*channel, data));
    }
    packets
}

#[test]
fn mconn_stream_packets_are_reproduced() {
    let vectors = vectors();
    let stream = &vectors["mconn_stream_from_A"];
    let packets = expected_packets(&stream_messages(stream));
    let vector_packets = stream["packets"].as_array().unwrap();
    assert_eq!(packets.len(), vector_packets.len());
    for (i, (packet, vector)) in packets.iter().zip(vector_packets).enumerate() {
        let expected = hex_field(vector, "hex");
        let kind = match packet.sum {
            Some(PacketSum::PacketPing(_)) => "ping",
            Some(PacketSum::PacketPong(_)) => "pong",
            Some(PacketSum::PacketMsg(_)) => "msg",
            None => "none",
        };
        assert_eq!(kind, text(vector, "kind"), "packet {i}");
        assert_eq!(
            hex::encode(packet.encode_to_vec()),
            hex::encode(&expected),
            "packet {i}"
        );
        assert_eq!(
            &Packet::decode(expected.as_slice()).unwrap(),
            packet,
            "packet {i}"
        );
    }
}

#[test]
fn mconn_plaintext_stream_is_reproduced_and_reassembles() {
    let vectors = vectors();
    let stream = &vectors["mconn_stream_from_A"];
    let messages = stream_messages(stream);
    let expected = hex_field(stream, "plaintext_stream");

    let mut written = Vec::new();
    for packet in expected_packets(&messages) {
        packet.encode_length_delimited(&mut written).unwrap();
    }
    assert_eq!(hex::encode(&written), hex::encode(&expected));

    // Read it back as a receiver does: delimited packets, payloads appended per channel
    // until eof.
    let mut buf = Bytes::from(expected);
    let (mut pings, mut pongs) = (0, 0);
    let mut pending: Vec<(i32, Vec<u8>)> = Vec::new();
    let mut delivered: Vec<(i32, Bytes)> = Vec::new();
    while !buf.is_empty() {
        match Packet::decode_length_delimited(&mut buf).unwrap().sum {
            Some(PacketSum::PacketPing(_)) => pings += 1,
            Some(PacketSum::PacketPong(_)) => pongs += 1,
            Some(PacketSum::PacketMsg(msg)) => {
                let slot = match pending.iter().position(|(ch, _)| *ch == msg.channel_id) {
                    Some(slot) => slot,
                    None => {
                        pending.push((msg.channel_id, Vec::new()));
                        pending.len() - 1
                    }
                };
                pending[slot].1.extend_from_slice(&msg.data);
                if msg.eof {
                    let (channel, data) = pending.swap_remove(slot);
                    delivered.push((channel, Bytes::from(data)));
                }
            }
            None => panic!("packet with no sum in the stream"),
        }
    }
    assert_eq!((pings, pongs), (1, 1));
    assert!(pending.is_empty(), "unfinished messages: {pending:?}");
    assert_eq!(delivered, messages);
}
