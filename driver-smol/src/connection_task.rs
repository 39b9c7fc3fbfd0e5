//! The task that owns one connection's machine (`tmp2p_core::node::Link`: the
//! `PeerConnection`, what the node handed it, the close linger): it feeds socket bytes,
//! timers and the node's commands into it and carries its output to the socket, the
//! application's inbound messages to their channels (once the node routed the peer; a
//! full channel pauses reading: see `inbound`) and its other reports to the router task.
//! Socket reads and writes run inside this task (one poll races them against commands,
//! room in a full channel and the timer), so no message crosses a channel between the
//! socket and the machine, and reading never waits on writing.
//! Once the connection is closed it goes on as core's `Link` documents: it writes what is
//! left, half-closes the socket and reads on until the peer closes too (so unread bytes
//! never turn the close into a reset), within the link's close linger.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use async_net::TcpStream;
use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{future, AsyncRead, AsyncWrite, Stream};
use smol::Executor;
use tmp2p_core::connection::{PeerConnection, PeerEvent};
use tmp2p_core::node::{Link, LinkCommand, LinkReport, LinkSettings};
use tmp2p_core::router::{ConnectionId, ConnectionParams};
use tmp2p_core::NodeKey;

use crate::inbound::{AppChannels, Inbound};
use crate::router_task::RouterInput;

/// Bytes gathered from `poll_transmit` into one socket write.
const WRITE_BATCH: usize = 512 * 1024;
/// Size of one socket read.
const READ_SIZE: usize = 64 * 1024;
/// Commands taken from the router in one go before the socket is served again.
const COMMAND_BATCH: usize = 256;

/// Everything a connection task needs.
pub(crate) struct ConnTask {
    pub(crate) params: ConnectionParams,
    pub(crate) key: NodeKey,
    pub(crate) stream: TcpStream,
    /// A shared listener's connection that read the dialer's node info: the link answers
    /// it instead of starting a handshake.
    pub(crate) answering: Option<Box<PeerConnection>>,
    pub(crate) inputs: Receiver<LinkCommand>,
    pub(crate) inputs_tx: Sender<LinkCommand>,
    pub(crate) router: Sender<RouterInput>,
    pub(crate) executor: Weak<Executor<'static>>,
    pub(crate) app_channels: AppChannels,
    /// The node machine's settings for links.
    pub(crate) settings: LinkSettings,
}

/// What woke the connection task.
enum Wake {
    /// The pending socket write finished.
    Written,
    WriteFailed(io::Error),
    /// This many bytes were read into the read buffer.
    Read(usize),
    Eof,
    ReadFailed(io::Error),
    Input(LinkCommand),
    /// Every sender of the command channel is gone.
    InputsClosed,
    /// A full application channel took the message waiting for it.
    Room(u8),
    Timer,
}

/// The socket side of the task: the stream, the write in progress (kept here, so a poll
/// that is not completed loses nothing) and the read buffer.
struct SocketIo {
    /// async-io's handle (what `async_net::TcpStream` wraps).
    stream: Arc<Async<std::net::TcpStream>>,
    /// The rest of the current write; empty when no write is in progress.
    writing: Bytes,
    read_buf: Vec<u8>,
    /// Bytes the next read may take (the receive rate limit's allowance).
    read_limit: usize,
    /// Set after EOF or a read error: the socket is not read again.
    read_done: bool,
}

impl SocketIo {
    fn new(stream: TcpStream, read_size: usize) -> SocketIo {
        SocketIo {
            stream: stream.into(),
            writing: Bytes::new(),
            read_buf: vec![0u8; read_size],
            read_limit: usize::MAX,
            read_done: false,
        }
    }

