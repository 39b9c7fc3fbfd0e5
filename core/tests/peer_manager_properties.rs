#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Quickcheck properties of the peer manager over random operation sequences: the
//! invariants issue #6 lists hold after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::peer_manager::{
    ClockAnchor, PeerManager, PeerManagerOptions, PeerRecord, ScoreReport, StoreOp,
};
use tmp2p_core::NodeId;

const PEERS: u8 = 10;
const PERSISTENT: u8 = 1;
const PRIVATE: u8 = 2;
const UNCONDITIONAL: u8 = 3;
const SELF: u8 = 0xee;

#[derive(Debug, Clone)]
enum Op {
    Add { peer: u8, group: u8 },
    DialNext,
    DialFailed { pick: u8 },
    Dialed { pick: u8 },
    Accepted { peer: u8, group: u8 },
    Ready { peer: u8 },
    Disconnected { peer: u8 },
    Errored { peer: u8 },
    EvictNext,
    Report { peer: u8, good: bool },
    Advance { ms: u16 },
    Advertise { to: u8, limit: u8 },
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let peer = u8::arbitrary(g) % PEERS + 1;
        let group = u8::arbitrary(g) % 3;
        match u8::arbitrary(g) % 13 {
            0 | 1 => Op::Add { peer, group },
            2 | 3 => Op::DialNext,
            4 => Op::DialFailed {
                pick: u8::arbitrary(g),
            },
            5 => Op::Dialed {
                pick: u8::arbitrary(g),
            },
            6 => Op::Accepted { peer, group },
            7 => Op::Ready { peer },
            8 => Op::Disconnected { peer },
            9 => Op::Errored { peer },
            10 => Op::EvictNext,
            11 => Op::Report {
                peer,
                good: bool::arbitrary(g),
            },
            _ if bool::arbitrary(g) => Op::Advance {
                ms: u16::arbitrary(g) % 1500,
            },
            _ => Op::Advertise {
                to: peer,
                limit: u8::arbitrary(g) % 6,
            },
        }
    }
}

fn id(n: u8) -> NodeId {
    NodeId::from_bytes([n; 20])
}

fn address(peer: u8, group: u8) -> NodeAddress {
    NodeAddress::parse(&format!("{}@10.{group}.{peer}.1:26656", id(peer))).unwrap()
}

fn options() -> PeerManagerOptions {
    PeerManagerOptions {
        persistent_peers: [id(PERSISTENT)].into(),
        private_peers: [id(PRIVATE)].into(),
        unconditional_peers: [id(UNCONDITIONAL)].into(),
        peer_scores: [(id(4), 10)].into(),
        max_peers: 8,
        max_connected: 4,
        max_connected_upgrade: 2,
        max_outgoing_connections: 3,
        min_retry_time: Duration::from_millis(100),
        max_retry_time: Duration::from_millis(1000),
        max_retry_time_persistent: Duration::from_millis(500),
        retry_time_jitter: Duration::from_millis(50),
        disconnect_cooldown_period: Duration::from_millis(200),
        max_connected_per_ip_group: 2,
        max_stored_per_ip_group: 4,
        subscription_capacity: 4,
        ..PeerManagerOptions::default()
    }
}

#[allow(clippy::disallowed_methods)] // tests need one real Instant to start virtual time
fn t0() -> Instant {
    Instant::now()
}

fn apply_store_ops(pm: &mut PeerManager, db: &mut BTreeMap<NodeId, Vec<u8>>) {
    while let Some(op) = pm.poll_store_op() {
        match op {
            StoreOp::Upsert(record) => {
                db.insert(record.node_id, record.encode().unwrap());
            }
            StoreOp::Delete(id) => {
                db.remove(&id);
            }
        }
    }
}

