//! Unit tests of the PEX reactor against a real PeerManager.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::address::NetAddress;
use crate::peer_manager::{ClockAnchor, PeerManager, PeerManagerOptions};
use crate::typed::ChannelCodec;

use crate::test_clock::epoch;

fn id(i: u8) -> NodeId {
    NodeId::from_public_key(&[i; 32])
}

fn addr(i: u8, ip: &str) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{ip}:26656", id(i))).unwrap()
}

fn proto(i: u8, ip: &str, port: u32) -> ProtoNetAddress {
    ProtoNetAddress {
        id: id(i).to_string(),
        ip: ip.to_owned(),
        port,
    }
}

fn codec() -> WrapperCodec<Message, PexInner> {
    WrapperCodec::new()
}

fn request() -> Bytes {
    codec().encode(&PexInner::Request(PexRequest {}))
}

fn response(addrs: Vec<ProtoNetAddress>) -> Bytes {
    codec().encode(&PexInner::Addrs(PexAddrs { addrs }))
}

struct Fixture {
    pm: PeerManager,
    pex: PexReactor,
    now: Instant,
    rng: ChaCha20Rng,
}

const SELF: u8 = 200;

fn options() -> PeerManagerOptions {
    PeerManagerOptions {
        max_peers: 500,
        max_connected: 64,
        max_outgoing_connections: 32,
        self_address: Some(addr(SELF, "9.9.9.9")),
        ..PeerManagerOptions::default()
    }
}

impl Fixture {
    fn new(config: PexConfig) -> Self {
        Self::with(config, options())
    }

    fn with(config: PexConfig, options: PeerManagerOptions) -> Self {
        let now = epoch();
        let clock = ClockAnchor {
            instant: now,
            since_unix_epoch: Duration::from_secs(1_700_000_000),
        };
        Fixture {
            pm: PeerManager::new(id(SELF), options, clock).unwrap(),
            pex: PexReactor::new(config).unwrap(),
            now,
            rng: ChaCha20Rng::seed_from_u64(7),
        }
    }

    fn up(&mut self, i: u8) {
        let update = PeerUpdate {
            node_id: id(i),
            status: PeerStatus::Up,
            channels: vec![0, 0x20],
        };
        self.pex.handle_peer_update(self.now, &update, &mut self.pm);
    }

    /// Connects peer `i` at `ip` outbound (dialed) and reports it Up.
    fn outbound(&mut self, i: u8, ip: &str) {
        let address = addr(i, ip);
        self.pm.add(self.now, address.clone()).unwrap();
        // Other stored peers may come first: their dials fail.
        loop {
            let dialed = self.pm.try_dial_next(self.now).unwrap();
            if dialed == address {
                break;
            }
            self.pm.dial_failed(self.now, &dialed, &mut self.rng);
        }
        self.pm.dialed(self.now, &address, ip.parse().ok()).unwrap();
        self.pm.ready(id(i), vec![0]);
        self.up(i);
    }

    /// Connects peer `i` inbound and reports it Up.
    fn inbound(&mut self, i: u8, ip: &str) {
        self.pm.accepted(self.now, id(i), ip.parse().ok()).unwrap();
        self.pm.ready(id(i), vec![0]);
        self.up(i);
    }

    fn deliver(&mut self, from: u8, bytes: Bytes) {
        self.pex
            .handle_message(self.now, id(from), bytes, &mut self.pm, &mut self.rng);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.pex.handle_timeout(self.now, &mut self.pm);
    }

    fn outputs(&mut self) -> Vec<PexOutput> {
        std::iter::from_fn(|| self.pex.poll_output()).collect()
    }

