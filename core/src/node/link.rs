//! [`Link`]: the connection side of the node machine. It owns one connection's
//! [`PeerConnection`], the [`Outbox`] of what the node machine handed it, and the close
//! deadline, so a driver can run it on any task or thread (its crypto in parallel with the
//! other connections') and talk to the [`Node`](super::Node) only through
//! [`LinkCommand`]s in and [`LinkReport`]s out.
//!
//! Call order, for a driver (per connection, as `PeerConnection` documents its own):
//! 1. [`Link::new`] with the [`ConnectionParams`] the node machine returned from
//!    `accept` or `dial_succeeded`.
//! 2. Loop: feed socket bytes to [`Link::handle_input`] (at most [`Link::recv_allowance`]
//!    at a time: the receive rate limit; EOF: [`Link::handle_eof`]) and
//!    the node machine's commands to [`Link::handle_command`]; write what
//!    [`Link::poll_transmit`] gives until it returns `false`; call [`Link::handle_timeout`]
//!    at [`Link::poll_timeout`]; after any of these, pass every [`Link::poll_report`] to
//!    `Node::handle_link_report`.
//! 3. After the `Closed` event is reported, write what is left unless
//!    [`Link::gave_up`], then drop the link.
//!
//! The close linger: a `Close` takes effect once the sends handed over before it are in
//! the connection. If that has not happened within the close linger (the peer stopped
//! reading, so nothing more fits), the link gives up: what is left is dropped and the
//! connection ends with [`ConnectionError::CloseTimedOut`], so a peer that stops reading
//! cannot keep a connection the node decided to close.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_core::CryptoRngCore;

use std::sync::Arc;

use crate::connection::{ConnectionError, Outbox, PeerConnection, PeerEvent, Taken};
use crate::deadline::later;
use crate::key::NodeKey;
use crate::router::{ConnectionParams, RouterCounters};

/// What the node machine tells a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCommand {
    /// Hand these messages, in order, to the connection (confirmed with
    /// [`LinkReport::Taken`]).
    Send(Vec<(u8, Bytes)>),
    /// Close gracefully after the messages sent before it, within the close linger.
    Close,
}

/// What a connection tells the node machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkReport {
    /// An event of the connection's `PeerConnection`.
    Event(PeerEvent),
    /// The connection took these messages of earlier `Send` commands.
    Taken(Taken),
}

/// One connection's machine and what waits to enter it (see the module docs).
pub struct Link {
    connection: PeerConnection,
    outbox: Outbox,
    close_linger: Duration,
    /// Set by a `Close` command: the close must be done by then.
    close_by: Option<Instant>,
    /// Taken since the last report.
    taken: Taken,
    gave_up: bool,
    /// The node's counters: messages received, how the handshake ended.
    counters: Arc<RouterCounters>,
    /// The handshake completed.
    authenticated: bool,
    /// Messages and bytes received since the counters were last updated (once per batch
    /// of reports, not once per message: the atomics are shared with other threads).
    received: (usize, usize),
}

impl Link {
    /// A link for a new TCP (or other transport) connection; `rng` supplies the ephemeral
    /// key of the handshake.
    pub fn new(
        now: Instant,
        key: &NodeKey,
        params: ConnectionParams,
        close_linger: Duration,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let counters = params.counters;
        let connection = PeerConnection::new(
            now,
            key,
            params.node_info,
            params.direction,
            params.config,
            rng,
        );
        Link {
            connection,
            outbox: Outbox::new(),
            close_linger,
            close_by: None,
            taken: Taken::default(),
            gave_up: false,
            counters,
            authenticated: false,
            received: (0, 0),
        }
    }

    /// A command of the node machine.
    pub fn handle_command(&mut self, now: Instant, command: LinkCommand) {
        match command {
            LinkCommand::Send(messages) => {
                for (channel, message) in messages {
                    self.outbox.push_send(channel, message);
                }
            }
            LinkCommand::Close => {
                self.outbox.request_close();
                self.close_by.get_or_insert(later(now, self.close_linger));
            }
        }
        self.flush(now);
    }

    /// Bytes read from the socket, at any split.
    ///
    /// # Errors
    /// The connection's error (it is closed; its `Closed` report carries the same reason).
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> Result<(), ConnectionError> {
        self.connection.handle_input(now, input)
    }

    /// The peer closed its side of the socket.
    pub fn handle_eof(&mut self) {
        self.connection.handle_eof();
    }

    /// Appends bytes for the socket to `out`; returns whether it wrote anything. Call until
    /// it returns `false`.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> bool {
        if self.gave_up {
            return false;
        }
        let wrote = self.connection.poll_transmit(now, out);
        // What was transmitted made room in the connection's channel queues.
        self.flush(now);
        wrote
    }

    /// When [`Link::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let close_by = self.close_by.filter(|_| !self.connection.is_closed());
        match (self.connection.poll_timeout(), close_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Timers: the connection's own, and the close deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.connection.handle_timeout(now);
        if self.close_by.is_some_and(|by| by <= now) && !self.connection.is_closed() {
            tracing::debug!(linger = ?self.close_linger, left = self.outbox.len(),
                "close did not finish in time: giving up");
            self.outbox = Outbox::new();
            self.gave_up = true;
            self.connection
                .abort(ConnectionError::CloseTimedOut(self.close_linger));
        }
        self.flush(now);
    }

    /// The next report for the node machine.
    pub fn poll_report(&mut self) -> Option<LinkReport> {
        if !self.taken.is_empty() {
            return Some(LinkReport::Taken(std::mem::take(&mut self.taken)));
        }
        let Some(event) = self.connection.poll_event() else {
            let (messages, bytes) = std::mem::take(&mut self.received);
            if messages > 0 {
                self.counters.received(messages, bytes);
            }
            return None;
        };
        match &event {
            PeerEvent::Message { message, .. } => {
                self.received.0 = self.received.0.saturating_add(1);
                self.received.1 = self.received.1.saturating_add(message.len());
            }
            PeerEvent::Authenticated { .. } => {
                self.authenticated = true;
                self.counters.handshake(None);
            }
            PeerEvent::Closed { reason } if !self.authenticated => {
                let closed = ConnectionError::PeerClosed;
                self.counters
                    .handshake(Some(reason.as_ref().unwrap_or(&closed)));
            }
            PeerEvent::Closed { .. } | PeerEvent::Pong { .. } => {}
        }
        Some(LinkReport::Event(event))
    }

    /// Bytes the driver may read from the socket now under the connection's receive rate
    /// limit (`MConnConfig::recv_rate`; `usize::MAX` without one). At 0, read nothing
    /// until [`Link::poll_timeout`].
    pub fn recv_allowance(&mut self, now: Instant) -> usize {
        self.connection.recv_allowance(now)
    }

    /// Whether the link gave up on a close (nothing more is to be written: close the
    /// socket).
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// Whether the connection is over (its `Closed` event is queued or was reported).
    pub fn is_closed(&self) -> bool {
        self.connection.is_closed()
    }

    /// The connection machine, for what the link does not wrap (`recv_allowance`,
    /// `ping_now`, `direction`).
    pub fn connection_mut(&mut self) -> &mut PeerConnection {
        &mut self.connection
    }

    fn flush(&mut self, now: Instant) {
        if self.outbox.is_empty() {
            return;
        }
        let taken = self.outbox.flush(now, &mut self.connection);
        self.taken.add(taken);
    }
}
