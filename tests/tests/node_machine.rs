//! The node machine (`tmp2p_core::node`) driven as a driver drives it, over the shared
//! in-memory network (`tmp2p_tests::memnet`): messages in order, backpressure towards a
//! peer that stops reading (without holding up another peer, without loss), the close
//! linger, a fatal undecodable typed message, and PEX hosted inside the machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node::{Node, NodeError, PexEvent};
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::router::window::Reserve;
use tmp2p_core::router::{Envelope, OverflowPolicy, PeerError, SendError};
use tmp2p_core::typed::echo::EchoInner;
use tmp2p_core::typed::{RawCodec, WrapperCodec};
use tmp2p_core::NodeId;
use tmp2p_proto::echo::EchoMessage;
use tmp2p_tests::memnet::MemNet;

const DATA: u8 = 0x20;

fn descriptor(id: u8) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority: 1,
        send_queue_capacity: 4,
        recv_message_capacity: 1 << 20,
    }
}

fn data_channel(_: usize, node: &mut Node) {
    node.open_channel(descriptor(DATA), OverflowPolicy::Backpressure)
        .unwrap();
}

#[test]
fn two_nodes_connect_and_exchange_in_order() {
    let mut net = MemNet::new(2, |_, _| {}, data_channel);
    net.connect(0, 1);
    assert_eq!(net.nodes[0].node.connected_peers().count(), 1);
    let id1 = net.id(1);
    for n in 0..50u8 {
        let message = Bytes::from(vec![n; 3000]);
        assert_eq!(net.send(0, Envelope::to_peer(id1, DATA, message)), Ok(1));
    }
    let got: Vec<u8> = net.nodes[1].messages(DATA).iter().map(|m| m[0]).collect();
    assert_eq!(got, (0..50).collect::<Vec<u8>>());
    assert_eq!(net.nodes[0].node.counters().snapshot().sent_messages, 50);
}

/// Node 0 with peers 1 and 2 on 8-message queues and 4 messages of credit; node 1 has
/// stopped reading.
fn two_peers_of_node_0_one_deaf() -> (MemNet, NodeId, NodeId) {
    let mut net = MemNet::new(
        3,
        |_, c| {
            c.router.channel_queue_messages = 8;
            c.router.send_credit = 4;
        },
        data_channel,
    );
    net.connect(1, 0);
    net.connect(2, 0);
    let (id1, id2) = (net.id(1), net.id(2));
    net.deaf.insert(1);
    (net, id1, id2)
}

#[test]
fn a_peer_that_stops_reading_fills_its_window_and_the_rest_waits_without_loss() {
    let (mut net, id1, id2) = two_peers_of_node_0_one_deaf();
    let mut accepted = 0u32;
    let refused = loop {
        let message = Bytes::from(vec![accepted as u8; 16_000]);
        match net.send(0, Envelope::to_peer(id1, DATA, message)) {
            Ok(_) => accepted += 1,
            Err(SendError::Full { envelope, peers }) => {
                assert_eq!(peers, vec![id1]);
                break envelope;
            }
            Err(error) => panic!("{error}"),
        }
        assert!(accepted < 1000, "a deaf peer's window never filled");
    };
    // The other peer is not held up.
    let other = Envelope::to_peer(id2, DATA, Bytes::from_static(b"other"));
    assert_eq!(net.send(0, other), Ok(1));
    assert_eq!(net.nodes[2].messages(DATA).len(), 1);
    // Node 1 reads again: room is announced, the refused message goes out after the rest.
    net.deaf.clear();
    net.settle();
    assert_eq!(net.nodes[0].writable, vec![(id1, DATA)]);
    net.send(0, refused).unwrap();
    let got: Vec<u32> = net.nodes[1]
        .messages(DATA)
        .iter()
        .map(|m| u32::from(m[0]))
        .collect();
    assert_eq!(got, (0..=accepted).map(|n| n % 256).collect::<Vec<_>>());
    assert_eq!(net.nodes[0].node.counters().snapshot().dropped(), 0);
}

