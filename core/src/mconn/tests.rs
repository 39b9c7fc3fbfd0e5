//! MConnection behaviour: golden vectors, the scheduler, keep-alive, rate limits, one test
//! per hostile input, and split-invariance properties over two machines.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quickcheck::{quickcheck, TestResult};
use serde_json::Value;

use super::*;
use crate::delimited::peek_complete;

const CAPACITY: usize = 4 << 20;

use crate::test_clock::epoch;

fn descriptors(channels: &[(u8, u32)]) -> Vec<ChannelDescriptor> {
    channels
        .iter()
        .map(|&(id, priority)| ChannelDescriptor {
            id,
            priority,
            send_queue_capacity: 10_000,
            recv_message_capacity: CAPACITY,
        })
        .collect()
}

fn conn_at(channels: &[(u8, u32)], now: Instant) -> MConnection {
    MConnection::new(MConnConfig::default(), descriptors(channels), now).unwrap()
}

fn conn(channels: &[(u8, u32)]) -> MConnection {
    conn_at(channels, epoch())
}

fn drain(conn: &mut MConnection, now: Instant) -> BytesMut {
    let mut out = BytesMut::new();
    while conn.poll_transmit(now, &mut out, usize::MAX) > 0 {}
    out
}

fn events(conn: &mut MConnection) -> Vec<MConnEvent> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn feed(conn: &mut MConnection, bytes: &[u8]) -> Result<(), MConnError> {
    let mut input = BytesMut::from(bytes);
    let result = conn.handle_input(epoch(), &mut input);
    if result.is_ok() {
        assert!(input.is_empty(), "whole packets are consumed");
    }
    result
}

/// Splits a stream of delimited packets into their bodies.
fn packets(stream: &[u8]) -> Vec<&[u8]> {
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (prefix, body) = peek_complete(rest, usize::MAX).unwrap().unwrap();
        out.push(&rest[prefix..prefix + body]);
        rest = &rest[prefix + body..];
    }
    out
}

fn msg(channel: u8, message: impl Into<Bytes>) -> MConnEvent {
    MConnEvent::Message {
        channel,
        message: message.into(),
    }
}

