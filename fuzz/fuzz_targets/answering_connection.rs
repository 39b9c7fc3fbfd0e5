//! Fuzz target: shim over `tmp2p_core::fuzzing::answering_connection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tmp2p_core::fuzzing::answering_connection(data));
