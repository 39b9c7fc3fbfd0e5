//! `tmp2p observe` as a process against reference consensus and mempool peers built from
//! tendermint-proto (`tmp2p_tests::reference_consensus`): it must follow each peer's
//! round so the peer's Go gates open, send nothing but those round steps, and print every
//! message it was gossiped, then a summary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tendermint_proto::v0_38::consensus::message::Sum;
use tendermint_proto::v0_38::types::SignedMsgType;
use tmp2p_tests::reference_consensus::{
    block_hash, part_hash, Received, ReferenceConsensusPeer, STATE,
};
use tmp2p_tests::reference_peer::reference_info;

const NETWORK: &str = "observe-chain";
const WAIT: Duration = Duration::from_secs(30);

/// A listener for a reference peer with key `seed`, and its `ID@HOST:PORT`.
fn reference_listener(seed: [u8; 32]) -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let id = reference_info(seed, NETWORK, &[]).default_node_id;
    let address = format!("{id}@{}", listener.local_addr().unwrap());
    (listener, address)
}

fn spawn_observe(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .arg("observe")
        .args(args)
        .args(["--json", "--summary-every", "0", "--duration", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ctrl-C for `child`, then its stdout and stderr once it has exited (it prints its
/// summary on the way out).
fn interrupt_and_collect(mut child: Child) -> (String, String) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("observe did not exit after Ctrl-C");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out, err)
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

/// Everything the observer sent: each must be a valid NewRoundStep on the state channel.
/// Returns their (height, round, step, last_commit_round).
fn round_steps_sent(peer: &ReferenceConsensusPeer) -> Vec<(i64, i32, u32, i32)> {
    assert!(peer.violations.is_empty(), "{:?}", peer.violations);
    peer.received
        .iter()
        .map(|received| match received {
            Received::Consensus(STATE, message) => match &message.sum {
                Some(Sum::NewRoundStep(s)) => (s.height, s.round, s.step, s.last_commit_round),
                other => panic!("observe sent {other:?}: it may only echo round steps"),
            },
            other => panic!("observe sent {other:?}: it may only echo round steps"),
        })
        .collect()
}

#[test]
fn observe_follows_the_peers_round_so_it_is_gossiped_everything_and_prints_it() {
    let seed = [41u8; 32];
    let (listener, address) = reference_listener(seed);
    // --network auto (the default): the first connection is a probe that learns the
    // chain id from the peer's NodeInfo; the reference peer lets it go.
    let observe = spawn_observe(&[&address]);
    let mut peer = ReferenceConsensusPeer::accept(&listener, seed, NETWORK, 5, WAIT).unwrap();
    peer.wait_until_at_our_round(WAIT).unwrap();
    // Height 5: a proposal in two parts, three prevotes, two precommits, one tx.
    peer.gossip_proposal(2);
    for validator in 0..3 {
        peer.gossip_vote(SignedMsgType::Prevote, validator);
    }
    for validator in 0..2 {
        peer.gossip_vote(SignedMsgType::Precommit, validator);
    }
    peer.offer_tx(b"tx-at-five".to_vec());
    assert_eq!(peer.waiting_txs(), 0);
    peer.enter_height(6);
    peer.wait_until_at_our_round(WAIT).unwrap();
    // We jump to 8 (as a node ahead of its peer): a tx of height 8 waits until the
    // observer announces at least 7.
    peer.enter_height(8);
    peer.offer_tx(b"tx-at-eight, a little longer".to_vec());
    assert_eq!(peer.waiting_txs(), 1, "the gate must still be shut");
    peer.wait_until_at_our_round(WAIT).unwrap();
    assert_eq!(
        peer.waiting_txs(),
        0,
        "the observer's height opened the gate"
    );
    peer.gossip_vote(SignedMsgType::Prevote, 3);
    peer.listen_for(Duration::from_millis(500)).unwrap();

    let (stdout, stderr) = interrupt_and_collect(observe);
    // What observe sent back: one round step per height we entered, copying ours.
    assert_eq!(
        round_steps_sent(&peer),
        vec![(5, 0, 1, 0), (6, 0, 1, 0), (8, 0, 1, 0)],
        "{stderr}"
    );

    let lines = json_lines(&stdout);
    let peer_id = peer.id.clone();
    // The peer's up line carries the NodeInfo it sent.
    let up = lines
        .iter()
        .find(|l| l["peer"] == peer_id.as_str() && l["status"] == "up")
        .unwrap_or_else(|| panic!("no up line: {stdout}"));
    assert_eq!(up["moniker"], "reference");
    assert_eq!(up["version"], "0.38.25");
    assert_eq!(up["network"], NETWORK);
    assert_eq!(up["channels"][0], "0x20");
    let steps: Vec<i64> = of_type(&lines, "NewRoundStep")
        .iter()
        .map(|l| l["height"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, vec![5, 6, 8]);
    let proposal = of_type(&lines, "Proposal");
    assert_eq!(proposal.len(), 1);
    assert_eq!(proposal[0]["height"], 5);
    assert_eq!(proposal[0]["pol_round"], -1);
    assert_eq!(proposal[0]["block"], hex::encode_upper(block_hash(5)));
    assert_eq!(proposal[0]["parts_total"], 2);
    assert_eq!(proposal[0]["channel"], "0x21");
    assert_eq!(proposal[0]["peer"], peer_id.as_str());
    let parts = of_type(&lines, "BlockPart");
    assert_eq!(parts.len(), 2);
    for (index, part) in parts.iter().enumerate() {
        assert_eq!(part["part"], index);
        assert_eq!(part["size"], 1000);
        let index = u32::try_from(index).unwrap();
        assert_eq!(part["part_hash"], hex::encode_upper(part_hash(5, index)));
    }
    let votes: BTreeSet<(i64, String, i64)> = of_type(&lines, "Vote")
        .iter()
        .map(|v| {
            assert_eq!(v["channel"], "0x22");
            let height = v["height"].as_i64().unwrap();
            assert_eq!(v["block"], hex::encode_upper(block_hash(height)));
            (
                height,
                v["vote_type"].as_str().unwrap().to_owned(),
                v["validator"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeSet<(i64, String, i64)> = [
        (5, "prevote", 0),
        (5, "prevote", 1),
        (5, "prevote", 2),
        (5, "precommit", 0),
        (5, "precommit", 1),
        (8, "prevote", 3),
    ]
    .into_iter()
    .map(|(h, t, v)| (h, t.to_owned(), v))
    .collect();
    assert_eq!(votes, expected);
    let txs: Vec<(String, u64)> = of_type(&lines, "Txs")
        .iter()
        .flat_map(|l| l["txs"].as_array().unwrap().clone())
        .map(|tx| {
            (
                tx["hash"].as_str().unwrap().to_owned(),
                tx["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let sent: Vec<(String, u64)> = peer
        .sent_txs
        .iter()
        .map(|tx| (hex::encode_upper(Sha256::digest(tx)), tx.len() as u64))
        .collect();
    assert_eq!(txs, sent);

    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["lowest_height"], 5, "{stdout}");
    assert_eq!(summary["highest_height"], 8);
    assert_eq!(summary["votes"], 6);
    assert_eq!(summary["block_parts"], 2);
    assert_eq!(summary["txs"], 2);
    assert_eq!(
        summary["tx_bytes"],
        sent.iter().map(|(_, n)| n).sum::<u64>()
    );
    assert_eq!(summary["peers"][0]["peer"], peer_id.as_str());
}

#[test]
fn observing_two_peers_measures_each_ones_lag_behind_the_first_to_deliver() {
    let seeds = [[51u8; 32], [52u8; 32]];
    let (listener_a, address_a) = reference_listener(seeds[0]);
    let (listener_b, address_b) = reference_listener(seeds[1]);
    let both = format!("{address_a},{address_b}");
    let observe = spawn_observe(&[&both, "--network", NETWORK]);
    let barrier = Arc::new(Barrier::new(2));
    let gap = Duration::from_millis(500);
    // A delivers validator 0's prevote and the tx first; B delivers validator 1's first.
    let script = |listener: TcpListener, seed: [u8; 32], first: bool| {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            let mut peer =
                ReferenceConsensusPeer::accept(&listener, seed, NETWORK, 5, WAIT).unwrap();
            peer.wait_until_at_our_round(WAIT).unwrap();
            barrier.wait();
            if first {
                peer.gossip_vote(SignedMsgType::Prevote, 0);
                peer.offer_tx(b"shared tx".to_vec());
                thread::sleep(2 * gap);
                peer.gossip_vote(SignedMsgType::Prevote, 1);
            } else {
                thread::sleep(gap);
                peer.gossip_vote(SignedMsgType::Prevote, 1);
                peer.gossip_vote(SignedMsgType::Prevote, 0);
                peer.offer_tx(b"shared tx".to_vec());
            }
            peer.listen_for(gap).unwrap();
            peer
        })
    };
    let a = script(listener_a, seeds[0], true);
    let b = script(listener_b, seeds[1], false);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let (stdout, _) = interrupt_and_collect(observe);
    assert_eq!(round_steps_sent(&a), vec![(5, 0, 1, 0)]);
    assert_eq!(round_steps_sent(&b), vec![(5, 0, 1, 0)]);

    let lines = json_lines(&stdout);
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["votes"], 2, "{stdout}");
    assert_eq!(summary["txs"], 1);
    let peers = summary["peers"].as_array().unwrap();
    let tally = |id: &str| peers.iter().find(|p| p["peer"] == id).unwrap().clone();
    let (ta, tb) = (tally(&a.id), tally(&b.id));
    assert_eq!(
        (ta["first"].as_u64(), ta["lagged"].as_u64()),
        (Some(2), Some(1)),
        "{stdout}"
    );
    assert_eq!(
        (tb["first"].as_u64(), tb["lagged"].as_u64()),
        (Some(1), Some(2)),
        "{stdout}"
    );
    // Each lag is the deliberate gap (500 ms) less scheduling noise: at least 100 ms even
    // on a loaded machine.
    for t in [&ta, &tb] {
        assert!(t["lag_ms_p50"].as_f64().unwrap() >= 100.0, "{stdout}");
    }
}

#[test]
fn with_no_node_to_learn_the_network_from_observe_says_so_and_exits() {
    // A port nobody listens on (bound, then closed).
    let address = reference_listener([61u8; 32]).1;
    let output = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["observe", &address, "--duration", "30"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot learn the network of") && stderr.contains("--network"),
        "{stderr}"
    );
}
