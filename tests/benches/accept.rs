//! The accept path of a `tmp2p node` process (issue [seed]): full handshakes per second
//! (TCP connect, SecretConnection, node-info exchange, close) that a node accepts from N
//! concurrent dialers, each connection with a new node id, so the node admits (and
//! stores) a new peer every time, as a seed does.
//!
//! The dialers are independent of our code: tendermint-p2p's SecretConnection and
//! tendermint-proto's NodeInfo (`tmp2p_tests::reference_peer::handshake`), on threads of
//! this process. The node is the real binary, in a process of its own (`TMP2P_BIN`, by
//! default `target/release/tmp2p`), so two builds compare by pointing at each.
//!
//! The same-run anchor, measured before and after the dialing on this thread: our own
//! SecretConnection pair handshaking through memory (`in_memory_handshake`, both ends'
//! crypto and framing, no IO). One end's share of it is the node's crypto-only bound, and
//! the bench prints the accept rate as a share of that bound. On a 2-core machine the
//! dialers share the cores with the node, so it also prints the node process's own CPU
//! time per accepted handshake (user + system, from `/proc/PID/stat`) against one end's
//! anchor time: the rate the node would sustain on a core of its own.
//!
//! With `-- seed`, the node is a seed (`--seed-mode`) holding 10 000 known addresses
//! (imported from a generated addrbook.json, all on loopback so its crawl stays on this
//! machine), and each client is a CometBFT node's first contact
//! (`reference_peer::ask_seed`: handshake, `PexRequest`, `PexAddrs`, the seed's close):
//! the bench prints answers per second and the node's resident memory before the first
//! and after the last of `SEED_CONNECTIONS` (default 100 000) connections.
//!
//! With `-- shared`, the node is `tmp2p seed` serving the bench's network on a listener of
//! its own, then on one it shares with a second network (each connection's handshake runs
//! before the seed knows its network, then moves to that network's node): the cost of
//! sharing an address.
//!
//! Run: `cargo build --release -p tmp2p-cli && cargo bench -p tmp2p-tests --bench accept`
//! (optionally `-- 1,4,16` for the dialer counts, or `-- seed`, or `-- 1,16 shared`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tmp2p_core::NodeKey;
use tmp2p_tests::blocking_secret::in_memory_handshake;
use tmp2p_tests::reference_peer::{ask_seed, handshake, reference_info};
use tmp2p_tests::release_binary::tmp2p_binary;

const NETWORK: &str = "accept-bench";
/// How long each dialer count dials.
const DIAL_FOR: Duration = Duration::from_secs(4);
/// How long the anchor runs, before and after.
const ANCHOR_FOR: Duration = Duration::from_secs(1);

