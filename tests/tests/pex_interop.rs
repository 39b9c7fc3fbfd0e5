//! PEX between our reactor (on a blocking `PeerConnection`, with a real PeerManager) and the
//! reference peer of independent crates (tendermint-p2p + tendermint-proto), over loopback
//! TCP. The reference peer is extended here with a minimal PEX responder that follows
//! CometBFT's rules (protocol.md §5.2): it answers each `PexRequest` with a few addresses,
//! lets two requests pass back to back and then treats a request less than 10 s after the
//! previous one as a ban-worthy violation, and counts as violations an unsolicited
//! `PexAddrs` and any message it cannot decode as `tendermint.p2p.Message`. Our reactor
//! runs at the shortest interval it allows (10 s) and must never trip any of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use prost::Message as _;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tendermint_proto::v0_38::p2p::{
    message::Sum, DefaultNodeInfo, Message, NetAddress, PexAddrs, PexRequest,
};
use tmp2p_core::address::NodeAddress;
use tmp2p_core::connection::{Direction, PeerConfig, PeerEvent};
use tmp2p_core::node_info::{NodeInfo, ProtocolVersions};
use tmp2p_core::peer_manager::{
    ClockAnchor, PeerManager, PeerManagerOptions, PeerStatus, PeerUpdate,
};
use tmp2p_core::pex::{self, PexConfig, PexError, PexOutput, PexReactor, PEX_CHANNEL};
use tmp2p_core::NodeKey;
use tmp2p_tests::blocking_peer::{self, PeerCommand};
use tmp2p_tests::reference_peer::{reference_info, RefEvent, ReferencePeer};

const THEIR_SEED: [u8; 32] = [0x42; 32];
const OUR_SEED: [u8; 32] = [0x17; 32];
/// CometBFT's `ensurePeersPeriod / 3`.
const COMETBFT_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Requests we make before the test ends (at 0 s, ~10 s, ~20 s).
const ROUNDS: usize = 3;

fn our_info(key: &NodeKey) -> NodeInfo {
    NodeInfo {
        protocol_version: ProtocolVersions {
            p2p: 8,
            block: 11,
            app: 0,
        },
        node_id: key.node_id(),
        listen_addr: "tcp://127.0.0.1:26656".into(),
        network: "pex-interop".into(),
        version: "0.1.0".into(),
        channels: vec![PEX_CHANNEL],
        moniker: "tmp2p".into(),
        tx_index: "off".into(),
        rpc_address: String::new(),
    }
}

fn their_info() -> DefaultNodeInfo {
    reference_info(THEIR_SEED, "pex-interop", &[PEX_CHANNEL])
}

/// The addresses the responder hands out in answer `round`.
fn their_addresses(round: usize) -> Vec<NetAddress> {
    (0..3)
        .map(|k| NetAddress {
            id: NodeKey::from_seed([(round * 3 + k) as u8 + 100; 32])
                .node_id()
                .to_string(),
            ip: format!("8.{}.{}.1", round + 1, k + 1),
            port: 26656,
        })
        .collect()
}

/// What the CometBFT-rule responder saw.
#[derive(Debug, Default)]
struct Report {
    requests: Vec<Instant>,
    violations: Vec<String>,
    our_answers: Vec<PexAddrs>,
}

fn encode(sum: Sum) -> Vec<u8> {
    Message { sum: Some(sum) }.encode_to_vec()
}

/// The reference peer's PEX side, following CometBFT's rules, until `until`.
fn respond(reference: ReferencePeer, until: Instant) -> Report {
    let mut report = Report::default();
    // Ask once, as a CometBFT node does when it dials out: we must answer.
    reference.send(PEX_CHANNEL, encode(Sum::PexRequest(PexRequest {})));
    let mut asked = true;
    let mut free_passes = 2;
    let mut last: Option<Instant> = None;
    while Instant::now() < until {
        let event = match reference.events.recv_timeout(Duration::from_millis(50)) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let data = match event {
            RefEvent::Message(PEX_CHANNEL, data) => data,
            // We close after the unsolicited answer, as a driver does on a fatal error.
            RefEvent::Closed(_) => break,
            _ => continue,
        };
        let now = Instant::now();
        match Message::decode(&data[..]).map(|m| m.sum) {
            Ok(Some(Sum::PexRequest(_))) => {
                if free_passes > 0 {
                    free_passes -= 1;
                } else if let Some(gap) = last.map(|l| now - l) {
                    if gap < COMETBFT_MIN_INTERVAL {
                        report
                            .violations
                            .push(format!("request {gap:?} after the previous: ban"));
                        break;
                    }
                }
                last = Some(now);
                let round = report.requests.len();
                report.requests.push(now);
                let answer = encode(Sum::PexAddrs(PexAddrs {
                    addrs: their_addresses(round),
                }));
                reference.send(PEX_CHANNEL, answer.clone());
                if round + 1 == ROUNDS {
                    // One more, which nobody asked for: ours must call it unsolicited.
                    reference.send(PEX_CHANNEL, answer);
                }
            }
            Ok(Some(Sum::PexAddrs(addrs))) => {
                if !asked {
                    report.violations.push("unsolicited PexAddrs: ban".into());
                    break;
                }
                asked = false;
                report.our_answers.push(addrs);
            }
            other => {
                report
                    .violations
                    .push(format!("undecodable PEX message {other:?}: disconnect"));
                break;
            }
        }
    }
    report
}

