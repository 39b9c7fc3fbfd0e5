//! The mio driver over loopback TCP: five ready-made nodes form a full mesh and exchange
//! broadcast and unicast messages on two channels; a peer that stops reading (its
//! application never takes its inbound events, so its driver stops reading the socket)
//! does not stall delivery to a fast peer of the same node; a close the router issues right
//! behind a run of sends waits until the connection has taken all of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::router::{Envelope, PeerError};
use tmp2p_core::{NodeId, NodeKey};
use tmp2p_driver_mio::{AppEvent, DriverLimits, DriverSetup, Inbound, RunningNode};

const BROADCAST: u8 = 0x40;
const UNICAST: u8 = 0x41;

fn config() -> NodeConfig {
    let mut config = NodeConfig::new("mio-test", "127.0.0.1:0".parse().unwrap());
    config.router.incoming_window = Duration::ZERO;
    let pm = &mut config.router.peer_manager;
    pm.max_connected_per_ip_group = 64;
    pm.min_retry_time = Duration::from_millis(50);
    pm.retry_time_jitter = Duration::from_millis(10);
    config
}

fn channels() -> Vec<ChannelDescriptor> {
    [(BROADCAST, 1), (UNICAST, 2)]
        .into_iter()
        .map(|(id, priority)| ChannelDescriptor {
            id,
            priority,
            send_queue_capacity: 16,
            recv_message_capacity: 1 << 20,
        })
        .collect()
}

fn spawn(seed: u8, limits: DriverLimits, inbound_capacity: usize) -> RunningNode {
    let mut setup = DriverSetup::new(config(), NodeKey::from_seed([seed; 32]), channels());
    setup.limits = limits;
    RunningNode::spawn(setup, inbound_capacity).unwrap()
}

fn address(node: &RunningNode) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{}", node.node_id(), node.local_addr())).unwrap()
}

/// Receives until `done` holds for the collected events, or panics after `timeout`.
fn collect_until(
    inbound: &Inbound,
    events: &mut Vec<AppEvent>,
    timeout: Duration,
    done: impl Fn(&[AppEvent]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(events) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; got {} events", events.len());
        if let Some(event) = inbound.recv_timeout(left).unwrap() {
            events.push(event);
        }
    }
}

fn ups(events: &[AppEvent]) -> Vec<NodeId> {
    events
        .iter()
        .filter_map(|e| match e {
            AppEvent::PeerUpdate(u) if u.status == PeerStatus::Up => Some(u.node_id),
            _ => None,
        })
        .collect()
}

