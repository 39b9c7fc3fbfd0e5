//! [`Link`]: the connection side of the node machine. It owns one connection's
//! [`PeerConnection`], the [`Outbox`] of what the node machine handed it, and the close
//! deadline, so a driver can run it on any task or thread (its crypto in parallel with the
//! other connections') and talk to the [`Node`](super::Node) only through
//! [`LinkCommand`]s in and [`LinkReport`]s out.
//!
//! Call order, for a driver (per connection, as `PeerConnection` documents its own):
//! 1. [`Link::new`] with the [`ConnectionParams`] the node machine returned from
//!    `accept` or `dial_succeeded` ([`Link::answer`] for a connection that was answering
//!    on a listener shared by several networks: `accept` comes after the dialer's node
//!    info then).
//! 2. Loop: feed socket bytes to [`Link::handle_input`] (at most [`Link::recv_allowance`]
//!    at a time: the receive rate limit; EOF: [`Link::handle_eof`]) and
//!    the node machine's commands to [`Link::handle_command`]; write what
//!    [`Link::poll_transmit`] gives until it returns `false`; call [`Link::handle_timeout`]
//!    at [`Link::poll_timeout`]; after any of these, pass every [`Link::poll_report`] to
//!    `Node::handle_link_report`.
//! 3. Once the connection is closed ([`Link::is_closed`]), keep the loop going: write
//!    what is left, then half-close the socket (shutdown of its write side) and keep
//!    reading (the link discards the bytes) until EOF, so the peer's unread bytes never
//!    turn our close into a reset that loses what we wrote last. Drop the link once
//!    [`Link::is_finished`] and everything is written (or [`Link::gave_up`]).
//!
//! Inbound: after the `Authenticated` report the link holds every received message until
//! the node machine admits the peer ([`LinkCommand::Admit`]; a refused peer gets a `Close`
//! instead, and what it sent is dropped with the link). From then on, messages of the node
//! machine's own channels (PEX) are reported, and the application's wait in the link's
//! inbox until the driver takes them with [`Link::poll_delivery`], under the one inbound
//! flow-control rule of [`inbox`](super::inbox): hand back a message whose receiver is full
//! with [`Link::refused`], announce room with [`Link::has_room`], and read the socket only
//! while [`Link::wants_input`]. Messages still held when the link is dropped are counted as
//! undelivered.
//!
//! The close linger, twice. A `Close` takes effect once the sends handed over before it
//! are in the connection. If that has not happened within the close linger (the peer
//! stopped reading, so nothing more fits), the link gives up: what is left is dropped and
//! the connection ends with [`ConnectionError::CloseTimedOut`], so a peer that stops
//! reading cannot keep a connection the node decided to close. Once the connection is
//! closed, by either side, the link holds its `Closed` report until the application took
//! what the peer sent before it (so those messages arrive before the peer's `Down`; a peer
//! that closed before the node's verdict on it waits for the verdict), and waits for the
//! socket's EOF (unless the peer was never admitted); both within one more close
//! linger, after which the link gives up, and what the application did not take is
//! counted as undelivered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand_core::CryptoRngCore;

use super::inbox::Inbox;
use crate::connection::{ConnectionError, Outbox, PeerConnection, PeerEvent, Taken};
use crate::deadline::later;
use crate::id::NodeId;
use crate::key::NodeKey;
use crate::router::{ConnectionParams, Envelope, PeerCounters, RouterCounters};

/// The node-wide settings every link gets (from `Node::link_settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSettings {
    /// `NodeConfig::close_linger`.
    pub close_linger: Duration,
    /// `NodeConfig::inbound_hold_bytes`.
    pub inbound_hold_bytes: usize,
}

