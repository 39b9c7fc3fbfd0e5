//! Embedded drivers on one test-owned `Poll` (each with its own token range), over real
//! loopback sockets.

use std::io::Read;
use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll};
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::router::Envelope;
use tmp2p_core::NodeKey;

use super::*;

const CHANNEL: u8 = 0x30;

fn setup(seed: u8, peers: Vec<NodeAddress>) -> DriverSetup {
    let mut config = NodeConfig::new("driver-unit", "127.0.0.1:0".parse().unwrap());
    config.router.incoming_window = Duration::ZERO;
    config.router.peer_manager.min_retry_time = Duration::from_millis(50);
    config.router.peer_manager.retry_time_jitter = Duration::from_millis(10);
    config.persistent_peers = peers;
    let channel = ChannelDescriptor {
        id: CHANNEL,
        priority: 1,
        send_queue_capacity: 4,
        recv_message_capacity: 1 << 16,
    };
    DriverSetup::new(config, NodeKey::from_seed([seed; 32]), vec![channel])
}

/// Polls once (at most `max` long) and gives every driver its events and a turn.
fn turn(poll: &mut Poll, drivers: &mut [&mut Driver], max: Duration) {
    let mut events = Events::with_capacity(256);
    let now = Instant::now();
    let wait = drivers
        .iter()
        .filter_map(|d| d.poll_duration(now))
        .fold(max, Duration::min);
    poll.poll(&mut events, Some(wait)).unwrap();
    for driver in drivers.iter_mut() {
        for event in events.iter() {
            driver.handle_event(event);
        }
        driver.process(Instant::now());
    }
}

/// Turns `drivers` until the application of `drivers[watched]` sees a peer come up (taking
/// that driver's events up to then).
fn turn_until_up(poll: &mut Poll, drivers: &mut [&mut Driver], watched: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut up = false;
    while !up {
        assert!(Instant::now() < deadline, "peers never connected");
        turn(poll, drivers, Duration::from_millis(20));
        while let Some(event) = drivers[watched].poll_event() {
            up |= matches!(event, AppEvent::PeerUpdate(u) if u.status == PeerStatus::Up);
        }
    }
}

fn address_of(driver: &Driver) -> NodeAddress {
    NodeAddress::parse(&format!("{}@{}", driver.node_id(), driver.local_addr())).unwrap()
}

