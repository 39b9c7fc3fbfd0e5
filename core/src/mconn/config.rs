//! MConnection configuration: the connection-wide [`MConnConfig`] and the per-channel
//! [`ChannelDescriptor`] (protocol.md §4.2, §4.3), with their validation.

use std::time::Duration;

use super::MConnError;

/// Smallest `max_packet_payload_size` accepted (any channel id still gets ≥ 1 byte chunks).
pub(crate) const MIN_PAYLOAD_SIZE: usize = 64;
/// Largest `max_packet_payload_size` accepted (Go has none; 1 MiB keeps sizes sane).
pub(crate) const MAX_PAYLOAD_SIZE: usize = 1 << 20;

/// One channel of an MConnection: what it is called, how much of the link it gets, and how
/// much it may buffer each way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDescriptor {
    /// The channel id on the wire (`PacketMsg.channel_id`).
    pub id: u8,
    /// Share of the link under contention (> 0): the scheduler sends next on the channel with
    /// the least recently-sent bytes per unit of priority.
    pub priority: u32,
    /// Messages that may wait in the channel's send queue (the message being chunked does
    /// not count); a full queue hands a new message back.
    pub send_queue_capacity: usize,
    /// Largest reassembled message accepted from the peer; more closes the connection.
    pub recv_message_capacity: usize,
}

/// Connection-wide MConnection settings. [`Default`] gives CometBFT's values, with rate
/// limits and the flush throttle off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MConnConfig {
    /// Chunk size for outgoing messages and the basis of the packet limits: we send at most
    /// 1034 bytes and accept at most 1035 for 1024 (see `max_sent_packet_size` and
    /// `max_received_packet_size`). Keep 1024 to talk to CometBFT nodes.
    pub max_packet_payload_size: usize,
    /// How often we ping the peer.
    pub ping_interval: Duration,
    /// How long a pong may take after our ping before the connection is closed; below
    /// `ping_interval`.
    pub pong_timeout: Duration,
    /// Send limit in bytes per second (CometBFT's default is 5 120 000); `None`: unlimited.
    pub send_rate: Option<u64>,
    /// Receive limit in bytes per second, reported through
    /// [`MConnection::recv_allowance`](super::MConnection::recv_allowance); `None`: unlimited.
    pub recv_rate: Option<u64>,
    /// Opt-in parity with Go's flush throttle: message packets leave at most once per this
    /// interval. `None` (the default): queued data is available at once.
    pub flush_throttle: Option<Duration>,
}

impl Default for MConnConfig {
    fn default() -> Self {
        Self {
            max_packet_payload_size: 1024,
            ping_interval: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(45),
            send_rate: None,
            recv_rate: None,
            flush_throttle: None,
        }
    }
}

impl MConnConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// The payload size is outside 64..=1 MiB, the ping interval is zero, the pong timeout
    /// is zero or not below the ping interval, a rate or the flush throttle is zero.
    pub fn validate(&self) -> Result<(), MConnError> {
        let size = self.max_packet_payload_size;
        if !(MIN_PAYLOAD_SIZE..=MAX_PAYLOAD_SIZE).contains(&size) {
            return Err(MConnError::PayloadSizeOutOfRange {
                size,
                min: MIN_PAYLOAD_SIZE,
                max: MAX_PAYLOAD_SIZE,
            });
        }
        if self.ping_interval.is_zero() {
            return Err(MConnError::ZeroPingInterval);
        }
        if self.pong_timeout.is_zero() || self.pong_timeout >= self.ping_interval {
            return Err(MConnError::PongTimeoutNotBelowPingInterval {
                pong_timeout: self.pong_timeout,
                ping_interval: self.ping_interval,
            });
        }
        if self.send_rate == Some(0) {
            return Err(MConnError::ZeroRate("send"));
        }
        if self.recv_rate == Some(0) {
            return Err(MConnError::ZeroRate("receive"));
        }
        if self.flush_throttle.is_some_and(|d| d.is_zero()) {
            return Err(MConnError::ZeroFlushThrottle);
        }
        Ok(())
    }
}

/// Checks a channel list: priorities and send queues above zero, ids unique.
pub(crate) fn validate_channels(channels: &[ChannelDescriptor]) -> Result<(), MConnError> {
    for (i, c) in channels.iter().enumerate() {
        if c.priority == 0 {
            return Err(MConnError::ZeroPriority(c.id));
        }
        if c.send_queue_capacity == 0 {
            return Err(MConnError::ZeroSendQueueCapacity(c.id));
        }
        if channels.iter().take(i).any(|earlier| earlier.id == c.id) {
            return Err(MConnError::DuplicateChannel(c.id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(id: u8, priority: u32) -> ChannelDescriptor {
        ChannelDescriptor {
            id,
            priority,
            send_queue_capacity: 1,
            recv_message_capacity: 100,
        }
    }

    #[test]
    fn default_is_valid_and_cometbft_rate_is_expressible() {
        assert_eq!(MConnConfig::default().validate(), Ok(()));
        let cometbft = MConnConfig {
            send_rate: Some(5_120_000),
            recv_rate: Some(5_120_000),
            flush_throttle: Some(Duration::from_millis(100)),
            ..MConnConfig::default()
        };
        assert_eq!(cometbft.validate(), Ok(()));
    }

    #[test]
    fn bad_settings_are_named() {
        let base = MConnConfig::default();
        let cases = [
            (
                MConnConfig {
                    max_packet_payload_size: 10,
                    ..base.clone()
                },
                "max_packet_payload_size 10",
            ),
            (
                MConnConfig {
                    pong_timeout: Duration::from_secs(60),
                    ..base.clone()
                },
                "pong_timeout",
            ),
            (
                MConnConfig {
                    send_rate: Some(0),
                    ..base.clone()
                },
                "send rate",
            ),
            (
                MConnConfig {
                    flush_throttle: Some(Duration::ZERO),
                    ..base.clone()
                },
                "flush_throttle",
            ),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn channel_lists() {
        assert_eq!(validate_channels(&[desc(1, 1), desc(2, 5)]), Ok(()));
        assert_eq!(
            validate_channels(&[desc(1, 0)]),
            Err(MConnError::ZeroPriority(1))
        );
        assert_eq!(
            validate_channels(&[desc(1, 1), desc(1, 2)]),
            Err(MConnError::DuplicateChannel(1))
        );
        let mut zero_queue = desc(3, 1);
        zero_queue.send_queue_capacity = 0;
        assert_eq!(
            validate_channels(&[zero_queue]),
            Err(MConnError::ZeroSendQueueCapacity(3))
        );
    }
}
