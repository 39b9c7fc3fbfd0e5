//! The FIFO queue: first in, first out, bounded in items and bytes; a full queue drops the
//! newcomer (v0.35 `fifo` rejects the new item).

use std::collections::VecDeque;

use super::{MessageQueue, QueueConfig, QueueError, Queued};

/// First in, first out; when pushing would exceed `max_items` or `max_bytes`, the newcomer
/// is dropped and what is held is kept.
#[derive(Debug)]
pub struct FifoQueue {
    items: VecDeque<Queued>,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl FifoQueue {
    /// A FIFO queue with `config`'s bounds (its kind and channels are not used).
    pub fn new(config: &QueueConfig) -> Result<Self, QueueError> {
        config.validate()?;
        Ok(Self {
            items: VecDeque::new(),
            bytes: 0,
            max_items: config.max_items,
            max_bytes: config.max_bytes,
        })
    }
}

impl MessageQueue for FifoQueue {
    fn push(&mut self, item: Queued) -> Vec<Queued> {
        let fits_items = self.items.len() < self.max_items;
        let new_bytes = self.bytes.checked_add(item.size());
        match new_bytes {
            Some(total) if fits_items && total <= self.max_bytes => {
                self.bytes = total;
                self.items.push_back(item);
                Vec::new()
            }
            _ => {
                tracing::debug!(
                    channel = item.channel,
                    size = item.size(),
                    held_items = self.items.len(),
                    held_bytes = self.bytes,
                    "fifo queue full: dropping the new message"
                );
                vec![item]
            }
        }
    }

    fn pop(&mut self) -> Option<Queued> {
        let item = self.items.pop_front()?;
        self.bytes = self.bytes.saturating_sub(item.size());
        Some(item)
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::queue::QueueKind;

    fn item(channel: u8, size: usize) -> Queued {
        Queued {
            channel,
            message: Bytes::from(vec![channel; size]),
        }
    }

    fn queue(max_items: usize, max_bytes: usize) -> FifoQueue {
        FifoQueue::new(&QueueConfig {
            kind: QueueKind::Fifo,
            max_items,
            max_bytes,
            channels: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn pops_in_push_order() {
        let mut q = queue(10, 1000);
        for c in 0..5 {
            assert!(q.push(item(c, 3)).is_empty());
        }
        let order: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|i| i.channel).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        assert_eq!((q.len(), q.bytes()), (0, 0));
    }

    #[test]
    fn full_in_items_drops_the_newcomer() {
        let mut q = queue(2, 1000);
        assert!(q.push(item(1, 1)).is_empty());
        assert!(q.push(item(2, 1)).is_empty());
        assert_eq!(q.push(item(3, 1)), vec![item(3, 1)]);
        assert_eq!(q.pop(), Some(item(1, 1)));
        assert!(q.push(item(4, 1)).is_empty(), "room again after a pop");
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn full_in_bytes_drops_the_newcomer_but_takes_one_that_fits() {
        let mut q = queue(10, 10);
        assert!(q.push(item(1, 6)).is_empty());
        assert_eq!(q.push(item(2, 5)), vec![item(2, 5)]);
        assert!(
            q.push(item(3, 4)).is_empty(),
            "exactly max_bytes is allowed"
        );
        assert_eq!(q.bytes(), 10);
    }

    /// v0.35 `TestSimpleQueue` in our form: a queue of size 1 flooded with 100 messages
    /// sheds load and keeps at least one.
    #[test]
    fn flooding_a_size_one_queue_keeps_exactly_the_first() {
        let mut q = queue(1, 1000);
        let dropped: usize = (0..100u8).map(|c| q.push(item(c, 1)).len()).sum();
        assert_eq!(dropped, 99);
        assert_eq!(q.pop(), Some(item(0, 1)));
        assert_eq!(q.pop(), None);
    }
}