#[test]
fn a_refused_connect_is_a_failed_dial_and_frees_its_slot() {
    let closed = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let absent = NodeKey::from_seed([9; 32]).node_id();
    let peer = NodeAddress::parse(&format!("{absent}@{closed}")).unwrap();
    let mut poll = Poll::new().unwrap();
    let mut driver = Driver::new(
        setup(1, vec![peer]),
        poll.registry(),
        TokenRange::new(0, 16).unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while driver
        .node()
        .router()
        .peer_manager()
        .last_dialed(absent)
        .is_none()
    {
        assert!(Instant::now() < deadline, "no dial outcome recorded");
        turn(&mut poll, &mut [&mut driver], Duration::from_millis(20));
    }
    let (_, succeeded) = driver
        .node()
        .router()
        .peer_manager()
        .last_dialed(absent)
        .unwrap();
    assert!(!succeeded, "a refused connect is a failed dial");
    assert_eq!(driver.connection_count(), 0);
    assert!(driver.by_conn.is_empty() && driver.timers.is_empty());
}

#[test]
fn connections_beyond_the_token_range_are_dropped_before_any_handshake() {
    let mut poll = Poll::new().unwrap();
    // Two fixed tokens plus room for exactly one connection.
    let mut driver = Driver::new(
        setup(2, vec![]),
        poll.registry(),
        TokenRange::new(500, 3).unwrap(),
    )
    .unwrap();
    let mut first = std::net::TcpStream::connect(driver.local_addr()).unwrap();
    let mut second = std::net::TcpStream::connect(driver.local_addr()).unwrap();
    for _ in 0..20 {
        turn(&mut poll, &mut [&mut driver], Duration::from_millis(10));
    }
    assert_eq!(driver.connection_count(), 1);
    for stream in [&first, &second] {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
    }
    // The admitted one got our handshake opening; the other was closed untouched.
    let mut buf = [0u8; 64];
    assert!(first.read(&mut buf).unwrap() > 0);
    assert_eq!(second.read(&mut buf).unwrap(), 0);
}

/// A node on `slow_setup` and a sender (key seed `sender_seed`) that dials it, on one
/// `poll`, both up.
fn slow_and_sender(poll: &mut Poll, slow_setup: DriverSetup, sender_seed: u8) -> (Driver, Driver) {
    let mut slow =
        Driver::new(slow_setup, poll.registry(), TokenRange::new(0, 8).unwrap()).unwrap();
    let mut sender = Driver::new(
        setup(sender_seed, vec![address_of(&slow)]),
        poll.registry(),
        TokenRange::new(100, 8).unwrap(),
    )
    .unwrap();
    turn_until_up(poll, &mut [&mut slow, &mut sender], 0);
    (slow, sender)
}

#[test]
fn a_full_inbound_queue_stops_reading_until_the_application_takes_events() {
    const COUNT: usize = 40;
    let mut poll = Poll::new().unwrap();
    let mut slow_setup = setup(3, vec![]);
    slow_setup.limits.max_pending_inbound = 2;
    // The connection holds about four messages beyond the queue, then stops reading.
    slow_setup.config.inbound_hold_bytes = 4000;
    // Small reads, so a turn's read yields about one message and the pause shows.
    slow_setup.limits.read_budget = 1024;
    let (mut slow, mut sender) = slow_and_sender(&mut poll, slow_setup, 4);
    let slow_id = slow.node_id();
    for i in 0..COUNT {
        let message = Bytes::from(vec![i as u8; 1000]);
        assert_eq!(
            sender.send(Envelope::to_peer(slow_id, CHANNEL, message)),
            Ok(1)
        );
    }
    // Nobody takes the slow node's events: two wait in its queue, a few more in the
    // connection, which then stops reading.
    for _ in 0..30 {
        turn(
            &mut poll,
            &mut [&mut slow, &mut sender],
            Duration::from_millis(10),
        );
    }
    assert!(!slow.waiting.is_empty(), "the connection waits for room");
    let (_, link) = slow.links.iter().next().unwrap();
    assert!(
        matches!(&link.stage, Stage::Open(m) if m.holds_inbound()) && !link.wants_read(),
        "it stopped reading"
    );
    assert_eq!(slow.events.len(), 2);
    assert!(
        slow.events.len() < COUNT,
        "reading stopped early ({} events queued)",
        slow.events.len()
    );
    // The application catches up: reading resumes and everything arrives in order.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < COUNT {
        assert!(
            Instant::now() < deadline,
            "only {} of {COUNT} arrived",
            got.len()
        );
        while let Some(event) = slow.poll_event() {
            if let AppEvent::Message(env) = event {
                got.push(env.message[0]);
            }
        }
        turn(
            &mut poll,
            &mut [&mut slow, &mut sender],
            Duration::from_millis(10),
        );
    }
    let expected: Vec<u8> = (0..COUNT).map(|i| i as u8).collect();
    assert_eq!(got, expected);
}

/// Connects to `addr` `count` times (keeping every connection open), each within `timeout`;
/// returns how many completed before the first that did not.
fn connects_until_refused(addr: std::net::SocketAddr, count: usize, timeout: Duration) -> usize {
    let mut open = Vec::new();
    for _ in 0..count {
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => open.push(stream),
            Err(_) => break,
        }
    }
    open.len()
}

