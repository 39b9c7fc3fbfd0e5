//! The sans-IO core of tmp2p: every protocol machine of the Tendermint / CometBFT
//! peer-to-peer stack, free of sockets, threads, clocks and global randomness.
//!
//! Inputs are method calls that carry the current time; outputs are pulled
//! (`poll_transmit`, `poll_event`, `poll_timeout`). Randomness comes from a caller RNG.
//! See `ARCHITECTURE.md` for the map.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
// Remote input is hostile: library code indexes with `get`, or says why it cannot panic.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod address;
mod channel_set;
pub mod cometbft_channels;
pub mod connection;
pub mod deadline;
pub mod delimited;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod id;
pub mod key;
pub mod limits;
pub mod mconn;
pub mod node;
pub mod node_config;
pub mod node_info;
pub mod peer_manager;
pub mod pex;
pub mod queue;
pub mod round_follower;
pub mod router;
pub mod secret;
pub mod shared_address;
#[cfg(any(test, feature = "fuzzing"))]
mod test_clock;
pub mod typed;

pub use id::NodeId;
pub use key::{NodeKey, PublicKey};
