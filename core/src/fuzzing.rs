//! Fuzz bodies: one function per remote-facing parser, taking arbitrary bytes.
//! `secret_handshake` drives whole SecretConnection machines, `frame_opener` the frame
//! layer alone; this file holds what every body shares (fixed keys, split schedules).
//!
//! Built for tests and with the `fuzzing` feature. The cargo-fuzz targets under `fuzz/`
//! are thin shims over these functions, and `tests/tests/fuzz_corpus.rs` runs every one of
//! them over its seed corpus on stable, so CI exercises each target without nightly.
//!
//! Every body is deterministic: fixed Ed25519 identities and fixed `ChaCha20Rng` seeds for
//! the ephemeral X25519 keys. The machines under test must never panic on any input; the
//! bodies themselves panic (assert) only when an invariant breaks, which is a finding.
//!
//! Input layout: the first bytes are control bytes (documented on each body), the rest is
//! the hostile stream. A *split schedule* byte chooses how the stream is cut into
//! `handle_input` calls: 0 delivers it whole, 1 one byte at a time, any other value a
//! pseudo-random walk of chunk sizes up to a bound picked by the byte (3 … 4096), so the
//! fuzzer steers splits as well as contents.

// A panic here is how an invariant violation reaches libFuzzer or the test runner; this
// module is compiled only for tests and with the `fuzzing` feature.
// Fuzz bodies also index their own test data freely.
#![allow(clippy::panic, clippy::indexing_slicing)]

mod answering;
mod frame_opener;
mod link_close;
mod parsers;
mod reactor_message;
mod secret_handshake;

pub use answering::answering_connection;
pub use frame_opener::frame_opener;
pub use link_close::{
    fixture_admit, fixture_exchange, fixture_link_pair, link_close_phase, FIXTURE_CHANNEL,
};
pub use parsers::{addrbook_import, auth_sig, node_info, node_key_load};
pub use reactor_message::{reactor_message, reactor_message_decodes};
pub use secret_handshake::{
    secret_handshake_high, secret_handshake_low, secret_handshake_valid_prefix,
};

use crate::secret::AeadBackend;
use crate::NodeKey;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// `ChaCha20Rng::seed_from_u64` seed whose ephemeral X25519 public key starts `00 00 9e 80`:
/// it sorts below almost every peer key, so the machine takes the "local is least" branch
/// of the key schedule.
pub const LOW_EPHEMERAL_SEED: u64 = 91_542;
/// `ChaCha20Rng::seed_from_u64` seed whose ephemeral X25519 public key starts `ff ff 9d 34`:
/// it sorts above almost every peer key.
pub const HIGH_EPHEMERAL_SEED: u64 = 152_040;
/// Ed25519 seed of the machine under test.
pub const LOCAL_IDENTITY_SEED: [u8; 32] = [0x11; 32];
/// Ed25519 seed of the simulated honest peer in [`secret_handshake_valid_prefix`].
pub const PEER_IDENTITY_SEED: [u8; 32] = [0x22; 32];
/// Key of the [`frame_opener`] target's sealer and opener.
pub const FRAME_KEY: [u8; 32] = [0x5a; 32];

/// The NodeInfo of `key` on `network` with `channels`, as fuzz bodies and core's tests
/// advertise it (protocol versions of CometBFT v0.38).
pub fn fixture_node_info(
    key: &NodeKey,
    network: &str,
    channels: &[u8],
) -> crate::node_info::NodeInfo {
    crate::node_info::NodeInfo {
        protocol_version: crate::node_info::ProtocolVersions {
            p2p: 8,
            block: 11,
            app: 0,
        },
        node_id: key.node_id(),
        listen_addr: "tcp://127.0.0.1:26656".into(),
        network: network.into(),
        version: "0.38.0".into(),
        channels: channels.to_vec(),
        moniker: "test".into(),
        tx_index: "on".into(),
        rpc_address: String::new(),
    }
}

fn pick_backend(bits: u8) -> AeadBackend {
    let all = AeadBackend::all();
    all.get(usize::from(bits) % all.len().max(1))
        .copied()
        .unwrap_or_default()
}

/// Cuts `data` into the pieces one call each receives, as chosen by a split-schedule byte
/// (see the module docs).
fn chunks(data: &[u8], schedule: u8) -> Chunks<'_> {
    const BOUNDS: [usize; 10] = [3, 16, 34, 35, 36, 100, 1043, 1044, 1045, 4096];
    let max = match schedule {
        0 => usize::MAX,
        1 => 1,
        s => BOUNDS
            .get(usize::from(s) % BOUNDS.len())
            .copied()
            .unwrap_or(1),
    };
    Chunks {
        rest: data,
        state: u32::from(schedule) | 0x9e37_0000,
        max,
    }
}