#[test]
fn the_listen_backlog_holds_a_burst_the_loop_has_not_accepted_yet() {
    // The loop never runs: every connection waits in the kernel's accept queue, whose
    // length is the configured backlog (mio's own is 128).
    let poll = Poll::new().unwrap();
    let driver = Driver::new(
        setup(70, vec![]),
        poll.registry(),
        TokenRange::new(0, 64).unwrap(),
    )
    .unwrap();
    let burst = 300;
    assert_eq!(
        connects_until_refused(driver.local_addr(), burst, Duration::from_secs(2)),
        burst,
        "the default backlog (1024) holds the whole burst"
    );
    drop(driver);

    let mut small = setup(71, vec![]);
    small.config.listen_backlog = 4;
    let driver = Driver::new(small, poll.registry(), TokenRange::new(64, 64).unwrap()).unwrap();
    let held = connects_until_refused(driver.local_addr(), 50, Duration::from_millis(300));
    assert!(held < 50, "a backlog of 4 held {held} connections");
}

/// Gives `driver` the events of its own `poll` and a turn.
fn turn_one(poll: &mut Poll, driver: &mut Driver, max: Duration) {
    turn(poll, &mut [driver], max);
}

/// The peer's last message and its close arrive together, before the loop looks: one
/// edge-triggered event carries both. The short read that takes the message must not count
/// as "drained", or the EOF behind it is never read and the dead peer stays `Up` until a
/// ping times out (60 s by default).
#[test]
fn a_close_right_behind_the_last_message_is_seen_at_once() {
    let mut poll_a = Poll::new().unwrap();
    let mut poll_b = Poll::new().unwrap();
    let mut a = Driver::new(
        setup(5, vec![]),
        poll_a.registry(),
        TokenRange::new(0, 8).unwrap(),
    )
    .unwrap();
    let mut b = Driver::new(
        setup(6, vec![address_of(&a)]),
        poll_b.registry(),
        TokenRange::new(0, 8).unwrap(),
    )
    .unwrap();
    let a_id = a.node_id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut a_up, mut b_up) = (false, false);
    while !(a_up && b_up) {
        assert!(Instant::now() < deadline, "peers never connected");
        turn_one(&mut poll_a, &mut a, Duration::from_millis(5));
        turn_one(&mut poll_b, &mut b, Duration::from_millis(5));
        while let Some(event) = a.poll_event() {
            a_up |= matches!(event, AppEvent::PeerUpdate(u) if u.status == PeerStatus::Up);
        }
        while let Some(event) = b.poll_event() {
            b_up |= matches!(event, AppEvent::PeerUpdate(u) if u.status == PeerStatus::Up);
        }
    }
    // Let `a` finish whatever it still sends, and `b` read it, so `b`'s close is a FIN.
    for _ in 0..10 {
        turn_one(&mut poll_a, &mut a, Duration::from_millis(5));
        turn_one(&mut poll_b, &mut b, Duration::from_millis(5));
    }
    // `b` sends one small message and goes away; `a` does not look until both are there.
    b.send(Envelope::to_peer(
        a_id,
        CHANNEL,
        Bytes::from_static(b"last words"),
    ))
    .unwrap();
    for _ in 0..5 {
        turn_one(&mut poll_b, &mut b, Duration::from_millis(5));
    }
    drop(b);
    std::thread::sleep(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut got, mut down) = (false, false);
    while !(got && down) {
        assert!(
            Instant::now() < deadline,
            "message seen: {got}, peer down: {down} (the close was missed)"
        );
        turn_one(&mut poll_a, &mut a, Duration::from_millis(20));
        while let Some(event) = a.poll_event() {
            match event {
                AppEvent::Message(env) => got |= env.message.as_ref() == b"last words",
                AppEvent::PeerUpdate(u) => down |= u.status == PeerStatus::Down,
                AppEvent::Writable { .. } => {}
            }
        }
    }
}

