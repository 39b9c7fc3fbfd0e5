//! Loopback TCP stream throughput of SecretConnection (issue #4): ours with each AEAD
//! backend, tendermint-p2p 0.41 writing to tendermint-p2p as the anchor, and plain TCP
//! (256 KiB writes, and 1044-byte writes) as the transport bound.
//!
//! Each iteration moves 64 MiB in one direction over one established connection: a writer
//! thread sends, the measuring thread reads and discards. Both contenders write the same
//! 256 KiB source buffer over and over. Throughput is decimal (MB/s = 10^6 B/s) of
//! application bytes. Run with `cargo bench -p tmp2p-tests --bench secret_stream`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tendermint_p2p::secret_connection::{SecretConnection as TmSecretConnection, Version};
use tmp2p_core::secret::{AeadBackend, SecretConfig};
use tmp2p_core::NodeKey;
use tmp2p_tests::blocking_secret::{handshake, SecretReader, SecretWriter};

/// Application bytes per iteration.
const TRANSFER: usize = 64 * 1024 * 1024;
/// Size of each application write (and of plain TCP's large writes and reads).
const WRITE_SIZE: usize = 256 * 1024;

fn source() -> Vec<u8> {
    (0..WRITE_SIZE)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 10) as u8)
        .collect()
}

/// A connected loopback pair: (dialer, acceptor).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = thread::spawn(move || listener.accept().unwrap().0);
    let dialed = TcpStream::connect(addr).unwrap();
    (dialed, accept.join().unwrap())
}

/// Runs `iters` transfers of [`TRANSFER`] bytes: `send` on a writer thread, `receive` on
/// this one; returns the time until the last byte was received.
fn timed_transfer<W, R>(iters: u64, writer: &mut W, reader: &mut R) -> Duration
where
    W: FnMut(usize) + Send,
    R: FnMut(usize),
{
    let total = TRANSFER * iters as usize;
    thread::scope(|scope| {
        let start = Instant::now();
        let sender = scope.spawn(|| writer(total));
        reader(total);
        let elapsed = start.elapsed();
        sender.join().unwrap();
        elapsed
    })
}

fn configured<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::BytesDecimal(TRANSFER as u64));
    group
}

fn ours(backend: AeadBackend) -> (SecretWriter, SecretReader) {
    let (dialed, accepted) = tcp_pair();
    let peer = thread::spawn(move || {
        let key = NodeKey::from_seed([0x22; 32]);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        handshake(accepted, &key, &mut rng, SecretConfig { backend }).unwrap()
    });
    let key = NodeKey::from_seed([0x11; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (writer, _unused_reader, _) =
        handshake(dialed, &key, &mut rng, SecretConfig { backend }).unwrap();
    let (_unused_writer, reader, _) = peer.join().unwrap();
    (writer, reader)
}

type TmSender = tendermint_p2p::secret_connection::Sender<TcpStream>;
type TmReceiver = tendermint_p2p::secret_connection::Receiver<TcpStream>;

fn theirs() -> (TmSender, TmReceiver) {
    let (dialed, accepted) = tcp_pair();
    let peer = thread::spawn(move || {
        let key = ed25519_consensus::SigningKey::from([0x22; 32]);
        TmSecretConnection::new(accepted, key, Version::V0_34)
            .unwrap()
            .split()
            .unwrap()
    });
    let key = ed25519_consensus::SigningKey::from([0x11; 32]);
    let (sender, _unused_receiver) = TmSecretConnection::new(dialed, key, Version::V0_34)
        .unwrap()
        .split()
        .unwrap();
    let (_unused_sender, receiver) = peer.join().unwrap();
    (sender, receiver)
}

fn stream(c: &mut Criterion) {
    let data = source();
    let mut group = configured(c, "secret_stream");

    for (name, write_size) in [
        ("plain_tcp/write_256k", WRITE_SIZE),
        ("plain_tcp/write_1044", 1044),
    ] {
        let (mut tx, mut rx) = tcp_pair();
        let mut buf = vec![0u8; WRITE_SIZE];
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed_transfer(
                    iters,
                    &mut |total| {
                        let mut left = total;
                        while left > 0 {
                            let n = left.min(write_size);
                            tx.write_all(&data[..n]).unwrap();
                            left -= n;
                        }
                    },
                    &mut |total| {
                        let mut left = total;
                        while left > 0 {
                            let n = rx.read(&mut buf).unwrap();
                            assert!(n > 0, "eof");
                            left -= n;
                        }
                    },
                )
            });
        });
    }

    for &backend in AeadBackend::all() {
        let name = match backend {
            AeadBackend::Ring => "tmp2p/ring",
            AeadBackend::RustCrypto => "tmp2p/rustcrypto",
        };
        let (mut writer, mut reader) = ours(backend);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed_transfer(
                    iters,
                    &mut |total| {
                        for _ in 0..total / WRITE_SIZE {
                            writer.write_all(&data, WRITE_SIZE).unwrap();
                        }
                    },
                    &mut |total| reader.discard(total).unwrap(),
                )
            });
        });
    }

    let (mut sender, mut receiver) = theirs();
    let mut buf = vec![0u8; 64 * 1024];
    group.bench_function("tendermint_p2p", |b| {
        b.iter_custom(|iters| {
            timed_transfer(
                iters,
                &mut |total| {
                    for _ in 0..total / WRITE_SIZE {
                        sender.write_all(&data).unwrap();
                    }
                },
                &mut |total| {
                    let mut left = total;
                    while left > 0 {
                        // tendermint-p2p panics on read buffers under 1024 bytes.
                        let n = receiver.read(&mut buf).unwrap();
                        assert!(n > 0, "eof");
                        left -= n;
                    }
                },
            )
        });
    });
    group.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
