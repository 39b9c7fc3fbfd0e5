//! Shared helpers for the integration tests and benchmarks under `tests/`: minimal blocking
//! std-TCP runners for tmp2p's machines, and a reference MConnection peer built only from
//! independent crates, so interop tests never have our code on both ends.

pub mod blocking_peer;
pub mod blocking_secret;
pub mod memnet;
pub mod reference_consensus;
pub mod reference_peer;
pub mod release_binary;
pub mod sim;
pub mod smol_support;
