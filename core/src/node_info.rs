//! `NodeInfo`: what a node tells a peer about itself right after the SecretConnection
//! handshake (protocol.md §2): the domain type, its conversion to and from the wire type
//! `DefaultNodeInfo`, the peer-info validation of §2.3 and the compatibility check of
//! §2.4 step 7.

use prost::Message as _;
use tmp2p_proto::p2p::{DefaultNodeInfo, DefaultNodeInfoOther, ProtocolVersion};

use crate::address::{AddressError, NetAddress};
use crate::id::{IdError, NodeId};

/// The P2P protocol version every Tendermint / CometBFT release since v0.34 sends.
pub const P2P_PROTOCOL_VERSION: u64 = 8;
/// The block protocol version of current CometBFT networks.
pub const BLOCK_PROTOCOL_VERSION: u64 = 11;
/// Most channels a node may advertise (Go `maxNumChannels`).
pub const MAX_CHANNELS: usize = 16;
/// Largest encoded node info a reader accepts (Go `MaxNodeInfoSize`).
pub const MAX_NODE_INFO_SIZE: usize = 10240;

/// Why a node info cannot be decoded, is invalid, or is incompatible with ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeInfoError {
    /// The encoded node info is longer than the limit.
    #[error("node info is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit, [`MAX_NODE_INFO_SIZE`].
        max: usize,
    },
    /// The bytes are not a `DefaultNodeInfo` protobuf.
    #[error("node info is not a valid DefaultNodeInfo protobuf: {0}")]
    Decode(String),
    /// The node id is not 40 lower-case hex characters.
    #[error("node info id is invalid: {0}")]
    InvalidNodeId(#[source] IdError),
    /// `id@listen_addr` is not a legacy net address.
    #[error("node info listen address {listen_addr:?} is invalid: {reason}")]
    InvalidListenAddr {
        /// The listen address as sent.
        listen_addr: String,
        /// What is wrong with it.
        #[source]
        reason: AddressError,
    },
    /// The version is not printable ASCII (bytes 32..=126), or is all spaces.
    #[error("node info version {0:?} must be printable ASCII and not blank")]
    InvalidVersion(String),
    /// More channels than [`MAX_CHANNELS`].
    #[error("node info has {count} channels, more than the limit of {max}")]
    TooManyChannels {
        /// How many channels were advertised.
        count: usize,
        /// The limit, [`MAX_CHANNELS`].
        max: usize,
    },
    /// A channel id appears twice.
    #[error("node info advertises channel {0:#04x} twice")]
    DuplicateChannel(u8),
    /// The moniker is empty, not printable ASCII (bytes 32..=126), or all spaces.
    #[error("node info moniker {0:?} must be non-empty printable ASCII and not blank")]
    InvalidMoniker(String),
    /// `tx_index` is not `"on"`, `"off"` or empty.
    #[error("node info tx_index {0:?} must be \"on\", \"off\" or empty")]
    InvalidTxIndex(String),
    /// The RPC address is not printable ASCII (bytes 32..=126), or is all spaces.
    #[error("node info rpc_address {0:?} must be printable ASCII and not blank")]
    InvalidRpcAddress(String),
    /// The peer runs another block protocol version.
    #[error("peer block protocol version {theirs} differs from ours ({ours})")]
    BlockVersionMismatch {
        /// Our block protocol version.
        ours: u64,
        /// The peer's block protocol version.
        theirs: u64,
    },
    /// The peer is on another network (chain id).
    #[error("peer is on network {theirs:?}, we are on {ours:?}")]
    NetworkMismatch {
        /// Our network.
        ours: String,
        /// The peer's network.
        theirs: String,
    },
    /// The peer serves none of our channels.
    #[error("peer has no channel in common with us")]
    NoCommonChannel,
}

/// The protocol versions a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProtocolVersions {
    /// P2P protocol version ([`P2P_PROTOCOL_VERSION`]; not checked).
    pub p2p: u64,
    /// Block protocol version; peers must agree on it.
    pub block: u64,
    /// Application version (not checked).
    pub app: u64,
}

/// A node's self-description, sent once per connection (protocol.md §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// Protocol versions.
    pub protocol_version: ProtocolVersions,
    /// The node's id; must equal the id of the key that authenticated the connection.
    pub node_id: NodeId,
    /// Where the node accepts connections, e.g. `tcp://0.0.0.0:26656`.
    pub listen_addr: String,
    /// The network (chain id).
    pub network: String,
    /// Software version.
    pub version: String,
    /// The channel ids the node serves, in the order advertised.
    pub channels: Vec<u8>,
    /// Human-readable node name.
    pub moniker: String,
    /// `"on"`, `"off"` or empty.
    pub tx_index: String,
    /// The node's RPC listen address, or empty.
    pub rpc_address: String,
}

