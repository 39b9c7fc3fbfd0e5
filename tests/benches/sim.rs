//! Simulator speed (issue #8): simulated node-seconds per wall second for a 100-node
//! network exchanging 1000 B messages.
//!
//! Setup (untimed): 100 nodes in a ring with chords of length 7 (4 persistent peers each,
//! 200 connections), 5 ms links, connected and quiet. Each iteration simulates one virtual
//! second in which every node broadcasts a 1000-byte message on one channel every 100 ms
//! (10 per node-second, to its 4 peers: 4,000 deliveries per iteration), with real
//! handshakes long done but real framing and ChaCha20-Poly1305 on every byte. Throughput
//! "elements" are node-seconds, so criterion's elem/s is node-seconds per wall second.
//! Run with `cargo bench -p tmp2p-tests --bench sim`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tmp2p_core::router::Envelope;
use tmp2p_tests::sim::{NodeSpec, Sim};

const NODES: usize = 100;
const MESSAGE: usize = 1000;
const SENDS_PER_SECOND: u32 = 10;

fn mesh() -> Sim {
    let mut sim = Sim::new(1);
    for i in 0..NODES {
        sim.add_node(NodeSpec::new(
            IpAddr::from([10, (i % 200) as u8 + 1, 0, 1]),
            &[0x20],
        ));
    }
    for i in 0..NODES {
        let peers = vec![(i + 1) % NODES, (i + 7) % NODES];
        let ids: Vec<_> = peers.iter().map(|&p| sim.id(p).unwrap()).collect();
        let spec = sim.spec_mut(i).unwrap();
        spec.config.peer_manager.persistent_peers.extend(ids);
        spec.boot_peers = peers;
    }
    sim.start_all().unwrap();
    sim.drive().unwrap();
    for i in 0..NODES {
        sim.record_messages(i, false).unwrap();
        assert_eq!(sim.node(i).unwrap().connected().len(), 4, "node {i}");
    }
    sim
}

fn one_virtual_second(sim: &mut Sim, message: &Bytes) {
    let tick = Duration::from_secs(1) / SENDS_PER_SECOND;
    for _ in 0..SENDS_PER_SECOND {
        for i in 0..NODES {
            sim.send(i, Envelope::broadcast(0x20, message.clone()))
                .unwrap();
        }
        sim.run_for(tick).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let mut sim = mesh();
    let message = Bytes::from(vec![0xa5; MESSAGE]);
    let before: u64 = sim.nodes().iter().map(|n| n.received_count()).sum();
    one_virtual_second(&mut sim, &message);
    let after: u64 = sim.nodes().iter().map(|n| n.received_count()).sum();
    assert_eq!(
        after - before,
        (NODES * 4) as u64 * u64::from(SENDS_PER_SECOND)
    );
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(NODES as u64));
    group.sample_size(10);
    group.bench_function("node_seconds_100_nodes_1000B", |b| {
        b.iter(|| one_virtual_second(&mut sim, &message))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