fn patterned(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn hexv(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

// ---------------------------------------------------------------- golden vectors

#[test]
fn packet_vectors_are_reproduced() {
    let vectors = json(include_str!("../../../testdata/mconn_packet_vectors.json"));
    let cases = vectors.as_array().unwrap();

    // Ping and pong, both ways.
    let mut a = conn(&[(0x00, 1), (0x01, 1), (0x20, 1)]);
    a.ping_now(epoch());
    assert_eq!(
        drain(&mut a, epoch())[..],
        hexv(&cases[0]["delimited_hex"])[..]
    );
    feed(&mut a, &hexv(&cases[0]["delimited_hex"])).unwrap();
    assert_eq!(
        drain(&mut a, epoch())[..],
        hexv(&cases[1]["delimited_hex"])[..]
    );
    feed(&mut a, &hexv(&cases[1]["delimited_hex"])).unwrap();

    // A non-final chunk: the encoder alone can be asked for eof = false at this size.
    let mut out = BytesMut::new();
    packet::write_msg(&mut out, 1, false, b"data transmitted over the wire");
    assert_eq!(packets(&out), vec![&hexv(&cases[2]["packet_hex"])[..]]);

    // Whole messages: empty on PEX, "abc" on 0x20.
    for (case, channel, data) in [(&cases[3], 0x00, &b""[..]), (&cases[4], 0x20, &b"abc"[..])] {
        a.send(epoch(), channel, Bytes::copy_from_slice(data))
            .unwrap();
        let wire = drain(&mut a, epoch());
        assert_eq!(
            wire[..],
            hexv(&case["delimited_hex"])[..],
            "{}",
            case["desc"]
        );
        let mut b = conn(&[(0x00, 1), (0x20, 1)]);
        feed(&mut b, &wire).unwrap();
        assert_eq!(
            events(&mut b),
            vec![msg(channel, Bytes::copy_from_slice(data))]
        );
    }

    // The receive limit: a full 1024-byte chunk on channel 1 is 1034 bytes and accepted.
    a.send(epoch(), 0x01, Bytes::from(vec![0u8; 1024])).unwrap();
    let wire = drain(&mut a, epoch());
    assert_eq!(
        wire.len() as u64,
        cases[5]["delimited_len"].as_u64().unwrap()
    );
    assert_eq!(
        packets(&wire)[0].len() as u64,
        cases[5]["packet_len"].as_u64().unwrap()
    );
    assert!(hex::encode(&wire[2..]).starts_with(cases[5]["packet_prefix_hex"].as_str().unwrap()));
    let mut b = conn(&[(0x01, 1)]);
    feed(&mut b, &wire).unwrap();
    assert_eq!(events(&mut b), vec![msg(1, vec![0u8; 1024])]);
    assert_eq!(
        max_sent_packet_size(1400) as u64,
        cases[6]["packet_len"].as_u64().unwrap()
    );
}

#[test]
fn session_stream_is_parsed_and_produced() {
    let vectors = json(include_str!("../../../testdata/session_vectors.json"));
    let stream_vec = &vectors["mconn_stream_from_A"];
    let stream = hexv(&stream_vec["plaintext_stream"]);
    let expected: Vec<MConnEvent> = stream_vec["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let channel = u8::try_from(m["channel"].as_u64().unwrap()).unwrap();
            let data = match m.get("data_hex") {
                Some(h) => hexv(h),
                None => (0..m["data_len"].as_u64().unwrap() as usize)
                    .map(|i| ((7 * i + 3) % 256) as u8)
                    .collect(),
            };
            msg(channel, data)
        })
        .collect();
    assert_eq!(expected.len(), 3);
    let channels = [(0x20, 6), (0x00, 1), (0x30, 5)];

    // B parses it at every split: the three messages, an owed pong, no Pong event (the
    // pong in the stream was unsolicited).
    for split in [0, 1, 2, 7, 100, 1000, stream.len()] {
        let mut b = conn(&channels);
        let mut input = BytesMut::from(&stream[..split]);
        b.handle_input(epoch(), &mut input).unwrap();
        input.extend_from_slice(&stream[split..]);
        b.handle_input(epoch(), &mut input).unwrap();
        assert!(input.is_empty());
        assert_eq!(events(&mut b), expected);
        assert_eq!(drain(&mut b, epoch())[..], packet::PONG[..]);
    }

    // A produces it byte for byte: its own ping, the pong owed for B's ping, then the
    // messages in scheduler order.
    let mut a = conn(&channels);
    a.ping_now(epoch());
    feed(&mut a, &packet::PING).unwrap();
    for event in &expected {
        let MConnEvent::Message { channel, message } = event else {
            unreachable!()
        };
        a.send(epoch(), *channel, message.clone()).unwrap();
    }
    let mut out = BytesMut::new();
    a.poll_transmit(epoch(), &mut out, usize::MAX);
    assert_eq!(hex::encode(&out), hex::encode(&stream));
    for (body, packet) in packets(&out)
        .iter()
        .zip(stream_vec["packets"].as_array().unwrap())
    {
        assert_eq!(*body, &hexv(&packet["hex"])[..]);
    }
}

// ---------------------------------------------------------------- chunking

#[test]
fn high_channel_ids_keep_every_packet_within_go_limit() {
    for channel in [0x80u8, 0xff] {
        for len in [1023usize, 1024, 1025, 2048, 1 << 20] {
            let mut a = conn(&[(channel, 1)]);
            let message = patterned(len, 3);
            a.send(epoch(), channel, message.clone()).unwrap();
            let wire = drain(&mut a, epoch());
            for body in packets(&wire) {
                assert!(
                    body.len() <= 1034,
                    "{len} on {channel:#x}: packet of {}",
                    body.len()
                );
            }
            let mut b = conn(&[(channel, 1)]);
            feed(&mut b, &wire).unwrap();
            assert_eq!(events(&mut b), vec![msg(channel, message)]);
        }
    }
}

#[test]
fn reassembly_is_lazy_and_single_packets_are_not_copied() {
    let mut a = conn(&[(0x20, 1)]);
    a.send(epoch(), 0x20, patterned(3000, 1)).unwrap();
    a.send(epoch(), 0x20, patterned(500, 2)).unwrap();
    let wire = drain(&mut a, epoch());
    let mut b = conn(&[(0x20, 1)]);
    assert!(!b.holds_reassembly_buffers());
    let first_packet = 2 + packets(&wire)[0].len();
    feed(&mut b, &wire[..first_packet]).unwrap();
    assert!(b.holds_reassembly_buffers(), "mid-message");
    let mut input = BytesMut::from(&wire[first_packet..]);
    let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
    b.handle_input(epoch(), &mut input).unwrap();
    assert!(!b.holds_reassembly_buffers(), "idle again");
    let got = events(&mut b);
    assert_eq!(
        got,
        vec![msg(0x20, patterned(3000, 1)), msg(0x20, patterned(500, 2))]
    );
    let MConnEvent::Message { message, .. } = &got[1] else {
        unreachable!()
    };
    assert!(
        range.contains(&(message.as_ptr() as usize)),
        "handed out from the input buffer"
    );
}

// ---------------------------------------------------------------- scheduler

/// (channel, bytes) per message chunk of a stream (pings skipped).
fn channel_of_packets(stream: &[u8]) -> Vec<(u8, usize)> {
    packets(stream)
        .into_iter()
        .filter_map(
            |body| match packet::decode(Bytes::copy_from_slice(body)).unwrap() {
                packet::Received::Msg { channel, .. } => Some((channel as u8, body.len())),
                _ => None,
            },
        )
        .collect()
}

#[test]
fn saturated_priorities_1_and_10_converge_to_1_to_10_bytes() {
    let t0 = epoch();
    let mut channels = descriptors(&[(0x01, 1), (0x02, 10)]);
    channels.iter_mut().for_each(|c| c.send_queue_capacity = 8);
    let mut a = MConnection::new(MConnConfig::default(), channels, t0).unwrap();
    static MESSAGE: [u8; 4096] = [7; 4096];
    let mut bytes = BTreeMap::<u8, usize>::new();
    // 100 s of a saturated link, one packet every 5 ms, decays on schedule; both queues
    // are topped up before every packet.
    for step in 0..20_000u32 {
        let now = t0 + Duration::from_millis(5) * step;
        a.handle_timeout(now).unwrap();
        for ch in [0x01, 0x02] {
            while a.can_send(ch) {
                a.send(now, ch, Bytes::from_static(&MESSAGE)).unwrap();
            }
        }
        let mut out = BytesMut::new();
        a.poll_transmit(now, &mut out, 1);
        for (ch, len) in channel_of_packets(&out) {
            *bytes.entry(ch).or_default() += len;
        }
    }
    let ratio = bytes[&0x02] as f64 / bytes[&0x01] as f64;
    assert!((9.5..=10.5).contains(&ratio), "ratio {ratio}: {bytes:?}");
}

#[test]
fn a_message_is_never_interleaved_with_its_own_channel_but_channels_interleave() {
    let mut a = conn(&[(0x01, 1), (0x02, 1)]);
    let mut sent = BTreeMap::<u8, Vec<Bytes>>::new();
    for i in 0..6u8 {
        for ch in [0x01u8, 0x02] {
            let m = patterned(2500 + usize::from(i) * 100, i ^ ch);
            a.send(epoch(), ch, m.clone()).unwrap();
            sent.entry(ch).or_default().push(m);
        }
    }
    let wire = drain(&mut a, epoch());
    // Rebuild each channel's messages from consecutive chunks only: interleaving two
    // messages of one channel would corrupt them.
    let mut rebuilt = BTreeMap::<u8, Vec<Vec<u8>>>::new();
    let mut partial = BTreeMap::<u8, Vec<u8>>::new();
    let mut switches = 0;
    let mut last = None;
    for body in packets(&wire) {
        let packet::Received::Msg { channel, eof, data } =
            packet::decode(Bytes::copy_from_slice(body)).unwrap()
        else {
            panic!("not a message")
        };
        let ch = channel as u8;
        if last.is_some_and(|l| l != ch) {
            switches += 1;
        }
        last = Some(ch);
        partial.entry(ch).or_default().extend_from_slice(&data);
        if eof {
            rebuilt
                .entry(ch)
                .or_default()
                .push(partial.remove(&ch).unwrap());
        }
    }
    for (ch, messages) in &sent {
        let expect: Vec<Vec<u8>> = messages.iter().map(|m| m.to_vec()).collect();
        assert_eq!(rebuilt[ch], expect, "channel {ch}");
    }
    assert!(
        switches > 12,
        "channels interleave mid-message ({switches} switches)"
    );
}

// ---------------------------------------------------------------- keep-alive

#[test]
fn pings_are_answered_and_rtt_reported() {
    let t0 = epoch();
    let mut a = conn_at(&[(0x01, 1)], t0);
    let mut b = conn_at(&[(0x01, 1)], t0);
    a.ping_now(t0);
    let mut wire = drain(&mut a, t0 + Duration::from_millis(1));
    b.handle_input(t0, &mut wire).unwrap();
    // Three pings before the answer collapse into one pong.
    b.handle_input(
        t0,
        &mut BytesMut::from(&[packet::PING, packet::PING].concat()[..]),
    )
    .unwrap();
    let mut pong = drain(&mut b, t0);
    assert_eq!(pong[..], packet::PONG[..]);
    a.handle_input(t0 + Duration::from_millis(31), &mut pong)
        .unwrap();
    assert_eq!(
        events(&mut a),
        vec![MConnEvent::Pong {
            rtt: Duration::from_millis(30)
        }]
    );
    // The answered ping no longer threatens the connection.
    a.handle_timeout(t0 + Duration::from_secs(50)).unwrap();
}

#[test]
fn periodic_ping_and_silence_past_pong_timeout_fails() {
    let t0 = epoch();
    let mut a = conn_at(&[(0x01, 1)], t0);
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    a.handle_timeout(t0 + Duration::from_secs(60)).unwrap();
    assert_eq!(
        drain(&mut a, t0 + Duration::from_secs(60))[..],
        packet::PING[..]
    );
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(105)));
    a.handle_timeout(t0 + Duration::from_secs(104)).unwrap();
    assert_eq!(
        a.handle_timeout(t0 + Duration::from_secs(105)),
        Err(MConnError::PongTimeout(Duration::from_secs(45)))
    );
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(feed(&mut a, &packet::PONG), Err(MConnError::Failed));
}

