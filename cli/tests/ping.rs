#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Runs the built `tmp2p ping` against a peer in this test process: tmp2p-core's
//! `PeerConnection` over a blocking std TCP socket, answering pings and echoing one raw
//! channel (or, for the negative test, echoing corrupted bytes).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tmp2p_core::connection::{Direction, PeerConfig, PeerConnection, PeerEvent};
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_info::{
    NodeInfo, ProtocolVersions, BLOCK_PROTOCOL_VERSION, P2P_PROTOCOL_VERSION,
};
use tmp2p_core::NodeKey;

const ECHO: u8 = 0x99;

/// How the in-test peer treats messages on the echo channel.
#[derive(Clone, Copy)]
enum Echo {
    Faithful,
    Corrupt,
}

/// A peer listening on loopback; serves its connections one after the other on a thread.
/// Returns `id@addr`.
fn start_peer(network: &str, echo: Echo) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let key = NodeKey::generate(&mut rand_core::OsRng);
    let id = key.node_id();
    let info = NodeInfo {
        protocol_version: ProtocolVersions {
            p2p: P2P_PROTOCOL_VERSION,
            block: BLOCK_PROTOCOL_VERSION,
            app: 0,
        },
        node_id: id,
        listen_addr: format!("tcp://{addr}"),
        network: network.to_owned(),
        version: "test-peer".to_owned(),
        // PEX too: the one channel the ping-only side has in common with it.
        channels: vec![0x00, ECHO],
        moniker: "echo-peer".to_owned(),
        tx_index: "off".to_owned(),
        rpc_address: String::new(),
    };
    thread::spawn(move || {
        for stream in listener.incoming() {
            serve(stream.unwrap(), &key, info.clone(), echo);
        }
    });
    format!("{id}@{addr}")
}