/// The router closes a connection (a fatal peer error) while a flood towards a peer that
/// stopped reading is still queued on it: the close may not wait for sends that can never
/// be handed over. Within `close_linger` the link gives up and the peer goes `Down`.
#[test]
fn a_close_is_not_held_back_by_a_peer_that_stopped_reading() {
    const FLOOD: usize = 3000;
    let mut poll = Poll::new().unwrap();
    let mut slow_setup = setup(7, vec![]);
    slow_setup.limits.max_pending_inbound = 2;
    let mut slow =
        Driver::new(slow_setup, poll.registry(), TokenRange::new(0, 8).unwrap()).unwrap();
    let mut sender_setup = setup(8, vec![address_of(&slow)]);
    let linger = Duration::from_millis(500);
    sender_setup.config.close_linger = linger;
    let mut sender = Driver::new(
        sender_setup,
        poll.registry(),
        TokenRange::new(100, 8).unwrap(),
    )
    .unwrap();
    let slow_id = slow.node_id();
    turn_until_up(&mut poll, &mut [&mut slow, &mut sender], 1);
    // A flood towards a node whose application takes nothing: it stops reading, the
    // socket buffers, the connection's queues and the router's queue for the peer fill,
    // and the router refuses more (backpressure).
    let mut next = 0;
    let mut flood = |sender: &mut Driver| {
        while next < FLOOD {
            let message = Bytes::from(vec![next as u8; 16_000]);
            match sender.send(Envelope::to_peer(slow_id, CHANNEL, message)) {
                Ok(_) => next += 1,
                Err(SendError::Full { .. }) => return,
                Err(error) => panic!("{error}"),
            }
        }
    };
    let flooding = Instant::now();
    while flooding.elapsed() < Duration::from_millis(500) {
        flood(&mut sender);
        turn(
            &mut poll,
            &mut [&mut slow, &mut sender],
            Duration::from_millis(10),
        );
    }
    assert!(
        slow.links.iter().all(|(_, link)| !link.wants_read()),
        "the slow node stopped reading"
    );
    let reported = Instant::now();
    let error = PeerError {
        node: slow_id,
        reason: "test: misbehaved".into(),
        fatal: true,
    };
    assert!(
        sender.links.iter().all(|(_, link)| !link.writable),
        "the flood filled the sender's socket"
    );
    sender.report_error(reported, error);
    let mut down = false;
    while !down {
        let took = reported.elapsed();
        assert!(
            took < linger + Duration::from_secs(3),
            "not down after {took:?} (close_linger {linger:?})"
        );
        turn(
            &mut poll,
            &mut [&mut slow, &mut sender],
            Duration::from_millis(20),
        );
        while let Some(event) = sender.poll_event() {
            down |= matches!(event, AppEvent::PeerUpdate(u)
                if u.node_id == slow_id && u.status == PeerStatus::Down);
        }
    }
}

/// A peer sends a burst and closes while the application is not taking events (its queue
/// full at two): every message still reaches it, in order, before the peer's `Down`.
#[test]
fn a_peers_last_messages_come_before_its_down_even_past_a_full_queue() {
    const COUNT: usize = 20;
    let mut poll = Poll::new().unwrap();
    let mut slow_setup = setup(7, vec![]);
    slow_setup.limits.max_pending_inbound = 2;
    let (mut slow, mut sender) = slow_and_sender(&mut poll, slow_setup, 8);
    let slow_id = slow.node_id();
    for i in 0..COUNT {
        let message = Bytes::from(vec![i as u8; 100]);
        assert_eq!(
            sender.send(Envelope::to_peer(slow_id, CHANNEL, message)),
            Ok(1)
        );
    }
    for _ in 0..10 {
        turn(
            &mut poll,
            &mut [&mut slow, &mut sender],
            Duration::from_millis(5),
        );
    }
    drop(sender);
    let deadline = Instant::now() + Duration::from_secs(10);
    let is_down =
        |e: &AppEvent| matches!(e, AppEvent::PeerUpdate(u) if u.status == PeerStatus::Down);
    while !slow.events.iter().any(is_down) {
        assert!(Instant::now() < deadline, "the close was not seen");
        turn(&mut poll, &mut [&mut slow], Duration::from_millis(10));
    }
    let mut got = Vec::new();
    let mut down_after = None;
    while let Some(event) = slow.poll_event() {
        match event {
            AppEvent::Message(env) => got.push(env.message[0]),
            e if is_down(&e) => down_after = Some(got.len()),
            _ => {}
        }
    }
    let expected: Vec<u8> = (0..COUNT).map(|i| i as u8).collect();
    assert_eq!(got, expected);
    assert_eq!(down_after, Some(COUNT), "the Down overtook messages");
}
