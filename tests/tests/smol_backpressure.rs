//! The smol driver when the application falls behind, over real loopback TCP: a full
//! inbound channel makes the connections with messages for it stop reading (TCP
//! backpressure) instead of dropping, so every message still arrives, in order, once the
//! application reads again; meanwhile other peers' messages on other channels go on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smol::Timer;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_driver_smol::{
    Channel, ChannelSender, DriverError, DriverOptions, Envelope, NodeBuilder, NodeHandle,
    PeerError, PeerUpdates, TrySendError,
};
use tmp2p_store::MemoryPeerStore;
use tmp2p_tests::smol_support::{descriptor, within};

/// The channel the application stops reading.
const SLOW: u8 = 0x30;
/// The channel it keeps reading.
const LIVE: u8 = 0x31;
/// Inbound capacity of the receiving node: far below what is sent to it.
const CAPACITY: usize = 4;

struct Node {
    handle: NodeHandle,
    slow: Channel<Bytes>,
    live: Channel<Bytes>,
    updates: PeerUpdates,
}

fn start(key: &NodeKey, peers: Vec<NodeAddress>, inbound_capacity: usize) -> Node {
    start_with(key, peers, inbound_capacity, |_| {})
}

fn start_with(
    key: &NodeKey,
    peers: Vec<NodeAddress>,
    inbound_capacity: usize,
    edit: impl Fn(&mut NodeConfig),
) -> Node {
    let mut config = NodeConfig::new("smol-backpressure", "127.0.0.1:0".parse().unwrap());
    config.persistent_peers = peers;
    edit(&mut config);
    let options = DriverOptions {
        inbound_capacity,
        ..DriverOptions::default()
    };
    let mut builder = NodeBuilder::with_options(
        config,
        key.clone(),
        Box::new(MemoryPeerStore::new()),
        options,
    )
    .unwrap();
    let slow = builder.open_raw_channel(descriptor(SLOW)).unwrap();
    let live = builder.open_raw_channel(descriptor(LIVE)).unwrap();
    let updates = builder.subscribe();
    let handle = smol::block_on(builder.start()).unwrap();
    Node {
        handle,
        slow,
        live,
        updates,
    }
}

async fn wait_up(updates: &PeerUpdates, expected: &BTreeSet<NodeId>) {
    let mut up = BTreeSet::new();
    while !expected.is_subset(&up) {
        let update = updates.recv().await.unwrap();
        if update.status == PeerStatus::Up {
            up.insert(update.node_id);
        }
    }
}

/// A numbered message of `size` bytes.
fn numbered(n: usize, size: usize) -> Bytes {
    let mut message = vec![(n % 251) as u8; size];
    message[..8].copy_from_slice(&(n as u64).to_be_bytes());
    Bytes::from(message)
}

fn number(message: &[u8]) -> u64 {
    u64::from_be_bytes(message[..8].try_into().unwrap())
}

#[test]
fn a_full_channel_pauses_its_senders_and_loses_nothing_while_others_go_on() {
    const FLOOD: usize = 600;
    const SIZE: usize = 4000;
    const OTHERS: usize = 50;
    let (ka, kb, kc) = (
        NodeKey::from_seed([0x51; 32]),
        NodeKey::from_seed([0x52; 32]),
        NodeKey::from_seed([0x53; 32]),
    );
    let b = start(&kb, vec![], CAPACITY);
    let to_b = || {
        let at = b.handle.local_addr();
        vec![NodeAddress::parse(&format!("{}@{at}", kb.node_id())).unwrap()]
    };
    let a = start(&ka, to_b(), 1024);
    let c = start(&kc, to_b(), 1024);
    within(
        "b to see a and c",
        wait_up(&b.updates, &BTreeSet::from([ka.node_id(), kc.node_id()])),
    );
    within("a and c to see b", async {
        let only_b = BTreeSet::from([kb.node_id()]);
        wait_up(&a.updates, &only_b).await;
        wait_up(&c.updates, &only_b).await;
    });

    // a floods the channel b's application does not read: 150 times its capacity.
    // (Its sends may wait for room once b's queue at a is full.)
    let flooder = flood_in_background(a.slow.outbound.clone(), kb.node_id(), FLOOD, SIZE);
    // Give the flood time to fill b's channel and stall a's connection.
    within(
        "the flood to arrive",
        Timer::after(Duration::from_millis(300)),
    );
    assert_eq!(b.slow.inbound.len(), CAPACITY, "the slow channel is full");

    // c's messages on the other channel still arrive while a's connection is stalled.
    within("c's messages on the live channel", async {
        for n in 0..OTHERS {
            let envelope = Envelope::to_peer(kb.node_id(), numbered(n, 100));
            c.live.outbound.send(envelope).await.unwrap();
        }
        for n in 0..OTHERS {
            let envelope = b.live.inbound.recv().await.unwrap();
            assert_eq!(envelope.from, Some(kc.node_id()));
            assert_eq!(number(&envelope.message), n as u64);
        }
    });

    // b reads again: every flooded message arrives, once, in order.
    within(&format!("all {FLOOD} flooded messages"), async {
        for n in 0..FLOOD {
            let envelope = b.slow.inbound.recv().await.unwrap();
            assert_eq!(envelope.from, Some(ka.node_id()));
            assert_eq!(envelope.message.len(), SIZE);
            assert_eq!(number(&envelope.message), n as u64, "message {n} in order");
        }
    });
    assert!(b.slow.inbound.is_empty(), "nothing extra");
    assert_eq!(flooder.join().unwrap().0, FLOOD);
    within("stop", async {
        a.handle.stop().await;
        c.handle.stop().await;
        b.handle.stop().await;
    });
}

