//! Node machines with their built-in PEX reactor, joined over the shared in-memory network
//! (`tmp2p_tests::memnet`) by real connection machines, in virtual time: four nodes in a
//! line (0 knows 1, 1 knows 2, 2 knows 3) all learn each other; three nodes that know only
//! a seed learn each other from it, and the seed drops them after answering; a seed does
//! not redial a peer it crawled within its re-crawl interval.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tmp2p_core::node::PexEvent;
use tmp2p_core::pex::{PexConfig, PexPeerError};
use tmp2p_core::NodeId;
use tmp2p_tests::memnet::{address_of, ip_of, MemNet, MemNode};

const N: usize = 4;

/// `N` nodes, each advertising its own address and running PEX with `pex_config(i)`.
fn pex_net(pex_config: impl Fn(usize) -> PexConfig) -> MemNet {
    MemNet::new(
        N,
        |i, config| config.router.peer_manager.self_address = Some(address_of(i)),
        |i, node| node.enable_pex(pex_config(i)).unwrap(),
    )
}

fn peer_errors(node: &MemNode) -> Vec<&PexPeerError> {
    node.pex
        .iter()
        .filter_map(|e| match e {
            PexEvent::PeerError(error) => Some(error),
            _ => None,
        })
        .collect()
}

fn disconnected(node: &MemNode) -> Vec<NodeId> {
    node.pex
        .iter()
        .filter_map(|e| match e {
            PexEvent::Disconnected(peer) => Some(*peer),
            _ => None,
        })
        .collect()
}

fn all_know(net: &MemNet, nodes: std::ops::Range<usize>) -> bool {
    nodes.clone().all(|i| {
        nodes.clone().filter(|&j| j != i).all(|j| {
            net.nodes[i]
                .node
                .router()
                .peer_manager()
                .addresses(net.id(j))
                .contains(&address_of(j))
        })
    })
}

/// Advances from timer to timer until `done`, for at most 300 s of virtual time.
fn run_until(net: &mut MemNet, done: impl Fn(&MemNet) -> bool) {
    let start = net.now;
    while !done(net) {
        assert!(
            net.now - start < Duration::from_secs(300),
            "not done within 300 s of virtual time"
        );
        net.advance_to_next_timer();
    }
}

#[test]
fn four_nodes_in_a_line_learn_about_each_other_through_pex() {
    let mut net = pex_net(|_| PexConfig::default());
    for i in 0..N - 1 {
        net.connect(i, i + 1);
    }
    run_until(&mut net, |net| all_know(net, 0..N));
    // Learned through PEX alone, with nobody misbehaving: no peer errors anywhere.
    for (i, node) in net.nodes.iter().enumerate() {
        assert!(
            peer_errors(node).is_empty(),
            "node {i}: {:?}",
            peer_errors(node)
        );
    }
    // Node 0 started knowing only node 1; it now also knows 2 and 3 (their own addresses,
    // advertised first in their answers, relayed along the line).
    assert!(net.nodes[0].node.router().peer_manager().peer_count() >= N - 1);
}

#[test]
fn nodes_that_know_only_a_seed_learn_each_other_and_the_seed_drops_them() {
    let mut net = pex_net(|i| PexConfig {
        seed_mode: i == 0,
        ..PexConfig::default()
    });
    for i in 1..N {
        net.connect(i, 0);
    }
    run_until(&mut net, |net| all_know(net, 0..N));
    for (i, node) in net.nodes.iter().enumerate() {
        assert!(
            peer_errors(node).is_empty(),
            "node {i}: {:?}",
            peer_errors(node)
        );
    }
    // The seed learned the clients from their listen addresses and dropped each after
    // answering; the clients now know each other without the seed's help.
    let dropped = disconnected(&net.nodes[0]);
    for i in 1..N {
        assert!(dropped.contains(&net.id(i)), "{dropped:?}");
    }
    assert!(all_know(&net, 1..N));
}

#[test]
fn a_seed_does_not_redial_a_peer_it_crawled_within_its_recrawl_interval() {
    let mut net = pex_net(|i| PexConfig {
        seed_mode: i == 0,
        ..PexConfig::default()
    });
    let interval = PexConfig::default().seed_recrawl_interval;
    let start = net.now;
    net.connect(0, 1);
    while net.now < start + interval {
        net.advance_to_next_timer();
    }
    let seed = &net.nodes[0];
    // Crawled at once (asked, answered, dropped) ...
    assert!(
        disconnected(seed).contains(&net.id(1)),
        "{:?}",
        disconnected(seed)
    );
    // ... and not dialed again within the interval (with the PeerManager's 2 s cooldown
    // alone it would be redialed and re-asked every 2 s).
    let redials: Vec<Duration> = seed
        .dials
        .iter()
        .filter(|&&(at, ip)| ip == ip_of(1) && at < start + interval)
        .map(|&(at, _)| at - start)
        .collect();
    assert_eq!(redials, vec![Duration::ZERO], "seed dials of node 1");
    assert!(peer_errors(seed).is_empty(), "{:?}", peer_errors(seed));
}
