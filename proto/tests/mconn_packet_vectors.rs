#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every entry of `testdata/mconn_packet_vectors.json`: the upstream `TestConnVectors`
//! encodings, the proto3 omission cases, and the packet sizes behind the MConnection
//! receive limit, reproduced with our `Packet`.

use bytes::Bytes;
use prost::Message as _;
use serde_json::Value;
use tmp2p_proto::p2p::{Packet, PacketMsg, PacketPing, PacketPong, PacketSum};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/mconn_packet_vectors.json"
);

fn msg(channel_id: i32, eof: bool, data: impl Into<Bytes>) -> Packet {
    Packet {
        sum: Some(PacketSum::PacketMsg(PacketMsg {
            channel_id,
            eof,
            data: data.into(),
        })),
    }
}

/// The packet each entry describes, in file order, with a piece of its `desc` so a
/// reordered or edited file fails loudly instead of comparing the wrong pairs.
fn described_packets() -> Vec<(&'static str, Packet)> {
    vec![
        (
            "PacketPing",
            Packet {
                sum: Some(PacketSum::PacketPing(PacketPing {})),
            },
        ),
        (
            "PacketPong",
            Packet {
                sum: Some(PacketSum::PacketPong(PacketPong {})),
            },
        ),
        (
            "ch=1 eof=false data='data transmitted over the wire'",
            msg(1, false, &b"data transmitted over the wire"[..]),
        ),
        ("ch=0 (PEX) eof=true empty data", msg(0, true, Bytes::new())),
        ("ch=0x20 eof=true data='abc'", msg(0x20, true, &b"abc"[..])),
        (
            "ch=1 eof=true data=1024 zero bytes",
            msg(1, true, vec![0u8; 1024]),
        ),
        ("payload 1400", msg(1, true, vec![0u8; 1400])),
        (
            "ch=0x80 eof=true 1024 bytes",
            msg(0x80, true, vec![0u8; 1024]),
        ),
    ]
}

fn hex_of(entry: &Value, key: &str) -> Option<Vec<u8>> {
    entry
        .get(key)
        .map(|v| hex::decode(v.as_str().unwrap()).unwrap_or_else(|e| panic!("{key}: {e}")))
}

fn len_of(entry: &Value, key: &str) -> Option<usize> {
    entry
        .get(key)
        .map(|v| usize::try_from(v.as_u64().unwrap()).unwrap())
}

#[test]
fn every_packet_vector_is_reproduced() {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("{VECTORS}: {e}"));
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    let packets = described_packets();
    assert_eq!(entries.len(), packets.len(), "entry count");

    for (entry, (desc_part, packet)) in entries.iter().zip(&packets) {
        let desc = entry["desc"].as_str().unwrap();
        assert!(desc.contains(desc_part), "`{desc}` is not `{desc_part}`");
        let known = [
            "desc",
            "packet_hex",
            "delimited_hex",
            "packet_len",
            "delimited_len",
            "packet_prefix_hex",
        ];
        for key in entry.as_object().unwrap().keys() {
            assert!(known.contains(&key.as_str()), "{desc}: unchecked key {key}");
        }

        let encoded = packet.encode_to_vec();
        let delimited = packet.encode_length_delimited_to_vec();
        let mut checks = 0;
        if let Some(expected) = hex_of(entry, "packet_hex") {
            assert_eq!(hex::encode(&encoded), hex::encode(&expected), "{desc}");
            assert_eq!(
                &Packet::decode(expected.as_slice()).unwrap(),
                packet,
                "{desc}"
            );
            checks += 1;
        }
        if let Some(expected) = hex_of(entry, "delimited_hex") {
            assert_eq!(hex::encode(&delimited), hex::encode(&expected), "{desc}");
            assert_eq!(
                &Packet::decode_length_delimited(expected.as_slice()).unwrap(),
                packet,
                "{desc}"
            );
            checks += 1;
        }
        if let Some(expected) = len_of(entry, "packet_len") {
            assert_eq!(encoded.len(), expected, "{desc}");
            assert_eq!(packet.encoded_len(), expected, "{desc}");
            checks += 1;
        }
        if let Some(expected) = len_of(entry, "delimited_len") {
            assert_eq!(delimited.len(), expected, "{desc}");
            checks += 1;
        }
        if let Some(expected) = hex_of(entry, "packet_prefix_hex") {
            assert_eq!(
                hex::encode(&encoded[..expected.len()]),
                hex::encode(&expected),
                "{desc}"
            );
            checks += 1;
        }
        assert!(checks > 0, "{desc}: entry has nothing to check");
    }
}

/// The receive limit follows from these sizes: a full 1024-byte payload on a channel
/// below 0x80 is 1034 bytes, and one more for channel ids that need a 2-byte varint.
#[test]
fn packet_size_grows_by_one_byte_at_channel_0x80() {
    let full = |channel_id| msg(channel_id, true, vec![0u8; 1024]).encoded_len();
    assert_eq!(full(0x7f), 1034);
    assert_eq!(full(0x80), 1035);
    assert_eq!(full(0xff), 1035);
}
