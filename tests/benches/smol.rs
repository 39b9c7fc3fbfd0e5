//! The smol driver over loopback TCP (issue #9): two smol nodes in this process, each with
//! a default `NodeConfig` and the default `DriverOptions` (two executor threads each),
//! connected by one authenticated connection (`ring` AEAD). Two knobs for experiments:
//! `SMOL_THREADS=n` sets `DriverOptions::threads` of both nodes (`SMOL_THREADS=1` gives each
//! node one of this machine's two cores instead of four executor threads sharing them) and
//! `SMOL_CREDIT=n` sets `RouterConfig::send_credit`.
//!
//! The application runs two ways: as tasks on the nodes' executors (how ADR 062 runs its
//! reactors, and how `echo::run_echo` runs), and from a foreign thread (this bench's main
//! thread, which then pays a thread wake-up to reach a node and one to be reached).
//!
//! - `smol_one_way/{1000B,1MiB}`: a task on `a` sends messages on a raw channel to `b`, a
//!   task on `b` counts what `b` delivers; `.._from_thread`: the main thread does both. At
//!   most 512 (1000 B) or 8 (1 MiB) messages are in flight (sent but not yet delivered),
//!   so no queue along the way (command queue, per-peer QoS queue) can overflow and drop
//!   one: every message is delivered. 1000 B is reported in messages/s, 1 MiB in MB/s
//!   (10^6 B/s) of message bytes.
//! - `smol_round_trip/64B`: a task on `a` sends 64 bytes on a second raw channel to `b`,
//!   whose raw echo reactor (`echo::run_raw_echo`, a task on `b`'s executor) sends them
//!   back, and waits for each echo before the next send (sequential); `64B_from_thread`:
//!   the main thread does it. Before the criterion run, [`ROUND_TRIPS`] round trips of each
//!   kind are timed one by one and their min / p50 / p99 / max are printed.
//! - `smol_round_trip/plain_tcp_64B`: the transport bound of that round trip: 64 bytes
//!   over a plain loopback `TcpStream` (`TCP_NODELAY`, blocking std I/O) to an echo
//!   thread and back; its percentiles are printed too.
//! - `smol_handshake/new_pair`: a new pair of nodes per handshake. `a` is built and
//!   started (listening), `b` is built with `a` as its persistent peer; timed from `b`'s
//!   `start()` until both nodes report the other `Up` (TCP connect, SecretConnection
//!   handshake, NodeInfo exchange, router admission on both ends; `start()` itself spawns
//!   `b`'s executor threads). Stopping both nodes is outside the timing. Before the
//!   criterion run, [`HANDSHAKES`] are timed one by one and printed (mean, p50, p99).
//!
//! The main thread waits with `futures_lite::future::block_on`, which does not drive
//! async-io's reactor: otherwise it would take socket events meant for the nodes' threads
//! and hand each on with one more thread wake-up.
//!
//! With `SMOL_SCRAPE_MS=N`, a thread reads both nodes' counters every N ms during the
//! traffic benches, as a metrics exporter does on each scrape (`NodeHandle::counters_view`
//! plus formatting the snapshot): run it beside a run without to see what metrics cost.
//!
//! The anchors run in the same command (see BENCHMARKS.md, "smol driver"): the in-memory
//! PeerConnection pair (`core/benches/peer_connection.rs`) and the SecretConnection
//! loopback stream (`tests/benches/secret_stream.rs`). Run alone with
//! `cargo bench -p tmp2p-tests --bench smol`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use futures_lite::future;
use smol::Timer;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_driver_smol::{echo, Channel, Envelope, NodeBuilder, NodeHandle, PeerUpdates};
use tmp2p_store::MemoryPeerStore;

/// The one-way channel.
const FLOW: u8 = 0x21;
/// The echo channel.
const ECHO: u8 = 0x22;
/// Round trips timed one by one for the percentiles.
const ROUND_TRIPS: usize = 20_000;
/// Handshakes timed one by one for the printed summary.
const HANDSHAKES: usize = 200;
/// Longest wait for anything before the bench fails (a lost message, a dead node).
const STALL: Duration = Duration::from_secs(30);

/// Runs `fut` on this thread, failing loudly instead of hanging if it stalls.
fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    future::block_on(future::or(fut, async {
        Timer::after(STALL).await;
        panic!("stalled for {STALL:?}: {what}");
    }))
}

fn descriptor(id: u8) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority: 5,
        // As the in-memory PeerConnection anchor.
        send_queue_capacity: 64,
        recv_message_capacity: 2 << 20,
    }
}

