//! The persistent peer store of tmp2p: the IO half of the peer manager's persistence.
//!
//! The sans-IO [`PeerManager`](tmp2p_core::peer_manager::PeerManager) emits
//! [`StoreOp`]s (pulled with `poll_store_op`); a driver applies them with
//! [`PeerStore::apply`] and, on the next start, rebuilds the manager with
//! `PeerManager::from_records(…, store.load()?)`.
//!
//! Two stores implement [`PeerStore`]:
//! - [`RedbPeerStore`], an embedded [redb](https://docs.rs/redb) database file: one table
//!   from the 20 raw node-id bytes to the record's [`PeerRecord::encode`] bytes, every
//!   [`PeerStore::apply`] one atomic, durable transaction;
//! - [`MemoryPeerStore`], a `BTreeMap` of the same encoded bytes, for tests and the simulator.
//!
//! # Undecodable records
//!
//! [`PeerStore::load`] skips a record it cannot decode (a value written by a newer record
//! version, or one whose key does not match the node id inside it) and reports it with a
//! `tracing` warning, instead of failing the whole load: one bad record must not make a
//! node forget every other peer it knows, and a skipped peer is only a peer to re-learn.
//! The skipped bytes stay in the store until an operation for that node id replaces or
//! deletes them. [`RedbPeerStore::load_report`] / [`MemoryPeerStore::load_report`] return
//! what was skipped, for callers that want to show it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod load;
mod memory;
mod redb_store;

pub use load::{LoadReport, SkipReason, SkippedRecord};
pub use memory::MemoryPeerStore;
pub use redb_store::{RedbPeerStore, PEER_TABLE};

use std::path::PathBuf;

use tmp2p_core::peer_manager::{PeerRecord, RecordError, StoreOp};
use tmp2p_core::NodeId;

/// Where the peer manager's records live between runs.
pub trait PeerStore {
    /// Every decodable record in the store, in node-id order. Undecodable records are
    /// skipped with a warning (see the crate docs).
    ///
    /// # Errors
    /// A [`StoreError`] when the store itself cannot be read.
    fn load(&self) -> Result<Vec<PeerRecord>, StoreError>;

    /// Applies `ops` in order, all or nothing: after an error or a crash the store holds
    /// either every operation of the batch or none of them.
    ///
    /// # Errors
    /// [`StoreError::Encode`] if a record cannot be encoded (then nothing is written), or a
    /// [`StoreError`] of the database.
    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;
}

/// Why a peer store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be created or opened (including a file that fails
    /// redb's integrity check).
    #[error("cannot open peer store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's reason.
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// A read or write transaction could not begin.
    #[error("peer store transaction could not begin: {0}")]
    Transaction(#[source] Box<redb::TransactionError>),
    /// The peer table could not be opened (e.g. it exists with other key / value types).
    #[error("peer store table {table:?} could not be opened: {source}")]
    Table {
        /// The table name.
        table: &'static str,
        /// redb's reason.
        #[source]
        source: Box<redb::TableError>,
    },
    /// Reading or writing the database's pages failed.
    #[error("peer store storage error: {0}")]
    Storage(#[source] Box<redb::StorageError>),
    /// A write transaction could not commit; none of its operations are applied.
    #[error("peer store commit failed (the batch is not applied): {0}")]
    Commit(#[source] Box<redb::CommitError>),
    /// A record to store does not fit its encoding; the batch is not applied.
    #[error("record of {node_id} cannot be encoded: {source}")]
    Encode {
        /// The peer whose record it is.
        node_id: NodeId,
        /// The encoding's reason (a count or length over its u16 limit).
        #[source]
        source: RecordError,
    },
}

impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        StoreError::Transaction(Box::new(e))
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        StoreError::Storage(Box::new(e))
    }
}

impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        StoreError::Commit(Box::new(e))
    }
}

/// One operation ready to write: the key and its new value (`None` = delete).
type EncodedOp = (NodeId, Option<Vec<u8>>);

/// A batch of operations as key → new value, encoded before anything is written so that an
/// encoding error leaves the store untouched.
fn encode_ops(ops: &[StoreOp]) -> Result<Vec<EncodedOp>, StoreError> {
    ops.iter()
        .map(|op| match op {
            StoreOp::Upsert(record) => record
                .encode()
                .map(|bytes| (record.node_id, Some(bytes)))
                .map_err(|source| StoreError::Encode {
                    node_id: record.node_id,
                    source,
                }),
            StoreOp::Delete(id) => Ok((*id, None)),
        })
        .collect()
}
