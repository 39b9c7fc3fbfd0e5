//! The [`MConnection`] machine: composes the packet codec, the channels, the scheduler
//! (least recently-sent bytes per unit of priority, decayed every 2 s), keep-alive and rate
//! limits behind the sans-IO `handle_*` / `poll_*` interface.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::channel::Channel;
use super::config::{validate_channels, ChannelDescriptor, MConnConfig};
use super::keepalive::Keepalive;
use super::packet::{self, Received, PING, PONG};
use super::rate_limit::RateLimit;
use super::{MConnError, SendError};
use crate::delimited::{peek_complete, DelimitedError};

/// How often every channel's recently-sent count decays by ×0.8.
const DECAY_INTERVAL: Duration = Duration::from_secs(2);
/// Decay steps after which any u64 count is zero: catching up stops there.
const MAX_DECAY_STEPS: u32 = 200;

/// What the layer above must learn from an MConnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MConnEvent {
    /// A whole message arrived on a channel.
    Message {
        /// The channel it arrived on.
        channel: u8,
        /// The reassembled message.
        message: Bytes,
    },
    /// The peer answered one of our pings.
    Pong {
        /// Time from writing the ping to reading the pong.
        rtt: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// `close` was called: no new messages, queued ones still go out.
    Closing,
    Failed,
}

/// One peer's multiplexed connection over plaintext (see the module docs for the call
/// order).
#[derive(Debug)]
pub struct MConnection {
    state: State,
    max_packet: usize,
    channels: Vec<Channel>,
    keepalive: Keepalive,
    send_limit: Option<RateLimit>,
    recv_limit: Option<RateLimit>,
    flush_throttle: Option<Duration>,
    /// With a flush throttle: message packets wait until this instant.
    next_flush: Option<Instant>,
    /// When the recently-sent counts next decay.
    next_decay: Option<Instant>,
    events: VecDeque<MConnEvent>,
}

impl MConnection {
    /// A new connection over `channels` (descriptor order breaks scheduling ties).
    ///
    /// # Errors
    /// The config fails [`MConnConfig::validate`], or a channel has priority 0, a zero send
    /// queue, or an id used twice.
    pub fn new(
        config: MConnConfig,
        channels: Vec<ChannelDescriptor>,
        now: Instant,
    ) -> Result<Self, MConnError> {
        config.validate()?;
        validate_channels(&channels)?;
        let payload = config.max_packet_payload_size;
        Ok(Self {
            state: State::Open,
            max_packet: packet::max_received_packet_size(payload),
            channels: channels
                .iter()
                .map(|d| Channel::new(d, packet::chunk_size(d.id, payload)))
                .collect(),
            keepalive: Keepalive::new(config.ping_interval, config.pong_timeout, now),
            send_limit: config.send_rate.map(|rate| RateLimit::new(rate, now)),
            recv_limit: config.recv_rate.map(|rate| RateLimit::new(rate, now)),
            flush_throttle: config.flush_throttle,
            next_flush: None,
            next_decay: now.checked_add(DECAY_INTERVAL),
            events: VecDeque::new(),
        })
    }

    /// Parses every complete packet at the front of `plaintext`, consuming it and leaving
    /// a partial packet in place. Call with every decrypted byte, at any split.
    ///
    /// # Errors
    /// Any protocol violation ([`MConnError::OversizedPacket`] as soon as the length
    /// prefix is complete, malformed prefix or protobuf, empty packet, unknown channel,
    /// message over capacity). Every error is fatal: close the connection.
    pub fn handle_input(
        &mut self,
        now: Instant,
        plaintext: &mut BytesMut,
    ) -> Result<(), MConnError> {
        if self.state == State::Failed {
            return Err(MConnError::Failed);
        }
        loop {
            let (prefix, body) = match peek_complete(plaintext, self.max_packet) {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(()),
                Err(DelimitedError::TooLarge { len, max }) => {
                    return self.fail(MConnError::OversizedPacket { len, max })
                }
                Err(DelimitedError::BadPrefix) => {
                    return self.fail(MConnError::MalformedLengthPrefix)
                }
            };
            // peek_complete guarantees the buffer holds prefix + body bytes (so the sum
            // cannot overflow either).
            let mut frame = plaintext.split_to(prefix + body).freeze();
            frame.advance(prefix);
            if let Some(limit) = &mut self.recv_limit {
                limit.roll_to(now);
                limit.record(prefix + body);
            }
            if let Err(e) = self.handle_packet(now, frame) {
                return self.fail(e);
            }
        }
    }

