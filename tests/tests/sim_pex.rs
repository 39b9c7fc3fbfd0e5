#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! PEX in the deterministic simulator (issue #11): real PEX reactors on real routers over
//! the simulated network. 50 nodes that know only one seed (or one bootstrap node) find
//! each other and form a connected mesh within a bound of virtual time, the same way for
//! the same seed; a peer that floods `PexRequest`s is cut off by each of its peers with
//! the typed fatal reason while the others keep their connections and their exchanges.
//!
//! Run: `cargo test -p tmp2p-tests --test sim_pex`.

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use tmp2p_core::peer_manager::{PeerStatus, PeerUpdate};
use tmp2p_core::pex::{PexConfig, PexError};
use tmp2p_tests::sim::{NodeSpec, PexRole, Sim};

/// Nodes in the discovery tests.
const NODES: usize = 50;
/// How long discovery may take: ten PEX request intervals (30 s each).
const DISCOVERY_BOUND: Duration = Duration::from_secs(300);

fn ip(i: usize) -> IpAddr {
    // Private addresses (strict mode keeps them between private peers), one /16 each.
    IpAddr::from([10, (i % 200) as u8 + 1, (i / 200) as u8, 1])
}

/// Node indices connected to node `i` right now.
fn connected(sim: &Sim, i: usize) -> BTreeSet<usize> {
    sim.node(i)
        .unwrap()
        .connected()
        .into_iter()
        .map(|id| sim.index_of(id).unwrap())
        .collect()
}

/// The nodes of `among` that a breadth-first walk over live connections reaches from
/// `among`'s first node, never passing through a node outside `among`.
fn reachable(sim: &Sim, among: &BTreeSet<usize>) -> BTreeSet<usize> {
    let Some(&start) = among.iter().next() else {
        return BTreeSet::new();
    };
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(i) = queue.pop_front() {
        for j in connected(sim, i) {
            if among.contains(&j) && seen.insert(j) {
                queue.push_back(j);
            }
        }
    }
    seen
}

/// Known peer addresses of node `i` (its PeerManager's store).
fn known(sim: &Sim, i: usize) -> usize {
    sim.node(i)
        .unwrap()
        .router()
        .unwrap()
        .peer_manager()
        .peer_count()
}

/// Node 0 is the only node the others know; in `seed_mode` it runs PEX as a seed.
fn discovery_network(seed: u64, seed_mode: bool) -> Sim {
    let mut sim = Sim::new(seed);
    for i in 0..NODES {
        sim.add_node(NodeSpec::new(ip(i), &[]));
    }
    let seed_config = PexConfig {
        seed_mode,
        ..PexConfig::default()
    };
    sim.enable_pex(0, PexRole::Reactor(seed_config)).unwrap();
    for i in 1..NODES {
        sim.enable_pex(i, PexRole::Reactor(PexConfig::default()))
            .unwrap();
        sim.spec_mut(i).unwrap().boot_peers = vec![0];
    }
    sim.start_all().unwrap();
    sim
}

/// What a discovery run ended with, to compare two runs.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    formed_at: Duration,
    trace: u64,
    known: Vec<usize>,
}

/// Runs until every node knows `min(max_outgoing, NODES - 1)` addresses and the nodes of
/// `mesh` are one connected component (checked every virtual second), within the bound.
fn discover(seed: u64, seed_mode: bool) -> (Sim, Outcome) {
    let mut sim = discovery_network(seed, seed_mode);
    let max_outgoing = usize::from(
        sim.node(1)
            .unwrap()
            .spec()
            .config
            .peer_manager
            .max_outgoing_connections,
    );
    let want_known = max_outgoing.min(NODES - 1);
    // A seed disconnects every peer once it has answered: it is no part of the mesh.
    let first = usize::from(seed_mode);
    let mesh: BTreeSet<usize> = (first..NODES).collect();
    let formed = |sim: &Sim| {
        (0..NODES).all(|i| known(sim, i) >= want_known) && reachable(sim, &mesh) == mesh
    };
    while !formed(&sim) {
        assert!(
            sim.elapsed() < DISCOVERY_BOUND,
            "seed {seed}: no mesh after {:?}; known {:?}; reachable {} of {}",
            sim.elapsed(),
            (0..NODES).map(|i| known(&sim, i)).collect::<Vec<_>>(),
            reachable(&sim, &mesh).len(),
            mesh.len()
        );
        sim.run_for(Duration::from_secs(1)).unwrap();
    }
    let outcome = Outcome {
        formed_at: sim.elapsed(),
        trace: sim.trace().hash(),
        known: (0..NODES).map(|i| known(&sim, i)).collect(),
    };
    (sim, outcome)
}

