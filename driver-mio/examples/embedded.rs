//! The mio driver embedded in an event loop the application owns: one `mio::Poll` serves
//! both an unrelated TCP echo service (tokens 0..) and a tmp2p node (a token range the
//! application chose). A second node, ready-made on its own thread, dials ours and echoes
//! every message back; a plain TCP client uses the echo service at the same time.
//!
//! Run: `cargo run -p tmp2p-driver-mio --example embedded`
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::router::Envelope;
use tmp2p_core::NodeKey;
use tmp2p_driver_mio::{AppEvent, Driver, DriverSetup, RunningNode, TokenRange};

/// The application's own listener.
const ECHO_LISTENER: Token = Token(0);
/// Where the driver's tokens start (the application keeps everything below).
const DRIVER_TOKENS: usize = 1 << 16;
const CHANNEL: u8 = 0x50;

/// What one run achieved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Lines the plain TCP client got echoed back.
    pub(crate) echo_lines: usize,
    /// tmp2p messages our embedded node got echoed back by the peer.
    pub(crate) p2p_replies: usize,
}

fn node_config() -> NodeConfig {
    let mut config = NodeConfig::new("embedded-demo", SocketAddr::from(([127, 0, 0, 1], 0)));
    config.router.incoming_window = Duration::ZERO;
    config
}

fn channels() -> Vec<ChannelDescriptor> {
    vec![ChannelDescriptor {
        id: CHANNEL,
        priority: 1,
        send_queue_capacity: 16,
        recv_message_capacity: 1 << 16,
    }]
}

/// The application's echo connections: socket plus bytes not yet written back.
struct EchoConn {
    stream: TcpStream,
    pending: Vec<u8>,
}

fn serve_echo(conn: &mut EchoConn) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => conn.pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    while !conn.pending.is_empty() {
        match conn.stream.write(&conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// A blocking client of the echo service, on its own thread: sends `lines` lines and
/// counts the ones that came back intact.
fn echo_client(addr: SocketAddr, lines: usize) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return 0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut ok = 0;
        for i in 0..lines {
            let line = format!("line {i}\n");
            if stream.write_all(line.as_bytes()).is_err() {
                break;
            }
            let mut back = vec![0u8; line.len()];
            if stream.read_exact(&mut back).is_err() {
                break;
            }
            if back == line.as_bytes() {
                ok += 1;
            }
        }
        ok
    })
}

/// Runs the demo: `rounds` echo lines and `rounds` tmp2p round trips, all within `timeout`.
///
/// # Errors
/// Any setup failure, or the timeout.
pub(crate) fn run(rounds: usize, timeout: Duration) -> Result<Outcome, Box<dyn Error>> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);

    // The application's unrelated service.
    let mut echo_listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    poll.registry()
        .register(&mut echo_listener, ECHO_LISTENER, Interest::READABLE)?;
    let mut echo_conns: HashMap<Token, EchoConn> = HashMap::new();
    let mut next_echo_token = 1usize;

    // Our tmp2p node, embedded on the same Poll.
    let tokens = TokenRange::new(DRIVER_TOKENS, 1026)?;
    let setup = DriverSetup::new(node_config(), NodeKey::from_seed([21; 32]), channels());
    let mut driver = Driver::new(setup, poll.registry(), tokens)?;
    let our_address = NodeAddress::parse(&format!("{}@{}", driver.node_id(), driver.local_addr()))?;

    // A peer on its own thread that echoes every tmp2p message back (callback form).
    let peer_setup = DriverSetup::new(node_config(), NodeKey::from_seed([22; 32]), channels());
    let peer = RunningNode::spawn_with_callback(
        peer_setup,
        Box::new(|control, event| {
            if let AppEvent::Message(env) = event {
                if let Some(from) = env.from {
                    // One round is in flight at a time, so the queue never fills; a
                    // flooding reactor would keep a refused echo for `AppEvent::Writable`.
                    if let Err(error) =
                        control.send(Envelope::to_peer(from, env.channel, env.message))
                    {
                        tracing::warn!(%error, "echo not sent");
                    }
                }
            }
        }),
    )?;
    peer.handle().add_peer(our_address)?;

    let client = echo_client(echo_listener.local_addr()?, rounds);
    let deadline = Instant::now() + timeout;
    let mut sent = 0usize;
    let mut replies = 0usize;
    while replies < rounds || !client.is_finished() {
        if Instant::now() >= deadline {
            return Err(format!("timed out: {replies}/{rounds} tmp2p replies").into());
        }
        let wait = driver
            .poll_duration(Instant::now())
            .map_or(Duration::from_millis(100), |d| {
                d.min(Duration::from_millis(100))
            });
        poll.poll(&mut events, Some(wait))?;
        for event in events.iter() {
            match event.token() {
                ECHO_LISTENER => loop {
                    match echo_listener.accept() {
                        Ok((mut stream, _)) => {
                            let token = Token(next_echo_token);
                            next_echo_token += 1;
                            poll.registry().register(
                                &mut stream,
                                token,
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            echo_conns.insert(
                                token,
                                EchoConn {
                                    stream,
                                    pending: Vec::new(),
                                },
                            );
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                },
                token if tokens.contains(token) => driver.handle_event(event),
                token => {
                    if let Some(conn) = echo_conns.get_mut(&token) {
                        if !serve_echo(conn) {
                            echo_conns.remove(&token);
                        }
                    }
                }
            }
        }
        driver.process(Instant::now());
        let mut peer_up = None;
        while let Some(event) = driver.poll_event() {
            match event {
                AppEvent::PeerUpdate(update) if update.status == PeerStatus::Up => {
                    peer_up = Some(update.node_id);
                }
                AppEvent::Message(env) => {
                    let expected = format!("round {replies}");
                    if env.message == expected.as_bytes() {
                        replies += 1;
                        if sent < rounds {
                            if let Some(from) = env.from {
                                // One message in flight: a peer's queue never fills.
                                driver.send(Envelope::to_peer(
                                    from,
                                    CHANNEL,
                                    Bytes::from(format!("round {sent}")),
                                ))?;
                                sent += 1;
                            }
                        }
                    }
                }
                AppEvent::PeerUpdate(_) | AppEvent::Writable { .. } => {}
            }
        }
        if let Some(peer_id) = peer_up {
            driver.send(Envelope::to_peer(peer_id, CHANNEL, Bytes::from("round 0")))?;
            sent = 1;
        }
    }
    let echo_lines = client.join().map_err(|_| "echo client panicked")?;
    driver.shutdown(Instant::now());
    while !driver.is_finished() && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(10)))?;
        for event in events.iter() {
            driver.handle_event(event);
        }
        driver.process(Instant::now());
    }
    peer.stop()?;
    Ok(Outcome {
        echo_lines,
        p2p_replies: replies,
    })
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let outcome = run(100, Duration::from_secs(30))?;
    println!(
        "echo service: {} lines echoed; tmp2p: {} round trips",
        outcome.echo_lines, outcome.p2p_replies
    );
    Ok(())
}
