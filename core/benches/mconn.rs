//! MConnection plaintext throughput (issue #5): messages of 100 B, 1000 B, 64 KiB and
//! 1 MiB sent by one machine, chunked into packets, parsed and reassembled by another, all
//! in memory and without encryption (the `connection` benchmarks add the SecretConnection).
//! Run with `cargo bench -p tmp2p-core --bench mconn`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tmp2p_core::mconn::{ChannelDescriptor, MConnConfig, MConnEvent, MConnection};

/// Bytes moved per iteration (rounded to whole messages).
const BATCH_BYTES: usize = 1 << 20;

#[allow(clippy::disallowed_methods)] // the benchmark needs one real Instant to start from
fn start() -> Instant {
    Instant::now()
}

fn machine(now: Instant) -> MConnection {
    let channels = vec![ChannelDescriptor {
        id: 0x30,
        priority: 5,
        send_queue_capacity: 1 << 16,
        recv_message_capacity: 2 << 20,
    }];
    MConnection::new(MConnConfig::default(), channels, now).unwrap()
}

fn pair_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("mconn_pair");
    for size in [100usize, 1000, 64 << 10, 1 << 20] {
        let count = (BATCH_BYTES / size).max(1);
        group.throughput(Throughput::Elements(count as u64));
        let now = start();
        let mut sender = machine(now);
        let mut receiver = machine(now);
        let message = Bytes::from(vec![0x5a; size]);
        let mut wire = BytesMut::with_capacity(256 << 10);
        group.bench_function(format!("{size}B"), |b| {
            b.iter(|| {
                let mut received = 0;
                for _ in 0..count {
                    sender.send(now, 0x30, message.clone()).unwrap();
                }
                // A driver's loop: 64 KiB writes, each parsed on arrival.
                while sender.poll_transmit(now, &mut wire, 64 << 10) > 0 {
                    receiver.handle_input(now, &mut wire).unwrap();
                    while let Some(event) = receiver.poll_event() {
                        if let MConnEvent::Message { message, .. } = event {
                            black_box(&message);
                            received += 1;
                        }
                    }
                }
                assert_eq!(received, count);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, pair_throughput);
criterion_main!(benches);