    fn handle_packet(&mut self, now: Instant, frame: Bytes) -> Result<(), MConnError> {
        match packet::decode(frame)? {
            Received::Ping => self.keepalive.on_ping(),
            Received::Pong => {
                if let Some(rtt) = self.keepalive.on_pong(now) {
                    self.events.push_back(MConnEvent::Pong { rtt });
                }
            }
            Received::Msg { channel, eof, data } => {
                let index = u8::try_from(channel)
                    .ok()
                    .and_then(|id| self.channel_index(id))
                    .ok_or(MConnError::UnknownChannel(channel))?;
                let Some(chan) = self.channels.get_mut(index) else {
                    return Err(MConnError::UnknownChannel(channel));
                };
                if let Some(message) = chan.receive(eof, data)? {
                    self.events.push_back(MConnEvent::Message {
                        channel: chan.id,
                        message,
                    });
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, error: MConnError) -> Result<(), MConnError> {
        tracing::debug!(%error, "mconn failed");
        self.state = State::Failed;
        Err(error)
    }

    fn channel_index(&self, id: u8) -> Option<usize> {
        self.channels.iter().position(|c| c.id == id)
    }

    /// Queues a message on a channel; never blocks. The message is available to
    /// [`MConnection::poll_transmit`] at once.
    ///
    /// # Errors
    /// [`SendError::Full`] hands the message back when the channel's queue is full;
    /// [`SendError::UnknownChannel`]; [`SendError::Closed`] after `close` or a failure.
    pub fn send(&mut self, _now: Instant, channel: u8, message: Bytes) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        let index = self
            .channel_index(channel)
            .ok_or(SendError::UnknownChannel(channel))?;
        let chan = self
            .channels
            .get_mut(index)
            .ok_or(SendError::UnknownChannel(channel))?;
        chan.push(message).map_err(SendError::Full)
    }

    /// Whether [`MConnection::send`] on `channel` would queue a message now.
    pub fn can_send(&self, channel: u8) -> bool {
        self.state == State::Open
            && self
                .channel_index(channel)
                .and_then(|i| self.channels.get(i))
                .is_some_and(Channel::can_push)
    }

    /// Appends delimited packets to `out`: a queued ping, an owed pong, then message chunks
    /// in scheduler order, until at least `max_bytes` were written (the last packet may
    /// overshoot by less than one packet), nothing is pending, or the send budget (or the
    /// opt-in flush throttle) says wait; [`MConnection::poll_timeout`] then says when.
    /// Returns the bytes written.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut, max_bytes: usize) -> usize {
        if self.state == State::Failed {
            return 0;
        }
        let mut written = 0;
        if self.keepalive.take_ping(now) {
            out.extend_from_slice(&PING);
            written += PING.len(); // cannot panic: written was 0
        }
        if self.keepalive.take_pong() {
            out.extend_from_slice(&PONG);
            written += PONG.len(); // cannot panic: written <= 3
        }
        if let Some(limit) = &mut self.send_limit {
            limit.roll_to(now);
            limit.record(written);
        }
        if self.next_flush.is_some_and(|at| now < at) {
            return written;
        }
        let mut wrote_message = false;
        while written < max_bytes {
            if let Some(limit) = &mut self.send_limit {
                if limit.allowance(now) == 0 {
                    break;
                }
            }
            let Some(chan) = self.next_channel() else {
                break;
            };
            let Some(chunk) = chan.next_chunk() else {
                break;
            };
            let n = packet::write_msg(out, chan.id, chunk.eof, &chunk.data);
            chan.record_sent(n);
            if let Some(limit) = &mut self.send_limit {
                limit.record(n);
            }
            written = written.saturating_add(n);
            wrote_message = true;
        }
        if wrote_message {
            self.next_flush = self.flush_throttle.and_then(|d| now.checked_add(d));
        }
        written
    }

    /// The channel that speaks next: least `recently_sent / priority` among channels with
    /// pending data, ties to the first in descriptor order.
    fn next_channel(&mut self) -> Option<&mut Channel> {
        let mut best: Option<&mut Channel> = None;
        for chan in self.channels.iter_mut().filter(|c| c.has_pending()) {
            match &best {
                Some(b) if chan.cmp_share(b).is_ge() => {}
                _ => best = Some(chan),
            }
        }
        best
    }

    /// Takes the next event for the layer above.
    pub fn poll_event(&mut self) -> Option<MConnEvent> {
        self.events.pop_front()
    }

    /// Runs the timers due at `now`: the pong deadline, the periodic ping, the 2-second
    /// decay of the scheduler's counts. Extra calls are harmless.
    ///
    /// # Errors
    /// [`MConnError::PongTimeout`] when our ping went unanswered for the pong timeout;
    /// [`MConnError::Failed`] after an earlier failure. Both are fatal.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), MConnError> {
        if self.state == State::Failed {
            return Err(MConnError::Failed);
        }
        if let Err(e) = self.keepalive.handle_timeout(now) {
            return self.fail(e);
        }
        if let Some(at) = self.next_decay.filter(|&at| now >= at) {
            // cannot panic: DECAY_INTERVAL is a non-zero constant.
            let behind = now.saturating_duration_since(at).as_nanos() / DECAY_INTERVAL.as_nanos();
            let steps = u32::try_from(behind.saturating_add(1)).unwrap_or(u32::MAX);
            for _ in 0..steps.min(MAX_DECAY_STEPS) {
                self.channels.iter_mut().for_each(Channel::decay);
            }
            self.next_decay = at
                .checked_add(DECAY_INTERVAL.saturating_mul(steps))
                .or_else(|| now.checked_add(DECAY_INTERVAL));
        }
        Ok(())
    }