fn any_port() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A started node with its two raw channels and its peer updates.
struct Node {
    handle: NodeHandle,
    flow: Channel<Bytes>,
    echo: Option<Channel<Bytes>>,
    updates: PeerUpdates,
}

/// Builds a node (listening on a free loopback port) and returns it not yet started.
fn build(
    key: &NodeKey,
    peers: Vec<NodeAddress>,
) -> (NodeBuilder, Channel<Bytes>, Channel<Bytes>, PeerUpdates) {
    let mut config = NodeConfig::new("smol-bench", any_port());
    config.persistent_peers = peers;
    if let Ok(t) = std::env::var("SMOL_CREDIT") {
        config.router.send_credit = t.parse().unwrap();
    }
    let mut options = tmp2p_driver_smol::DriverOptions::default();
    if let Ok(t) = std::env::var("SMOL_THREADS") {
        options.threads = t.parse().unwrap();
    }
    let mut builder = NodeBuilder::with_options(
        config,
        key.clone(),
        Box::new(MemoryPeerStore::new()),
        options,
    )
    .unwrap();
    let flow = builder.open_raw_channel(descriptor(FLOW)).unwrap();
    let echo = builder.open_raw_channel(descriptor(ECHO)).unwrap();
    let updates = builder.subscribe();
    (builder, flow, echo, updates)
}

/// With `SMOL_SHARED=1`, both nodes run on one executor of this process with
/// `DriverOptions::default().threads` threads (`NodeBuilder::start_on`); otherwise each node
/// starts its own (`NodeBuilder::start`).
async fn start_node(builder: NodeBuilder) -> Result<NodeHandle, tmp2p_driver_smol::DriverError> {
    static SHARED: std::sync::OnceLock<Arc<smol::Executor<'static>>> = std::sync::OnceLock::new();
    if std::env::var("SMOL_SHARED").as_deref() != Ok("1") {
        return builder.start().await;
    }
    let executor = SHARED.get_or_init(|| {
        let executor = Arc::new(smol::Executor::new());
        for _ in 0..tmp2p_driver_smol::DriverOptions::default().threads {
            let executor = Arc::clone(&executor);
            std::thread::spawn(move || smol::block_on(executor.run(future::pending::<()>())));
        }
        executor
    });
    builder.start_on(Arc::clone(executor)).await
}

async fn wait_up(updates: &PeerUpdates, peer: NodeId) {
    loop {
        let update = updates.recv().await.unwrap();
        if update.node_id == peer && update.status == PeerStatus::Up {
            return;
        }
    }
}

fn address(key: &NodeKey, at: std::net::SocketAddr) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{at}", key.node_id())).unwrap()
}

/// Two started nodes, `b` dialing `a`, both reporting the other `Up`; returns the
/// handshake time (from `b`'s start until both are up) too.
fn connected_pair(ka: &NodeKey, kb: &NodeKey) -> (Node, Node, Duration) {
    let (builder_a, flow_a, echo_a, updates_a) = build(ka, vec![]);
    let addr_a = address(ka, builder_a.local_addr());
    let handle_a = within("start a", start_node(builder_a)).unwrap();
    let (builder_b, flow_b, echo_b, updates_b) = build(kb, vec![addr_a]);
    let (handle_b, elapsed) = within("handshake", async {
        let start = Instant::now();
        let handle_b = start_node(builder_b).await.unwrap();
        wait_up(&updates_b, ka.node_id()).await;
        wait_up(&updates_a, kb.node_id()).await;
        (handle_b, start.elapsed())
    });
    let node = |handle, flow, echo, updates| Node {
        handle,
        flow,
        echo: Some(echo),
        updates,
    };
    (
        node(handle_a, flow_a, echo_a, updates_a),
        node(handle_b, flow_b, echo_b, updates_b),
        elapsed,
    )
}

fn stop(a: Node, b: Node) {
    within("stop", async {
        future::zip(a.handle.stop(), b.handle.stop()).await;
    });
    drop((a.updates, b.updates));
}

/// How many messages of `size` bytes may be in flight in the one-way bench: below the
/// QoS queue (1024 items, 16 MB) and inbound channel (1024) defaults.
fn window(size: usize) -> usize {
    if size >= 1 << 20 {
        8
    } else {
        512
    }
}

/// Sends `total` copies of `message` from `a` to `b` with at most `window` in flight;
/// returns the time until `b` delivered the last one.
async fn one_way(a: &Node, b: &Node, to: NodeId, message: &Bytes, total: usize) -> Duration {
    let window = window(message.len());
    let start = Instant::now();
    let (mut sent, mut received) = (0usize, 0usize);
    while received < total {
        while sent < total && sent - received < window {
            a.flow
                .outbound
                .send(Envelope::to_peer(to, message.clone()))
                .await
                .unwrap();
            sent += 1;
        }
        let envelope = b.flow.inbound.recv().await.unwrap();
        assert_eq!(envelope.message.len(), message.len());
        received += 1;
        while let Ok(envelope) = b.flow.inbound.try_recv() {
            assert_eq!(envelope.message.len(), message.len());
            received += 1;
        }
    }
    assert_eq!(received, total, "more delivered than sent");
    start.elapsed()
}

