//! MConnection: the multiplexed connection that carries every reactor's messages over one
//! SecretConnection (protocol.md §4), as a sans-IO machine working on *plaintext*.
//!
//! [`MConnection`] splits outgoing messages into `PacketMsg` chunks, picks which channel
//! speaks next (least recently-sent bytes per unit of priority, §4.4), answers pings, sends
//! its own pings and closes on a missing pong, reassembles incoming chunks per channel
//! within each channel's capacity, and optionally keeps to send/receive rate limits.
//! Encryption is the caller's: decrypted bytes go into [`MConnection::handle_input`],
//! bytes to seal come out of [`MConnection::poll_transmit`].
//!
//! Call order, for a driver:
//! 1. Feed every decrypted byte to [`MConnection::handle_input`] (any split); an `Err` is
//!    fatal for this connection only.
//! 2. After every input, command ([`MConnection::send`], [`MConnection::ping_now`],
//!    [`MConnection::close`]) or timeout, drain [`MConnection::poll_event`], write what
//!    [`MConnection::poll_transmit`] yields, and re-arm the timer at
//!    [`MConnection::poll_timeout`], calling [`MConnection::handle_timeout`] when it fires.

mod channel;
mod config;
mod keepalive;
mod machine;
mod packet;
mod rate_limit;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;
#[cfg(any(test, feature = "fuzzing"))]
use bytes::BytesMut;

pub use config::{ChannelDescriptor, MConnConfig};
pub use machine::{MConnEvent, MConnection};
pub use packet::{chunk_size, max_received_packet_size, max_sent_packet_size};

/// Everything that makes an MConnection fail. Every variant is fatal for the connection
/// that produced it, and for nothing else; configuration variants come from
/// [`MConnConfig::validate`] and [`MConnection::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MConnError {
    /// A packet's length prefix announces more than the largest legal packet.
    #[error("packet length {len} exceeds the limit of {max} bytes")]
    OversizedPacket {
        /// The length the prefix announced.
        len: u64,
        /// The largest packet accepted for the configured payload size.
        max: usize,
    },
    /// A packet's length prefix is not a valid uvarint (longer than 10 bytes or over 64 bits).
    #[error("packet length prefix is not a valid uvarint")]
    MalformedLengthPrefix,
    /// A packet body is not valid protobuf.
    #[error("packet is not valid protobuf: {0}")]
    MalformedPacket(String),
    /// A packet decodes but carries no ping, pong or message.
    #[error("packet has no ping, pong or message (unknown message type)")]
    EmptyPacket,
    /// A message chunk names a channel that is not registered (or is outside 0..=255).
    #[error("message on unknown channel {0}")]
    UnknownChannel(i32),
    /// Reassembling a message would exceed the channel's receive capacity.
    #[error(
        "message on channel {channel:#04x} reaches {len} bytes, over its capacity of {capacity}"
    )]
    MessageOverCapacity {
        /// The channel.
        channel: u8,
        /// The length the message would have reached.
        len: usize,
        /// The channel's `recv_message_capacity`.
        capacity: usize,
    },
    /// No pong arrived within the pong timeout after a ping.
    #[error("no pong within {0:?} after our ping")]
    PongTimeout(Duration),
    /// An earlier error already failed this machine; the connection must be closed.
    #[error("connection already failed")]
    Failed,
    /// Configuration: `max_packet_payload_size` is outside the supported range.
    #[error("max_packet_payload_size {size} is outside {min}..={max}")]
    PayloadSizeOutOfRange {
        /// The configured size.
        size: usize,
        /// Smallest supported size.
        min: usize,
        /// Largest supported size.
        max: usize,
    },
    /// Configuration: the ping interval is zero.
    #[error("ping_interval must be above zero")]
    ZeroPingInterval,
    /// Configuration: the pong timeout is zero or not below the ping interval.
    #[error("pong_timeout {pong_timeout:?} must be above zero and below ping_interval {ping_interval:?}")]
    PongTimeoutNotBelowPingInterval {
        /// The configured pong timeout.
        pong_timeout: Duration,
        /// The configured ping interval.
        ping_interval: Duration,
    },
    /// Configuration: a rate limit of zero bytes per second (use `None` for no limit).
    #[error("{0} rate limit is zero bytes per second (use None for unlimited)")]
    ZeroRate(&'static str),
    /// Configuration: the flush throttle is zero (use `None` for no throttle).
    #[error("flush_throttle is zero (use None for no throttle)")]
    ZeroFlushThrottle,
    /// Configuration: a channel's priority is zero.
    #[error("channel {0:#04x} has priority 0; priorities must be above zero")]
    ZeroPriority(u8),
    /// Configuration: a channel's send queue capacity is zero.
    #[error("channel {0:#04x} has send_queue_capacity 0")]
    ZeroSendQueueCapacity(u8),
    /// Configuration: two descriptors share one channel id.
    #[error("channel {0:#04x} is described twice")]
    DuplicateChannel(u8),
}

/// Why [`MConnection::send`] did not queue a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The channel's send queue is full; the message is handed back.
    #[error("send queue of the channel is full")]
    Full(Bytes),
    /// No channel with this id was registered.
    #[error("channel {0:#04x} is not registered")]
    UnknownChannel(u8),
    /// The connection is closing or failed; nothing more is accepted.
    #[error("connection is closed")]
    Closed,
}

/// Fuzz body for the packet decoder: feeds arbitrary bytes (in two pieces, split where
/// the first byte says) to a fresh MConnection with a few channels, drains its outputs, and
/// must never panic. Built for tests and with the `fuzzing` feature only.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub fn fuzz_packet_decoder(data: &[u8]) {
    // The machine only compares instants it was given, so any starting point is as
    // deterministic as another; this body is a driver, compiled for tests and fuzzing only.
    let now = crate::test_clock::epoch();
    let channels = [0x00u8, 0x20, 0x80, 0xff]
        .iter()
        .map(|&id| ChannelDescriptor {
            id,
            priority: 1,
            send_queue_capacity: 4,
            recv_message_capacity: 4096,
        })
        .collect();
    let Ok(mut conn) = MConnection::new(MConnConfig::default(), channels, now) else {
        return;
    };
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (first, second) = data.split_at(split);
    let mut input = BytesMut::new();
    for piece in [first, second] {
        input.extend_from_slice(piece);
        if conn.handle_input(now, &mut input).is_err() {
            break;
        }
        while conn.poll_event().is_some() {}
    }
    let mut out = BytesMut::new();
    conn.poll_transmit(now, &mut out, 1 << 16);
    let _ = conn.handle_timeout(now);
}
