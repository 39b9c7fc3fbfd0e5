//! Outbound QoS queues: where messages wait for a connection (ADR 062 "load shedding is
//! centralized in a core queue"; protocol.md §6.7).
//!
//! Three policies sit behind one trait, [`MessageQueue`], built by [`new_queue`] from a
//! [`QueueConfig`]:
//!
//! - [`QueueKind::Fifo`] ([`FifoQueue`]): first in, first out; a full queue drops the
//!   newcomer (v0.35 `fifo` rejects the new item).
//! - [`QueueKind::Priority`] ([`PriorityQueue`]): highest channel priority first, FIFO within
//!   a priority; when full it evicts lower-priority messages to make room for a
//!   higher-priority newcomer, else drops the newcomer.
//! - [`QueueKind::Wdrr`] ([`WdrrQueue`]): weighted deficit round robin over per-channel
//!   sub-queues, quantum = weight × [`DEFAULT_WDRR_QUANTUM_UNIT`] (or a unit of the
//!   caller's choosing through [`WdrrQueue::with_quantum_unit`]); when full it evicts from
//!   the channel holding the most bytes relative to its weight.
//!
//! Every queue is bounded both in items (`max_items`) and in payload bytes (`max_bytes`) and
//! never grows past either: `push` returns what it dropped instead. A message whose payload
//! alone exceeds `max_bytes` is dropped at once. A channel that is not in
//! [`QueueConfig::channels`] is treated as priority 1 and weight 1
//! ([`ChannelQos::fallback`]).
//!
//! Unlike v0.35's channel-backed queues these are plain owned data: the router pushes and
//! pops; there is no internal buffer or goroutine in between, so a message is held in
//! exactly one place until popped. Go's pqScheduler quirks (§6.7: byte total not reduced on
//! eviction, `sizes[p]` mostly unmaintained) are deliberately not reproduced.

mod fifo;
mod priority;
mod wdrr;

pub use fifo::FifoQueue;
pub use priority::PriorityQueue;
pub use wdrr::{WdrrQueue, DEFAULT_WDRR_QUANTUM_UNIT};

use std::collections::BTreeSet;

use bytes::Bytes;

/// One outbound message waiting for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The channel the message is sent on.
    pub channel: u8,
    /// The encoded message; its length is what the byte bound counts.
    pub message: Bytes,
}

impl Queued {
    /// Payload bytes this item counts against a queue's byte bound.
    pub fn size(&self) -> usize {
        self.message.len()
    }
}

/// Per-channel QoS parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelQos {
    /// The channel these parameters apply to.
    pub channel: u8,
    /// Scheduling priority, greater than 0; higher is more important.
    pub priority: u32,
    /// WDRR weight, greater than 0: the channel's quantum is `weight` × the quantum unit.
    pub weight: u32,
}

impl ChannelQos {
    /// The parameters used for a channel that is not in the configuration: priority 1
    /// and weight 1, the least any configured channel can have.
    pub fn fallback(channel: u8) -> Self {
        Self {
            channel,
            priority: 1,
            weight: 1,
        }
    }
}

/// Which policy a queue applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueKind {
    /// First in, first out; a full queue drops the newcomer.
    #[default]
    Fifo,
    /// Highest priority first; a full queue evicts lower priorities for a higher newcomer.
    Priority,
    /// Weighted deficit round robin over per-channel sub-queues.
    Wdrr,
}

/// How to build a queue: its policy, its bounds and the per-channel parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// The policy.
    pub kind: QueueKind,
    /// The most items the queue holds at once (> 0).
    pub max_items: usize,
    /// The most payload bytes the queue holds at once (> 0).
    pub max_bytes: usize,
    /// Per-channel priority and weight; each channel at most once.
    pub channels: Vec<ChannelQos>,
}

/// Why a queue configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// `max_items` is 0: the queue could hold nothing.
    #[error("queue max_items is 0: it must be at least 1")]
    ZeroMaxItems,
    /// `max_bytes` is 0: the queue could hold no payload.
    #[error("queue max_bytes is 0: it must be at least 1")]
    ZeroMaxBytes,
    /// A channel appears more than once in `channels`.
    #[error("channel {channel:#04x} is configured more than once")]
    DuplicateChannel {
        /// The repeated channel.
        channel: u8,
    },
    /// A channel has priority 0.
    #[error("channel {channel:#04x} has priority 0: it must be at least 1")]
    ZeroPriority {
        /// The channel.
        channel: u8,
    },
    /// A channel has weight 0.
    #[error("channel {channel:#04x} has weight 0: it must be at least 1")]
    ZeroWeight {
        /// The channel.
        channel: u8,
    },
    /// The WDRR quantum unit is 0: no channel could ever send.
    #[error("WDRR quantum unit is 0: it must be at least 1 byte")]
    ZeroQuantumUnit,
}

impl QueueConfig {
    /// Checks the bounds (both > 0) and the channel list (no duplicates, priority and
    /// weight > 0).
    pub fn validate(&self) -> Result<(), QueueError> {
        if self.max_items == 0 {
            return Err(QueueError::ZeroMaxItems);
        }
        if self.max_bytes == 0 {
            return Err(QueueError::ZeroMaxBytes);
        }
        let mut seen = BTreeSet::new();
        for qos in &self.channels {
            if !seen.insert(qos.channel) {
                return Err(QueueError::DuplicateChannel {
                    channel: qos.channel,
                });
            }
            if qos.priority == 0 {
                return Err(QueueError::ZeroPriority {
                    channel: qos.channel,
                });
            }
            if qos.weight == 0 {
                return Err(QueueError::ZeroWeight {
                    channel: qos.channel,
                });
            }
        }
        Ok(())
    }
}

