//! [`Outbox`]: the Router's `Send` and `Close` actions for one connection, handed to its
//! `PeerConnection` in the order the Router issued them on each channel. Both drivers and
//! the test harnesses keep one per connection; it is the shared answer to three easy
//! mistakes: closing a connection before the messages queued ahead of the close were
//! handed over, losing a message the connection refused as full, and letting one channel's
//! full queue hold back the messages of every other channel (head-of-line blocking).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::PeerConnection;
use crate::channel_set::ChannelSet;
use crate::mconn::SendError;

/// What one [`Outbox::flush`] handed to the connection: report it with
/// `Router::messages_accepted`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    /// Messages the connection took.
    pub messages: usize,
    /// Their payload bytes.
    pub bytes: usize,
}

impl Taken {
    /// Adds `other` (saturating).
    pub fn add(&mut self, other: Taken) {
        self.messages = self.messages.saturating_add(other.messages);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }

    /// Whether nothing was taken.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }
}

/// Ordered `Send`s and an optional trailing `Close` for one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    messages: VecDeque<(u8, Bytes)>,
    /// Scratch for [`Outbox::flush`] (kept to reuse its allocation).
    kept: VecDeque<(u8, Bytes)>,
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

    /// Hands queued messages to `conn` in order. A message its channel's queue refuses as
    /// full is kept, with every later message of that channel (each channel keeps its
    /// order); other channels go on. Then closes the connection if a close was requested
    /// and nothing is left ahead of it. Returns what the connection took: report it with
    /// `Router::messages_accepted`. Messages a closed connection refuses are dropped (the
    /// Router learns of the close from the connection's `Closed` event).
    pub fn flush(&mut self, now: Instant, conn: &mut PeerConnection) -> Taken {
        let mut taken = Taken::default();
        // Channels whose queue refused a message in this flush.
        let mut full = ChannelSet::default();
        let mut kept = std::mem::take(&mut self.kept);
        while let Some((channel, message)) = self.messages.pop_front() {
            if full.contains(channel) {
                kept.push_back((channel, message));
                continue;
            }
            let len = message.len();
            match conn.send(now, channel, message) {
                Ok(()) => taken.add(Taken {
                    messages: 1,
                    bytes: len,
                }),
                Err(SendError::Full(message)) => {
                    full.insert(channel);
                    kept.push_back((channel, message));
                }
                Err(SendError::UnknownChannel(_) | SendError::Closed) => {}
            }
        }
        // `messages` is empty now: what was kept becomes the queue, in order.
        self.kept = std::mem::replace(&mut self.messages, kept);
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
        active_pair_with(now, capacity, &[0x20])
    }

    /// Two authenticated connections on `channels`, each queue holding `capacity` messages.
    fn active_pair_with(
        now: Instant,
        capacity: usize,
        channels: &[u8],
    ) -> (PeerConnection, PeerConnection) {
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
                channels: channels.to_vec(),
                moniker: "m".into(),
                tx_index: String::new(),
                rpc_address: String::new(),
            };
            let config = PeerConfig {
                channels: channels
                    .iter()
                    .map(|&id| ChannelDescriptor {
                        id,
                        priority: 1,
                        send_queue_capacity: capacity,
                        recv_message_capacity: 1 << 16,
                    })
                    .collect(),
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
    fn a_full_channel_does_not_hold_back_another() {
        let now = epoch();
        let (mut a, _b) = active_pair_with(now, 2, &[0x20, 0x21]);
        let mut outbox = Outbox::new();
        for i in 0..4u8 {
            outbox.push_send(0x20, Bytes::from(vec![i; 10]));
        }
        outbox.push_send(0x21, Bytes::from_static(b"other"));
        // 0x20 takes 2 of its 4; 0x21's message, behind them, still goes.
        assert_eq!(outbox.flush(now, &mut a).messages, 3);
        assert_eq!(outbox.len(), 2);
    }

    #[test]
    fn each_channel_keeps_its_order_across_flushes() {
        let now = epoch();
        let (mut a, mut b) = active_pair_with(now, 1, &[0x20, 0x21]);
        let mut outbox = Outbox::new();
        for i in 0..6u8 {
            outbox.push_send(0x20 + (i % 2), Bytes::from(vec![i; 4]));
        }
        let mut got: Vec<(u8, u8)> = Vec::new();
        for _ in 0..20 {
            outbox.flush(now, &mut a);
            let mut wire = bytes::BytesMut::new();
            while a.poll_transmit(now, &mut wire) {}
            let _ = b.handle_input(now, &wire);
            while let Some(e) = b.poll_event() {
                if let PeerEvent::Message { channel, message } = e {
                    got.push((channel, message[0]));
                }
            }
        }
        let on = |c: u8| -> Vec<u8> { got.iter().filter(|m| m.0 == c).map(|m| m.1).collect() };
        assert_eq!(on(0x20), vec![0, 2, 4]);
        assert_eq!(on(0x21), vec![1, 3, 5]);
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
        assert_eq!(
            outbox.flush(now, &mut a),
            Taken {
                messages: 2,
                bytes: 20
            }
        );
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