/// [`one_way`] with the application as ADR 062 runs its reactors: a sending task on `a`'s
/// executor and a receiving task on `b`'s. The receiver publishes its count and signals
/// the sender, which waits only when `window` messages are in flight.
async fn one_way_on_nodes(
    a: &Node,
    b: &Node,
    to: NodeId,
    message: &Bytes,
    total: usize,
) -> Duration {
    let window = window(message.len());
    let received = Arc::new(AtomicUsize::new(0));
    let (progress_tx, progress) = smol::channel::bounded::<()>(1);
    let inbound = b.flow.inbound.clone();
    let outbound = a.flow.outbound.clone();
    let len = message.len();
    let message = message.clone();
    let start = Instant::now();
    let receiver = b.handle.spawn({
        let received = Arc::clone(&received);
        async move {
            let mut count = 0;
            while count < total {
                let envelope = inbound.recv().await.unwrap();
                assert_eq!(envelope.message.len(), len);
                count += 1;
                while count < total {
                    let Ok(envelope) = inbound.try_recv() else {
                        break;
                    };
                    assert_eq!(envelope.message.len(), len);
                    count += 1;
                }
                received.store(count, Ordering::Release);
                let _ = progress_tx.try_send(());
            }
        }
    });
    let sender = a.handle.spawn(async move {
        let mut sent = 0usize;
        while sent < total {
            while sent < total && sent - received.load(Ordering::Acquire) < window {
                outbound
                    .send(Envelope::to_peer(to, message.clone()))
                    .await
                    .unwrap();
                sent += 1;
            }
            if sent < total {
                progress.recv().await.unwrap();
            }
        }
    });
    sender.await;
    receiver.await;
    start.elapsed()
}

/// `count` sequential round trips by a task on `a`'s executor (how a reactor would do
/// them); returns each one's time.
async fn round_trips_on_node(a: &Node, to: NodeId, message: &Bytes, count: usize) -> Vec<Duration> {
    let echo = a.echo.as_ref().unwrap();
    let (inbound, outbound) = (echo.inbound.clone(), echo.outbound.clone());
    let message = message.clone();
    a.handle
        .spawn(async move {
            let mut times = Vec::with_capacity(count);
            for _ in 0..count {
                let start = Instant::now();
                outbound
                    .send(Envelope::to_peer(to, message.clone()))
                    .await
                    .unwrap();
                let envelope = inbound.recv().await.unwrap();
                times.push(start.elapsed());
                assert_eq!(envelope.message, message, "echo differs");
            }
            times
        })
        .await
}

/// One 64-byte round trip a → b → a on the echo channel.
async fn round_trip(a: &Node, to: NodeId, message: &Bytes) -> Duration {
    let start = Instant::now();
    a.echo
        .as_ref()
        .unwrap()
        .outbound
        .send(Envelope::to_peer(to, message.clone()))
        .await
        .unwrap();
    let envelope = a.echo.as_ref().unwrap().inbound.recv().await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(&envelope.message, message, "echo differs");
    elapsed
}

