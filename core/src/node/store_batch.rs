//! Peer-store writes, gathered: the PeerManager's record changes are held for up to the
//! configured interval ([`NodeConfig::store_flush_interval`](crate::node_config::NodeConfig))
//! and go out as one [`NodeOutput::Store`](super::NodeOutput) batch, at most one per
//! interval and one when the node stops. A seed accepting thousands of short connections
//! then commits (and fsyncs) once a second, not once per peer, and a peer changed many
//! times in the interval is written once: each operation carries the peer's whole record,
//! so the last one for a peer is all the store needs. A crash loses at most the last
//! interval's changes; the store stays consistent, since each batch is one transaction.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::id::NodeId;
use crate::peer_manager::StoreOp;

/// The operations waiting for the next batch (see the module docs).
#[derive(Debug)]
pub(crate) struct StoreBatch {
    interval: Duration,
    /// The last operation for each peer.
    ops: BTreeMap<NodeId, StoreOp>,
    /// When the waiting operations go out.
    due: Option<Instant>,
}

impl StoreBatch {
    pub(crate) fn new(interval: Duration) -> Self {
        StoreBatch {
            interval,
            ops: BTreeMap::new(),
            due: None,
        }
    }

    /// Holds `op` for the next batch; the first operation after a batch starts the
    /// interval.
    pub(crate) fn push(&mut self, now: Instant, op: StoreOp) {
        let node = match &op {
            StoreOp::Upsert(record) => record.node_id,
            StoreOp::Delete(node) => *node,
        };
        self.ops.insert(node, op);
        if self.due.is_none() {
            self.due = Some(crate::deadline::later(now, self.interval));
        }
    }

    /// When the waiting operations are due; `None` when nothing waits.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }

    /// The batch, if one is due at `now` (or `now_anyway`, as at a stop).
    pub(crate) fn take_due(&mut self, now: Instant, now_anyway: bool) -> Option<Vec<StoreOp>> {
        let due = self.due?;
        if now < due && !now_anyway {
            return None;
        }
        self.due = None;
        Some(std::mem::take(&mut self.ops).into_values().collect())
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_manager::PeerRecord;

    fn upsert(id: u8) -> StoreOp {
        StoreOp::Upsert(PeerRecord {
            node_id: NodeId::from_bytes([id; 20]),
            addresses: Vec::new(),
            last_connected: None,
            last_disconnected: None,
            inactive: false,
            mutable_score: 0,
        })
    }

    #[test]
    fn one_batch_per_interval_with_the_last_operation_per_peer() {
        let t0 = crate::test_clock::epoch();
        let second = Duration::from_secs(1);
        let mut batch = StoreBatch::new(second);
        assert_eq!(batch.poll_timeout(), None);
        batch.push(t0, upsert(1));
        batch.push(t0 + second / 2, upsert(2));
        batch.push(
            t0 + second / 2,
            StoreOp::Delete(NodeId::from_bytes([1; 20])),
        );
        assert_eq!(batch.poll_timeout(), Some(t0 + second));
        assert_eq!(batch.take_due(t0 + second / 2, false), None);
        let ops = batch.take_due(t0 + second, false).unwrap();
        assert_eq!(
            ops,
            vec![StoreOp::Delete(NodeId::from_bytes([1; 20])), upsert(2)]
        );
        assert!(batch.is_empty() && batch.poll_timeout().is_none());
        // The next operation starts a new interval; a stop takes it at once.
        batch.push(t0 + 3 * second, upsert(3));
        assert_eq!(batch.poll_timeout(), Some(t0 + 4 * second));
        assert_eq!(batch.take_due(t0 + 3 * second, true), Some(vec![upsert(3)]));
        assert_eq!(batch.take_due(t0 + 9 * second, true), None);
    }

    #[test]
    fn a_zero_interval_writes_at_once() {
        let t0 = crate::test_clock::epoch();
        let mut batch = StoreBatch::new(Duration::ZERO);
        batch.push(t0, upsert(1));
        assert_eq!(batch.take_due(t0, false), Some(vec![upsert(1)]));
    }
}