fn messages(events: &[AppEvent], channel: u8) -> Vec<(NodeId, Bytes)> {
    events
        .iter()
        .filter_map(|e| match e {
            AppEvent::Message(env) if env.channel == channel => {
                Some((env.from.unwrap(), env.message.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn five_nodes_form_a_mesh_and_exchange_messages() {
    let nodes: Vec<RunningNode> = (1..=5)
        .map(|seed| spawn(seed, DriverLimits::default(), 1024))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        for later in &nodes[i + 1..] {
            node.handle().add_peer(address(later)).unwrap();
        }
    }
    let mut events: Vec<Vec<AppEvent>> = vec![Vec::new(); nodes.len()];
    for (node, got) in nodes.iter().zip(&mut events) {
        collect_until(node.inbound().unwrap(), got, Duration::from_secs(30), |e| {
            ups(e).len() >= 4
        });
        let mut peers = ups(got);
        peers.sort();
        let mut expected: Vec<NodeId> = nodes
            .iter()
            .map(RunningNode::node_id)
            .filter(|id| *id != node.node_id())
            .collect();
        expected.sort();
        assert_eq!(
            peers, expected,
            "every node is connected to the four others"
        );
    }

    for node in &nodes {
        let me = node.node_id();
        node.handle()
            .send(Envelope::broadcast(
                BROADCAST,
                Bytes::from(format!("hello from {me}")),
            ))
            .unwrap();
        for other in nodes.iter().filter(|n| n.node_id() != me) {
            let to = other.node_id();
            node.handle()
                .send(Envelope::to_peer(
                    to,
                    UNICAST,
                    Bytes::from(format!("{me} -> {to}")),
                ))
                .unwrap();
        }
    }
    for (node, got) in nodes.iter().zip(&mut events) {
        collect_until(node.inbound().unwrap(), got, Duration::from_secs(30), |e| {
            messages(e, BROADCAST).len() >= 4 && messages(e, UNICAST).len() >= 4
        });
        let me = node.node_id();
        let broadcasts: BTreeMap<NodeId, Bytes> = messages(got, BROADCAST).into_iter().collect();
        let unicasts: BTreeMap<NodeId, Bytes> = messages(got, UNICAST).into_iter().collect();
        assert_eq!(broadcasts.len(), 4);
        assert_eq!(unicasts.len(), 4);
        for (from, message) in broadcasts {
            assert_eq!(message, Bytes::from(format!("hello from {from}")));
        }
        for (from, message) in unicasts {
            assert_eq!(message, Bytes::from(format!("{from} -> {me}")));
        }
    }
    for node in nodes {
        node.stop().unwrap();
    }
}

#[test]
fn a_peer_that_stops_reading_does_not_stall_the_others() {
    const COUNT: usize = 500;
    const SIZE: usize = 24 * 1024;
    const PACE: usize = 50;
    // Gossip that must not wait for the slowest peer: the drop policy (under the default
    // backpressure the broadcasting thread would wait for the slow peer's room), with a
    // QoS queue of 64 messages per peer so the slow peer's overflows.
    let mut setup = DriverSetup::new(config(), NodeKey::from_seed([11; 32]), channels());
    setup.drop_channels = vec![BROADCAST];
    setup.config.router.queue_max_items = 64;
    let source = RunningNode::spawn(setup, 1024).unwrap();
    let fast = spawn(12, DriverLimits::default(), 4096);
    // The slow peer's application never takes its events: after a handful its driver
    // stops reading the socket and TCP pushes back on `source`.
    let slow_limits = DriverLimits {
        max_pending_inbound: 8,
        ..DriverLimits::default()
    };
    let slow = spawn(13, slow_limits, 4);
    fast.handle().add_peer(address(&source)).unwrap();
    slow.handle().add_peer(address(&source)).unwrap();
    let mut source_events = Vec::new();
    collect_until(
        source.inbound().unwrap(),
        &mut source_events,
        Duration::from_secs(30),
        |e| ups(e).len() >= 2,
    );
    let mut fast_events = Vec::new();
    collect_until(
        fast.inbound().unwrap(),
        &mut fast_events,
        Duration::from_secs(30),
        |e| !ups(e).is_empty(),
    );

    // Paced in rounds the fast peer keeps up with: its queue never overflows, while the
    // slow peer's fills and drops.
    for round in 0..COUNT / PACE {
        for seq in round * PACE..(round + 1) * PACE {
            let mut message = vec![(seq % 251) as u8; SIZE];
            message[..8].copy_from_slice(&(seq as u64).to_be_bytes());
            source
                .handle()
                .send(Envelope::broadcast(BROADCAST, Bytes::from(message)))
                .unwrap();
        }
        collect_until(
            fast.inbound().unwrap(),
            &mut fast_events,
            Duration::from_secs(60),
            |e| messages(e, BROADCAST).len() >= (round + 1) * PACE,
        );
    }
    let got = messages(&fast_events, BROADCAST);
    for (seq, (from, message)) in got.iter().enumerate() {
        assert_eq!(*from, source.node_id());
        assert_eq!(message.len(), SIZE);
        assert_eq!(
            message[..8],
            (seq as u64).to_be_bytes(),
            "in order, none lost"
        );
    }

    // The slow peer's socket stalled: its application now drains it, and delivery resumes
    // in order (messages its source dropped under overload are simply missing).
    let slow_inbound = slow.inbound().unwrap();
    let mut slow_seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match slow_inbound.recv_timeout(Duration::from_secs(1)).unwrap() {
            Some(AppEvent::Message(env)) if env.channel == BROADCAST => {
                slow_seqs.push(u64::from_be_bytes(env.message[..8].try_into().unwrap()));
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(
        slow_seqs.len() > 12,
        "reading resumed after the application caught up (got {})",
        slow_seqs.len()
    );
    assert!(slow_seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    let dropped = source.handle().counters().dropped_queue_full;
    assert!(dropped > 0, "the slow peer's queue dropped, and counted it");
    assert_eq!(
        slow_seqs.len() as u64 + dropped,
        COUNT as u64,
        "every copy for the slow peer was delivered or counted as dropped"
    );
    for node in [source, fast, slow] {
        node.stop().unwrap();
    }
}

#[test]
fn a_close_waits_for_the_messages_sent_before_it() {
    // Channel queues of one message: most of the 20 sends wait in the connection's Outbox
    // when the fatal error makes the router close the connection right behind them.
    const COUNT: usize = 20;
    let small = |seed: u8| {
        let descriptors = channels()
            .into_iter()
            .map(|c| ChannelDescriptor {
                send_queue_capacity: 1,
                ..c
            })
            .collect();
        let setup = DriverSetup::new(config(), NodeKey::from_seed([seed; 32]), descriptors);
        RunningNode::spawn(setup, 1024).unwrap()
    };
    let source = small(21);
    let sink = small(22);
    sink.handle().add_peer(address(&source)).unwrap();
    let mut source_events = Vec::new();
    collect_until(
        source.inbound().unwrap(),
        &mut source_events,
        Duration::from_secs(30),
        |e| !ups(e).is_empty(),
    );
    let mut sink_events = Vec::new();
    collect_until(
        sink.inbound().unwrap(),
        &mut sink_events,
        Duration::from_secs(30),
        |e| !ups(e).is_empty(),
    );

    let handle = source.handle();
    for seq in 0..COUNT {
        let message = Bytes::from(vec![seq as u8; 4096]);
        handle
            .send(Envelope::to_peer(sink.node_id(), UNICAST, message))
            .unwrap();
    }
    handle
        .report_error(PeerError {
            node: sink.node_id(),
            reason: "test: disconnect after the sends".into(),
            fatal: true,
        })
        .unwrap();
    collect_until(
        sink.inbound().unwrap(),
        &mut sink_events,
        Duration::from_secs(30),
        |e| {
            e.iter()
                .any(|e| matches!(e, AppEvent::PeerUpdate(u) if u.status == PeerStatus::Down))
        },
    );
    let got: Vec<u8> = messages(&sink_events, UNICAST)
        .iter()
        .map(|(_, m)| m[0])
        .collect();
    let sent: Vec<u8> = (0..COUNT as u8).collect();
    assert_eq!(
        got, sent,
        "every message sent before the close arrived, in order"
    );
    for node in [source, sink] {
        node.stop().unwrap();
    }
}
