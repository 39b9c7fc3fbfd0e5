//! Peer-update subscriptions: each subscriber has its own bounded queue, so updates reach
//! every subscriber in order and are never dropped silently; a subscriber whose queue is
//! full when an update arrives is closed, and reads why after draining what it had.
//!
//! (v0.35.9 sends synchronously on 1-buffered channels, so one slow subscriber stalls the
//! whole peer manager.)

use std::collections::{BTreeMap, VecDeque};

use crate::id::NodeId;

/// What happened to a peer, broadcast to subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// The peer is connected and ready for traffic.
    Up,
    /// The peer, previously up, disconnected.
    Down,
}

/// A peer update, as delivered to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUpdate {
    /// The peer.
    pub node_id: NodeId,
    /// Up or down.
    pub status: PeerStatus,
    /// The channels the peer advertised (set on `Up`, empty on `Down`).
    pub channels: Vec<u16>,
}

/// A subscriber's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(u64);

/// Why a subscription yields no more updates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionClosed {
    /// The subscriber's queue was full (at its capacity) when an update arrived.
    #[error("subscriber fell behind: its queue of {capacity} updates was full")]
    Lagged {
        /// The queue capacity.
        capacity: usize,
    },
    /// The subscriber closed it, or it never existed.
    #[error("no such subscription (closed or never opened)")]
    Unknown,
}

#[derive(Debug, Clone)]
struct Subscriber {
    queue: VecDeque<PeerUpdate>,
    closed: Option<SubscriptionClosed>,
}

/// All subscribers of one peer manager.
#[derive(Debug, Clone)]
pub(super) struct Subscriptions {
    capacity: usize,
    next_id: u64,
    subscribers: BTreeMap<u64, Subscriber>,
}

impl Subscriptions {
    pub(super) fn new(capacity: usize) -> Self {
        Subscriptions {
            capacity,
            next_id: 0,
            subscribers: BTreeMap::new(),
        }
    }

    pub(super) fn subscribe(&mut self) -> SubscriptionId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.subscribers.insert(
            id,
            Subscriber {
                queue: VecDeque::new(),
                closed: None,
            },
        );
        SubscriptionId(id)
    }

    pub(super) fn unsubscribe(&mut self, id: SubscriptionId) {
        self.subscribers.remove(&id.0);
    }

    pub(super) fn broadcast(&mut self, update: &PeerUpdate) {
        for (id, sub) in &mut self.subscribers {
            if sub.closed.is_some() {
                continue;
            }
            if sub.queue.len() >= self.capacity {
                tracing::warn!(
                    subscription = id,
                    capacity = self.capacity,
                    "closing lagging peer-update subscriber"
                );
                sub.closed = Some(SubscriptionClosed::Lagged {
                    capacity: self.capacity,
                });
            } else {
                sub.queue.push_back(update.clone());
            }
        }
    }

    pub(super) fn poll(
        &mut self,
        id: SubscriptionId,
    ) -> Result<Option<PeerUpdate>, SubscriptionClosed> {
        let sub = self
            .subscribers
            .get_mut(&id.0)
            .ok_or(SubscriptionClosed::Unknown)?;
        if let Some(update) = sub.queue.pop_front() {
            return Ok(Some(update));
        }
        match sub.closed.take() {
            Some(reason) => {
                self.subscribers.remove(&id.0);
                Err(reason)
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(n: u8) -> PeerUpdate {
        PeerUpdate {
            node_id: NodeId::from_bytes([n; 20]),
            status: PeerStatus::Up,
            channels: vec![],
        }
    }

    #[test]
    fn a_full_subscriber_is_closed_without_stalling_the_others() {
        let mut subs = Subscriptions::new(2);
        let slow = subs.subscribe();
        let fast = subs.subscribe();
        for n in 0..3 {
            subs.broadcast(&up(n));
            assert_eq!(subs.poll(fast), Ok(Some(up(n))));
        }
        assert_eq!(subs.poll(slow), Ok(Some(up(0))));
        assert_eq!(subs.poll(slow), Ok(Some(up(1))));
        assert_eq!(
            subs.poll(slow),
            Err(SubscriptionClosed::Lagged { capacity: 2 })
        );
        assert_eq!(subs.poll(slow), Err(SubscriptionClosed::Unknown));
        assert_eq!(subs.poll(fast), Ok(None));
    }
}
