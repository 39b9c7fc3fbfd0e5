#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Peer-manager throughput: dial_next → dialed → ready → disconnected cycles with 10 000
//! known peers, and one advertise(100) over 10 000 peers.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::peer_manager::{ClockAnchor, PeerManager, PeerManagerOptions};
use tmp2p_core::NodeId;

const PEERS: u32 = 10_000;

fn node_id(n: u32) -> NodeId {
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[19] = 1;
    NodeId::from_bytes(bytes)
}

#[allow(clippy::disallowed_methods)] // the benchmark needs one real Instant to start from
fn start() -> Instant {
    Instant::now()
}

fn populated(options: PeerManagerOptions) -> (PeerManager, Instant) {
    let t = start();
    let anchor = ClockAnchor {
        instant: t,
        since_unix_epoch: Duration::from_secs(1_700_000_000),
    };
    let mut pm = PeerManager::new(NodeId::from_bytes([0xee; 20]), options, anchor).unwrap();
    for n in 0..PEERS {
        let [_, _, hi, lo] = n.to_be_bytes();
        let a = NodeAddress::parse(&format!("{}@10.{hi}.{lo}.1:26656", node_id(n))).unwrap();
        pm.add(t, a).unwrap();
    }
    while pm.poll_store_op().is_some() {}
    (pm, t)
}

fn lifecycle(c: &mut Criterion) {
    let options = PeerManagerOptions {
        max_connected: 64,
        max_outgoing_connections: 12,
        ..PeerManagerOptions::default()
    };
    let (mut pm, t) = populated(options);
    let mut now = t;
    c.bench_function(
        "peer_manager cycle dial_next→dialed→ready→disconnected (10k peers)",
        |b| {
            b.iter(|| {
                now += Duration::from_micros(1);
                let a = pm.try_dial_next(now).unwrap();
                pm.dialed(now, &a, None).unwrap();
                pm.ready(a.node_id, vec![0x20]);
                pm.disconnected(now, a.node_id);
                while let Some(op) = pm.poll_store_op() {
                    black_box(op);
                }
            })
        },
    );
}

fn advertise(c: &mut Criterion) {
    let (pm, _) = populated(PeerManagerOptions::default());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let requester = node_id(5);
    c.bench_function("peer_manager advertise(100) over 10k peers", |b| {
        b.iter(|| black_box(pm.advertise(requester, 100, &mut rng)))
    });
}

criterion_group!(benches, lifecycle, advertise);
criterion_main!(benches);
