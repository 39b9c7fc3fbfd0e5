#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The redb peer store through a real database file: round trips across reopen, a
//! PeerManager rebuilt from what its store operations wrote, skipped corrupt values,
//! all-or-nothing batches and typed open errors.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use redb::{Database, TableDefinition};
use tmp2p_core::address::NodeAddress;
use tmp2p_core::peer_manager::{
    AddressRecord, ClockAnchor, PeerManager, PeerManagerOptions, PeerRecord, RecordError,
    ScoreReport, StoreOp, Timestamp,
};
use tmp2p_core::NodeId;
use tmp2p_store::{MemoryPeerStore, PeerStore, RedbPeerStore, SkipReason, StoreError, PEER_TABLE};

fn id(n: u8) -> NodeId {
    NodeId::from_bytes([n; 20])
}

fn addr(n: u8, host: &str) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{host}:26656", id(n))).unwrap()
}

fn record(n: u8, score: i16, hosts: &[&str]) -> PeerRecord {
    PeerRecord {
        node_id: id(n),
        addresses: hosts
            .iter()
            .enumerate()
            .map(|(i, h)| AddressRecord {
                address: addr(n, h),
                last_dial_success: Some(Timestamp(1_700_000_000_000_000_000 + i as u64)),
                last_dial_failure: None,
                dial_failures: u32::from(n),
                retry_jitter: Duration::from_millis(u64::from(n) * 7),
            })
            .collect(),
        last_connected: Some(Timestamp(42)),
        last_disconnected: None,
        inactive: n.is_multiple_of(2),
        mutable_score: score,
    }
}

#[test]
fn batches_round_trip_through_a_reopened_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let batches = vec![
        vec![
            StoreOp::Upsert(record(1, 1, &["10.0.0.1"])),
            StoreOp::Upsert(record(2, -3, &["10.0.0.2", "node2.example.com"])),
            StoreOp::Upsert(record(3, 0, &[])),
        ],
        vec![
            StoreOp::Delete(id(2)),
            StoreOp::Upsert(record(1, 9, &["10.0.0.9"])),
        ],
        vec![],
        vec![
            StoreOp::Delete(id(7)),
            StoreOp::Upsert(record(4, i16::MIN, &["[::1]"])),
        ],
    ];
    let mut oracle = MemoryPeerStore::new();
    {
        let mut store = RedbPeerStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), vec![]);
        for batch in &batches {
            store.apply(batch).unwrap();
            oracle.apply(batch).unwrap();
            assert_eq!(store.load().unwrap(), oracle.load().unwrap());
        }
    }
    let store = RedbPeerStore::open(&path).unwrap();
    let expected = vec![
        record(1, 9, &["10.0.0.9"]),
        record(3, 0, &[]),
        record(4, i16::MIN, &["[::1]"]),
    ];
    assert_eq!(store.load().unwrap(), expected);
    assert_eq!(oracle.load().unwrap(), expected);
    assert!(store.load_report().unwrap().skipped.is_empty());
}

#[allow(clippy::disallowed_methods)] // one real Instant to start virtual time from
fn t0() -> Instant {
    Instant::now()
}

fn drain(pm: &mut PeerManager, store: &mut impl PeerStore) {
    let ops: Vec<StoreOp> = std::iter::from_fn(|| pm.poll_store_op()).collect();
    store.apply(&ops).unwrap();
}