#[test]
fn fifty_nodes_knowing_one_seed_form_a_mesh_within_five_virtual_minutes() {
    let (sim, outcome) = discover(11, true);
    // The seed answered requests and crawled: it knows everyone, and it let its peers go.
    assert_eq!(known(&sim, 0), NODES - 1);
    let seed_log = sim.pex_log(0).unwrap();
    assert!(
        seed_log.disconnects.len() >= NODES - 1,
        "the seed disconnected {} peers",
        seed_log.disconnects.len()
    );
    for i in 1..NODES {
        // Discovery went through PEX answers, and no honest peer was reported.
        let log = sim.pex_log(i).unwrap();
        assert!(!log.answers.is_empty(), "node {i} never got a PEX answer");
        assert!(log.errors.is_empty(), "node {i}: {:?}", log.errors);
        // More peers than the one it was told about.
        assert!(
            connected(&sim, i).len() >= 2,
            "node {i}: {:?}",
            connected(&sim, i)
        );
    }
    // The same seed gives the same run.
    let (_, again) = discover(11, true);
    assert_eq!(outcome, again);
}

#[test]
fn fifty_nodes_knowing_one_bootstrap_peer_form_a_mesh_within_five_virtual_minutes() {
    let (sim, _) = discover(12, false);
    // The bootstrap node is an ordinary member of the mesh.
    assert!(!connected(&sim, 0).is_empty());
    for i in 0..NODES {
        let log = sim.pex_log(i).unwrap();
        assert!(log.errors.is_empty(), "node {i}: {:?}", log.errors);
    }
}

/// Four nodes that know only a seed: node 0, in seed mode, answers each visit and lets the
/// visitor go.
fn small_network_with_a_seed(seed: u64, brief_connection_period: Duration) -> Sim {
    let mut sim = Sim::new(seed);
    for i in 0..5 {
        sim.add_node(NodeSpec::new(ip(i), &[]));
        sim.spec_mut(i)
            .unwrap()
            .config
            .peer_manager
            .brief_connection_period = brief_connection_period;
    }
    let seed_config = PexConfig {
        seed_mode: true,
        ..PexConfig::default()
    };
    sim.enable_pex(0, PexRole::Reactor(seed_config)).unwrap();
    for i in 1..5 {
        sim.enable_pex(i, PexRole::Reactor(PexConfig::default()))
            .unwrap();
        sim.spec_mut(i).unwrap().boot_peers = vec![0];
    }
    sim.start_all().unwrap();
    sim
}

/// How many visitors the seed let go in five virtual minutes.
fn seed_visits_in_five_minutes(brief_connection_period: Duration) -> (Sim, usize) {
    let mut sim = small_network_with_a_seed(31, brief_connection_period);
    sim.run_for(Duration::from_secs(300)).unwrap();
    let visits = sim.pex_log(0).unwrap().disconnects.len();
    (sim, visits)
}

/// Nodes with free outbound slots and nobody else to dial used to revisit the seed every
/// 2 s cooldown; each brief visit in a row now doubles the wait (2, 4, …, 128 s: about 8
/// visits each in five minutes), and the mesh forms all the same.
#[test]
fn nodes_that_know_only_a_seed_back_off_from_it_and_still_form_a_mesh() {
    let (sim, visits) = seed_visits_in_five_minutes(Duration::from_secs(10));
    assert!(visits <= 4 * 10, "the seed saw {visits} visits");
    for i in 1..5 {
        let others: BTreeSet<usize> = (1..5).filter(|&j| j != i).collect();
        assert_eq!(connected(&sim, i), others, "node {i}");
    }
    // Without the rule the same network hammers the seed.
    let (_, hammered) = seed_visits_in_five_minutes(Duration::ZERO);
    assert!(
        hammered > 4 * 50,
        "without backoff the seed saw {hammered} visits"
    );
}