/// What the node machine tells a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCommand {
    /// Hand these messages, in order, to the connection (confirmed with
    /// [`LinkReport::Taken`]).
    Send(Vec<(u8, Bytes)>),
    /// Close gracefully after the messages sent before it, within the close linger.
    Close,
    /// Close as part of the node's stop: as `Close`, but what the application has not
    /// taken by then is not waited for (it is counted as undelivered), since an
    /// application that is stopping may not read any more.
    Stop,
    /// The peer is routed: deliver its messages. Those of `internal` channels are the node
    /// machine's (reported as events); every other channel's go to the application.
    Admit {
        /// The peer.
        peer: NodeId,
        /// The node machine's own channels.
        internal: Vec<u8>,
        /// The peer's counters, for what the connection receives and holds.
        counters: Arc<PeerCounters>,
    },
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
    settings: LinkSettings,
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
    /// The admitted peer and the node machine's channels.
    admitted: Option<(NodeId, Vec<u8>)>,
    /// The admitted peer's counters.
    peer_counters: Option<Arc<PeerCounters>>,
    /// Received messages waiting for admission or for the application.
    inbox: Inbox,
    /// Messages of the node machine's channels held until admission, then reported.
    internal: VecDeque<(u8, Bytes)>,
    /// Set by [`Link::discard_inbound`]: nothing more of this peer reaches the application.
    discarding: bool,
    /// Closed by the node's stop ([`LinkCommand::Stop`]).
    stopping: bool,
    /// The latest time the driver passed in (when the peer's `Closed` is found among the
    /// reports, which take no time).
    now: Instant,
    /// When the connection was first seen closed: the last close linger runs from here.
    closed_at: Option<Instant>,
    /// The `Closed` event, held until the application took what came before it.
    held_closed: Option<PeerEvent>,
    /// The `Closed` event was reported.
    closed_reported: bool,
    /// The close linger after the connection closed passed: nothing more is written,
    /// read or delivered.
    lingered: bool,
    /// The socket reached EOF (or failed).
    eof: bool,
}

impl Link {
    /// A link for a new TCP (or other transport) connection; `rng` supplies the ephemeral
    /// key of the handshake.
    pub fn new(
        now: Instant,
        key: &NodeKey,
        params: ConnectionParams,
        settings: LinkSettings,
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let connection = PeerConnection::new(
            now,
            key,
            params.node_info,
            params.direction,
            params.config,
            rng,
        );
        Self::with_connection(now, connection, params.counters, settings)
    }

    /// A link for an inbound connection that was answering (see
    /// [`PeerConnection::answering`]): the node machine that `accept`ed it once the
    /// dialer's node info was known answers it now with its own node info and settings
    /// from `params`.
    pub fn answer(
        now: Instant,
        mut connection: PeerConnection,
        params: ConnectionParams,
        settings: LinkSettings,
    ) -> Self {
        connection.answer(now, params.node_info, params.config);
        Self::with_connection(now, connection, params.counters, settings)
    }

    fn with_connection(
        now: Instant,
        connection: PeerConnection,
        counters: Arc<RouterCounters>,
        settings: LinkSettings,
    ) -> Self {
        Link {
            connection,
            outbox: Outbox::new(),
            settings,
            close_by: None,
            taken: Taken::default(),
            gave_up: false,
            counters,
            authenticated: false,
            received: (0, 0),
            admitted: None,
            peer_counters: None,
            inbox: Inbox::default(),
            internal: VecDeque::new(),
            discarding: false,
            stopping: false,
            now,
            closed_at: None,
            held_closed: None,
            closed_reported: false,
            lingered: false,
            eof: false,
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
            LinkCommand::Close | LinkCommand::Stop => {
                self.stopping |= command == LinkCommand::Stop;
                self.outbox.request_close();
                self.close_by
                    .get_or_insert(later(now, self.settings.close_linger));
            }
            LinkCommand::Admit {
                peer,
                internal,
                counters,
            } => {
                // What arrived before the verdict counts as received from the peer now.
                self.inbox
                    .for_each(|channel, len| counters.received(channel, len));
                for &channel in &internal {
                    let held = self.inbox.take_channel(channel);
                    for message in &held {
                        counters.received(channel, message.len());
                    }
                    self.internal.extend(held.into_iter().map(|m| (channel, m)));
                }
                counters.set_inbound_held(self.inbox.held_messages());
                self.admitted = Some((peer, internal));
                self.peer_counters = Some(counters);
            }
        }
        self.flush(now);
        self.seen(now);
    }

    /// Bytes read from the socket, at any split.
    ///
    /// # Errors
    /// The connection's error (it is closed; its `Closed` report carries the same reason).
    /// Bytes that arrive after the connection closed are read only to reach EOF, and
    /// discarded.
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> Result<(), ConnectionError> {
        if self.connection.is_closed() {
            return Ok(());
        }
        let result = self.connection.handle_input(now, input);
        self.seen(now);
        result
    }

    /// The peer closed its side of the socket, or the socket failed: nothing more is read.
    pub fn handle_eof(&mut self, now: Instant) {
        self.eof = true;
        self.connection.handle_eof();
        self.seen(now);
    }

