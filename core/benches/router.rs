//! Router throughput (issue #7): envelopes of 1000 B broadcast by one Router to 1, 10 and
//! 100 connected peers, in memory, crypto on (ring). Each hub connection's bytes go into the
//! remote PeerConnection, which opens and parses them. The anchor, measured in the same run,
//! is the same n PeerConnection pairs moving the same 1000 B messages with no Router
//! (`{n}_peers_without_router`). Compare per-delivered-message times.
//! Run with `cargo bench -p tmp2p-core --bench router`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tmp2p_core::connection::{Direction, PeerConnection, PeerEvent, Taken};
use tmp2p_core::mconn::{ChannelDescriptor, SendError};
use tmp2p_core::node_info::{NodeInfo, ProtocolVersions};
use tmp2p_core::peer_manager::ClockAnchor;
use tmp2p_core::router::{ConnectionId, Envelope, Router, RouterAction, RouterConfig};
use tmp2p_core::NodeKey;

const CHANNEL: u8 = 0x20;
const BATCH: usize = 64;

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn info(key: &NodeKey) -> NodeInfo {
    NodeInfo {
        protocol_version: ProtocolVersions {
            p2p: 8,
            block: 11,
            app: 0,
        },
        node_id: key.node_id(),
        listen_addr: "tcp://127.0.0.1:26656".into(),
        network: "bench".into(),
        version: "1".into(),
        channels: vec![CHANNEL],
        moniker: "bench".into(),
        tx_index: String::new(),
        rpc_address: String::new(),
    }
}

fn descriptor() -> ChannelDescriptor {
    ChannelDescriptor {
        id: CHANNEL,
        priority: 1,
        send_queue_capacity: 64,
        recv_message_capacity: 1 << 20,
    }
}

/// One Router with `n` inbound connections, each joined to a remote PeerConnection.
struct Hub {
    now: Instant,
    router: Router,
    local: BTreeMap<ConnectionId, PeerConnection>,
    remote: BTreeMap<ConnectionId, PeerConnection>,
    pending: Vec<(ConnectionId, Bytes)>,
    out: BytesMut,
}

impl Hub {
    fn new(n: usize) -> Hub {
        let now = epoch();
        let key = NodeKey::from_seed([1; 32]);
        let mut config = RouterConfig::default();
        config.peer_manager.max_connected = 200;
        config.peer_manager.max_peers = 1000;
        config.peer_manager.max_connected_per_ip_group = 0;
        config.peer_manager.max_stored_per_ip_group = 0;
        config.max_incoming_per_ip = 1000;
        config.send_credit = 64;
        config.connection.channels = vec![descriptor()];
        let clock = ClockAnchor {
            instant: now,
            since_unix_epoch: Duration::from_secs(1_700_000_000),
        };
        let mut router = Router::new(
            config.clone(),
            info(&key),
            clock,
            now,
            vec![],
            Box::new(ChaCha20Rng::seed_from_u64(1)),
        )
        .unwrap();
        router.open_channel(descriptor()).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut hub = Hub {
            now,
            router,
            local: BTreeMap::new(),
            remote: BTreeMap::new(),
            pending: vec![],
            out: BytesMut::new(),
        };
        for i in 0..n {
            let remote_key = NodeKey::from_seed([
                (i % 250) as u8 + 2,
                (i / 250) as u8,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ]);
            let ip = IpAddr::from([10, (i / 250) as u8, (i % 250) as u8, 1]);
            let params = hub.router.accept(now, SocketAddr::new(ip, 1000)).unwrap();
            let local = PeerConnection::new(
                now,
                &key,
                params.node_info,
                params.direction,
                params.config.clone(),
                &mut rng,
            );
            let remote = PeerConnection::new(
                now,
                &remote_key,
                info(&remote_key),
                Direction::Outbound {
                    expected: key.node_id(),
                },
                params.config,
                &mut rng,
            );
            hub.local.insert(params.conn, local);
            hub.remote.insert(params.conn, remote);
        }
        for _ in 0..6 {
            hub.pump();
        }
        assert_eq!(hub.router.connected_peers().count(), n, "all peers routed");
        hub
    }

    /// Moves bytes both ways, feeds events to the router, carries out its actions.
    /// Returns the number of messages the remotes received.
    fn pump(&mut self) -> usize {
        let now = self.now;
        let mut delivered = 0;
        while let Some(action) = self.router.poll_action() {
            if let RouterAction::Send { conn, message, .. } = action {
                self.pending.push((conn, message));
            }
        }
        let pending = std::mem::take(&mut self.pending);
        for (conn, message) in pending {
            let len = message.len();
            match self
                .local
                .get_mut(&conn)
                .map(|c| c.send(now, CHANNEL, message))
            {
                Some(Ok(())) => self.router.messages_accepted(
                    conn,
                    Taken {
                        messages: 1,
                        bytes: len,
                    },
                ),
                Some(Err(SendError::Full(m))) => self.pending.push((conn, m)),
                _ => {}
            }
        }
        for (conn, local) in &mut self.local {
            let remote = self.remote.get_mut(conn).unwrap();
            self.out.clear();
            while local.poll_transmit(now, &mut self.out) {}
            if !self.out.is_empty() {
                remote.handle_input(now, &self.out).unwrap();
            }
            self.out.clear();
            while remote.poll_transmit(now, &mut self.out) {}
            if !self.out.is_empty() {
                local.handle_input(now, &self.out).unwrap();
            }
            while let Some(e) = remote.poll_event() {
                if matches!(e, PeerEvent::Message { .. }) {
                    delivered += 1;
                }
            }
            while let Some(e) = local.poll_event() {
                self.router.handle_connection_event(now, *conn, e);
            }
        }
        delivered
    }
}

fn router(c: &mut Criterion) {
    let message = Bytes::from(vec![0xab; 1000]);
    let mut group = c.benchmark_group("router_broadcast_1000B");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in [1usize, 10, 100] {
        let mut hub = Hub::new(n);
        group.throughput(Throughput::Elements((BATCH * n) as u64));
        group.bench_function(format!("{n}_peers"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    // BATCH is below a peer's window: every broadcast is queued.
                    hub.router
                        .send(Envelope::broadcast(CHANNEL, message.clone()))
                        .unwrap();
                }
                let mut got = 0;
                while got < BATCH * n {
                    got += hub.pump();
                }
            })
        });
    }
    // Anchor: the same messages written straight into the same n connections, no Router.
    for n in [1usize, 10, 100] {
        let mut hub = Hub::new(n);
        let conns: Vec<ConnectionId> = hub.local.keys().copied().collect();
        group.throughput(Throughput::Elements((BATCH * n) as u64));
        group.bench_function(format!("{n}_peers_without_router"), |b| {
            b.iter(|| {
                let now = hub.now;
                let mut sent = vec![0usize; n];
                let mut got = 0;
                while got < BATCH * n {
                    for (i, conn) in conns.iter().enumerate() {
                        let pc = hub.local.get_mut(conn).unwrap();
                        while sent[i] < BATCH && pc.send(now, CHANNEL, message.clone()).is_ok() {
                            sent[i] += 1;
                        }
                    }
                    got += hub.pump();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, router);
criterion_main!(benches);