    /// Reads into the read buffer: tries the read first and waits for readiness only when
    /// it would block. Measured against waiting for readiness first after a short read
    /// (which saves the `EAGAIN` reads): with this task woken as often for commands as for
    /// bytes, the opportunistic read often finds bytes that arrived meanwhile and saves a
    /// reactor wake-up, and the 1000 B one-way bench ran 12 % faster this way (BENCHMARKS.md).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let len = self.read_buf.len().min(self.read_limit);
        let buf = self.read_buf.get_mut(..len).unwrap_or_default();
        Pin::new(&mut &*self.stream).poll_read(cx, buf)
    }

    /// Pushes the write in progress as far as the socket takes it.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<()>>> {
        while !self.writing.is_empty() {
            match Pin::new(&mut &*self.stream).poll_write(cx, &self.writing) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Some(Err(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => self.writing.advance(n.min(self.writing.len())),
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error))),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(None)
    }

    /// Waits for the first of: the write finishing, a read, a command, the timer.
    /// The socket is read only while the link wants input (core's inbound rule).
    fn poll_wake(
        &mut self,
        cx: &mut Context<'_>,
        mut inputs: Option<Pin<&mut Receiver<LinkCommand>>>,
        inputs_first: bool,
        (inbound, wants_input): (&mut Inbound, bool),
        timer: &mut Timer,
    ) -> Poll<Wake> {
        if !self.writing.is_empty() {
            match self.poll_write(cx) {
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Wake::WriteFailed(error)),
                Poll::Ready(_) => return Poll::Ready(Wake::Written),
                Poll::Pending => {}
            }
        }
        if inputs_first {
            if let Some(wake) = poll_inputs(cx, inputs.take()) {
                return Poll::Ready(wake);
            }
        }
        if let Poll::Ready(channel) = inbound.poll_room(cx) {
            return Poll::Ready(Wake::Room(channel));
        }
        if wants_input && !self.read_done && self.read_limit > 0 {
            match self.poll_read(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Wake::Eof),
                Poll::Ready(Ok(n)) => return Poll::Ready(Wake::Read(n)),
                Poll::Ready(Err(error)) => return Poll::Ready(Wake::ReadFailed(error)),
                Poll::Pending => {}
            }
        }
        if let Some(wake) = poll_inputs(cx, inputs) {
            return Poll::Ready(wake);
        }
        if Pin::new(timer).poll(cx).is_ready() {
            return Poll::Ready(Wake::Timer);
        }
        Poll::Pending
    }
}

/// Polls the command channel, when there is one to poll.
fn poll_inputs(
    cx: &mut Context<'_>,
    inputs: Option<Pin<&mut Receiver<LinkCommand>>>,
) -> Option<Wake> {
    match inputs?.poll_next(cx) {
        Poll::Ready(Some(input)) => Some(Wake::Input(input)),
        Poll::Ready(None) => Some(Wake::InputsClosed),
        Poll::Pending => None,
    }
}

/// Hands the link's reports of one turn to the router task in one message (one channel
/// operation and at most one wake-up for a whole batch); `false` when the router task is
/// gone.
async fn report(
    router: &Sender<RouterInput>,
    conn: ConnectionId,
    reports: Vec<LinkReport>,
) -> bool {
    if reports.is_empty() {
        return true;
    }
    match router.try_send(RouterInput::Connection(conn, reports)) {
        Ok(()) => true,
        Err(async_channel::TrySendError::Full(input)) => router.send(input).await.is_ok(),
        Err(async_channel::TrySendError::Closed(_)) => false,
    }
}

