#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deterministic scenario tests of the whole-network simulator (issue #8): real routers,
//! peer managers and connections over the simulated network.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::router::{Envelope, PeerError};
use tmp2p_tests::sim::{NodeSpec, Sim};

fn ip(i: usize) -> IpAddr {
    // Spread nodes over many /16 groups so IP-group caps do not interfere.
    IpAddr::from([10, (i % 200) as u8 + 1, (i / 200) as u8, 1])
}

fn network(seed: u64, n: usize, channels: &[u8]) -> Sim {
    let mut sim = Sim::new(seed);
    for i in 0..n {
        sim.add_node(NodeSpec::new(ip(i), channels));
    }
    sim
}

fn connected(sim: &Sim, i: usize) -> BTreeSet<usize> {
    sim.node(i)
        .unwrap()
        .connected()
        .into_iter()
        .map(|id| sim.index_of(id).unwrap())
        .collect()
}

#[test]
fn two_nodes_exchange_on_three_channels() {
    let channels = [0x20u8, 0x21, 0x30];
    let mut sim = network(1, 2, &channels);
    sim.start_all().unwrap();
    sim.add_peer(0, 1).unwrap();
    sim.drive().unwrap();
    assert_eq!(connected(&sim, 0), BTreeSet::from([1]));
    assert_eq!(connected(&sim, 1), BTreeSet::from([0]));
    let (id0, id1) = (sim.id(0).unwrap(), sim.id(1).unwrap());
    for (k, &ch) in channels.iter().enumerate() {
        for j in 0..10u8 {
            let msg = Bytes::from(vec![ch ^ j; 500 * (k + 1) + usize::from(j)]);
            sim.send(0, Envelope::to_peer(id1, ch, msg.clone()))
                .unwrap();
            sim.send(1, Envelope::to_peer(id0, ch, msg)).unwrap();
        }
    }
    sim.drive().unwrap();
    for (node, from) in [(1, id0), (0, id1)] {
        for (k, &ch) in channels.iter().enumerate() {
            let got: Vec<_> = sim
                .node(node)
                .unwrap()
                .received()
                .iter()
                .filter(|r| r.channel == ch)
                .collect();
            assert_eq!(got.len(), 10, "node {node} channel {ch:#x}");
            for (j, r) in got.iter().enumerate() {
                assert_eq!(r.from, from);
                assert_eq!(
                    r.message.len(),
                    500 * (k + 1) + j,
                    "order within the channel"
                );
                assert!(r.message.iter().all(|&b| b == ch ^ j as u8));
            }
        }
    }
    // 5 ms one way: the exchange took virtual time, not zero and not seconds.
    assert!(sim.elapsed() > Duration::from_millis(10));
    assert!(
        sim.elapsed() < Duration::from_secs(1),
        "{:?}",
        sim.elapsed()
    );
}
