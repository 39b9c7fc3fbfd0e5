//! The task that owns the peer store: it applies the router's store operations in
//! batches (every batch one `PeerStore::apply`, run off the executor threads because the
//! database writes synchronously) and answers sync requests once everything before them is
//! written.

use async_channel::{Receiver, Sender};
use tmp2p_core::peer_manager::StoreOp;
use tmp2p_store::PeerStore;

/// A request to the store task.
pub(crate) enum StoreRequest {
    /// Apply these operations (merged with any other batch already queued).
    Apply(Vec<StoreOp>),
    /// Reply once every earlier operation is written.
    Sync(Sender<()>),
}

/// Runs until every request sender is gone.
pub(crate) async fn run_store(
    mut store: Box<dyn PeerStore + Send>,
    requests: Receiver<StoreRequest>,
) {
    while let Ok(request) = requests.recv().await {
        let mut ops = Vec::new();
        let mut syncs = Vec::new();
        match request {
            StoreRequest::Apply(batch) => ops = batch,
            StoreRequest::Sync(reply) => syncs.push(reply),
        }
        // Merge whatever else is already queued into one transaction.
        while syncs.is_empty() {
            match requests.try_recv() {
                Ok(StoreRequest::Apply(batch)) => ops.extend(batch),
                Ok(StoreRequest::Sync(reply)) => syncs.push(reply),
                Err(_) => break,
            }
        }
        if !ops.is_empty() {
            let count = ops.len();
            let (returned, result) = smol::unblock(move || {
                let result = store.apply(&ops);
                (store, result)
            })
            .await;
            store = returned;
            match result {
                Ok(()) => tracing::trace!(count, "peer store batch written"),
                Err(error) => tracing::warn!(%error, count, "peer store batch failed"),
            }
        }
        for reply in syncs {
            let _ = reply.try_send(());
        }
    }
}
