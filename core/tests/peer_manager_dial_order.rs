#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Dial order among peers of equal score: fixed for one node, different between nodes, so
//! nodes that learned the same addresses (from one seed, say) do not all dial the same
//! peers first and grow the network into a hub around them.

use std::time::{Duration, Instant};

use tmp2p_core::address::NodeAddress;
use tmp2p_core::peer_manager::{ClockAnchor, PeerManager, PeerManagerOptions};
use tmp2p_core::NodeId;

#[allow(clippy::disallowed_methods)] // tests need one real Instant to start virtual time
fn t0() -> Instant {
    Instant::now()
}

fn id(n: u8) -> NodeId {
    let mut bytes = [0u8; 20];
    bytes[0] = n;
    bytes[19] = n.wrapping_mul(31);
    NodeId::from_bytes(bytes)
}

const PEERS: u8 = 32;

/// The order in which the node `own` dials the same 32 fresh peers (all of score 0).
fn dial_order(own: u8) -> Vec<NodeId> {
    let now = t0();
    let anchor = ClockAnchor {
        instant: now,
        since_unix_epoch: Duration::from_secs(1_700_000_000),
    };
    let mut pm = PeerManager::new(id(own), PeerManagerOptions::default(), anchor).unwrap();
    for n in 1..=PEERS {
        let address = NodeAddress::parse(&format!("{}@10.{n}.0.1:26656", id(n))).unwrap();
        assert!(pm.add(now, address).unwrap());
    }
    let mut order = Vec::new();
    while let Some(address) = pm.try_dial_next(now) {
        order.push(address.node_id);
    }
    order
}

#[test]
fn equal_peers_are_dialed_in_a_per_node_order() {
    let first = dial_order(200);
    assert_eq!(first.len(), usize::from(PEERS), "every peer is dialed");
    let mut sorted = first.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), usize::from(PEERS), "each once");
    assert_eq!(dial_order(200), first, "one node's order is deterministic");

    let others: Vec<Vec<NodeId>> = (201..=204).map(dial_order).collect();
    for other in &others {
        assert_ne!(other, &first, "another node dials in another order");
    }
    // Nodes must not agree on whom to dial first: five nodes, five first choices from 32,
    // all the same would be the hub this prevents.
    let firsts: std::collections::BTreeSet<NodeId> = std::iter::once(&first)
        .chain(&others)
        .map(|order| order[0])
        .collect();
    assert!(firsts.len() > 1, "every node dials the same peer first");
    assert_ne!(first, sorted, "not simply ordered by id");
}
