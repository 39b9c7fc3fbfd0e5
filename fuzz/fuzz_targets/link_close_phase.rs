//! Fuzz target: shim over `tmp2p_core::fuzzing::link_close_phase`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tmp2p_core::fuzzing::link_close_phase(data));
