#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `tmp2p node --metrics`: a real node process scraped over real HTTP while another node
//! process stays connected to it and a real `tmp2p ping` sends it echo traffic; the
//! CometBFT-named and our own metrics move with that traffic, on both drivers, each sample
//! labelled with the chain id as CometBFT labels its own.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{sample, scrape, NodeProcess};

/// Every sample's first label: the node's chain id (the default network), as CometBFT
/// labels its metrics.
const CHAIN: &str = "chain_id=\"tmp2p-local\"";

fn metrics_move_with_traffic(driver: &str) {
    let mut node = NodeProcess::start(
        &format!("metrics-{driver}"),
        &[
            "--driver",
            driver,
            "--metrics",
            "127.0.0.1:0",
            "--ping-interval",
            "100ms",
        ],
    );
    let line = node.next_line();
    let url = line
        .strip_prefix("metrics on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .trim()
        .to_owned();
    let neighbour = NodeProcess::start(
        &format!("neighbour-{driver}"),
        &["--persistent-peers", &node.address],
    );
    let neighbour_id = neighbour.address.split('@').next().unwrap().to_owned();

    // Up, and its PEX request (channel 0x00) counted, labelled as CometBFT labels it.
    let pex = format!(
        "cometbft_p2p_peer_receive_bytes_total{{{CHAIN},peer_id=\"{neighbour_id}\",chID=\"0x0\"}}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (content_type, before) = loop {
        let (content_type, body) = scrape(&url);
        let up = sample(&body, &format!("cometbft_p2p_peers{{{CHAIN}}} ")) == Some(1.0);
        if up && sample(&body, &pex).unwrap_or(0.0) > 0.0 {
            break (content_type, body);
        }
        assert!(
            Instant::now() < deadline,
            "no PEX from the neighbour:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(before.trim_end().ends_with("# EOF"), "{before}");
    let received_before =
        sample(&before, &format!("tmp2p_received_bytes_total{{{CHAIN}}} ")).unwrap();

    let ping = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args([
            "ping",
            &node.address,
            "--echo-channel",
            "0x99",
            "--size",
            "1000",
        ])
        .args(["--count", "20"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stderr)
    );

    let (_, after) = scrape(&url);
    let received_after =
        sample(&after, &format!("tmp2p_received_bytes_total{{{CHAIN}}} ")).unwrap();
    assert!(
        received_after >= received_before + 20_000.0,
        "{received_before} -> {received_after}"
    );
    let sent = sample(&after, &format!("tmp2p_sent_bytes_total{{{CHAIN}}} ")).unwrap();
    assert!(sent >= 20_000.0, "{after}");
    assert_eq!(
        sample(
            &after,
            &format!("tmp2p_handshakes_total{{{CHAIN},outcome=\"succeeded\"}}")
        ),
        Some(2.0)
    );
    // The neighbour's PEX request, by CometBFT's message type label.
    let request = format!(
        "cometbft_p2p_message_receive_bytes_total{{{CHAIN},message_type=\"p2p_PexRequest\"}}"
    );
    assert!(sample(&after, &request).unwrap_or(0.0) > 0.0, "{after}");
    let pending =
        format!("cometbft_p2p_peer_pending_send_bytes{{{CHAIN},peer_id=\"{neighbour_id}\"}}");
    assert_eq!(sample(&after, &pending), Some(0.0), "{after}");
    every_dashboard_metric_is_served(&after);
    // The node pings its peers every 100 ms: their round trips fill the histogram.
    let rtt_count =
        format!("tmp2p_peer_ping_rtt_seconds_count{{{CHAIN},peer_id=\"{neighbour_id}\"}}");
    let rtt_inf = format!(
        "tmp2p_peer_ping_rtt_seconds_bucket{{le=\"+Inf\",{CHAIN},peer_id=\"{neighbour_id}\"}}"
    );
    loop {
        let (_, body) = scrape(&url);
        let count = sample(&body, &rtt_count).unwrap_or(0.0);
        if count >= 2.0 {
            assert_eq!(sample(&body, &rtt_inf), Some(count), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no round trips measured:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(neighbour);
}

/// The shipped Grafana dashboard asks only for series a node serves.
fn every_dashboard_metric_is_served(body: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/grafana-tmp2p-p2p.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            let metrics =
                words.filter(|w| w.starts_with("cometbft_p2p_") || w.starts_with("tmp2p_"));
            names.extend(metrics.map(str::to_owned));
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            body.lines()
                .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{"))),
            "the dashboard's {name} is not served:\n{body}"
        );
    }
}

#[test]
fn a_smol_nodes_metrics_move_with_its_traffic() {
    metrics_move_with_traffic("smol");
}

#[test]
fn a_mio_nodes_metrics_move_with_its_traffic() {
    metrics_move_with_traffic("mio");
}
