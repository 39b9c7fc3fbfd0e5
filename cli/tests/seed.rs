#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `tmp2p seed` serving two networks in one process, with real processes, on two listen
//! addresses and on one shared address: each network's seed introduces its own nodes, a
//! crawl from either seed finds only that network's nodes (addresses never cross), and a
//! node of a network the seed does not serve is refused.

mod common;

use std::time::Duration;

use common::{address_in, fresh_dir, tmp2p, NodeProcess};

fn crawl(address: &str, network: &str) -> serde_json::Value {
    let args = [
        "crawl",
        address,
        "--network",
        network,
        "--json",
        "--timeout",
        "5",
    ];
    serde_json::from_str(&common::tmp2p_ok(&args)).unwrap()
}

#[test]
fn two_networks_in_one_seed_never_mix_addresses() {
    two_networks_never_mix("seed-two", "127.0.0.1:0", "127.0.0.1:0");
}

#[test]
fn two_networks_on_one_shared_address_never_mix_addresses() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let shared = free.local_addr().unwrap().to_string();
    drop(free);
    two_networks_never_mix("seed-shared", &shared, &shared);
}

/// One seed process for net-a on `listen_a` and net-b on `listen_b`.
fn two_networks_never_mix(name: &str, listen_a: &str, listen_b: &str) {
    let home = fresh_dir(name);
    let (net_a, net_b) = (format!("net-a={listen_a}"), format!("net-b={listen_b}"));
    let mut seed = NodeProcess::run(
        "seed",
        home.clone(),
        &[
            "--network",
            &net_a,
            "--network",
            &net_b,
            "--peer-lines",
            "--summary-every",
            "1",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let seed_a = seed.address.clone();
    let seed_b = address_in(&seed.next_line());
    let metrics = seed.next_line();
    let url = metrics
        .strip_prefix("metrics on ")
        .unwrap_or_else(|| panic!("{metrics:?}"))
        .trim()
        .to_owned();
    // Port 0 binds a port of its own for each network.
    let shared = listen_a == listen_b && !listen_a.ends_with(":0");
    assert_eq!(seed_a == seed_b, shared, "{seed_a} {seed_b}");
    let wait = Duration::from_secs(15);
    let a1 = NodeProcess::start(
        "seed-a1",
        &[
            "--network",
            "net-a",
            "--moniker",
            "a1",
            "--bootstrap-peers",
            &seed_a,
        ],
    );
    seed.expect_line(&["net-a: peer", a1.id(), "Up"], wait);
    let b1 = NodeProcess::start(
        "seed-b1",
        &[
            "--network",
            "net-b",
            "--moniker",
            "b1",
            "--bootstrap-peers",
            &seed_b,
        ],
    );
    seed.expect_line(&["net-b: peer", b1.id(), "Up"], wait);

    // Each seed hands out its own network's node, and only that (the walk retries while
    // the seed's store write is on its way).
    let (a1_id, b1_id) = (a1.id().to_owned(), b1.id().to_owned());
    for (seed_address, network, own, other) in [
        (&seed_a, "net-a", "a1", &b1_id),
        (&seed_b, "net-b", "b1", &a1_id),
    ] {
        let deadline = std::time::Instant::now() + wait;
        let v = loop {
            let v = crawl(seed_address, network);
            if common::reached::<Vec<String>>(&v, "moniker")
                .iter()
                .any(|m| m == own)
                || std::time::Instant::now() > deadline
            {
                break v;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(
            common::reached::<Vec<String>>(&v, "moniker")
                .iter()
                .any(|m| m == own),
            "{v:#}"
        );
        // The other network's node is not in the census at all: not even as refused.
        let ids: Vec<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert!(!ids.contains(&other.as_str()), "{v:#}");
        assert_eq!(v["summary"]["refused"], 0, "{v:#}");
        assert_eq!(
            v["summary"]["networks"].as_object().unwrap().len(),
            1,
            "{v:#}"
        );
    }
    // A node of a network the seed does not serve is refused.
    let v = crawl(&seed_a, "net-c");
    assert_eq!(v["summary"]["refused"], 1, "{v:#}");
    // The metrics count each network under its chain id, and what the shared address did.
    let (_, body) = common::scrape(&url);
    let handshakes = |chain: &str, outcome: &str| {
        let name = format!("tmp2p_handshakes_total{{chain_id=\"{chain}\",outcome=\"{outcome}\"}}");
        common::sample(&body, &name).unwrap_or(0.0)
    };
    assert!(handshakes("net-a", "succeeded") >= 2.0, "{body}");
    assert!(handshakes("net-b", "succeeded") >= 2.0, "{body}");
    assert!(handshakes("net-a", "incompatible") >= 1.0, "{body}");
    assert!(
        body.contains("cometbft_p2p_peers{chain_id=\"net-b\"}"),
        "{body}"
    );
    let seed_a_addr = seed_a.split('@').nth(1).unwrap();
    let on_shared = |name: &str| {
        let name = format!("tmp2p_shared_address_{name}_total{{address=\"{seed_a_addr}\"}}");
        common::sample(&body, &name)
    };
    if shared {
        assert!(on_shared("handed_over").unwrap_or(0.0) >= 5.0, "{body}");
        assert!(on_shared("unknown_network").unwrap_or(0.0) >= 1.0, "{body}");
    } else {
        assert!(!body.contains("tmp2p_shared_address"), "{body}");
    }
    // Each second (--summary-every 1) a line per network counts its handshakes; the
    // crawls above made some.
    let deadline = std::time::Instant::now() + wait;
    let counted = loop {
        let line = seed.next_line();
        let handshakes = line
            .strip_prefix("net-a: ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        if handshakes.is_some_and(|n| n > 0) || std::time::Instant::now() > deadline {
            break (line, handshakes);
        }
    };
    assert!(counted.1.is_some_and(|n| n > 0), "{}", counted.0);
    assert!(
        counted.0.contains("handshakes and") && counted.0.contains("connected"),
        "{}",
        counted.0
    );
    // Each network has a store of its own.
    assert!(home.join("net-a/peerstore.redb").exists());
    assert!(home.join("net-b/peerstore.redb").exists());
    drop(seed);
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn a_seed_config_file_is_read_and_its_mistakes_named() {
    let home = fresh_dir("seed-file");
    std::fs::create_dir_all(&home).unwrap();
    let file = home.join("seeds.toml");
    std::fs::write(
        &file,
        "[[network]]\nchain_id = \"file-a\"\nlisten = \"127.0.0.1:0\"\n\n\
         [[network]]\nchain_id = \"file-b\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut seed = NodeProcess::run(
        "seed",
        home.join("state"),
        &["--config", file.to_str().unwrap()],
    );
    assert!(seed.next_line().starts_with("seed for file-b is "));
    drop(seed);
    std::fs::write(
        &file,
        "[[network]]\nchain_id = \"x\"\nlisten = \"nowhere\"\n",
    )
    .unwrap();
    let out = tmp2p(&[
        "seed",
        "--home",
        home.join("state").to_str().unwrap(),
        "--config",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("seeds.toml") && stderr.contains("invalid socket address"),
        "{stderr}"
    );
    let out = tmp2p(&["seed", "--home", home.join("state").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    // The shared address's limits are never zero.
    let out = tmp2p(&[
        "seed",
        "--network",
        "x=127.0.0.1:0",
        "--max-handshakes-per-ip",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-handshakes-per-ip"));
    std::fs::remove_dir_all(home).unwrap();
}
