//! `Session`: one outbound peer connection on smol, without a router. It owns a single
//! [`PeerConnection`] over an `async_net::TcpStream`, with async-io timers, and drives it
//! only while one of its async methods runs (no background task). Made for tools that talk
//! to exactly one peer, such as `tmp2p ping`.
//!
//! Each method runs the connection's IO loop (read, write, timers, concurrently, so a peer
//! that answers while we are still writing never deadlocks us) until what it waits for
//! happens. Messages the peer sends while nobody calls [`Session::recv`] wait in a bounded
//! inbox; past its bound the oldest are dropped and counted ([`Session::dropped`]).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::TcpStream;
use bytes::{Buf as _, Bytes, BytesMut};
use futures_lite::{future, AsyncReadExt as _, AsyncWriteExt as _};
use tmp2p_core::address::{NodeAddress, Resolution};
use tmp2p_core::connection::{ConnectionError, Direction, PeerConfig, PeerConnection, PeerEvent};
use tmp2p_core::mconn::SendError;
use tmp2p_core::node_info::{NodeInfo, NodeInfoError};
#[cfg(test)]
use tmp2p_core::NodeId;
use tmp2p_core::NodeKey;

/// How long one TCP connect attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from the socket per read call.
const READ_CHUNK: usize = 64 * 1024;
/// Outbound bytes gathered from the connection before writing them.
const WRITE_BATCH: usize = 256 * 1024;
/// Messages kept for [`Session::recv`] before the oldest are dropped.
const INBOX_MESSAGES: usize = 4096;
/// Bytes kept for [`Session::recv`] before the oldest messages are dropped.
const INBOX_BYTES: usize = 64 * 1024 * 1024;