    /// The next instant [`MConnection::handle_timeout`] (or, for the send budget and flush
    /// throttle, [`MConnection::poll_transmit`]; for the receive budget, reading) is due;
    /// `None` after a failure.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Failed {
            return None;
        }
        let pending = self.channels.iter().any(Channel::has_pending);
        let decay = self
            .next_decay
            .filter(|_| self.channels.iter().any(Channel::is_decaying));
        let flush = self.next_flush.filter(|_| pending);
        let send = self
            .send_limit
            .as_ref()
            .and_then(RateLimit::blocked_until)
            .filter(|_| pending);
        let recv = self.recv_limit.as_ref().and_then(RateLimit::blocked_until);
        [self.keepalive.poll_timeout(), decay, flush, send, recv]
            .into_iter()
            .flatten()
            .min()
    }

    /// Bytes the driver may read from the socket now under the receive rate limit
    /// (`usize::MAX` without one). When it is 0, wait for [`MConnection::poll_timeout`].
    pub fn recv_allowance(&mut self, now: Instant) -> usize {
        self.recv_limit.as_mut().map_or(usize::MAX, |limit| {
            usize::try_from(limit.allowance(now)).unwrap_or(usize::MAX)
        })
    }

    /// Queues a ping now; its round-trip time comes back as [`MConnEvent::Pong`], and a
    /// missing pong fails the connection after the pong timeout.
    pub fn ping_now(&mut self, now: Instant) {
        self.keepalive.queue_ping(now);
    }

    /// Graceful close: `send` is refused from now on, while queued messages still leave
    /// through [`MConnection::poll_transmit`]; close the socket once
    /// [`MConnection::is_flushed`].
    pub fn close(&mut self) {
        if self.state == State::Open {
            self.state = State::Closing;
        }
    }

    /// Whether nothing (message, ping or pong) waits to be written.
    pub fn is_flushed(&self) -> bool {
        !self.keepalive.has_pending() && !self.channels.iter().any(Channel::has_pending)
    }

    /// Whether any channel holds a partly reassembled message (idle channels hold none).
    #[cfg(test)]
    pub(crate) fn holds_reassembly_buffers(&self) -> bool {
        self.channels.iter().any(Channel::holds_reassembly_buffer)
    }
}
