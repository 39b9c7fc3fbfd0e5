//! The close phase of a [`Link`] against a peer's `PeerConnection` in memory: the link
//! holds its `Closed` until the node's verdict and the application's deliveries, gives up
//! at the close linger, and waits for the peer's EOF.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::connection::{Direction, PeerConfig};
use crate::mconn::ChannelDescriptor;
use crate::node::Node;
use crate::node_config::NodeConfig;
use crate::peer_manager::ClockAnchor;
use crate::router::{OverflowPolicy, PeerOrigin};
use crate::test_clock::epoch;

const CHANNEL: u8 = 0x30;
const LINGER: Duration = Duration::from_secs(5);

fn descriptor() -> ChannelDescriptor {
    ChannelDescriptor {
        id: CHANNEL,
        priority: 1,
        send_queue_capacity: 16,
        recv_message_capacity: 1 << 20,
    }
}

/// A node's link for an inbound connection (the parameters as the node machine gives
/// them), the dialing peer's connection, and the peer's id.
fn pair(now: Instant) -> (Link, PeerConnection, NodeId) {
    let key = NodeKey::from_seed([1; 32]);
    let mut config = NodeConfig::new("chain", "127.0.0.1:26656".parse().unwrap());
    config.close_linger = LINGER;
    let clock = ClockAnchor {
        instant: now,
        since_unix_epoch: Duration::from_secs(1_700_000_000),
    };
    let rng = ChaCha20Rng::seed_from_u64(1);
    let mut node = Node::new(&config, key.node_id(), clock, now, Vec::new(), rng).unwrap();
    node.open_channel(descriptor(), OverflowPolicy::Backpressure)
        .unwrap();
    node.start(now).unwrap();
    let remote: SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let params = node.accept(now, remote).unwrap();
    let link = Link::new(
        now,
        &key,
        params,
        node.link_settings(),
        &mut ChaCha20Rng::seed_from_u64(2),
    );
    let peer_key = NodeKey::from_seed([2; 32]);
    let peer_info = crate::fuzzing::fixture_node_info(&peer_key, "chain", &[CHANNEL]);
    let peer_config = PeerConfig {
        channels: vec![descriptor()],
        ..PeerConfig::default()
    };
    let peer = PeerConnection::new(
        now,
        &peer_key,
        peer_info,
        Direction::Outbound {
            expected: key.node_id(),
        },
        peer_config,
        &mut ChaCha20Rng::seed_from_u64(3),
    );
    (link, peer, peer_key.node_id())
}

/// Moves bytes both ways until neither side has more; the link's reports stay queued.
fn exchange(now: Instant, link: &mut Link, peer: &mut PeerConnection) {
    for _ in 0..100 {
        let mut out = BytesMut::new();
        while link.poll_transmit(now, &mut out) {}
        let mut back = BytesMut::new();
        let _ = peer.handle_input(now, &out);
        while peer.poll_transmit(now, &mut back) {}
        if out.is_empty() && back.is_empty() {
            return;
        }
        let _ = link.handle_input(now, &back);
    }
    panic!("the pair never went quiet");
}

/// The peer authenticates, sends three messages and closes before the node's verdict
/// reached the link.
fn peer_sends_and_closes(now: Instant) -> (Link, NodeId) {
    let (mut link, mut peer, peer_id) = pair(now);
    exchange(now, &mut link, &mut peer);
    for i in 0..3u8 {
        peer.send(now, CHANNEL, Bytes::from(vec![i; 10])).unwrap();
    }
    exchange(now, &mut link, &mut peer);
    link.handle_eof(now);
    (link, peer_id)
}

fn reports(link: &mut Link) -> Vec<LinkReport> {
    std::iter::from_fn(|| link.poll_report()).collect()
}

fn is_closed(report: &LinkReport) -> bool {
    matches!(report, LinkReport::Event(PeerEvent::Closed { .. }))
}

fn admit(now: Instant, link: &mut Link, peer: NodeId) {
    let origin = PeerOrigin {
        outbound: false,
        remote: "10.0.0.2:40000".parse().unwrap(),
        since: now,
        info: Arc::new(crate::fuzzing::fixture_node_info(
            &NodeKey::from_seed([2; 32]),
            "chain",
            &[CHANNEL],
        )),
    };
    let counters = Arc::new(PeerCounters::new(peer, [CHANNEL], origin));
    let admit = LinkCommand::Admit {
        peer,
        internal: Vec::new(),
        counters,
    };
    link.handle_command(now, admit);
}

#[test]
fn a_peer_that_closes_before_the_verdict_is_heard_once_admitted() {
    let now = epoch();
    let (mut link, peer) = peer_sends_and_closes(now);
    let first = reports(&mut link);
    assert!(
        matches!(
            first.first(),
            Some(LinkReport::Event(PeerEvent::Authenticated { .. }))
        ),
        "{first:?}"
    );
    assert!(!first.iter().any(is_closed), "Closed waits for the verdict");
    assert!(!link.is_finished());
    admit(now, &mut link, peer);
    assert!(
        !reports(&mut link).iter().any(is_closed),
        "and the application"
    );
    let got: Vec<u8> = std::iter::from_fn(|| link.poll_delivery())
        .map(|e| e.message[0])
        .collect();
    assert_eq!(got, vec![0, 1, 2]);
    assert!(reports(&mut link).iter().any(is_closed));
    assert!(link.is_finished(), "closed and at EOF");
}

#[test]
fn a_refused_peer_closes_at_once_and_its_messages_are_counted() {
    let now = epoch();
    let (mut link, _) = peer_sends_and_closes(now);
    let counters = Arc::clone(&link.counters);
    assert!(!reports(&mut link).iter().any(is_closed));
    link.handle_command(now, LinkCommand::Close);
    assert!(reports(&mut link).iter().any(is_closed));
    assert!(link.is_finished());
    drop(link);
    assert_eq!(counters.snapshot().undelivered_inbound, 3);
}

#[test]
fn the_close_linger_ends_the_wait_for_the_application_and_for_eof() {
    let now = epoch();
    let (mut link, peer) = peer_sends_and_closes(now);
    let _ = reports(&mut link);
    admit(now, &mut link, peer);
    // The application takes nothing: the link waits one close linger from the close.
    assert_eq!(link.poll_timeout(), Some(now + LINGER));
    link.handle_timeout(now + LINGER - Duration::from_millis(1));
    assert!(!reports(&mut link).iter().any(is_closed));
    link.handle_timeout(now + LINGER);
    assert!(reports(&mut link).iter().any(is_closed));
    assert!(link.gave_up() && link.is_finished());
}

#[test]
fn after_our_close_the_link_reads_on_to_the_peers_eof_discarding() {
    let now = epoch();
    let (mut link, mut peer, peer_id) = pair(now);
    exchange(now, &mut link, &mut peer);
    let _ = reports(&mut link);
    admit(now, &mut link, peer_id);
    link.handle_command(now, LinkCommand::Stop);
    exchange(now, &mut link, &mut peer);
    assert!(link.is_closed());
    assert!(reports(&mut link).iter().any(is_closed));
    assert!(!link.is_finished(), "waits for the peer's EOF");
    assert!(link.wants_input(), "and reads on until it");
    assert_eq!(link.handle_input(now, b"late bytes"), Ok(()), "discarded");
    assert_eq!(link.poll_delivery(), None);
    link.handle_eof(now + Duration::from_millis(10));
    assert!(link.is_finished());
    assert!(!link.wants_input());
}
