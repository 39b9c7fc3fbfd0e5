//! Runs tmp2p's `PeerConnection` on a thread over a blocking `TcpStream` (short read
//! timeouts stand in for a poller): commands in, events out. Test and bench scaffolding,
//! not a driver.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_core::SeedableRng;
use tmp2p_core::connection::{Direction, PeerConfig, PeerConnection, PeerEvent};
use tmp2p_core::node_info::NodeInfo;
use tmp2p_core::NodeKey;

/// What the test asks our peer to do.
pub enum PeerCommand {
    /// Queue a message (retried while the channel queue is full).
    Send(u8, Bytes),
    /// Ping now.
    Ping,
    /// Close gracefully.
    Close,
}

/// Handle to our peer running on its own thread.
pub struct OurPeer {
    /// Commands to the peer thread.
    pub commands: Sender<PeerCommand>,
    /// Everything the connection reported.
    pub events: Receiver<PeerEvent>,
}

/// Starts our `PeerConnection` on `stream`.
pub fn start(
    stream: TcpStream,
    key: NodeKey,
    info: NodeInfo,
    direction: Direction,
    config: PeerConfig,
    seed: u64,
) -> OurPeer {
    let (cmd_tx, cmd_rx) = channel();
    let (ev_tx, ev_rx) = channel();
    thread::spawn(move || run(stream, key, info, direction, config, seed, cmd_rx, ev_tx));
    OurPeer {
        commands: cmd_tx,
        events: ev_rx,
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    mut stream: TcpStream,
    key: NodeKey,
    info: NodeInfo,
    direction: Direction,
    config: PeerConfig,
    seed: u64,
    commands: Receiver<PeerCommand>,
    events: Sender<PeerEvent>,
) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut conn = PeerConnection::new(Instant::now(), &key, info, direction, config, &mut rng);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(2)));
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = BytesMut::new();
    let mut backlog: std::collections::VecDeque<(u8, Bytes)> = Default::default();
    loop {
        let now = Instant::now();
        while let Ok(cmd) = commands.try_recv() {
            match cmd {
                PeerCommand::Send(ch, msg) => backlog.push_back((ch, msg)),
                PeerCommand::Ping => conn.ping_now(now),
                PeerCommand::Close => conn.close(),
            }
        }
        while let Some((ch, msg)) = backlog.pop_front() {
            if let Err(e) = conn.send(now, ch, msg.clone()) {
                if conn.is_closed() {
                    break;
                }
                let _ = e;
                backlog.push_front((ch, msg));
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
        if let Some(at) = conn.poll_timeout() {
            if Instant::now() >= at {
                conn.handle_timeout(Instant::now());
            }
        }
        while let Some(event) = conn.poll_event() {
            let closed = matches!(event, PeerEvent::Closed { .. });
            let _ = events.send(event);
            if closed {
                while conn.poll_transmit(Instant::now(), &mut out) {}
                let _ = stream.write_all(&out);
                return;
            }
        }
    }
}
