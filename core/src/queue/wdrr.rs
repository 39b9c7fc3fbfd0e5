//! The weighted deficit round robin queue: one FIFO lane per channel, served in rounds so
//! that, while lanes stay busy, each lane's share of the popped bytes converges to its
//! share of the weights.
//!
//! Scheduling: lanes are visited in a fixed order (configured channels by descending
//! priority, then configuration order; unconfigured channels, weight 1, after them in order
//! of first use). On each visit a non-empty lane gets its quantum (`weight` × the quantum
//! unit) added to its deficit and sends head messages while the head fits in the deficit;
//! a lane that empties forgets its deficit. Rounds in which no lane could send are skipped
//! arithmetically, so a large message under a small quantum costs O(lanes), not O(size).
//!
//! Drop policy when a push would exceed a bound ("fairest victim"): the lane holding the
//! most bytes relative to its weight (counting the newcomer in its own lane) loses its
//! newest message, repeatedly, until the newcomer fits; if that lane is the newcomer's own
//! (ties go to it), the newcomer is dropped instead and nothing is evicted. Victims are
//! planned before anything is removed, so nothing is ever evicted in vain, and a channel
//! flooding the queue sheds its own messages rather than everyone else's.

use std::collections::VecDeque;

use super::{MessageQueue, QosTable, QueueConfig, QueueError, Queued};

/// The default quantum unit in bytes: one MConnection packet payload (1024 B), so a weight
/// 1 channel sends about one full packet per round (v0.35 used `MaxSendBytes × priority`).
pub const DEFAULT_WDRR_QUANTUM_UNIT: u32 = 1024;

/// One channel's FIFO and its round robin state.
#[derive(Debug)]
struct Lane {
    weight: u32,
    quantum: u64,
    items: VecDeque<Queued>,
    bytes: usize,
    deficit: u64,
    /// Whether this lane already got its quantum in the current visit.
    granted: bool,
}

impl Lane {
    fn new(weight: u32, unit: u64) -> Self {
        Self {
            weight,
            quantum: u64::from(weight).saturating_mul(unit),
            items: VecDeque::new(),
            bytes: 0,
            deficit: 0,
            granted: false,
        }
    }

    fn head_size(&self) -> Option<u64> {
        self.items.front().map(|i| i.size() as u64)
    }

    /// Forgets the round state once the lane is empty.
    fn settle_if_empty(&mut self) {
        if self.items.is_empty() {
            self.deficit = 0;
            self.granted = false;
        }
    }
}

/// Weighted deficit round robin over per-channel lanes; when full, the lane most over its
/// weighted share sheds its newest message. See the module docs.
#[derive(Debug)]
pub struct WdrrQueue {
    qos: QosTable,
    unit: u64,
    lanes: Vec<Lane>,
    /// Index in `lanes` of each channel that has a lane.
    lane_of: Box<[Option<usize>; 256]>,
    /// The lane to visit next.
    cursor: usize,
    len: usize,
    bytes: usize,
    max_items: usize,
    max_bytes: usize,
}

impl WdrrQueue {
    /// A WDRR queue with `config`'s bounds and weights and quantum unit
    /// [`DEFAULT_WDRR_QUANTUM_UNIT`].
    pub fn new(config: &QueueConfig) -> Result<Self, QueueError> {
        Self::with_quantum_unit(config, DEFAULT_WDRR_QUANTUM_UNIT)
    }

    /// A WDRR queue whose lanes get `weight × unit` bytes of deficit per round.
    pub fn with_quantum_unit(config: &QueueConfig, unit: u32) -> Result<Self, QueueError> {
        config.validate()?;
        if unit == 0 {
            return Err(QueueError::ZeroQuantumUnit);
        }
        let mut queue = Self {
            qos: QosTable::new(&config.channels),
            unit: u64::from(unit),
            lanes: Vec::new(),
            lane_of: Box::new([None; 256]),
            cursor: 0,
            len: 0,
            bytes: 0,
            max_items: config.max_items,
            max_bytes: config.max_bytes,
        };
        let mut ordered = config.channels.clone();
        ordered.sort_by_key(|qos| std::cmp::Reverse(qos.priority));
        for qos in ordered {
            queue.lane_index(qos.channel);
        }
        Ok(queue)
    }

