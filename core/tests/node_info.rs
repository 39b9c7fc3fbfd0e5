#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `NodeInfo`: exact wire bytes against `session_vectors.json`, and one test per
//! validation rule (protocol.md §2.3) and per compatibility rule (§2.4 step 7).

use prost::Message as _;
use serde_json::Value;
use tmp2p_core::address::AddressError;
use tmp2p_core::node_info::{NodeInfo, NodeInfoError, ProtocolVersions, MAX_CHANNELS};
use tmp2p_core::NodeId;
use tmp2p_proto::p2p::DefaultNodeInfo;

fn session_node(name: &str) -> Value {
    // Embedded at compile time: core's lint forbids file IO, even in its tests.
    let text: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/session_vectors.json"
    ));
    let all: Value = serde_json::from_str(text).unwrap();
    all["nodes"][name].clone()
}

fn info_from_vector(node: &Value) -> NodeInfo {
    let f = &node["node_info"];
    let s = |k: &str| f[k].as_str().unwrap().to_owned();
    let n = |k: &str| f[k].as_u64().unwrap();
    NodeInfo {
        protocol_version: ProtocolVersions {
            p2p: n("p2p"),
            block: n("block"),
            app: n("app"),
        },
        node_id: NodeId::parse_canonical(&s("id")).unwrap(),
        listen_addr: s("listen_addr"),
        network: s("network"),
        version: s("version"),
        channels: hex::decode(s("channels")).unwrap(),
        moniker: s("moniker"),
        tx_index: s("tx_index"),
        rpc_address: s("rpc_address"),
    }
}

#[test]
fn session_vector_node_infos_encode_exactly_and_decode_back() {
    for name in ["A", "B"] {
        let node = session_node(name);
        let info = info_from_vector(&node);
        let expected =
            hex::decode(node["node_info_plaintext_delimited"].as_str().unwrap()).unwrap();
        let delimited = DefaultNodeInfo::from(&info).encode_length_delimited_to_vec();
        assert_eq!(
            hex::encode(&delimited),
            hex::encode(&expected),
            "node {name}"
        );

        let proto = DefaultNodeInfo::decode_length_delimited(expected.as_slice()).unwrap();
        assert_eq!(NodeInfo::try_from(proto).unwrap(), info, "node {name}");
        // The body alone, through NodeInfo's own codec.
        let body_start = delimited.len() - info.encode().len();
        assert_eq!(NodeInfo::decode(&expected[body_start..]).unwrap(), info);
        info.validate().unwrap();
    }
}

fn valid() -> NodeInfo {
    info_from_vector(&session_node("A"))
}

#[test]
fn upper_case_node_id_is_rejected_on_decode() {
    let mut proto = DefaultNodeInfo::from(&valid());
    proto.default_node_id = proto.default_node_id.to_uppercase();
    assert!(matches!(
        NodeInfo::try_from(proto),
        Err(NodeInfoError::InvalidNodeId(_))
    ));
}

