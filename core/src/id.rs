//! `NodeId`: a node's identity on the network, derived from its Ed25519 public key.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Length of a node id in bytes (the first 20 bytes of SHA-256 of the public key).
pub const NODE_ID_BYTES: usize = 20;
/// Length of a node id's canonical text form: lower-case hex.
pub const NODE_ID_HEX_LEN: usize = 2 * NODE_ID_BYTES;

/// Why a string is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("node id is empty")]
    Empty,
    /// The string is not 40 characters long.
    #[error("node id must be {NODE_ID_HEX_LEN} hex characters, got {0}")]
    WrongLength(usize),
    /// A character is not a hex digit.
    #[error("node id contains a character that is not hex: {0:?}")]
    NotHex(char),
    /// Upper-case hex: valid under v0.34 rules but not in canonical (v0.35) form.
    #[error("node id must be lower-case hex")]
    NotLowerCase,
    /// Legacy rules: the hex decodes to the wrong number of bytes, or is not hex at all.
    #[error("node id must hex-decode to {NODE_ID_BYTES} bytes")]
    BadHex,
}

/// A node's identity: the lower-case hex of the first 20 bytes of SHA-256 of its Ed25519
/// public key (protocol.md §3.1). Stored as the 20 raw bytes; printed as 40 hex chars.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; NODE_ID_BYTES]);

impl NodeId {
    /// The id of the node whose Ed25519 public key is `public_key`.
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(public_key);
        let mut id = [0u8; NODE_ID_BYTES];
        // The first 20 of SHA-256's 32 bytes.
        id.iter_mut()
            .zip(digest)
            .for_each(|(out, byte)| *out = byte);
        NodeId(id)
    }

    /// A node id from its 20 raw bytes.
    pub const fn from_bytes(bytes: [u8; NODE_ID_BYTES]) -> Self {
        NodeId(bytes)
    }

    /// The 20 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; NODE_ID_BYTES] {
        &self.0
    }

    /// v0.35 `NewNodeID`: 40 hex characters in either case; upper case is lower-cased.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Self::parse_hex(s, true)
    }

    /// v0.35 `NodeID.Validate`: exactly 40 *lower-case* hex characters (the form that must
    /// appear in a peer's NodeInfo).
    pub fn parse_canonical(s: &str) -> Result<Self, IdError> {
        Self::parse_hex(s, false)
    }

    /// v0.34 `validateID`: non-empty and hex-decodes (either case) to exactly 20 bytes.
    pub fn parse_legacy(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let bytes = hex::decode(s).map_err(|_| IdError::BadHex)?;
        let id: [u8; NODE_ID_BYTES] = bytes.try_into().map_err(|_| IdError::BadHex)?;
        Ok(NodeId(id))
    }

    fn parse_hex(s: &str, allow_upper: bool) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() != NODE_ID_HEX_LEN {
            return Err(IdError::WrongLength(s.chars().count()));
        }
        let mut id = [0u8; NODE_ID_BYTES];
        for (i, c) in s.chars().enumerate() {
            let nibble = match c {
                '0'..='9' | 'a'..='f' => c.to_digit(16),
                'A'..='F' if allow_upper => c.to_digit(16),
                'A'..='F' => return Err(IdError::NotLowerCase),
                _ => return Err(IdError::NotHex(c)),
            };
            let (Some(nibble), Some(byte)) = (nibble, id.get_mut(i / 2)) else {
                return Err(IdError::NotHex(c));
            };
            // A hex digit is < 16, so the cast cannot truncate.
            *byte |= (nibble as u8) << if i % 2 == 0 { 4 } else { 0 };
        }
        Ok(NodeId(id))
    }
}

/// v0.35 `NodeID.Bytes()` on an id string that has not been validated: plain hex
/// decoding, either case, any even length (`""` gives no bytes). Use [`NodeId::parse`] to
/// get a node id; this is for code that must treat unvalidated id text as bytes.
pub fn decode_id_hex(s: &str) -> Result<Vec<u8>, IdError> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(IdError::NotHex(c));
    }
    if !s.len().is_multiple_of(2) {
        return Err(IdError::WrongLength(s.len()));
    }
    hex::decode(s).map_err(|_| IdError::BadHex)
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = IdError;
    /// Parses with [`NodeId::parse`] (v0.35 `NewNodeID`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn derives_upstream_id_from_public_key() {
        let public: [u8; 32] =
            hex::decode("34d26579dbb456693e540672cf922f52dde0d6532e35bf06be013a7c532f20e0")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            NodeId::from_public_key(&public).to_string(),
            "045f5600654182cfeaccfe6cb19f0642e8a59898"
        );
    }

    #[test]
    fn parse_lowercases_and_canonical_rejects_upper() {
        let upper = "00112233445566778899AABBCCDDEEFF00112233";
        assert_eq!(
            NodeId::parse(upper).unwrap().to_string(),
            upper.to_lowercase()
        );
        assert_eq!(NodeId::parse_canonical(upper), Err(IdError::NotLowerCase));
        assert_eq!(NodeId::parse("é"), Err(IdError::WrongLength(1)));
        let multibyte = format!("{}é", "0".repeat(38));
        assert!(NodeId::parse(&multibyte).is_err());
    }
}