fn serve(mut stream: TcpStream, key: &NodeKey, info: NodeInfo, echo: Echo) {
    let config = PeerConfig {
        channels: [0x00, ECHO]
            .into_iter()
            .map(|id| ChannelDescriptor {
                id,
                priority: 1,
                send_queue_capacity: 1024,
                recv_message_capacity: 4 << 20,
            })
            .collect(),
        ..PeerConfig::default()
    };
    let mut rng = rand_core::OsRng;
    let mut conn = PeerConnection::new(
        Instant::now(),
        key,
        info,
        Direction::Inbound,
        config,
        &mut rng,
    );
    stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = BytesMut::new();
    let mut backlog: std::collections::VecDeque<Bytes> = Default::default();
    loop {
        let now = Instant::now();
        while let Some(message) = backlog.pop_front() {
            if let Err(e) = conn.send(now, ECHO, message.clone()) {
                let _ = e;
                backlog.push_front(message);
                break;
            }
        }
        while conn.poll_transmit(now, &mut out) {
            if stream.write_all(&out).is_err() {
                conn.handle_eof();
            }
            out.clear();
        }
        match stream.read(&mut buf) {
            Ok(0) => conn.handle_eof(),
            Ok(n) => {
                let _ = conn.handle_input(Instant::now(), &buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => conn.handle_eof(),
        }
        if conn.poll_timeout().is_some_and(|at| Instant::now() >= at) {
            conn.handle_timeout(Instant::now());
        }
        while let Some(event) = conn.poll_event() {
            match event {
                PeerEvent::Message { channel, message } if channel == ECHO => {
                    let message = match echo {
                        Echo::Faithful => message,
                        Echo::Corrupt => {
                            let mut bad = message.to_vec();
                            if let Some(last) = bad.last_mut() {
                                *last ^= 0xff;
                            }
                            Bytes::from(bad)
                        }
                    };
                    backlog.push_back(message);
                }
                PeerEvent::Closed { .. } => {
                    while conn.poll_transmit(Instant::now(), &mut out) {}
                    let _ = stream.write_all(&out);
                    return;
                }
                _ => {}
            }
        }
    }
}

fn tmp2p(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn assert_one_line_error(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "stderr not one line: {err:?}");
    assert!(err.starts_with("tmp2p: "), "{err:?}");
    err
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    serde_json::from_str(stdout(o).trim()).unwrap()
}

#[test]
fn ping_prints_peer_info_and_round_trip_table() {
    let peer = start_peer("tmp2p-local", Echo::Faithful);
    let out = tmp2p(&["ping", &peer, "--count", "5"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let id = peer.split('@').next().unwrap();
    assert!(text.contains(id), "{text}");
    assert!(text.contains("echo-peer"), "{text}");
    assert!(text.contains("channels  00 99"), "{text}");
    assert!(text.contains("5 MConnection ping round trips"), "{text}");
    for column in ["min", "p50", "p99", "max"] {
        assert!(text.contains(column), "{text}");
    }
}

#[test]
fn ping_resolves_dns_names() {
    let peer = start_peer("tmp2p-local", Echo::Faithful);
    let (id, addr) = peer.split_once('@').unwrap();
    let port = addr.rsplit_once(':').unwrap().1;
    let v = json(&tmp2p(&[
        "ping",
        &format!("{id}@localhost:{port}"),
        "--count",
        "2",
        "--json",
    ]));
    assert_eq!(v["rtt"]["count"], 2);
    assert_eq!(v["address"], format!("localhost:{port}"));
}

#[test]
fn ping_json_reports_every_round_trip() {
    let peer = start_peer("tmp2p-local", Echo::Faithful);
    let v = json(&tmp2p(&["ping", &peer, "--count", "7", "--json"]));
    assert_eq!(v["mode"], "ping");
    assert_eq!(v["rtt"]["count"], 7);
    assert_eq!(v["peer"]["id"], peer.split('@').next().unwrap());
    assert_eq!(v["peer"]["moniker"], "echo-peer");
    let (min, p50, max) = (
        v["rtt"]["min_us"].as_f64().unwrap(),
        v["rtt"]["p50_us"].as_f64().unwrap(),
        v["rtt"]["max_us"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= p50 && p50 <= max, "{v}");
}

#[test]
fn echo_mode_verifies_multi_packet_echoes() {
    let peer = start_peer("tmp2p-local", Echo::Faithful);
    let args = [
        "ping",
        &peer,
        "--echo-channel",
        "0x99",
        "--size",
        "3000",
        "--count",
        "5",
        "--json",
    ];
    let v = json(&tmp2p(&args));
    assert_eq!(v["mode"], "echo");
    assert_eq!(v["verified"], 5);
    assert_eq!(v["size"], 3000);
    assert_eq!(v["channel"], ECHO);
}

#[test]
fn flood_mode_verifies_every_echo_and_reports_rates() {
    let peer = start_peer("tmp2p-local", Echo::Faithful);
    let args = [
        "ping",
        &peer,
        "--echo-channel",
        "153",
        "--size",
        "1000",
        "--flood",
        "500",
        "--json",
    ];
    let v = json(&tmp2p(&args));
    assert_eq!(v["mode"], "flood");
    assert_eq!(v["verified"], 500);
    assert!(v["messages_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["mb_per_s"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn corrupted_echo_fails_with_exit_1() {
    let peer = start_peer("tmp2p-local", Echo::Corrupt);
    let out = tmp2p(&["ping", &peer, "--echo-channel", "0x99", "--count", "3"]);
    let err = assert_one_line_error(&out, 1);
    assert!(err.contains("echo #0 differs"), "{err}");
}

#[test]
fn peer_on_another_network_is_refused_with_the_typed_reason() {
    let peer = start_peer("other-chain", Echo::Faithful);
    let out = tmp2p(&["ping", &peer, "--network", "my-chain"]);
    let err = assert_one_line_error(&out, 1);
    assert!(err.contains("handshake refused (Incompatible)"), "{err}");
    assert!(err.contains("other-chain"), "{err}");
}

#[test]
fn without_network_ping_learns_the_peers_network_and_goes_on() {
    let peer = start_peer("other-chain", Echo::Faithful);
    let out = tmp2p(&["ping", &peer, "--count", "2", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is on network \"other-chain\": using it"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["peer"]["network"], "other-chain", "{v:#}");
    assert_eq!(v["rtt"]["count"], 2, "{v:#}");
}

#[test]
fn wrong_peer_id_is_an_auth_failure() {
    let peer = start_peer("tmp2p-local", Echo::Faithful);
    let (_, addr) = peer.split_once('@').unwrap();
    let other = NodeKey::generate(&mut rand_core::OsRng).node_id();
    let out = tmp2p(&["ping", &format!("{other}@{addr}")]);
    let err = assert_one_line_error(&out, 1);
    assert!(err.contains("AuthFailure"), "{err}");
}

#[test]
fn refused_tcp_connection_exits_1() {
    // Bind then drop: nothing listens on this port any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let id = NodeKey::generate(&mut rand_core::OsRng).node_id();
    let out = tmp2p(&["ping", &format!("{id}@{addr}")]);
    let err = assert_one_line_error(&out, 1);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn bad_ping_input_exits_2_with_one_line() {
    let id = "00112233445566778899aabbccddeeff00112233";
    let good = format!("{id}@127.0.0.1:26656");
    let err = assert_one_line_error(&tmp2p(&["ping", &good, "--bogus"]), 2);
    assert!(err.contains("--bogus"), "{err}");
    let err = assert_one_line_error(&tmp2p(&["ping", "not-an-address"]), 2);
    assert!(err.contains("malformed address"), "{err}");
    let no_port = format!("{id}@127.0.0.1");
    assert_one_line_error(&tmp2p(&["ping", &no_port]), 2);
    let missing = std::env::temp_dir().join(format!("tmp2p-absent-{}.json", std::process::id()));
    let err = assert_one_line_error(
        &tmp2p(&["ping", &good, "--key", missing.to_str().unwrap()]),
        2,
    );
    assert!(err.contains("cannot read key file"), "{err}");
    assert_one_line_error(&tmp2p(&["ping", &good, "--size", "10"]), 2);
    assert_one_line_error(&tmp2p(&["ping", &good, "--echo-channel", "300"]), 2);
    assert_one_line_error(&tmp2p(&["ping", &good, "--count", "0"]), 2);
    assert_one_line_error(&tmp2p(&["ping"]), 2);
}
