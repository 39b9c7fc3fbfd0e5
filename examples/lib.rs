//! tmp2p's examples, a crate of their own so `cargo test --workspace` and clippy compile
//! them on every CI run. Each is one file to copy as the start of an application:
//!
//! - `observe_smol.rs`: a CometBFT gossip observer on the smol driver (async channels);
//! - `observe_mio.rs`: the same observer on the mio driver (a node on its own thread,
//!   blocking handle and inbound queue).
//!
//! Run one against a CometBFT node: `cargo run -p tmp2p-examples --example observe_smol --
//! ID@HOST:PORT CHAIN_ID`.
#![forbid(unsafe_code)]
