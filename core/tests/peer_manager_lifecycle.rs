#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The behaviours of v0.35.9's `peermanager_test.go` and `peermanager_scoring_test.go`
//! (protocol.md §7.4, §7.5), each as our own test named after the Go test, plus one test
//! per deliberate improvement that would fail on the Go behaviour.

use std::time::{Duration, Instant};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::peer_manager::{
    ClockAnchor, Direction, PeerManager, PeerManagerError, PeerManagerOptions, PeerRecord,
    PeerStatus, PeerUpdate, ScoreReport, StoreOp, SubscriptionClosed,
};
use tmp2p_core::NodeId;

#[allow(clippy::disallowed_methods)] // tests need one real Instant to start virtual time
fn t0() -> Instant {
    Instant::now()
}

fn anchor(t: Instant) -> ClockAnchor {
    ClockAnchor {
        instant: t,
        since_unix_epoch: Duration::from_secs(1_700_000_000),
    }
}

fn id(n: u8) -> NodeId {
    NodeId::from_bytes([n; 20])
}

fn addr(n: u8) -> NodeAddress {
    NodeAddress::parse(&format!("{}@10.{n}.0.1:26656", id(n))).unwrap()
}

fn addr2(n: u8, host: &str) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{host}:26656", id(n))).unwrap()
}

const SELF: u8 = 0xee;

fn manager(options: PeerManagerOptions) -> (PeerManager, Instant) {
    let t = t0();
    (PeerManager::new(id(SELF), options, anchor(t)).unwrap(), t)
}

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn new_peer_manager() {
    let t = t0();
    assert!(PeerManager::new(id(SELF), PeerManagerOptions::default(), anchor(t)).is_ok());
    let bad = PeerManagerOptions {
        max_peers: 3,
        ..Default::default()
    };
    assert!(PeerManager::new(id(SELF), bad, anchor(t)).is_err());
}

#[test]
fn new_peer_manager_persistence() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr(2)).unwrap();
    pm.add(t, addr2(2, "10.2.0.2")).unwrap();
    let records = pm.records();
    let options = PeerManagerOptions {
        persistent_peers: [id(1)].into(),
        peer_scores: [(id(2), 5)].into(),
        ..Default::default()
    };
    let pm2 = PeerManager::from_records(id(SELF), options, anchor(t), t, records.clone()).unwrap();
    assert_eq!(pm2.records(), records);
    assert_eq!(pm2.addresses(id(2)).len(), 2);
    assert_eq!(
        pm2.score(id(1)),
        Some(i16::MAX),
        "new persistent-peer config applies"
    );
    assert_eq!(pm2.score(id(2)), Some(5), "new fixed score applies");
}

#[test]
fn new_peer_manager_self_id_change() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr(2)).unwrap();
    let mut pm2 = PeerManager::from_records(
        id(1),
        PeerManagerOptions::default(),
        anchor(t),
        t,
        pm.records(),
    )
    .unwrap();
    assert_eq!(pm2.ranked_peers().collect::<Vec<_>>(), vec![id(2)]);
    assert_eq!(pm2.poll_store_op(), Some(StoreOp::Delete(id(1))));
}

