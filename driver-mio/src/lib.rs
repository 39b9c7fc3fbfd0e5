//! Binds the sans-IO tmp2p core to mio: one thread runs the Router and every
//! `PeerConnection` (one per TCP connection, owned by the driver) over non-blocking
//! sockets.
//!
//! Two ways to run it:
//! - **Embedded** in an event loop someone else owns: a [`Driver`] registers its listener
//!   and sockets on the caller's `mio::Registry`, using only tokens of a [`TokenRange`]
//!   the caller chooses, and reports its next deadline.
//! - **Ready-made**: [`RunningNode::spawn`] runs the same driver on its own thread.
//!
//! The application side is either channels usable from any thread ([`NodeHandle`] for
//! commands, [`Inbound`] for messages and peer updates; a `mio::Waker` wakes the loop) or
//! a [`Callback`] that runs reactor code on the loop thread with a [`Control`].
//!
//! # Call order (embedded), as quinn-proto documents its own
//! 1. [`Driver::new`] with a [`DriverSetup`] (NodeConfig, key, channels, peer store,
//!    limits), the caller's `Registry` and a [`TokenRange`]. Then optionally
//!    [`Driver::channels`] / [`Driver::channels_with_waker`] (cross-thread application
//!    side), or [`Driver::set_callback`] (plus [`Driver::handle`] for commands).
//! 2. Loop:
//!    - `poll.poll(&mut events, driver.poll_duration(Instant::now()))` (a `Some(0)`
//!      timeout means work is left over from the last turn);
//!    - pass every event to [`Driver::handle_event`] (events of other tokens are ignored,
//!      so passing all of them is fine); it only records readiness;
//!    - call [`Driver::process`] once with the current time: it does one bounded turn of
//!      work (commands, timers, accepts, reads and writes within per-connection budgets,
//!      router actions, inbound delivery, the peer store);
//!    - without channels or a callback, drain [`Driver::poll_event`]; same-thread code
//!      may call [`Driver::send`] / [`Driver::control`] at any time, then `process`.
//! 3. [`Driver::shutdown`] (the node machine's graceful stop: each connection closes once
//!    what was accepted for it is handed over, within `NodeConfig::stop_timeout`), keep
//!    looping until [`Driver::is_finished`], or give up on what is left at
//!    `driver.node().stop_give_up()` (as [`RunningNode`] does, after a short grace).
//!
//! # Flow control
//! Outbound: the delivery contract in README.md, decided by the node machine
//! (`tmp2p_core::node`): per peer and channel a bounded queue; [`NodeHandle::send`]
//! blocks while it is full, [`NodeHandle::try_send`] and [`Control::send`] hand the message
//! back (then [`AppEvent::Writable`]); drop channels ([`DriverSetup::drop_channels`]) count
//! their drops. Each connection's `Link` holds what the node handed it until its machine
//! takes it; unwritten sealed bytes (partial writes) stay in the connection's buffer. Inbound:
//! core's one rule (`tmp2p_core::node::Link`). The application's queue takes at most
//! `max_pending_inbound` events; beyond that, received messages wait in their connection,
//! which goes on reading (pings and pongs flow, so a slow application does not make
//! connections time out) until it holds `NodeConfig::inbound_hold_bytes`. Only then does it
//! stop reading and drop its read interest, so TCP's window closes on that one sender;
//! connections with nothing waiting are unaffected. All resume when the application
//! catches up.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod app;
mod driver;
mod error;
mod handle;
mod link;
mod send_windows;
mod setup;
mod thread;
mod tokens;

pub use app::{AppEvent, Callback, Control};
pub use driver::{waker_notify, Driver};
pub use error::DriverError;
pub use handle::{Inbound, LoopCall, NodeHandle, Notify};
pub use setup::{DriverLimits, DriverSetup};
pub use thread::RunningNode;
pub use tokens::TokenRange;