/// Runs `ops`, checking every invariant after each; `Err` names the broken one.
fn run(ops: &[Op]) -> Result<(), String> {
    let start = t0();
    let anchor = ClockAnchor {
        instant: start,
        since_unix_epoch: Duration::from_secs(1_700_000_000),
    };
    let opts = options();
    let mut pm = PeerManager::new(id(SELF), opts.clone(), anchor).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(ops.len() as u64);
    let mut now = start;
    let mut dials: Vec<NodeAddress> = Vec::new();
    // connected peer -> the /16 group (second octet) it connected from, if capped
    let mut groups: BTreeMap<NodeId, u8> = BTreeMap::new();
    let mut db = BTreeMap::new();
    let exempt = |p: NodeId| p == id(PERSISTENT) || p == id(UNCONDITIONAL);
    for op in ops {
        match *op {
            Op::Add { peer, group } => {
                let _ = pm.add(now, address(peer, group));
            }
            Op::DialNext => {
                if let Some(a) = pm.try_dial_next(now) {
                    let p = a.node_id;
                    if pm.connection(p).is_some() || dials.iter().any(|d| d.node_id == p) {
                        return Err(format!("dialed {p}, which is connected or dialing"));
                    }
                    dials.push(a);
                }
            }
            Op::DialFailed { pick } if !dials.is_empty() => {
                let a = dials.remove(usize::from(pick) % dials.len());
                pm.dial_failed(now, &a, &mut rng);
            }
            Op::Dialed { pick } if !dials.is_empty() => {
                let a = dials.remove(usize::from(pick) % dials.len());
                let ip: IpAddr = a.hostname.parse().unwrap();
                if pm.dialed(now, &a, Some(ip)).is_ok() && !exempt(a.node_id) {
                    let IpAddr::V4(v4) = ip else { unreachable!() };
                    groups.insert(a.node_id, v4.octets()[1]);
                }
            }
            Op::DialFailed { .. } | Op::Dialed { .. } => {}
            Op::Accepted { peer, group } => {
                let ip = IpAddr::from([10, group, peer, 2]);
                if pm.accepted(now, id(peer), Some(ip)).is_ok() && !exempt(id(peer)) {
                    groups.insert(id(peer), group);
                }
            }
            Op::Ready { peer } => pm.ready(id(peer), vec![0x20]),
            Op::Disconnected { peer } => {
                pm.disconnected(now, id(peer));
                groups.remove(&id(peer));
            }
            Op::Errored { peer } => pm.errored(id(peer)),
            Op::EvictNext => {
                if let Some(p) = pm.try_evict_next() {
                    if pm.connection(p).is_none() {
                        return Err(format!("evicting {p}, which is not connected"));
                    }
                }
            }
            Op::Report { peer, good } => {
                let report = if good {
                    ScoreReport::Good
                } else {
                    ScoreReport::Bad
                };
                let _ = pm.report(id(peer), report);
            }
            Op::Advance { ms } => now += Duration::from_millis(u64::from(ms)),
            Op::Advertise { to, limit } => {
                for a in pm.advertise(id(to), usize::from(limit), &mut rng) {
                    if a.node_id == id(to) || a.node_id == id(PRIVATE) {
                        return Err(format!("advertised {a} to {}", id(to)));
                    }
                }
            }
        }
        check(&pm, &opts, &groups, &dials)?;
        check_persistent_redial(&pm, &opts, now, &dials)?;
        apply_store_ops(&mut pm, &mut db);
    }
    let records = db.values().map(|b| PeerRecord::decode(b).unwrap());
    let rebuilt = PeerManager::from_records(id(SELF), opts, anchor, now, records).unwrap();
    if rebuilt.records() != pm.records() {
        return Err("replaying the store operations gives a different manager".into());
    }
    Ok(())
}

fn check(
    pm: &PeerManager,
    opts: &PeerManagerOptions,
    groups: &BTreeMap<NodeId, u8>,
    dials: &[NodeAddress],
) -> Result<(), String> {
    let max = usize::from(opts.max_connected) + usize::from(opts.max_connected_upgrade);
    if pm.connected_count() > max {
        return Err(format!("{} connected, limit {max}", pm.connected_count()));
    }
    if pm.outgoing_count() > usize::from(opts.max_outgoing_connections) {
        return Err(format!("{} outgoing", pm.outgoing_count()));
    }
    let mut per_group: BTreeMap<u8, u16> = BTreeMap::new();
    for (p, g) in groups {
        if pm.connection(*p).is_some() {
            *per_group.entry(*g).or_default() += 1;
        }
    }
    if let Some((g, n)) = per_group
        .iter()
        .find(|(_, n)| **n > opts.max_connected_per_ip_group)
    {
        return Err(format!("{n} connected peers in group 10.{g}"));
    }
    let mut stored: BTreeMap<String, BTreeSet<NodeId>> = BTreeMap::new();
    for p in pm.ranked_peers() {
        if p == id(PERSISTENT) || p == id(UNCONDITIONAL) {
            continue;
        }
        for a in pm.addresses(p) {
            let octets: Vec<&str> = a.hostname.split('.').collect();
            stored.entry(octets[1].to_owned()).or_default().insert(p);
        }
    }
    if let Some((g, s)) = stored
        .iter()
        .find(|(_, s)| s.len() > usize::from(opts.max_stored_per_ip_group))
    {
        return Err(format!("{} stored peers in group 10.{g}", s.len()));
    }
    if pm.dialing_count() != dials.len() {
        return Err(format!(
            "{} dialing, {} dials out",
            pm.dialing_count(),
            dials.len()
        ));
    }
    Ok(())
}

/// A persistent peer that is neither connected nor dialing is offered for dialing again
/// no later than `max(persistent retry cap, cooldown)` from now, when there is room.
fn check_persistent_redial(
    pm: &PeerManager,
    opts: &PeerManagerOptions,
    now: Instant,
    dials: &[NodeAddress],
) -> Result<(), String> {
    let p = id(PERSISTENT);
    let room = pm.connected_count() < usize::from(opts.max_connected)
        && pm.connected_count() + dials.len()
            < usize::from(opts.max_connected + opts.max_connected_upgrade)
        && pm.outgoing_count() + dials.len() < usize::from(opts.max_outgoing_connections);
    if pm.connection(p).is_some() || pm.is_dialing(p) || pm.addresses(p).is_empty() || !room {
        return Ok(());
    }
    let bound = now
        + opts
            .max_retry_time_persistent
            .max(opts.disconnect_cooldown_period);
    let mut probe = pm.clone();
    match probe.try_dial_next(bound) {
        Some(a) if a.node_id == p => Ok(()),
        other => Err(format!(
            "persistent peer not offered by {bound:?}: got {other:?}"
        )),
    }
}

#[test]
fn peer_manager_invariants_hold_over_random_operation_sequences() {
    fn prop(ops: Vec<Op>) -> TestResult {
        match run(&ops) {
            Ok(()) => TestResult::passed(),
            Err(e) => TestResult::error(format!("invariant broken: {e}")),
        }
    }
    QuickCheck::new()
        .rng(Gen::new(120))
        .tests(300)
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}
