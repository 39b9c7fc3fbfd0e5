//! Interop of tmp2p's SecretConnection with tendermint-p2p's (an independent
//! implementation used in production against Go nodes) over real loopback TCP, in both
//! dial directions, with both sides sending at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tendermint_p2p::secret_connection::{SecretConnection as TmSecretConnection, Version};
use tmp2p_core::secret::{AeadBackend, SecretConfig};
use tmp2p_core::NodeKey;
use tmp2p_tests::blocking_secret::handshake;

/// Sizes of the consecutive transfers in each direction.
const SIZES: [usize; 6] = [0, 1, 1023, 1024, 1025, 8 * 1024 * 1024];

fn payload(size: usize, salt: u8) -> Vec<u8> {
    (0..size)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(salt ^ (i >> 10) as u8)
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Dial {
    WeDial,
    TheyDial,
}

fn connect(dial: Dial) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = thread::spawn(move || listener.accept().unwrap().0);
    let dialed = TcpStream::connect(addr).unwrap();
    let accepted = accept.join().unwrap();
    match dial {
        // (ours, theirs)
        Dial::WeDial => (dialed, accepted),
        Dial::TheyDial => (accepted, dialed),
    }
}

fn run(dial: Dial, backend: AeadBackend) {
    let (ours, theirs) = connect(dial);
    let our_key = NodeKey::from_seed([0x11; 32]);
    let their_seed = [0x22; 32];
    let their_id = NodeKey::from_seed(their_seed).node_id();
    let our_id = our_key.node_id();

    let peer = thread::spawn(move || {
        let key = ed25519_consensus::SigningKey::from(their_seed);
        let conn = TmSecretConnection::new(theirs, key, Version::V0_34).unwrap();
        let remote = conn.remote_pubkey().ed25519().unwrap();
        assert_eq!(
            tmp2p_core::NodeId::from_public_key(&remote.to_bytes()),
            our_id,
            "tendermint-p2p authenticated the wrong key"
        );
        let (mut tx, mut rx) = conn.split().unwrap();
        let writer = thread::spawn(move || {
            for size in SIZES {
                tx.write_all(&payload(size, 0xbb)).unwrap();
            }
            tx.flush().unwrap();
        });
        // tendermint-p2p panics on read buffers under 1024 bytes: use 64 KiB.
        let mut buf = vec![0u8; 64 * 1024];
        for size in SIZES {
            let mut got = Vec::with_capacity(size);
            while got.len() < size {
                let n = rx
                    .read(&mut buf[..(size - got.len()).clamp(1024, 64 * 1024)])
                    .unwrap();
                assert!(n > 0, "eof");
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got.len(), size, "tendermint-p2p read past a message");
            assert!(
                got == payload(size, 0xaa),
                "tendermint-p2p got corrupted {size}-byte payload"
            );
        }
        writer.join().unwrap();
    });

    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (mut writer, mut reader, remote) =
        handshake(ours, &our_key, &mut rng, SecretConfig { backend }).unwrap();
    assert_eq!(remote.node_id(), their_id);
    let sender = thread::spawn(move || {
        for size in SIZES {
            writer.write_all(&payload(size, 0xaa), 256 * 1024).unwrap();
        }
        writer
    });
    for size in SIZES {
        let got = reader.read_exact(size).unwrap();
        assert!(
            got == payload(size, 0xbb),
            "we got a corrupted {size}-byte payload"
        );
    }
    let _writer = sender.join().unwrap();
    peer.join().unwrap();
}

#[test]
fn we_dial_tendermint_p2p_both_directions_at_once() {
    for &backend in AeadBackend::all() {
        run(Dial::WeDial, backend);
    }
}

#[test]
fn tendermint_p2p_dials_us_both_directions_at_once() {
    for &backend in AeadBackend::all() {
        run(Dial::TheyDial, backend);
    }
}
