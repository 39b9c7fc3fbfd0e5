//! [`MemoryPeerStore`]: the peer store as a `BTreeMap` of encoded records, for tests and
//! the simulator. It stores the same bytes as the redb store, so records go through the
//! same encode / decode path.

use std::collections::BTreeMap;

use tmp2p_core::peer_manager::{PeerRecord, StoreOp};
use tmp2p_core::NodeId;

use crate::load::LoadReport;
use crate::{encode_ops, PeerStore, StoreError};

/// An in-memory [`PeerStore`]: node id → encoded record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryPeerStore {
    values: BTreeMap<NodeId, Vec<u8>>,
}

impl MemoryPeerStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryPeerStore::default()
    }

    /// Stored values (decodable or not).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Stores `bytes` under `key` as they are, without encoding (to simulate a value this
    /// code did not write, e.g. from another record version).
    pub fn insert_raw(&mut self, key: NodeId, bytes: Vec<u8>) {
        self.values.insert(key, bytes);
    }

    /// Every decodable record and every skipped value (see the crate docs).
    pub fn load_report(&self) -> LoadReport {
        let mut report = LoadReport::default();
        for (key, bytes) in &self.values {
            report.push(*key, bytes);
        }
        report
    }
}

impl PeerStore for MemoryPeerStore {
    fn load(&self) -> Result<Vec<PeerRecord>, StoreError> {
        Ok(self.load_report().records)
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        for (key, value) in encode_ops(ops)? {
            match value {
                Some(bytes) => {
                    self.values.insert(key, bytes);
                }
                None => {
                    self.values.remove(&key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmp2p_core::address::NodeAddress;
    use tmp2p_core::peer_manager::{AddressRecord, RecordError};

    fn record(n: u8, addresses: usize) -> PeerRecord {
        let id = NodeId::from_bytes([n; 20]);
        let address = NodeAddress::parse(&format!("{id}@10.0.0.{n}:26656")).unwrap();
        PeerRecord {
            node_id: id,
            addresses: vec![
                AddressRecord {
                    address,
                    last_dial_success: None,
                    last_dial_failure: None,
                    dial_failures: 0,
                    retry_jitter: std::time::Duration::ZERO,
                };
                addresses
            ],
            last_connected: None,
            last_disconnected: None,
            inactive: false,
            mutable_score: i16::from(n),
        }
    }

    #[test]
    fn upserts_replace_and_deletes_remove() {
        let mut store = MemoryPeerStore::new();
        let mut second = record(2, 1);
        store
            .apply(&[
                StoreOp::Upsert(record(1, 1)),
                StoreOp::Upsert(second.clone()),
            ])
            .unwrap();
        second.mutable_score = -5;
        store
            .apply(&[
                StoreOp::Delete(record(1, 0).node_id),
                StoreOp::Upsert(second.clone()),
            ])
            .unwrap();
        assert_eq!(store.load().unwrap(), vec![second]);
    }

    #[test]
    fn an_unencodable_record_leaves_the_store_untouched() {
        let mut store = MemoryPeerStore::new();
        store.apply(&[StoreOp::Upsert(record(1, 1))]).unwrap();
        let before = store.clone();
        let too_many = usize::from(u16::MAX) + 1;
        let err = store
            .apply(&[
                StoreOp::Delete(record(1, 0).node_id),
                StoreOp::Upsert(record(2, too_many)),
            ])
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::Encode {
                source: RecordError::TooManyAddresses { found },
                ..
            } if found == too_many
        ));
        assert_eq!(store, before);
    }

    #[test]
    fn a_corrupt_value_is_skipped_and_the_rest_load() {
        let mut store = MemoryPeerStore::new();
        store
            .apply(&[StoreOp::Upsert(record(1, 1)), StoreOp::Upsert(record(3, 2))])
            .unwrap();
        store.insert_raw(NodeId::from_bytes([2; 20]), vec![9, 9, 9]);
        let report = store.load_report();
        assert_eq!(report.records, vec![record(1, 1), record(3, 2)]);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].key, NodeId::from_bytes([2; 20]));
        assert_eq!(store.len(), 3);
    }
}
