//! Two PeerConnections in memory: the full per-peer stack, and one test per hostile peer.

use super::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::test_clock::epoch;

const CHANNELS: [u8; 3] = [0x20, 0x21, 0x30];

fn info(key: &NodeKey, network: &str, channels: &[u8]) -> NodeInfo {
    crate::fuzzing::fixture_node_info(key, network, channels)
}

fn config() -> PeerConfig {
    PeerConfig {
        channels: CHANNELS
            .iter()
            .map(|&id| ChannelDescriptor {
                id,
                priority: 1,
                send_queue_capacity: 16,
                recv_message_capacity: 1 << 20,
            })
            .collect(),
        ..PeerConfig::default()
    }
}

struct Side {
    conn: PeerConnection,
    events: Vec<PeerEvent>,
}

fn side(now: Instant, seed: u8, info: NodeInfo, direction: Direction) -> Side {
    side_with_rng(now, seed, u64::from(seed), info, direction)
}

/// `rng_seed` picks the ephemeral key: two connections of one node (a self-dial) must
/// differ there, or the key schedule collapses before the self check is reached.
fn side_with_rng(
    now: Instant,
    seed: u8,
    rng_seed: u64,
    info: NodeInfo,
    direction: Direction,
) -> Side {
    let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
    Side {
        conn: PeerConnection::new(
            now,
            &NodeKey::from_seed([seed; 32]),
            info,
            direction,
            config(),
            &mut rng,
        ),
        events: Vec::new(),
    }
}

/// Moves bytes both ways until nothing more happens.
fn drive(now: Instant, a: &mut Side, b: &mut Side) {
    for _ in 0..10_000 {
        let mut moved = false;
        for flip in [false, true] {
            let (from, to) = if flip {
                (&mut *b, &mut *a)
            } else {
                (&mut *a, &mut *b)
            };
            let mut out = BytesMut::new();
            while from.conn.poll_transmit(now, &mut out) {}
            if !out.is_empty() {
                moved = true;
                let _ = to.conn.handle_input(now, &out);
            }
        }
        for s in [&mut *a, &mut *b] {
            while let Some(e) = s.conn.poll_event() {
                s.events.push(e);
            }
        }
        if !moved {
            return;
        }
    }
    panic!("no quiescence");
}

fn standard_pair(now: Instant) -> (Side, Side) {
    let ka = NodeKey::from_seed([1; 32]);
    let kb = NodeKey::from_seed([2; 32]);
    let a = side(
        now,
        1,
        info(&ka, "chain", &CHANNELS),
        Direction::Outbound {
            expected: kb.node_id(),
        },
    );
    let b = side(now, 2, info(&kb, "chain", &CHANNELS), Direction::Inbound);
    (a, b)
}

#[test]
fn two_peers_authenticate_and_exchange_messages() {
    let now = epoch();
    let (mut a, mut b) = standard_pair(now);
    drive(now, &mut a, &mut b);
    match &a.events[..] {
        [PeerEvent::Authenticated {
            node_info,
            public_key,
        }] => {
            assert_eq!(node_info.node_id, NodeKey::from_seed([2; 32]).node_id());
            assert_eq!(public_key.node_id(), node_info.node_id);
        }
        other => panic!("{other:?}"),
    }
    assert!(a.conn.is_active() && b.conn.is_active());
    let sizes = [0usize, 1, 1000, 1024, 1025, 100_000];
    for (i, size) in sizes.iter().enumerate() {
        let channel = CHANNELS[i % 3];
        let msg = Bytes::from(vec![i as u8; *size]);
        a.conn.send(now, channel, msg.clone()).unwrap();
        b.conn.send(now, channel, msg).unwrap();
    }
    drive(now, &mut a, &mut b);
    for s in [&a, &b] {
        let got: Vec<(u8, usize)> = s
            .events
            .iter()
            .filter_map(|e| match e {
                PeerEvent::Message { channel, message } => Some((*channel, message.len())),
                _ => None,
            })
            .collect();
        let mut expect: Vec<(u8, usize)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (CHANNELS[i % 3], n))
            .collect();
        let mut sorted = got.clone();
        sorted.sort();
        expect.sort();
        assert_eq!(sorted, expect);
    }
    // Ping and graceful close.
    a.conn.ping_now(now);
    drive(now, &mut a, &mut b);
    assert!(a.events.iter().any(|e| matches!(e, PeerEvent::Pong { .. })));
    a.conn.send(now, 0x20, Bytes::from_static(b"last")).unwrap();
    a.conn.close();
    assert!(!a.conn.is_closed(), "queued message must flush first");
    drive(now, &mut a, &mut b);
    assert!(a.conn.is_closed());
    assert_eq!(a.events.last(), Some(&PeerEvent::Closed { reason: None }));
    assert!(b
        .events
        .iter()
        .any(|e| matches!(e, PeerEvent::Message { message, .. } if &message[..] == b"last")));
}

