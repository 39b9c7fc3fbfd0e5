#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Cross-checks every tmp2p wire type against the independent `tendermint-proto` 0.41
//! crate (`v0_38`): for arbitrary values (biased towards edge values) our encoding equals
//! theirs byte for byte, and each side decodes the other's bytes to the equal value.
//!
//! `BytesValue` has no counterpart there; see `bytes_value_encoding.rs`.
//! `DefaultNodeInfo` differs on purpose: ours always encodes fields 1 and 8 (as Go does),
//! theirs only when they are `Some`, so theirs is built with `Some(..)` here.

#[macro_use]
mod common;

use bytes::Bytes;
use common::{edge_or_any, gen_bytes, gen_string, gen_u64, same_wire, stretch, Any, CASES};
use prost::Message as _;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tendermint_proto::v0_38::crypto as their_crypto;
use tendermint_proto::v0_38::p2p as theirs;
use tmp2p_proto::crypto::{PublicKey, PublicKeySum};
use tmp2p_proto::p2p as ours;

fn gen_channel_id(g: &mut Gen) -> i32 {
    edge_or_any(
        g,
        &[
            0,
            1,
            0x20,
            0x7f,
            0x80,
            0xff,
            0x100,
            -1,
            -0x80,
            i32::MIN,
            i32::MAX,
        ],
    )
}

fn gen_port(g: &mut Gen) -> u32 {
    edge_or_any(g, &[0, 1, 26656, 65535, 65536, u32::MAX])
}

fn gen_public_key(g: &mut Gen) -> PublicKey {
    let sum = match u8::arbitrary(g) % 5 {
        0 => None,
        1 => Some(PublicKeySum::Secp256k1(Bytes::from(gen_bytes(g)))),
        2 => Some(PublicKeySum::Ed25519(Bytes::from(gen_bytes(g)))),
        // The real case: a 32-byte Ed25519 key.
        _ => Some(PublicKeySum::Ed25519(Bytes::from(stretch(
            Vec::arbitrary(g),
            32,
        )))),
    };
    PublicKey { sum }
}

fn gen_packet_msg(g: &mut Gen) -> ours::PacketMsg {
    ours::PacketMsg {
        channel_id: gen_channel_id(g),
        eof: bool::arbitrary(g),
        data: Bytes::from(gen_bytes(g)),
    }
}

fn gen_protocol_version(g: &mut Gen) -> ours::ProtocolVersion {
    ours::ProtocolVersion {
        p2p: gen_u64(g),
        block: gen_u64(g),
        app: gen_u64(g),
    }
}

fn gen_node_info_other(g: &mut Gen) -> ours::DefaultNodeInfoOther {
    ours::DefaultNodeInfoOther {
        tx_index: gen_string(g),
        rpc_address: gen_string(g),
    }
}

fn gen_net_address(g: &mut Gen) -> ours::NetAddress {
    ours::NetAddress {
        id: gen_string(g),
        ip: gen_string(g),
        port: gen_port(g),
    }
}

fn gen_pex_addrs(g: &mut Gen) -> ours::PexAddrs {
    let count = usize::from(u8::arbitrary(g) % 12);
    ours::PexAddrs {
        addrs: (0..count).map(|_| gen_net_address(g)).collect(),
    }
}

arbitrary_via!(PublicKey, gen_public_key);
arbitrary_via!(ours::AuthSigMessage, |g: &mut Gen| ours::AuthSigMessage {
    pub_key: if u8::arbitrary(g) % 8 == 0 {
        None
    } else {
        Some(gen_public_key(g))
    },
    sig: Bytes::from(gen_bytes(g)),
});
arbitrary_via!(ours::ProtocolVersion, gen_protocol_version);
arbitrary_via!(ours::DefaultNodeInfoOther, gen_node_info_other);
arbitrary_via!(ours::DefaultNodeInfo, |g: &mut Gen| ours::DefaultNodeInfo {
    protocol_version: gen_protocol_version(g),
    default_node_id: gen_string(g),
    listen_addr: gen_string(g),
    network: gen_string(g),
    version: gen_string(g),
    channels: Bytes::from(gen_bytes(g)),
    moniker: gen_string(g),
    other: gen_node_info_other(g),
});
arbitrary_via!(ours::PacketPing, |_: &mut Gen| ours::PacketPing {});
arbitrary_via!(ours::PacketPong, |_: &mut Gen| ours::PacketPong {});
arbitrary_via!(ours::PacketMsg, gen_packet_msg);
arbitrary_via!(ours::Packet, |g: &mut Gen| ours::Packet {
    sum: match u8::arbitrary(g) % 6 {
        0 => None,
        1 => Some(ours::PacketSum::PacketPing(ours::PacketPing {})),
        2 => Some(ours::PacketSum::PacketPong(ours::PacketPong {})),
        _ => Some(ours::PacketSum::PacketMsg(gen_packet_msg(g))),
    },
});
arbitrary_via!(ours::PexRequest, |_: &mut Gen| ours::PexRequest {});
arbitrary_via!(ours::NetAddress, gen_net_address);
arbitrary_via!(ours::PexAddrs, gen_pex_addrs);
arbitrary_via!(ours::Message, |g: &mut Gen| ours::Message {
    sum: match u8::arbitrary(g) % 4 {
        0 => None,
        1 => Some(ours::MessageSum::PexRequest(ours::PexRequest {})),
        _ => Some(ours::MessageSum::PexAddrs(gen_pex_addrs(g))),
    },
});