/// A driver's senders' windows, kept only from `NodeOutput::Windows`, stay in step with
/// the node machine: a deaf peer's window fills exactly when the Router would refuse (so
/// the node never has to), every message handed to its connection frees its room, and a
/// peer's windows exist before its `Up` reaches the application and are gone before its
/// `Down` does.
#[test]
fn window_changes_keep_a_drivers_windows_in_step_with_the_node() {
    let (mut net, id1, id2) = two_peers_of_node_0_one_deaf();
    let mut reserved = 0usize;
    loop {
        let message = Bytes::from(vec![reserved as u8; 16_000]);
        match net.send_reserved(0, id1, DATA, message) {
            Ok(sent) => assert_eq!(sent, Ok(1), "the node refused a reserved message"),
            Err(Reserve::Full) => break,
            Err(other) => panic!("{other:?}"),
        }
        reserved += 1;
        assert!(reserved < 1000, "a deaf peer's window never filled");
    }
    // The Router's queue (8) is full, and its connection holds what its credit allowed.
    assert!(reserved > 8, "{reserved}");
    let other = net.send_reserved(0, id2, DATA, Bytes::from_static(b"other"));
    assert_eq!(other, Ok(Ok(1)), "the other peer is not held up");

    net.deaf.clear();
    net.settle();
    assert_eq!(net.nodes[1].messages(DATA).len(), reserved);
    let windows = &mut net.nodes[0].windows;
    for _ in 0..8 {
        let reserved = windows.try_reserve(id1, DATA, 1);
        assert!(matches!(reserved, Reserve::Reserved(_)), "{reserved:?}");
    }
    assert_eq!(windows.try_reserve(id1, DATA, 1), Reserve::Full);

    let now = net.now;
    net.nodes[0].node.disconnect(now, id2).unwrap();
    net.settle();
    assert_eq!(
        net.nodes[0].windows.try_reserve(id2, DATA, 1),
        Reserve::NotConnected
    );
    let seen = &net.nodes[0].windows_at_update;
    assert!(seen.contains(&(id2, PeerStatus::Down, false)), "{seen:?}");
    for (peer, status, known) in seen {
        assert_eq!(*known, *status == PeerStatus::Up, "{peer} {status:?}");
    }
    assert_eq!(net.nodes[0].node.counters().snapshot().dropped(), 0);
}

/// A connection starts delivering to the application (its `Admit`) only once the driver's
/// windows know its peer: an application that answers the peer's first message at once
/// (an echo reactor on another thread) must find the peer's window, not `NotConnected`.
#[test]
fn a_peer_has_its_windows_before_its_connection_delivers() {
    let mut net = MemNet::new(3, |_, _| {}, data_channel);
    net.connect(1, 0);
    net.connect(2, 0);
    for node in [0, 1, 2] {
        let admitted = &net.nodes[node].windows_at_admit;
        assert!(!admitted.is_empty());
        assert!(
            admitted.iter().all(|(_, known)| *known),
            "node {node}: {admitted:?}"
        );
    }
}

/// A message reserved against a peer's connection that is gone by the time it reaches the
/// node (the peer reconnected meanwhile) is dropped and counted as the peer's loss, not
/// queued on the new connection, whose window never counted it: the windows and the
/// Router stay in step.
#[test]
fn a_message_reserved_against_a_gone_connection_is_dropped_and_counted() {
    let mut net = MemNet::new(2, |_, _| {}, data_channel);
    net.connect(1, 0);
    let id1 = net.id(1);
    let Reserve::Reserved(stale) = net.nodes[0].windows.try_reserve(id1, DATA, 4) else {
        panic!("no room on a fresh connection");
    };
    // The peer reconnects before the reserved message reaches the node machine.
    let now = net.now;
    net.nodes[0].node.disconnect(now, id1).unwrap();
    net.settle();
    assert!(net.nodes[0].saw_down(id1));
    net.advance(Duration::from_secs(2));
    assert_eq!(
        net.nodes[0].node.connected_peers().collect::<Vec<_>>(),
        vec![id1]
    );

    let before = net.nodes[0].node.counters().snapshot().dropped_peer_gone;
    let late = Envelope::to_peer(id1, DATA, Bytes::from_static(b"late"));
    let now = net.now;
    assert_eq!(
        net.nodes[0].node.send_reserved(now, late, stale),
        Err(SendError::NotConnected)
    );
    net.settle();
    let after = net.nodes[0].node.counters().snapshot().dropped_peer_gone;
    assert_eq!(after, before + 1);
    assert!(!net.nodes[1]
        .messages(DATA)
        .contains(&Bytes::from_static(b"late")));
    // The new connection's window is whole, and a send reserved against it goes out.
    let fresh = net.send_reserved(0, id1, DATA, Bytes::from_static(b"fresh"));
    assert_eq!(fresh, Ok(Ok(1)));
    assert!(net.nodes[1]
        .messages(DATA)
        .contains(&Bytes::from_static(b"fresh")));
}

#[test]
fn a_close_towards_a_peer_that_stopped_reading_gives_up_after_the_linger() {
    let linger = Duration::from_secs(2);
    let mut net = MemNet::new(2, |_, c| c.close_linger = linger, data_channel);
    net.connect(1, 0);
    let id1 = net.id(1);
    net.deaf.insert(1);
    while net
        .send(
            0,
            Envelope::to_peer(id1, DATA, Bytes::from(vec![7; 16_000])),
        )
        .is_ok()
    {}
    net.nodes[0].node.report_error(
        net.now,
        PeerError {
            node: id1,
            reason: "test".into(),
            fatal: true,
        },
    );
    net.settle();
    assert!(
        !net.nodes[0].saw_down(id1),
        "the close waits for the sends before it"
    );
    net.advance(linger - Duration::from_millis(1));
    assert!(!net.nodes[0].saw_down(id1));
    net.advance(Duration::from_millis(1));
    assert!(net.nodes[0].saw_down(id1), "given up at the linger");
    assert!(net.nodes[0].node.counters().snapshot().dropped_peer_gone > 0);
}

