//! SecretConnection frame-layer benchmarks (issue #4): sealing and opening 1028-byte
//! frames with each AEAD backend, next to the raw ChaCha20-Poly1305 cost of one 1028-byte
//! buffer via `ring` and via `chacha20poly1305` directly (the crypto-only bound).
//!
//! Throughput is counted in frame bytes (1028 = length field + 1024 data bytes per frame),
//! the bytes the AEAD actually processes. Run with
//! `cargo bench -p tmp2p-core --bench secret_frames`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::KeyInit;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use tmp2p_core::secret::{
    AeadBackend, FrameOpener, FrameSealer, DATA_MAX_SIZE, FRAME_PLAINTEXT_SIZE,
};

/// Frames sealed or opened per iteration: one 64 KiB write, as a driver would batch it.
const FRAMES_PER_BATCH: usize = 64;
const KEY: [u8; 32] = [0x42; 32];

fn backend_name(backend: AeadBackend) -> &'static str {
    match backend {
        AeadBackend::Ring => "ring",
        AeadBackend::RustCrypto => "rustcrypto",
    }
}

fn batch_data() -> Vec<u8> {
    (0..FRAMES_PER_BATCH * DATA_MAX_SIZE)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 10) as u8)
        .collect()
}

fn configured<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    group
}

/// `FrameSealer::seal` of 64 full frames into one reused buffer, and `FrameOpener::open`
/// of the same 64 sealed frames handed over in one call, per backend.
fn frames(c: &mut Criterion) {
    let data = batch_data();
    let mut group = configured(c, "secret_frames");
    group.throughput(Throughput::Bytes(
        (FRAMES_PER_BATCH * FRAME_PLAINTEXT_SIZE) as u64,
    ));
    for &backend in AeadBackend::all() {
        let name = backend_name(backend);
        group.bench_function(format!("seal_64x1028/{name}"), |b| {
            let mut sealer = FrameSealer::new(backend, &KEY, 0);
            let mut out = BytesMut::with_capacity(FrameSealer::sealed_len(data.len()));
            b.iter(|| {
                out.clear();
                sealer.seal(black_box(&data), &mut out).unwrap();
                black_box(out.len());
            });
        });

        let mut wire = BytesMut::new();
        FrameSealer::new(backend, &KEY, 0)
            .seal(&data, &mut wire)
            .unwrap();
        // A fresh opener per iteration (its nonce must restart at 0), made outside the
        // timing; one reused plaintext buffer, as a driver keeps one.
        let mut plain = BytesMut::with_capacity(data.len());
        group.bench_function(format!("open_64x1028/{name}"), |b| {
            b.iter_batched_ref(
                || FrameOpener::new(backend, &KEY, 0),
                |opener| {
                    plain.clear();
                    opener.open(black_box(&wire), &mut plain).unwrap();
                    black_box(plain.len());
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// The crypto-only bound: one ChaCha20-Poly1305 seal of a 1028-byte buffer in place, with
/// no framing, copying or buffer management around it.
fn raw_aead(c: &mut Criterion) {
    let mut group = configured(c, "secret_aead_raw");
    group.throughput(Throughput::Bytes(FRAME_PLAINTEXT_SIZE as u64));
    let mut buf = vec![0x5au8; FRAME_PLAINTEXT_SIZE];

    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &KEY).unwrap(),
    );
    let mut counter = 0u64;
    group.bench_function("seal_1028/ring", |b| {
        b.iter(|| {
            counter = counter.wrapping_add(1);
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_le_bytes());
            ring_key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::empty(),
                    black_box(&mut buf[..]),
                )
                .unwrap()
        });
    });

    let rc_cipher = chacha20poly1305::ChaCha20Poly1305::new((&KEY).into());
    group.bench_function("seal_1028/chacha20poly1305", |b| {
        b.iter(|| {
            counter = counter.wrapping_add(1);
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_le_bytes());
            rc_cipher
                .encrypt_in_place_detached((&nonce).into(), &[], black_box(&mut buf[..]))
                .unwrap()
        });
    });

    // Opening needs a valid tag: seal once with a fixed nonce, then open a copy each time
    // (the 1028-byte copy is part of both measurements).
    let nonce = [0u8; 12];
    let mut sealed = vec![0x5au8; FRAME_PLAINTEXT_SIZE];
    let ring_tag = ring_key
        .seal_in_place_separate_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::empty(),
            &mut sealed,
        )
        .unwrap();
    group.bench_function("open_1028/ring", |b| {
        b.iter(|| {
            buf.copy_from_slice(&sealed);
            ring_key
                .open_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::empty(),
                    ring_tag,
                    black_box(&mut buf[..]),
                    0..,
                )
                .unwrap()
                .len()
        });
    });
    let rc_tag: [u8; 16] = ring_tag.as_ref().try_into().unwrap();
    group.bench_function("open_1028/chacha20poly1305", |b| {
        b.iter(|| {
            buf.copy_from_slice(&sealed);
            rc_cipher
                .decrypt_in_place_detached(
                    (&nonce).into(),
                    &[],
                    black_box(&mut buf[..]),
                    (&rc_tag).into(),
                )
                .unwrap();
        });
    });
    group.finish();
}

criterion_group!(benches, frames, raw_aead);
criterion_main!(benches);
