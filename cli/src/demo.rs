//! `tmp2p demo`: N nodes on loopback, each with every other as a persistent peer, stores in
//! a temporary directory. Every node sends echo `Ping`s (ADR 062's echo messages on a
//! wrapper channel) to every peer, answers every `Ping` with a `Pong` of the same payload,
//! and verifies each `Pong` against what it sent. Live progress, then a per-node summary.
//! Exit 0 when every node reached all its peers and verified echoes from each; 1 otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_core::OsRng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::router::Target;
use tmp2p_core::typed::echo::EchoInner;
use tmp2p_core::typed::WrapperCodec;
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_driver_smol::{Channel, Envelope, NodeBuilder, NodeHandle};
use tmp2p_proto::echo::{EchoMessage, Ping, Pong};
use tmp2p_store::RedbPeerStore;

use crate::CliError;

/// The echo channel of the demo.
const ECHO_CHANNEL: u8 = 0x99;

/// Arguments of `tmp2p demo`.
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Number of nodes (2..=32).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(2..=32))]
    nodes: u16,
    /// Seconds of traffic after the nodes start.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Payload bytes per echo message.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(8..=1_000_000))]
    size: u32,
    /// Pings each node sends to each peer per second.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
}

/// Counters of one node (shared by its reactor tasks and the progress printer).
#[derive(Default)]
struct Stats {
    sent: u64,
    answered: u64,
    verified: u64,
    corrupted: u64,
    /// Peers from which at least one echo was verified.
    verified_from: BTreeSet<NodeId>,
    /// Peers seen connected.
    reached: BTreeSet<NodeId>,
    /// Payloads sent and not yet echoed, by (peer, sequence number).
    outstanding: BTreeMap<(NodeId, u64), ()>,
}

fn payload(seq: u64, from: usize, size: usize) -> Bytes {
    let mut bytes = seq.to_le_bytes().to_vec();
    bytes.extend((8..size).map(|i| (i as u8).wrapping_mul(31) ^ from as u8 ^ seq as u8));
    Bytes::from(bytes)
}

/// Free loopback ports, so every node can list the others as persistent peers up front.
fn free_ports(n: usize) -> Result<Vec<u16>, CliError> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::Runtime(format!("cannot reserve a loopback port: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::Runtime(e.to_string()))
}

/// Answers pings, verifies pongs.
async fn reactor(index: usize, channel: Channel<EchoInner>, stats: Arc<Mutex<Stats>>, size: usize) {
    while let Ok(envelope) = channel.inbound.recv().await {
        let Some(from) = envelope.from else { continue };
        match envelope.message {
            EchoInner::Ping(Ping { payload }) => {
                let reply = Envelope {
                    from: None,
                    to: Some(Target::Peer(from)),
                    channel: ECHO_CHANNEL,
                    message: EchoInner::Pong(Pong { payload }),
                };
                if channel.outbound.send(reply).await.is_err() {
                    return;
                }
                if let Ok(mut s) = stats.lock() {
                    s.answered += 1;
                }
            }
            EchoInner::Pong(Pong { payload: got }) => {
                let seq = got
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes);
                let Ok(mut s) = stats.lock() else { return };
                match seq {
                    Some(seq)
                        if got == payload(seq, index, size)
                            && s.outstanding.remove(&(from, seq)).is_some() =>
                    {
                        s.verified += 1;
                        s.verified_from.insert(from);
                    }
                    _ => s.corrupted += 1,
                }
            }
        }
    }
}

/// Sends `rate` pings per second to every connected peer until `until`.
async fn pinger(
    index: usize,
    node_peers: Vec<NodeId>,
    sender: tmp2p_driver_smol::ChannelSender<EchoInner>,
    stats: Arc<Mutex<Stats>>,
    size: usize,
    rate: u32,
    until: Instant,
) {
    let period = Duration::from_secs(1) / rate;
    let mut seq = 0u64;
    let mut next = Instant::now();
    while Instant::now() < until {
        for &peer in &node_peers {
            seq += 1;
            if let Ok(mut s) = stats.lock() {
                s.outstanding.insert((peer, seq), ());
                s.sent += 1;
            }
            let ping = Envelope::to_peer(
                peer,
                EchoInner::Ping(Ping {
                    payload: payload(seq, index, size),
                }),
            );
            if sender.send(ping).await.is_err() {
                return;
            }
        }
        next += period;
        async_io::Timer::at(next).await;
    }
}

struct DemoNode {
    handle: NodeHandle,
    stats: Arc<Mutex<Stats>>,
}