    /// The lane of `channel`, created (at the end of the round) on first use.
    #[allow(clippy::indexing_slicing)] // a [_; 256] indexed by a u8 cannot go out of bounds
    fn lane_index(&mut self, channel: u8) -> usize {
        let slot = &mut self.lane_of[usize::from(channel)];
        if let Some(index) = *slot {
            return index;
        }
        let index = self.lanes.len();
        *slot = Some(index);
        let weight = self.qos.get(channel).weight;
        self.lanes.push(Lane::new(weight, self.unit));
        index
    }

    fn fits(&self, items: usize, bytes: usize) -> bool {
        items <= self.max_items && bytes <= self.max_bytes
    }

    /// Plans the fairest victims for a newcomer of `size` bytes on lane `own`: how many of
    /// each lane's newest messages go, or `None` if the newcomer itself is to go.
    fn plan_victims(&self, own: usize, size: usize) -> Option<Vec<usize>> {
        let mut planned = vec![0usize; self.lanes.len()];
        let mut planned_bytes = vec![0usize; self.lanes.len()];
        let mut freed_items = 0usize;
        let mut freed_bytes = 0usize;
        loop {
            let items = self.len.saturating_add(1).saturating_sub(freed_items);
            let bytes = self.bytes.saturating_add(size).saturating_sub(freed_bytes);
            if self.fits(items, bytes) {
                return Some(planned);
            }
            // (lane, bytes it would hold, weight) of the heaviest lane so far.
            let own_load = self
                .lanes
                .get(own)?
                .bytes
                .saturating_add(size)
                .saturating_sub(planned_bytes.get(own).copied().unwrap_or(0));
            let own_weight = self.lanes.get(own)?.weight;
            let mut heaviest = (own, own_load, own_weight);
            for (index, lane) in self.lanes.iter().enumerate() {
                let gone = planned.get(index).copied().unwrap_or(0);
                if index == own || gone >= lane.items.len() {
                    continue;
                }
                let load = lane
                    .bytes
                    .saturating_sub(planned_bytes.get(index).copied().unwrap_or(0));
                // load / weight > heaviest.load / heaviest.weight, without division.
                // cannot panic: a u64 times a u32 fits in a u128.
                if u128::from(load as u64) * u128::from(heaviest.2)
                    > u128::from(heaviest.1 as u64) * u128::from(lane.weight)
                {
                    heaviest = (index, load, lane.weight);
                }
            }
            let victim_lane = heaviest.0;
            if victim_lane == own {
                return None;
            }
            let lane = self.lanes.get(victim_lane)?;
            let gone = planned.get_mut(victim_lane)?;
            let victim_at = lane.items.len().checked_sub(gone.saturating_add(1))?;
            let victim_size = lane.items.get(victim_at)?.size();
            *gone = gone.saturating_add(1);
            if let Some(b) = planned_bytes.get_mut(victim_lane) {
                *b = b.saturating_add(victim_size);
            }
            freed_items = freed_items.saturating_add(1);
            freed_bytes = freed_bytes.saturating_add(victim_size);
        }
    }

    /// Moves the cursor to the next lane, ending the current lane's visit.
    fn advance(&mut self) {
        if let Some(lane) = self.lanes.get_mut(self.cursor) {
            lane.granted = false;
        }
        self.cursor = match self.cursor.checked_add(1) {
            Some(next) if next < self.lanes.len() => next,
            _ => 0,
        };
    }

