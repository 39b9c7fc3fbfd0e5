//! What one connection holds for its backpressure channels: per channel a FIFO bounded by
//! a [`SendWindow`], which never drops anything. A send that does not fit is refused (the
//! caller waits), and the channel is marked so the Router announces when it has room again.
//!
//! Channels take turns (round robin) when the connection's credit lets messages through:
//! a flood on one channel never starves another. Priorities between channels are the
//! MConnection's job, which interleaves what it was handed by channel priority.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::window::{SendWindow, WindowLimits};

#[derive(Debug, Default)]
struct HeldChannel {
    queue: VecDeque<Bytes>,
    window: SendWindow,
}

/// A message leaving [`Held`] for the connection.
pub(super) struct Popped {
    pub(super) channel: u8,
    pub(super) message: Bytes,
    /// The channel refused a send earlier and has room again.
    pub(super) writable: bool,
}

/// One connection's backpressure queues (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Held {
    channels: BTreeMap<u8, HeldChannel>,
    /// The channel popped last: the next pop starts after it.
    cursor: u8,
    messages: usize,
}

impl Held {
    /// Queues `message` on `channel`, or hands it back when the channel's window is full.
    pub(super) fn try_push(
        &mut self,
        channel: u8,
        message: Bytes,
        limits: WindowLimits,
    ) -> Result<(), Bytes> {
        let entry = self.channels.entry(channel).or_default();
        if !entry.window.try_add(limits, message.len()) {
            return Err(message);
        }
        entry.queue.push_back(message);
        self.messages = self.messages.saturating_add(1);
        Ok(())
    }

    /// The next message, channels taking turns.
    pub(super) fn pop(&mut self, limits: WindowLimits) -> Option<Popped> {
        if self.messages == 0 {
            return None;
        }
        let after = self.cursor;
        let channel = self
            .channels
            .range(after.saturating_add(1)..)
            .chain(self.channels.range(..=after))
            .find(|(_, held)| !held.queue.is_empty())
            .map(|(channel, _)| *channel)?;
        let held = self.channels.get_mut(&channel)?;
        let message = held.queue.pop_front()?;
        let writable = held.window.remove(limits, message.len());
        self.cursor = channel;
        self.messages = self.messages.saturating_sub(1);
        Some(Popped {
            channel,
            message,
            writable,
        })
    }

    /// Messages held.
    pub(super) fn len(&self) -> usize {
        self.messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WindowLimits = WindowLimits {
        messages: 2,
        bytes: 1_000,
    };

    fn msg(n: u8) -> Bytes {
        Bytes::from(vec![n; 10])
    }

    #[test]
    fn a_full_channel_refuses_and_announces_room_once_popped() {
        let mut held = Held::default();
        held.try_push(1, msg(1), LIMITS).unwrap();
        held.try_push(1, msg(2), LIMITS).unwrap();
        assert_eq!(held.try_push(1, msg(3), LIMITS), Err(msg(3)));
        // Another channel is not affected by the full one.
        held.try_push(2, msg(9), LIMITS).unwrap();
        let first = held.pop(LIMITS).unwrap();
        assert_eq!((first.channel, first.message.clone()), (1, msg(1)));
        assert!(first.writable, "channel 1 refused a send and has room now");
        let second = held.pop(LIMITS).unwrap();
        assert_eq!((second.channel, second.writable), (2, false));
        let third = held.pop(LIMITS).unwrap();
        assert_eq!(
            (third.channel, third.message, third.writable),
            (1, msg(2), false)
        );
        assert!(held.pop(LIMITS).is_none());
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn channels_take_turns() {
        let limits = WindowLimits {
            messages: 10,
            bytes: 1_000,
        };
        let mut held = Held::default();
        for n in 0..3 {
            held.try_push(5, msg(n), limits).unwrap();
            held.try_push(7, msg(n), limits).unwrap();
        }
        let order: Vec<u8> = std::iter::from_fn(|| held.pop(limits).map(|p| p.channel)).collect();
        assert_eq!(order, vec![5, 7, 5, 7, 5, 7]);
    }
}