// ---------------------------------------------------------------- hostile input

fn hostile(bytes: &[u8]) -> MConnError {
    let mut b = MConnection::new(
        MConnConfig::default(),
        vec![ChannelDescriptor {
            id: 0x20,
            priority: 1,
            send_queue_capacity: 1,
            recv_message_capacity: 2000,
        }],
        epoch(),
    )
    .unwrap();
    let err = feed(&mut b, bytes).unwrap_err();
    assert_eq!(
        feed(&mut b, &packet::PING),
        Err(MConnError::Failed),
        "stays failed"
    );
    err
}

fn chunk(channel: u8, eof: bool, data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet::write_msg(&mut out, channel, eof, data);
    out.to_vec()
}

#[test]
fn oversized_packet_is_rejected_from_its_prefix() {
    // 1036 announced; only the two prefix bytes have arrived.
    assert_eq!(
        hostile(&[0x8c, 0x08]),
        MConnError::OversizedPacket {
            len: 1036,
            max: 1035
        }
    );
    // One data byte more than a full chunk on channel 0x80.
    assert_eq!(
        hostile(&chunk(0x80, true, &[0u8; 1025])),
        MConnError::OversizedPacket {
            len: 1036,
            max: 1035
        }
    );
    assert_eq!(hostile(&[0xff; 10]), MConnError::MalformedLengthPrefix);
}

