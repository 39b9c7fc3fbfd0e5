#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `tmp2p ping` against `tmp2p node`, both as real processes: MConnection pings and raw
//! echoes; the node's key persists in its home across restarts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `tmp2p node`, killed on drop.
struct Node {
    child: Child,
    /// Its stdout, kept open so the node's lines never hit a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
    /// `id@127.0.0.1:port`.
    address: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(home: &std::path::Path) -> Node {
    start_node_with(home, &[])
}

fn start_node_with(home: &std::path::Path, extra: &[&str]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--echo-channel",
            "0x99",
            "--home",
        ])
        .arg(home)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    // "node ID listening on ADDR"
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"node"), "{first:?}");
    let address = format!("{}@{}", words[1], words[4]);
    Node {
        child,
        _stdout: stdout,
        address,
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tmp2p-node-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ping(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .arg("ping")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn node_key_persists_in_home() {
    let home = scratch("restart");
    // Each node is stopped (dropped) before the next opens the same store.
    let first = start_node(&home).address.clone();
    let second = start_node(&home).address.clone();
    assert_eq!(first.split('@').next(), second.split('@').next());
    assert!(home.join("node_key.json").exists());
    assert!(home.join("peerstore.redb").exists());
}

#[test]
fn plain_ping_shares_the_pex_channel_with_a_node_process() {
    let home = scratch("plain");
    let node = start_node(&home);
    // No echo channel: ping advertises only the CometBFT standard set, whose PEX channel
    // 0x00 the node serves (PEX is on by default).
    let v = ping(&[&node.address, "--count", "3"]);
    assert_eq!(v["mode"], "ping");
    assert_eq!(v["rtt"]["count"], 3);
    let channels = hex_bytes(v["peer"]["channels"].as_str().unwrap());
    assert!(channels.contains(&0x00), "{channels:?}");
}

#[test]
fn plain_ping_finds_no_common_channel_with_a_node_without_pex() {
    let home = scratch("nopex");
    let node = start_node_with(&home, &["--no-pex"]);
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["ping", &node.address, "--count", "1", "--timeout", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("handshake refused"), "{stderr}");
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Multi-packet echoes, then a flood of 20 000 x 1000 B faster than the node's queue
/// towards the tool drains: each echo waits for room instead of being dropped, so every
/// one comes back, in order.
fn echoes_and_a_flood_come_back_whole(address: &str) {
    let v = ping(&[
        address,
        "--echo-channel",
        "0x99",
        "--size",
        "2000",
        "--count",
        "5",
    ]);
    assert_eq!(v["verified"], 5);
    assert_eq!(v["peer"]["moniker"], "tmp2p");
    let flood = [
        "--echo-channel",
        "0x99",
        "--flood",
        "20000",
        "--size",
        "1000",
    ];
    let v = ping(&[&[address][..], &flood[..]].concat());
    assert_eq!(v["verified"], 20000);
}

#[test]
fn a_flood_against_a_smol_node_process_gets_every_echo_back() {
    let node = start_node(&scratch("flood"));
    echoes_and_a_flood_come_back_whole(&node.address);
}

/// `--driver mio` runs the same node machine, with the same result.
#[test]
fn a_flood_against_a_mio_node_process_gets_every_echo_back() {
    let node = start_node_with(&scratch("mio"), &["--driver", "mio"]);
    echoes_and_a_flood_come_back_whole(&node.address);
}
