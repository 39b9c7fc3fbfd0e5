#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deterministic scenario tests of the whole-network simulator (issue #8): real routers,
//! peer managers and connections over the simulated network.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::router::{Envelope, PeerError};
use tmp2p_core::typed::echo::EchoInner;
use tmp2p_core::typed::{ChannelCodec, WrapperCodec};
use tmp2p_proto::echo::{EchoMessage, Ping, Pong};
use tmp2p_tests::sim::stamp::{stamped, verify, Stamp};
use tmp2p_tests::sim::{NodeSpec, ReactorCtx, Sim, SimError, TypedReactor};

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

/// Marks `peers` of node `i` as persistent and adds them at every start.
fn persistent(sim: &mut Sim, i: usize, peers: &[usize]) {
    let ids: Vec<_> = peers.iter().map(|&p| sim.id(p).unwrap()).collect();
    let spec = sim.spec_mut(i).unwrap();
    spec.config.peer_manager.persistent_peers.extend(ids);
    spec.boot_peers.extend_from_slice(peers);
}

/// The mesh of the 50-node tests: a ring plus chords of length 7, dialed by the lower side.
fn mesh_edges(n: usize) -> BTreeSet<(usize, usize)> {
    let mut edges = BTreeSet::new();
    for i in 0..n {
        for d in [1, 7] {
            let j = (i + d) % n;
            edges.insert((i.min(j), i.max(j)));
        }
    }
    edges
}

fn mesh_network(seed: u64, n: usize) -> Sim {
    let mut sim = network(seed, n, &[0x20, 0x21]);
    let edges = mesh_edges(n);
    for &(a, b) in &edges {
        persistent(&mut sim, a, &[b]);
    }
    sim.start_all().unwrap();
    sim.drive().unwrap();
    sim
}