#[test]
fn full_chunks_on_high_channel_ids_are_accepted_as_go_sends_them() {
    // Go chunks at 1024 on every channel id: on 0x80 and up that is a 1035-byte packet.
    for channel in [0x80u8, 0xc0, 0xff] {
        let mut wire = chunk(channel, false, &[1u8; 1024]);
        wire.extend(chunk(channel, true, &[2u8; 1024]));
        assert_eq!(packets(&wire)[1].len(), 1035);
        let mut b = conn(&[(channel, 1)]);
        feed(&mut b, &wire).unwrap();
        let mut expected = vec![1u8; 1024];
        expected.extend([2u8; 1024]);
        assert_eq!(events(&mut b), vec![msg(channel, expected)]);
    }
}

#[test]
fn unknown_channel_is_rejected() {
    assert_eq!(
        hostile(&chunk(0x21, true, b"x")),
        MConnError::UnknownChannel(0x21)
    );
    // channel_id 1025 (out of a byte's range): Packet{PacketMsg{channel_id: 1025, eof}}.
    assert_eq!(
        hostile(&[0x07, 0x1a, 0x05, 0x08, 0x81, 0x08, 0x10, 0x01]),
        MConnError::UnknownChannel(1025)
    );
    // A negative channel id.
    let negative = [
        &[0x0f, 0x1a, 0x0d, 0x08][..],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        &[0x10, 0x01],
    ]
    .concat();
    assert_eq!(hostile(&negative), MConnError::UnknownChannel(-1));
}