/// Runs `a` (honest, outbound to `expected`) against a peer advertising `peer_info` with
/// key seed `peer_seed`, and returns why `a` closed.
fn a_closes_with(peer_seed: u8, peer_info: NodeInfo, expected: NodeId) -> ConnectionError {
    let now = epoch();
    let ka = NodeKey::from_seed([1; 32]);
    let mut a = side(
        now,
        1,
        info(&ka, "chain", &CHANNELS),
        Direction::Outbound { expected },
    );
    let mut b = side_with_rng(now, peer_seed, 1000, peer_info, Direction::Inbound);
    drive(now, &mut a, &mut b);
    assert!(a.conn.is_closed());
    assert!(!a
        .events
        .iter()
        .any(|e| matches!(e, PeerEvent::Authenticated { .. })));
    match a.events.last() {
        Some(PeerEvent::Closed {
            reason: Some(reason),
        }) => reason.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_node_infos_close_only_that_connection_with_typed_reasons() {
    let kb = NodeKey::from_seed([2; 32]);
    let b_id = kb.node_id();
    let good = info(&kb, "chain", &CHANNELS);

    let mut big = good.clone();
    big.moniker = "m".repeat(11_000);
    let err = a_closes_with(2, big, b_id);
    assert!(
        matches!(err, ConnectionError::NodeInfoTooLarge { .. }),
        "{err}"
    );
    assert_eq!(err.kind(), FailureKind::AuthFailure);

    let mut invalid = good.clone();
    invalid.moniker = String::new();
    let err = a_closes_with(2, invalid, b_id);
    assert!(matches!(err, ConnectionError::InvalidNodeInfo(_)), "{err}");
    assert_eq!(err.kind(), FailureKind::InvalidNodeInfo);

    let mut wrong_id = good.clone();
    wrong_id.node_id = NodeKey::from_seed([9; 32]).node_id();
    let err = a_closes_with(2, wrong_id, b_id);
    assert!(
        matches!(err, ConnectionError::NodeInfoIdMismatch { .. }),
        "{err}"
    );

    let err = a_closes_with(2, info(&kb, "other-chain", &CHANNELS), b_id);
    assert!(matches!(err, ConnectionError::Incompatible(_)), "{err}");
    assert_eq!(err.kind(), FailureKind::Incompatible);

    let err = a_closes_with(2, info(&kb, "chain", &[0x99]), b_id);
    assert!(matches!(err, ConnectionError::Incompatible(_)), "{err}");

    let ka = NodeKey::from_seed([1; 32]);
    let err = a_closes_with(1, info(&ka, "chain", &CHANNELS), ka.node_id());
    assert_eq!(err, ConnectionError::SelfConnection);

    let err = a_closes_with(2, good, NodeKey::from_seed([3; 32]).node_id());
    assert!(
        matches!(err, ConnectionError::DialedIdMismatch { .. }),
        "{err}"
    );
}

#[test]
fn a_handshake_that_never_completes_times_out() {
    let now = epoch();
    let (mut a, _) = standard_pair(now);
    let deadline = a.conn.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(20));
    a.conn.handle_input(now, &[0x22, 0x0a]).unwrap();
    a.conn.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!a.conn.is_closed());
    a.conn.handle_timeout(deadline);
    assert_eq!(
        a.conn.poll_event(),
        Some(PeerEvent::Closed {
            reason: Some(ConnectionError::HandshakeTimeout(Duration::from_secs(20)))
        })
    );
    assert_eq!(a.conn.poll_timeout(), None);
}

#[test]
fn silence_past_the_pong_timeout_closes() {
    let now = epoch();
    let (mut a, mut b) = standard_pair(now);
    drive(now, &mut a, &mut b);
    assert!(a.conn.is_active());
    // b goes silent: advance a's clock through its timers without feeding it anything.
    let mut t = now;
    for _ in 0..100 {
        let Some(next) = a.conn.poll_timeout() else {
            break;
        };
        t = next.max(t);
        a.conn.handle_timeout(t);
        let mut out = BytesMut::new();
        while a.conn.poll_transmit(t, &mut out) {}
        if a.conn.is_closed() {
            break;
        }
    }
    assert!(a.conn.is_closed());
    let reason = std::iter::from_fn(|| a.conn.poll_event()).last();
    assert!(
        matches!(
            reason,
            Some(PeerEvent::Closed {
                reason: Some(ConnectionError::MConn(_))
            })
        ),
        "{reason:?}"
    );
    assert!(t - now >= Duration::from_secs(60 + 45) - Duration::from_secs(1));
}

