//! Fuzz body of a node's [`Link`] through its whole life, the close phase above all: after
//! a real handshake with a dialing peer, the fuzzer interleaves the peer's messages and
//! hostile bytes, EOF, the node's verdict and close commands, the application's taking or
//! refusing of messages, and time. Besides never panicking, the link must never keep a
//! deadline that has passed (a driver would spin on it), report `Closed` at most once and
//! last, and, left alone with time passing, always come to an end.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{fixture_node_info, LOCAL_IDENTITY_SEED, PEER_IDENTITY_SEED};
use crate::connection::{Direction, PeerConfig, PeerConnection, PeerEvent};
use crate::mconn::ChannelDescriptor;
use crate::node::{Link, LinkCommand, LinkReport, Node};
use crate::node_config::NodeConfig;
use crate::peer_manager::ClockAnchor;
use crate::router::{OverflowPolicy, PeerCounters, PeerOrigin};
use crate::{NodeId, NodeKey};

/// The channel the fixture's node and peer share.
pub const FIXTURE_CHANNEL: u8 = 0x30;
/// The fixture node's listen address and its peer's address.
const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 26656));
const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000));

fn descriptor() -> ChannelDescriptor {
    ChannelDescriptor {
        id: FIXTURE_CHANNEL,
        priority: 1,
        send_queue_capacity: 16,
        recv_message_capacity: 1 << 20,
    }
}

/// A node's link for an inbound connection (its parameters as the node machine gives them
/// from `accept`, with `close_linger`), the dialing peer's connection, and the peer's id.
/// Nothing has been exchanged yet.
pub fn fixture_link_pair(now: Instant, close_linger: Duration) -> (Link, PeerConnection, NodeId) {
    let key = NodeKey::from_seed(LOCAL_IDENTITY_SEED);
    let mut config = NodeConfig::new("fuzz", LISTEN);
    config.close_linger = close_linger;
    let clock = ClockAnchor {
        instant: now,
        since_unix_epoch: Duration::from_secs(1_700_000_000),
    };
    let rng = ChaCha20Rng::seed_from_u64(1);
    let Ok(mut node) = Node::new(&config, key.node_id(), clock, now, Vec::new(), rng) else {
        panic!("fixture node refused its configuration");
    };
    let opened = node.open_channel(descriptor(), OverflowPolicy::Backpressure);
    assert!(
        opened.is_ok() && node.start(now).is_ok(),
        "fixture node start"
    );
    let Ok(params) = node.accept(now, PEER) else {
        panic!("fixture node refused the peer");
    };
    let settings = node.link_settings();
    let link = Link::new(
        now,
        &key,
        params,
        settings,
        &mut ChaCha20Rng::seed_from_u64(2),
    );
    let peer_key = NodeKey::from_seed(PEER_IDENTITY_SEED);
    let peer_info = fixture_node_info(&peer_key, "fuzz", &[FIXTURE_CHANNEL]);
    let peer_config = PeerConfig {
        channels: vec![descriptor()],
        ..PeerConfig::default()
    };
    let expected = key.node_id();
    let direction = Direction::Outbound { expected };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let peer = PeerConnection::new(now, &peer_key, peer_info, direction, peer_config, &mut rng);
    (link, peer, peer_key.node_id())
}

/// The node's verdict on the fixture's peer: admitted, with its counters; with
/// `internal`, the fixture's channel is the node machine's own (its messages are reported
/// to the node, not delivered).
pub fn fixture_admit(peer: NodeId, now: Instant, internal: bool) -> LinkCommand {
    let peer_key = NodeKey::from_seed(PEER_IDENTITY_SEED);
    let origin = PeerOrigin {
        outbound: false,
        remote: PEER,
        since: now,
        info: Arc::new(fixture_node_info(&peer_key, "fuzz", &[FIXTURE_CHANNEL])),
    };
    LinkCommand::Admit {
        peer,
        internal: if internal {
            vec![FIXTURE_CHANNEL]
        } else {
            Vec::new()
        },
        counters: Arc::new(PeerCounters::new(peer, [FIXTURE_CHANNEL], origin)),
    }
}