/// The router closes a connection (a fatal peer error) while a flood towards a peer that
/// stopped reading is still queued on it: the close may not wait for sends that can never
/// be handed over. Within `close_linger` what is left is dropped and the peer goes `Down`.
#[test]
fn a_close_is_not_held_back_by_a_peer_that_stopped_reading() {
    const FLOOD: usize = 3000;
    const SIZE: usize = 16_000;
    let (ka, kb) = (
        NodeKey::from_seed([0x54; 32]),
        NodeKey::from_seed([0x55; 32]),
    );
    let b = start(&kb, vec![], CAPACITY);
    let at = b.handle.local_addr();
    let to_b = vec![NodeAddress::parse(&format!("{}@{at}", kb.node_id())).unwrap()];
    let linger = Duration::from_millis(500);
    let a = start_with(&ka, to_b, 1024, |config| config.close_linger = linger);
    within(
        "a to see b",
        wait_up(&a.updates, &BTreeSet::from([kb.node_id()])),
    );
    // 48 MB towards b, whose application never reads: the socket buffers, the connection's
    // queues and the router's queue for b fill, and then the sender waits.
    let flooder = flood_in_background(a.slow.outbound.clone(), kb.node_id(), FLOOD, SIZE);
    within(
        "the flood to stall",
        Timer::after(Duration::from_millis(300)),
    );
    assert_eq!(b.slow.inbound.len(), CAPACITY, "b stopped reading");
    let reported = Instant::now();
    within("the error report", async {
        let error = PeerError {
            node: kb.node_id(),
            reason: "test: misbehaved".into(),
            fatal: true,
        };
        a.slow.errors.report(error).await.unwrap();
    });
    within("b to go down at a", async {
        loop {
            let update = a.updates.recv().await.unwrap();
            if update.node_id == kb.node_id() && update.status == PeerStatus::Down {
                return;
            }
        }
    });
    let took = reported.elapsed();
    assert!(
        took < linger + Duration::from_secs(3),
        "the close took {took:?} (close_linger {linger:?})"
    );
    // The waiting sender learns that b is gone; what was queued for b is counted.
    let (accepted, error) = flooder.join().unwrap();
    assert!(accepted < FLOOD, "the sender waited for b");
    assert!(
        matches!(error, Some(DriverError::NotConnected(id)) if id == kb.node_id()),
        "{error:?}"
    );
    assert!(a.handle.counters().dropped_peer_gone > 0);
    within("stop", async {
        a.handle.stop().await;
        b.handle.stop().await;
    });
}

/// Sends `count` numbered messages of `size` bytes to `to` on a thread of its own, where
/// sends may wait; returns how many were accepted and the error that ended it, if any.
fn flood_in_background(
    sender: ChannelSender<Bytes>,
    to: NodeId,
    count: usize,
    size: usize,
) -> std::thread::JoinHandle<(usize, Option<DriverError>)> {
    std::thread::spawn(move || {
        smol::block_on(async {
            for n in 0..count {
                let envelope = Envelope::to_peer(to, numbered(n, size));
                if let Err(error) = sender.send(envelope).await {
                    return (n, Some(error));
                }
            }
            (count, None)
        })
    })
}