#[test]
fn fuzz_body_survives_hostile_plaintext() {
    let now = epoch();
    let cases: [&[u8]; 6] = [
        b"",
        &[0x02, 0x0a, 0x00],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0x05, 0x1a, 0x03, 0x08, 0x99, 0x01],
        &[0x00; 64],
        &[
            0x0b, 0x1a, 0x09, 0x08, 0x20, 0x10, 0x01, 0x1a, 0x03, 0x61, 0x62, 0x63,
        ],
    ];
    for case in cases {
        fuzz_after_handshake(case, now);
    }
    let mut x: u32 = 1;
    for len in 0..300usize {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        fuzz_after_handshake(&data, now);
    }
}

#[test]
fn buffers_shrink_back_after_a_large_message() {
    let now = epoch();
    let (mut a, mut b) = standard_pair(now);
    drive(now, &mut a, &mut b);
    a.conn
        .send(now, 0x30, Bytes::from(vec![7u8; 1 << 20]))
        .unwrap();
    drive(now, &mut a, &mut b);
    assert!(b
        .events
        .iter()
        .any(|e| matches!(e, PeerEvent::Message { message, .. } if message.len() == 1 << 20)));
    assert!(
        a.conn.buffer_capacity() <= 2 * IDLE_BUFFER_LIMIT,
        "{}",
        a.conn.buffer_capacity()
    );
    assert!(
        b.conn.buffer_capacity() <= 2 * IDLE_BUFFER_LIMIT,
        "{}",
        b.conn.buffer_capacity()
    );
}

#[test]
fn an_unrepresentable_handshake_timeout_does_not_panic() {
    // `now + Duration::MAX` overflowed (and panicked) in PeerConnection::new.
    let now = epoch();
    let key = NodeKey::from_seed([7; 32]);
    let config = PeerConfig {
        handshake_timeout: Duration::MAX,
        ..config()
    };
    let conn = PeerConnection::new(
        now,
        &key,
        info(&key, "net", &CHANNELS),
        Direction::Inbound,
        config,
        &mut ChaCha20Rng::seed_from_u64(7),
    );
    assert!(conn.poll_timeout().is_some_and(|at| at > now));
}

/// An answering acceptor: node `b` for the dialer `a`, reading `a`'s node info first.
fn answering_pair(now: Instant, dialer_network: &str) -> (Side, Side) {
    let ka = NodeKey::from_seed([1; 32]);
    let kb = NodeKey::from_seed([2; 32]);
    let a = side(
        now,
        1,
        info(&ka, dialer_network, &CHANNELS),
        Direction::Outbound {
            expected: kb.node_id(),
        },
    );
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let b = Side {
        conn: PeerConnection::answering(now, &kb, PeerConfig::default(), &mut rng),
        events: Vec::new(),
    };
    (a, b)
}

#[test]
fn an_answering_acceptor_reads_the_dialers_node_info_first_then_answers_in_kind() {
    let now = epoch();
    let (mut a, mut b) = answering_pair(now, "chain-b");
    drive(now, &mut a, &mut b);
    // The dialer waits for our node info; we hold it back and learn the dialer's network.
    assert!(a.events.is_empty() && b.events.is_empty());
    let seen = b.conn.peer_info().expect("the dialer's node info").clone();
    assert_eq!(seen.network, "chain-b");
    assert_eq!(seen.node_id, NodeKey::from_seed([1; 32]).node_id());
    let kb = NodeKey::from_seed([2; 32]);
    b.conn
        .answer(now, info(&kb, "chain-b", &CHANNELS), config());
    drive(now, &mut a, &mut b);
    assert!(
        matches!(&a.events[..], [PeerEvent::Authenticated { node_info, .. }] if node_info.network == "chain-b")
    );
    assert!(
        matches!(&b.events[..], [PeerEvent::Authenticated { node_info, .. }] if **node_info == seen)
    );
    // Then it is a connection like any other, with the channels the answer gave it.
    a.conn
        .send(now, 0x21, Bytes::from_static(b"hello"))
        .unwrap();
    drive(now, &mut a, &mut b);
    assert_eq!(
        b.events.last(),
        Some(&PeerEvent::Message {
            channel: 0x21,
            message: Bytes::from_static(b"hello")
        })
    );
}

