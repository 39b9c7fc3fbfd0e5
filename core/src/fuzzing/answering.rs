//! Fuzz body of an answering `PeerConnection` (a listener shared by several networks): a
//! dialer completes the real SecretConnection handshake, then sends hostile plaintext where
//! its NodeInfo belongs, or right behind a valid one, while we have not answered yet.

use bytes::BytesMut;
use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{chunks, fixture_node_info, LOCAL_IDENTITY_SEED, PEER_IDENTITY_SEED};
use crate::connection::{PeerConfig, PeerConnection, PeerEvent};
use crate::node_info::NodeInfo;
use crate::secret::{SecretConfig, SecretConnection};
use crate::NodeKey;

fn info(key: &NodeKey) -> NodeInfo {
    fixture_node_info(key, "fuzz", &[0x00, 0x20])
}

/// `data[0]` bit 0: the dialer first sends a valid NodeInfo (1) or only the hostile bytes
/// (0); `data[1]`: the split schedule; the rest: plaintext the dialer sends, sealed. The
/// answering side must never panic, must close rather than hold more than
/// `max_node_info_size` behind the dialer's NodeInfo, and after [`PeerConnection::answer`]
/// be either authenticated or closed.
pub fn answering_connection(data: &[u8]) {
    let (mode, schedule, hostile) = match data {
        [mode, schedule, rest @ ..] => (*mode, *schedule, rest),
        _ => return,
    };
    let now = crate::test_clock::epoch();
    let ours = NodeKey::from_seed(LOCAL_IDENTITY_SEED);
    let theirs = NodeKey::from_seed(PEER_IDENTITY_SEED);
    let mut us = PeerConnection::answering(
        now,
        &ours,
        PeerConfig::default(),
        &mut ChaCha20Rng::seed_from_u64(1),
    );
    let mut dialer = SecretConnection::new(
        &theirs,
        &mut ChaCha20Rng::seed_from_u64(2),
        SecretConfig::default(),
    );
    let mut out = BytesMut::new();
    for _ in 0..4 {
        out.clear();
        while us.poll_transmit(now, &mut out) {}
        let _ = dialer.handle_input(&out);
        out.clear();
        while dialer.poll_transmit(&mut out) {}
        let _ = us.handle_input(now, &out);
    }
    // Fixed keys and seeds: a failed handshake here is a bug, not a fuzz finding.
    assert!(dialer.is_established(), "fuzz setup handshake failed");
    let mut plaintext = Vec::new();
    if mode & 1 == 1 {
        let ours = tmp2p_proto::p2p::DefaultNodeInfo::from(&info(&theirs));
        plaintext.extend(ours.encode_length_delimited_to_vec());
    }
    plaintext.extend_from_slice(hostile);
    if dialer.send(&plaintext).is_err() {
        return;
    }
    out.clear();
    while dialer.poll_transmit(&mut out) {}
    for piece in chunks(&out, schedule) {
        if us.handle_input(now, piece).is_err() {
            assert!(us.is_closed(), "an error must close the connection");
            break;
        }
    }
    if mode & 1 == 1 && hostile.len() > PeerConfig::default().max_node_info_size {
        // Everything behind a valid NodeInfo waits for our answer, within the limit.
        assert!(us.is_closed(), "held more than the limit before answering");
    }
    if us.peer_info().is_some() {
        us.answer(now, info(&ours), PeerConfig::default());
        let first = us.poll_event();
        assert!(
            matches!(
                first,
                Some(PeerEvent::Authenticated { .. } | PeerEvent::Closed { .. })
            ),
            "after the answer: {first:?}"
        );
    }
    while us.poll_event().is_some() {}
    let mut sink = BytesMut::new();
    while us.poll_transmit(now, &mut sink) {}
    us.handle_timeout(now + PeerConfig::default().handshake_timeout);
}
