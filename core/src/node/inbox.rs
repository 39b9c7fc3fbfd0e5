//! [`Inbox`]: the received messages of one connection that wait for the application, and
//! the one inbound flow-control rule every driver follows.
//!
//! The rule: a full application channel holds back only its own messages. The connection
//! goes on reading (pings and pongs keep flowing, so a slow reactor does not make it time
//! out) and delivering the other channels' messages, while what waits for the full channel
//! stays here. Only when more than the hold budget (`NodeConfig::inbound_hold_bytes`)
//! waits does the connection stop reading its socket, which pushes back on that one peer
//! through TCP; the node's other connections go on.
//!
//! Order: each channel's messages leave in arrival order; channels with messages take
//! turns, so a busy channel does not starve a quiet one.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

/// Held messages, one FIFO per channel (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queues: BTreeMap<u8, VecDeque<Bytes>>,
    /// Channels with messages whose receiver is not known to be full, in turn order. A
    /// channel is listed at most once.
    ready: VecDeque<u8>,
    /// Channels whose receiver refused a message, as a bit set over ids 0..=255.
    full: [u64; 4],
    held_messages: usize,
    held_bytes: usize,
}

impl Inbox {
    /// Holds a received message.
    pub(crate) fn push(&mut self, channel: u8, message: Bytes) {
        self.held_bytes = self.held_bytes.saturating_add(message.len());
        self.held_messages = self.held_messages.saturating_add(1);
        let queue = self.queues.entry(channel).or_default();
        let was_empty = queue.is_empty();
        queue.push_back(message);
        if was_empty && !self.is_full(channel) {
            self.ready.push_back(channel);
        }
    }

    /// The next message whose channel has room, in turn.
    pub(crate) fn pop(&mut self) -> Option<(u8, Bytes)> {
        let channel = self.ready.pop_front()?;
        let queue = self.queues.get_mut(&channel)?;
        let message = queue.pop_front()?;
        if !queue.is_empty() {
            self.ready.push_back(channel);
        }
        self.held_bytes = self.held_bytes.saturating_sub(message.len());
        self.held_messages = self.held_messages.saturating_sub(1);
        Some((channel, message))
    }

    /// The receiver of `channel` is full: `message` (just popped) goes back to the front
    /// and the channel waits for [`Inbox::has_room`].
    pub(crate) fn refused(&mut self, channel: u8, message: Bytes) {
        self.mark_full(channel);
        self.held_bytes = self.held_bytes.saturating_add(message.len());
        self.held_messages = self.held_messages.saturating_add(1);
        self.queues.entry(channel).or_default().push_front(message);
    }

    /// The receiver of `channel` is full: its messages wait for [`Inbox::has_room`].
    pub(crate) fn mark_full(&mut self, channel: u8) {
        self.set_full(channel, true);
        self.ready.retain(|&c| c != channel);
    }

    /// The receiver of `channel` has room again.
    pub(crate) fn has_room(&mut self, channel: u8) {
        if !self.is_full(channel) {
            return;
        }
        self.set_full(channel, false);
        if self.queues.get(&channel).is_some_and(|q| !q.is_empty()) {
            self.ready.push_back(channel);
        }
    }

    /// Removes and returns every held message of `channel` (messages for the node
    /// machine rather than the application).
    pub(crate) fn take_channel(&mut self, channel: u8) -> VecDeque<Bytes> {
        let taken = self.queues.remove(&channel).unwrap_or_default();
        self.ready.retain(|&c| c != channel);
        let bytes = taken.iter().map(Bytes::len).sum::<usize>();
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
        self.held_messages = self.held_messages.saturating_sub(taken.len());
        taken
    }

    /// Calls `f` with the channel and size of every held message.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u8, usize)) {
        for (&channel, queue) in &self.queues {
            queue.iter().for_each(|m| f(channel, m.len()));
        }
    }

    /// Drops everything; returns how many messages that was.
    pub(crate) fn clear(&mut self) -> usize {
        let dropped = self.held_messages;
        *self = Inbox::default();
        dropped
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.held_messages == 0
    }

    /// Whether a channel's receiver is marked full (its driver may hold a message for it).
    pub(crate) fn any_full(&self) -> bool {
        self.full.iter().any(|w| *w != 0)
    }

    /// Whether a message could leave now.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Payload bytes held.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Messages held.
    pub(crate) fn held_messages(&self) -> usize {
        self.held_messages
    }

    fn is_full(&self, channel: u8) -> bool {
        let (word, bit) = (usize::from(channel / 64), channel % 64);
        self.full.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn set_full(&mut self, channel: u8, full: bool) {
        let (word, bit) = (usize::from(channel / 64), channel % 64);
        if let Some(w) = self.full.get_mut(word) {
            if full {
                *w |= 1 << bit;
            } else {
                *w &= !(1 << bit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn channels_take_turns_and_keep_their_order() {
        let mut inbox = Inbox::default();
        for (channel, text) in [(1, "a1"), (1, "a2"), (1, "a3"), (2, "b1"), (2, "b2")] {
            inbox.push(channel, m(text));
        }
        assert_eq!(inbox.held_messages(), 5);
        assert_eq!(inbox.held_bytes(), 10);
        let order: Vec<_> = std::iter::from_fn(|| inbox.pop()).collect();
        let expected = [(1, "a1"), (2, "b1"), (1, "a2"), (2, "b2"), (1, "a3")];
        assert_eq!(order, expected.map(|(c, t)| (c, m(t))).to_vec());
        assert!(inbox.is_empty());
        assert_eq!(inbox.held_bytes(), 0);
    }

    #[test]
    fn a_full_channel_holds_only_its_own_messages() {
        let mut inbox = Inbox::default();
        inbox.push(1, m("a1"));
        inbox.push(1, m("a2"));
        inbox.push(2, m("b1"));
        let (channel, first) = inbox.pop().unwrap();
        inbox.refused(channel, first);
        inbox.push(1, m("a3"));
        inbox.push(2, m("b2"));
        assert_eq!(inbox.pop(), Some((2, m("b1"))));
        assert_eq!(inbox.pop(), Some((2, m("b2"))));
        assert_eq!(inbox.pop(), None, "channel 1 waits for room");
        assert!(!inbox.has_ready());
        assert_eq!(inbox.held_messages(), 3);
        inbox.has_room(1);
        inbox.has_room(1);
        let rest: Vec<_> = std::iter::from_fn(|| inbox.pop()).collect();
        assert_eq!(rest, vec![(1, m("a1")), (1, m("a2")), (1, m("a3"))]);
    }

    #[test]
    fn taking_a_channel_and_clearing_keep_the_totals_right() {
        let mut inbox = Inbox::default();
        inbox.push(0, m("pex"));
        inbox.push(7, m("app"));
        inbox.push(0, m("pex2"));
        assert_eq!(inbox.take_channel(0), VecDeque::from([m("pex"), m("pex2")]));
        assert_eq!(inbox.held_bytes(), 3);
        assert_eq!(inbox.pop(), Some((7, m("app"))));
        assert_eq!(inbox.pop(), None);
        inbox.push(255, m("x"));
        let (c, x) = inbox.pop().unwrap();
        inbox.refused(c, x);
        assert_eq!(inbox.clear(), 1);
        assert!(inbox.is_empty());
        inbox.push(255, m("y"));
        assert_eq!(
            inbox.pop(),
            Some((255, m("y"))),
            "clear forgets full channels"
        );
    }
}