#[test]
fn message_over_capacity_is_rejected() {
    let mut stream = chunk(0x20, false, &[1u8; 1024]);
    stream.extend(chunk(0x20, true, &[2u8; 977]));
    assert_eq!(
        hostile(&stream),
        MConnError::MessageOverCapacity {
            channel: 0x20,
            len: 2001,
            capacity: 2000
        }
    );
}

#[test]
fn packet_with_no_variant_is_rejected() {
    assert_eq!(hostile(&[0x00]), MConnError::EmptyPacket);
    // Only an unknown field (4, length-delimited, empty).
    assert_eq!(hostile(&[0x02, 0x22, 0x00]), MConnError::EmptyPacket);
}

#[test]
fn malformed_protobuf_is_rejected() {
    assert!(matches!(
        hostile(&[0x03, 0x1a, 0x05, 0x08]),
        MConnError::MalformedPacket(_)
    ));
    assert!(matches!(
        hostile(&[0x02, 0xff, 0xff]),
        MConnError::MalformedPacket(_)
    ));
}

// ---------------------------------------------------------------- commands

#[test]
fn send_hands_back_when_full_and_refuses_after_close() {
    let mut a = MConnection::new(
        MConnConfig::default(),
        vec![ChannelDescriptor {
            id: 0x30,
            priority: 5,
            send_queue_capacity: 1,
            recv_message_capacity: 100,
        }],
        epoch(),
    )
    .unwrap();
    let now = epoch();
    a.send(now, 0x30, Bytes::from_static(b"one")).unwrap();
    assert!(!a.can_send(0x30));
    assert_eq!(
        a.send(now, 0x30, Bytes::from_static(b"two")),
        Err(SendError::Full(Bytes::from_static(b"two")))
    );
    assert_eq!(
        a.send(now, 0x31, Bytes::new()),
        Err(SendError::UnknownChannel(0x31))
    );
    a.close();
    assert_eq!(a.send(now, 0x30, Bytes::new()), Err(SendError::Closed));
    assert!(!a.is_flushed());
    let mut b = conn(&[(0x30, 1)]);
    feed(&mut b, &drain(&mut a, now)).unwrap();
    assert!(a.is_flushed(), "graceful close flushed the queued message");
    assert_eq!(events(&mut b), vec![msg(0x30, &b"one"[..])]);
}

#[test]
fn send_rate_limit_spends_a_budget_per_window() {
    let t0 = epoch();
    let config = MConnConfig {
        send_rate: Some(20_000),
        ..MConnConfig::default()
    };
    let mut a = MConnection::new(config, descriptors(&[(0x01, 1)]), t0).unwrap();
    a.send(t0, 0x01, patterned(10_000, 0)).unwrap();
    let mut out = BytesMut::new();
    let first = a.poll_transmit(t0, &mut out, usize::MAX);
    assert!((2000..2000 + 1036).contains(&first), "{first}");
    assert_eq!(
        a.poll_transmit(t0 + Duration::from_millis(50), &mut out, usize::MAX),
        0
    );
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    assert!(a.poll_transmit(t0 + Duration::from_millis(100), &mut out, usize::MAX) > 0);
}

#[test]
fn recv_allowance_reports_the_receive_budget() {
    let t0 = epoch();
    let config = MConnConfig {
        recv_rate: Some(5_120_000),
        ..MConnConfig::default()
    };
    let mut b = MConnection::new(config, descriptors(&[(0x01, 1)]), t0).unwrap();
    assert_eq!(b.recv_allowance(t0), 512_000);
    let mut a = conn_at(&[(0x01, 1)], t0);
    a.send(t0, 0x01, patterned(600_000, 9)).unwrap();
    let mut wire = drain(&mut a, t0);
    let total = wire.len();
    b.handle_input(t0, &mut wire).unwrap();
    assert_eq!(b.recv_allowance(t0), 0);
    assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    // The overshoot is carried into the next window, then the budget refills.
    assert_eq!(
        b.recv_allowance(t0 + Duration::from_millis(100)),
        1_024_000 - total
    );
    assert_eq!(b.recv_allowance(t0 + Duration::from_millis(300)), 512_000);
    assert_eq!(conn(&[(1, 1)]).recv_allowance(t0), usize::MAX);
}

