#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `tmp2p node` peer exchange as real processes: a seed introduces two nodes that know only
//! the seed and then disconnects them; `--import-addrbook` dials the good entries of a
//! CometBFT address book and reports the malformed ones.

mod common;

use std::io::{BufRead, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `tmp2p node`, killed on drop (even when an assertion fails).
struct Node {
    child: Child,
    /// `id@127.0.0.1:port`.
    address: String,
    /// Its stdout lines after the first.
    lines: mpsc::Receiver<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn id(&self) -> &str {
        self.address.split('@').next().unwrap()
    }

    /// Waits for a stdout line containing every one of `words`; panics after `limit`.
    fn expect_line(&self, words: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if words.iter().all(|w| line.contains(w)) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {words:?} within {limit:?}"),
            }
        }
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tmp2p-pex-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn start_node(name: &str, extra: &[&str], stderr: Stdio) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--moniker",
            name,
            "--home",
        ])
        .arg(scratch(name))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"node"), "{first:?}");
    let address = format!("{}@{}", words[1], words[4]);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Node {
        child,
        address,
        lines,
    }
}

#[test]
fn a_seed_introduces_its_peers_to_each_other_and_disconnects_them() {
    let seed = start_node("seed", &["--seed-mode"], Stdio::null());
    let a = start_node("a", &["--bootstrap-peers", &seed.address], Stdio::null());
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
        Stdio::null(),
    );
    let metrics = b.expect_line(&["metrics on "], Duration::from_secs(10));
    // B knew only the seed; it reaches A with the address the seed gave it.
    b.expect_line(&["peer", a.id(), "Up"], Duration::from_secs(10));
    a.expect_line(&["peer", b.id(), "Up"], Duration::from_secs(10));
    // B's metrics count the seed's answer (A's address, new to B's store) and the store
    // transactions that recorded its peers.
    let (_, body) = common::scrape(metrics.trim_start_matches("metrics on ").trim());
    let value = |name: &str| common::sample(&body, &format!("{name} ")).unwrap_or(0.0);
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
    let target = start_node("book-target", &[], Stdio::null());
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
    let mut node = start_node(
        "book-reader",
        &["--import-addrbook", path.to_str().unwrap()],
        Stdio::piped(),
    );
    node.expect_line(&["imported 1 new address"], Duration::from_secs(10));
    node.expect_line(&["peer", id, "Up"], Duration::from_secs(10));
    let _ = node.child.kill();
    let mut stderr = String::new();
    node.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 2, "{stderr}");
    assert!(skipped[0].contains("entry 0 skipped"), "{stderr}");
    assert!(skipped[1].contains("entry 2 skipped"), "{stderr}");
}

#[test]
fn an_unreadable_addrbook_is_bad_input() {
    let path = scratch("garbage.json");
    std::fs::write(&path, b"{not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["node", "--listen", "127.0.0.1:0", "--home"])
        .arg(scratch("garbage-home"))
        .args(["--import-addrbook", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not JSON"), "{stderr}");
}

/// The same seed scenario with the seed and one client on the mio driver: both drivers
/// run the node machine's PEX, and they interoperate.
#[test]
fn a_mio_seed_introduces_a_smol_node_and_a_mio_node_to_each_other() {
    let mio = ["--driver", "mio"];
    let seed = start_node("mio-seed", &["--seed-mode", mio[0], mio[1]], Stdio::null());
    let a = start_node(
        "mio-a",
        &["--bootstrap-peers", &seed.address],
        Stdio::null(),
    );
    a.expect_line(&["peer", seed.id(), "Up"], Duration::from_secs(10));
    a.expect_line(&["peer", seed.id(), "Down"], Duration::from_secs(10));
    let bootstrap = ["--bootstrap-peers", &seed.address, mio[0], mio[1]];
    let b = start_node("mio-b", &bootstrap, Stdio::null());
    b.expect_line(&["peer", a.id(), "Up"], Duration::from_secs(10));
    a.expect_line(&["peer", b.id(), "Up"], Duration::from_secs(10));
}
