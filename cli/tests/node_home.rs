#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `tmp2p init` and `tmp2p node --home` on a CometBFT home, with real processes: the
//! node takes its key, moniker, listen address and network from the files `init` wrote
//! (a real `tmp2p ping` sees them), flags override the file, the address book is imported
//! at first start only, and a malformed config.toml is one clear error and exit code 2.

mod common;

use std::path::{Path, PathBuf};

use common::{fresh_dir, tmp2p, NodeProcess};

/// `tmp2p init` into a fresh directory, with laddr moved to a free loopback port.
fn init_home(name: &str, network: &str) -> (PathBuf, String) {
    let home = fresh_dir(name);
    let out = tmp2p(&[
        "init",
        "--home",
        home.to_str().unwrap(),
        "--network",
        network,
        "--moniker",
        "from-config",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    for file in [
        "config/config.toml",
        "config/node_key.json",
        "config/genesis.json",
    ] {
        assert!(
            stdout.contains(&format!("wrote {}", home.join(file).display())),
            "{stdout}"
        );
    }
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("node id "))
        .unwrap()
        .to_owned();
    edit_config(
        &home,
        "laddr = \"tcp://0.0.0.0:26656\"",
        "laddr = \"tcp://127.0.0.1:0\"",
    );
    (home, id)
}

fn edit_config(home: &Path, from: &str, to: &str) {
    let path = home.join("config/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// `tmp2p ping` of `address` forcing `network`; its stdout on success.
fn ping(address: &str, network: &str) -> Result<String, String> {
    let out = tmp2p(&["ping", address, "--network", network, "--count", "1"]);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8(out.stderr).unwrap())
    }
}

#[test]
fn a_node_runs_from_the_home_init_wrote_and_flags_override_it() {
    let (home, id) = init_home("home-run", "chain-from-genesis");
    let node = NodeProcess::start_in(home.clone(), &[]);
    // Key and laddr come from the home.
    assert!(
        node.address.starts_with(&format!("{id}@127.0.0.1:")),
        "{}",
        node.address
    );
    // The network is genesis.json's chain id, the moniker config.toml's.
    let shown = ping(&node.address, "chain-from-genesis").unwrap();
    assert!(shown.contains("moniker   from-config"), "{shown}");
    assert!(ping(&node.address, "tmp2p-local").is_err());
    let log = node.kill_and_read_stderr();
    // A key read but honoured differently is logged once, at info.
    assert_eq!(log.matches("max_num_inbound_peers").count(), 1, "{log}");

    // Flags win over the files; the home (and its key) stays.
    let node = NodeProcess::start_in(
        home.clone(),
        &["--network", "chain-from-flag", "--moniker", "from-flag"],
    );
    assert!(node.address.starts_with(&format!("{id}@")));
    let shown = ping(&node.address, "chain-from-flag").unwrap();
    assert!(shown.contains("moniker   from-flag"), "{shown}");
    drop(node);
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn init_keeps_files_that_exist() {
    let (home, id) = init_home("home-keep", "first");
    let out = tmp2p(&[
        "init",
        "--home",
        home.to_str().unwrap(),
        "--network",
        "second",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.matches("kept ").count(), 3, "{stdout}");
    assert!(stdout.contains(&format!("node id {id}")), "{stdout}");
    let genesis = std::fs::read_to_string(home.join("config/genesis.json")).unwrap();
    assert!(genesis.contains("\"first\""), "{genesis}");
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn the_address_book_is_imported_at_first_start_only() {
    let (home, _) = init_home("home-book", "book-net");
    let peer = tmp2p_core::NodeKey::generate(&mut rand_core::OsRng).node_id();
    let book = serde_json::json!({
        "key": "0123456789abcdef01234567",
        "addrs": [
            {"addr": {"id": peer.to_string(), "ip": "127.0.0.1", "port": 9},
             "src": {"id": peer.to_string(), "ip": "127.0.0.1", "port": 9}, "buckets": [1],
             "attempts": 0, "bucket_type": 2, "last_attempt": "2024-01-01T00:00:00Z",
             "last_success": "2024-01-01T00:00:00Z", "last_ban_time": "0001-01-01T00:00:00Z"},
        ],
    });
    std::fs::write(home.join("config/addrbook.json"), book.to_string()).unwrap();
    let mut node = NodeProcess::start_in(home.clone(), &["--no-pex"]);
    assert_eq!(
        node.next_line().trim(),
        "imported 1 new address(es) from the address book"
    );
    drop(node);
    assert!(home.join("data/tmp2p-peerstore.redb").exists());
    let mut node = NodeProcess::start_in(home.clone(), &["--no-pex", "--metrics", "127.0.0.1:0"]);
    // The second line is the metrics one: no import this time.
    let line = node.next_line();
    assert!(line.starts_with("metrics on "), "{line}");
    drop(node);
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn a_malformed_config_is_one_error_naming_file_and_key_and_exits_2() {
    let cases = [
        (
            "max_num_inbound_peers = 40",
            "max_num_inbound_peers = \"forty\"",
            "key p2p.max_num_inbound_peers: invalid type: string \"forty\", expected u16",
        ),
        (
            "dial_timeout = \"3s\"",
            "dial_timeout = \"3 parsecs\"",
            "key p2p.dial_timeout: expected a duration",
        ),
        (
            "persistent_peers = \"\"",
            "persistent_peers = \"nobody@nowhere\"",
            "key p2p.persistent_peers: malformed address",
        ),
        ("pex = true", "pex = tru", "line "),
    ];
    for (n, (from, to, expected)) in cases.into_iter().enumerate() {
        let (home, _) = init_home(&format!("home-bad-{n}"), "bad-net");
        edit_config(&home, from, to);
        let out = tmp2p(&["node", "--home", home.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{to}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let file = home.join("config/config.toml");
        assert!(
            stderr.starts_with(&format!("tmp2p: {}: ", file.display())),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{to}: {stderr}");
        std::fs::remove_dir_all(home).unwrap();
    }
}

#[test]
fn a_home_without_genesis_needs_a_network() {
    let (home, _) = init_home("home-no-genesis", "x");
    std::fs::remove_file(home.join("config/genesis.json")).unwrap();
    let out = tmp2p(&["node", "--home", home.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("pass --network"), "{stderr}");
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn a_killed_node_finds_its_peers_in_the_store_written_within_the_interval() {
    let a = NodeProcess::start("kill-a", &[]);
    let a_id = a.address.split('@').next().unwrap().to_owned();
    let home = fresh_dir("kill-b");
    let listen = ["--listen", "127.0.0.1:0"];
    let mut b = NodeProcess::start_in(
        home.clone(),
        &[&listen[..], &["--persistent-peers", &a.address]].concat(),
    );
    let up = b.next_line();
    assert!(up.starts_with(&format!("peer {a_id} Up")), "{up}");
    // Store writes are gathered for 1 s (NodeConfig::store_flush_interval); past it the
    // record is committed, and SIGKILL cannot take it back.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(b.kill_and_read_stderr());
    let mut b = NodeProcess::start_in(home.clone(), &listen);
    let up = b.next_line();
    assert!(up.starts_with(&format!("peer {a_id} Up")), "{up}");
    drop(b);
    std::fs::remove_dir_all(home).unwrap();
}