    /// Adds the quanta of the rounds in which no lane could send, when every non-empty lane
    /// has just failed a visit: all but the last of the rounds until the first can send.
    fn skip_idle_rounds(&mut self) {
        let rounds = self
            .lanes
            .iter()
            .filter_map(|lane| {
                let short = lane.head_size()?.saturating_sub(lane.deficit);
                Some(short.div_ceil(lane.quantum.max(1)))
            })
            .min()
            .unwrap_or(0)
            .saturating_sub(1);
        if rounds == 0 {
            return;
        }
        for lane in self.lanes.iter_mut().filter(|l| !l.items.is_empty()) {
            lane.deficit = lane
                .deficit
                .saturating_add(lane.quantum.saturating_mul(rounds));
        }
    }

    /// Takes the head of lane `index`, keeping the totals and the lane's state right.
    fn take_head(&mut self, index: usize) -> Option<Queued> {
        let lane = self.lanes.get_mut(index)?;
        let item = lane.items.pop_front()?;
        lane.bytes = lane.bytes.saturating_sub(item.size());
        lane.deficit = lane.deficit.saturating_sub(item.size() as u64);
        lane.settle_if_empty();
        self.len = self.len.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(item.size());
        Some(item)
    }

    /// Sum of the lanes' deficits (zero whenever the queue is empty).
    #[cfg(test)]
    pub(crate) fn total_deficit(&self) -> u64 {
        self.lanes.iter().map(|l| l.deficit).sum()
    }
}

impl MessageQueue for WdrrQueue {
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
        let own = self.lane_index(item.channel);
        let Some(planned) = self.plan_victims(own, size) else {
            tracing::debug!(
                channel = item.channel,
                size,
                held_items = self.len,
                held_bytes = self.bytes,
                "wdrr queue full and this channel holds the most for its weight: dropping the new message"
            );
            return vec![item];
        };
        let mut dropped = Vec::new();
        for (lane, count) in self.lanes.iter_mut().zip(planned) {
            for _ in 0..count {
                if let Some(victim) = lane.items.pop_back() {
                    lane.bytes = lane.bytes.saturating_sub(victim.size());
                    self.len = self.len.saturating_sub(1);
                    self.bytes = self.bytes.saturating_sub(victim.size());
                    dropped.push(victim);
                }
            }
            lane.settle_if_empty();
        }
        if !dropped.is_empty() {
            tracing::debug!(
                channel = item.channel,
                evicted = dropped.len(),
                "wdrr queue full: evicted from the channels most over their share"
            );
        }
        if let Some(lane) = self.lanes.get_mut(own) {
            lane.bytes = lane.bytes.saturating_add(size);
            lane.items.push_back(item);
            self.len = self.len.saturating_add(1);
            self.bytes = self.bytes.saturating_add(size);
        } else {
            // `lane_index` just returned `own`, so this cannot happen; never lose silently.
            dropped.push(item);
        }
        dropped
    }

    fn pop(&mut self) -> Option<Queued> {
        if self.len == 0 {
            return None;
        }
        let lanes = self.lanes.len();
        let mut failed_visits = 0usize;
        // After `lanes` failed visits the idle rounds are skipped, and the next full round
        // sends: 2 × lanes + 1 visits always suffice.
        for _ in 0..=lanes.saturating_mul(2) {
            let index = self.cursor;
            let lane = self.lanes.get_mut(index)?;
            if let Some(head) = lane.head_size() {
                if !lane.granted {
                    lane.deficit = lane.deficit.saturating_add(lane.quantum);
                    lane.granted = true;
                }
                if head <= lane.deficit {
                    let item = self.take_head(index);
                    if self.lanes.get(index).is_some_and(|l| l.items.is_empty()) {
                        self.advance();
                    }
                    return item;
                }
            } else {
                lane.settle_if_empty();
            }
            self.advance();
            failed_visits = failed_visits.saturating_add(1);
            if failed_visits >= lanes {
                self.skip_idle_rounds();
                failed_visits = 0;
            }
        }
        // Unreachable by the argument above; stay live rather than strand messages.
        tracing::error!("wdrr round robin made no progress; serving the first non-empty lane");
        let index = self.lanes.iter().position(|l| !l.items.is_empty())?;
        self.take_head(index)
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
mod tests;