#[test]
fn an_undecodable_typed_message_is_fatal_for_its_sender() {
    let mut net = MemNet::new(2, |_, _| {}, data_channel);
    net.connect(1, 0);
    let id0 = net.id(0);
    // Channel 0x20 carries echo messages at node 0; node 1 sends bytes that are not one.
    net.send(
        1,
        Envelope::to_peer(id0, DATA, Bytes::from_static(&[0xff, 0xff])),
    )
    .unwrap();
    let envelope = net.nodes[0].delivered.pop().unwrap();
    let now = net.now;
    let codec = WrapperCodec::<EchoMessage, EchoInner>::new();
    assert!(net.nodes[0].node.decode(now, &codec, envelope).is_none());
    net.settle();
    assert!(net.nodes[0].saw_down(net.id(1)));
    // The same bytes on a raw channel are a message like any other.
    let raw = Envelope {
        from: Some(net.id(1)),
        to: None,
        channel: DATA,
        message: Bytes::from_static(&[0xff, 0xff]),
    };
    let decoded = net.nodes[0].node.decode(now, &RawCodec, raw);
    assert_eq!(decoded.as_deref(), Some(&[0xff, 0xff][..]));
}

#[test]
fn pex_runs_inside_the_node_machine_and_a_node_learns_its_peers_peer() {
    let mut net = MemNet::new(
        3,
        |_, _| {},
        |_, node| {
            data_channel(0, node);
            node.enable_pex(PexConfig::default()).unwrap();
        },
    );
    net.connect(1, 0);
    net.connect(2, 1);
    // Node 2 only knows node 1; node 1's answer carries node 0's address.
    for _ in 0..20 {
        net.advance(Duration::from_secs(1));
    }
    let id0 = net.id(0);
    assert!(
        net.nodes[2].node.connected_peers().any(|p| p == id0),
        "learned by PEX and dialed"
    );
    assert!(net.nodes[2]
        .pex
        .iter()
        .any(|e| matches!(e, PexEvent::Learned { count, .. } if *count > 0)));
    assert!(
        net.nodes[2].messages(DATA).is_empty(),
        "PEX messages never reach the application"
    );
}

#[test]
fn channels_are_fixed_once_started() {
    let mut net = MemNet::new(1, |_, _| {}, data_channel);
    assert_eq!(
        net.nodes[0]
            .node
            .open_channel(descriptor(0x21), OverflowPolicy::Drop),
        Err(NodeError::AlreadyStarted)
    );
    assert_eq!(
        net.nodes[0].node.start(net.now),
        Err(NodeError::AlreadyStarted)
    );
}

#[test]
fn the_counters_count_dials_handshakes_and_traffic_by_outcome() {
    let mut net = MemNet::new(
        3,
        |i, config| {
            if i == 2 {
                config.network = "elsewhere".into();
            }
        },
        data_channel,
    );
    net.connect(0, 1);
    let id1 = net.id(1);
    for n in 0..10u8 {
        net.send(0, Envelope::to_peer(id1, DATA, Bytes::from(vec![n; 100])))
            .unwrap();
    }
    // Another network: the handshake completes the key exchange and fails on NodeInfo.
    net.connect(0, 2);
    // Nobody listens at this address: the connect fails.
    let nobody = tmp2p_core::address::NodeAddress::parse(&format!(
        "{}@10.0.0.99:26656",
        tmp2p_core::NodeKey::from_seed([99; 32]).node_id()
    ))
    .unwrap();
    let now = net.now;
    net.nodes[0].node.add_peer(now, nobody).unwrap();
    net.settle();
    let at0 = net.nodes[0].node.counters().snapshot();
    assert_eq!((at0.dials_succeeded, at0.dials_failed), (2, 1), "{at0:?}");
    assert_eq!(at0.handshakes_succeeded, 1, "{at0:?}");
    assert_eq!(at0.handshakes_incompatible, 1, "{at0:?}");
    assert_eq!((at0.sent_messages, at0.sent_bytes), (10, 1000));
    let at1 = net.nodes[1].node.counters().snapshot();
    assert_eq!((at1.received_messages, at1.received_bytes), (10, 1000));
    assert_eq!(at1.handshakes_succeeded, 1);
    assert_eq!(at1.dials_succeeded, 0, "node 1 only accepted");
}