#[test]
fn rule_listen_addr_must_be_a_legacy_address() {
    for ok in [
        "tcp://0.0.0.0:26656",
        "0.0.0.0:26656",
        "[::1]:26656",
        "tcp://seed.example.com:26656", // a name: accepted without DNS (documented)
    ] {
        let info = NodeInfo {
            listen_addr: ok.into(),
            ..valid()
        };
        assert_eq!(info.validate(), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "tcp://0.0.0.0",
        "0.0.0.0:99999",
        "tcp://:26656",
        "a b:1",
        "x@1.2.3.4:1",
    ] {
        let info = NodeInfo {
            listen_addr: bad.into(),
            ..valid()
        };
        assert!(
            matches!(
                info.validate(),
                Err(NodeInfoError::InvalidListenAddr { .. })
            ),
            "{bad}: {:?}",
            info.validate()
        );
    }
    let info = NodeInfo {
        listen_addr: "0.0.0.0".into(),
        ..valid()
    };
    assert_eq!(
        info.validate(),
        Err(NodeInfoError::InvalidListenAddr {
            listen_addr: "0.0.0.0".into(),
            reason: AddressError::MissingPort("0.0.0.0".into())
        })
    );
}

#[test]
fn rule_version_is_empty_or_printable() {
    for ok in ["", "0.38.17", "v1 beta~"] {
        let info = NodeInfo {
            version: ok.into(),
            ..valid()
        };
        assert_eq!(info.validate(), Ok(()), "{ok:?}");
    }
    for bad in ["  ", "0.38\t1", "0.38é"] {
        let info = NodeInfo {
            version: bad.into(),
            ..valid()
        };
        assert_eq!(
            info.validate(),
            Err(NodeInfoError::InvalidVersion(bad.into()))
        );
    }
}

#[test]
fn rule_at_most_sixteen_channels() {
    let sixteen: Vec<u8> = (0..16).collect();
    let info = NodeInfo {
        channels: sixteen,
        ..valid()
    };
    assert_eq!(info.validate(), Ok(()));
    let info = NodeInfo {
        channels: (0..17).collect(),
        ..valid()
    };
    assert_eq!(
        info.validate(),
        Err(NodeInfoError::TooManyChannels {
            count: 17,
            max: MAX_CHANNELS
        })
    );
}

#[test]
fn rule_no_duplicate_channels() {
    let info = NodeInfo {
        channels: vec![0x40, 0x20, 0xff, 0x20],
        ..valid()
    };
    assert_eq!(info.validate(), Err(NodeInfoError::DuplicateChannel(0x20)));
}

#[test]
fn rule_moniker_is_non_empty_printable() {
    for bad in ["", " ", "node\ta", "nöde"] {
        let info = NodeInfo {
            moniker: bad.into(),
            ..valid()
        };
        assert_eq!(
            info.validate(),
            Err(NodeInfoError::InvalidMoniker(bad.into()))
        );
    }
}

#[test]
fn rule_tx_index_is_on_off_or_empty() {
    for ok in ["", "on", "off"] {
        let info = NodeInfo {
            tx_index: ok.into(),
            ..valid()
        };
        assert_eq!(info.validate(), Ok(()));
    }
    for bad in ["ON", "yes", " on"] {
        let info = NodeInfo {
            tx_index: bad.into(),
            ..valid()
        };
        assert_eq!(
            info.validate(),
            Err(NodeInfoError::InvalidTxIndex(bad.into()))
        );
    }
}

#[test]
fn rule_rpc_address_is_empty_or_printable() {
    let info = NodeInfo {
        rpc_address: String::new(),
        ..valid()
    };
    assert_eq!(info.validate(), Ok(()));
    for bad in ["   ", "tcp://\n"] {
        let info = NodeInfo {
            rpc_address: bad.into(),
            ..valid()
        };
        assert_eq!(
            info.validate(),
            Err(NodeInfoError::InvalidRpcAddress(bad.into()))
        );
    }
}

#[test]
fn protocol_p2p_and_app_versions_are_not_checked() {
    let info = NodeInfo {
        protocol_version: ProtocolVersions {
            p2p: 99,
            block: 11,
            app: 12345,
        },
        ..valid()
    };
    assert_eq!(info.validate(), Ok(()));
    assert_eq!(valid().compatible_with(&info), Ok(()));
}

#[test]
fn compatibility_requires_same_block_version() {
    let mut theirs = valid();
    theirs.protocol_version.block = 10;
    assert_eq!(
        valid().compatible_with(&theirs),
        Err(NodeInfoError::BlockVersionMismatch {
            ours: 11,
            theirs: 10
        })
    );
}

#[test]
fn compatibility_requires_same_network() {
    let theirs = NodeInfo {
        network: "other-chain".into(),
        ..valid()
    };
    assert_eq!(
        valid().compatible_with(&theirs),
        Err(NodeInfoError::NetworkMismatch {
            ours: "tmp2p-test-chain".into(),
            theirs: "other-chain".into()
        })
    );
}

#[test]
fn compatibility_requires_a_common_channel_if_we_have_any() {
    let ours = NodeInfo {
        channels: vec![0x40, 0x00],
        ..valid()
    };
    let disjoint = NodeInfo {
        channels: vec![0x20, 0x21],
        ..valid()
    };
    assert_eq!(
        ours.compatible_with(&disjoint),
        Err(NodeInfoError::NoCommonChannel)
    );
    let one_shared = NodeInfo {
        channels: vec![0x20, 0x00],
        ..valid()
    };
    assert_eq!(ours.compatible_with(&one_shared), Ok(()));
    // With no channels of our own anything goes, even a peer with none.
    let none = NodeInfo {
        channels: vec![],
        ..valid()
    };
    assert_eq!(none.compatible_with(&disjoint), Ok(()));
    assert_eq!(
        ours.compatible_with(&none),
        Err(NodeInfoError::NoCommonChannel)
    );
}
