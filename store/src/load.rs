//! Turning stored (node id, bytes) pairs back into [`PeerRecord`]s, shared by every store:
//! decodable records are kept, the rest are skipped with a warning and listed in a
//! [`LoadReport`].

use tmp2p_core::peer_manager::{PeerRecord, RecordError};
use tmp2p_core::NodeId;

/// Why a stored value was skipped on load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// The bytes are not a record this code reads.
    #[error("undecodable: {0}")]
    Undecodable(#[source] RecordError),
    /// The bytes decode, but to the record of another node than the key names.
    #[error("stored under {key} but is the record of {record}")]
    KeyMismatch {
        /// The node id the value is stored under.
        key: NodeId,
        /// The node id inside the record.
        record: NodeId,
    },
}

/// A stored value that [`LoadReport`] left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    /// The node id it is stored under.
    pub key: NodeId,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// What a load found: the decodable records, in node-id order, and the skipped ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Records to hand to `PeerManager::from_records`.
    pub records: Vec<PeerRecord>,
    /// Values that were not loaded, each already reported with a `tracing` warning.
    pub skipped: Vec<SkippedRecord>,
}

impl LoadReport {
    /// Adds the value stored under `key`: its record, or a skip (warned about).
    pub(crate) fn push(&mut self, key: NodeId, bytes: &[u8]) {
        let reason = match PeerRecord::decode(bytes) {
            Ok(record) if record.node_id == key => {
                self.records.push(record);
                return;
            }
            Ok(record) => SkipReason::KeyMismatch {
                key,
                record: record.node_id,
            },
            Err(e) => SkipReason::Undecodable(e),
        };
        tracing::warn!(
            peer = %key,
            len = bytes.len(),
            reason = %reason,
            "skipping stored peer record"
        );
        self.skipped.push(SkippedRecord { key, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_keeps_matching_records_and_skips_the_rest() {
        let id = NodeId::from_bytes([3; 20]);
        let other = NodeId::from_bytes([4; 20]);
        let record = PeerRecord {
            node_id: id,
            addresses: Vec::new(),
            last_connected: None,
            last_disconnected: None,
            inactive: false,
            mutable_score: 2,
        };
        let bytes = record.encode().unwrap();
        let mut report = LoadReport::default();
        report.push(id, &bytes);
        report.push(other, &bytes);
        report.push(other, &bytes[..5]);
        assert_eq!(report.records, vec![record]);
        assert_eq!(
            report.skipped[0].reason,
            SkipReason::KeyMismatch {
                key: other,
                record: id
            }
        );
        assert!(matches!(
            report.skipped[1].reason,
            SkipReason::Undecodable(RecordError::Truncated { .. })
        ));
        assert_eq!(report.skipped.len(), 2);
    }
}