fn wait_for_auth(events: &Receiver<PeerEvent>) {
    match events.recv_timeout(Duration::from_secs(20)).unwrap() {
        PeerEvent::Authenticated { .. } => {}
        other => panic!("expected Authenticated, got {other:?}"),
    }
}

#[test]
fn our_pex_follows_cometbft_rules_against_the_reference_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = thread::spawn(move || listener.accept().unwrap().0);
    let ours = TcpStream::connect(addr).unwrap();
    let theirs = accept.join().unwrap();

    let key = NodeKey::from_seed(OUR_SEED);
    let their_id = NodeKey::from_seed(THEIR_SEED).node_id();
    let reference = thread::spawn(move || ReferencePeer::start(theirs, THEIR_SEED, their_info()));
    let config = PeerConfig {
        channels: vec![pex::channel_descriptor()],
        ..PeerConfig::default()
    };
    let us = blocking_peer::start(
        ours,
        key.clone(),
        our_info(&key),
        Direction::Outbound { expected: their_id },
        config,
        1,
    );
    let reference = reference.join().unwrap().unwrap();
    wait_for_auth(&us.events);

    let deadline = Instant::now() + Duration::from_secs(28);
    let responder = thread::spawn(move || respond(reference, deadline));

    // Our node: a PeerManager that dialed the reference peer, and the PEX reactor.
    let mut now = Instant::now();
    let options = PeerManagerOptions {
        max_peers: 100,
        max_connected: 10,
        max_outgoing_connections: 10,
        self_address: Some(
            NodeAddress::parse(&format!("{}@127.0.0.1:26656", key.node_id())).unwrap(),
        ),
        ..PeerManagerOptions::default()
    };
    let clock = ClockAnchor {
        instant: now,
        since_unix_epoch: Duration::from_secs(1_700_000_000),
    };
    let mut pm = PeerManager::new(key.node_id(), options, clock).unwrap();
    let their_address = NodeAddress::parse(&format!("{their_id}@{addr}")).unwrap();
    pm.add(now, their_address.clone()).unwrap();
    assert_eq!(pm.try_dial_next(now), Some(their_address.clone()));
    pm.dialed(now, &their_address, Some(addr.ip())).unwrap();
    pm.ready(their_id, vec![u16::from(PEX_CHANNEL)]);
    let mut pex = PexReactor::new(PexConfig {
        request_interval: pex::MIN_REQUEST_INTERVAL,
        ..PexConfig::default()
    })
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let up = PeerUpdate {
        node_id: their_id,
        status: PeerStatus::Up,
        channels: vec![u16::from(PEX_CHANNEL)],
    };
    pex.handle_peer_update(now, &up, &mut pm);
    pex.set_peer_ip(their_id, addr.ip());

    let mut errors = Vec::new();
    let mut learned = 0;
    while now < deadline {
        while let Some(output) = pex.poll_output() {
            match output {
                PexOutput::Send(envelope) => {
                    let command = PeerCommand::Send(envelope.channel, envelope.message);
                    us.commands.send(command).unwrap();
                }
                PexOutput::PeerError(e) => errors.push(e),
                PexOutput::Learned { addresses, .. } => learned += addresses.len(),
                PexOutput::Disconnect { .. } => panic!("not a seed"),
            }
        }
        let wait = pex
            .poll_timeout()
            .map_or(Duration::from_millis(100), |at| {
                at.saturating_duration_since(now)
            })
            .min(Duration::from_millis(100));
        match us.events.recv_timeout(wait) {
            Ok(PeerEvent::Message { channel, message }) => {
                assert_eq!(channel, PEX_CHANNEL);
                pex.handle_message(Instant::now(), their_id, message, &mut pm, &mut rng);
            }
            Ok(PeerEvent::Closed { reason }) => panic!("connection closed: {reason:?}"),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => panic!("our peer thread ended"),
        }
        now = Instant::now();
        if pex.poll_timeout().is_some_and(|at| at <= now) {
            pex.handle_timeout(now, &mut pm);
        }
        if errors.iter().any(|e| e.error == PexError::Unsolicited) {
            break;
        }
    }
    let _ = us.commands.send(PeerCommand::Close);
    let report = responder.join().unwrap();

    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.requests.len(), ROUNDS, "{report:?}");
    for pair in report.requests.windows(2) {
        assert!(pair[1] - pair[0] >= COMETBFT_MIN_INTERVAL, "{report:?}");
    }
    // Our answer to their request, decoded by tendermint-proto: our own address first.
    assert_eq!(report.our_answers.len(), 1);
    let first = &report.our_answers[0].addrs[0];
    assert_eq!(first.id, key.node_id().to_string());
    assert_eq!((first.ip.as_str(), first.port), ("127.0.0.1", 26656));
    assert!(report.our_answers[0]
        .addrs
        .iter()
        .all(|a| a.id != their_id.to_string()));
    // Their addresses reached our PeerManager.
    assert_eq!(learned, 3 * ROUNDS);
    for round in 0..ROUNDS {
        for a in their_addresses(round) {
            let id = tmp2p_core::NodeId::parse(&a.id).unwrap();
            assert_eq!(pm.addresses(id).len(), 1, "{a:?}");
        }
    }
    // The extra answer is the one error, and it is fatal.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error, PexError::Unsolicited);
    assert!(tmp2p_core::router::PeerError::from(errors[0].clone()).fatal);
}