/// Go's `IsASCIIText` and not all spaces: non-empty, every byte in 32..=126, some byte
/// other than a space.
fn is_printable_text(s: &str) -> bool {
    s.bytes().all(|b| (32..=126).contains(&b)) && s.bytes().any(|b| b != b' ')
}

/// Strips a `scheme://` prefix as v0.34's `IDAddressString` does.
fn strip_scheme(s: &str) -> &str {
    match s.split_once("://") {
        Some((_, rest)) => rest.split("://").next().unwrap_or_default(),
        None => s,
    }
}

impl NodeInfo {
    /// Decodes the body of a node-info message (without its length prefix), refusing more
    /// than [`MAX_NODE_INFO_SIZE`] bytes. Does not [`validate`](NodeInfo::validate).
    pub fn decode(bytes: &[u8]) -> Result<Self, NodeInfoError> {
        if bytes.len() > MAX_NODE_INFO_SIZE {
            return Err(NodeInfoError::TooLarge {
                len: bytes.len(),
                max: MAX_NODE_INFO_SIZE,
            });
        }
        let proto =
            DefaultNodeInfo::decode(bytes).map_err(|e| NodeInfoError::Decode(e.to_string()))?;
        NodeInfo::try_from(proto)
    }

    /// The protobuf encoding of this node info (without a length prefix).
    pub fn encode(&self) -> Vec<u8> {
        DefaultNodeInfo::from(self).encode_to_vec()
    }

    /// Checks a peer's node info by the rules of protocol.md §2.3, in Go's order.
    ///
    /// The listen address must form a legacy `id@host:port` address. Go resolves a host
    /// name there with DNS and rejects names that do not resolve; core does no IO, so a
    /// syntactically valid DNS name is accepted here and reachability is left to dialing.
    pub fn validate(&self) -> Result<(), NodeInfoError> {
        let legacy = format!("{}@{}", self.node_id, strip_scheme(&self.listen_addr));
        NetAddress::parse(&legacy).map_err(|reason| NodeInfoError::InvalidListenAddr {
            listen_addr: self.listen_addr.clone(),
            reason,
        })?;
        if !self.version.is_empty() && !is_printable_text(&self.version) {
            return Err(NodeInfoError::InvalidVersion(self.version.clone()));
        }
        if self.channels.len() > MAX_CHANNELS {
            return Err(NodeInfoError::TooManyChannels {
                count: self.channels.len(),
                max: MAX_CHANNELS,
            });
        }
        let mut seen = [false; 256];
        for &channel in &self.channels {
            let Some(slot) = seen.get_mut(usize::from(channel)) else {
                continue;
            };
            if *slot {
                return Err(NodeInfoError::DuplicateChannel(channel));
            }
            *slot = true;
        }
        if !is_printable_text(&self.moniker) {
            return Err(NodeInfoError::InvalidMoniker(self.moniker.clone()));
        }
        if !matches!(self.tx_index.as_str(), "" | "on" | "off") {
            return Err(NodeInfoError::InvalidTxIndex(self.tx_index.clone()));
        }
        if !self.rpc_address.is_empty() && !is_printable_text(&self.rpc_address) {
            return Err(NodeInfoError::InvalidRpcAddress(self.rpc_address.clone()));
        }
        Ok(())
    }

    /// Whether we (`self`) can talk to the peer `other` (§2.4 step 7): same block protocol
    /// version, same network, and — if we serve any channel — at least one channel in common.
    pub fn compatible_with(&self, other: &NodeInfo) -> Result<(), NodeInfoError> {
        if self.protocol_version.block != other.protocol_version.block {
            return Err(NodeInfoError::BlockVersionMismatch {
                ours: self.protocol_version.block,
                theirs: other.protocol_version.block,
            });
        }
        if self.network != other.network {
            return Err(NodeInfoError::NetworkMismatch {
                ours: self.network.clone(),
                theirs: other.network.clone(),
            });
        }
        if self.channels.is_empty() || other.channels.iter().any(|c| self.channels.contains(c)) {
            Ok(())
        } else {
            Err(NodeInfoError::NoCommonChannel)
        }
    }
}

