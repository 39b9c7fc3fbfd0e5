//! The priority queue: highest channel priority first, FIFO within a priority, bounded in
//! items and bytes, shedding the lowest priorities first when full.
//!
//! Drop policy when a push would exceed a bound:
//! 1. If evicting messages of strictly lower priority than the newcomer can make room,
//!    evict them starting from the lowest priority present and, within a priority, from the
//!    newest (the message that a FIFO of that priority would have refused last), just
//!    enough of them; then hold the newcomer.
//! 2. Otherwise drop the newcomer and evict nothing: a message is never evicted in vain,
//!    and a newcomer never displaces a message of its own or a higher priority.
//!
//! The byte total goes down on every pop and every eviction (v0.35's pqScheduler forgot the
//! evictions, protocol.md §6.7, and stayed "full" forever).

use std::collections::{BTreeMap, VecDeque};

use super::{MessageQueue, QosTable, QueueConfig, QueueError, Queued};

/// Highest priority first (FIFO within a priority); when full, lower priorities make room
/// for a higher-priority newcomer, else the newcomer is dropped. See the module docs.
#[derive(Debug)]
pub struct PriorityQueue {
    qos: QosTable,
    /// Held messages by priority; no level is ever left empty.
    levels: BTreeMap<u32, VecDeque<Queued>>,
    len: usize,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl PriorityQueue {
    /// A priority queue with `config`'s bounds and channel priorities.
    pub fn new(config: &QueueConfig) -> Result<Self, QueueError> {
        config.validate()?;
        Ok(Self {
            qos: QosTable::new(&config.channels),
            levels: BTreeMap::new(),
            len: 0,
            bytes: 0,
            max_items: config.max_items,
            max_bytes: config.max_bytes,
        })
    }

    /// How many messages, taken lowest priority first and newest first within a priority,
    /// among those of priority below `priority`, must go to free `items` items and `bytes`
    /// bytes; `None` if even all of them would not be enough.
    fn victims_needed(&self, priority: u32, items: usize, bytes: usize) -> Option<usize> {
        let (mut freed_items, mut freed_bytes, mut count) = (0usize, 0usize, 0usize);
        if items == 0 && bytes == 0 {
            return Some(0);
        }
        for queue in self.levels.range(..priority).map(|(_, q)| q) {
            for victim in queue.iter().rev() {
                freed_items = freed_items.saturating_add(1);
                freed_bytes = freed_bytes.saturating_add(victim.size());
                count = count.saturating_add(1);
                if freed_items >= items && freed_bytes >= bytes {
                    return Some(count);
                }
            }
        }
        None
    }

    /// Removes the newest message of the lowest priority.
    fn evict_one(&mut self) -> Option<Queued> {
        let mut level = self.levels.first_entry()?;
        let victim = level.get_mut().pop_back();
        if level.get().is_empty() {
            level.remove();
        }
        let victim = victim?;
        self.len = self.len.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(victim.size());
        Some(victim)
    }

    fn hold(&mut self, priority: u32, item: Queued) {
        self.len = self.len.saturating_add(1);
        self.bytes = self.bytes.saturating_add(item.size());
        self.levels.entry(priority).or_default().push_back(item);
    }
}

impl MessageQueue for PriorityQueue {
    fn push(&mut self, item: Queued) -> Vec<Queued> {
        let size = item.size();
        if size > self.max_bytes {
            tracing::debug!(
                channel = item.channel,
                size,
                max_bytes = self.max_bytes,
                "message larger than the queue's byte bound: dropped"
            );
            return vec![item];
        }
        let priority = self.qos.get(item.channel).priority;
        let items_over = self.len.saturating_add(1).saturating_sub(self.max_items);
        let bytes_over = self
            .bytes
            .saturating_add(size)
            .saturating_sub(self.max_bytes);
        let Some(count) = self.victims_needed(priority, items_over, bytes_over) else {
            tracing::debug!(
                channel = item.channel,
                priority,
                size,
                held_items = self.len,
                held_bytes = self.bytes,
                "priority queue full of equal or higher priorities: dropping the new message"
            );
            return vec![item];
        };
        let mut dropped = Vec::with_capacity(count);
        for _ in 0..count {
            if let Some(victim) = self.evict_one() {
                dropped.push(victim);
            }
        }
        if !dropped.is_empty() {
            tracing::debug!(
                channel = item.channel,
                priority,
                evicted = dropped.len(),
                "priority queue full: evicted lower-priority messages"
            );
        }
        self.hold(priority, item);
        dropped
    }

