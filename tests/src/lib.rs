//! Shared helpers for the integration tests and benchmarks under `tests/`: a minimal
//! blocking std-TCP driver for tmp2p's SecretConnection, so interop tests and benches run
//! our machine over real sockets against independent implementations.

pub mod blocking_secret;
