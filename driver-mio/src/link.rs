//! One TCP connection on the loop thread: the mio socket, its connection machine (the
//! core's `Link`: `PeerConnection`, the node's sends and close, the close linger), the
//! sealed bytes not yet written (partial writes are kept), readiness flags (mio is
//! edge-triggered) and the interest derived from all of that.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use tmp2p_core::node::{Link as ConnLink, LinkCommand, LinkReport};
use tmp2p_core::router::ConnectionId;

/// An emptied output buffer larger than this is released, so an idle connection that once
/// carried a burst goes back to a small footprint.
const IDLE_OUTPUT_LIMIT: usize = 16 * 1024;

/// Whether a read that returns fewer bytes than asked means the socket is drained. True
/// for epoll and kqueue, whose edge-triggered readiness fires again on every arrival (tokio
/// relies on the same); mio's Windows backend gives no such promise.
const SHORT_READ_DRAINS: bool = !cfg!(windows);

/// The socket is unusable: the machine closes (its `Closed` event follows) and nothing more
/// is written.
fn fail_socket(now: Instant, dead: &mut bool, out: &mut BytesMut, machine: &mut ConnLink) {
    *dead = true;
    out.clear();
    machine.handle_eof(now);
}

/// Where the connection is in its life.
pub(crate) enum Stage {
    /// Non-blocking connect in flight to `socket`.
    Connecting {
        /// The address dialed.
        socket: SocketAddr,
    },
    /// TCP is up; the connection machine runs.
    Open(Box<ConnLink>),
}

/// What happened when the socket was read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Drained to `WouldBlock`, EOF or an error.
    Drained,
    /// The read budget ran out with data possibly left.
    BudgetSpent,
}

/// One connection's IO state.
pub(crate) struct Link {
    pub(crate) conn: ConnectionId,
    pub(crate) stream: TcpStream,
    pub(crate) token: Token,
    pub(crate) stage: Stage,
    /// Sealed bytes taken from the machine, not yet accepted by the socket.
    out: BytesMut,
    /// The socket may have bytes to read (cleared on `WouldBlock`).
    pub(crate) readable: bool,
    /// A readiness event said the peer closed its side. Edge-triggered epoll reports that
    /// once, often together with the last bytes: from then on a short read does not count
    /// as drained, so the read that returns EOF still happens.
    pub(crate) read_closed: bool,
    /// The socket may accept bytes (cleared on `WouldBlock`).
    pub(crate) writable: bool,
    read_eof: bool,
    /// The socket failed; the link goes as soon as the machine's `Closed` is reported.
    pub(crate) dead: bool,
    registered: Option<Interest>,
    /// The deadline this link holds in the driver's timer set.
    pub(crate) timer: Option<Instant>,
    /// The write side was shut down once everything was written after the close.
    write_shut: bool,
    /// In the driver's ready queue.
    pub(crate) queued: bool,
    /// Holds messages the application's full queue could not take yet (listed in the
    /// driver's `waiting`).
    pub(crate) waiting: bool,
    /// Entered while this connection reads, writes and reports: its logs carry the
    /// connection id, remote address, direction and (once authenticated) the peer id.
    pub(crate) span: tracing::Span,
}

impl Link {
    /// A link for a socket already registered with `interest`.
    pub(crate) fn new(
        conn: ConnectionId,
        stream: TcpStream,
        token: Token,
        stage: Stage,
        interest: Interest,
        span: tracing::Span,
    ) -> Self {
        let open = matches!(stage, Stage::Open(_));
        Link {
            conn,
            stream,
            token,
            stage,
            out: BytesMut::new(),
            readable: open,
            read_closed: false,
            writable: open,
            read_eof: false,
            dead: false,
            registered: Some(interest),
            timer: None,
            write_shut: false,
            queued: false,
            waiting: false,
            span,
        }
    }

    /// Whether reading is what the machine wants now: open, and not holding back (the
    /// core's inbound rule: `Link::wants_input`).
    pub(crate) fn wants_read(&self) -> bool {
        match &self.stage {
            Stage::Open(machine) => !self.read_eof && !self.dead && machine.wants_input(),
            Stage::Connecting { .. } => false,
        }
    }

    /// The connection machine, once TCP is up.
    pub(crate) fn machine(&mut self) -> Option<&mut ConnLink> {
        match &mut self.stage {
            Stage::Open(machine) => Some(machine),
            Stage::Connecting { .. } => None,
        }
    }