    /// Appends bytes for the socket to `out`; returns whether it wrote anything. Call until
    /// it returns `false`.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> bool {
        if self.gave_up() {
            return false;
        }
        let wrote = self.connection.poll_transmit(now, out);
        // What was transmitted made room in the connection's channel queues.
        self.flush(now);
        self.seen(now);
        wrote
    }

    /// When [`Link::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let close_by = self.close_by.filter(|_| !self.connection.is_closed());
        let lingering = self.linger_end().filter(|_| !self.lingered);
        [self.connection.poll_timeout(), close_by, lingering]
            .into_iter()
            .flatten()
            .min()
    }

    /// The end of the close linger after the connection closed.
    fn linger_end(&self) -> Option<Instant> {
        let closed_at = self.closed_at?;
        Some(later(closed_at, self.settings.close_linger))
    }

    /// Timers: the connection's own, the close deadline, and the close linger after the
    /// connection closed (past it the link gives up: see the module docs).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.connection.handle_timeout(now);
        if self.close_by.is_some_and(|by| by <= now) && !self.connection.is_closed() {
            let linger = self.settings.close_linger;
            tracing::debug!(
                ?linger,
                left = self.outbox.len(),
                "close did not finish in time: giving up"
            );
            self.outbox = Outbox::new();
            self.gave_up = true;
            self.connection
                .abort(ConnectionError::CloseTimedOut(linger));
        }
        self.flush(now);
        self.seen(now);
        if !self.lingered && self.linger_end().is_some_and(|end| end <= now) {
            let undelivered = self.inbox.held_messages();
            tracing::debug!(
                undelivered,
                eof = self.eof,
                "close linger over: the connection ends"
            );
            self.lingered = true;
        }
    }

    /// Notes the time, and when the connection closed.
    fn seen(&mut self, now: Instant) {
        self.now = now;
        if self.closed_at.is_none() && self.connection.is_closed() {
            self.closed_at = Some(now);
        }
    }

    /// Whether the application may still get messages the peer sent before it closed:
    /// once admitted, while any wait for it; before the node's verdict on an authenticated
    /// peer, while any were received (a `Close` is a refusal: they go with the link).
    fn delivering(&self) -> bool {
        if self.lingered || self.discarding || self.stopping {
            return false;
        }
        match self.admitted {
            Some(_) => !self.inbox.is_empty() || self.inbox.any_full(),
            None => self.authenticated && self.close_by.is_none() && !self.inbox.is_empty(),
        }
    }

    /// The next report for the node machine.
    pub fn poll_report(&mut self) -> Option<LinkReport> {
        // `Closed` is the last report: the node machine has forgotten the connection then.
        if self.closed_reported {
            return None;
        }
        if !self.taken.is_empty() {
            return Some(LinkReport::Taken(std::mem::take(&mut self.taken)));
        }
        if self.admitted.is_some() {
            if let Some((channel, message)) = self.internal.pop_front() {
                return Some(LinkReport::Event(PeerEvent::Message { channel, message }));
            }
        }
        // The node machine's own messages (above) and the application's come first.
        if self.held_closed.is_some() && !self.delivering() {
            self.closed_reported = true;
            return self.held_closed.take().map(LinkReport::Event);
        }
        loop {
            let Some(event) = self.connection.poll_event() else {
                let (messages, bytes) = std::mem::take(&mut self.received);
                if messages > 0 {
                    self.counters.received(messages, bytes);
                    if let Some(peer) = &self.peer_counters {
                        peer.set_inbound_held(self.inbox.held_messages());
                    }
                }
                return None;
            };
            let Some(report) = self.on_event(event) else {
                continue;
            };
            if let LinkReport::Event(closed @ PeerEvent::Closed { .. }) = report {
                self.seen(self.now);
                if self.delivering() {
                    self.held_closed = Some(closed);
                    continue;
                }
                self.closed_reported = true;
                return Some(LinkReport::Event(closed));
            }
            return Some(report);
        }
    }

    /// Counts an event of the connection and decides where it goes: to the node machine
    /// (returned) or, for a message, into the inbox.
    fn on_event(&mut self, event: PeerEvent) -> Option<LinkReport> {
        match &event {
            PeerEvent::Message { channel, message } => {
                self.received.0 = self.received.0.saturating_add(1);
                self.received.1 = self.received.1.saturating_add(message.len());
                let internal = match &self.admitted {
                    Some((_, internal)) => internal.contains(channel),
                    None => false,
                };
                if let Some(peer) = &self.peer_counters {
                    peer.received(*channel, message.len());
                }
                if !internal {
                    if self.discarding {
                        self.counters.undelivered(1);
                    } else {
                        self.inbox.push(*channel, message.clone());
                    }
                    return None;
                }
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

    /// The next received message for the application, from a channel whose receiver is
    /// not known to be full (see the module docs).
    pub fn poll_delivery(&mut self) -> Option<Envelope> {
        let (peer, _) = self.admitted.as_ref()?;
        let from = Some(*peer);
        let (channel, message) = self.inbox.pop()?;
        if let Some(peer) = &self.peer_counters {
            peer.set_inbound_held(self.inbox.held_messages());
        }
        Some(Envelope {
            from,
            to: None,
            channel,
            message,
        })
    }

    /// The application's receiver for `envelope`'s channel is full: the link keeps the
    /// message (first in line) and delivers nothing more of that channel until
    /// [`Link::has_room`].
    pub fn refused(&mut self, envelope: Envelope) {
        self.inbox.refused(envelope.channel, envelope.message);
    }

    /// The application's receiver for `channel` is full, and the driver keeps the message
    /// that found it full (for instance inside a future that completes once there is
    /// room): the link delivers nothing more of that channel until [`Link::has_room`].
    pub fn channel_full(&mut self, channel: u8) {
        self.inbox.mark_full(channel);
    }

    /// The application's receiver for `channel` has room again.
    pub fn has_room(&mut self, channel: u8) {
        self.inbox.has_room(channel);
    }

    /// Whether [`Link::poll_delivery`] has a message now.
    pub fn has_delivery(&self) -> bool {
        self.admitted.is_some() && self.inbox.has_ready()
    }

    /// Whether received messages wait (for admission or for the application).
    pub fn holds_inbound(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// Received messages and payload bytes waiting (for admission or for the application).
    pub fn held_inbound(&self) -> (usize, usize) {
        (self.inbox.held_messages(), self.inbox.held_bytes())
    }

    /// Whether the driver should read the socket now: not while messages wait for the
    /// peer's admission, nor while more than the hold budget waits for the application.
    /// After the close: until EOF (what is read then is discarded), unless the link gave up.
    pub fn wants_input(&self) -> bool {
        if self.connection.is_closed() {
            // Read on to EOF, discarding.
            return !self.eof && !self.gave_up();
        }
        let unadmitted = self.admitted.is_none() && !self.inbox.is_empty();
        !unadmitted && self.inbox.held_bytes() <= self.settings.inbound_hold_bytes
    }

    /// Drops every held message and any later one (the application found the peer's
    /// messages unusable, e.g. undecodable, and the peer is being evicted); counted as
    /// undelivered.
    pub fn discard_inbound(&mut self) {
        self.discarding = true;
        let dropped = self.inbox.clear();
        self.counters.undelivered(dropped);
    }

    /// Bytes the driver may read from the socket now under the connection's receive rate
    /// limit (`MConnConfig::recv_rate`; `usize::MAX` without one). At 0, read nothing
    /// until [`Link::poll_timeout`].
    pub fn recv_allowance(&mut self, now: Instant) -> usize {
        self.connection.recv_allowance(now)
    }

    /// Whether the link gave up: a close did not finish within the close linger, or the
    /// linger after the close passed. Nothing more is to be written: close the socket.
    pub fn gave_up(&self) -> bool {
        self.gave_up || self.lingered
    }

    /// Whether the connection is over (its `Closed` event is queued, held or was
    /// reported).
    pub fn is_closed(&self) -> bool {
        self.connection.is_closed()
    }

    /// Whether [`Link::poll_report`] gave the `Closed` event: nothing more is reported.
    pub fn closed_reported(&self) -> bool {
        self.closed_reported
    }

    /// Whether the link is done: its `Closed` was reported, and the socket reached EOF or
    /// the close linger passed (or the peer was never admitted). Drop it once everything [`Link::poll_transmit`] gave is
    /// written (or at once when it [`Link::gave_up`]).
    pub fn is_finished(&self) -> bool {
        // A connection whose peer was never admitted (a failed handshake, a refused peer)
        // carried nothing of the application's: it does not wait for the peer's EOF, which
        // such a peer need never send, since its place in the node is already free.
        self.closed_reported && (self.eof || self.gave_up() || self.admitted.is_none())
    }

    /// The driver dropped `count` received messages it had taken for the application but
    /// could not hand over (the link had ended first): they are counted as undelivered.
    pub fn count_undelivered(&self, count: usize) {
        if count > 0 {
            self.counters.undelivered(count);
        }
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

impl Drop for Link {
    /// What the application never took is counted, never lost silently.
    fn drop(&mut self) {
        let dropped = self.inbox.held_messages();
        if dropped > 0 {
            tracing::debug!(
                dropped,
                "connection ended before the application took its messages"
            );
            self.counters.undelivered(dropped);
        }
    }
}

#[cfg(test)]
mod tests;
