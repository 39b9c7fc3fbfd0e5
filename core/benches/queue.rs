#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Queue throughput: push + pop of 1000 B messages over 8 channels for every queue kind,
//! both with room to spare and overloaded (every push drops something).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tmp2p_core::queue::{new_queue, ChannelQos, QueueConfig, QueueKind, Queued};

const CHANNELS: u8 = 8;
const MESSAGE: usize = 1000;
const BATCH: usize = 64;

fn config(kind: QueueKind, max_items: usize) -> QueueConfig {
    QueueConfig {
        kind,
        max_items,
        max_bytes: max_items * MESSAGE,
        channels: (0..CHANNELS)
            .map(|channel| ChannelQos {
                channel,
                priority: u32::from(channel) + 1,
                weight: u32::from(channel % 4) + 1,
            })
            .collect(),
    }
}

fn messages() -> Vec<Queued> {
    let payload = Bytes::from(vec![0xab; MESSAGE]);
    (0..BATCH)
        .map(|i| Queued {
            channel: (i % usize::from(CHANNELS)) as u8,
            message: payload.clone(),
        })
        .collect()
}

fn bench_queues(c: &mut Criterion) {
    let batch = messages();
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(BATCH as u64));
    for kind in [QueueKind::Fifo, QueueKind::Priority, QueueKind::Wdrr] {
        // Room for the whole batch: push 64, pop 64.
        let mut roomy = new_queue(&config(kind, 1024)).unwrap();
        group.bench_function(format!("{kind:?}/push_pop_{BATCH}"), |b| {
            b.iter(|| {
                for item in &batch {
                    black_box(roomy.push(item.clone()));
                }
                while let Some(item) = roomy.pop() {
                    black_box(item);
                }
            })
        });
        // Full at 32 items: half of every batch is shed by the drop policy.
        let mut full = new_queue(&config(kind, BATCH / 2)).unwrap();
        group.bench_function(format!("{kind:?}/overloaded_{BATCH}"), |b| {
            b.iter(|| {
                for item in &batch {
                    black_box(full.push(item.clone()));
                }
                while let Some(item) = full.pop() {
                    black_box(item);
                }
            })
        });
        assert!(roomy.is_empty() && full.is_empty());
    }
    group.finish();
}

criterion_group!(benches, bench_queues);
criterion_main!(benches);
