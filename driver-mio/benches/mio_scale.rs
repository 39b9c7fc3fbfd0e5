//! Scale benchmark of the mio driver: N concurrent authenticated idle connections to one
//! node running on one loop thread (`RunningNode`), for N = 1 000 and 10 000. Reports
//! handshakes per second while connecting and resident memory per idle connection (RSS
//! delta of the node's process / N, from `/proc/self/statm`).
//!
//! The clients run in a child process (this binary re-executed with `--client`), so the
//! node's RSS holds only the node, and each process needs only N descriptors of its own.
//! The client is a single mio thread driving N `PeerConnection`s (at most 512 handshakes
//! in flight), each with its own node key and a full handshake. It is load generation
//! sharing the node's cores, so it is kept lean: keys are derived before the first
//! connection, one NodeInfo template is reused, and a short read counts as drained.
//!
//! The anchor runs in the same process, right before and right after each size: the
//! crypto one end of a handshake performs (ephemeral X25519 key, DH, Merlin transcript,
//! HKDF, Ed25519 sign, ZIP-215 verify), timed over [`ANCHOR_ROUNDS`] rounds on one thread.
//! Its inverse is the crypto-only bound on handshakes/s, and the bench prints the rate as
//! a share of it, so the ratio does not depend on how fast this VM happens to be today.
//!
//! Run: `cargo bench -p tmp2p-driver-mio --bench mio_scale` (optionally `-- 1000`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tmp2p_core::connection::{Direction, PeerConfig, PeerConnection, PeerEvent};
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::NodeKey;
use tmp2p_driver_mio::{AppEvent, DriverLimits, DriverSetup, RunningNode};

const SERVER_SEED: [u8; 32] = [7; 32];
const NETWORK: &str = "mio-scale";
const CHANNEL: u8 = 0x40;
const IN_FLIGHT: usize = 512;
/// Rounds of one end's handshake crypto timed for the same-run anchor.
const ANCHOR_ROUNDS: u32 = 2000;

/// Mean time of one end's handshake crypto, on this thread, now.
fn crypto_per_handshake_end() -> Duration {
    use ed25519_dalek::Signer;
    use rand_chacha::rand_core::SeedableRng;
    use std::hint::black_box;
    use tmp2p_core::secret::{derive_secrets, transcript_challenge};
    // A seeded generator: the anchor is crypto only (the node pays a getrandom per
    // handshake for its ephemeral key; the anchor does not).
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let signing = ed25519_dalek::SigningKey::from_bytes(&[0x11; 32]);
    let public = signing.verifying_key().to_bytes();
    let theirs =
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(&mut rng));
    let (lower, upper) = ([0x01u8; 32], [0x02u8; 32]);
    let start = Instant::now();
    for _ in 0..ANCHOR_ROUNDS {
        let ours = x25519_dalek::EphemeralSecret::random_from_rng(&mut rng);
        black_box(x25519_dalek::PublicKey::from(&ours));
        let shared = ours.diffie_hellman(black_box(&theirs));
        let dh = *shared.as_bytes();
        let challenge = transcript_challenge(&lower, &upper, &dh);
        black_box(derive_secrets(&dh, true));
        let signature = signing.sign(&challenge).to_bytes();
        // The peer's signature is checked as the handshake does: decode the key, verify.
        let key = ed25519_consensus::VerificationKey::try_from(black_box(public)).unwrap();
        key.verify(&ed25519_consensus::Signature::from(signature), &challenge)
            .unwrap();
    }
    start.elapsed() / ANCHOR_ROUNDS
}

fn channel() -> ChannelDescriptor {
    ChannelDescriptor {
        id: CHANNEL,
        priority: 1,
        send_queue_capacity: 16,
        recv_message_capacity: 1 << 16,
    }
}

fn client_key(i: usize) -> NodeKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    seed[31] = 0xC1;
    NodeKey::from_seed(seed)
}