/// Backpressure per peer: a send to a peer whose queue is full waits (try_send hands the
/// message back), while sends on the same channel to another peer go straight through;
/// once the slow peer reads again, everything it was sent arrives, in order, and nothing
/// was dropped.
#[test]
fn a_full_peer_makes_only_its_own_sends_wait_and_loses_nothing() {
    const FLOOD: usize = 2000;
    const SIZE: usize = 16_000;
    const OTHERS: usize = 200;
    let (ka, kb, kc) = (
        NodeKey::from_seed([0x56; 32]),
        NodeKey::from_seed([0x57; 32]),
        NodeKey::from_seed([0x58; 32]),
    );
    let a = start(&ka, vec![], 1024);
    let to_a = || {
        let at = a.handle.local_addr();
        vec![NodeAddress::parse(&format!("{}@{at}", ka.node_id())).unwrap()]
    };
    let b = start(&kb, to_a(), CAPACITY);
    let c = start(&kc, to_a(), 1024);
    within(
        "a to see b and c",
        wait_up(&a.updates, &BTreeSet::from([kb.node_id(), kc.node_id()])),
    );
    let flooder = flood_in_background(a.slow.outbound.clone(), kb.node_id(), FLOOD, SIZE);
    within(
        "the flood to stall",
        Timer::after(Duration::from_millis(500)),
    );
    assert_eq!(b.slow.inbound.len(), CAPACITY, "b stopped reading");
    assert!(!flooder.is_finished(), "the sender waits for b");
    within("try_send to b", async {
        let envelope = Envelope::to_peer(kb.node_id(), numbered(0, SIZE));
        match a.slow.outbound.try_send(envelope).await {
            Err(TrySendError::Full { peers, .. }) => assert_eq!(peers, vec![kb.node_id()]),
            other => panic!("expected Full, got {other:?}"),
        }
    });
    // Same channel, another peer: not held up by b.
    within("a's messages to c", async {
        for n in 0..OTHERS {
            let envelope = Envelope::to_peer(kc.node_id(), numbered(n, 100));
            a.slow.outbound.send(envelope).await.unwrap();
        }
        for n in 0..OTHERS {
            let envelope = c.slow.inbound.recv().await.unwrap();
            assert_eq!(number(&envelope.message), n as u64);
        }
    });
    assert!(!flooder.is_finished(), "b still has not read");
    within(&format!("all {FLOOD} flooded messages at b"), async {
        for n in 0..FLOOD {
            let envelope = b.slow.inbound.recv().await.unwrap();
            assert_eq!(number(&envelope.message), n as u64, "message {n} in order");
        }
    });
    let (accepted, error) = flooder.join().unwrap();
    assert_eq!((accepted, error.is_none()), (FLOOD, true));
    assert_eq!(a.handle.counters().dropped(), 0);
    within("stop", async {
        for node in [a, b, c] {
            node.handle.stop().await;
        }
    });
}

/// CometBFT's most reported p2p problem is a slow reactor blocking the read loop until a
/// ping goes unanswered and the peer is dropped. Here b's application stops reading a
/// channel for ten pong timeouts while a sends it a burst; b keeps reading its socket for
/// pings and pongs (the burst waits in b's held budget), so neither side times the
/// connection out, and every message arrives once b reads again.
#[test]
fn a_reactor_that_stops_reading_longer_than_the_pong_timeout_keeps_its_connection() {
    const BURST: usize = 40;
    let pong_timeout = Duration::from_millis(150);
    let quick_pings = |config: &mut NodeConfig| {
        let mconn = &mut config.router.connection.mconn;
        mconn.ping_interval = Duration::from_millis(300);
        mconn.pong_timeout = pong_timeout;
    };
    let (ka, kb) = (
        NodeKey::from_seed([0x5a; 32]),
        NodeKey::from_seed([0x5b; 32]),
    );
    let b = start_with(&kb, vec![], CAPACITY, quick_pings);
    let at = b.handle.local_addr();
    let to_b = vec![NodeAddress::parse(&format!("{}@{at}", kb.node_id())).unwrap()];
    let a = start_with(&ka, to_b, 1024, quick_pings);
    within(
        "a to see b",
        wait_up(&a.updates, &BTreeSet::from([kb.node_id()])),
    );
    within("the burst to be accepted", async {
        for n in 0..BURST {
            let envelope = Envelope::to_peer(kb.node_id(), numbered(n, 1000));
            a.slow.outbound.send(envelope).await.unwrap();
        }
    });
    // b's application does not read for ten pong timeouts (several ping rounds).
    within("the stall", Timer::after(pong_timeout * 10));
    assert_eq!(
        b.slow.inbound.len(),
        CAPACITY,
        "b's application took nothing"
    );
    for (node, peer) in [(&a, kb.node_id()), (&b, ka.node_id())] {
        while let Ok(update) = node.updates.try_recv() {
            assert!(
                !(update.node_id == peer && update.status == PeerStatus::Down),
                "the connection timed out while the application was slow"
            );
        }
    }
    within("every message of the burst", async {
        for n in 0..BURST {
            let envelope = b.slow.inbound.recv().await.unwrap();
            assert_eq!(number(&envelope.message), n as u64);
        }
    });
    within("stop", async {
        a.handle.stop().await;
        b.handle.stop().await;
    });
}
