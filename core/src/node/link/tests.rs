//! The close phase of a [`Link`] against a peer's `PeerConnection` in memory: the link
//! holds its `Closed` until the node's verdict and the application's deliveries, gives up
//! at the close linger, and waits for the peer's EOF.

use std::time::Duration;

use super::*;
use crate::fuzzing::{fixture_admit, fixture_exchange, fixture_link_pair, FIXTURE_CHANNEL};
use crate::test_clock::epoch;

const CHANNEL: u8 = FIXTURE_CHANNEL;
const LINGER: Duration = Duration::from_secs(5);

fn pair(now: Instant) -> (Link, PeerConnection, NodeId) {
    fixture_link_pair(now, LINGER)
}

fn exchange(now: Instant, link: &mut Link, peer: &mut PeerConnection) {
    fixture_exchange(now, link, peer);
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
    link.handle_command(now, fixture_admit(peer, now, false));
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

#[test]
fn a_peer_refused_without_closing_does_not_keep_the_link() {
    let now = epoch();
    let (mut link, mut peer, _) = pair(now);
    exchange(now, &mut link, &mut peer);
    let _ = reports(&mut link);
    // The node refuses the peer (no Admit); the peer never sends its EOF.
    link.handle_command(now, LinkCommand::Close);
    exchange(now, &mut link, &mut peer);
    assert!(reports(&mut link).iter().any(is_closed));
    assert!(
        link.is_finished(),
        "nothing of the application's to wait for"
    );
}

#[test]
fn the_node_machines_own_messages_come_before_a_held_closed() {
    let now = epoch();
    let (mut link, peer) = peer_sends_and_closes(now);
    let _ = reports(&mut link);
    // The channel is the node machine's (as PEX is): its messages are reported to the
    // node, before the peer's `Closed`.
    link.handle_command(now, fixture_admit(peer, now, true));
    let after = reports(&mut link);
    let messages = after
        .iter()
        .filter(|r| matches!(r, LinkReport::Event(PeerEvent::Message { .. })))
        .count();
    assert_eq!(messages, 3, "{after:?}");
    assert!(after.last().is_some_and(is_closed), "{after:?}");
}