/// Raises the soft descriptor limit to the hard one (with util-linux `prlimit` on our own
/// pid, so the bench needs no unsafe code) and returns the resulting soft limit.
fn raise_nofile() -> u64 {
    let read = || -> Option<(u64, u64)> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        let mut fields = line.split_whitespace().skip(3);
        let soft = fields.next()?.parse().ok()?;
        let hard = fields.next()?.parse().ok()?;
        Some((soft, hard))
    };
    let Some((soft, hard)) = read() else {
        return 0;
    };
    if soft < hard {
        let _ = Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
    read().map_or(soft, |(soft, _)| soft)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// CPU time (user + system) of the named thread of this process, from
/// `/proc/self/task/*/stat` (clock ticks of 10 ms).
fn thread_cpu(name: &str) -> Duration {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with(name) {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the comm field: state is index 0, utime 11, stime 12.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        total += ticks;
    }
    Duration::from_millis(total * 10)
}

/// The kernel's count of connections dropped because a listen queue was full
/// (`TcpExt: ListenOverflows` in `/proc/net/netstat`; system-wide). Each such drop costs
/// the dialer a SYN retransmit after 1 s.
fn listen_overflows() -> u64 {
    let Ok(netstat) = std::fs::read_to_string("/proc/net/netstat") else {
        return 0;
    };
    let mut tcp_ext = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (tcp_ext.next(), tcp_ext.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

fn server(n: usize) {
    let limit = raise_nofile();
    let crypto_before = crypto_per_handshake_end();
    let mut config = NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap());
    let room = n + 64;
    config.router.max_connections = room;
    config.router.max_incoming_per_ip = room;
    config.router.incoming_window = Duration::ZERO;
    let pm = &mut config.router.peer_manager;
    pm.max_connected = u16::try_from(room).unwrap();
    pm.max_peers = u16::MAX;
    pm.max_connected_per_ip_group = u16::MAX;
    pm.max_stored_per_ip_group = u16::MAX;
    let mut setup = DriverSetup::new(config, NodeKey::from_seed(SERVER_SEED), vec![channel()]);
    setup.limits = DriverLimits {
        max_pending_inbound: room * 2,
        ..DriverLimits::default()
    };
    let node = RunningNode::spawn(setup, room * 2).unwrap();
    let inbound = node.inbound().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_bytes();
    let cpu_before = thread_cpu("(tmp2p-mio");
    let overflows_before = listen_overflows();

    let mut client: Child = Command::new(std::env::current_exe().unwrap())
        .arg("--client")
        .arg(node.local_addr().to_string())
        .arg(n.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut ups = 0usize;
    let mut first_up = None;
    let mut last_up = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(300);
    while ups < n && Instant::now() < deadline {
        if let Some(AppEvent::PeerUpdate(u)) = inbound.recv_timeout(Duration::from_secs(1)).unwrap()
        {
            if u.status == PeerStatus::Up {
                ups += 1;
                last_up = Instant::now();
                first_up.get_or_insert(last_up);
            }
        }
        if let Ok(Some(status)) = client.try_wait() {
            println!("client exited early: {status}");
            break;
        }
    }
    let cpu_connecting = thread_cpu("(tmp2p-mio").saturating_sub(cpu_before);
    let overflows = listen_overflows().saturating_sub(overflows_before);
    // Let the idle state settle (buffers released after the handshake burst).
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = rss_bytes();
    let connected = node_connected(&node);
    let span = first_up.map_or(Duration::ZERO, |f| last_up - f);
    let rate = if span.is_zero() {
        0.0
    } else {
        (ups.saturating_sub(1)) as f64 / span.as_secs_f64()
    };
    let per_conn = rss_after.saturating_sub(rss_before) as f64 / ups.max(1) as f64;
    let crypto_after = crypto_per_handshake_end();
    let crypto = (crypto_before + crypto_after) / 2;
    let bound = 1.0 / crypto.as_secs_f64();
    let loop_cpu = cpu_connecting.as_secs_f64() / ups.max(1) as f64;
    println!(
        "mio_scale n={n}: same-run anchor: one end's handshake crypto {:.0} us before, \
         {:.0} us after = bound {bound:.0}/s; handshakes {rate:.0}/s = {:.0} % of it; \
         loop thread {:.0} us per handshake = {:.0} % of it",
        crypto_before.as_secs_f64() * 1e6,
        crypto_after.as_secs_f64() * 1e6,
        100.0 * rate / bound,
        loop_cpu * 1e6,
        100.0 * crypto.as_secs_f64() / loop_cpu.max(f64::MIN_POSITIVE),
    );
    println!(
        "mio_scale n={n}: {ups} authenticated (router reports {connected} connected), \
         nofile limit {limit}; handshakes {rate:.0}/s over {span:.2?}; \
         loop thread CPU {cpu_connecting:.2?} = {:.0} us per handshake; \
         RSS {:.1} MiB -> {:.1} MiB, {:.1} KiB per idle connection; \
         kernel listen-queue overflows {overflows}",
        cpu_connecting.as_secs_f64() * 1e6 / ups.max(1) as f64,
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        per_conn / 1024.0
    );
    let _ = client.kill();
    let _ = client.wait();
    node.stop().unwrap();
}

fn node_connected(node: &RunningNode) -> usize {
    let (tx, rx) = std::sync::mpsc::channel();
    node.handle()
        .call(move |control| {
            let _ = tx.send(control.connected_peers().len());
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or(0)
}

struct ClientConn {
    stream: TcpStream,
    pc: Option<PeerConnection>,
    out: BytesMut,
    done: bool,
}

fn client(addr: SocketAddr, n: usize) {
    raise_nofile();
    let server_id = NodeKey::from_seed(SERVER_SEED).node_id();
    let keys: Vec<NodeKey> = (0..n).map(client_key).collect();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<ClientConn> = Vec::with_capacity(n);
    let mut scratch = vec![0u8; 64 * 1024];
    let config = PeerConfig {
        channels: vec![channel()],
        ..PeerConfig::default()
    };
    // One NodeInfo built up front; each connection only puts its own id in.
    let mut info_template = NodeConfig::new(NETWORK, addr).node_info(server_id);
    info_template.listen_addr = "tcp://127.0.0.1:1".into();
    info_template.channels = vec![CHANNEL];
    let (mut authenticated, mut failed, mut in_flight) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    let mut rng = rand_core::OsRng;
    loop {
        while in_flight < IN_FLIGHT && conns.len() < n {
            let mut stream = TcpStream::connect(addr).unwrap();
            let token = Token(conns.len());
            poll.registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .unwrap();
            conns.push(ClientConn {
                stream,
                pc: None,
                out: BytesMut::new(),
                done: false,
            });
            in_flight += 1;
        }
        if authenticated + failed == n && conns.len() == n {
            eprintln!(
                "client: {authenticated} authenticated, {failed} failed in {:?}",
                started.elapsed()
            );
            // Stay idle (answering pings) until the parent ends us.
            loop {
                poll.poll(&mut events, Some(Duration::from_secs(1)))
                    .unwrap();
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        let now = Instant::now();
        for event in events.iter() {
            let i = event.token().0;
            let conn = &mut conns[i];
            if conn.done {
                continue;
            }
            if conn.pc.is_none() {
                if conn.stream.peer_addr().is_err() {
                    continue;
                }
                let _ = conn.stream.set_nodelay(true);
                let key = &keys[i];
                let mut info = info_template.clone();
                info.node_id = key.node_id();
                conn.pc = Some(PeerConnection::new(
                    now,
                    key,
                    info,
                    Direction::Outbound {
                        expected: server_id,
                    },
                    config.clone(),
                    &mut rng,
                ));
            }
            let pc = conn.pc.as_mut().unwrap();
            loop {
                match conn.stream.read(&mut scratch) {
                    Ok(0) => {
                        pc.handle_eof();
                        break;
                    }
                    Ok(k) => {
                        let _ = pc.handle_input(now, &scratch[..k]);
                        if k < scratch.len() {
                            // Drained (edge-triggered epoll reports the next arrival).
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        pc.handle_eof();
                        break;
                    }
                }
            }
            while pc.poll_transmit(now, &mut conn.out) {}
            while !conn.out.is_empty() {
                match conn.stream.write(&conn.out) {
                    Ok(k) => conn.out.advance(k),
                    Err(_) => break,
                }
            }
            while let Some(e) = pc.poll_event() {
                match e {
                    PeerEvent::Authenticated { .. } if !conn.done => {
                        conn.done = true;
                        authenticated += 1;
                        in_flight -= 1;
                    }
                    PeerEvent::Closed { reason } if !conn.done => {
                        eprintln!("client {i}: closed during handshake: {reason:?}");
                        conn.done = true;
                        failed += 1;
                        in_flight -= 1;
                    }
                    _ => {}
                }
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--client") {
        let addr = args[pos + 1].parse().unwrap();
        let n = args[pos + 2].parse().unwrap();
        client(addr, n);
        return;
    }
    let sizes: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 10_000]
    } else {
        sizes
    };
    for n in sizes {
        server(n);
    }
}
