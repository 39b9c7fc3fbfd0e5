#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `tmp2p crawl` over 10 local `tmp2p node` processes chained by bootstrap peers (node i
//! knows only node i-1): the crawl, started at node 0, finds all 10 by PEX alone.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The node processes and their homes; every one is killed (and its home removed) on
/// drop, even when an assertion fails.
struct Nodes(Vec<(Child, std::path::PathBuf)>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for (child, home) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tmp2p-crawl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Starts a node; returns its `id@127.0.0.1:port`. Its stdout lines go to `lines`, tagged
/// with `index`.
fn start_node(
    nodes: &mut Nodes,
    index: usize,
    bootstrap: Option<&str>,
    lines: &mpsc::Sender<(usize, String)>,
) -> String {
    start_node_on(nodes, index, bootstrap, lines, "tmp2p-local")
}

fn start_node_on(
    nodes: &mut Nodes,
    index: usize,
    bootstrap: Option<&str>,
    lines: &mpsc::Sender<(usize, String)>,
    network: &str,
) -> String {
    let home = scratch(&index.to_string());
    let mut command = Command::new(env!("CARGO_BIN_EXE_tmp2p"));
    command
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--network",
            network,
            "--moniker",
        ])
        .arg(format!("crawl-{index}"))
        .arg("--home")
        .arg(&home);
    if let Some(peer) = bootstrap {
        command.args(["--bootstrap-peers", peer]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    nodes.0.push((child, home));
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // "node ID listening on ADDR"
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"node"), "{first:?}");
    let address = format!("{}@{}", words[1], words[4]);
    let lines = lines.clone();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send((index, line));
        }
    });
    address
}

fn crawl(start: &str) -> serde_json::Value {
    let json = common::tmp2p_ok(&["crawl", start, "--json", "--timeout", "5"]);
    serde_json::from_str(&json).unwrap()
}

#[test]
fn crawl_finds_all_ten_chained_node_processes() {
    let (lines_tx, lines) = mpsc::channel();
    let mut nodes = Nodes(Vec::new());
    let mut addresses: Vec<String> = Vec::new();
    for i in 0..10 {
        let address = start_node(
            &mut nodes,
            i,
            addresses.last().map(String::as_str),
            &lines_tx,
        );
        addresses.push(address);
    }
    let ids: BTreeSet<String> = addresses
        .iter()
        .map(|a| a.split('@').next().unwrap().to_owned())
        .collect();
    // Wait until every node has at least one peer up (node i reached node i-1).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut up = BTreeSet::new();
    while up.len() < 10 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (index, line) = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("only nodes {up:?} have a peer up"));
        if line.starts_with("peer ") && line.contains(" Up ") {
            up.insert(index);
        }
    }
    // The crawl may start before every answer is in: retry until the deadline.
    let deadline = Instant::now() + Duration::from_secs(15);
    let v = loop {
        let v = crawl(&addresses[0]);
        if common::reached::<BTreeSet<String>>(&v, "id") == ids || Instant::now() >= deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(common::reached::<BTreeSet<String>>(&v, "id"), ids, "{v:#}");
    assert_eq!(v["summary"]["reached"], 10);
    assert_eq!(v["summary"]["refused"], 0);
    let node = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["moniker"] == "crawl-3")
        .unwrap();
    assert_eq!(node["network"], "tmp2p-local");
    // The echo channel 0x99 and PEX 0x00, in either order.
    let channels = node["channels"].as_str().unwrap();
    assert!(channels == "9900" || channels == "0099", "{channels}");
    assert!(node["rtt_us"].is_u64());

    // --max-nodes bounds what is queued: the start node plus two it learned.
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["crawl", &addresses[0], "--json", "--max-nodes", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["found"], 3, "{v:#}");
}

#[test]
fn without_network_crawl_learns_the_start_nodes_network() {
    let (lines_tx, _lines) = mpsc::channel();
    let mut nodes = Nodes(Vec::new());
    let address = start_node_on(&mut nodes, 101, None, &lines_tx, "far-chain");
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["crawl", &address, "--json", "--timeout", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is on network \"far-chain\": using it"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["reached"], 1, "{v:#}");
}

