//! PeerConnection throughput and memory (issue #5): two authenticated PeerConnections wired
//! together in memory (SecretConnection crypto on, default `ring` backend, no sockets).
//! `a` sends messages of 100 B, 1000 B, 64 KiB and 1 MiB on channel 0x20 to `b`; each round
//! moves `a`'s transmit batches into `b` and `b`'s bytes back into `a`, keeping `a`'s queue
//! fed. Reported as messages/s (`peer_connection_msgs`) and bytes/s
//! (`peer_connection_bytes`), next to the SecretConnection stream bound: `FrameSealer::seal`
//! plus `FrameOpener::open` of 1 MiB (`secret_stream_1MiB`).
//!
//! The memory held by an idle authenticated PeerConnection is printed (counting global
//! allocator: live bytes after handshaking 1000 idle pairs minus before, over 2000), and
//! again after each pair has carried traffic (buffers that grew and stay grown).
//! Run with `cargo bench -p tmp2p-core --bench peer_connection`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tmp2p_core::connection::{Direction, PeerConfig, PeerConnection, PeerEvent};
use tmp2p_core::mconn::{ChannelDescriptor, SendError};
use tmp2p_core::node_info::{NodeInfo, ProtocolVersions};
use tmp2p_core::secret::{AeadBackend, FrameOpener, FrameSealer};
use tmp2p_core::NodeKey;

/// Counts live heap bytes so the bench can report what a connection holds.
struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const CHANNEL: u8 = 0x20;
/// Bytes moved per iteration (rounded to whole messages, at least a few).
const BATCH_BYTES: usize = 4 << 20;
/// Messages a sender may have waiting in its channel queue.
const QUEUE: usize = 64;

#[allow(clippy::disallowed_methods)] // the benchmark needs one real Instant to start from
fn start() -> Instant {
    Instant::now()
}

fn info(key: &NodeKey) -> NodeInfo {
    NodeInfo {
        protocol_version: ProtocolVersions {
            p2p: 8,
            block: 11,
            app: 0,
        },
        node_id: key.node_id(),
        listen_addr: "tcp://127.0.0.1:26656".into(),
        network: "bench-chain".into(),
        version: "0.38.0".into(),
        channels: vec![CHANNEL],
        moniker: "bench".into(),
        tx_index: "on".into(),
        rpc_address: String::new(),
    }
}

fn config() -> PeerConfig {
    PeerConfig {
        channels: vec![ChannelDescriptor {
            id: CHANNEL,
            priority: 1,
            send_queue_capacity: QUEUE,
            recv_message_capacity: 2 << 20,
        }],
        ..PeerConfig::default()
    }
}

/// Moves everything `from` has to transmit into `to`, one transmit batch per write; counts
/// the messages `to` delivers.
fn flow(
    now: Instant,
    from: &mut PeerConnection,
    to: &mut PeerConnection,
    wire: &mut BytesMut,
) -> usize {
    let mut delivered = 0;
    loop {
        wire.clear();
        if !from.poll_transmit(now, wire) {
            return delivered;
        }
        to.handle_input(now, wire).unwrap();
        while let Some(event) = to.poll_event() {
            match event {
                PeerEvent::Message { message, .. } => {
                    black_box(&message);
                    delivered += 1;
                }
                PeerEvent::Closed { reason } => panic!("closed: {reason:?}"),
                _ => {}
            }
        }
    }
}

