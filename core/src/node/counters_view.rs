//! [`CountersView`]: a node's counters for any thread, such as a metrics exporter's: the
//! node totals ([`RouterCounters`]) and each routed peer's [`PeerCounters`]. The counters
//! themselves are lock-free atomics; the list of routed peers is an immutable map the node
//! machine replaces (copy on write, `arc-swap`) as peers come and go, so a reader never
//! takes a lock and the node never waits for a reader.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::id::NodeId;
use crate::router::{CountersSnapshot, PeerCounters, PeerSnapshot, RouterCounters};

/// A cloneable reader of a node's counters (see the module docs).
#[derive(Debug, Clone)]
pub struct CountersView {
    counters: Arc<RouterCounters>,
    peers: Arc<ArcSwap<BTreeMap<NodeId, Arc<PeerCounters>>>>,
}

impl CountersView {
    pub(crate) fn new(counters: Arc<RouterCounters>) -> Self {
        CountersView {
            counters,
            peers: Arc::new(ArcSwap::from_pointee(BTreeMap::new())),
        }
    }

    /// `node` was routed: its counters join the list (the node machine is the only
    /// writer, so a load, a copy and a store replace the map).
    pub(crate) fn peer_up(&self, node: NodeId, counters: Arc<PeerCounters>) {
        let mut peers = BTreeMap::clone(&self.peers.load());
        peers.insert(node, counters);
        self.peers.store(Arc::new(peers));
    }

    /// `node` went down.
    pub(crate) fn peer_down(&self, node: NodeId) {
        let current = self.peers.load();
        if current.contains_key(&node) {
            let mut peers = BTreeMap::clone(&current);
            peers.remove(&node);
            self.peers.store(Arc::new(peers));
        }
    }

    /// The node totals now: messages and bytes each way, drops by reason, dials and
    /// handshakes by outcome, PEX addresses and store writes.
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    /// Each routed peer's counters now, peers ascending.
    pub fn peer_counters(&self) -> Vec<PeerSnapshot> {
        self.peers
            .load()
            .values()
            .map(|peer| peer.snapshot())
            .collect()
    }
}
