#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What `tmp2p node` logs, as an operator reads it: a real node process refuses a real
//! `tmp2p ping` from another network, and its JSON log on stderr carries the refusal once
//! with its typed reason; `--log-level` narrows what is written.

mod common;

use std::process::Command;

use common::NodeProcess;

/// Starts a node on network "net-a" with `log_args`, has a client of network "net-b" ping
/// it, then stops the node and returns its stderr.
fn node_log_after_a_foreign_ping(name: &str, log_args: &[&str]) -> String {
    let mut args = vec!["--network", "net-a"];
    args.extend_from_slice(log_args);
    let node = NodeProcess::start(name, &args);
    let ping = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["ping", &node.address, "--network", "net-b", "--count", "1"])
        .output()
        .unwrap();
    assert!(!ping.status.success(), "a ping from another network worked");
    // The node logged while the ping ran; give it a moment to write, then stop it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    node.kill_and_read_stderr()
}

fn a_refused_peer_is_logged_once_with_its_reason_and_its_connection(driver: &str) {
    let args = ["--log-format", "json", "--driver", driver];
    let log = node_log_after_a_foreign_ping(driver, &args);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let failed: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "handshake failed")
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    let entry = failed[0];
    assert_eq!(entry["level"], "INFO");
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.contains("incompatible peer") && reason.contains("net-b"),
        "{reason}"
    );
    // Inside the connection's span: which connection, from where, which way.
    let span = &entry["span"];
    assert_eq!(span["name"], "peer", "{entry}");
    assert_eq!(span["direction"], "inbound", "{entry}");
    assert!(
        span["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{entry}"
    );
    assert!(span["conn"].is_string(), "{entry}");
}

#[test]
fn a_smol_node_logs_a_refused_peer_once_with_its_reason_and_connection() {
    a_refused_peer_is_logged_once_with_its_reason_and_its_connection("smol");
}

#[test]
fn a_mio_node_logs_a_refused_peer_once_with_its_reason_and_connection() {
    a_refused_peer_is_logged_once_with_its_reason_and_its_connection("mio");
}

#[test]
fn log_level_filters_what_the_node_writes() {
    let log = node_log_after_a_foreign_ping("quiet", &["--log-level", "warn"]);
    assert!(!log.contains("handshake failed"), "{log}");
}