impl ConnTask {
    /// Runs the connection until it is closed and the socket is done.
    pub(crate) async fn run(self) {
        let ConnTask {
            params,
            key,
            stream,
            answering,
            inputs,
            inputs_tx,
            router,
            executor,
            app_channels,
            settings,
        } = self;
        // No subtask needs a sender of our own command channel any more.
        drop(inputs_tx);
        // The receiver's listener must not move while registered.
        let mut inputs = std::pin::pin!(inputs);
        drop(executor);
        let conn = params.conn;
        // Packets are batched by the machine, never by Nagle: without this, a small write
        // waiting for an ACK stalled about 1 in 200 handshakes by 40 ms.
        let _ = stream.set_nodelay(true);
        let mut link = match answering {
            Some(connection) => Link::answer(Instant::now(), *connection, params, settings),
            None => Link::new(
                Instant::now(),
                &key,
                params,
                settings,
                &mut rand_core::OsRng,
            ),
        };
        drop(key);
        let mut io = SocketIo::new(stream, READ_SIZE);
        let mut inbound = Inbound::new(app_channels);
        let mut timer = Timer::never();
        let mut armed: Option<Instant> = None;
        let mut out = BytesMut::new();
        // Alternates between commands and reads first, so neither starves the other.
        let mut inputs_first = false;
        let mut write_shut = false;

        loop {
            let now = Instant::now();
            // The timer is polled only when nothing else is ready: a peer that always has
            // bytes waiting must not keep the link's timers (pings, lingers) from firing.
            if link.poll_timeout().is_some_and(|at| at <= now) {
                link.handle_timeout(now);
                if link.gave_up() {
                    io.writing = Bytes::new();
                }
            }
            if io.writing.is_empty() {
                // Seal up to a whole write batch: as the machine's queues drain, the link
                // hands it what waited, so one write carries all of it.
                while out.len() < WRITE_BATCH && link.poll_transmit(now, &mut out) {}
                if !out.is_empty() {
                    io.writing = out.split().freeze();
                }
            }
            // The taken messages go to the router first: it refills while this task writes.
            let closed_before = link.closed_reported();
            let mut reports = Vec::new();
            take_reports(&mut link, &mut reports);
            if let Some(error) = inbound.deliver(&mut link) {
                if router.send(RouterInput::Undecodable(error)).await.is_err() {
                    break;
                }
            }
            // The link holds its `Closed` until the application took what came before it.
            take_reports(&mut link, &mut reports);
            // Every report of this turn in one message; none after `Closed`.
            if !closed_before && !report(&router, conn, reports).await {
                // The router task is gone: the node is shutting down.
                break;
            }
            if link.is_closed() && io.writing.is_empty() && !write_shut {
                // Everything is written: half-close, then read on to the peer's EOF.
                let _ = io.stream.get_ref().shutdown(Shutdown::Write);
                write_shut = true;
            }
            if link.is_finished() && (io.writing.is_empty() || link.gave_up()) {
                break;
            }
            // Re-arming a timer wakes the reactor thread, and the deadline moves with
            // almost every message: re-arm only for an earlier one. A timer that fires
            // before the machine's deadline costs one idle `handle_timeout`.
            if let Some(at) = link.poll_timeout() {
                if armed.is_none_or(|armed_at| at < armed_at) {
                    timer.set_at(at);
                    armed = Some(at);
                }
            }
            inputs_first = !inputs_first;
            // Under a receive rate limit at 0 the socket waits for the timer (the
            // allowance refills at the link's deadline).
            io.read_limit = link.recv_allowance(Instant::now());
            let wants_input = link.wants_input();
            let wake = future::poll_fn(|cx| {
                // The router drops our command queue once it has our `Closed`.
                let inputs = (!link.closed_reported()).then_some(inputs.as_mut());
                io.poll_wake(
                    cx,
                    inputs,
                    inputs_first,
                    (&mut inbound, wants_input),
                    &mut timer,
                )
            })
            .await;
            let now = Instant::now();
            match wake {
                Wake::Written => {}
                Wake::WriteFailed(error) => {
                    tracing::debug!(%error, "socket write failed");
                    io.writing = Bytes::new();
                    link.handle_eof(now);
                }
                Wake::Read(n) => {
                    if let Err(error) =
                        link.handle_input(now, io.read_buf.get(..n).unwrap_or_default())
                    {
                        tracing::debug!(%error, "connection failed on input");
                    }
                }
                Wake::Eof => {
                    io.read_done = true;
                    link.handle_eof(now);
                }
                Wake::ReadFailed(error) => {
                    tracing::debug!(%error, "socket read failed");
                    io.read_done = true;
                    link.handle_eof(now);
                }
                Wake::Input(input) => {
                    // Take every command already queued: one wake-up, many messages.
                    let mut next = Some(input);
                    let mut commands = 0;
                    while let Some(command) = next {
                        link.handle_command(now, command);
                        commands += 1;
                        next = if commands < COMMAND_BATCH {
                            inputs.try_recv().ok()
                        } else {
                            None
                        };
                    }
                }
                Wake::InputsClosed => {
                    // Only the router task holds senders of our commands, and it drops
                    // ours after our `Closed`: the router task itself is gone (the handle
                    // was dropped without `stop`, or `stop` gave up waiting). Nothing would
                    // route this connection any more: it ends, and the socket closes.
                    tracing::debug!("router task gone: connection ends");
                    break;
                }
                Wake::Room(channel) => link.has_room(channel),
                Wake::Timer => {
                    // A fired timer stays fired: re-arm on the next deadline.
                    armed = None;
                    timer = Timer::never();
                    link.handle_timeout(now);
                    if link.gave_up() {
                        // A close linger passed (the peer stopped reading, or did not
                        // close): the write in progress is dropped with the rest.
                        io.writing = Bytes::new();
                    }
                }
            }
        }

        let dropped = inbound.discard();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "application did not take the last inbound messages"
            );
            link.count_undelivered(dropped);
        }
    }
}

/// Passes the link's reports to `reports`, logging its events.
fn take_reports(link: &mut Link, reports: &mut Vec<LinkReport>) {
    while let Some(report) = link.poll_report() {
        if let LinkReport::Event(event) = &report {
            match event {
                PeerEvent::Authenticated { node_info, .. } => {
                    let peer = tracing::field::display(node_info.node_id);
                    tracing::Span::current().record("peer", peer);
                    tracing::debug!("authenticated");
                }
                PeerEvent::Closed { reason } => tracing::debug!(?reason, "connection closed"),
                _ => {}
            }
        }
        reports.push(report);
    }
}