#[test]
fn fifty_nodes_with_persistent_peers_form_the_configured_mesh() {
    let n = 50;
    let sim = mesh_network(2, n);
    let edges = mesh_edges(n);
    for i in 0..n {
        let want: BTreeSet<usize> = edges
            .iter()
            .filter_map(|&(a, b)| match (a == i, b == i) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(connected(&sim, i), want, "node {i}");
    }
    sim.check_limits().unwrap();
}

#[test]
fn a_broadcast_gossiped_over_the_mesh_reaches_every_node_exactly_once() {
    let n = 50;
    let mut sim = mesh_network(3, n);
    // (receiver, sender of the copy, stamp) of every copy; messages each node has seen.
    let copies: Arc<Mutex<Vec<(usize, usize, Stamp)>>> = Arc::default();
    let seen: Arc<Mutex<BTreeSet<(usize, Stamp)>>> = Arc::default();
    let ids: Vec<_> = (0..n).map(|i| sim.id(i).unwrap()).collect();
    for i in 0..n {
        let (copies, seen, ids) = (copies.clone(), seen.clone(), ids.clone());
        sim.set_reactor(i, 0x21, move |ctx: &mut ReactorCtx, env: &Envelope| {
            let stamp = verify(&env.message).unwrap();
            let from = ids.iter().position(|&id| Some(id) == env.from).unwrap();
            copies.lock().unwrap().push((ctx.node, from, stamp));
            // First sight: hand to the application (the seen set) and relay.
            if seen.lock().unwrap().insert((ctx.node, stamp)) {
                ctx.broadcast(0x21, env.message.clone());
            }
        })
        .unwrap();
    }
    let stamp = Stamp {
        sender: 0,
        seq: 1,
        channel: 0x21,
    };
    seen.lock().unwrap().insert((0, stamp));
    sim.send(0, Envelope::broadcast(0x21, stamped(stamp, 1000)))
        .unwrap();
    sim.drive().unwrap();
    // Every node has it.
    let seen = seen.lock().unwrap();
    assert_eq!(*seen, (0..n).map(|i| (i, stamp)).collect());
    // Each node relays exactly once, so every mesh edge carried exactly one copy each way:
    // nothing duplicated, nothing lost, nothing off the mesh.
    let copies = copies.lock().unwrap();
    let mut directed: Vec<(usize, usize)> = copies
        .iter()
        .map(|&(to, from, s)| {
            assert_eq!(s, stamp);
            (from, to)
        })
        .collect();
    directed.sort_unstable();
    let mut want: Vec<(usize, usize)> = mesh_edges(n)
        .into_iter()
        .flat_map(|(a, b)| [(a, b), (b, a)])
        .collect();
    want.sort_unstable();
    assert_eq!(directed, want);
}

#[test]
fn max_connected_holds_under_200_simultaneous_dialers() {
    let mut sim = network(4, 201, &[0x20]);
    {
        let spec = sim.spec_mut(0).unwrap();
        spec.config.peer_manager.max_connected = 10;
        spec.config.peer_manager.max_outgoing_connections = 10;
        spec.config.peer_manager.max_connected_upgrade = 2;
    }
    sim.start_all().unwrap();
    for i in 1..=200 {
        sim.add_peer(i, 0).unwrap();
    }
    let mut worst = 0;
    let mut violation = None;
    sim.run_until(Duration::from_secs(20), |s| {
        worst = worst.max(s.node(0).unwrap().connected().len());
        if let Err(e) = s.check_limits() {
            violation.get_or_insert(e);
        }
        false
    })
    .unwrap();
    assert_eq!(violation, None);
    assert!(worst <= 12, "{worst}");
    assert_eq!(sim.node(0).unwrap().connected().len(), 10);
    // The dialers that got in are connected on their side too.
    let inside = connected(&sim, 0);
    for i in 1..=200 {
        assert_eq!(
            connected(&sim, i).contains(&0),
            inside.contains(&i),
            "node {i}"
        );
    }
}

#[test]
fn a_better_scored_peer_replaces_the_worst_when_full() {
    let mut sim = network(5, 5, &[0x20]);
    let better = sim.id(4).unwrap();
    {
        let spec = sim.spec_mut(0).unwrap();
        spec.config.peer_manager.max_connected = 3;
        spec.config.peer_manager.max_outgoing_connections = 3;
        spec.config.peer_manager.max_connected_upgrade = 1;
        spec.config.peer_manager.peer_scores.insert(better, 50);
    }
    sim.start_all().unwrap();
    for i in 1..=3 {
        sim.add_peer(i, 0).unwrap();
    }
    sim.drive().unwrap();
    assert_eq!(connected(&sim, 0), BTreeSet::from([1, 2, 3]));
    sim.add_peer(4, 0).unwrap();
    sim.run_for(Duration::from_secs(1)).unwrap();
    let now = connected(&sim, 0);
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(now.contains(&4), "the better peer got in: {now:?}");
    let evicted: Vec<usize> = (1..=3).filter(|i| !now.contains(i)).collect();
    assert_eq!(evicted.len(), 1);
    // The evicted one saw the connection go down.
    let down = sim
        .node(evicted[0])
        .unwrap()
        .updates()
        .iter()
        .any(|(_, u)| u.node_id == sim.id(0).unwrap() && u.status == PeerStatus::Down);
    assert!(down);
}

#[test]
fn persistent_peers_reconnect_after_a_partition_heals_within_their_backoff_cap() {
    let cap = Duration::from_secs(5);
    let mut sim = network(6, 3, &[0x20]);
    for i in 0..3 {
        let spec = sim.spec_mut(i).unwrap();
        spec.config.peer_manager.max_retry_time_persistent = cap;
        spec.config.connection.mconn.ping_interval = Duration::from_secs(10);
        spec.config.connection.mconn.pong_timeout = Duration::from_secs(5);
    }
    persistent(&mut sim, 0, &[1, 2]);
    sim.start_all().unwrap();
    sim.drive().unwrap();
    assert_eq!(connected(&sim, 0), BTreeSet::from([1, 2]));
    sim.partition(&[2], 1);
    sim.run_for(Duration::from_secs(120)).unwrap();
    // Keepalive found the dead link; the other side is untouched.
    assert_eq!(connected(&sim, 0), BTreeSet::from([1]));
    assert!(connected(&sim, 2).is_empty());
    sim.heal();
    let healed = sim.elapsed();
    let dial_timeout = sim.node(0).unwrap().spec().config.dial_timeout;
    let back = sim
        .run_until(Duration::from_secs(60), |s| connected(s, 0).contains(&2))
        .unwrap();
    assert!(back);
    let took = sim.elapsed() - healed;
    // At worst a dial sent into the partition times out, then one capped backoff.
    assert!(
        took <= dial_timeout + cap + Duration::from_millis(100),
        "{took:?}"
    );
}

#[test]
fn a_reactor_that_stops_reading_one_channel_delays_nothing_else() {
    // Node 1 gets traffic on 0x20 and 0x21 from node 0 and on 0x20 from node 2. Run it
    // twice with the same seed: once normally, once with node 1's 0x21 reactor paused.
    let run = |pause: bool| {
        let mut sim = network(7, 3, &[0x20, 0x21]);
        sim.start_all().unwrap();
        sim.add_peer(0, 1).unwrap();
        sim.add_peer(2, 1).unwrap();
        sim.drive().unwrap();
        let log: Arc<Mutex<Vec<(u8, Duration, Stamp)>>> = Arc::default();
        for ch in [0x20u8, 0x21] {
            let log = log.clone();
            sim.set_reactor(1, ch, move |ctx: &mut ReactorCtx, env: &Envelope| {
                log.lock()
                    .unwrap()
                    .push((env.channel, ctx.now, verify(&env.message).unwrap()));
            })
            .unwrap();
        }
        sim.pause_channel(1, 0x21, pause).unwrap();
        let id1 = sim.id(1).unwrap();
        for seq in 0..200u64 {
            for (sender, ch) in [(0usize, 0x21u8), (0, 0x20), (2, 0x20)] {
                let stamp = Stamp {
                    sender: sender as u32,
                    seq,
                    channel: ch,
                };
                sim.send(sender, Envelope::to_peer(id1, ch, stamped(stamp, 2000)))
                    .unwrap();
            }
            sim.run_for(Duration::from_millis(2)).unwrap();
        }
        sim.drive().unwrap();
        let node = sim.node(1).unwrap();
        let inbox = node.inbox_len(0x21) + node.held_in_connections();
        let log = log.lock().unwrap().clone();
        (log, inbox)
    };
    let (normal, _) = run(false);
    let (paused, waiting) = run(true);
    let on = |log: &[(u8, Duration, Stamp)], ch: u8| -> Vec<(Duration, Stamp)> {
        log.iter()
            .filter(|e| e.0 == ch)
            .map(|e| (e.1, e.2))
            .collect()
    };
    assert_eq!(on(&normal, 0x20).len(), 400);
    assert_eq!(on(&normal, 0x21).len(), 200);
    // Paused: 0x21 waits in its connection, and 0x20 from both peers arrived at the same
    // virtual instants as without the pause.
    assert_eq!(waiting, 200);
    assert!(on(&paused, 0x21).is_empty());
    assert_eq!(on(&paused, 0x20), on(&normal, 0x20));
}

fn echo_reactor() -> impl tmp2p_tests::sim::Reactor {
    let codec = WrapperCodec::<EchoMessage, EchoInner>::new();
    TypedReactor::new(
        codec,
        move |ctx: &mut ReactorCtx, from, message: EchoInner| {
            if let EchoInner::Ping(Ping { payload }) = message {
                let pong = codec.encode(&EchoInner::Pong(Pong { payload }));
                ctx.send_to(from, 0x40, pong);
            }
        },
    )
}

#[test]
fn a_fatal_peer_error_disconnects_and_the_peer_can_come_back() {
    let mut sim = network(8, 2, &[0x40]);
    sim.set_reactor(1, 0x40, echo_reactor()).unwrap();
    sim.start_all().unwrap();
    sim.add_peer(0, 1).unwrap();
    sim.drive().unwrap();
    let codec = WrapperCodec::<EchoMessage, EchoInner>::new();
    let id1 = sim.id(1).unwrap();
    let ping = codec.encode(&EchoInner::Ping(Ping {
        payload: Bytes::from_static(b"hello"),
    }));
    sim.send(0, Envelope::to_peer(id1, 0x40, ping)).unwrap();
    sim.drive().unwrap();
    let pongs: Vec<_> = sim.node(0).unwrap().received().to_vec();
    assert_eq!(pongs.len(), 1);
    assert_eq!(
        codec.decode(pongs[0].message.clone()).unwrap(),
        EchoInner::Pong(Pong {
            payload: Bytes::from_static(b"hello")
        })
    );
    // Garbage on the typed channel: node 1's reactor reports node 0, fatally.
    sim.send(0, Envelope::to_peer(id1, 0x40, Bytes::from_static(&[0x0f])))
        .unwrap();
    sim.drive().unwrap();
    assert!(connected(&sim, 1).is_empty());
    assert!(connected(&sim, 0).is_empty());
    // Node 0 dialed node 1, so it redials after its backoff and cooldown.
    let back = sim
        .run_until(Duration::from_secs(30), |s| {
            connected(s, 0).contains(&1) && connected(s, 1).contains(&0)
        })
        .unwrap();
    assert!(back);
    let statuses: Vec<_> = sim
        .node(0)
        .unwrap()
        .updates()
        .iter()
        .map(|(_, u)| u.status)
        .collect();
    assert_eq!(
        statuses,
        vec![PeerStatus::Up, PeerStatus::Down, PeerStatus::Up]
    );
    // And a direct report works the same way.
    sim.report_error(
        1,
        PeerError {
            node: sim.id(0).unwrap(),
            reason: "test".into(),
            fatal: true,
        },
    )
    .unwrap();
    sim.drive().unwrap();
    assert!(connected(&sim, 1).is_empty());
    assert!(connected(&sim, 0).is_empty());
}

#[test]
fn a_restarted_node_reconnects_from_its_stored_records() {
    let mut sim = network(9, 4, &[0x20]);
    sim.start_all().unwrap();
    for p in 1..4 {
        sim.add_peer(0, p).unwrap();
    }
    sim.drive().unwrap();
    assert_eq!(connected(&sim, 0), BTreeSet::from([1, 2, 3]));
    // Store writes are gathered for 1 s: a crash before then loses them (the store's
    // contract); after it they are stored.
    assert!(sim.node(0).unwrap().stored().is_empty());
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert_eq!(sim.node(0).unwrap().stored().len(), 3);
    sim.crash(0).unwrap();
    sim.run_for(Duration::from_secs(1)).unwrap();
    for p in 1..4 {
        assert!(connected(&sim, p).is_empty(), "peer {p} saw the crash");
    }
    sim.run_for(Duration::from_secs(10)).unwrap();
    sim.start(0).unwrap();
    assert!(sim.node(0).unwrap().spec().boot_peers.is_empty());
    let back = sim
        .run_until(Duration::from_secs(30), |s| connected(s, 0).len() == 3)
        .unwrap();
    assert!(back, "{:?}", connected(&sim, 0));
}

#[test]
fn an_eclipse_attempt_from_one_slash_16_does_not_displace_peers_from_other_groups() {
    let honest = 6;
    let attackers = 100;
    let mut sim = Sim::new(10);
    let mut victim = NodeSpec::new(IpAddr::from([10, 1, 0, 1]), &[0x20]);
    victim.config.peer_manager.max_connected = 20;
    victim.config.peer_manager.max_connected_upgrade = 4;
    victim.config.peer_manager.max_connected_per_ip_group = 4;
    victim.boot_peers = (1..=honest).collect();
    sim.add_node(victim);
    for h in 1..=honest {
        sim.add_node(NodeSpec::new(
            IpAddr::from([10, 10 + h as u8, 0, 1]),
            &[0x20],
        ));
    }
    for a in 0..attackers {
        sim.add_node(NodeSpec::new(
            IpAddr::from([10, 250, (a / 250) as u8, (a % 250) as u8 + 1]),
            &[0x20],
        ));
    }
    sim.start_all().unwrap();
    sim.drive().unwrap();
    let honest_set: BTreeSet<usize> = (1..=honest).collect();
    assert_eq!(connected(&sim, 0), honest_set);
    for a in 0..attackers {
        sim.add_peer(1 + honest + a, 0).unwrap();
    }
    let mut displaced = None;
    sim.run_until(Duration::from_secs(30), |s| {
        let now = connected(s, 0);
        if !honest_set.is_subset(&now) {
            displaced.get_or_insert((s.elapsed(), now));
        }
        false
    })
    .unwrap();
    assert_eq!(displaced, None);
    let now = connected(&sim, 0);
    assert!(honest_set.is_subset(&now));
    let in_attacker_group = now.iter().filter(|&&i| i > honest).count();
    assert_eq!(in_attacker_group, 4, "{now:?}");
}

#[test]
fn the_hot_loop_detector_and_errors_are_typed() {
    let mut sim = network(11, 1, &[0x20]);
    assert_eq!(
        sim.add_peer(0, 0),
        Err(SimError::WrongState {
            node: 0,
            what: "must run to add a peer"
        })
    );
    assert!(matches!(sim.node(3), Err(SimError::NoSuchNode(3))));
    sim.start(0).unwrap();
    assert!(matches!(sim.start(0), Err(SimError::WrongState { .. })));
}

#[test]
fn drive_reports_a_network_that_never_goes_quiet() {
    // Two reactors bouncing one message forever: virtual time advances (no hot loop), but
    // the network never settles, and drive says so instead of spinning.
    let mut sim = network(12, 2, &[0x20]);
    for i in 0..2 {
        sim.set_reactor(i, 0x20, |ctx: &mut ReactorCtx, env: &Envelope| {
            ctx.send_to(env.from.unwrap(), 0x20, env.message.clone());
        })
        .unwrap();
    }
    sim.start_all().unwrap();
    sim.add_peer(0, 1).unwrap();
    sim.drive().unwrap();
    sim.drive_budget = Duration::from_secs(2);
    let id1 = sim.id(1).unwrap();
    sim.send(0, Envelope::to_peer(id1, 0x20, Bytes::from_static(b"ball")))
        .unwrap();
    assert!(matches!(
        sim.drive(),
        Err(SimError::NotQuiescent { budget, .. }) if budget == Duration::from_secs(2)
    ));
    // About one bounce per 5 ms one-way latency.
    let bounces = sim.node(0).unwrap().received().len() + sim.node(1).unwrap().received().len();
    assert!((350..=410).contains(&bounces), "{bounces}");
}

/// The close phase is core's `Link`: when a peer goes away, what it sent before reaches
/// the application before its `Down`. A paused reactor holds the `Down` back; once it
/// reads again the messages come, then the `Down`. One that does not read within the close
/// linger gets the `Down` then, and the messages are counted as undelivered.
#[test]
fn a_peers_last_messages_come_before_its_down_within_the_close_linger() {
    const COUNT: u8 = 20;
    for resume in [true, false] {
        let mut sim = network(11, 2, &[0x21]);
        sim.start_all().unwrap();
        sim.add_peer(0, 1).unwrap();
        sim.drive().unwrap();
        sim.record_messages(1, true).unwrap();
        sim.pause_channel(1, 0x21, true).unwrap();
        let id1 = sim.id(1).unwrap();
        for seq in 0..COUNT {
            let message = Bytes::from(vec![seq; 100]);
            sim.send(0, Envelope::to_peer(id1, 0x21, message)).unwrap();
        }
        // Then quiet, for longer than the close linger: the linger runs from the close.
        sim.run_for(Duration::from_secs(10)).unwrap();
        assert_eq!(
            sim.node(1).unwrap().held_in_connections(),
            usize::from(COUNT)
        );
        sim.crash(0).unwrap();
        sim.run_for(Duration::from_secs(1)).unwrap();
        // The position of node 0's Down among node 1's peer updates.
        let down = |sim: &Sim| {
            let updates = sim.node(1).unwrap().updates();
            updates
                .iter()
                .position(|(_, u)| u.status == PeerStatus::Down)
        };
        assert_eq!(
            down(&sim),
            None,
            "the Down waits for the messages before it"
        );
        let undelivered = |sim: &Sim| {
            let router = sim.node(1).unwrap().router().unwrap();
            router.counters().snapshot().undelivered_inbound
        };
        if resume {
            sim.pause_channel(1, 0x21, false).unwrap();
            sim.run_for(Duration::from_millis(100)).unwrap();
            let down_at = down(&sim).expect("the Down follows the messages");
            let received = sim.node(1).unwrap().received();
            assert_eq!(received.len(), usize::from(COUNT));
            assert!(
                received.iter().all(|r| r.updates_before <= down_at),
                "a message came after the Down"
            );
            assert_eq!(undelivered(&sim), 0);
        } else {
            // The close linger (5 s) runs from the EOF, one latency after the crash.
            sim.run_for(Duration::from_secs(5)).unwrap();
            assert!(down(&sim).is_some(), "no Down after the close linger");
            assert!(sim.node(1).unwrap().received().is_empty());
            assert_eq!(undelivered(&sim), u64::from(COUNT));
        }
    }
}