#[test]
fn an_answer_of_another_network_closes_both_ends_as_incompatible() {
    let now = epoch();
    let (mut a, mut b) = answering_pair(now, "chain-b");
    drive(now, &mut a, &mut b);
    let kb = NodeKey::from_seed([2; 32]);
    b.conn
        .answer(now, info(&kb, "chain-a", &CHANNELS), config());
    drive(now, &mut a, &mut b);
    for side in [&a, &b] {
        assert!(
            matches!(
                &side.events[..],
                [PeerEvent::Closed {
                    reason: Some(ConnectionError::Incompatible(
                        crate::node_info::NodeInfoError::NetworkMismatch { .. }
                    ))
                }]
            ),
            "{:?}",
            side.events
        );
    }
}

#[test]
fn an_answering_acceptor_never_answered_times_out_with_the_handshake() {
    let now = epoch();
    let (mut a, mut b) = answering_pair(now, "chain-b");
    drive(now, &mut a, &mut b);
    assert!(b.conn.peer_info().is_some());
    let deadline = b.conn.poll_timeout().expect("the handshake deadline");
    assert_eq!(deadline, now + PeerConfig::default().handshake_timeout);
    b.conn.handle_timeout(deadline);
    assert!(matches!(
        b.conn.poll_event(),
        Some(PeerEvent::Closed {
            reason: Some(ConnectionError::HandshakeTimeout(_))
        })
    ));
    // An answer after the end changes nothing.
    let kb = NodeKey::from_seed([2; 32]);
    b.conn
        .answer(deadline, info(&kb, "chain-b", &CHANNELS), config());
    assert!(b.conn.is_closed() && b.conn.poll_event().is_none());
}

#[test]
fn what_the_dialer_sent_after_its_node_info_is_delivered_once_we_answer() {
    let now = epoch();
    let (mut a, mut b) = answering_pair(now, "chain-b");
    drive(now, &mut a, &mut b);
    assert_eq!(
        b.conn.recv_allowance(now),
        0,
        "nothing more is read until we answer"
    );
    // A dialer that does not wait for our node info: a packet right behind its own.
    use prost::Message as _;
    use tmp2p_proto::p2p::{Packet, PacketMsg, PacketSum};
    let packet = Packet {
        sum: Some(PacketSum::PacketMsg(PacketMsg {
            channel_id: 0x21,
            eof: true,
            data: Bytes::from_static(b"early"),
        })),
    };
    a.conn
        .secret
        .send(&packet.encode_length_delimited_to_vec())
        .unwrap();
    let mut out = BytesMut::new();
    a.conn.secret.poll_transmit(&mut out);
    b.conn.handle_input(now, &out).unwrap();
    assert!(b.conn.peer_info().is_some() && b.conn.poll_event().is_none());
    let kb = NodeKey::from_seed([2; 32]);
    b.conn
        .answer(now, info(&kb, "chain-b", &CHANNELS), config());
    let events: Vec<PeerEvent> = std::iter::from_fn(|| b.conn.poll_event()).collect();
    assert!(
        matches!(
            &events[..],
            [PeerEvent::Authenticated { .. }, PeerEvent::Message { channel: 0x21, message }]
                if message.as_ref() == b"early"
        ),
        "{events:?}"
    );
}

#[test]
fn a_dialer_that_floods_before_our_answer_is_cut_off_at_the_node_info_limit() {
    let now = epoch();
    let (mut a, mut b) = answering_pair(now, "chain-b");
    drive(now, &mut a, &mut b);
    let flood = vec![0u8; PeerConfig::default().max_node_info_size + 1];
    a.conn.secret.send(&flood).unwrap();
    let mut out = BytesMut::new();
    a.conn.secret.poll_transmit(&mut out);
    assert!(matches!(
        b.conn.handle_input(now, &out),
        Err(ConnectionError::InputBeforeAnswer { max, .. }) if max == PeerConfig::default().max_node_info_size
    ));
    assert!(b.conn.is_closed());
}

#[test]
fn an_answer_in_the_name_of_another_key_is_refused() {
    let now = epoch();
    let (mut a, mut b) = answering_pair(now, "chain-b");
    drive(now, &mut a, &mut b);
    let other = NodeKey::from_seed([9; 32]);
    b.conn
        .answer(now, info(&other, "chain-b", &CHANNELS), config());
    assert!(matches!(
        b.conn.poll_event(),
        Some(PeerEvent::Closed {
            reason: Some(ConnectionError::AnswerIdMismatch { .. })
        })
    ));
}