    fn pop(&mut self) -> Option<Queued> {
        let mut level = self.levels.last_entry()?;
        let item = level.get_mut().pop_front();
        if level.get().is_empty() {
            level.remove();
        }
        let item = item?;
        self.len = self.len.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(item.size());
        Some(item)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::queue::{ChannelQos, QueueKind};

    /// Channel c has priority c for c in 1..=3; channel 9 is unconfigured (priority 1).
    fn queue(max_items: usize, max_bytes: usize) -> PriorityQueue {
        PriorityQueue::new(&QueueConfig {
            kind: QueueKind::Priority,
            max_items,
            max_bytes,
            channels: (1..=3)
                .map(|c| ChannelQos {
                    channel: c,
                    priority: u32::from(c),
                    weight: 1,
                })
                .collect(),
        })
        .unwrap()
    }

    /// A message on `channel` whose payload is `tag` repeated `size` times.
    fn item(channel: u8, tag: u8, size: usize) -> Queued {
        Queued {
            channel,
            message: Bytes::from(vec![tag; size]),
        }
    }

    fn drain(q: &mut PriorityQueue) -> Vec<(u8, u8)> {
        std::iter::from_fn(|| q.pop())
            .map(|i| (i.channel, i.message.first().copied().unwrap_or(0)))
            .collect()
    }

    #[test]
    fn pops_highest_priority_first_and_fifo_within_a_priority() {
        let mut q = queue(100, 1000);
        for (channel, tag) in [(1, 0), (3, 1), (2, 2), (3, 3), (9, 4), (1, 5), (2, 6)] {
            assert!(q.push(item(channel, tag, 1)).is_empty());
        }
        assert_eq!(
            drain(&mut q),
            vec![(3, 1), (3, 3), (2, 2), (2, 6), (1, 0), (9, 4), (1, 5)],
            "unknown channel 9 shares priority 1 with channel 1, in arrival order"
        );
        assert_eq!((q.len(), q.bytes()), (0, 0));
        assert!(q.levels.is_empty());
    }

    #[test]
    fn full_evicts_the_newest_of_the_lowest_priority() {
        let mut q = queue(3, 1000);
        assert!(q.push(item(1, 10, 1)).is_empty());
        assert!(q.push(item(2, 20, 1)).is_empty());
        assert!(q.push(item(1, 11, 1)).is_empty());
        assert_eq!(q.push(item(3, 30, 1)), vec![item(1, 11, 1)]);
        assert_eq!(q.push(item(3, 31, 1)), vec![item(1, 10, 1)]);
        assert_eq!(q.push(item(3, 32, 1)), vec![item(2, 20, 1)]);
        assert_eq!(drain(&mut q), vec![(3, 30), (3, 31), (3, 32)]);
    }

    #[test]
    fn full_of_equal_or_higher_priority_drops_the_newcomer() {
        let mut q = queue(2, 1000);
        assert!(q.push(item(2, 0, 1)).is_empty());
        assert!(q.push(item(3, 1, 1)).is_empty());
        assert_eq!(q.push(item(2, 2, 1)), vec![item(2, 2, 1)]);
        assert_eq!(q.push(item(1, 3, 1)), vec![item(1, 3, 1)]);
        assert_eq!(drain(&mut q), vec![(3, 1), (2, 0)]);
    }

    #[test]
    fn evicts_just_enough_bytes_for_the_newcomer() {
        let mut q = queue(100, 100);
        for tag in 0..10 {
            assert!(q.push(item(1, tag, 10)).is_empty());
        }
        let dropped = q.push(item(3, 99, 25));
        assert_eq!(
            dropped,
            vec![item(1, 9, 10), item(1, 8, 10), item(1, 7, 10)]
        );
        assert_eq!((q.len(), q.bytes()), (8, 95));
    }

    #[test]
    fn never_evicts_in_vain() {
        let mut q = queue(100, 100);
        assert!(q.push(item(1, 0, 30)).is_empty());
        assert!(q.push(item(3, 1, 60)).is_empty());
        // 50 more bytes are needed past the 10 free; only 30 are of lower priority.
        assert_eq!(q.push(item(2, 2, 60)), vec![item(2, 2, 60)]);
        assert_eq!((q.len(), q.bytes()), (2, 90));
        assert_eq!(drain(&mut q), vec![(3, 1), (1, 0)]);
    }

    /// v0.35's pqScheduler never subtracted evicted bytes and stayed "full" for good.
    #[test]
    fn byte_total_goes_down_after_evictions() {
        let mut q = queue(1000, 100);
        for tag in 0..10 {
            assert!(q.push(item(1, tag, 10)).is_empty());
        }
        for tag in 0..10 {
            assert_eq!(q.push(item(2, tag, 10)).len(), 1);
        }
        assert_eq!(q.bytes(), 100);
        for _ in 0..5 {
            q.pop();
        }
        assert_eq!(q.bytes(), 50);
        // A low-priority message fits again without evicting anything.
        assert!(q.push(item(1, 50, 50)).is_empty());
        assert_eq!(q.bytes(), 100);
    }
}