/// A pair of authenticated idle connections (`a` dialed `b`), seeds picking the keys.
fn pair(now: Instant, seed: u8) -> (PeerConnection, PeerConnection) {
    let ka = NodeKey::from_seed([seed; 32]);
    let kb = NodeKey::from_seed([seed.wrapping_add(128); 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(seed));
    let mut a = PeerConnection::new(
        now,
        &ka,
        info(&ka),
        Direction::Outbound {
            expected: kb.node_id(),
        },
        config(),
        &mut rng,
    );
    let mut b = PeerConnection::new(now, &kb, info(&kb), Direction::Inbound, config(), &mut rng);
    let mut wire = BytesMut::new();
    for _ in 0..16 {
        flow(now, &mut a, &mut b, &mut wire);
        flow(now, &mut b, &mut a, &mut wire);
    }
    assert!(a.is_active() && b.is_active(), "handshake did not complete");
    for conn in [&mut a, &mut b] {
        while let Some(event) = conn.poll_event() {
            assert!(
                matches!(event, PeerEvent::Authenticated { .. }),
                "{event:?}"
            );
        }
    }
    (a, b)
}

/// Sends `count` messages a → b, keeping a's queue fed; returns when b has them all.
fn transfer(
    now: Instant,
    a: &mut PeerConnection,
    b: &mut PeerConnection,
    message: &Bytes,
    count: usize,
    wire: &mut BytesMut,
) {
    let mut queued = 0;
    let mut received = 0;
    while received < count {
        while queued < count {
            match a.send(now, CHANNEL, message.clone()) {
                Ok(()) => queued += 1,
                Err(SendError::Full(_)) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        received += flow(now, a, b, wire);
        flow(now, b, a, wire);
    }
    assert_eq!(received, count);
}

fn configured<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    group
}

const SIZES: [usize; 4] = [100, 1000, 64 << 10, 1 << 20];

fn pair_throughput(c: &mut Criterion, group_name: &str, bytes: bool) {
    let now = start();
    let mut group = configured(c, group_name);
    for size in SIZES {
        let count = (BATCH_BYTES / size).max(4);
        group.throughput(if bytes {
            Throughput::Bytes((count * size) as u64)
        } else {
            Throughput::Elements(count as u64)
        });
        let (mut a, mut b) = pair(now, 1);
        let message = Bytes::from(vec![0x5a; size]);
        let mut wire = BytesMut::with_capacity(512 << 10);
        group.bench_function(format!("{size}B"), |bench| {
            bench.iter(|| transfer(now, &mut a, &mut b, &message, count, &mut wire));
        });
    }
    group.finish();
}

fn messages_per_second(c: &mut Criterion) {
    pair_throughput(c, "peer_connection_msgs", false);
}

fn bytes_per_second(c: &mut Criterion) {
    pair_throughput(c, "peer_connection_bytes", true);
}

/// The SecretConnection stream bound for the 1 MiB comparison: seal 1 MiB into frames and
/// open them again, in memory, with the same backend the PeerConnections use.
fn secret_stream(c: &mut Criterion) {
    const SIZE: usize = 1 << 20;
    let data: Vec<u8> = (0..SIZE).map(|i| (i as u8).wrapping_mul(31)).collect();
    let backend = AeadBackend::default();
    let key = [0x42; 32];
    let mut sealer = FrameSealer::new(backend, &key, 0);
    let mut opener = FrameOpener::new(backend, &key, 0);
    let mut sealed = BytesMut::with_capacity(FrameSealer::sealed_len(SIZE));
    let mut plain = BytesMut::with_capacity(SIZE);
    let mut group = configured(c, "secret_stream");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.bench_function("seal_open_1MiB", |bench| {
        bench.iter(|| {
            sealed.clear();
            plain.clear();
            sealer.seal(&data, &mut sealed).unwrap();
            opener.open(&sealed, &mut plain).unwrap();
            assert_eq!(plain.len(), SIZE);
            black_box(&plain);
        });
    });
    group.finish();
}

/// Live heap bytes per connection of `pairs` authenticated idle pairs; with `traffic`,
/// each pair first carries 100 messages of 1000 B and one of 1 MiB from a to b.
/// Returns (average, per sender, per receiver) in bytes.
fn held_per_connection(pairs: usize, traffic: bool) -> (usize, usize, usize) {
    let now = start();
    let message = Bytes::from(vec![0x5a; 1000]);
    let big = Bytes::from(vec![0x5a; 1 << 20]);
    let before = LIVE.load(Ordering::Relaxed);
    let mut all = Vec::with_capacity(pairs);
    let mut wire = BytesMut::new();
    for i in 0..pairs {
        let (mut a, mut b) = pair(now, (i % 128) as u8);
        if traffic {
            transfer(now, &mut a, &mut b, &message, 100, &mut wire);
            transfer(now, &mut a, &mut b, &big, 1, &mut wire);
        }
        all.push((a, b));
    }
    // The shared wire buffer is the driver's, not the connections'.
    drop(wire);
    let after = LIVE.load(Ordering::Relaxed);
    black_box(&all);
    let per = after.saturating_sub(before) / (2 * pairs);
    // Split the total: dropping the receivers shows what they held.
    let senders: Vec<PeerConnection> = all.into_iter().map(|(a, _)| a).collect();
    let receivers_gone = LIVE.load(Ordering::Relaxed);
    let sender_share = receivers_gone.saturating_sub(before) / pairs;
    drop(senders);
    (
        per,
        sender_share,
        (after.saturating_sub(receivers_gone)) / pairs,
    )
}

fn idle_memory(_c: &mut Criterion) {
    let (idle, idle_a, idle_b) = held_per_connection(1000, false);
    let (used, used_a, used_b) = held_per_connection(50, true);
    println!(
        "idle authenticated PeerConnection: {idle} bytes heap+inline (dialer {idle_a}, \
         acceptor {idle_b}; size_of = {} bytes inline), target <= 8192",
        std::mem::size_of::<PeerConnection>()
    );
    println!(
        "idle PeerConnection after carrying 100 x 1000 B + 1 x 1 MiB: {used} bytes \
         (sender {used_a}, receiver {used_b})"
    );
}

criterion_group!(
    benches,
    idle_memory,
    messages_per_second,
    bytes_per_second,
    secret_stream
);
criterion_main!(benches);
