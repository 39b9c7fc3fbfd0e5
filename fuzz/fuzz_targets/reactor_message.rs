//! Fuzz target: shim over `tmp2p_core::fuzzing::reactor_message` (input layout documented there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tmp2p_core::fuzzing::reactor_message(data));
