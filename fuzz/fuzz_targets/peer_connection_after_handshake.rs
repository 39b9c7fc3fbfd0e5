//! Fuzz target: shim over `tmp2p_core::fuzzing::peer_connection_after_handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tmp2p_core::fuzzing::peer_connection_after_handshake(data));