#[test]
fn a_rebuilt_peer_manager_equals_the_original_in_every_persisted_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let t = t0();
    let clock = ClockAnchor {
        instant: t,
        since_unix_epoch: Duration::from_secs(1_700_000_000),
    };
    let options = PeerManagerOptions {
        persistent_peers: [id(1)].into(),
        ..PeerManagerOptions::node_defaults()
    };
    let self_id = id(0xee);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut pm = PeerManager::new(self_id, options.clone(), clock).unwrap();
    let mut store = RedbPeerStore::open(&path).unwrap();

    for n in 1..=6 {
        pm.add(t, addr(n, &format!("10.{n}.0.1"))).unwrap();
    }
    pm.add(t, addr(2, "node2.example.com")).unwrap();
    pm.add(t, addr(9, "10.9.0.1")).unwrap();
    drain(&mut pm, &mut store);

    // Dial everything dialable: odd peers fail (jitter and failure counts persist), even
    // peers connect, get scored and disconnect later.
    let mut now = t + Duration::from_millis(10);
    let mut dialed = Vec::new();
    while let Some(a) = pm.try_dial_next(now) {
        if a.node_id.as_bytes()[0] % 2 == 1 {
            pm.dial_failed(now, &a, &mut rng);
        } else {
            pm.dialed(now, &a, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))))
                .unwrap();
            dialed.push(a.node_id);
        }
        drain(&mut pm, &mut store);
    }
    assert!(!dialed.is_empty());
    now += Duration::from_secs(3);
    for n in &dialed {
        pm.ready(*n, vec![0x20]);
        pm.report(*n, ScoreReport::Good).unwrap();
    }
    pm.report(id(3), ScoreReport::Bad).unwrap();
    pm.report(id(3), ScoreReport::Bad).unwrap();
    pm.inactivate(id(5)).unwrap();
    drain(&mut pm, &mut store);
    now += Duration::from_secs(60);
    for n in &dialed {
        pm.disconnected(now, *n);
    }
    drain(&mut pm, &mut store);

    let original = pm.records();
    // The test must exercise the fields it compares.
    assert!(original.iter().any(|r| r.mutable_score < 0));
    assert!(original.iter().any(|r| r.mutable_score > 0));
    assert!(original.iter().any(|r| r.inactive));
    assert!(original.iter().any(|r| r.last_disconnected.is_some()));
    assert!(original
        .iter()
        .flat_map(|r| &r.addresses)
        .any(|a| a.dial_failures > 0 && a.retry_jitter > Duration::ZERO));
    assert!(original
        .iter()
        .flat_map(|r| &r.addresses)
        .any(|a| a.last_dial_success.is_some()));
    drop(store);

    let store = RedbPeerStore::open(&path).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded, original);
    let restart = now + Duration::from_secs(5);
    let rebuilt = PeerManager::from_records(self_id, options, clock, restart, loaded).unwrap();
    assert_eq!(rebuilt.records(), original);
    for r in &original {
        assert_eq!(rebuilt.score(r.node_id), pm.score(r.node_id));
    }
}

#[test]
fn a_corrupt_value_is_skipped_with_the_rest_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let good = vec![
        record(1, 1, &["10.0.0.1"]),
        record(3, 2, &["10.0.0.3"]),
        record(5, 3, &["10.0.0.5", "five.example.com"]),
    ];
    {
        let mut store = RedbPeerStore::open(&path).unwrap();
        let ops: Vec<_> = good.iter().cloned().map(StoreOp::Upsert).collect();
        store.apply(&ops).unwrap();
    }
    {
        // Another writer (an older build, a bug) leaves values this code does not read.
        let db = Database::create(&path).unwrap();
        let table: TableDefinition<'_, [u8; 20], &[u8]> = TableDefinition::new(PEER_TABLE);
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(table).unwrap();
            let mut truncated = record(2, 0, &["10.0.0.2"]).encode().unwrap();
            truncated.truncate(30);
            t.insert(id(2).as_bytes(), truncated.as_slice()).unwrap();
            let mut future = record(4, 0, &[]).encode().unwrap();
            future[0] = 9;
            t.insert(id(4).as_bytes(), future.as_slice()).unwrap();
            let misplaced = record(3, 7, &[]).encode().unwrap();
            t.insert(id(6).as_bytes(), misplaced.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbPeerStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), good);
    let report = store.load_report().unwrap();
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.key, s.reason.clone()))
        .collect();
    assert_eq!(skipped.len(), 3);
    assert!(matches!(
        skipped[0],
        (k, SkipReason::Undecodable(RecordError::Truncated { .. })) if k == id(2)
    ));
    assert_eq!(
        skipped[1],
        (
            id(4),
            SkipReason::Undecodable(RecordError::UnsupportedVersion { found: 9 })
        )
    );
    assert_eq!(
        skipped[2],
        (
            id(6),
            SkipReason::KeyMismatch {
                key: id(6),
                record: id(3)
            }
        )
    );
}

#[test]
fn a_batch_with_an_unencodable_record_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let mut store = RedbPeerStore::open(&path).unwrap();
    store
        .apply(&[StoreOp::Upsert(record(1, 1, &["10.0.0.1"]))])
        .unwrap();
    let mut huge = record(2, 0, &[]);
    huge.addresses = vec![record(2, 0, &["10.0.0.2"]).addresses[0].clone(); 70_000];
    let err = store
        .apply(&[StoreOp::Delete(id(1)), StoreOp::Upsert(huge)])
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Encode {
                node_id,
                source: RecordError::TooManyAddresses { found: 70_000 },
            } if node_id == id(2)
        ),
        "{err}"
    );
    drop(store);
    let store = RedbPeerStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), vec![record(1, 1, &["10.0.0.1"])]);
}

#[test]
fn a_file_that_is_not_a_database_is_a_typed_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    std::fs::write(&path, vec![0x5a; 10_000]).unwrap();
    let err = RedbPeerStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Open { path: p, .. } if *p == path),
        "{err}"
    );
}

#[test]
fn a_database_open_elsewhere_is_a_typed_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let _first = RedbPeerStore::open(&path).unwrap();
    let err = RedbPeerStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}