/// Honest nodes of the flooding test; the flooder is node `HONEST`.
const HONEST: usize = 8;

/// Pairs of honest nodes connected right now.
fn honest_links(sim: &Sim) -> BTreeSet<(usize, usize)> {
    (0..HONEST)
        .flat_map(|i| {
            connected(sim, i)
                .into_iter()
                .filter(|&j| j < HONEST)
                .map(move |j| (i.min(j), i.max(j)))
        })
        .collect()
}

#[test]
fn a_pex_request_flooder_is_cut_off_by_each_peer_and_nobody_else_is_affected() {
    let mut sim = Sim::new(21);
    for i in 0..=HONEST {
        sim.add_node(NodeSpec::new(ip(i), &[]));
    }
    for i in 0..HONEST {
        sim.enable_pex(i, PexRole::Reactor(PexConfig::default()))
            .unwrap();
        if i > 0 {
            sim.spec_mut(i).unwrap().boot_peers = vec![0];
        }
    }
    let flooder = HONEST;
    sim.enable_pex(
        flooder,
        PexRole::Flooder {
            every: Duration::from_secs(1),
        },
    )
    .unwrap();
    sim.spec_mut(flooder).unwrap().boot_peers = vec![0, 1, 2];
    for i in 0..HONEST {
        sim.start(i).unwrap();
    }
    sim.run_for(Duration::from_secs(40)).unwrap();
    let before = honest_links(&sim);
    let honest: BTreeSet<usize> = (0..HONEST).collect();
    assert_eq!(reachable(&sim, &honest), honest, "the honest mesh formed");

    let flood_start = sim.elapsed();
    sim.start(flooder).unwrap();
    sim.run_for(Duration::from_secs(90)).unwrap();
    let end = sim.elapsed();
    let flooder_id = sim.id(flooder).unwrap();

    let mut cut_off_by = BTreeSet::new();
    for i in 0..HONEST {
        let node = sim.node(i).unwrap();
        let log = sim.pex_log(i).unwrap();
        // Every connection of the flooder to this node ends within a few seconds: its
        // third request within 10 s is fatal.
        let flooder_updates: Vec<(Duration, PeerStatus)> = node
            .updates()
            .iter()
            .filter(|(_, u)| u.node_id == flooder_id)
            .map(|(t, u)| (*t, u.status))
            .collect();
        let mut up_since = None;
        for &(at, status) in &flooder_updates {
            match status {
                PeerStatus::Up => up_since = Some(at),
                PeerStatus::Down => {
                    let since = up_since.take().unwrap();
                    assert!(
                        at - since <= Duration::from_secs(5),
                        "node {i} kept the flooder from {since:?} to {at:?}"
                    );
                }
            }
        }
        if let Some(since) = up_since {
            assert!(
                end - since <= Duration::from_secs(5),
                "node {i}: flooder still up"
            );
        }
        if !flooder_updates.is_empty() {
            // Connected to it at least once: it was cut off with the typed fatal reason.
            assert!(
                log.flagged_flooding(flooder_id),
                "node {i}: {:?}",
                log.errors
            );
            cut_off_by.insert(i);
        }
        // Nobody else was reported.
        for (at, error) in &log.errors {
            assert_eq!(error.node, flooder_id, "node {i} at {at:?}: {error:?}");
            assert!(
                matches!(error.error, PexError::RequestTooSoon { .. }),
                "node {i}: {error:?}"
            );
        }
        // No honest peer went down while the flooder was about.
        let honest_downs: Vec<&(Duration, PeerUpdate)> = node
            .updates()
            .iter()
            .filter(|(t, u)| {
                *t >= flood_start
                    && u.status == PeerStatus::Down
                    && sim.index_of(u.node_id).is_some_and(|j| j < HONEST)
            })
            .collect();
        assert!(honest_downs.is_empty(), "node {i}: {honest_downs:?}");
        // Its exchanges with honest peers went on: answers came in a full request
        // interval after the flood began.
        let late_answers = log
            .answers
            .iter()
            .filter(|(t, from, _)| {
                *t > flood_start + Duration::from_secs(30)
                    && sim.index_of(*from).is_some_and(|j| j < HONEST)
            })
            .count();
        assert!(
            late_answers > 0,
            "node {i}: no PEX answer after the flood began"
        );
    }
    // The flooder dialed three honest nodes; each cut it off.
    assert!(
        cut_off_by.is_superset(&BTreeSet::from([0, 1, 2])),
        "{cut_off_by:?}"
    );
    // Every honest connection of before is still there.
    let after = honest_links(&sim);
    assert!(
        before.is_subset(&after),
        "lost {:?}",
        before.difference(&after)
    );
}

