#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `tmp2p ping` against `tmp2p node`, both as real processes: MConnection pings and raw
//! echoes; the node's key persists in its home across restarts.

use std::process::Command;

mod common;

use common::NodeProcess;

fn start_node(home: &std::path::Path) -> NodeProcess {
    start_node_with(home, &[])
}

/// `tmp2p node` with the raw echo reactor on 0x99, in `home` (kept across restarts; the
/// test removes it).
fn start_node_with(home: &std::path::Path, extra: &[&str]) -> NodeProcess {
    let mut args = vec!["--listen", "127.0.0.1:0", "--echo-channel", "0x99"];
    args.extend_from_slice(extra);
    NodeProcess::start_in(home.to_owned(), &args)
}

/// A fresh home; [`Home`]'s drop removes it.
fn scratch(name: &str) -> Home {
    Home(common::fresh_dir(&format!("node-{name}")))
}

/// A scratch home directory, removed when the test ends.
struct Home(std::path::PathBuf);

impl std::ops::Deref for Home {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ping(args: &[&str]) -> serde_json::Value {
    let json = common::tmp2p_ok(&[&["ping"], args, &["--json"]].concat());
    serde_json::from_str(&json).unwrap()
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
    let home = scratch("flood");
    let node = start_node(&home);
    echoes_and_a_flood_come_back_whole(&node.address);
}

/// `--driver mio` runs the same node machine, with the same result.
#[test]
fn a_flood_against_a_mio_node_process_gets_every_echo_back() {
    let home = scratch("mio");
    let node = start_node_with(&home, &["--driver", "mio"]);
    echoes_and_a_flood_come_back_whole(&node.address);
}
