#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every fuzz body of `tmp2p_core::fuzzing` over every file of its seed corpus
//! (`fuzz/corpus/<target>/`), then over seeded pseudo-random inputs (fresh bytes and
//! mutated corpus files), so CI exercises each cargo-fuzz target on stable.
//!
//! Adding a target: one line in the `fuzz_targets!` list below (name = the body's name =
//! the corpus directory's name, and how many pseudo-random inputs to run).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

macro_rules! fuzz_targets {
    ($($target:ident: $random_inputs:expr;)*) => {$(
        #[test]
        fn $target() {
            let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/", stringify!($target));
            run_target(Path::new(corpus), tmp2p_core::fuzzing::$target, $random_inputs);
        }
    )*};
}

// Debug builds run the crypto slowly; these counts keep each test to seconds.
fuzz_targets! {
    secret_handshake_low: 2000;
    secret_handshake_high: 2000;
    secret_handshake_valid_prefix: 400;
    frame_opener: 1200;
    mconn_packet_decoder: 3000;
    peer_connection_after_handshake: 150;
    pex_message: 1500;
    node_info: 3000;
    auth_sig: 400;
    addrbook_import: 2000;
    node_key_load: 2000;
    reactor_message: 3000;
    answering_connection: 150;
    link_close_phase: 150;
}

/// The reactor-message seeds are real messages, so the fuzzer starts from valid structure:
/// each decodes on the channel its first byte picks (the body's layout).
#[test]
fn every_reactor_message_seed_decodes_on_its_channel() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/reactor_message"
    );
    let mut seeds = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        assert!(
            tmp2p_core::fuzzing::reactor_message_decodes(&data),
            "{} does not decode",
            path.display()
        );
        seeds += 1;
    }
    assert!(seeds >= 17, "{seeds} seeds");
}

fn run_target(corpus: &Path, body: fn(&[u8]), random_inputs: usize) {
    let seeds = read_corpus(corpus);
    for (path, input) in &seeds {
        run_one(body, input, &format!("corpus file {}", path.display()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x7470_3270);
    for i in 0..random_inputs {
        let input = if i % 2 == 0 {
            fresh_bytes(&mut rng)
        } else {
            let (_, seed) = &seeds[rng.next_u32() as usize % seeds.len()];
            mutate(seed, &mut rng)
        };
        run_one(body, &input, &format!("pseudo-random input {i}"));
    }
}

/// Every file of the corpus directory; fails if it is missing or empty.
fn read_corpus(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()));
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    assert!(
        !files.is_empty(),
        "corpus directory {} is empty",
        dir.display()
    );
    files.sort();
    files
}

fn run_one(body: fn(&[u8]), input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
        panic!("fuzz body failed on {what}: {}", hex::encode(input));
    }
}

/// Random bytes, mostly short, sometimes a few frames long.
fn fresh_bytes(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = match rng.next_u32() % 4 {
        0 => rng.next_u32() % 8,
        1 => rng.next_u32() % 64,
        2 => rng.next_u32() % 1100,
        _ => rng.next_u32() % 4200,
    };
    let mut bytes = vec![0u8; len as usize];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// A corpus file with a few random byte changes, a cut or an insertion.
fn mutate(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.next_u32() % 4 {
        let at = |rng: &mut ChaCha8Rng, len: usize| rng.next_u32() as usize % (len + 1);
        match rng.next_u32() % 4 {
            0 if !bytes.is_empty() => {
                let i = at(rng, bytes.len() - 1);
                bytes[i] ^= 1 << (rng.next_u32() % 8);
            }
            1 if !bytes.is_empty() => {
                let i = at(rng, bytes.len() - 1);
                bytes[i] = rng.next_u32() as u8;
            }
            2 => {
                let cut = at(rng, bytes.len());
                bytes.truncate(cut);
            }
            _ => {
                let i = at(rng, bytes.len());
                let mut extra = vec![0u8; (rng.next_u32() % 40) as usize];
                rng.fill_bytes(&mut extra);
                bytes.splice(i..i, extra);
            }
        }
    }
    bytes
}
