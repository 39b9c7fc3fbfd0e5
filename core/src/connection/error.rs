//! Why a peer connection closed, and the §2.4 class each reason belongs to.

use std::time::Duration;

use crate::id::NodeId;
use crate::mconn::MConnError;
use crate::node_info::NodeInfoError;
use crate::secret::SecretError;

/// The classes of protocol.md §2.4's table, for the router's bookkeeping (an auth failure
/// and an incompatible peer are treated differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The peer could not prove the identity it claims (`isAuthFailure`).
    AuthFailure,
    /// The peer's node info breaks the rules (`isNodeInfoInvalid`).
    InvalidNodeInfo,
    /// The peer is on another network, block version, or shares no channel
    /// (`isIncompatible`).
    Incompatible,
    /// We connected to ourselves (`isSelf`).
    SelfConnection,
    /// The peer broke the MConnection protocol or timed out.
    Protocol,
    /// The connection ended without a protocol error.
    Closed,
}

/// Why a peer connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The SecretConnection handshake or frame layer failed.
    #[error("secret connection: {0}")]
    Secret(#[source] SecretError),
    /// We dialed one id and the peer authenticated as another.
    #[error("dialed {dialed} but the peer authenticated as {authenticated}")]
    DialedIdMismatch {
        /// The id we dialed.
        dialed: NodeId,
        /// The id of the key the peer proved.
        authenticated: NodeId,
    },
    /// The node-info length prefix is above the limit.
    #[error("node info of {len} bytes exceeds the limit of {max}")]
    NodeInfoTooLarge {
        /// Announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The node-info length prefix is not a valid uvarint.
    #[error("node info length prefix is not a valid uvarint")]
    NodeInfoLengthPrefix,
    /// The node info does not decode or breaks a §2.3 rule.
    #[error("invalid node info: {0}")]
    InvalidNodeInfo(#[source] NodeInfoError),
    /// The node info claims an id other than the authenticated key's.
    #[error("peer authenticated as {authenticated} but its node info says {node_info}")]
    NodeInfoIdMismatch {
        /// The id of the key the peer proved.
        authenticated: NodeId,
        /// The id in its node info.
        node_info: NodeId,
    },
    /// The peer is us.
    #[error("connected to ourselves")]
    SelfConnection,
    /// An answering connection was given a node info for another key than its own.
    #[error("our answer names node {node_info}, but this connection's key is {key}")]
    AnswerIdMismatch {
        /// The id of our key.
        key: NodeId,
        /// The id in the node info we were to answer with.
        node_info: NodeId,
    },
    /// While we chose our node info, the dialer sent more than the limit after its own.
    #[error("the peer sent {len} bytes before our node info (limit {max})")]
    InputBeforeAnswer {
        /// Bytes held.
        len: usize,
        /// The limit (`PeerConfig::max_node_info_size`).
        max: usize,
    },
    /// The peer is on another network, block version, or shares no channel.
    #[error("incompatible peer: {0}")]
    Incompatible(#[source] NodeInfoError),
    /// The handshake and node-info exchange did not finish in time.
    #[error("handshake did not complete within {0:?}")]
    HandshakeTimeout(Duration),
    /// The stream ended after authentication but before the node info.
    #[error("stream ended during the node-info exchange")]
    EofDuringHandshake,
    /// The MConnection layer failed (bad packet, unknown channel, pong timeout, ...).
    #[error("mconnection: {0}")]
    MConn(#[source] MConnError),
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    PeerClosed,
    /// The connection is already closed.
    #[error("connection already closed")]
    Closed,
    /// A close did not finish within the close linger (the peer stopped reading): what
    /// was left unsent was dropped.
    #[error("close did not finish within {0:?}: the rest was dropped")]
    CloseTimedOut(Duration),
}

impl ConnectionError {
    /// The §2.4 class of this failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            ConnectionError::Secret(_)
            | ConnectionError::DialedIdMismatch { .. }
            | ConnectionError::NodeInfoIdMismatch { .. }
            | ConnectionError::NodeInfoTooLarge { .. }
            | ConnectionError::NodeInfoLengthPrefix
            | ConnectionError::EofDuringHandshake
            | ConnectionError::HandshakeTimeout(_) => FailureKind::AuthFailure,
            ConnectionError::InvalidNodeInfo(_) => FailureKind::InvalidNodeInfo,
            ConnectionError::Incompatible(_) => FailureKind::Incompatible,
            ConnectionError::SelfConnection => FailureKind::SelfConnection,
            ConnectionError::InputBeforeAnswer { .. } => FailureKind::Protocol,
            ConnectionError::MConn(_) => FailureKind::Protocol,
            // Our own mistake, not the peer's.
            ConnectionError::AnswerIdMismatch { .. }
            | ConnectionError::PeerClosed
            | ConnectionError::Closed
            | ConnectionError::CloseTimedOut(_) => FailureKind::Closed,
        }
    }
}