/// Moves bytes both ways until neither side has more; the link's reports stay queued.
pub fn fixture_exchange(now: Instant, link: &mut Link, peer: &mut PeerConnection) {
    for _ in 0..100 {
        let mut out = BytesMut::new();
        while link.poll_transmit(now, &mut out) {}
        let _ = peer.handle_input(now, &out);
        let mut back = BytesMut::new();
        while peer.poll_transmit(now, &mut back) {}
        if out.is_empty() && back.is_empty() {
            return;
        }
        let _ = link.handle_input(now, &back);
    }
}

/// What the body has seen of the link's reports.
#[derive(Default)]
struct Seen {
    closed: bool,
}

impl Seen {
    /// Takes every report: `Closed` comes once, and nothing after it.
    fn drain(&mut self, link: &mut Link) {
        while let Some(report) = link.poll_report() {
            assert!(!self.closed, "a report after Closed: {report:?}");
            self.closed |= matches!(report, LinkReport::Event(PeerEvent::Closed { .. }));
        }
    }
}

/// Each byte of `data` is one step (some take the next byte as an argument): see the
/// match below. After the steps the link is left alone while time passes; it must end.
pub fn link_close_phase(data: &[u8]) {
    let start = crate::test_clock::epoch();
    let mut now = start;
    let linger = Duration::from_secs(5);
    let (mut link, mut peer, peer_id) = fixture_link_pair(now, linger);
    fixture_exchange(now, &mut link, &mut peer);
    let mut seen = Seen::default();
    let mut bytes = data.iter().copied();
    let mut held = None;
    while let Some(step) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        match step % 13 {
            0 => {
                let message = Bytes::from(vec![arg; usize::from(arg) * 8]);
                let _ = peer.send(now, FIXTURE_CHANNEL, message);
                fixture_exchange(now, &mut link, &mut peer);
            }
            1 => {
                let hostile: Vec<u8> = bytes.by_ref().take(usize::from(arg)).collect();
                let _ = link.handle_input(now, &hostile);
            }
            2 => link.handle_eof(now),
            3 => link.handle_command(now, fixture_admit(peer_id, now, arg % 2 == 1)),
            4 => link.handle_command(now, LinkCommand::Close),
            5 => link.handle_command(now, LinkCommand::Stop),
            6 => {
                now += Duration::from_millis(u64::from(arg) * 50);
                link.handle_timeout(now);
            }
            7 => match (link.poll_delivery(), arg % 2) {
                (Some(envelope), 0) => held = Some(envelope),
                (Some(envelope), _) => link.refused(envelope),
                (None, _) => {}
            },
            8 => link.has_room(FIXTURE_CHANNEL),
            9 => link.channel_full(FIXTURE_CHANNEL),
            10 => link.discard_inbound(),
            11 => fixture_exchange(now, &mut link, &mut peer),
            _ => {
                peer.handle_eof();
                fixture_exchange(now, &mut link, &mut peer);
            }
        }
        seen.drain(&mut link);
        let _ = link.recv_allowance(now);
    }
    drop(held);
    // Left alone: time passes from deadline to deadline; every deadline moves on once
    // handled, and the link ends (the peer goes silent, so pings time out, the connection
    // closes, and the close linger ends the rest).
    let horizon = start + Duration::from_secs(24 * 3600);
    for _ in 0..100_000 {
        seen.drain(&mut link);
        if link.is_finished() {
            return;
        }
        let Some(at) = link.poll_timeout() else {
            panic!("a link that is not finished has no deadline");
        };
        assert!(at < horizon, "a deadline a day away");
        now = now.max(at);
        link.handle_timeout(now);
        let next = link.poll_timeout();
        assert!(
            next.is_none_or(|next| next > now) || link.is_finished(),
            "a deadline that stays in the past: {next:?} at {now:?}"
        );
    }
    panic!("the link never finished");
}
