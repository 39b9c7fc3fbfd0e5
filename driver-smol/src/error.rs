//! `DriverError`: every way the smol driver's API can fail, one enum for the crate.

use std::net::SocketAddr;

use tmp2p_core::node_config::NodeConfigError;
use tmp2p_core::pex::PexError;
use tmp2p_core::router::RouterError;
use tmp2p_store::StoreError;

/// Why a node could not start or a request to a running node failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The node configuration is invalid (checked before anything starts).
    #[error("invalid node configuration: {0}")]
    Config(#[from] NodeConfigError),
    /// The Router refused a channel or a peer address.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The peer store could not be read at start.
    #[error("peer store: {0}")]
    Store(#[from] StoreError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// An executor thread could not be started.
    #[error("cannot start executor thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A driver option is out of range; the text names it and its limit.
    #[error("invalid driver option: {0}")]
    Options(String),
    /// The PEX configuration is invalid (checked by [`crate::NodeBuilder::enable_pex`]).
    #[error("invalid PEX configuration: {0}")]
    Pex(#[from] PexError),
    /// The node has stopped (or is stopping): the request was not carried out.
    #[error("the node is not running")]
    Stopped,
}
