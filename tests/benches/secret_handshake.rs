//! Full SecretConnection handshakes per second over loopback TCP (issue #4): ours against
//! ours and tendermint-p2p 0.41 against itself as the anchor, each on a new TCP connection,
//! strictly one after another; and, in the same run, each crypto operation one side of a
//! handshake performs, so the handshake cost can be compared with their sum.
//!
//! Every connection sets `TCP_NODELAY` on both ends (as Go does), for both contenders, so
//! Nagle's algorithm does not hold back the AuthSig frame. Run with
//! `cargo bench -p tmp2p-tests --bench secret_handshake`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use ed25519_dalek::Signer;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tendermint_p2p::secret_connection::{SecretConnection as TmSecretConnection, Version};
use tmp2p_core::secret::{derive_secrets, transcript_challenge, SecretConfig};
use tmp2p_core::NodeKey;
use tmp2p_tests::blocking_secret::{handshake, in_memory_handshake};

fn configured<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group
}

/// Runs `iters` handshakes, each on a new loopback connection: `accept` on a server thread,
/// `dial` here; the next dial starts only after both sides finished the previous one.
fn sequential_handshakes<A, D>(iters: u64, accept: A, mut dial: D) -> Duration
where
    A: FnMut(TcpStream) + Send,
    D: FnMut(TcpStream),
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    thread::scope(|scope| {
        let mut accept = accept;
        scope.spawn(move || {
            for _ in 0..iters {
                let stream = listener.accept().unwrap().0;
                stream.set_nodelay(true).unwrap();
                accept(stream);
                done_tx.send(()).unwrap();
            }
        });
        let start = Instant::now();
        for _ in 0..iters {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_nodelay(true).unwrap();
            dial(stream);
            done_rx.recv().unwrap();
        }
        start.elapsed()
    })
}

fn handshakes(c: &mut Criterion) {
    let mut group = configured(c, "secret_handshake");
    group.sampling_mode(SamplingMode::Flat).sample_size(20);

    let server_key = NodeKey::from_seed([0x22; 32]);
    let client_key = NodeKey::from_seed([0x11; 32]);
    let mut server_rng = ChaCha20Rng::seed_from_u64(2);
    let mut client_rng = ChaCha20Rng::seed_from_u64(1);
    group.bench_function("tmp2p", |b| {
        b.iter_custom(|iters| {
            sequential_handshakes(
                iters,
                |stream| {
                    let parts = handshake(
                        stream,
                        &server_key,
                        &mut server_rng,
                        SecretConfig::default(),
                    );
                    black_box(parts.unwrap());
                },
                |stream| {
                    let parts = handshake(
                        stream,
                        &client_key,
                        &mut client_rng,
                        SecretConfig::default(),
                    );
                    black_box(parts.unwrap());
                },
            )
        });
    });

    // Diagnostics for the gap between a handshake and its crypto: the same two machines
    // driven through memory on one thread (no TCP, no threads), and the TCP part alone
    // (connect, accept, close; same thread hand-offs as above).
    group.bench_function("tmp2p_in_memory_both_sides", |b| {
        b.iter(|| {
            in_memory_handshake(&client_key, &server_key, &mut client_rng, &mut server_rng).unwrap()
        });
    });
    group.bench_function("tcp_connect_only", |b| {
        b.iter_custom(|iters| sequential_handshakes(iters, drop, drop));
    });

    let server_key = ed25519_consensus::SigningKey::from([0x22; 32]);
    let client_key = ed25519_consensus::SigningKey::from([0x11; 32]);
    group.bench_function("tendermint_p2p", |b| {
        b.iter_custom(|iters| {
            sequential_handshakes(
                iters,
                |stream| {
                    let conn = TmSecretConnection::new(stream, server_key.clone(), Version::V0_34);
                    black_box(conn.unwrap());
                },
                |stream| {
                    let conn = TmSecretConnection::new(stream, client_key.clone(), Version::V0_34);
                    black_box(conn.unwrap());
                },
            )
        });
    });
    group.finish();
}

/// Each crypto operation one side of a handshake performs, once.
fn handshake_crypto(c: &mut Criterion) {
    let mut group = configured(c, "secret_handshake_crypto");
    group.sample_size(50);
    let mut rng = ChaCha20Rng::seed_from_u64(3);

    group.bench_function("x25519_keygen", |b| {
        b.iter(|| {
            let secret = x25519_dalek::EphemeralSecret::random_from_rng(&mut rng);
            x25519_dalek::PublicKey::from(&secret)
        });
    });

    let ours = x25519_dalek::StaticSecret::random_from_rng(&mut rng);
    let theirs =
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(&mut rng));
    group.bench_function("x25519_dh", |b| {
        b.iter(|| {
            let shared = ours.diffie_hellman(black_box(&theirs));
            black_box(shared.was_contributory());
            shared
        });
    });

    let dh = *ours.diffie_hellman(&theirs).as_bytes();
    let (lower, upper) = ([0x01u8; 32], [0x02u8; 32]);
    group.bench_function("merlin_transcript", |b| {
        b.iter(|| transcript_challenge(black_box(&lower), black_box(&upper), black_box(&dh)));
    });
    group.bench_function("hkdf_sha256", |b| {
        b.iter(|| derive_secrets(black_box(&dh), black_box(true)));
    });

    let challenge = transcript_challenge(&lower, &upper, &dh);
    let signing = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
    group.bench_function("ed25519_sign_dalek", |b| {
        b.iter(|| signing.sign(black_box(&challenge)));
    });

    let public = signing.verifying_key().to_bytes();
    let signature = signing.sign(&challenge).to_bytes();
    group.bench_function("ed25519_verify_zip215", |b| {
        b.iter_batched(
            || (public, signature),
            |(public, signature)| {
                // Decoding the key is part of every handshake's verification.
                let key = ed25519_consensus::VerificationKey::try_from(public).unwrap();
                key.verify(&ed25519_consensus::Signature::from(signature), &challenge)
                    .unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, handshakes, handshake_crypto);
criterion_main!(benches);
