//! [`RedbPeerStore`]: the peer store in an embedded redb database file. One table,
//! [`PEER_TABLE`], maps the 20 raw node-id bytes to the record's encoding; each
//! [`PeerStore::apply`] is one write transaction with redb's default immediate durability,
//! so a batch is on disk when `apply` returns and a crash never leaves half of one.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use tmp2p_core::peer_manager::{PeerRecord, StoreOp};
use tmp2p_core::NodeId;

use crate::load::LoadReport;
use crate::{encode_ops, PeerStore, StoreError};

/// The name of the table of peer records: node id (20 raw bytes) → encoded record.
pub const PEER_TABLE: &str = "peers";

const TABLE: TableDefinition<'static, [u8; 20], &'static [u8]> = TableDefinition::new(PEER_TABLE);

/// A [`PeerStore`] in a redb database file.
pub struct RedbPeerStore {
    db: Database,
}

impl std::fmt::Debug for RedbPeerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbPeerStore").finish_non_exhaustive()
    }
}

fn table_error(source: TableError) -> StoreError {
    StoreError::Table {
        table: PEER_TABLE,
        source: Box::new(source),
    }
}

impl RedbPeerStore {
    /// Opens the database at `path`, creating the file and its table if they do not exist.
    ///
    /// Every open verifies the checksums of the whole file (redb's integrity check), so a
    /// file damaged outside redb is an error here rather than a panic later; after a crash
    /// redb recovers the last committed transaction. The file is locked while open.
    ///
    /// # Errors
    /// [`StoreError::Open`] if the file cannot be opened, is not a redb database, is in use
    /// or fails the integrity check; other [`StoreError`]s if the table cannot be created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        let txn = db.begin_write()?;
        txn.open_table(TABLE).map_err(table_error)?;
        txn.commit()?;
        tracing::debug!(path = %path.display(), "peer store open");
        Ok(RedbPeerStore { db })
    }

    /// Every decodable record and every skipped value (see the crate docs).
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub fn load_report(&self) -> Result<LoadReport, StoreError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(TABLE) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(LoadReport::default()),
            Err(e) => return Err(table_error(e)),
        };
        let mut report = LoadReport::default();
        for entry in table.iter()? {
            let (key, value) = entry?;
            report.push(NodeId::from_bytes(key.value()), value.value());
        }
        Ok(report)
    }
}

impl PeerStore for RedbPeerStore {
    fn load(&self) -> Result<Vec<PeerRecord>, StoreError> {
        Ok(self.load_report()?.records)
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let encoded = encode_ops(ops)?;
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE).map_err(table_error)?;
            for (key, value) in &encoded {
                match value {
                    Some(bytes) => {
                        table.insert(key.as_bytes(), bytes.as_slice())?;
                    }
                    None => {
                        table.remove(key.as_bytes())?;
                    }
                }
            }
        }
        // Dropping `txn` on an error above aborts it: nothing of the batch is written.
        txn.commit()?;
        Ok(())
    }
}