#[test]
fn flush_throttle_is_opt_in() {
    let t0 = epoch();
    let config = MConnConfig {
        flush_throttle: Some(Duration::from_millis(100)),
        ..MConnConfig::default()
    };
    let mut a = MConnection::new(config, descriptors(&[(0x01, 1)]), t0).unwrap();
    let mut out = BytesMut::new();
    a.send(t0, 0x01, Bytes::from_static(b"a")).unwrap();
    assert!(a.poll_transmit(t0, &mut out, usize::MAX) > 0);
    a.send(t0, 0x01, Bytes::from_static(b"b")).unwrap();
    assert_eq!(
        a.poll_transmit(t0 + Duration::from_millis(10), &mut out, usize::MAX),
        0
    );
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    assert!(a.poll_transmit(t0 + Duration::from_millis(100), &mut out, usize::MAX) > 0);
    // Without the throttle queued data leaves at once.
    let mut plain = conn_at(&[(0x01, 1)], t0);
    for _ in 0..3 {
        plain.send(t0, 0x01, Bytes::from_static(b"c")).unwrap();
        assert!(plain.poll_transmit(t0, &mut out, usize::MAX) > 0);
    }
}

#[test]
fn bad_channel_lists_are_refused() {
    let now = epoch();
    assert_eq!(
        MConnection::new(MConnConfig::default(), descriptors(&[(1, 0)]), now).err(),
        Some(MConnError::ZeroPriority(1))
    );
    assert_eq!(
        MConnection::new(MConnConfig::default(), descriptors(&[(1, 1), (1, 2)]), now).err(),
        Some(MConnError::DuplicateChannel(1))
    );
}

// ---------------------------------------------------------------- properties

#[test]
fn fuzz_body_survives_seeds() {
    let seeds: [&[u8]; 6] = [
        b"",
        &[0x02, 0x0a, 0x00, 0x02, 0x12, 0x00],
        &[0x8b, 0x08],
        &[0x07, 0x1a, 0x05, 0x08, 0x80, 0x01, 0x10, 0x01],
        &[0x05, 0x1a, 0x03, 0x08, 0x20, 0x1a],
        &[0xff; 40],
    ];
    for seed in seeds {
        fuzz_packet_decoder(seed);
    }
}

quickcheck! {
    fn fuzz_body_never_panics(data: Vec<u8>) -> bool {
        fuzz_packet_decoder(&data);
        true
    }

    fn interleaved_sends_arrive_intact_in_order_at_any_split(
        ops: Vec<(u8, u16, u16)>,
        splits: Vec<u16>
    ) -> TestResult {
        const CHANNELS: [(u8, u32); 3] = [(0x00, 1), (0x21, 10), (0x80, 3)];
        let ops = &ops[..ops.len().min(40)];
        let now = epoch();
        let mut a = conn_at(&CHANNELS, now);
        let mut b = conn_at(&CHANNELS, now);
        let mut sent = BTreeMap::<u8, Vec<Bytes>>::new();
        let mut wire = BytesMut::new();
        for (i, &(pick, len, budget)) in ops.iter().enumerate() {
            let ch = CHANNELS[usize::from(pick) % CHANNELS.len()].0;
            let len = usize::from(len) % 5000;
            let m = patterned(len, i as u8);
            a.send(now, ch, m.clone()).unwrap();
            sent.entry(ch).or_default().push(m);
            // Transmit a little between sends so messages of all channels interleave.
            a.poll_transmit(now, &mut wire, usize::from(budget) % 3000);
        }
        wire.extend_from_slice(&drain(&mut a, now));
        let mut input = BytesMut::new();
        let mut rest = &wire[..];
        for split in splits.iter().chain(std::iter::once(&u16::MAX)) {
            let n = (usize::from(*split) % 2000).min(rest.len());
            let n = if *split == u16::MAX { rest.len() } else { n };
            input.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if b.handle_input(now, &mut input).is_err() {
                return TestResult::failed();
            }
        }
        let mut got = BTreeMap::<u8, Vec<Bytes>>::new();
        for event in events(&mut b) {
            let MConnEvent::Message { channel, message } = event else {
                return TestResult::failed();
            };
            got.entry(channel).or_default().push(message);
        }
        TestResult::from_bool(input.is_empty() && rest.is_empty() && got == sent)
    }
}