    fn errors(&mut self) -> Vec<PexPeerError> {
        self.outputs()
            .into_iter()
            .filter_map(|o| match o {
                PexOutput::PeerError(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// The PEX messages sent to `to` among the outputs.
    fn sent_to(outputs: &[PexOutput], to: u8) -> Vec<PexInner> {
        outputs
            .iter()
            .filter_map(|o| match o {
                PexOutput::Send(e) if e.to == Some(crate::router::Target::Peer(id(to))) => {
                    assert_eq!(e.channel, PEX_CHANNEL);
                    Some(codec().decode(e.message.clone()).unwrap())
                }
                _ => None,
            })
            .collect()
    }
}

fn is_request(m: &PexInner) -> bool {
    matches!(m, PexInner::Request(_))
}

#[test]
fn config_rejects_an_interval_below_ten_seconds_and_bad_limits() {
    assert!(PexConfig::default().validate().is_ok());
    let short = PexConfig {
        request_interval: Duration::from_secs(9),
        ..PexConfig::default()
    };
    assert!(matches!(
        PexReactor::new(short),
        Err(PexError::RequestIntervalTooShort { min, .. }) if min == Duration::from_secs(10)
    ));
    let too_many = PexConfig {
        max_addresses_sent: 251,
        ..PexConfig::default()
    };
    assert!(matches!(
        too_many.validate(),
        Err(PexError::MaxAddressesSentOutOfRange { max: 250, .. })
    ));
    let ratio = PexConfig {
        full_ratio: f64::NAN,
        ..PexConfig::default()
    };
    assert!(matches!(
        ratio.validate(),
        Err(PexError::InvalidFullRatio(_))
    ));
}

#[test]
fn a_new_peer_is_asked_at_once_with_a_v1_request_and_only_one_is_outstanding() {
    let mut f = Fixture::new(PexConfig::default());
    f.outbound(1, "8.8.8.1");
    let out = f.outputs();
    let PexOutput::Send(envelope) = &out[0] else {
        panic!("{out:?}");
    };
    // tendermint.p2p.Message { pex_request (field 1) = {} }: what CometBFT decodes.
    assert_eq!(&envelope.message[..], &[0x0a, 0x00]);
    assert_eq!(out.len(), 1);
    assert!(f.pex.is_request_outstanding(id(1)));
    // Unanswered: nothing more, even after the interval (the request is still out).
    f.advance(Duration::from_secs(29));
    assert!(f.outputs().is_empty());
}

#[test]
fn a_peer_is_asked_again_only_after_the_interval() {
    let mut f = Fixture::new(PexConfig::default());
    f.outbound(1, "8.8.8.1");
    let start = f.now;
    f.outputs();
    f.deliver(1, response(vec![proto(2, "8.8.8.2", 26656)]));
    assert!(!f.pex.is_request_outstanding(id(1)));
    assert_eq!(f.pex.poll_timeout(), Some(start + Duration::from_secs(30)));
    f.advance(Duration::from_millis(29_999));
    assert!(Fixture::sent_to(&f.outputs(), 1).is_empty());
    f.advance(Duration::from_millis(1));
    let sent = Fixture::sent_to(&f.outputs(), 1);
    assert_eq!(sent.len(), 1);
    assert!(is_request(&sent[0]));
}

#[test]
fn no_request_while_the_store_is_full_and_no_busy_timer() {
    let options = PeerManagerOptions {
        max_peers: 4,
        max_connected: 3,
        max_outgoing_connections: 3,
        ..options()
    };
    let mut f = Fixture::with(PexConfig::default(), options);
    for i in 10..14 {
        f.pm.add(f.now, addr(i, &format!("8.8.{i}.1"))).unwrap();
    }
    assert!(f.pm.peer_ratio() >= 0.95);
    f.inbound(1, "8.8.8.1");
    assert!(f.outputs().is_empty());
    let next = f.pex.poll_timeout().unwrap();
    assert!(next > f.now, "a due timer while not wanting would spin");
    f.advance(Duration::from_secs(30));
    assert!(f.outputs().is_empty());
    assert!(f.pex.poll_timeout().unwrap() > f.now);
}

#[test]
fn answers_with_at_most_100_addresses_self_first_never_private_nor_the_requester() {
    let mut options = options();
    options.private_peers.insert(id(3));
    let mut f = Fixture::with(PexConfig::default(), options);
    f.inbound(1, "8.8.8.1");
    f.pm.add(f.now, addr(1, "8.8.8.1")).unwrap();
    f.pm.add(f.now, addr(3, "8.8.8.3")).unwrap();
    f.pm.add(
        f.now,
        NodeAddress::parse(&format!("{}@name.example:1", id(4))).unwrap(),
    )
    .unwrap();
    for i in 10..125 {
        f.pm.add(f.now, addr(i, &format!("8.{i}.0.1"))).unwrap();
    }
    f.outputs();
    f.deliver(1, request());
    let out = f.outputs();
    let sent = Fixture::sent_to(&out, 1);
    let PexInner::Addrs(addrs) = &sent[0] else {
        panic!("{sent:?}");
    };
    assert_eq!(addrs.addrs.len(), 100);
    assert_eq!(addrs.addrs[0], proto(SELF, "9.9.9.9", 26656));
    for a in &addrs.addrs {
        assert_ne!(a.id, id(1).to_string(), "requester's own address");
        assert_ne!(a.id, id(3).to_string(), "private peer");
        assert_ne!(a.id, id(4).to_string(), "a DNS name cannot be a NetAddress");
    }
}

#[test]
fn an_unsolicited_response_is_fatal() {
    // Our own request went out at Up and was answered; a second answer is unsolicited.
    let mut f2 = Fixture::new(PexConfig::default());
    f2.outbound(1, "8.8.8.1");
    f2.outputs();
    f2.deliver(1, response(vec![]));
    assert!(f2.errors().is_empty());
    f2.deliver(1, response(vec![proto(2, "8.8.8.2", 26656)]));
    let errors = f2.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error, PexError::Unsolicited);
    let peer_error = PeerError::from(errors[0].clone());
    assert!(peer_error.fatal);
    assert_eq!(peer_error.node, id(1));
    assert_eq!(f2.pm.addresses(id(2)), vec![]);
}

#[test]
fn up_to_250_addresses_are_accepted_and_251_is_a_typed_non_fatal_error() {
    let mut f = Fixture::new(PexConfig::default());
    f.outbound(1, "8.8.8.1");
    f.outputs();
    let many = |n: usize| -> Vec<ProtoNetAddress> {
        (0..n)
            .map(|k| ProtoNetAddress {
                id: {
                    let mut key = [0xee; 32];
                    key[0] = k as u8;
                    key[1] = (k >> 8) as u8;
                    NodeId::from_public_key(&key).to_string()
                },
                ip: format!("{}.{}.1.1", 1 + k / 200, k % 200),
                port: 26656,
            })
            .collect()
    };
    f.deliver(1, response(many(251)));
    let errors = f.errors();
    assert_eq!(
        errors[0].error,
        PexError::TooManyAddresses {
            count: 251,
            limit: 250
        }
    );
    assert!(!PeerError::from(errors[0].clone()).fatal);
    assert_eq!(
        f.pm.peer_count(),
        1,
        "nothing of an oversized response is kept"
    );

    f.advance(Duration::from_secs(30));
    f.outputs();
    f.deliver(1, response(many(250)));
    assert!(f.errors().is_empty());
    assert_eq!(f.pm.peer_count(), 251);
}

#[test]
fn bad_entries_are_one_typed_error_and_the_good_ones_are_kept() {
    let mut f = Fixture::new(PexConfig::default());
    f.outbound(1, "8.8.8.1");
    f.outputs();
    let bad_id = ProtoNetAddress {
        id: "xyz".into(),
        ip: "8.8.8.3".into(),
        port: 1,
    };
    f.deliver(
        1,
        response(vec![
            proto(2, "8.8.8.2", 26656),
            bad_id,
            proto(4, "8.8.8.300", 26656),
            proto(5, "8.8.8.5", 70000),
            proto(6, "8.8.8.6", 0),
            proto(7, "8.8.8.7", 26656),
            proto(8, "0.0.0.0", 26656), // not Valid(): dropped silently
        ]),
    );
    let out = f.outputs();
    let errors: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            PexOutput::PeerError(e) => Some(e.error.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(matches!(
        &errors[0],
        PexError::BadAddress {
            index: 1,
            bad: 4,
            error: AddressError::InvalidNodeId(_)
        }
    ));
    assert!(!errors[0].is_fatal());
    assert_eq!(f.pm.addresses(id(2)), vec![addr(2, "8.8.8.2")]);
    assert_eq!(f.pm.addresses(id(7)), vec![addr(7, "8.8.8.7")]);
    for i in [4, 5, 6, 8] {
        assert!(f.pm.addresses(id(i)).is_empty(), "peer {i}");
    }
    let learned = out.iter().find_map(|o| match o {
        PexOutput::Learned { from, addresses } if *from == id(1) => Some(addresses.len()),
        _ => None,
    });
    assert_eq!(learned, Some(2));
}

#[test]
fn requests_faster_than_the_minimum_interval_are_fatal_after_two_free_ones() {
    let mut f = Fixture::new(PexConfig::default());
    f.inbound(1, "8.8.8.1");
    f.outputs();
    f.deliver(1, request());
    f.deliver(1, request());
    let out = f.outputs();
    assert_eq!(Fixture::sent_to(&out, 1).len(), 2, "CometBFT lets two pass");
    f.now += Duration::from_secs(9);
    f.deliver(1, request());
    let errors = f.errors();
    assert!(matches!(
        errors[0].error,
        PexError::RequestTooSoon { elapsed, min } if elapsed == Duration::from_secs(9) && min == Duration::from_secs(10)
    ));
    assert!(PeerError::from(errors[0].clone()).fatal);
    f.now += Duration::from_secs(10);
    f.deliver(1, request());
    let out = f.outputs();
    assert_eq!(Fixture::sent_to(&out, 1).len(), 1);
}

fn learn_from(sender_ip: Option<&str>, strict: bool) -> Vec<NodeId> {
    let config = PexConfig {
        strict,
        ..PexConfig::default()
    };
    let mut f = Fixture::new(config);
    f.inbound(1, "8.8.8.1");
    if let Some(ip) = sender_ip {
        f.pex.set_peer_ip(id(1), ip.parse().unwrap());
    }
    f.outputs();
    assert!(f.pex.is_request_outstanding(id(1)));
    f.deliver(
        1,
        response(vec![
            proto(2, "10.0.0.2", 26656),
            proto(3, "127.0.0.3", 26656),
            proto(4, "8.8.8.4", 26656),
        ]),
    );
    assert!(f.errors().is_empty());
    [2, 3, 4]
        .into_iter()
        .map(id)
        .filter(|&n| !f.pm.addresses(n).is_empty())
        .collect()
}

#[test]
fn strict_mode_drops_non_routable_addresses_from_routable_peers_only() {
    assert_eq!(learn_from(Some("8.8.8.1"), true), vec![id(4)]);
    assert_eq!(
        learn_from(None, true),
        vec![id(4)],
        "unknown IP counts as routable"
    );
    assert_eq!(
        learn_from(Some("10.0.0.1"), true),
        vec![id(2), id(3), id(4)]
    );
    assert_eq!(
        learn_from(Some("8.8.8.1"), false),
        vec![id(2), id(3), id(4)]
    );
}

#[test]
fn the_ip_group_cap_of_the_peer_manager_applies() {
    let options = PeerManagerOptions {
        max_stored_per_ip_group: 2,
        ..options()
    };
    let mut f = Fixture::with(PexConfig::default(), options);
    f.outbound(1, "8.8.8.1");
    f.outputs();
    let same_group: Vec<_> = (2..7)
        .map(|i| proto(i, &format!("5.5.0.{i}"), 26656))
        .collect();
    f.deliver(1, response(same_group));
    let stored = (2..7)
        .filter(|&i| !f.pm.addresses(id(i)).is_empty())
        .count();
    assert_eq!(stored, 2);
}

#[test]
fn an_unanswered_request_expires_and_a_late_answer_is_ignored() {
    let mut f = Fixture::new(PexConfig::default());
    f.outbound(1, "8.8.8.1");
    f.outputs();
    f.advance(Duration::from_secs(30));
    assert!(!f.pex.is_request_outstanding(id(1)));
    // It might still arrive: the next request waits a full interval from the expiry.
    assert!(Fixture::sent_to(&f.outputs(), 1).is_empty());
    assert_eq!(f.pex.poll_timeout(), Some(f.now + Duration::from_secs(30)));
    f.advance(Duration::from_secs(30));
    assert_eq!(Fixture::sent_to(&f.outputs(), 1).len(), 1);
    let mut f = Fixture::new(PexConfig {
        response_timeout: Duration::from_secs(5),
        ..PexConfig::default()
    });
    f.outbound(1, "8.8.8.1");
    f.outputs();
    f.advance(Duration::from_secs(5));
    assert!(!f.pex.is_request_outstanding(id(1)));
    f.deliver(1, response(vec![proto(2, "8.8.8.2", 26656)]));
    assert!(f.errors().is_empty(), "late, not unsolicited");
    assert!(f.pm.addresses(id(2)).is_empty());
    // A second answer after that is unsolicited.
    f.deliver(1, response(vec![]));
    assert_eq!(f.errors()[0].error, PexError::Unsolicited);
}

#[test]
fn garbage_and_empty_messages_are_typed_non_fatal_errors() {
    let mut f = Fixture::new(PexConfig::default());
    f.outbound(1, "8.8.8.1");
    f.outputs();
    f.deliver(1, Bytes::new());
    f.deliver(1, Bytes::from_static(&[0x12, 19, 0x0a]));
    // A v0.35 PexRequestV2 (field 3): we do not speak it.
    f.deliver(1, Bytes::from_static(&[0x1a, 0x00]));
    let errors = f.errors();
    assert_eq!(errors.len(), 3);
    assert_eq!(
        errors[0].error,
        PexError::Undecodable(CodecError::EmptyWrapper)
    );
    assert!(matches!(
        errors[1].error,
        PexError::Undecodable(CodecError::Decode(_))
    ));
    assert!(errors.iter().all(|e| !e.error.is_fatal()));
    assert!(f.pex.is_request_outstanding(id(1)));
}

#[test]
fn down_forgets_the_peer_and_up_asks_again() {
    let mut f = Fixture::new(PexConfig::default());
    f.outbound(1, "8.8.8.1");
    f.outputs();
    let down = PeerUpdate {
        node_id: id(1),
        status: PeerStatus::Down,
        channels: vec![],
    };
    f.pex.handle_peer_update(f.now, &down, &mut f.pm);
    assert_eq!(f.pex.poll_timeout(), None);
    f.deliver(1, response(vec![proto(2, "8.8.8.2", 26656)]));
    assert!(
        f.outputs().is_empty(),
        "messages of a down peer are dropped"
    );
    f.up(1);
    assert_eq!(Fixture::sent_to(&f.outputs(), 1).len(), 1);
}

#[test]
fn a_peer_without_the_pex_channel_is_left_alone() {
    let mut f = Fixture::new(PexConfig::default());
    f.pm.accepted(f.now, id(1), None).unwrap();
    let update = PeerUpdate {
        node_id: id(1),
        status: PeerStatus::Up,
        channels: vec![0x20],
    };
    f.pex.handle_peer_update(f.now, &update, &mut f.pm);
    assert!(f.outputs().is_empty());
    assert_eq!(f.pex.poll_timeout(), None);
}

#[test]
fn seed_mode_answers_inbound_peers_then_disconnects_them_and_crawls_outbound_ones() {
    let options = PeerManagerOptions {
        max_peers: 4,
        max_connected: 3,
        max_outgoing_connections: 3,
        brief_connection_period: Duration::from_secs(10),
        ..options()
    };
    let mut f = Fixture::with(
        PexConfig {
            seed_mode: true,
            ..PexConfig::default()
        },
        options,
    );
    for i in 10..12 {
        f.pm.add(f.now, addr(i, &format!("8.8.{i}.1"))).unwrap();
    }
    assert!(f.pm.disconnect_cooldown_period() < Duration::from_secs(120));
    f.inbound(1, "8.8.8.1");
    assert!(f.outputs().is_empty(), "a seed never asks an inbound peer");
    assert_eq!(
        f.pm.disconnect_cooldown_period(),
        Duration::from_secs(120),
        "a seed does not redial the peers it crawled for the re-crawl interval"
    );
    assert_eq!(
        f.pm.brief_connection_period(),
        Duration::ZERO,
        "a seed's own disconnects do not grow its redial cooldown"
    );
    f.deliver(1, request());
    let out = f.outputs();
    assert!(matches!(&out[0], PexOutput::Send(_)));
    assert_eq!(out[1], PexOutput::Disconnect { node: id(1) });
    assert_eq!(out.len(), 2);

    // Outbound: asked once even with a full store, disconnected after its answer.
    f.pm.add(f.now, addr(12, "8.8.12.1")).unwrap();
    f.outbound(2, "8.8.2.1");
    assert!(f.pm.peer_ratio() >= 0.95);
    let out = f.outputs();
    assert_eq!(Fixture::sent_to(&out, 2).len(), 1);
    f.deliver(2, response(vec![proto(3, "8.8.3.1", 26656)]));
    let out = f.outputs();
    assert!(out.contains(&PexOutput::Disconnect { node: id(2) }));
    f.advance(Duration::from_secs(60));
    assert!(
        Fixture::sent_to(&f.outputs(), 2).is_empty(),
        "asked only once"
    );
}

#[test]
fn non_mconn_and_dns_addresses_are_not_advertised_in_pex_form() {
    assert_eq!(
        to_net_address(&addr(1, "1.2.3.4")).map(|a| a.to_string()),
        Some(format!("{}@1.2.3.4:26656", id(1)))
    );
    assert_eq!(
        to_net_address(&NodeAddress::parse(&format!("memory:{}", id(1))).unwrap()),
        None
    );
    assert_eq!(
        to_net_address(&NodeAddress::parse(&format!("{}@1.2.3.4", id(1))).unwrap()),
        None,
        "port 0"
    );
    let v6 = NetAddress::try_from(proto(1, "2a00::1", 26656)).unwrap();
    assert_eq!(
        to_node_address(&v6).to_string(),
        format!("mconn://{}@[2a00::1]:26656", id(1))
    );
}

#[test]
fn the_interval_counts_from_the_answer_so_delays_cannot_shrink_the_gap() {
    let mut f = Fixture::new(PexConfig::default());
    f.outbound(1, "8.8.8.1");
    f.outputs();
    // The answer takes 7 s (our request sat in queues on the way).
    f.advance(Duration::from_secs(7));
    f.deliver(1, response(vec![]));
    let answered = f.now;
    assert_eq!(
        f.pex.poll_timeout(),
        Some(answered + Duration::from_secs(30))
    );
    f.advance(Duration::from_secs(29));
    assert!(Fixture::sent_to(&f.outputs(), 1).is_empty());
    f.advance(Duration::from_secs(1));
    assert_eq!(Fixture::sent_to(&f.outputs(), 1).len(), 1);
}

#[test]
fn a_flooding_peer_is_reported_and_no_other_peer_is_affected() {
    let mut f = Fixture::new(PexConfig::default());
    f.inbound(1, "8.8.8.1");
    f.inbound(2, "8.8.8.2");
    f.outputs();
    for _ in 0..5 {
        f.deliver(1, request());
    }
    f.deliver(2, request());
    f.deliver(2, request());
    let out = f.outputs();
    let errors: Vec<&PexPeerError> = out
        .iter()
        .filter_map(|o| match o {
            PexOutput::PeerError(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 3, "requests 3..5 of the flooder");
    assert!(errors.iter().all(|e| e.node == id(1) && e.error.is_fatal()));
    assert_eq!(Fixture::sent_to(&out, 1).len(), 2);
    assert_eq!(
        Fixture::sent_to(&out, 2).len(),
        2,
        "the other peer is answered"
    );
    // Our own request to peer 2 is still outstanding and its answer welcome.
    assert!(f.pex.is_request_outstanding(id(2)));
    f.deliver(2, response(vec![proto(3, "8.8.8.3", 26656)]));
    assert!(f.errors().is_empty());
    assert_eq!(f.pm.addresses(id(3)).len(), 1);
}

quickcheck::quickcheck! {
    // Hostile bytes from a peer: never a panic; the outcome is an answer, learned
    // addresses, or a typed error against that peer only.
    fn hostile_bytes_have_a_typed_outcome(messages: Vec<Vec<u8>>) -> bool {
        let mut f = Fixture::new(PexConfig::default());
        f.outbound(1, "8.8.8.1");
        f.outputs();
        for bytes in messages {
            f.deliver(1, Bytes::from(bytes));
        }
        f.outputs().iter().all(|o| match o {
            PexOutput::Send(e) => e.to == Some(crate::router::Target::Peer(id(1))),
            PexOutput::PeerError(e) => e.node == id(1),
            PexOutput::Learned { from, .. } => *from == id(1),
            PexOutput::Disconnect { .. } => false,
        })
    }
}

fn info(i: u8, listen_addr: &str) -> NodeInfo {
    NodeInfo {
        protocol_version: crate::node_info::ProtocolVersions {
            p2p: 8,
            block: 11,
            app: 0,
        },
        node_id: id(i),
        listen_addr: listen_addr.to_owned(),
        network: "n".into(),
        version: "1".into(),
        channels: vec![0],
        moniker: "m".into(),
        tx_index: String::new(),
        rpc_address: String::new(),
    }
}

#[test]
fn an_inbound_peer_listen_address_is_learned_and_an_outbound_one_ignored() {
    let mut f = Fixture::new(PexConfig::default());
    f.inbound(1, "8.8.8.1");
    f.pex.set_peer_ip(id(1), "8.8.8.1".parse().unwrap());
    let got = f
        .pex
        .handle_peer_info(f.now, &info(1, "tcp://0.0.0.0:26656"), &mut f.pm);
    assert_eq!(
        got,
        Some(addr(1, "8.8.8.1")),
        "0.0.0.0 taken at the socket IP"
    );
    assert_eq!(f.pm.addresses(id(1)), vec![addr(1, "8.8.8.1")]);

    f.inbound(2, "8.8.8.2");
    f.pex.set_peer_ip(id(2), "8.8.8.2".parse().unwrap());
    // Strict: a routable peer claiming a private listen address is not believed.
    assert_eq!(
        f.pex
            .handle_peer_info(f.now, &info(2, "tcp://10.0.0.2:26656"), &mut f.pm),
        None
    );
    assert_eq!(
        f.pex
            .handle_peer_info(f.now, &info(2, "tcp://name.example:26656"), &mut f.pm),
        None
    );
    assert_eq!(
        f.pex
            .handle_peer_info(f.now, &info(2, "garbage"), &mut f.pm),
        None
    );

    f.outbound(3, "8.8.8.3");
    assert_eq!(
        f.pex
            .handle_peer_info(f.now, &info(3, "tcp://8.8.9.9:26656"), &mut f.pm),
        None
    );
    assert_eq!(f.pm.addresses(id(3)), vec![addr(3, "8.8.8.3")]);
}
