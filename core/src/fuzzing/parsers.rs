//! Fuzz bodies of the one-shot parsers: bytes in, a typed value or a typed error out, for
//! what a peer sends before any machine holds state (NodeInfo, AuthSig) and for the files
//! an operator hands us from elsewhere (`addrbook.json`, `node_key.json`).

use bytes::Bytes;
use ed25519_dalek::Signer;
use prost::Message;
use tmp2p_proto::crypto::{PublicKey as ProtoPublicKey, PublicKeySum};
use tmp2p_proto::p2p::AuthSigMessage;

use super::{LOCAL_IDENTITY_SEED, PEER_IDENTITY_SEED};
use crate::node_info::{NodeInfo, MAX_NODE_INFO_SIZE};
use crate::pex::addrbook::import_addrbook;
use crate::secret::{parse_auth_sig, AUTH_SIG_MAX_SIZE};
use crate::NodeKey;

/// NodeInfo as a peer sends it: decode, validate, and the compatibility check against our
/// own node info. A node info that passes both must survive an encode / decode round trip
/// unchanged (what we accepted is what we later show and store).
pub fn node_info(data: &[u8]) {
    let Ok(info) = NodeInfo::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_NODE_INFO_SIZE);
    if info.validate().is_err() {
        return;
    }
    let ours = NodeInfo {
        node_id: NodeKey::from_seed(LOCAL_IDENTITY_SEED).node_id(),
        network: "fuzz-chain".into(),
        channels: vec![0x00, 0x20, 0x30],
        ..info.clone()
    };
    let _ = ours.compatible_with(&info);
    let again = NodeInfo::decode(&info.encode());
    assert_eq!(
        again.as_ref(),
        Ok(&info),
        "accepted node info does not round-trip"
    );
}

/// The AuthSig message body, verified over a fixed challenge. `data[0]` bit 0 picks the
/// input: the raw bytes as the message body, or a message honestly signed by the peer
/// identity whose signature is then XORed with the rest of the input (so the fuzzer
/// explores near-valid signatures). Only an untouched honest signature may verify, and
/// then as the peer's key.
pub fn auth_sig(data: &[u8]) {
    const CHALLENGE: [u8; 32] = [0x3c; 32];
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    if control & 1 == 0 {
        if rest.len() <= AUTH_SIG_MAX_SIZE {
            let _ = parse_auth_sig(Bytes::copy_from_slice(rest), &CHALLENGE);
        }
        return;
    }
    let peer = NodeKey::from_seed(PEER_IDENTITY_SEED);
    let mut signature = peer.signing_key().sign(&CHALLENGE).to_bytes();
    for (byte, flip) in signature.iter_mut().zip(rest) {
        *byte ^= flip;
    }
    let message = AuthSigMessage {
        pub_key: Some(ProtoPublicKey {
            sum: Some(PublicKeySum::Ed25519(Bytes::copy_from_slice(
                &peer.public_key().0,
            ))),
        }),
        sig: Bytes::copy_from_slice(&signature),
    };
    let verified = parse_auth_sig(Bytes::from(message.encode_to_vec()), &CHALLENGE);
    let untouched = rest.iter().take(64).all(|&b| b == 0);
    match verified {
        Ok(key) => assert_eq!(key, peer.public_key(), "verified as another key"),
        // ZIP-215 accepts a few non-canonical encodings of the same signature, so a
        // changed signature may verify; an unchanged one must.
        Err(error) => assert!(!untouched, "honest AuthSig refused: {error}"),
    }
}

/// An `addrbook.json` from a CometBFT home: the import never panics, and every address it
/// returns is unique and dialable as text (parses back to itself).
pub fn addrbook_import(data: &[u8]) {
    let Ok(book) = import_addrbook(data) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for address in &book.addresses {
        let text = address.to_string();
        assert!(seen.insert(text.clone()), "duplicate address {text}");
        let parsed = crate::address::NodeAddress::parse(&text);
        assert_eq!(parsed.as_ref(), Ok(address), "{text} does not parse back");
    }
}

/// A `node_key.json`: a key it loads writes back to a file that loads as the same key.
pub fn node_key_load(data: &[u8]) {
    let Ok(key) = NodeKey::from_json(data) else {
        return;
    };
    let again = NodeKey::from_json(key.to_json().as_bytes());
    assert_eq!(again.map(|k| k.seed()), Ok(key.seed()));
}
