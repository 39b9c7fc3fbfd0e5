//! Binds the sans-IO tmp2p core to smol: the async API of ADR 062 over real TCP.
//!
//! ```text
//! let mut builder = NodeBuilder::new(config, key, Box::new(store))?;  // validates, binds, loads
//! let echo = builder.open_channel(descriptor, WrapperCodec::<EchoMessage, EchoInner>::new())?;
//! let raw = builder.open_raw_channel(raw_descriptor)?;
//! let updates = builder.subscribe();
//! let node = builder.start().await?;                                  // dials, accepts
//! node.spawn(echo::run_echo(echo)).detach();
//! raw.outbound.send(Envelope::broadcast(bytes)).await?;
//! node.stop().await;                                                  // graceful
//! ```
//!
//! Channels are opened on the [`NodeBuilder`], before [`NodeBuilder::start`]: they are
//! advertised in our NodeInfo, so they are fixed once the first connection starts.
//!
//! Inside, tasks run on an executor of the node's own with [`DriverOptions::threads`]
//! threads ([`NodeBuilder::start`]) or on the application's executor
//! ([`NodeBuilder::start_on`]: the application runs it, beside its own tasks): one router
//! task owns the node machine (`tmp2p_core::node::Node`: Router, PeerManager, PEX;
//! everything reaches it by message, no lock), one task per connection owns that
//! connection's `Link` (so handshakes and AEAD run in parallel), one task owns the peer
//! store, one accepts TCP connections (admission runs in the node before any handshake
//! work, except on a shared listener: below). Timers come from async-io, DNS from async-net.
//!
//! Outbound: see the delivery contract in README.md. A send waits while that peer's queue
//! for the channel is full ([`ChannelSender::send`]); [`ChannelSender::try_send`] hands the
//! message back instead.
//!
//! Inbound messages go from each connection task straight to the application's channels
//! once the node has admitted the peer, under core's one inbound rule (`tmp2p_core::node::
//! Link`, the same in the mio driver): when a channel is full, the connection holds what
//! arrives for that channel and goes on reading its socket and delivering its other
//! channels, so pings and pongs go on; past `NodeConfig::inbound_hold_bytes` it stops
//! reading until there is room (TCP backpressure towards that peer, nothing dropped).
//!
//! Several networks on one address: nodes built with [`NodeBuilder::on_shared_listener`]
//! share a [`SharedListener`], which sends each dialer to the node of its network once its
//! handshake has told it (so there admission follows the handshake, within the
//! [`SharedLimits`] of core's `shared_address`).
//!
//! Peer exchange: [`NodeBuilder::enable_pex`] opens channel 0x00 and runs the core's PEX
//! reactor inside the node machine (seed mode is a [`PexConfig`] flag).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod connection_task;
pub mod echo;
mod envelope;
mod error;
mod inbound;
mod node;
mod router_task;
mod send_windows;
mod shared_listener;
mod store_task;

pub use envelope::{Channel, ChannelSender, Envelope, ErrorSender};
pub use error::{DriverError, TrySendError};
pub use node::{DriverOptions, NodeBuilder, NodeHandle, PeerUpdates};
pub use shared_listener::{SharedListener, SharedServing};
pub use tmp2p_core::node::CountersView;
pub use tmp2p_core::pex::PexConfig;
pub use tmp2p_core::router::{OverflowPolicy, PeerError, Target};
pub use tmp2p_core::shared_address::{SharedAddressCounters, SharedAddressSnapshot, SharedLimits};