impl From<&NodeInfo> for DefaultNodeInfo {
    fn from(info: &NodeInfo) -> Self {
        DefaultNodeInfo {
            protocol_version: ProtocolVersion {
                p2p: info.protocol_version.p2p,
                block: info.protocol_version.block,
                app: info.protocol_version.app,
            },
            default_node_id: info.node_id.to_string(),
            listen_addr: info.listen_addr.clone(),
            network: info.network.clone(),
            version: info.version.clone(),
            channels: info.channels.clone().into(),
            moniker: info.moniker.clone(),
            other: DefaultNodeInfoOther {
                tx_index: info.tx_index.clone(),
                rpc_address: info.rpc_address.clone(),
            },
        }
    }
}

impl TryFrom<DefaultNodeInfo> for NodeInfo {
    type Error = NodeInfoError;

    /// Takes the wire fields over; the node id must already be in canonical form (40
    /// lower-case hex), because the peer's id is compared as a string with the id of its
    /// key (§2.4 step 5).
    fn try_from(proto: DefaultNodeInfo) -> Result<Self, Self::Error> {
        let node_id = NodeId::parse_canonical(&proto.default_node_id)
            .map_err(NodeInfoError::InvalidNodeId)?;
        Ok(NodeInfo {
            protocol_version: ProtocolVersions {
                p2p: proto.protocol_version.p2p,
                block: proto.protocol_version.block,
                app: proto.protocol_version.app,
            },
            node_id,
            listen_addr: proto.listen_addr,
            network: proto.network,
            version: proto.version,
            channels: proto.channels.to_vec(),
            moniker: proto.moniker,
            tx_index: proto.other.tx_index,
            rpc_address: proto.other.rpc_address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_rule() {
        assert!(is_printable_text("node-a ~"));
        assert!(!is_printable_text(""));
        assert!(!is_printable_text("   "));
        assert!(!is_printable_text("a\tb"));
        assert!(!is_printable_text("é"));
        assert!(!is_printable_text("a\x7f"));
    }

    #[test]
    fn strip_scheme_like_v034() {
        assert_eq!(strip_scheme("tcp://0.0.0.0:1"), "0.0.0.0:1");
        assert_eq!(strip_scheme("a://b://c"), "b");
        assert_eq!(strip_scheme("0.0.0.0:1"), "0.0.0.0:1");
    }

    fn info(p2p: u64, block: u64, version: &str, channels: &[u8]) -> NodeInfo {
        NodeInfo {
            protocol_version: ProtocolVersions { p2p, block, app: 0 },
            node_id: crate::NodeKey::from_seed([9; 32]).node_id(),
            listen_addr: "tcp://127.0.0.1:26656".into(),
            network: "chain-1".into(),
            version: version.into(),
            channels: channels.to_vec(),
            moniker: "m".into(),
            tx_index: "on".into(),
            rpc_address: String::new(),
        }
    }

    #[test]
    fn every_p2p_dialect_and_version_string_is_compatible_and_the_block_version_decides() {
        let ours = info(8, 11, "0.1.0", &[0x00, 0x20, 0x30]);
        // CometBFT v0.34..v0.40 advertise p2p 8, v1.x advertises 9; the p2p value and the
        // version string never decide.
        for p2p in [0, 7, 8, 9, 10, u64::MAX] {
            for version in ["0.34.24", "0.38.25", "1.0.1", "v2-custom+build", ""] {
                let theirs = info(p2p, 11, version, &[0x20, 0x40]);
                assert_eq!(theirs.validate(), Ok(()), "p2p {p2p}, {version:?}");
                assert_eq!(
                    ours.compatible_with(&theirs),
                    Ok(()),
                    "p2p {p2p}, {version:?}"
                );
            }
        }
        assert_eq!(
            ours.compatible_with(&info(9, 12, "1.0.1", &[0x20])),
            Err(NodeInfoError::BlockVersionMismatch {
                ours: 11,
                theirs: 12
            })
        );
        assert_eq!(
            ours.compatible_with(&info(9, 11, "1.0.1", &[0x60])),
            Err(NodeInfoError::NoCommonChannel)
        );
        let mut elsewhere = info(9, 11, "1.0.1", &[0x20]);
        elsewhere.network = "chain-2".into();
        assert!(matches!(
            ours.compatible_with(&elsewhere),
            Err(NodeInfoError::NetworkMismatch { .. })
        ));
    }

    #[test]
    fn decode_refuses_oversized_input() {
        let big = vec![0u8; MAX_NODE_INFO_SIZE + 1];
        assert_eq!(
            NodeInfo::decode(&big),
            Err(NodeInfoError::TooLarge {
                len: MAX_NODE_INFO_SIZE + 1,
                max: MAX_NODE_INFO_SIZE
            })
        );
        assert!(matches!(
            NodeInfo::decode(&[0xff]),
            Err(NodeInfoError::Decode(_))
        ));
    }
}
