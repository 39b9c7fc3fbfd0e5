//! [`Outbox`]: the Router's `Send` and `Close` actions for one connection, handed to its
//! `PeerConnection` in the order the Router issued them. A driver (or a test harness) keeps
//! one per connection; it is the shared answer to two easy mistakes: closing a connection
//! before the messages queued ahead of the close were handed over, and losing a message the
//! connection refused as full.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::PeerConnection;
use crate::mconn::SendError;

/// Ordered `Send`s and an optional trailing `Close` for one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    messages: VecDeque<(u8, Bytes)>,
    close_requested: bool,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// A `RouterAction::Send` for this connection.
    pub fn push_send(&mut self, channel: u8, message: Bytes) {
        self.messages.push_back((channel, message));
    }

    /// A `RouterAction::Close` for this connection: it takes effect once every message
    /// queued before it has been handed over.
    pub fn request_close(&mut self) {
        self.close_requested = true;
    }

    /// Hands queued messages to `conn` in order until it refuses one as full (that one is
    /// kept for the next call), then closes the connection if a close was requested and
    /// nothing is left ahead of it. Returns how many messages the connection took: report
    /// each with `Router::message_accepted`. Messages a closed connection refuses are
    /// dropped (the Router learns of the close from the connection's `Closed` event).
    pub fn flush(&mut self, now: Instant, conn: &mut PeerConnection) -> usize {
        let mut taken = 0;
        while let Some((channel, message)) = self.messages.pop_front() {
            match conn.send(now, channel, message) {
                Ok(()) => taken += 1,
                Err(SendError::Full(message)) => {
                    self.messages.push_front((channel, message));
                    break;
                }
                Err(SendError::UnknownChannel(_) | SendError::Closed) => {}
            }
        }
        if self.close_requested && self.messages.is_empty() {
            self.close_requested = false;
            conn.close();
        }
        taken
    }

    /// Messages waiting to be handed over.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing is waiting (no message and no pending close).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && !self.close_requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Direction, PeerConfig, PeerEvent};
    use crate::key::NodeKey;
    use crate::mconn::ChannelDescriptor;
    use crate::node_info::{NodeInfo, ProtocolVersions};
    use crate::test_clock::epoch;
    use rand_chacha::rand_core::SeedableRng;

    /// Two authenticated connections whose channel 0x20 queues hold `capacity` messages.
    fn active_pair(now: Instant, capacity: usize) -> (PeerConnection, PeerConnection) {
        let make = |seed: u8| {
            let key = NodeKey::from_seed([seed; 32]);
            let info = NodeInfo {
                protocol_version: ProtocolVersions {
                    p2p: 8,
                    block: 11,
                    app: 0,
                },
                node_id: key.node_id(),
                listen_addr: "tcp://127.0.0.1:26656".into(),
                network: "net".into(),
                version: "1".into(),
                channels: vec![0x20],
                moniker: "m".into(),
                tx_index: String::new(),
                rpc_address: String::new(),
            };
            let config = PeerConfig {
                channels: vec![ChannelDescriptor {
                    id: 0x20,
                    priority: 1,
                    send_queue_capacity: capacity,
                    recv_message_capacity: 1 << 16,
                }],
                ..PeerConfig::default()
            };
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(seed));
            PeerConnection::new(now, &key, info, Direction::Inbound, config, &mut rng)
        };
        let (mut a, mut b) = (make(1), make(2));
        for _ in 0..4 {
            for flip in [false, true] {
                let (from, to) = if flip {
                    (&mut b, &mut a)
                } else {
                    (&mut a, &mut b)
                };
                let mut wire = bytes::BytesMut::new();
                while from.poll_transmit(now, &mut wire) {}
                let _ = to.handle_input(now, &wire);
            }
        }
        assert!(a.is_active() && b.is_active());
        (a, b)
    }

    #[test]
    fn a_close_waits_for_the_messages_queued_before_it() {
        let now = epoch();
        let (mut a, mut b) = active_pair(now, 2);
        let mut outbox = Outbox::new();
        for i in 0..5u8 {
            outbox.push_send(0x20, Bytes::from(vec![i; 10]));
        }
        outbox.request_close();
        // The channel queue holds 2: the rest waits, and the close with it.
        assert_eq!(outbox.flush(now, &mut a), 2);
        assert!(!a.is_closed() && !outbox.is_empty());
        let mut delivered = 0;
        for _ in 0..10 {
            let mut wire = bytes::BytesMut::new();
            while a.poll_transmit(now, &mut wire) {}
            let _ = b.handle_input(now, &wire);
            while let Some(e) = b.poll_event() {
                delivered += usize::from(matches!(e, PeerEvent::Message { .. }));
            }
            outbox.flush(now, &mut a);
        }
        assert_eq!(
            delivered, 5,
            "every message queued before the close went out"
        );
        assert!(a.is_closed() && outbox.is_empty());
    }
}
