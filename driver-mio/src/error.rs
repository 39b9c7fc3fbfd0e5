//! The driver's one error type: what can go wrong while starting or talking to a node.

use std::io;
use std::net::SocketAddr;

use tmp2p_core::node::NodeError;
use tmp2p_core::node_config::NodeConfigError;
use tmp2p_core::router::{RouterError, SendError};
use tmp2p_store::StoreError;

/// Why the mio driver could not start or could not take a request.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The node configuration is invalid.
    #[error("invalid node configuration: {0}")]
    Config(#[from] NodeConfigError),
    /// The router refused a setting or a channel.
    #[error("router: {0}")]
    Router(#[from] RouterError),
    /// The node machine refused a setting, a channel, PEX or a configured peer.
    #[error("node: {0}")]
    Node(#[from] NodeError),
    /// The peer store could not be read.
    #[error("peer store: {0}")]
    Store(#[from] StoreError),
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The caller's token range cannot hold the driver's fixed tokens plus one connection.
    #[error(
        "token range of {len} tokens at {start} is too small or overflows (need at least {min})"
    )]
    TokenRange {
        /// First token of the range.
        start: usize,
        /// Tokens in the range.
        len: usize,
        /// The least usable length.
        min: usize,
    },
    /// A mio registry operation or the event loop failed.
    #[error("event loop: {0}")]
    Io(#[from] io::Error),
    /// The driver (or its thread) is gone, so the request cannot be delivered.
    #[error("the driver has stopped")]
    Stopped,
    /// The application channels of this driver were already created.
    #[error("the application channels were already taken")]
    ChannelsTaken,
    /// A send was not queued (see `SendError`: a full peer queue under `try_send`, a peer
    /// that is not connected or lacks the channel, a channel that is not open).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The driver thread panicked.
    #[error("the driver thread panicked")]
    ThreadPanicked,
}