// ---------------------------------------------------------------------------------------
// The same value as tendermint-proto's type, built field by field.
// ---------------------------------------------------------------------------------------

fn their_public_key(key: &PublicKey) -> their_crypto::PublicKey {
    their_crypto::PublicKey {
        sum: key.sum.as_ref().map(|sum| match sum {
            PublicKeySum::Ed25519(k) => their_crypto::public_key::Sum::Ed25519(k.to_vec()),
            PublicKeySum::Secp256k1(k) => their_crypto::public_key::Sum::Secp256k1(k.to_vec()),
        }),
    }
}

fn their_auth_sig(msg: &ours::AuthSigMessage) -> theirs::AuthSigMessage {
    theirs::AuthSigMessage {
        pub_key: msg.pub_key.as_ref().map(their_public_key),
        sig: msg.sig.to_vec(),
    }
}

fn their_protocol_version(v: &ours::ProtocolVersion) -> theirs::ProtocolVersion {
    theirs::ProtocolVersion {
        p2p: v.p2p,
        block: v.block,
        app: v.app,
    }
}

fn their_node_info_other(o: &ours::DefaultNodeInfoOther) -> theirs::DefaultNodeInfoOther {
    theirs::DefaultNodeInfoOther {
        tx_index: o.tx_index.clone(),
        rpc_address: o.rpc_address.clone(),
    }
}

/// Theirs with fields 1 and 8 `Some`, which is what Go always puts on the wire.
fn their_node_info(info: &ours::DefaultNodeInfo) -> theirs::DefaultNodeInfo {
    theirs::DefaultNodeInfo {
        protocol_version: Some(their_protocol_version(&info.protocol_version)),
        default_node_id: info.default_node_id.clone(),
        listen_addr: info.listen_addr.clone(),
        network: info.network.clone(),
        version: info.version.clone(),
        channels: info.channels.to_vec(),
        moniker: info.moniker.clone(),
        other: Some(their_node_info_other(&info.other)),
    }
}

fn their_packet_msg(m: &ours::PacketMsg) -> theirs::PacketMsg {
    theirs::PacketMsg {
        channel_id: m.channel_id,
        eof: m.eof,
        data: m.data.to_vec(),
    }
}

fn their_packet(p: &ours::Packet) -> theirs::Packet {
    use theirs::packet::Sum;
    theirs::Packet {
        sum: p.sum.as_ref().map(|sum| match sum {
            ours::PacketSum::PacketPing(_) => Sum::PacketPing(theirs::PacketPing {}),
            ours::PacketSum::PacketPong(_) => Sum::PacketPong(theirs::PacketPong {}),
            ours::PacketSum::PacketMsg(m) => Sum::PacketMsg(their_packet_msg(m)),
        }),
    }
}

fn their_net_address(a: &ours::NetAddress) -> theirs::NetAddress {
    theirs::NetAddress {
        id: a.id.clone(),
        ip: a.ip.clone(),
        port: a.port,
    }
}

fn their_pex_addrs(a: &ours::PexAddrs) -> theirs::PexAddrs {
    theirs::PexAddrs {
        addrs: a.addrs.iter().map(their_net_address).collect(),
    }
}