/// Why a session could not be opened or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The address cannot be dialed as written (no host, no port, bad hostname...).
    #[error("cannot dial {address}: {reason}")]
    Undialable {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The DNS lookup failed or found no IP address.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host name looked up.
        host: String,
        /// The lookup error, or that it found nothing.
        reason: String,
    },
    /// No TCP connection could be made to any resolved address.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The TCP connect did not complete within the limit.
    #[error("connecting to {addr} timed out after {limit:?}")]
    ConnectTimeout {
        /// The address tried.
        addr: SocketAddr,
        /// The limit.
        limit: Duration,
    },
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[source] io::Error),
    /// The peer connection failed: handshake refused, protocol error, peer closed...
    #[error("{0}")]
    Connection(#[source] ConnectionError),
    /// The connection was closed by us (after [`Session::close`]).
    #[error("the session is closed")]
    Closed,
    /// The message cannot be sent (unknown channel).
    #[error("cannot send: {0}")]
    Send(#[source] SendError),
}

/// The network a peer named in its NodeInfo when it refused ours as another network's
/// (its NodeInfo reaches us before either side decides).
pub(crate) fn learned_network(error: &SessionError) -> Option<&str> {
    match error {
        SessionError::Connection(ConnectionError::Incompatible(
            NodeInfoError::NetworkMismatch { theirs, .. },
        )) => Some(theirs),
        _ => None,
    }
}

/// How long to wait before dialing a peer again right after a connection to it ended: a
/// node may refuse a reconnect from the same IP within a short window (tmp2p's
/// `RouterConfig::incoming_window`, 100 ms by default; Tendermint v0.35 alike).
pub(crate) const REDIAL_DELAY: Duration = Duration::from_secs(1);

/// Connects as [`Session::connect`] does; with `learn`, a peer that refused us for being on
/// another network is dialed once more, after [`REDIAL_DELAY`], as a node of its network.
/// Returns the session and the network learned, if one was.
///
/// # Errors
/// As [`Session::connect`], for the last attempt.
pub(crate) async fn connect_learning_network(
    address: &NodeAddress,
    key: &NodeKey,
    mut info: NodeInfo,
    config: PeerConfig,
    learn: bool,
) -> Result<(Session, Option<String>), SessionError> {
    let error = match Session::connect(address, key, info.clone(), config.clone()).await {
        Ok(session) => return Ok((session, None)),
        Err(error) => error,
    };
    match learned_network(&error).filter(|_| learn) {
        Some(network) => {
            info.network = network.to_owned();
            Timer::after(REDIAL_DELAY).await;
            let session = Session::connect(address, key, info.clone(), config).await?;
            Ok((session, Some(info.network)))
        }
        None => Err(error),
    }
}

/// The network of the node at `address`: ours if it accepts `info`, the one its NodeInfo
/// names if it refuses us for being on another (said on stderr), else ours. Returns after
/// [`REDIAL_DELAY`], so the walk may dial the node again at once.
pub(crate) async fn learn_network(
    address: &NodeAddress,
    key: &NodeKey,
    info: &NodeInfo,
    config: &PeerConfig,
) -> String {
    let network = probe_network(address, key, info, config)
        .await
        .unwrap_or_else(|_| info.network.clone());
    Timer::after(REDIAL_DELAY).await;
    network
}

/// The network of the node at `address`, as [`learn_network`] finds it, but failing when
/// the node cannot be reached or refuses us for another reason. Returns at once.
///
/// # Errors
/// The failed connection's.
pub(crate) async fn probe_network(
    address: &NodeAddress,
    key: &NodeKey,
    info: &NodeInfo,
    config: &PeerConfig,
) -> Result<String, SessionError> {
    match Session::connect(address, key, info.clone(), config.clone()).await {
        Ok(session) => {
            let _ = session.close().await;
            Ok(info.network.clone())
        }
        Err(error) => match learned_network(&error) {
            Some(network) => {
                eprintln!(
                    "tmp2p: {} is on network {network:?}: using it",
                    address.node_id
                );
                Ok(network.to_owned())
            }
            None => Err(error),
        },
    }
}

/// Largest message a session takes from a peer on any channel.
const SESSION_RECV_MESSAGE_CAPACITY: usize = 4 * 1024 * 1024;

/// A session's connection settings: `channels` advertised, each taking messages up to
/// 4 MiB, and `handshake_timeout`.
pub(crate) fn session_config(channels: &[u8], handshake_timeout: Duration) -> PeerConfig {
    PeerConfig {
        channels: channels
            .iter()
            .map(|&id| tmp2p_core::mconn::ChannelDescriptor {
                id,
                priority: 1,
                send_queue_capacity: 64,
                recv_message_capacity: SESSION_RECV_MESSAGE_CAPACITY,
            })
            .collect(),
        handshake_timeout,
        ..PeerConfig::default()
    }
}

/// What the IO loop should stop for.
enum Wait {
    /// The handshake completing.
    Authenticated,
    /// A pong to our ping.
    Pong,
    /// A message in the inbox.
    Message,
    /// Any progress writing to the socket (frees send-queue room).
    Transmitted,
    /// The connection closing.
    Closed,
}

/// What woke the IO loop.
enum Wake {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Timer,
}

/// One live connection to one peer (see the module docs).
pub(crate) struct Session {
    conn: PeerConnection,
    reader: TcpStream,
    writer: TcpStream,
    read_buf: Vec<u8>,
    out: BytesMut,
    peer_info: Option<NodeInfo>,
    inbox: VecDeque<(u8, Bytes)>,
    inbox_bytes: usize,
    dropped: u64,
    last_rtt: Option<Duration>,
    /// Set once the `Closed` event was seen: `Some(None)` for our graceful close.
    closed: Option<Option<ConnectionError>>,
    peer_eof: bool,
}

impl Session {
    /// Resolves `address` (DNS names through async-net), connects to the first address
    /// that accepts, and completes the handshake expecting `address.node_id`.
    pub(crate) async fn connect(
        address: &NodeAddress,
        key: &NodeKey,
        node_info: NodeInfo,
        config: PeerConfig,
    ) -> Result<Session, SessionError> {
        let addrs = resolve(address).await?;
        let mut last = None;
        for addr in addrs {
            match connect_tcp(addr).await {
                Ok(stream) => {
                    let direction = Direction::Outbound {
                        expected: address.node_id,
                    };
                    return Session::handshake(stream, direction, key, node_info, config).await;
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| SessionError::Resolve {
            host: address.hostname.clone(),
            reason: "no address found".to_owned(),
        }))
    }

    /// Connects to `addr` and completes the handshake expecting the peer to be `expected`.
    #[cfg(test)]
    async fn connect_socket(
        addr: SocketAddr,
        expected: NodeId,
        key: &NodeKey,
        node_info: NodeInfo,
        config: PeerConfig,
    ) -> Result<Session, SessionError> {
        let stream = connect_tcp(addr).await?;
        let direction = Direction::Outbound { expected };
        Session::handshake(stream, direction, key, node_info, config).await
    }

    /// Completes the handshake on a connection the peer opened (any peer id is accepted).
    #[cfg(test)]
    async fn accept(
        stream: TcpStream,
        key: &NodeKey,
        node_info: NodeInfo,
        config: PeerConfig,
    ) -> Result<Session, SessionError> {
        Session::handshake(stream, Direction::Inbound, key, node_info, config).await
    }

    async fn handshake(
        stream: TcpStream,
        direction: Direction,
        key: &NodeKey,
        node_info: NodeInfo,
        config: PeerConfig,
    ) -> Result<Session, SessionError> {
        // Small messages (pings) must not wait for Nagle; failing to set it is harmless.
        let _ = stream.set_nodelay(true);
        let conn = PeerConnection::new(
            Instant::now(),
            key,
            node_info,
            direction,
            config,
            &mut rand_core::OsRng,
        );
        let mut session = Session {
            conn,
            reader: stream.clone(),
            writer: stream,
            read_buf: vec![0; READ_CHUNK],
            out: BytesMut::new(),
            peer_info: None,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            dropped: 0,
            last_rtt: None,
            closed: None,
            peer_eof: false,
        };
        session.run_until(Wait::Authenticated).await?;
        // Our node info may still be unwritten; the peer's handshake waits for it.
        session.flush().await?;
        Ok(session)
    }

    /// The peer's validated node info.
    pub(crate) fn peer_info(&self) -> Option<&NodeInfo> {
        self.peer_info.as_ref()
    }

    /// Messages dropped because the inbox was full (nobody called [`Session::recv`]).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sends an MConnection ping and waits for its pong; returns the round-trip time.
    pub(crate) async fn ping(&mut self) -> Result<Duration, SessionError> {
        self.last_rtt = None;
        self.conn.ping_now(Instant::now());
        self.run_until(Wait::Pong).await?;
        self.last_rtt.take().ok_or(SessionError::Closed)
    }

    /// Queues `message` on `channel`, waiting for room while the channel's queue is full.
    /// Returns once the connection accepted it (not once it was written).
    pub(crate) async fn send(&mut self, channel: u8, message: Bytes) -> Result<(), SessionError> {
        let mut message = message;
        loop {
            self.check_open()?;
            match self.conn.send(Instant::now(), channel, message) {
                Ok(()) => return Ok(()),
                Err(SendError::Full(back)) => {
                    message = back;
                    self.run_until(Wait::Transmitted).await?;
                }
                Err(SendError::Closed) => {
                    self.run_until(Wait::Closed).await?;
                    return Err(SessionError::Closed);
                }
                Err(e) => return Err(SessionError::Send(e)),
            }
        }
    }

    /// Waits for everything queued so far to be written to the socket.
    pub(crate) async fn flush(&mut self) -> Result<(), SessionError> {
        loop {
            self.check_open()?;
            self.gather(Instant::now());
            if self.out.is_empty() {
                return Ok(());
            }
            self.run_until(Wait::Transmitted).await?;
        }
    }

    /// The next message from the peer: `(channel, bytes)`.
    pub(crate) async fn recv(&mut self) -> Result<(u8, Bytes), SessionError> {
        loop {
            if let Some(received) = self.try_recv() {
                return Ok(received);
            }
            self.run_until(Wait::Message).await?;
        }
    }

    /// A message already received, without waiting or doing IO.
    pub(crate) fn try_recv(&mut self) -> Option<(u8, Bytes)> {
        let (channel, message) = self.inbox.pop_front()?;
        self.inbox_bytes = self.inbox_bytes.saturating_sub(message.len());
        Some((channel, message))
    }

    /// Closes gracefully: queued messages are written first, then the socket is shut.
    pub(crate) async fn close(mut self) -> Result<(), SessionError> {
        self.conn.close();
        let result = self.run_until(Wait::Closed).await;
        let _ = self.writer.close().await;
        match result {
            Ok(()) | Err(SessionError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Fails if the connection already ended.
    fn check_open(&self) -> Result<(), SessionError> {
        match &self.closed {
            None => Ok(()),
            Some(None) => Err(SessionError::Closed),
            Some(Some(reason)) => Err(SessionError::Connection(reason.clone())),
        }
    }

    /// Moves pending bytes out of the connection into `self.out`, up to a batch.
    fn gather(&mut self, now: Instant) {
        while self.out.len() < WRITE_BATCH && self.conn.poll_transmit(now, &mut self.out) {}
    }

    /// Takes the connection's events; returns whether `wait` is satisfied.
    fn take_events(&mut self, wait: &Wait) -> bool {
        let mut done = false;
        while let Some(event) = self.conn.poll_event() {
            match event {
                PeerEvent::Authenticated { node_info, .. } => {
                    tracing::debug!(peer = %node_info.node_id, "authenticated");
                    self.peer_info = Some(*node_info);
                    done |= matches!(wait, Wait::Authenticated);
                }
                PeerEvent::Message { channel, message } => {
                    self.push_inbox(channel, message);
                    done |= matches!(wait, Wait::Message);
                }
                PeerEvent::Pong { rtt } => {
                    self.last_rtt = Some(rtt);
                    done |= matches!(wait, Wait::Pong);
                }
                PeerEvent::Closed { reason } => {
                    tracing::debug!(?reason, "connection closed");
                    self.closed = Some(reason);
                }
            }
        }
        done
    }

    fn push_inbox(&mut self, channel: u8, message: Bytes) {
        self.inbox_bytes = self.inbox_bytes.saturating_add(message.len());
        self.inbox.push_back((channel, message));
        while self.inbox.len() > INBOX_MESSAGES || self.inbox_bytes > INBOX_BYTES {
            let Some((_, old)) = self.inbox.pop_front() else {
                break;
            };
            self.inbox_bytes = self.inbox_bytes.saturating_sub(old.len());
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// The IO loop: reads, writes and timers until `wait` is satisfied or the connection
    /// ends. A connection that ended is an error unless we waited for the close.
    async fn run_until(&mut self, wait: Wait) -> Result<(), SessionError> {
        loop {
            let now = Instant::now();
            self.gather(now);
            if self.take_events(&wait) {
                return Ok(());
            }
            if let Some(reason) = self.closed.clone() {
                // Flush what a graceful close (or a failure notice) still has to say.
                self.gather(Instant::now());
                if !self.out.is_empty() {
                    let _ = self.writer.write_all(&self.out).await;
                    self.out.clear();
                }
                return match (reason, &wait) {
                    (None, Wait::Closed) => Ok(()),
                    (None, _) => Err(SessionError::Closed),
                    (Some(e), _) => Err(SessionError::Connection(e)),
                };
            }
            let deadline = self.conn.poll_timeout();
            let wake = {
                let Session {
                    reader,
                    writer,
                    read_buf,
                    out,
                    peer_eof,
                    ..
                } = self;
                let write = async {
                    if out.is_empty() {
                        future::pending::<()>().await;
                    }
                    Wake::Wrote(writer.write(out).await)
                };
                let read = async {
                    if *peer_eof {
                        future::pending::<()>().await;
                    }
                    Wake::Read(reader.read(read_buf).await)
                };
                let timer = async {
                    match deadline {
                        Some(at) => {
                            Timer::at(at).await;
                        }
                        None => future::pending::<()>().await,
                    }
                    Wake::Timer
                };
                future::or(write, future::or(read, timer)).await
            };
            match wake {
                Wake::Wrote(Ok(n)) => {
                    self.out.advance(n.min(self.out.len()));
                    if matches!(wait, Wait::Transmitted) {
                        return Ok(());
                    }
                }
                Wake::Wrote(Err(e)) | Wake::Read(Err(e)) => {
                    if self.closed.is_none() {
                        return Err(SessionError::Io(e));
                    }
                }
                Wake::Read(Ok(0)) => {
                    self.peer_eof = true;
                    self.conn.handle_eof();
                }
                Wake::Read(Ok(n)) => {
                    let input = self.read_buf.get(..n).unwrap_or_default();
                    // An error also arrives as the Closed event, handled above.
                    let _ = self.conn.handle_input(Instant::now(), input);
                }
                Wake::Timer => self.conn.handle_timeout(Instant::now()),
            }
        }
    }
}

/// The socket addresses of `address`, DNS names looked up with async-net.
async fn resolve(address: &NodeAddress) -> Result<Vec<SocketAddr>, SessionError> {
    let undialable = |reason: String| SessionError::Undialable {
        address: address.to_string(),
        reason,
    };
    if address.port == 0 {
        return Err(undialable("no port given".to_owned()));
    }
    match address
        .resolution()
        .map_err(|e| undialable(e.to_string()))?
    {
        Resolution::Endpoints(endpoints) => endpoints
            .iter()
            .map(|e| e.mconn_dial_addr().map_err(|e| undialable(e.to_string())))
            .collect(),
        Resolution::Lookup { hostname, port } => {
            let found = async_net::resolve((hostname.as_str(), port))
                .await
                .map_err(|e| SessionError::Resolve {
                    host: hostname.clone(),
                    reason: e.to_string(),
                })?;
            if found.is_empty() {
                return Err(SessionError::Resolve {
                    host: hostname,
                    reason: "no address found".to_owned(),
                });
            }
            Ok(found)
        }
    }
}

async fn connect_tcp(addr: SocketAddr) -> Result<TcpStream, SessionError> {
    let connect = async {
        TcpStream::connect(addr)
            .await
            .map_err(|source| SessionError::Connect { addr, source })
    };
    let timeout = async {
        Timer::after(CONNECT_TIMEOUT).await;
        Err(SessionError::ConnectTimeout {
            addr,
            limit: CONNECT_TIMEOUT,
        })
    };
    future::or(connect, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmp2p_core::mconn::ChannelDescriptor;
    use tmp2p_core::node_info::{ProtocolVersions, BLOCK_PROTOCOL_VERSION, P2P_PROTOCOL_VERSION};

    const CH: u8 = 0x42;

    fn info(key: &NodeKey, network: &str) -> NodeInfo {
        NodeInfo {
            protocol_version: ProtocolVersions {
                p2p: P2P_PROTOCOL_VERSION,
                block: BLOCK_PROTOCOL_VERSION,
                app: 0,
            },
            node_id: key.node_id(),
            listen_addr: "tcp://127.0.0.1:26656".to_owned(),
            network: network.to_owned(),
            version: "test".to_owned(),
            channels: vec![CH],
            moniker: "session-test".to_owned(),
            tx_index: "off".to_owned(),
            rpc_address: String::new(),
        }
    }

    fn config() -> PeerConfig {
        PeerConfig {
            channels: vec![ChannelDescriptor {
                id: CH,
                priority: 1,
                send_queue_capacity: 2,
                recv_message_capacity: 1 << 20,
            }],
            ..PeerConfig::default()
        }
    }

    /// Dials a listener on loopback with `dial_network`, accepting with `accept_network`.
    async fn pair(
        dial_network: &str,
        accept_network: &str,
        expected: Option<NodeId>,
    ) -> (Result<Session, SessionError>, Result<Session, SessionError>) {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dial_key, accept_key) = (
            NodeKey::generate(&mut rand_core::OsRng),
            NodeKey::generate(&mut rand_core::OsRng),
        );
        let expected = expected.unwrap_or(accept_key.node_id());
        let dial = Session::connect_socket(
            addr,
            expected,
            &dial_key,
            info(&dial_key, dial_network),
            config(),
        );
        let accept = async {
            let (stream, _) = listener.accept().await.unwrap();
            Session::accept(
                stream,
                &accept_key,
                info(&accept_key, accept_network),
                config(),
            )
            .await
        };
        future::zip(dial, accept).await
    }

    /// Runs `work` on this thread, failing the test after 10 s.
    fn run<T>(work: impl std::future::Future<Output = T>) -> T {
        async_io::block_on(future::or(work, async {
            Timer::after(Duration::from_secs(10)).await;
            panic!("test timed out");
        }))
    }

    #[test]
    fn ping_messages_both_ways_and_graceful_close() {
        run(async {
            let (a, b) = pair("net", "net", None).await;
            let (mut a, mut b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.peer_info().unwrap().network, "net");
            // b echoes until the connection ends, answering pings meanwhile.
            let echo = async move {
                let mut echoed = 0;
                loop {
                    match b.recv().await {
                        Ok((channel, message)) => {
                            b.send(channel, message).await.unwrap();
                            echoed += 1;
                        }
                        Err(end) => return (echoed, end),
                    }
                }
            };
            let client = async move {
                let rtt = a.ping().await.unwrap();
                // More than the send queue holds (2): exercises waiting for room.
                for i in 0..20u8 {
                    a.send(CH, Bytes::from(vec![i; 3000])).await.unwrap();
                }
                for i in 0..20u8 {
                    assert_eq!(a.recv().await.unwrap(), (CH, Bytes::from(vec![i; 3000])));
                }
                assert!(matches!(
                    a.send(0x7f, Bytes::from_static(b"x")).await,
                    Err(SessionError::Send(SendError::UnknownChannel(0x7f)))
                ));
                a.close().await.unwrap();
                rtt
            };
            let ((echoed, end), rtt) = future::zip(echo, client).await;
            assert!(rtt < Duration::from_secs(5));
            assert_eq!(echoed, 20);
            assert!(
                matches!(end, SessionError::Connection(ConnectionError::PeerClosed)),
                "{end:?}"
            );
        });
    }

    #[test]
    fn another_network_fails_with_incompatible() {
        run(async {
            let (a, _b) = pair("net-a", "net-b", None).await;
            match a {
                Err(SessionError::Connection(e)) => {
                    assert_eq!(e.kind(), tmp2p_core::connection::FailureKind::Incompatible)
                }
                other => panic!("{:?}", other.err()),
            }
        });
    }

    #[test]
    fn dialing_the_wrong_id_fails_authentication() {
        run(async {
            let wrong = NodeKey::generate(&mut rand_core::OsRng).node_id();
            let (a, _b) = pair("net", "net", Some(wrong)).await;
            assert!(
                matches!(
                    a,
                    Err(SessionError::Connection(
                        ConnectionError::DialedIdMismatch { .. }
                    ))
                ),
                "{:?}",
                a.err()
            );
        });
    }

    #[test]
    fn a_bounded_inbox_drops_the_oldest() {
        run(async {
            let (a, b) = pair("net", "net", None).await;
            let (mut a, mut b) = (a.unwrap(), b.unwrap());
            for i in 0..INBOX_MESSAGES + 10 {
                b.send(CH, Bytes::from((i as u32).to_be_bytes().to_vec()))
                    .await
                    .unwrap();
            }
            b.flush().await.unwrap();
            // b's pong follows every message on the stream: once a has it, a has read them
            // all without anyone calling recv. b only runs to answer the ping.
            let rtt = future::or(async { a.ping().await.unwrap() }, async {
                let _ = b.recv().await;
                future::pending().await
            })
            .await;
            assert!(rtt < Duration::from_secs(5));
            assert_eq!(a.dropped(), 10);
            let (_, first) = a.try_recv().unwrap();
            assert_eq!(first.as_ref(), &10u32.to_be_bytes()[..]);
        });
    }
}
