#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every entry of `testdata/node_id_vectors.json`: Ed25519 seed → public key → node id.

use serde_json::Value;
use tmp2p_core::{NodeId, NodeKey};

#[test]
fn every_vector_derives_its_pubkey_and_id() {
    // Embedded at compile time: core's lint forbids file IO, even in its tests.
    let text: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/node_id_vectors.json"
    ));
    let vectors: Vec<Value> = serde_json::from_str(text).unwrap();
    assert!(vectors.len() >= 3);
    for v in &vectors {
        let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"));
        let seed: [u8; 32] = hex::decode(field("ed25519_seed"))
            .unwrap()
            .try_into()
            .unwrap();
        let key = NodeKey::from_seed(seed);
        assert_eq!(
            hex::encode(key.public_key().as_bytes()),
            field("ed25519_pub"),
            "{v}"
        );
        assert_eq!(key.node_id().to_string(), field("node_id"), "{v}");
        assert!(field("sha256_pub").starts_with(field("node_id")));
        assert_eq!(NodeId::parse(field("node_id")).unwrap(), key.node_id());
    }
}
