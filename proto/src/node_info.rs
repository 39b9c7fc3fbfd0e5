//! `tendermint.p2p.DefaultNodeInfo`, hand-derived so it encodes exactly as Go does.

use crate::p2p::{DefaultNodeInfoOther, ProtocolVersion};

/// `tendermint.p2p.DefaultNodeInfo` (v0.35 calls it `NodeInfo`; same field numbers).
///
/// Go declares `protocol_version` (1) and `other` (8) gogoproto non-nullable, so they are
/// always on the wire, even when empty (`0a 00`, `42 00`). prost-build has no option for
/// that on proto3 message fields; prost's `required` attribute has exactly this encoding,
/// so this one type is derived by hand. The schema in `proto/tendermint/p2p/types.proto`
/// documents the same fields.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct DefaultNodeInfo {
    /// P2P, block and app protocol versions.
    #[prost(message, required, tag = "1")]
    pub protocol_version: ProtocolVersion,
    /// The node's id: 40 lower-case hex characters.
    #[prost(string, tag = "2")]
    pub default_node_id: ::prost::alloc::string::String,
    /// The address the node accepts connections on, e.g. `tcp://0.0.0.0:26656`.
    #[prost(string, tag = "3")]
    pub listen_addr: ::prost::alloc::string::String,
    /// The network (chain id).
    #[prost(string, tag = "4")]
    pub network: ::prost::alloc::string::String,
    /// The software version.
    #[prost(string, tag = "5")]
    pub version: ::prost::alloc::string::String,
    /// One byte per channel id the node serves.
    #[prost(bytes = "bytes", tag = "6")]
    pub channels: ::bytes::Bytes,
    /// Human-readable node name.
    #[prost(string, tag = "7")]
    pub moniker: ::prost::alloc::string::String,
    /// Transaction indexing and RPC address.
    #[prost(message, required, tag = "8")]
    pub other: DefaultNodeInfoOther,
}
