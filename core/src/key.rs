//! `NodeKey`: a node's long-term Ed25519 identity, and Tendermint's `node_key.json` format.
//!
//! Reading and writing the file is IO and belongs to the caller; this module converts
//! between a key and the file's bytes.

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::id::NodeId;

/// The amino type name Tendermint writes for an Ed25519 private key.
pub const PRIV_KEY_TYPE: &str = "tendermint/PrivKeyEd25519";

/// Why a `node_key.json` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not JSON, or JSON without the expected fields.
    #[error("node key file is not valid JSON of the expected shape: {0}")]
    Json(String),
    /// The key type is not Ed25519.
    #[error("node key type is {0:?}, only {PRIV_KEY_TYPE:?} is supported")]
    UnsupportedType(String),
    /// `value` is not base64.
    #[error("node key value is not valid base64")]
    Base64,
    /// The decoded key is not 64 bytes (seed ‖ public key).
    #[error("node key must decode to 64 bytes (seed and public key), got {0}")]
    WrongLength(usize),
    /// The public half stored in the file does not belong to the seed.
    #[error("node key's stored public key does not match its private seed")]
    PublicKeyMismatch,
    /// The file's `id` field (v0.35) does not match the key.
    #[error("node key file id {stored} does not match the key's id {derived}")]
    IdMismatch {
        /// The id written in the file.
        stored: String,
        /// The id derived from the key.
        derived: NodeId,
    },
}

/// An Ed25519 public key (32 bytes), the authenticated identity of a peer.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The node id this key stands for.
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(&self.0)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

/// A node's long-term identity: an Ed25519 signing key.
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
}

impl NodeKey {
    /// A fresh key from the caller's cryptographic RNG.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        NodeKey {
            signing: SigningKey::generate(rng),
        }
    }

    /// The key whose RFC 8032 private seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        NodeKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The 32-byte private seed.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.public_key().node_id()
    }

    /// The signing key, for the SecretConnection handshake.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Parses the contents of a Tendermint `node_key.json`:
    /// `{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"<base64 of seed ‖ pubkey>"}}`,
    /// with an optional top-level `"id"` (written by v0.35), which must match the key.
    pub fn from_json(json: &[u8]) -> Result<Self, KeyError> {
        let file: NodeKeyFile =
            serde_json::from_slice(json).map_err(|e| KeyError::Json(e.to_string()))?;
        if file.priv_key.key_type != PRIV_KEY_TYPE {
            return Err(KeyError::UnsupportedType(file.priv_key.key_type));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(file.priv_key.value.as_bytes())
            .map_err(|_| KeyError::Base64)?;
        let raw: [u8; 64] = raw
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(raw.len()))?;
        let (seed, public) = raw.split_at(32);
        let mut seed_bytes = [0u8; 32];
        seed_bytes.copy_from_slice(seed);
        let key = NodeKey::from_seed(seed_bytes);
        if key.public_key().0.as_slice() != public {
            return Err(KeyError::PublicKeyMismatch);
        }
        if let Some(stored) = file.id {
            if NodeId::parse(&stored).ok() != Some(key.node_id()) {
                return Err(KeyError::IdMismatch {
                    stored,
                    derived: key.node_id(),
                });
            }
        }
        Ok(key)
    }

    /// The `node_key.json` contents for this key, in the format every Tendermint and
    /// CometBFT version reads (the v0.35 `id` field included: older versions ignore it).
    pub fn to_json(&self) -> String {
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(&self.seed());
        raw[32..].copy_from_slice(&self.public_key().0);
        let file = NodeKeyFile {
            id: Some(self.node_id().to_string()),
            priv_key: PrivKeyJson {
                key_type: PRIV_KEY_TYPE.to_owned(),
                value: base64::engine::general_purpose::STANDARD.encode(raw),
            },
        };
        // Serializing a struct of strings cannot fail; fall back to an empty object so
        // this function stays total.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        write!(f, "NodeKey({})", self.node_id())
    }
}

#[derive(Serialize, Deserialize)]
struct NodeKeyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    priv_key: PrivKeyJson,
}

#[derive(Serialize, Deserialize)]
struct PrivKeyJson {
    #[serde(rename = "type")]
    key_type: String,
    value: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vector_key() -> NodeKey {
        let seed = hex::decode("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
            .unwrap();
        NodeKey::from_seed(seed.try_into().unwrap())
    }

    #[test]
    fn json_round_trips_and_matches_vector() {
        let key = vector_key();
        assert_eq!(
            key.node_id().to_string(),
            "045f5600654182cfeaccfe6cb19f0642e8a59898"
        );
        let back = NodeKey::from_json(key.to_json().as_bytes()).unwrap();
        assert_eq!(back.seed(), key.seed());
    }

    #[test]
    fn reads_v034_file_without_id() {
        let key = vector_key();
        let mut raw = key.seed().to_vec();
        raw.extend_from_slice(&key.public_key().0);
        let json = format!(
            r#"{{"priv_key":{{"type":"tendermint/PrivKeyEd25519","value":"{}"}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        assert_eq!(
            NodeKey::from_json(json.as_bytes()).unwrap().seed(),
            key.seed()
        );
    }

    #[test]
    fn malformed_files_are_typed_errors() {
        let key = vector_key();
        let good = key.to_json();
        assert!(matches!(NodeKey::from_json(b"{"), Err(KeyError::Json(_))));
        assert!(matches!(NodeKey::from_json(b"{}"), Err(KeyError::Json(_))));
        let wrong_type = good.replace(PRIV_KEY_TYPE, "tendermint/PrivKeySecp256k1");
        assert!(matches!(
            NodeKey::from_json(wrong_type.as_bytes()),
            Err(KeyError::UnsupportedType(_))
        ));
        let short = r#"{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"AAAA"}}"#;
        assert_eq!(
            NodeKey::from_json(short.as_bytes()).unwrap_err(),
            KeyError::WrongLength(3)
        );
        let not_b64 = r#"{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"!!"}}"#;
        assert_eq!(
            NodeKey::from_json(not_b64.as_bytes()).unwrap_err(),
            KeyError::Base64
        );
        let mut raw = key.seed().to_vec();
        raw.extend_from_slice(&[7u8; 32]);
        let mismatch = format!(
            r#"{{"priv_key":{{"type":"tendermint/PrivKeyEd25519","value":"{}"}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        assert_eq!(
            NodeKey::from_json(mismatch.as_bytes()).unwrap_err(),
            KeyError::PublicKeyMismatch
        );
        let wrong_id = good.replace(&key.node_id().to_string(), &"0".repeat(40));
        assert!(matches!(
            NodeKey::from_json(wrong_id.as_bytes()),
            Err(KeyError::IdMismatch { .. })
        ));
    }
}