/// A `tmp2p node` process, killed on drop.
struct NodeProcess {
    child: Child,
    addr: SocketAddr,
    home: PathBuf,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Starts the node with `extra` arguments; with `ready`, also waits for a stdout line
/// starting with it.
fn start_node(binary: &PathBuf, extra: &[&str], ready: Option<&str>) -> NodeProcess {
    let home = std::env::temp_dir().join(format!("tmp2p-accept-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let mut command = Command::new(binary);
    command
        .args(["node", "--listen", "127.0.0.1:0", "--network", NETWORK])
        // Warnings only (builds before the log options ignore the variable).
        .env("RUST_LOG", "warn")
        .arg("--home")
        .arg(&home)
        .args(extra)
        // Extra node options for an experiment, e.g. TMP2P_NODE_ARGS="--threads 1".
        .args(
            std::env::var("TMP2P_NODE_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        );
    let (child, mut stdout, first) = spawn_with_first_line(&mut command, binary);
    // "node ID listening on ADDR"; the peer lines that follow are drained and dropped.
    let addr = first.split_whitespace().nth(4).unwrap().parse().unwrap();
    if let Some(ready) = ready {
        let mut line = String::new();
        while !line.starts_with(ready) {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "no {ready:?} line"
            );
        }
    }
    std::thread::spawn(move || for _ in stdout.lines() {});
    NodeProcess { child, addr, home }
}

/// Runs `command` with its stdout piped (stderr dropped) and reads its first line.
fn spawn_with_first_line(
    command: &mut Command,
    binary: &std::path::Path,
) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    (child, stdout, first)
}

/// CPU time (user + system) the process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; clock
    // ticks of 10 ms (CLK_TCK is 100 on Linux).
    Duration::from_millis((fields[11] + fields[12]) * 10)
}

/// Handshakes per second of our SecretConnection pair through memory, on this thread.
fn pair_rate() -> f64 {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (a, b) = (NodeKey::from_seed([1; 32]), NodeKey::from_seed([2; 32]));
    let mut rng_b = ChaCha20Rng::seed_from_u64(6);
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < ANCHOR_FOR {
        in_memory_handshake(&a, &b, &mut rng, &mut rng_b).unwrap();
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Full handshakes completed against `addr` by `dialers` threads in [`DIAL_FOR`], each
/// with a new node key; returns (completed, failed, elapsed).
fn dial(addr: SocketAddr, dialers: usize, run: u64) -> (u64, u64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..dialers)
        .map(|t| {
            let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut seed = [0u8; 32];
                    seed[..8].copy_from_slice(&i.to_le_bytes());
                    seed[8..16].copy_from_slice(&(t as u64).to_le_bytes());
                    seed[16..24].copy_from_slice(&run.to_le_bytes());
                    i += 1;
                    let info = reference_info(seed, NETWORK, &[0x00]);
                    let ok = TcpStream::connect(addr)
                        .and_then(|s| s.set_nodelay(true).map(|()| s))
                        .and_then(|s| handshake(s, seed, &info));
                    match ok {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(DIAL_FOR);
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for thread in threads {
        thread.join().unwrap();
    }
    (
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        elapsed,
    )
}

/// Resident memory of process `pid`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A CometBFT address book of `count` entries on loopback (port 9 refuses at once).
fn addrbook(count: usize) -> String {
    let addrs: Vec<String> = (0..count)
        .map(|i| {
            let mut seed = [0xB7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let id = NodeKey::from_seed(seed).node_id();
            let ip = format!("127.{}.{}.{}", i / 62_500 + 1, i / 250 % 250, i % 250 + 1);
            format!(
                r#"{{"addr":{{"id":"{id}","ip":"{ip}","port":9}},"src":{{"id":"{id}","ip":"{ip}","port":9}},"buckets":[1],"attempts":0,"bucket_type":1,"last_attempt":"2024-01-01T00:00:00Z","last_success":"2024-01-01T00:00:00Z","last_ban_time":"0001-01-01T00:00:00Z"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"key":"0123456789abcdef01234567","addrs":[{}]}}"#,
        addrs.join(",")
    )
}

/// Seed mode (see the module docs).
fn seed_churn(binary: &PathBuf) {
    const KNOWN: usize = 10_000;
    const DIALERS: usize = 4;
    let total: u64 = std::env::var("SEED_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let book = std::env::temp_dir().join(format!("tmp2p-accept-book-{}.json", std::process::id()));
    std::fs::write(&book, addrbook(KNOWN)).unwrap();
    let node = start_node(
        binary,
        &["--seed-mode", "--import-addrbook", book.to_str().unwrap()],
        Some("imported"),
    );
    let pid = node.child.id();
    let rss_before = rss_kib(pid);
    let anchor_before = pair_rate();
    let next = Arc::new(AtomicU64::new(0));
    let (answered, addresses, closed, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let start = Instant::now();
    let threads: Vec<_> = (0..DIALERS)
        .map(|_| {
            let (next, answered, addresses, closed, failed) = (
                next.clone(),
                answered.clone(),
                addresses.clone(),
                closed.clone(),
                failed.clone(),
            );
            let addr = node.addr;
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let mut seed = [0x9Eu8; 32];
                seed[..8].copy_from_slice(&i.to_le_bytes());
                let info = reference_info(seed, NETWORK, &[0x00]);
                let answer = TcpStream::connect(addr)
                    .and_then(|s| s.set_nodelay(true).map(|()| s))
                    .and_then(|s| ask_seed(s, seed, &info, Duration::from_secs(5)));
                match answer {
                    Ok(answer) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        addresses.fetch_add(answer.addresses.len() as u64, Ordering::Relaxed);
                        closed.fetch_add(u64::from(answer.closed), Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // The node's memory at each quarter of the connections: flat once its peer store is
    // full (`--max-peers`, 20 000 for a seed) if nothing leaks per connection.
    let mut quarters = Vec::new();
    for quarter in 1..=4u64 {
        while answered.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed)
            < total * quarter / 4
            && threads.iter().any(|t| !t.is_finished())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        quarters.push(format!("{} KiB", rss_kib(pid)));
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = start.elapsed();
    // Let the node finish closing and writing before reading its memory.
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = rss_kib(pid);
    let anchor_after = pair_rate();
    let answered = answered.load(Ordering::Relaxed);
    println!(
        "seed known={KNOWN} dialers={DIALERS}: {:.0} answers/s ({answered} of {total} in {elapsed:.1?}, \
         {} failed, {} closed by the seed, {:.0} addresses per answer); node RSS {rss_before} KiB \
         before, at each quarter {}, {rss_after} KiB after; anchor: our pair in memory {anchor_before:.0}/s before, \
         {anchor_after:.0}/s after",
        answered as f64 / elapsed.as_secs_f64(),
        failed.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
        addresses.load(Ordering::Relaxed) as f64 / answered.max(1) as f64,
        quarters.join(" / "),
    );
    drop(node);
    let _ = std::fs::remove_file(book);
}

fn main() {
    let binary = tmp2p_binary();
    if std::env::args().skip(1).any(|a| a == "seed") {
        seed_churn(&binary);
        return;
    }
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a != "shared")
        .map_or_else(
            || vec![1, 4, 16],
            |list| list.split(',').map(|n| n.parse().unwrap()).collect(),
        );
    let shared = std::env::args().skip(1).any(|a| a == "shared");
    for (run, dialers) in counts.into_iter().enumerate() {
        if shared {
            for (label, networks) in [("own listener", 1), ("shared listener", 2)] {
                let node = start_seed(&binary, networks);
                measure(&format!("seed, {label}"), &node, dialers, run as u64);
            }
            continue;
        }
        let node = start_node(&binary, &[], None);
        measure("node", &node, dialers, run as u64);
    }
}

/// Dials `node` from `dialers` threads and prints the rate, the node's CPU per accept and
/// the same-run anchor.
fn measure(label: &str, node: &NodeProcess, dialers: usize, run: u64) {
    let before = pair_rate();
    let cpu_before = cpu_time(node.child.id());
    let (done, failed, elapsed) = dial(node.addr, dialers, run);
    let node_cpu = cpu_time(node.child.id()).saturating_sub(cpu_before);
    let after = pair_rate();
    let anchor = (before + after) / 2.0;
    let accepts = done as f64 / elapsed.as_secs_f64();
    // One handshake of the pair is both ends' work: one end alone runs twice as often.
    let one_end = 2.0 * anchor;
    let per_accept = node_cpu.as_secs_f64() * 1e6 / done.max(1) as f64;
    let one_end_us = 1e6 / one_end;
    println!(
        "{label}: accept dialers={dialers}: {accepts:.0} accepts/s ({done} in {elapsed:.2?}, {failed} failed); \
         anchor: our pair in memory {before:.0}/s before, {after:.0}/s after, one end {one_end:.0}/s \
         ({one_end_us:.0} us); accepts = {:.0} % of one end; node CPU {per_accept:.0} us per accept \
         ({:.0} % of it is one end's anchor time)",
        100.0 * accepts / one_end,
        100.0 * one_end_us / per_accept
    );
}

/// A `tmp2p seed` process serving the bench's network, on a listener of its own
/// (`networks` = 1) or on one it shares with another network (2).
fn start_seed(binary: &PathBuf, networks: usize) -> NodeProcess {
    let home = std::env::temp_dir().join(format!("tmp2p-accept-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = free.local_addr().unwrap();
    drop(free);
    let mut command = Command::new(binary);
    command
        .args(["seed", "--summary-every", "0", "--home"])
        .arg(&home)
        // Every dialer here is on 127.0.0.1: the per-IP share must take them all.
        .args(["--max-handshakes-per-ip", "256"])
        .env("RUST_LOG", "warn");
    for n in 0..networks {
        let chain = if n == 0 {
            NETWORK.to_owned()
        } else {
            format!("{NETWORK}-{n}")
        };
        command.args(["--network", &format!("{chain}={listen}")]);
    }
    let (child, stdout, first) = spawn_with_first_line(&mut command, binary);
    // "seed for CHAIN is ID@ADDR"
    let addr = first.trim().rsplit('@').next().unwrap().parse().unwrap();
    std::thread::spawn(move || for _ in stdout.lines() {});
    NodeProcess { child, addr, home }
}