/// A bounded outbound queue: bounded in items AND bytes, never grows without bound.
pub trait MessageQueue: Send + std::fmt::Debug {
    /// Enqueues `item`, dropping by the queue's policy to stay within bounds; returns
    /// whatever was dropped (possibly `item` itself; empty when nothing was dropped).
    fn push(&mut self, item: Queued) -> Vec<Queued>;
    /// The next item by the queue's policy.
    fn pop(&mut self) -> Option<Queued>;
    /// Items currently held.
    fn len(&self) -> usize;
    /// Whether no item is held.
    fn is_empty(&self) -> bool;
    /// Bytes of message payload currently held.
    fn bytes(&self) -> usize;
}

/// Builds the queue `config` describes, after [`QueueConfig::validate`].
pub fn new_queue(config: &QueueConfig) -> Result<Box<dyn MessageQueue>, QueueError> {
    Ok(match config.kind {
        QueueKind::Fifo => Box::new(FifoQueue::new(config)?),
        QueueKind::Priority => Box::new(PriorityQueue::new(config)?),
        QueueKind::Wdrr => Box::new(WdrrQueue::new(config)?),
    })
}

/// Per-channel parameters looked up by channel id, with [`ChannelQos::fallback`] for
/// channels the configuration does not name.
#[derive(Debug, Clone)]
struct QosTable {
    by_channel: Box<[ChannelQos; 256]>,
}

impl QosTable {
    #[allow(clippy::indexing_slicing)] // a [_; 256] indexed by a u8 cannot go out of bounds
    fn new(channels: &[ChannelQos]) -> Self {
        let mut by_channel = Box::new(std::array::from_fn(|i| {
            ChannelQos::fallback(u8::try_from(i).unwrap_or(u8::MAX))
        }));
        for qos in channels {
            by_channel[usize::from(qos.channel)] = *qos;
        }
        Self { by_channel }
    }

    #[allow(clippy::indexing_slicing)] // a [_; 256] indexed by a u8 cannot go out of bounds
    fn get(&self, channel: u8) -> ChannelQos {
        self.by_channel[usize::from(channel)]
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: QueueKind) -> QueueConfig {
        QueueConfig {
            kind,
            max_items: 4,
            max_bytes: 100,
            channels: vec![
                ChannelQos {
                    channel: 1,
                    priority: 2,
                    weight: 3,
                },
                ChannelQos {
                    channel: 2,
                    priority: 1,
                    weight: 1,
                },
            ],
        }
    }

    #[test]
    fn validate_accepts_a_sane_config() {
        assert_eq!(config(QueueKind::Wdrr).validate(), Ok(()));
    }

    #[test]
    fn validate_refuses_zero_bounds() {
        let mut c = config(QueueKind::Fifo);
        c.max_items = 0;
        assert_eq!(c.validate(), Err(QueueError::ZeroMaxItems));
        let mut c = config(QueueKind::Fifo);
        c.max_bytes = 0;
        assert_eq!(c.validate(), Err(QueueError::ZeroMaxBytes));
    }

    #[test]
    fn validate_refuses_bad_channels() {
        let mut c = config(QueueKind::Priority);
        c.channels.push(ChannelQos {
            channel: 1,
            priority: 5,
            weight: 5,
        });
        assert_eq!(
            c.validate(),
            Err(QueueError::DuplicateChannel { channel: 1 })
        );
        let mut c = config(QueueKind::Priority);
        c.channels[1].priority = 0;
        assert_eq!(c.validate(), Err(QueueError::ZeroPriority { channel: 2 }));
        let mut c = config(QueueKind::Priority);
        c.channels[0].weight = 0;
        assert_eq!(c.validate(), Err(QueueError::ZeroWeight { channel: 1 }));
    }

    #[test]
    fn new_queue_refuses_an_invalid_config_for_every_kind() {
        for kind in [QueueKind::Fifo, QueueKind::Priority, QueueKind::Wdrr] {
            let mut c = config(kind);
            c.max_bytes = 0;
            assert_eq!(new_queue(&c).err(), Some(QueueError::ZeroMaxBytes));
        }
    }

    #[test]
    fn default_kind_is_fifo() {
        assert_eq!(QueueKind::default(), QueueKind::Fifo);
    }

    #[test]
    fn every_kind_drops_an_item_larger_than_max_bytes_at_once() {
        for kind in [QueueKind::Fifo, QueueKind::Priority, QueueKind::Wdrr] {
            let mut q = new_queue(&config(kind)).unwrap();
            let small = Queued {
                channel: 2,
                message: Bytes::from(vec![0; 10]),
            };
            assert!(q.push(small.clone()).is_empty());
            let huge = Queued {
                channel: 1,
                message: Bytes::from(vec![1; 101]),
            };
            assert_eq!(q.push(huge.clone()), vec![huge], "{kind:?}");
            assert_eq!((q.len(), q.bytes()), (1, 10), "{kind:?}");
            assert_eq!(q.pop(), Some(small), "{kind:?}");
            assert!(q.is_empty());
        }
    }

    #[test]
    fn unknown_channels_get_the_fallback() {
        let table = QosTable::new(&config(QueueKind::Fifo).channels);
        assert_eq!(table.get(7), ChannelQos::fallback(7));
        assert_eq!(table.get(1).weight, 3);
        assert_eq!(table.get(255).channel, 255);
    }
}