/// Iterator of [`chunks`]: sizes from a xorshift walk in `1..=max`.
struct Chunks<'a> {
    rest: &'a [u8],
    state: u32,
    max: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let size = match self.max {
            usize::MAX => self.rest.len(),
            max => 1 + (self.state as usize) % max,
        };
        let (now, rest) = self.rest.split_at(size.min(self.rest.len()));
        self.rest = rest;
        Some(now)
    }
}

/// MConnection packet decoder: arbitrary plaintext into a fresh MConnection (body in
/// [`crate::mconn::fuzz_packet_decoder`]).
pub fn mconn_packet_decoder(data: &[u8]) {
    crate::mconn::fuzz_packet_decoder(data);
}

/// A live `PeerConnection` (real handshake and node-info exchange done) fed arbitrary
/// correctly sealed plaintext (body in [`crate::connection::fuzz_after_handshake`]).
pub fn peer_connection_after_handshake(data: &[u8]) {
    // Core reads no clock in its machines; this fuzz-only entry point needs one arbitrary
    // starting instant, and the outcome does not depend on which.
    let now = crate::test_clock::epoch();
    crate::connection::fuzz_after_handshake(data, now);
}

/// PEX message decoder and reactor: `data[0]` picks whether the rest arrives as the answer to
/// our outstanding request (mode 0), unsolicited (mode 1), or as requests from the peer
/// (mode 2); the rest is the channel-0 message bytes. Every outcome must be typed: a delivered
/// set of addresses, a `PexPeerError`, or nothing. Never panics.
pub fn pex_message(data: &[u8]) {
    use crate::address::NodeAddress;
    use crate::peer_manager::{
        ClockAnchor, PeerManager, PeerManagerOptions, PeerStatus, PeerUpdate,
    };
    use crate::pex::{PexConfig, PexReactor};

    let now = crate::test_clock::epoch();
    let clock = ClockAnchor {
        instant: now,
        since_unix_epoch: std::time::Duration::from_secs(1_700_000_000),
    };
    // Deriving the two Ed25519 keys costs more than a small input's whole run: once.
    static IDS: std::sync::OnceLock<(crate::NodeId, crate::NodeId)> = std::sync::OnceLock::new();
    let (me, peer) = *IDS.get_or_init(|| {
        let id = |seed| NodeKey::from_seed(seed).node_id();
        (id(LOCAL_IDENTITY_SEED), id(PEER_IDENTITY_SEED))
    });
    let options = PeerManagerOptions {
        max_peers: 300,
        max_connected: 16,
        ..PeerManagerOptions::default()
    };
    let Ok(mut pm) = PeerManager::new(me, options, clock) else {
        return;
    };
    let Ok(address) = NodeAddress::parse(&format!("{peer}@8.8.4.4:26656")) else {
        return;
    };
    let mode = data.first().copied().unwrap_or(0) % 3;
    let message = bytes::Bytes::copy_from_slice(data.get(1..).unwrap_or_default());
    let _ = pm.add(now, address.clone());
    let _ = pm.try_dial_next(now);
    let _ = pm.dialed(now, &address, None);
    pm.ready(peer, vec![0]);
    let Ok(mut pex) = PexReactor::new(PexConfig::default()) else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let up = PeerUpdate {
        node_id: peer,
        status: PeerStatus::Up,
        channels: vec![0],
    };
    pex.handle_peer_update(now, &up, &mut pm);
    if mode == 1 {
        // Consume our request's answer slot first, so the fuzz bytes are unsolicited.
        while pex.poll_output().is_some() {}
        let empty = bytes::Bytes::from_static(&[0x12, 0x00]);
        pex.handle_message(now, peer, empty, &mut pm, &mut rng);
    }
    let repeats = if mode == 2 { 3 } else { 1 };
    for _ in 0..repeats {
        pex.handle_message(now, peer, message.clone(), &mut pm, &mut rng);
    }
    while pex.poll_output().is_some() {}
    pex.handle_timeout(now, &mut pm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_input_exactly() {
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        for schedule in 0..=255u8 {
            let pieces: Vec<&[u8]> = chunks(&data, schedule).collect();
            assert!(pieces.iter().all(|p| !p.is_empty()));
            assert_eq!(pieces.concat(), data);
        }
        assert_eq!(chunks(&data, 0).count(), 1);
        assert_eq!(chunks(&data, 1).count(), 5000);
    }
}