    /// Reads up to `budget` bytes through `scratch` into the machine.
    pub(crate) fn read(&mut self, now: Instant, scratch: &mut [u8], budget: usize) -> ReadOutcome {
        let Stage::Open(machine) = &mut self.stage else {
            return ReadOutcome::Drained;
        };
        let mut taken = 0usize;
        while self.readable && !self.read_eof && machine.wants_input() {
            if taken >= budget {
                return ReadOutcome::BudgetSpent;
            }
            let want = scratch.len().min(budget - taken).max(1);
            let Some(buf) = scratch.get_mut(..want) else {
                return ReadOutcome::Drained;
            };
            match self.stream.read(buf) {
                Ok(0) => {
                    self.read_eof = true;
                    machine.handle_eof(now);
                }
                Ok(n) => {
                    taken = taken.saturating_add(n);
                    if let Some(bytes) = buf.get(..n) {
                        if let Err(error) = machine.handle_input(now, bytes) {
                            tracing::debug!(conn = %self.conn, %error, "connection failed on input");
                        }
                    }
                    if SHORT_READ_DRAINS && n < want && !self.read_closed {
                        // The socket held less than we asked for: it is empty now, and
                        // bytes arriving later raise a new edge. Saves the read that
                        // would only return `WouldBlock`.
                        self.readable = false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::debug!(conn = %self.conn, %error, "socket read failed");
                    fail_socket(now, &mut self.dead, &mut self.out, machine);
                }
            }
        }
        ReadOutcome::Drained
    }

    /// Writes pending bytes, refilling from the machine, up to `budget` bytes. Returns
    /// whether the budget ran out with more to write.
    pub(crate) fn write(&mut self, now: Instant, budget: usize) -> bool {
        let Stage::Open(machine) = &mut self.stage else {
            return false;
        };
        let mut written = 0usize;
        let more = loop {
            if self.dead || !self.writable {
                break false;
            }
            if self.out.is_empty() && !machine.poll_transmit(now, &mut self.out) {
                break false;
            }
            if self.out.is_empty() {
                continue;
            }
            if written >= budget {
                break true;
            }
            match self.stream.write(&self.out) {
                Ok(0) => {
                    tracing::debug!(conn = %self.conn, "socket accepted no bytes");
                    fail_socket(now, &mut self.dead, &mut self.out, machine);
                }
                Ok(n) => {
                    self.out.advance(n.min(self.out.len()));
                    written = written.saturating_add(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::debug!(conn = %self.conn, %error, "socket write failed");
                    fail_socket(now, &mut self.dead, &mut self.out, machine);
                }
            }
        };
        if self.out.is_empty() && self.out.capacity() > IDLE_OUTPUT_LIMIT {
            self.out = BytesMut::new();
        }
        if !more && self.out.is_empty() && machine.is_closed() && !self.dead && !self.write_shut {
            // Everything is written after the close: half-close, then read on to the
            // peer's EOF (core's `Link` call order).
            let _ = self.stream.shutdown(Shutdown::Write);
            self.write_shut = true;
        }
        more
    }

    /// Bytes the socket may be read for now under the receive rate limit (0 while
    /// connecting).
    pub(crate) fn recv_allowance(&mut self, now: Instant) -> usize {
        match &mut self.stage {
            Stage::Open(machine) => machine.recv_allowance(now),
            Stage::Connecting { .. } => 0,
        }
    }

    /// The machine's next report for the node.
    pub(crate) fn poll_report(&mut self) -> Option<LinkReport> {
        match &mut self.stage {
            Stage::Open(machine) => machine.poll_report(),
            Stage::Connecting { .. } => None,
        }
    }

    /// A command of the node. A link still connecting has no machine to take it: the node
    /// only sends to routed peers, and closes a dial by removing it.
    pub(crate) fn handle_command(&mut self, now: Instant, command: LinkCommand) {
        match &mut self.stage {
            Stage::Open(machine) => machine.handle_command(now, command),
            Stage::Connecting { .. } => {
                tracing::debug!(conn = %self.conn, "command for a connecting link dropped");
            }
        }
    }

    /// Timers of the machine; when it gave up (a close linger ran out), the socket is
    /// treated as failed: nothing more is written.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let Stage::Open(machine) = &mut self.stage else {
            return;
        };
        machine.handle_timeout(now);
        if machine.gave_up() && !self.dead {
            fail_socket(now, &mut self.dead, &mut self.out, machine);
        }
    }

    /// Whether the link is over: the machine is finished (its `Closed` reported, the
    /// peer's EOF read or the close linger passed) and everything is written, or the
    /// socket failed.
    pub(crate) fn finished(&self) -> bool {
        match &self.stage {
            Stage::Open(machine) => machine.is_finished() && (self.dead || self.out.is_empty()),
            Stage::Connecting { .. } => false,
        }
    }

    /// The machine's next deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Open(machine) => machine.poll_timeout(),
            Stage::Connecting { .. } => None,
        }
    }

    /// Derives socket interest from the machine state: readable (and writable) while the
    /// machine wants input; otherwise writable while bytes wait for a `WouldBlock`ed
    /// socket. Registers, reregisters or deregisters to match.
    pub(crate) fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let wanted = match &self.stage {
            Stage::Connecting { .. } => Some(Interest::READABLE | Interest::WRITABLE),
            Stage::Open(_) => {
                let read = self.wants_read();
                let write = !self.writable && !self.dead;
                match (read, write) {
                    // A reading link keeps write interest too: edge-triggered writability
                    // only fires after a write found the socket full, so it costs no
                    // wake-ups, and the interest need not change (one `epoll_ctl` per
                    // change) each time a write blocks or the socket drains.
                    (true, _) => Some(Interest::READABLE | Interest::WRITABLE),
                    (false, true) => Some(Interest::WRITABLE),
                    (false, false) => None,
                }
            }
        };
        if wanted == self.registered {
            return Ok(());
        }
        match (self.registered, wanted) {
            (None, Some(interest)) => registry.register(&mut self.stream, self.token, interest)?,
            (Some(_), Some(interest)) => {
                registry.reregister(&mut self.stream, self.token, interest)?
            }
            (Some(_), None) => registry.deregister(&mut self.stream)?,
            (None, None) => {}
        }
        self.registered = wanted;
        Ok(())
    }

    /// Removes the socket from the registry (before dropping it).
    pub(crate) fn deregister(&mut self, registry: &Registry) {
        if self.registered.take().is_some() {
            if let Err(error) = registry.deregister(&mut self.stream) {
                tracing::debug!(conn = %self.conn, %error, "deregister failed");
            }
        }
    }
}
