//! Each example, run as the process `cargo test` built, observes a reference consensus
//! and mempool peer (tendermint-proto's encoding): it must follow the peer's round, print
//! the vote and the transaction the peer's gates then let through, and send nothing but
//! round steps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tendermint_proto::v0_38::consensus::message::Sum;
use tendermint_proto::v0_38::types::SignedMsgType;
use tmp2p_tests::reference_consensus::{Received, ReferenceConsensusPeer, STATE};
use tmp2p_tests::reference_peer::reference_info;

const WAIT: Duration = Duration::from_secs(30);

/// `target/<profile>/examples/<name>`, next to this test's `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` (or `-p tmp2p-examples`) builds the examples",
        path.display()
    );
    path
}

fn observe_with(name: &str) {
    let seed = [9u8; 32];
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let id = reference_info(seed, "example-chain", &[]).default_node_id;
    let address = format!("{id}@{}", listener.local_addr().unwrap());
    let mut child = Command::new(example(name))
        .args([&address, "example-chain"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peer =
        ReferenceConsensusPeer::accept(&listener, seed, "example-chain", 5, WAIT).unwrap();
    peer.wait_until_at_our_round(WAIT).unwrap();
    peer.gossip_vote(SignedMsgType::Prevote, 2);
    peer.offer_tx(b"hello".to_vec());
    peer.enter_height(6);
    peer.wait_until_at_our_round(WAIT).unwrap();
    peer.listen_for(Duration::from_millis(300)).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();

    assert!(peer.violations.is_empty(), "{:?}", peer.violations);
    for received in &peer.received {
        assert!(
            matches!(received, Received::Consensus(STATE, m) if matches!(m.sum, Some(Sum::NewRoundStep(_)))),
            "{name} sent {received:?}"
        );
    }
    assert!(
        out.contains(&format!("{id} vote height=5 round=0 type=1 validator=2")),
        "{out}"
    );
    // SHA-256("hello").
    let hello = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";
    assert!(out.contains(&format!("tx {hello} (5 bytes)")), "{out}");
    assert!(
        out.contains(&format!("{id} step height=6 round=0 step=1")),
        "{out}"
    );
}

#[test]
fn the_smol_example_observes_a_reference_peer() {
    observe_with("observe_smol");
}

#[test]
fn the_mio_example_observes_a_reference_peer() {
    observe_with("observe_mio");
}