/// Runs the demo.
pub(crate) fn run(args: &DemoArgs) -> Result<(), CliError> {
    let n = usize::from(args.nodes);
    let size = args.size as usize;
    let dir: PathBuf = std::env::temp_dir().join(format!("tmp2p-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    // All nodes share one executor with a thread per core (`NodeBuilder::start_on`), rather
    // than each starting threads of its own: N nodes x 2 threads would oversubscribe the
    // cores and every hand-off between tasks would risk waking a parked thread.
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let executor = Arc::new(smol::Executor::new());
    let (quit, quit_rx) = async_channel::bounded::<()>(1);
    let mut runners = Vec::new();
    for i in 0..threads {
        let executor = Arc::clone(&executor);
        let quit_rx = quit_rx.clone();
        let runner = std::thread::Builder::new()
            .name(format!("tmp2p-demo-{i}"))
            .spawn(move || smol::block_on(executor.run(quit_rx.recv())))
            .map_err(|e| CliError::Runtime(format!("cannot start an executor thread: {e}")))?;
        runners.push(runner);
    }
    let result = run_in(args, n, size, &dir, &executor);
    drop(quit);
    for runner in runners {
        let _ = runner.join();
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    args: &DemoArgs,
    n: usize,
    size: usize,
    dir: &std::path::Path,
    executor: &Arc<smol::Executor<'static>>,
) -> Result<(), CliError> {
    let keys: Vec<NodeKey> = (0..n).map(|_| NodeKey::generate(&mut OsRng)).collect();
    let ports = free_ports(n)?;
    let addresses: Vec<NodeAddress> = keys
        .iter()
        .zip(&ports)
        .map(|(k, p)| NodeAddress::parse(&format!("{}@127.0.0.1:{p}", k.node_id())))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    println!("tmp2p demo: {n} nodes on loopback, {}s of echo traffic ({} B, {}/s per peer), stores in {}", args.duration, size, args.rate, dir.display());
    crate::wait_on(async {
        let mut nodes = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let mut config =
                NodeConfig::new("tmp2p-demo", SocketAddr::from(([127, 0, 0, 1], ports[i])));
            config.moniker = format!("demo-{i}");
            config.persistent_peers = addresses
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.clone())
                .collect();
            let store = RedbPeerStore::open(dir.join(format!("node{i}.redb")))
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            let mut builder = NodeBuilder::new(config, key.clone(), Box::new(store))
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            let channel = builder
                .open_channel(
                    ChannelDescriptor {
                        id: ECHO_CHANNEL,
                        priority: 5,
                        send_queue_capacity: 256,
                        recv_message_capacity: 4 << 20,
                    },
                    WrapperCodec::<EchoMessage, EchoInner>::new(),
                )
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            let handle = builder
                .start_on(Arc::clone(executor))
                .await
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            let stats = Arc::new(Mutex::new(Stats::default()));
            let sender = channel.outbound.clone();
            handle
                .spawn(reactor(i, channel, Arc::clone(&stats), size))
                .detach();
            nodes.push((DemoNode { handle, stats }, sender));
        }
        // Wait (up to 10 s) for the mesh.
        let mesh_deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut complete = true;
            for (node, _) in &nodes {
                let peers = node.handle.connected_peers().await.unwrap_or_default();
                if let Ok(mut s) = node.stats.lock() {
                    s.reached.extend(peers.iter().copied());
                }
                complete &= peers.len() == n - 1;
            }
            if complete || Instant::now() > mesh_deadline {
                break;
            }
            async_io::Timer::after(Duration::from_millis(50)).await;
        }
        let until = Instant::now() + Duration::from_secs(args.duration);
        for (i, (node, sender)) in nodes.iter().enumerate() {
            let peers = node.handle.connected_peers().await.unwrap_or_default();
            node.handle
                .spawn(pinger(
                    i,
                    peers,
                    sender.clone(),
                    Arc::clone(&node.stats),
                    size,
                    args.rate,
                    until,
                ))
                .detach();
        }
        let tty = std::io::stdout().is_terminal();
        let start = Instant::now();
        while Instant::now() < until + Duration::from_millis(500) {
            async_io::Timer::after(Duration::from_secs(1)).await;
            let line: Vec<String> = nodes
                .iter()
                .enumerate()
                .map(|(i, (node, _))| {
                    let s = node
                        .stats
                        .lock()
                        .map(|s| (s.reached.len(), s.verified))
                        .unwrap_or_default();
                    format!("n{i}: {} peers {} ok", s.0, s.1)
                })
                .collect();
            let mut out = std::io::stdout().lock();
            let text = format!("[{:>3}s] {}", start.elapsed().as_secs(), line.join(" | "));
            let _ = if tty {
                write!(out, "\r{text}")
            } else {
                writeln!(out, "{text}")
            };
            let _ = out.flush();
        }
        if tty {
            println!();
        }
        // Let the last echoes arrive, then stop every node gracefully.
        async_io::Timer::after(Duration::from_millis(500)).await;
        let mut ok = true;
        println!(
            "{:<6} {:>6} {:>10} {:>10} {:>10} {:>9} {:>9}",
            "node", "peers", "sent", "answered", "verified", "corrupt", "missing"
        );
        for (i, (node, _)) in nodes.iter().enumerate() {
            let Ok(s) = node.stats.lock() else { continue };
            let reached_all = s.reached.len() == n - 1 && s.verified_from.len() == n - 1;
            ok &= reached_all && s.corrupted == 0;
            println!(
                "demo-{i:<1} {:>6} {:>10} {:>10} {:>10} {:>9} {:>9}{}",
                s.reached.len(),
                s.sent,
                s.answered,
                s.verified,
                s.corrupted,
                s.outstanding.len(),
                if reached_all {
                    ""
                } else {
                    "  <- did not reach every peer"
                }
            );
        }
        for (node, _) in nodes {
            node.handle.stop().await;
        }
        if ok {
            println!(
                "ok: every node reached its {} peers and verified their echoes",
                n - 1
            );
            Ok(())
        } else {
            Err(CliError::Runtime(
                "some node did not reach all its peers or saw corrupted echoes".into(),
            ))
        }
    })
}