#[test]
fn crawl_reports_a_node_on_another_network_as_refused() {
    let (lines_tx, _lines) = mpsc::channel();
    let mut nodes = Nodes(Vec::new());
    let address = start_node(&mut nodes, 100, None, &lines_tx);
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args([
            "crawl",
            &address,
            "--network",
            "elsewhere",
            "--timeout",
            "5",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("refused (Incompatible)"), "{stdout}");
    assert!(
        stdout.contains("found 1 nodes: 0 reached, 1 refused"),
        "{stdout}"
    );
}

/// 50 nodes in this process (smol, one shared executor), chained by bootstrap peers: a
/// crawl from node 0 writes the census (CSV, one row per node with its NodeInfo) and the
/// graph of who knows whom (DOT and SVG), which holds the chain's links.
#[test]
fn a_crawl_over_fifty_nodes_writes_the_census_and_the_graph() {
    use std::sync::Arc;
    use tmp2p_core::address::NodeAddress;
    use tmp2p_core::node_config::NodeConfig;
    use tmp2p_core::NodeKey;
    use tmp2p_driver_smol::NodeBuilder;
    use tmp2p_store::MemoryPeerStore;

    const NODES: usize = 50;
    let executor = Arc::new(smol::Executor::new());
    let (quit, quit_rx) = async_channel::bounded::<()>(1);
    for _ in 0..2 {
        let (executor, quit_rx) = (executor.clone(), quit_rx.clone());
        std::thread::spawn(move || smol::block_on(executor.run(quit_rx.recv())));
    }
    let mut handles = Vec::new();
    let mut addresses: Vec<NodeAddress> = Vec::new();
    for i in 0..NODES {
        let mut config = NodeConfig::new("census-net", "127.0.0.1:0".parse().unwrap());
        config.moniker = format!("census-{i}");
        config.bootstrap_peers = addresses.last().cloned().into_iter().collect();
        config.router.peer_manager.exempt_loopback = true;
        let key = NodeKey::from_seed([i as u8 + 1; 32]);
        let id = key.node_id();
        let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).unwrap();
        builder
            .enable_pex(tmp2p_core::pex::PexConfig::default())
            .unwrap();
        let handle = smol::block_on(builder.start_on(executor.clone())).unwrap();
        addresses.push(NodeAddress::parse(&format!("{id}@{}", handle.local_addr())).unwrap());
        handles.push(handle);
    }
    let start = addresses[0].to_string();
    let dir = scratch("census");
    std::fs::create_dir_all(&dir).unwrap();
    let (dot, svg) = (dir.join("net.dot"), dir.join("net.svg"));
    // PEX spreads the chain's addresses within a few rounds: retry until every node is in.
    let deadline = Instant::now() + Duration::from_secs(30);
    let crawl_args = [
        "crawl",
        &start,
        "--timeout",
        "5",
        "--concurrency",
        "16",
        "--graph",
    ];
    let rows = loop {
        let csv = common::tmp2p_ok(&[&crawl_args[..], &[dot.to_str().unwrap(), "--csv"]].concat());
        let rows: Vec<Vec<String>> = csv
            .lines()
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        let reached = rows.iter().filter(|r| r[3] == "reachable").count();
        if reached == NODES || Instant::now() >= deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        rows[0][..6],
        ["id", "address", "addresses", "status", "reason", "network"]
    );
    assert_eq!(rows.len(), NODES + 1, "{rows:?}");
    for row in &rows[1..] {
        assert_eq!(row[3], "reachable", "{row:?}");
        assert_eq!(row[5], "census-net");
        assert!(row[11].starts_with("census-"), "{row:?}");
        assert!(row[2].contains("127.0.0.1:"), "{row:?}");
    }
    // The graph: one vertex per node, and the chain's links among its edges.
    let text = std::fs::read_to_string(&dot).unwrap();
    assert!(text.starts_with("digraph"), "{text}");
    assert_eq!(
        text.matches("fillcolor = palegreen").count(),
        NODES,
        "{text}"
    );
    assert!(text.matches(" -> ").count() >= NODES - 1, "{text}");
    let json = common::tmp2p_ok(&[&crawl_args[..], &[svg.to_str().unwrap(), "--json"]].concat());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["summary"]["networks"]["census-net"], NODES, "{v:#}");
    assert!(v["edges"].as_array().unwrap().len() >= NODES - 1);
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(
        picture.contains("<svg") && picture.contains("census-7"),
        "{}",
        &picture[..200.min(picture.len())]
    );
    for handle in handles {
        smol::block_on(handle.stop());
    }
    drop(quit);
    std::fs::remove_dir_all(dir).unwrap();
}