fn configured<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(what: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    let total: Duration = times.iter().sum();
    let mean = total / times.len() as u32;
    println!(
        "{what}: n = {}, min {:.1} µs, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs, mean {:.1} µs",
        times.len(),
        micros(times[0]),
        micros(percentile(&times, 0.50)),
        micros(percentile(&times, 0.99)),
        micros(times[times.len() - 1]),
        micros(mean),
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn keys() -> (NodeKey, NodeKey) {
    (
        NodeKey::from_seed([0x31; 32]),
        NodeKey::from_seed([0x32; 32]),
    )
}

/// Reads both nodes' counters every `SMOL_SCRAPE_MS` until dropped (see the module docs).
struct Scraper {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Scraper {
    fn start(a: &Node, b: &Node) -> Option<Scraper> {
        let period: u64 = std::env::var("SMOL_SCRAPE_MS").ok()?.parse().unwrap();
        let views = [a.handle.counters_view(), b.handle.counters_view()];
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut rendered = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for view in &views {
                    let text = format!("{:?} {:?}", view.counters(), view.peer_counters());
                    rendered += text.len() as u64;
                }
                std::thread::sleep(Duration::from_millis(period));
            }
            rendered
        });
        println!("scraping both nodes' counters every {period} ms");
        Some(Scraper {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let bytes = thread.join().unwrap();
            println!("scraped {bytes} bytes of counters");
        }
    }
}

fn traffic(c: &mut Criterion) {
    let (ka, kb) = keys();
    let (a, mut b, _) = connected_pair(&ka, &kb);
    let scraper = Scraper::start(&a, &b);
    let to = kb.node_id();
    b.handle
        .spawn(echo::run_raw_echo(b.echo.take().unwrap()))
        .detach();

    let mut group = configured(c, "smol_one_way");
    for (name, size, count, throughput) in [
        ("1000B", 1000, 4000, Throughput::Elements(4000)),
        ("1MiB", 1 << 20, 16, Throughput::BytesDecimal(16 << 20)),
    ] {
        let message = Bytes::from(vec![0x5a; size]);
        group.throughput(throughput);
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                within(
                    "one-way messages (one was lost?)",
                    one_way_on_nodes(&a, &b, to, &message, count * iters as usize),
                )
            });
        });
        group.bench_function(format!("{name}_from_thread"), |bench| {
            bench.iter_custom(|iters| {
                within(
                    "one-way messages (one was lost?)",
                    one_way(&a, &b, to, &message, count * iters as usize),
                )
            });
        });
    }
    group.finish();

    let message = Bytes::from(vec![0xa5; 64]);
    let times = within(
        "round trips",
        round_trips_on_node(&a, to, &message, ROUND_TRIPS),
    );
    summary("smol round trip, 64 B, sequential, task on the node", times);
    let times = within("round trips", async {
        let mut times = Vec::with_capacity(ROUND_TRIPS);
        for _ in 0..ROUND_TRIPS {
            times.push(round_trip(&a, to, &message).await);
        }
        times
    });
    summary(
        "smol round trip, 64 B, sequential, from a foreign thread",
        times,
    );
    let mut group = configured(c, "smol_round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("64B", |bench| {
        bench.iter_custom(|iters| {
            let times = within(
                "round trips",
                round_trips_on_node(&a, to, &message, iters as usize),
            );
            times.iter().sum()
        });
    });
    group.bench_function("64B_from_thread", |bench| {
        bench.iter_custom(|iters| {
            within("round trips", async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += round_trip(&a, to, &message).await;
                }
                total
            })
        });
    });
    group.finish();
    drop(scraper);
    stop(a, b);
}

/// A loopback TCP connection whose far end, a thread, echoes every 64-byte message; the
/// thread ends when the connection closes.
fn tcp_echo() -> TcpStream {
    let listener = TcpListener::bind(any_port()).unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut far, _) = listener.accept().unwrap();
    std::thread::spawn(move || {
        far.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        while far.read_exact(&mut buf).is_ok() {
            if far.write_all(&buf).is_err() {
                return;
            }
        }
    });
    stream.set_nodelay(true).unwrap();
    stream
}

fn tcp_round_trip(stream: &mut TcpStream, message: &[u8; 64]) -> Duration {
    let start = Instant::now();
    stream.write_all(message).unwrap();
    let mut back = [0u8; 64];
    stream.read_exact(&mut back).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(&back, message, "tcp echo differs");
    elapsed
}

fn plain_tcp(c: &mut Criterion) {
    let mut stream = tcp_echo();
    let message = [0xa5; 64];
    let times = (0..ROUND_TRIPS)
        .map(|_| tcp_round_trip(&mut stream, &message))
        .collect();
    summary("plain TCP round trip, 64 B, sequential", times);
    let mut group = configured(c, "smol_round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plain_tcp_64B", |bench| {
        bench.iter_custom(|iters| {
            (0..iters)
                .map(|_| tcp_round_trip(&mut stream, &message))
                .sum()
        });
    });
    group.finish();
}

fn handshakes(c: &mut Criterion) {
    let (ka, kb) = keys();
    let times: Vec<Duration> = (0..HANDSHAKES)
        .map(|_| {
            let (a, b, elapsed) = connected_pair(&ka, &kb);
            stop(a, b);
            elapsed
        })
        .collect();
    let mean = times.iter().sum::<Duration>() / HANDSHAKES as u32;
    println!(
        "smol handshakes, new node pair each: {:.0}/s from the mean",
        1.0 / mean.as_secs_f64()
    );
    summary("smol handshake, new node pair", times);
    let mut group = configured(c, "smol_handshake");
    group
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    group.bench_function("new_pair", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (a, b, elapsed) = connected_pair(&ka, &kb);
                stop(a, b);
                total += elapsed;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, traffic, plain_tcp, handshakes);
criterion_main!(benches);