fn their_message(m: &ours::Message) -> theirs::Message {
    use theirs::message::Sum;
    theirs::Message {
        sum: m.sum.as_ref().map(|sum| match sum {
            ours::MessageSum::PexRequest(_) => Sum::PexRequest(theirs::PexRequest {}),
            ours::MessageSum::PexAddrs(a) => Sum::PexAddrs(their_pex_addrs(a)),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// The property: same bytes, and each side decodes the other's bytes to the equal value.
// ---------------------------------------------------------------------------------------

same_wire_property!(
    public_key_matches_tendermint_proto,
    PublicKey,
    their_public_key
);
same_wire_property!(
    auth_sig_message_matches_tendermint_proto,
    ours::AuthSigMessage,
    their_auth_sig
);
same_wire_property!(
    protocol_version_matches_tendermint_proto,
    ours::ProtocolVersion,
    their_protocol_version
);
same_wire_property!(
    node_info_other_matches_tendermint_proto,
    ours::DefaultNodeInfoOther,
    their_node_info_other
);
same_wire_property!(
    default_node_info_matches_tendermint_proto_with_some,
    ours::DefaultNodeInfo,
    their_node_info
);
same_wire_property!(
    packet_ping_matches_tendermint_proto,
    ours::PacketPing,
    |_: &ours::PacketPing| theirs::PacketPing {}
);
same_wire_property!(
    packet_pong_matches_tendermint_proto,
    ours::PacketPong,
    |_: &ours::PacketPong| theirs::PacketPong {}
);
same_wire_property!(
    packet_msg_matches_tendermint_proto,
    ours::PacketMsg,
    their_packet_msg
);
same_wire_property!(packet_matches_tendermint_proto, ours::Packet, their_packet);
same_wire_property!(
    pex_request_matches_tendermint_proto,
    ours::PexRequest,
    |_: &ours::PexRequest| theirs::PexRequest {}
);
same_wire_property!(
    net_address_matches_tendermint_proto,
    ours::NetAddress,
    their_net_address
);
same_wire_property!(
    pex_addrs_matches_tendermint_proto,
    ours::PexAddrs,
    their_pex_addrs
);
same_wire_property!(
    pex_message_matches_tendermint_proto,
    ours::Message,
    their_message
);

// ---------------------------------------------------------------------------------------
// DefaultNodeInfo: fields 1 and 8 are always on the wire.
// ---------------------------------------------------------------------------------------

#[test]
fn default_node_info_always_carries_fields_1_and_8() {
    fn prop(info: Any<ours::DefaultNodeInfo>) -> TestResult {
        let bytes = info.0.encode_to_vec();
        // Field 1 is the lowest tag, so prost writes it first.
        if bytes.first() != Some(&0x0a) {
            return TestResult::error(format!("does not start with 0a: {}", hex::encode(&bytes)));
        }
        // tendermint-proto's Option fields are Some exactly when the field is present.
        match theirs::DefaultNodeInfo::decode(bytes.as_slice()) {
            Ok(decoded) => {
                TestResult::from_bool(decoded.protocol_version.is_some() && decoded.other.is_some())
            }
            Err(e) => TestResult::error(format!("theirs failed to decode ours: {e}")),
        }
    }
    QuickCheck::new()
        .tests(CASES)
        .quickcheck(prop as fn(Any<ours::DefaultNodeInfo>) -> TestResult);
}

#[test]
fn empty_default_node_info_is_0a00_4200_unlike_tendermint_proto_with_none() {
    let ours = ours::DefaultNodeInfo::default();
    assert_eq!(ours.encode_to_vec(), [0x0a, 0x00, 0x42, 0x00]);

    let theirs_none = theirs::DefaultNodeInfo::default();
    assert_eq!(theirs_none.encode_to_vec(), Vec::<u8>::new());
    let theirs_some = their_node_info(&ours);
    assert_eq!(theirs_some.encode_to_vec(), [0x0a, 0x00, 0x42, 0x00]);

    // A peer that omits the fields (as tendermint-proto with None does) still decodes,
    // to empty values, and we re-encode it the Go way.
    let decoded = ours::DefaultNodeInfo::decode(&[][..]).unwrap();
    assert_eq!(decoded, ours);
}

// ---------------------------------------------------------------------------------------
// Hand-picked edge values, so they are covered on every run, not just with luck.
// ---------------------------------------------------------------------------------------

#[test]
fn edge_packets_match_tendermint_proto() {
    let channel_ids = [0, 1, 0x7f, 0x80, 0xff, 0x100, -1, -0x80, i32::MIN, i32::MAX];
    let payloads = [
        Bytes::new(),
        Bytes::from_static(b"\x00"),
        Bytes::from(vec![0x5a; 1024]),
        Bytes::from(vec![0xff; 20_000]),
    ];
    for channel_id in channel_ids {
        for eof in [false, true] {
            for data in &payloads {
                let msg = ours::PacketMsg {
                    channel_id,
                    eof,
                    data: data.clone(),
                };
                let result = same_wire(&msg, &their_packet_msg(&msg));
                assert!(
                    !result.is_failure(),
                    "PacketMsg {channel_id} {eof} {}",
                    data.len()
                );
                let packet = ours::Packet {
                    sum: Some(ours::PacketSum::PacketMsg(msg)),
                };
                let result = same_wire(&packet, &their_packet(&packet));
                assert!(
                    !result.is_failure(),
                    "Packet {channel_id} {eof} {}",
                    data.len()
                );
            }
        }
    }
    // Negative channel ids are sign-extended to 10-byte varints, as in Go.
    let negative = ours::PacketMsg {
        channel_id: -1,
        eof: false,
        data: Bytes::new(),
    };
    assert_eq!(
        hex::encode(negative.encode_to_vec()),
        "08ffffffffffffffffff01"
    );
    // Oneof unset: nothing on the wire, and decodes back to unset.
    let unset = ours::Packet { sum: None };
    assert!(unset.encode_to_vec().is_empty());
    assert!(!same_wire(&unset, &their_packet(&unset)).is_failure());
}

#[test]
fn edge_messages_match_tendermint_proto() {
    let huge = "ü".repeat(10_000);
    let unset = ours::Message { sum: None };
    assert!(!same_wire(&unset, &their_message(&unset)).is_failure());
    let request = ours::Message {
        sum: Some(ours::MessageSum::PexRequest(ours::PexRequest {})),
    };
    assert_eq!(request.encode_to_vec(), [0x0a, 0x00]);
    assert!(!same_wire(&request, &their_message(&request)).is_failure());
    let no_addrs = ours::Message {
        sum: Some(ours::MessageSum::PexAddrs(ours::PexAddrs {
            addrs: Vec::new(),
        })),
    };
    assert_eq!(no_addrs.encode_to_vec(), [0x12, 0x00]);
    assert!(!same_wire(&no_addrs, &their_message(&no_addrs)).is_failure());
    let addrs = ours::Message {
        sum: Some(ours::MessageSum::PexAddrs(ours::PexAddrs {
            addrs: vec![
                ours::NetAddress::default(),
                ours::NetAddress {
                    id: huge.clone(),
                    ip: huge,
                    port: u32::MAX,
                },
            ],
        })),
    };
    assert!(!same_wire(&addrs, &their_message(&addrs)).is_failure());

    let no_key = ours::AuthSigMessage {
        pub_key: None,
        sig: Bytes::new(),
    };
    assert!(no_key.encode_to_vec().is_empty());
    assert!(!same_wire(&no_key, &their_auth_sig(&no_key)).is_failure());
    let empty_key = ours::AuthSigMessage {
        pub_key: Some(PublicKey { sum: None }),
        sig: Bytes::new(),
    };
    assert_eq!(empty_key.encode_to_vec(), [0x0a, 0x00]);
    assert!(!same_wire(&empty_key, &their_auth_sig(&empty_key)).is_failure());
}

// ---------------------------------------------------------------------------------------
// Hostile input: on arbitrary bytes both decoders accept or reject alike, and agree.
// ---------------------------------------------------------------------------------------

fn decoders_agree<O, T>(bytes: &[u8], same: fn(&O, &T) -> bool) -> TestResult
where
    O: prost::Message + Default,
    T: prost::Message + Default,
{
    match (O::decode(bytes), T::decode(bytes)) {
        (Ok(ours), Ok(theirs)) if same(&ours, &theirs) => TestResult::passed(),
        (Ok(_), Ok(_)) => TestResult::error(format!(
            "{}: decoded to different values ({})",
            hex::encode(bytes),
            std::any::type_name::<O>()
        )),
        (Err(_), Err(_)) => TestResult::passed(),
        (ours, theirs) => TestResult::error(format!(
            "{}: ours {:?}, theirs {:?}",
            hex::encode(bytes),
            ours.map(|_| ()),
            theirs.map(|_| ())
        )),
    }
}

/// Arbitrary bytes, often starting with a plausible tag so decoding gets past byte one.
fn hostile_bytes(g: &mut Gen) -> Vec<u8> {
    let mut bytes = Vec::new();
    if bool::arbitrary(g) {
        bytes.push(
            *g.choose(&[0x0a, 0x12, 0x1a, 0x22, 0x42, 0x08, 0x10])
                .unwrap_or(&0),
        );
    }
    bytes.extend(Vec::<u8>::arbitrary(g));
    bytes
}

#[derive(Clone, Debug)]
struct Hostile(Vec<u8>);

impl Arbitrary for Hostile {
    fn arbitrary(g: &mut Gen) -> Self {
        Hostile(hostile_bytes(g))
    }
}

#[test]
fn decoders_agree_on_hostile_bytes() {
    fn prop(bytes: Hostile) -> TestResult {
        let b = bytes.0.as_slice();
        for result in [
            decoders_agree(b, |o, t| their_packet(o) == *t),
            decoders_agree(b, |o, t| their_message(o) == *t),
            decoders_agree(b, |o, t| their_auth_sig(o) == *t),
            // Ours has no "absent" for fields 1 and 8: an absent field is an empty value.
            decoders_agree(b, |o, t: &theirs::DefaultNodeInfo| {
                let mut t = t.clone();
                t.protocol_version.get_or_insert_with(Default::default);
                t.other.get_or_insert_with(Default::default);
                their_node_info(o) == t
            }),
        ] {
            if result.is_failure() {
                return result;
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(2_000)
        .quickcheck(prop as fn(Hostile) -> TestResult);
}