#[test]
fn peer_manager_add() {
    let options = PeerManagerOptions {
        max_peers: 2,
        max_connected: 1,
        persistent_peers: [id(3)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    assert_eq!(pm.add(t, addr(1)), Ok(true));
    assert_eq!(pm.add(t, addr(1)), Ok(false));
    assert_eq!(pm.add(t, addr2(1, "10.1.0.2")), Ok(true));
    pm.report(id(1), ScoreReport::Good).unwrap();
    assert_eq!(pm.add(t, addr(3)), Ok(true));
    assert_eq!(pm.add(t, addr(4)), Ok(true));
    // Store holds 2: the persistent peer and the better-scored peer 1; 4 was pruned.
    let mut known: Vec<_> = pm.ranked_peers().collect();
    known.sort();
    assert_eq!(known, vec![id(1), id(3)]);
    let own = NodeAddress::parse(&format!("{}@10.0.0.9:1", id(SELF))).unwrap();
    assert_eq!(pm.add(t, own), Err(PeerManagerError::SelfPeer(id(SELF))));
}

#[test]
fn peer_manager_dial_next() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    assert_eq!(pm.try_dial_next(t), None);
    pm.add(t, addr(1)).unwrap();
    assert_eq!(pm.try_dial_next(t), Some(addr(1)));
    assert_eq!(pm.try_dial_next(t), None, "nothing more to dial");
    assert_eq!(pm.poll_timeout(), None);
}

/// Go v0.35.9 expects linear delays (1×, 2×, 3×, 4×, 4×); ours double, capped: 1×, 2×, 4×, 5×.
#[test]
fn peer_manager_dial_next_retry() {
    let options = PeerManagerOptions {
        min_retry_time: ms(100),
        max_retry_time: ms(500),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    let mut rng = rng();
    pm.add(t, addr(1)).unwrap();
    let mut now = t;
    let mut delays = Vec::new();
    for _ in 0..6 {
        let a = pm.try_dial_next(now).unwrap();
        pm.dial_failed(now, &a, &mut rng);
        let wake = pm.poll_timeout().unwrap();
        assert_eq!(
            pm.try_dial_next(wake - Duration::from_nanos(1)),
            None,
            "not before"
        );
        delays.push((wake - now).as_millis());
        now = wake;
    }
    assert_eq!(delays, vec![100, 200, 400, 500, 500, 500]);
}

#[test]
fn peer_manager_dial_next_wake_on_add() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    assert_eq!(pm.try_dial_next(t), None);
    pm.add(t, addr(1)).unwrap();
    assert_eq!(pm.try_dial_next(t), Some(addr(1)));
}

#[test]
fn peer_manager_dial_next_wake_on_dial_failed() {
    let options = PeerManagerOptions {
        max_connected: 1,
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr(2)).unwrap();
    let first = pm.try_dial_next(t).unwrap();
    assert_eq!(pm.try_dial_next(t), None, "the only slot is dialing");
    pm.dial_failed(t, &first, &mut rng());
    let second = pm.try_dial_next(t).unwrap();
    assert_ne!(second, first, "no retry without min_retry_time");
}

#[test]
fn peer_manager_dial_next_wake_on_dial_failed_retry() {
    let options = PeerManagerOptions {
        min_retry_time: ms(200),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.add(t, addr(1)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    pm.dial_failed(t, &a, &mut rng());
    assert_eq!(pm.try_dial_next(t + ms(199)), None);
    assert_eq!(pm.poll_timeout(), Some(t + ms(200)));
    assert_eq!(pm.try_dial_next(t + ms(200)), Some(addr(1)));
}

#[test]
fn peer_manager_dial_next_wake_on_disconnected() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    pm.accepted(t, id(1), None).unwrap();
    assert_eq!(pm.try_dial_next(t), None);
    pm.disconnected(t, id(1));
    assert_eq!(pm.try_dial_next(t), Some(addr(1)));
}

#[test]
fn peer_manager_try_dial_next_max_connected() {
    let options = PeerManagerOptions {
        max_connected: 2,
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    for n in 1..=3 {
        pm.add(t, addr(n)).unwrap();
    }
    let a = pm.try_dial_next(t).unwrap();
    pm.accepted(t, id(3), None).unwrap();
    assert!(
        pm.try_dial_next(t).is_none(),
        "1 dialing + 1 connected = max"
    );
    pm.dial_failed(t, &a, &mut rng());
    assert!(pm.try_dial_next(t).is_some());
}

#[test]
fn peer_manager_try_dial_next_max_connected_upgrade() {
    let options = PeerManagerOptions {
        max_connected: 2,
        max_connected_upgrade: 1,
        peer_scores: [(id(1), 1), (id(2), 2), (id(3), 3), (id(4), 4)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr(2)).unwrap();
    pm.accepted(t, id(1), None).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    // No better peer known: nothing to dial.
    assert_eq!(pm.try_dial_next(t), None);
    pm.add(t, addr(3)).unwrap();
    pm.add(t, addr(4)).unwrap();
    assert_eq!(pm.try_dial_next(t), Some(addr(4)), "upgrade slot used");
    assert_eq!(pm.try_dial_next(t), None, "upgrade slots exhausted");
    // Without a lower peer to replace, no upgrade at all.
    let options = PeerManagerOptions {
        max_connected: 1,
        max_connected_upgrade: 1,
        peer_scores: [(id(1), 5)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.add(t, addr(2)).unwrap();
    assert_eq!(pm.try_dial_next(t), None);
}

#[test]
fn peer_manager_try_dial_next_upgrade_reserves_peer() {
    let options = PeerManagerOptions {
        max_connected: 1,
        max_connected_upgrade: 2,
        peer_scores: [(id(1), 1), (id(2), 2), (id(3), 3)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.add(t, addr(2)).unwrap();
    pm.add(t, addr(3)).unwrap();
    assert_eq!(pm.try_dial_next(t), Some(addr(3)));
    assert_eq!(
        pm.try_dial_next(t),
        None,
        "peer 1 is already claimed by the upgrade to 3"
    );
}

#[test]
fn peer_manager_try_dial_next_dialing_connected() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr2(1, "10.1.0.2")).unwrap();
    assert!(pm.try_dial_next(t).is_some());
    assert_eq!(
        pm.try_dial_next(t),
        None,
        "no second address of a dialing peer"
    );
    pm.add(t, addr(2)).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    assert_eq!(
        pm.try_dial_next(t),
        None,
        "no address of an inbound-connected peer"
    );
    pm.add(t, addr(3)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    pm.dialed(t, &a, None).unwrap();
    pm.add(t, addr2(3, "10.3.0.2")).unwrap();
    assert_eq!(
        pm.try_dial_next(t),
        None,
        "no address of an outbound-connected peer"
    );
}

#[test]
fn peer_manager_try_dial_next_multiple() {
    let options = PeerManagerOptions {
        min_retry_time: ms(10),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    let all = [addr(1), addr2(1, "10.1.0.2"), addr(2), addr2(2, "10.2.0.2")];
    for a in &all {
        pm.add(t, a.clone()).unwrap();
    }
    let mut seen = Vec::new();
    let mut rng = rng();
    while let Some(a) = pm.try_dial_next(t) {
        pm.dial_failed(t, &a, &mut rng);
        seen.push(a);
    }
    seen.sort_by_key(ToString::to_string);
    let mut expected = all.to_vec();
    expected.sort_by_key(ToString::to_string);
    assert_eq!(seen, expected, "each address dispensed exactly once");
}

#[test]
fn peer_manager_dial_failed() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    let mut rng = rng();
    pm.add(t, addr(1)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    // An address of the peer we never knew only ends the dial.
    pm.dial_failed(t, &addr2(1, "10.1.9.9"), &mut rng);
    assert!(!pm.is_dialing(id(1)));
    assert_eq!(pm.score(id(1)), Some(0));
    pm.dial_failed(t, &a, &mut rng);
    pm.dial_failed(t, &a, &mut rng);
    pm.dial_failed(t, &addr(9), &mut rng);
    assert_eq!(pm.score(id(1)), Some(-2));
}

#[test]
fn peer_manager_dial_failed_unreserve_peer() {
    let options = PeerManagerOptions {
        max_connected: 1,
        max_connected_upgrade: 2,
        peer_scores: [(id(1), 1), (id(2), 2), (id(3), 3)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.add(t, addr(2)).unwrap();
    pm.add(t, addr(3)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    assert_eq!(a, addr(3));
    assert_eq!(pm.try_dial_next(t), None);
    pm.dial_failed(t, &a, &mut rng());
    assert_eq!(
        pm.try_dial_next(t),
        Some(addr(2)),
        "claim on peer 1 released"
    );
}

#[test]
fn peer_manager_dialed_connected() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    pm.dialed(t, &addr(1), None).unwrap();
    assert_eq!(
        pm.dialed(t, &addr(1), None),
        Err(PeerManagerError::AlreadyConnected(id(1)))
    );
    pm.add(t, addr(2)).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    assert_eq!(
        pm.dialed(t, &addr(2), None),
        Err(PeerManagerError::AlreadyConnected(id(2)))
    );
}

#[test]
fn peer_manager_dialed_self() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    let own = NodeAddress::parse(&format!("{}@10.0.0.9:1", id(SELF))).unwrap();
    assert_eq!(
        pm.add(t, own.clone()),
        Err(PeerManagerError::SelfPeer(id(SELF)))
    );
    assert_eq!(
        pm.dialed(t, &own, None),
        Err(PeerManagerError::SelfPeer(id(SELF)))
    );
}

#[test]
fn peer_manager_dialed_max_connected() {
    let options = PeerManagerOptions {
        max_connected: 1,
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr(2)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    pm.accepted(t, if a == addr(1) { id(2) } else { id(1) }, None)
        .unwrap();
    assert_eq!(
        pm.dialed(t, &a, None),
        Err(PeerManagerError::Full { limit: 1 })
    );
}

#[test]
fn peer_manager_dialed_max_connected_upgrade() {
    let options = PeerManagerOptions {
        max_connected: 2,
        max_connected_upgrade: 1,
        peer_scores: [(id(3), 3), (id(4), 4)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    pm.add(t, addr(3)).unwrap();
    pm.add(t, addr(4)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    assert_eq!(a, addr(4));
    pm.dialed(t, &a, None).unwrap();
    // Upgrade slot used; another completing dial without a claim is refused.
    assert_eq!(
        pm.dialed(t, &addr(3), None),
        Err(PeerManagerError::Full { limit: 2 })
    );
}

#[test]
fn peer_manager_dialed_unknown() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    assert_eq!(
        pm.dialed(t, &addr(1), None),
        Err(PeerManagerError::UnknownPeer(id(1)))
    );
}

#[test]
fn peer_manager_dialed_upgrade() {
    let options = PeerManagerOptions {
        max_connected: 1,
        max_connected_upgrade: 2,
        peer_scores: [(id(2), 2), (id(3), 3)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.add(t, addr(2)).unwrap();
    pm.add(t, addr(3)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    assert_eq!(a, addr(3));
    pm.dialed(t, &a, None).unwrap();
    // Peer 1 is being evicted: 2 cannot claim it for another upgrade.
    assert_eq!(pm.try_dial_next(t), None);
    assert_eq!(pm.try_evict_next(), Some(id(1)));
}

#[test]
fn peer_manager_dialed_upgrade_even_lower() {
    let options = PeerManagerOptions {
        max_connected: 2,
        max_connected_upgrade: 1,
        peer_scores: [(id(1), 2), (id(2), 3), (id(3), 4), (id(4), 1)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    pm.add(t, addr(3)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    assert_eq!(a, addr(3), "claims peer 1 (score 2)");
    // Meanwhile peer 2 leaves and a lower peer 4 (score 1) connects.
    pm.disconnected(t, id(2));
    pm.accepted(t, id(4), None).unwrap();
    pm.dialed(t, &a, None).unwrap();
    assert_eq!(pm.try_evict_next(), Some(id(4)), "the even lower peer goes");
}

#[test]
fn peer_manager_dialed_upgrade_no_evict() {
    let options = PeerManagerOptions {
        max_connected: 2,
        max_connected_upgrade: 1,
        peer_scores: [(id(1), 1), (id(2), 2), (id(3), 3)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    pm.add(t, addr(3)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    pm.disconnected(t, id(2));
    pm.dialed(t, &a, None).unwrap();
    assert_eq!(pm.try_evict_next(), None, "capacity freed meanwhile");
}

#[test]
fn peer_manager_accepted() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    assert_eq!(
        pm.accepted(t, id(SELF), None),
        Err(PeerManagerError::SelfPeer(id(SELF)))
    );
    pm.add(t, addr(1)).unwrap();
    pm.accepted(t, id(1), None).unwrap();
    assert_eq!(pm.connection(id(1)), Some(Direction::Inbound));
    assert_eq!(
        pm.accepted(t, id(1), None),
        Err(PeerManagerError::AlreadyConnected(id(1)))
    );
    pm.accepted(t, id(2), None).unwrap();
    assert!(
        pm.ranked_peers().any(|p| p == id(2)),
        "unknown peer registered"
    );
    pm.add(t, addr(3)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    assert_eq!(a, addr(3));
    pm.accepted(t, id(3), None).unwrap();
    assert_eq!(
        pm.dialed(t, &a, None),
        Err(PeerManagerError::AlreadyConnected(id(3)))
    );
    pm.add(t, addr(4)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    pm.dialed(t, &a, None).unwrap();
    assert_eq!(
        pm.accepted(t, id(4), None),
        Err(PeerManagerError::AlreadyConnected(id(4)))
    );
}

#[test]
fn peer_manager_accepted_max_connected() {
    let options = PeerManagerOptions {
        max_connected: 2,
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    assert_eq!(
        pm.accepted(t, id(3), None),
        Err(PeerManagerError::Full { limit: 2 })
    );
}

#[test]
fn peer_manager_accepted_max_connected_upgrade() {
    let options = PeerManagerOptions {
        max_connected: 1,
        max_connected_upgrade: 1,
        peer_scores: [(id(2), 1), (id(3), 2), (id(4), 3)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    assert_eq!(
        pm.accepted(t, id(5), None),
        Err(PeerManagerError::Full { limit: 1 }),
        "no upgrade by an equal score"
    );
    pm.accepted(t, id(3), None).unwrap();
    assert_eq!(
        pm.accepted(t, id(4), None),
        Err(PeerManagerError::Full { limit: 2 }),
        "upgrade slots full"
    );
}

#[test]
fn peer_manager_accepted_upgrade() {
    let options = PeerManagerOptions {
        max_connected: 1,
        max_connected_upgrade: 2,
        peer_scores: [(id(2), 1), (id(3), 1)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    assert_eq!(pm.try_evict_next(), Some(id(1)));
    assert_eq!(
        pm.accepted(t, id(3), None),
        Err(PeerManagerError::Full { limit: 1 }),
        "equal score never upgrades"
    );
}

#[test]
fn peer_manager_accepted_upgrade_dialing() {
    let options = PeerManagerOptions {
        max_connected: 1,
        max_connected_upgrade: 2,
        peer_scores: [(id(2), 1)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.add(t, addr(2)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    assert_eq!(a, addr(2));
    pm.accepted(t, id(2), None).unwrap();
    assert_eq!(
        pm.dialed(t, &a, None),
        Err(PeerManagerError::AlreadyConnected(id(2)))
    );
    assert_eq!(pm.try_evict_next(), Some(id(1)));
}

#[test]
fn peer_manager_ready_and_channels() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    let sub = pm.subscribe();
    pm.ready(id(1), vec![0x20]);
    assert_eq!(pm.poll_update(sub), Ok(None), "unconnected: nothing");
    pm.accepted(t, id(1), None).unwrap();
    pm.ready(id(1), vec![0x20, 0x30]);
    assert!(pm.is_ready(id(1)));
    assert_eq!(
        pm.poll_update(sub),
        Ok(Some(PeerUpdate {
            node_id: id(1),
            status: PeerStatus::Up,
            channels: vec![0x20, 0x30]
        }))
    );
}

#[test]
fn peer_manager_evict_next_and_wake_on_error() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.accepted(t, id(1), None).unwrap();
    assert_eq!(pm.try_evict_next(), None);
    pm.errored(id(1));
    assert_eq!(pm.try_evict_next(), Some(id(1)));
    assert_eq!(pm.try_evict_next(), None, "not again while evicting");
    pm.errored(id(1));
    assert_eq!(pm.try_evict_next(), None, "still evicting");
}

#[test]
fn peer_manager_evict_next_wake_on_upgrade_dialed_and_accepted() {
    let options = PeerManagerOptions {
        max_connected: 1,
        max_connected_upgrade: 1,
        peer_scores: [(id(2), 2), (id(3), 3)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options.clone());
    pm.accepted(t, id(1), None).unwrap();
    pm.add(t, addr(2)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    assert_eq!(pm.try_evict_next(), None);
    pm.dialed(t, &a, None).unwrap();
    assert_eq!(pm.try_evict_next(), Some(id(1)));
    let (mut pm, t) = manager(options);
    pm.accepted(t, id(1), None).unwrap();
    pm.accepted(t, id(3), None).unwrap();
    assert_eq!(pm.try_evict_next(), Some(id(1)));
}

#[test]
fn peer_manager_disconnected() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    let sub = pm.subscribe();
    pm.disconnected(t, id(9));
    assert_eq!(pm.poll_store_op(), None, "unknown peer: no-op");
    pm.accepted(t, id(1), None).unwrap();
    pm.disconnected(t, id(1));
    assert_eq!(pm.poll_update(sub), Ok(None), "never ready: no update");
    pm.accepted(t, id(1), None).unwrap();
    pm.ready(id(1), vec![]);
    pm.disconnected(t, id(1));
    assert_eq!(pm.poll_update(sub).unwrap().unwrap().status, PeerStatus::Up);
    assert_eq!(
        pm.poll_update(sub).unwrap().unwrap().status,
        PeerStatus::Down
    );
    pm.add(t, addr(2)).unwrap();
    assert_eq!(pm.try_dial_next(t), Some(addr(2)));
    pm.disconnected(t, id(2));
    assert!(pm.is_dialing(id(2)), "a dialing peer stays dialing");
}

#[test]
fn peer_manager_errored() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.errored(id(1));
    pm.add(t, addr(2)).unwrap();
    pm.errored(id(2));
    pm.accepted(t, id(1), None).unwrap();
    pm.accepted(t, id(2), None).unwrap();
    assert_eq!(
        pm.try_evict_next(),
        None,
        "errors before connecting are not remembered"
    );
    pm.errored(id(2));
    assert_eq!(pm.try_evict_next(), Some(id(2)));
}

#[test]
fn peer_manager_subscribe() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    let sub = pm.subscribe();
    let status = |pm: &mut PeerManager| pm.poll_update(sub).unwrap().map(|u| (u.node_id, u.status));
    pm.accepted(t, id(1), None).unwrap();
    pm.ready(id(1), vec![]);
    pm.disconnected(t, id(1));
    assert_eq!(status(&mut pm), Some((id(1), PeerStatus::Up)));
    assert_eq!(status(&mut pm), Some((id(1), PeerStatus::Down)));
    pm.add(t, addr(2)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    pm.dialed(t, &a, None).unwrap();
    pm.ready(id(2), vec![]);
    pm.errored(id(2));
    assert_eq!(pm.try_evict_next(), Some(id(2)));
    pm.disconnected(t, id(2));
    assert_eq!(status(&mut pm), Some((id(2), PeerStatus::Up)));
    assert_eq!(status(&mut pm), Some((id(2), PeerStatus::Down)));
    pm.add(t, addr(3)).unwrap();
    let a = pm.try_dial_next(t).unwrap();
    pm.dial_failed(t, &a, &mut rng());
    assert_eq!(status(&mut pm), None, "dial failures are not broadcast");
}

#[test]
fn peer_manager_subscribe_close_and_broadcast() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    let a = pm.subscribe();
    let b = pm.subscribe();
    let c = pm.subscribe();
    pm.unsubscribe(c);
    pm.accepted(t, id(1), None).unwrap();
    pm.ready(id(1), vec![]);
    for s in [a, b] {
        assert_eq!(pm.poll_update(s).unwrap().unwrap().node_id, id(1));
    }
    assert_eq!(pm.poll_update(c), Err(SubscriptionClosed::Unknown));
}

/// Improvement: Go stalls every broadcast on a slow subscriber; ours closes only that one,
/// after it has had every update that fitted, in order.
#[test]
fn peer_manager_slow_subscriber_is_closed_with_reason_others_get_everything() {
    let options = PeerManagerOptions {
        subscription_capacity: 2,
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    let slow = pm.subscribe();
    let fast = pm.subscribe();
    for n in 1..=3 {
        pm.accepted(t, id(n), None).unwrap();
        pm.ready(id(n), vec![]);
        assert_eq!(pm.poll_update(fast).unwrap().unwrap().node_id, id(n));
    }
    assert_eq!(pm.poll_update(slow).unwrap().unwrap().node_id, id(1));
    assert_eq!(pm.poll_update(slow).unwrap().unwrap().node_id, id(2));
    assert_eq!(
        pm.poll_update(slow),
        Err(SubscriptionClosed::Lagged { capacity: 2 })
    );
}

#[test]
fn peer_manager_advertise() {
    let (mut pm, t) = manager(PeerManagerOptions {
        private_peers: [id(4)].into(),
        peer_scores: [(id(1), 3), (id(2), 2), (id(3), 1)].into(),
        ..Default::default()
    });
    for n in 1..=4 {
        pm.add(t, addr(n)).unwrap();
    }
    pm.add(t, addr2(1, "10.1.0.2")).unwrap();
    let mut rng = rng();
    let got = pm.advertise(id(1), 100, &mut rng);
    assert_eq!(
        got,
        vec![addr(2), addr(3)],
        "all but the requester's and private ones"
    );
    assert!(pm.advertise(id(1), 0, &mut rng).is_empty());
    // With limit 2 among peers 1..3 (requester 9), the lowest-ranked rarely appears.
    let (mut pm, t) = manager(PeerManagerOptions {
        peer_scores: [(id(1), 3), (id(2), 2), (id(3), 1)].into(),
        ..Default::default()
    });
    for n in 1..=3 {
        pm.add(t, addr(n)).unwrap();
    }
    let lowest = (0..100)
        .filter(|_| pm.advertise(id(9), 2, &mut rng).contains(&addr(3)))
        .count();
    assert!(
        lowest <= 20,
        "lowest-ranked peer advertised {lowest} times of 100"
    );
    assert!(lowest > 0, "but not never");
}

#[test]
fn peer_manager_advertise_self() {
    let own = NodeAddress::parse(&format!("{}@1.2.3.4:26656", id(SELF))).unwrap();
    let (mut pm, t) = manager(PeerManagerOptions {
        self_address: Some(own.clone()),
        ..Default::default()
    });
    pm.add(t, addr(1)).unwrap();
    assert_eq!(pm.advertise(id(9), 10, &mut rng()), vec![own, addr(1)]);
}

#[test]
fn peer_scoring() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    for n in 1..=5 {
        pm.report(id(1), ScoreReport::Good).unwrap();
        assert_eq!(pm.score(id(1)), Some(n));
    }
    for n in (0..5).rev() {
        pm.report(id(1), ScoreReport::Bad).unwrap();
        assert_eq!(pm.score(id(1)), Some(n));
    }
    assert_eq!(
        pm.report(id(2), ScoreReport::Good),
        Err(PeerManagerError::UnknownPeer(id(2)))
    );
}

#[test]
fn peer_ranking() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr(2)).unwrap();
    for _ in 0..100 {
        pm.report(id(2), ScoreReport::Good).unwrap();
        pm.report(id(1), ScoreReport::Bad).unwrap();
    }
    assert_eq!(pm.ranked_peers().collect::<Vec<_>>(), vec![id(2), id(1)]);
    for _ in 0..200 {
        pm.report(id(2), ScoreReport::Bad).unwrap();
    }
    assert_eq!(pm.ranked_peers().collect::<Vec<_>>(), vec![id(1), id(2)]);
}

/// Improvement: v0.35.9 does not persist the mutable score; ours survives a restart.
#[test]
fn peer_manager_mutable_score_survives_restart() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    for _ in 0..7 {
        pm.report(id(1), ScoreReport::Good).unwrap();
    }
    let mut db = std::collections::BTreeMap::new();
    while let Some(op) = pm.poll_store_op() {
        match op {
            StoreOp::Upsert(r) => {
                db.insert(r.node_id, r.encode().unwrap());
            }
            StoreOp::Delete(id) => {
                db.remove(&id);
            }
        }
    }
    let records = db.values().map(|b| PeerRecord::decode(b).unwrap());
    let pm2 = PeerManager::from_records(
        id(SELF),
        PeerManagerOptions::default(),
        anchor(t),
        t,
        records,
    )
    .unwrap();
    assert_eq!(pm2.score(id(1)), Some(7));
    assert_eq!(pm2.records(), pm.records());
}

/// Improvement: Go returns `(false, nil)` for an inactive peer's new address; we refuse
/// with a typed error.
#[test]
fn peer_manager_inactive_peer_refuses_new_addresses_with_typed_error() {
    let (mut pm, t) = manager(PeerManagerOptions::default());
    pm.add(t, addr(1)).unwrap();
    pm.inactivate(id(1)).unwrap();
    assert_eq!(pm.add(t, addr(1)), Ok(false));
    assert_eq!(
        pm.add(t, addr2(1, "10.1.0.2")),
        Err(PeerManagerError::InactivePeer(id(1)))
    );
}

/// Improvement: Go has no per-subnet cap; one /16 cannot fill our table.
#[test]
fn peer_manager_ip_group_caps_connected_and_stored_peers() {
    let options = PeerManagerOptions {
        max_connected_per_ip_group: 2,
        max_stored_per_ip_group: 3,
        persistent_peers: [id(9)].into(),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    for n in 1..=3 {
        pm.add(t, addr2(n, &format!("10.7.{n}.1"))).unwrap();
    }
    assert!(matches!(
        pm.add(t, addr2(4, "10.7.4.1")),
        Err(PeerManagerError::IpGroupStoredFull { limit: 3, .. })
    ));
    pm.add(t, addr2(9, "10.7.9.1")).unwrap();
    let ip = |s: &str| Some(s.parse().unwrap());
    pm.accepted(t, id(1), ip("10.7.1.1")).unwrap();
    pm.accepted(t, id(2), ip("10.7.2.1")).unwrap();
    assert!(matches!(
        pm.accepted(t, id(3), ip("10.7.3.1")),
        Err(PeerManagerError::IpGroupConnectedFull { limit: 2, .. })
    ));
    assert_eq!(
        pm.try_dial_next(t),
        Some(addr2(9, "10.7.9.1")),
        "persistent exempt"
    );
    pm.accepted(t, id(5), ip("10.8.0.1")).unwrap();
}

#[test]
fn last_dialed() {
    let options = PeerManagerOptions {
        min_retry_time: ms(1),
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    let anchor = anchor(t);
    assert_eq!(pm.last_dialed(id(1)), None, "unknown");
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr2(1, "10.1.0.2")).unwrap();
    assert_eq!(pm.last_dialed(id(1)), None, "never dialed");
    let a = pm.try_dial_next(t).unwrap();
    pm.dial_failed(t + ms(5), &a, &mut rng());
    assert_eq!(
        pm.last_dialed(id(1)),
        Some((anchor.timestamp(t + ms(5)), false))
    );
    let b = pm.try_dial_next(t + ms(5)).unwrap();
    assert_ne!(a, b);
    pm.dialed(t + ms(5), &b, None).unwrap();
    assert_eq!(
        pm.last_dialed(id(1)),
        Some((anchor.timestamp(t + ms(5)), true)),
        "a tie counts as success"
    );
}

/// v0.35.9 lets several dials be in flight at `max_outgoing - 1` outgoing connections, so
/// they can all complete and exceed the cap; we count dials in flight and refuse the rest.
#[test]
fn peer_manager_outgoing_cap_counts_dials_in_flight() {
    let options = PeerManagerOptions {
        max_outgoing_connections: 1,
        ..Default::default()
    };
    let (mut pm, t) = manager(options);
    pm.add(t, addr(1)).unwrap();
    pm.add(t, addr(2)).unwrap();
    assert!(pm.try_dial_next(t).is_some());
    assert_eq!(pm.try_dial_next(t), None);
    pm.dialed(t, &addr(1), None).unwrap();
    assert_eq!(
        pm.dialed(t, &addr(2), None),
        Err(PeerManagerError::OutgoingFull { limit: 1 })
    );
}

/// Improvement over v0.35: a peer that keeps closing on us soon after the handshake (a seed
/// answering one PEX request, a full node) waits twice as long before each redial; one
/// connection that lasts resets the wait. v0.35 redials it every cooldown for ever.
#[test]
fn brief_connections_in_a_row_double_the_redial_cooldown() {
    let options = PeerManagerOptions {
        disconnect_cooldown_period: ms(2_000),
        brief_connection_period: ms(10_000),
        max_retry_time: ms(60_000),
        min_retry_time: ms(250),
        ..Default::default()
    };
    let (mut pm, t0) = manager(options);
    pm.add(t0, addr(1)).unwrap();
    // Another peer stays connected meanwhile (a node alone waits 30 s at most).
    pm.accepted(t0, id(2), None).unwrap();
    let mut now = t0;
    // Each visit lasts 1 s; the wait after it is 2, 4, 8, 16, 32 s, then the 60 s cap.
    for expected_wait in [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000] {
        let dialed = pm.try_dial_next(now).expect("the peer is due");
        pm.dialed(now, &dialed, None).unwrap();
        now += ms(1_000);
        pm.disconnected(now, id(1));
        assert_eq!(pm.try_dial_next(now + ms(expected_wait - 1)), None);
        assert_eq!(pm.poll_timeout(), Some(now + ms(expected_wait)));
        now += ms(expected_wait);
    }
    // A connection that lasts past the brief period brings the plain cooldown back.
    let dialed = pm.try_dial_next(now).expect("the peer is due");
    pm.dialed(now, &dialed, None).unwrap();
    now += ms(10_000);
    pm.disconnected(now, id(1));
    assert_eq!(pm.try_dial_next(now + ms(1_999)), None);
    assert_eq!(pm.try_dial_next(now + ms(2_000)), Some(addr(1)));
}

fn brief_options() -> PeerManagerOptions {
    PeerManagerOptions {
        disconnect_cooldown_period: ms(2_000),
        brief_connection_period: ms(10_000),
        isolated_redial_period: ms(30_000),
        max_retry_time: ms(30 * 60_000),
        min_retry_time: ms(250),
        ..Default::default()
    }
}

/// Dials peer 1, holds the connection `held`, lets it end; returns when it ended.
fn brief_visit(pm: &mut PeerManager, at: Instant, held: Duration) -> Instant {
    let dialed = pm.try_dial_next(at).expect("the peer is due");
    pm.dialed(at, &dialed, None).unwrap();
    pm.disconnected(at + held, id(1));
    at + held
}

/// Brief visits push a seed further away only while the node has other connections: left
/// with none, it falls back to the seed within 30 s, as a CometBFT node without peers does.
#[test]
fn a_node_left_with_no_connection_revisits_its_seed_within_thirty_seconds() {
    let (mut pm, t0) = manager(brief_options());
    pm.add(t0, addr(1)).unwrap();
    // Peer 2 dialed us and stays (it has no address, so it is never dialed).
    pm.accepted(t0, id(2), None).unwrap();
    let mut now = t0;
    for _ in 0..8 {
        brief_visit(&mut pm, now, ms(500));
        now = pm.poll_timeout().expect("the next visit");
    }
    // The ninth brief visit in a row: 2 s × 2^8.
    let last = brief_visit(&mut pm, now, ms(500));
    assert_eq!(pm.poll_timeout(), Some(last + ms(512_000)));
    pm.disconnected(last, id(2));
    assert_eq!(pm.poll_timeout(), Some(last + ms(30_000)));
    // Connected again before that: the seed waits its full cooldown once more.
    pm.accepted(last + ms(1_000), id(2), None).unwrap();
    assert_eq!(pm.poll_timeout(), Some(last + ms(512_000)));
    pm.disconnected(last + ms(2_000), id(2));
    assert_eq!(pm.try_dial_next(last + ms(29_999)), None);
    assert_eq!(pm.try_dial_next(last + ms(30_000)), Some(addr(1)));
}

/// A seed ends every crawl itself: its visits are brief by its own doing, so they do not
/// push the peers it crawls further away than its re-crawl interval.
#[test]
fn a_seed_recrawls_at_its_interval_however_brief_its_visits() {
    let (mut pm, t0) = manager(brief_options());
    pm.use_seed_redials(ms(120_000));
    pm.add(t0, addr(1)).unwrap();
    let mut now = t0;
    for _ in 0..6 {
        let ended = brief_visit(&mut pm, now, ms(500));
        assert_eq!(pm.poll_timeout(), Some(ended + ms(120_000)));
        now = ended + ms(120_000);
    }
}
