#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `tmp2p node` peer exchange as real processes: a seed introduces two nodes that know only
//! the seed and then disconnects them; `--import-addrbook` dials the good entries of a
//! CometBFT address book and reports the malformed ones.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::NodeProcess;

fn scratch(name: &str) -> std::path::PathBuf {
    common::fresh_dir(&format!("pex-{name}"))
}

/// `tmp2p node` named `name` (its moniker too), in a fresh home removed on drop.
fn start_node(name: &str, extra: &[&str]) -> NodeProcess {
    let mut args = vec!["--moniker", name];
    args.extend_from_slice(extra);
    NodeProcess::start(&format!("pex-{name}"), &args)
}

#[test]
fn a_seed_introduces_its_peers_to_each_other_and_disconnects_them() {
    let seed = start_node("seed", &["--seed-mode"]);
    let a = start_node("a", &["--bootstrap-peers", &seed.address]);
    a.expect_line(&["peer", seed.id(), "Up"], Duration::from_secs(10));
    // The seed answers then closes: the node sees it go down.
    a.expect_line(&["peer", seed.id(), "Down"], Duration::from_secs(10));
    let b = start_node(
        "b",
        &[
            "--bootstrap-peers",
            &seed.address,
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let metrics = b.expect_line(&["metrics on "], Duration::from_secs(10));
    // B knew only the seed; it reaches A with the address the seed gave it.
    b.expect_line(&["peer", a.id(), "Up"], Duration::from_secs(10));
    a.expect_line(&["peer", b.id(), "Up"], Duration::from_secs(10));
    // B's metrics count the seed's answer (A's address, new to B's store) and the store
    // transaction that recorded its peers (the node gathers store writes for up to 1 s).
    let url = metrics.trim_start_matches("metrics on ").trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (_, body) = common::scrape(&url);
        let transactions = "tmp2p_store_transactions_total{chain_id=\"tmp2p-local\"} ";
        if common::sample(&body, transactions).unwrap_or(0.0) >= 1.0 {
            break body;
        }
        assert!(Instant::now() < deadline, "no store write:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let value = |name: &str| {
        let sample = format!("{name}{{chain_id=\"tmp2p-local\"}} ");
        common::sample(&body, &sample).unwrap_or(0.0)
    };
    assert!(value("tmp2p_pex_addresses_received_total") >= 1.0, "{body}");
    assert!(value("tmp2p_pex_addresses_accepted_total") >= 1.0, "{body}");
    assert!(value("tmp2p_store_transactions_total") >= 1.0, "{body}");
    assert!(
        value("tmp2p_store_operations_total") >= value("tmp2p_store_transactions_total"),
        "{body}"
    );
}

#[test]
fn import_addrbook_dials_good_entries_and_reports_malformed_ones() {
    let target = start_node("book-target", &[]);
    let (id, socket) = target.address.split_once('@').unwrap();
    let (ip, port) = socket.rsplit_once(':').unwrap();
    let book = serde_json::json!({
        "key": "0123456789abcdef01234567",
        "addrs": [
            {"addr": {"id": "not-hex", "ip": "10.0.0.1", "port": 26656}},
            {"addr": {"id": id, "ip": ip, "port": port.parse::<u16>().unwrap()},
             "src": {"id": id, "ip": ip, "port": 1}, "buckets": [1], "attempts": 0,
             "bucket_type": 1, "last_attempt": "2024-01-01T00:00:00Z",
             "last_success": "2024-01-01T00:00:00Z", "last_ban_time": "0001-01-01T00:00:00Z"},
            {"addr": {"id": id, "ip": "not-an-ip", "port": 1}},
        ],
    });
    let path = scratch("addrbook.json");
    std::fs::write(&path, book.to_string()).unwrap();
    let node = start_node(
        "book-reader",
        &["--import-addrbook", path.to_str().unwrap()],
    );
    node.expect_line(&["imported 1 new address"], Duration::from_secs(10));
    node.expect_line(&["peer", id, "Up"], Duration::from_secs(10));
    let stderr = node.kill_and_read_stderr();
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 2, "{stderr}");
    assert!(skipped[0].contains("entry 0 skipped"), "{stderr}");
    assert!(skipped[1].contains("entry 2 skipped"), "{stderr}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn an_unreadable_addrbook_is_bad_input() {
    let path = scratch("garbage.json");
    std::fs::write(&path, b"{not json").unwrap();
    let home = scratch("garbage-home");
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["node", "--listen", "127.0.0.1:0", "--home"])
        .arg(&home)
        .args(["--import-addrbook", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not JSON"), "{stderr}");
    let _ = std::fs::remove_dir_all(home);
    std::fs::remove_file(path).unwrap();
}

/// The same seed scenario with the seed and one client on the mio driver: both drivers
/// run the node machine's PEX, and they interoperate.
#[test]
fn a_mio_seed_introduces_a_smol_node_and_a_mio_node_to_each_other() {
    let mio = ["--driver", "mio"];
    let seed = start_node("mio-seed", &["--seed-mode", mio[0], mio[1]]);
    let a = start_node("mio-a", &["--bootstrap-peers", &seed.address]);
    a.expect_line(&["peer", seed.id(), "Up"], Duration::from_secs(10));
    a.expect_line(&["peer", seed.id(), "Down"], Duration::from_secs(10));
    let bootstrap = ["--bootstrap-peers", &seed.address, mio[0], mio[1]];
    let b = start_node("mio-b", &bootstrap);
    b.expect_line(&["peer", a.id(), "Up"], Duration::from_secs(10));
    a.expect_line(&["peer", b.id(), "Up"], Duration::from_secs(10));
}