#[test]
fn a_seed_answer_reaches_an_inbound_peer_before_the_seed_lets_it_go() {
    let mut sim = Sim::new(31);
    for i in 0..3 {
        sim.add_node(NodeSpec::new(ip(i), &[]));
    }
    let seed_config = PexConfig {
        seed_mode: true,
        ..PexConfig::default()
    };
    sim.enable_pex(0, PexRole::Reactor(seed_config)).unwrap();
    for i in 1..3 {
        sim.enable_pex(i, PexRole::Reactor(PexConfig::default()))
            .unwrap();
        sim.spec_mut(i).unwrap().boot_peers = vec![0];
    }
    sim.start(0).unwrap();
    sim.start(1).unwrap();
    // Long enough for the seed's store batch (gathered for 1 s) to be written.
    sim.run_for(Duration::from_secs(2)).unwrap();
    // The seed learned node 1's listen address from its inbound connection.
    assert!(sim
        .node(0)
        .unwrap()
        .stored()
        .contains_key(&sim.id(1).unwrap()));
    sim.start(2).unwrap();
    sim.run_for(Duration::from_millis(500)).unwrap();
    let seed = sim.id(0).unwrap();
    let node = sim.node(2).unwrap();
    let first_down = node
        .updates()
        .iter()
        .find(|(_, u)| u.node_id == seed && u.status == PeerStatus::Down)
        .map(|(t, _)| *t)
        .expect("the seed let node 2 go");
    // Node 2 dialed the seed; the seed's answer (node 1) came before the disconnect.
    let answer = sim
        .pex_log(2)
        .unwrap()
        .answers
        .iter()
        .find(|(_, from, _)| *from == seed)
        .copied();
    assert!(
        answer.is_some_and(|(t, _, n)| t <= first_down && n == 1),
        "{answer:?}, down at {first_down:?}"
    );
    assert!(connected(&sim, 2).contains(&1));
}

#[test]
fn a_seed_does_not_reconnect_to_every_peer_every_few_seconds() {
    // Before the seed re-crawl interval the seed redialed and re-asked each of its 49 peers
    // every 2 s (the PeerManager's redial cooldown): ~2 900 connections in 120 s.
    let mut sim = discovery_network(11, true);
    sim.run_for(Duration::from_secs(120)).unwrap();
    assert_eq!(known(&sim, 0), NODES - 1);
    let dropped = sim.pex_log(0).unwrap().disconnects.len();
    assert!(
        dropped < 10 * (NODES - 1),
        "the seed let {dropped} connections go in 120 virtual s"
    );
}

/// After seed-mode discovery, the connections of the 49 mesh nodes are spread out: with
/// every node dialing its 12 outgoing peers in its own order among equals, there is no hub
/// that every node dialed first and few nodes that nobody dialed. (Ranked by node id, every
/// node dialed the same lowest ids first: with seed 11, six nodes ended connected to all 48
/// others and seventeen had no inbound connection at all.)
#[test]
fn discovery_spreads_connections_instead_of_growing_hubs() {
    for seed in [11, 12] {
        let (mut sim, _) = discover(seed, true);
        sim.run_for(Duration::from_secs(60)).unwrap();
        let max_out = usize::from(
            sim.node(1)
                .unwrap()
                .spec()
                .config
                .peer_manager
                .max_outgoing_connections,
        );
        let degrees: Vec<usize> = (1..NODES).map(|i| connected(&sim, i).len()).collect();
        let hubs = degrees.iter().filter(|&&d| d >= NODES - 2).count();
        let undialed = degrees.iter().filter(|&&d| d <= max_out).count();
        assert!(hubs <= 2, "seed {seed}: {hubs} hubs; degrees {degrees:?}");
        assert!(
            undialed <= 5,
            "seed {seed}: {undialed} nodes nobody dialed; degrees {degrees:?}"
        );
    }
}
