//! The peer manager: which peers we know, which to dial, which to accept and which to
//! evict (ADR 062, v0.35.9 `PeerManager`, protocol.md §6.1–§6.5 and §6.8), as a
//! synchronous sans-IO machine.
//!
//! Inputs are method calls carrying the time: [`PeerManager::add`],
//! [`PeerManager::dial_failed`], [`PeerManager::dialed`], [`PeerManager::accepted`],
//! [`PeerManager::ready`], [`PeerManager::disconnected`], [`PeerManager::errored`],
//! [`PeerManager::report`]. Go's blocking `DialNext` / `EvictNext` become the try-calls
//! [`PeerManager::try_dial_next`] / [`PeerManager::try_evict_next`] plus
//! [`PeerManager::poll_timeout`], the earliest instant at which a retry delay or disconnect
//! cooldown ends. Outputs are pulled: [`PeerManager::poll_store_op`] (persistence) and
//! [`PeerManager::poll_update`] (per-subscriber peer updates).
//!
//! Drain contract: after any input, call `try_dial_next` and `try_evict_next` until they
//! return `None`, drain `poll_store_op`, then sleep until `poll_timeout`.
//!
//! Improvements over v0.35.9 (each tested): exponential retry capped after jitter
//! ([`retry`]); bounded per-subscriber update queues that close a lagging subscriber with a
//! reason ([`subscriptions`]); the mutable score is persisted ([`record`]); every refusal is
//! a typed [`PeerManagerError`]; persistence is an output; per-IP-group caps on connected
//! and stored peers ([`ip_group`]). The dial/connect/disconnect path is O(log n) in known
//! peers: dialable peers sit in a ranked index and waiting peers in a wake-up queue.

mod advertise;
pub mod ip_group;
mod lifecycle;
pub mod options;
mod peer;
pub mod record;
pub mod retry;
pub mod subscriptions;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

pub use ip_group::IpGroup;
pub use options::{OptionsError, PeerManagerOptions};
pub use peer::{MAX_PEER_SCORE_NOT_PERSISTENT, PEER_SCORE_PERSISTENT};
pub use record::{AddressRecord, ClockAnchor, PeerRecord, RecordError, StoreOp, Timestamp};
pub use subscriptions::{PeerStatus, PeerUpdate, SubscriptionClosed, SubscriptionId};

use ip_group::{GroupCounts, Grouping};
use peer::{AddressState, DialSlot, Peer, RankKey};
use retry::RetryPolicy;
use subscriptions::Subscriptions;

use crate::address::NodeAddress;
use crate::id::NodeId;

/// Why the peer manager refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerManagerError {
    /// The peer is this node.
    #[error("peer {0} is this node")]
    SelfPeer(NodeId),
    /// The peer is already connected.
    #[error("peer {0} is already connected")]
    AlreadyConnected(NodeId),
    /// All connection slots (including upgrade slots where they apply) are taken.
    #[error("connection slots full: limit {limit} reached and no lower-scored peer to replace")]
    Full {
        /// The limit that was hit.
        limit: usize,
    },
    /// `max_outgoing_connections` outgoing connections are already up.
    #[error("outgoing connections full: limit {limit} reached")]
    OutgoingFull {
        /// `max_outgoing_connections`.
        limit: usize,
    },
    /// The peer is not known.
    #[error("peer {0} is not known")]
    UnknownPeer(NodeId),
    /// The peer is marked inactive: no new addresses are taken for it.
    #[error("peer {0} is inactive")]
    InactivePeer(NodeId),
    /// Too many connected peers in this IP group.
    #[error("IP group {group} already has {limit} connected peers")]
    IpGroupConnectedFull {
        /// The group.
        group: IpGroup,
        /// `max_connected_per_ip_group`.
        limit: u16,
    },
    /// Too many stored peers with an address in this IP group.
    #[error("IP group {group} already has {limit} stored peers")]
    IpGroupStoredFull {
        /// The group.
        group: IpGroup,
        /// `max_stored_per_ip_group`.
        limit: u16,
    },
}

/// A score report from a reactor (v0.35 `PeerStatusGood` / `PeerStatusBad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreReport {
    /// The peer behaved well: mutable score +1.
    Good,
    /// The peer misbehaved: mutable score −1.
    Bad,
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

#[derive(Debug, Clone, Copy)]
struct Connection {
    direction: Direction,
    group: Option<IpGroup>,
}

/// The peer manager (see the module docs).
#[derive(Debug, Clone)]
pub struct PeerManager {
    self_id: NodeId,
    options: PeerManagerOptions,
    policy: RetryPolicy,
    grouping: Grouping,
    clock: ClockAnchor,
    peers: BTreeMap<NodeId, Peer>,
    /// Every known peer, best first.
    ranked: BTreeSet<RankKey>,
    /// Peers that may be dialed now, best first.
    dialable: BTreeSet<RankKey>,
    /// Peers that become dialable at a known time.
    wakeups: BTreeSet<(Timestamp, NodeId)>,
    /// Connected peers, best first.
    connected_ranked: BTreeSet<RankKey>,
    dialing: BTreeMap<NodeId, Option<IpGroup>>,
    connected: BTreeMap<NodeId, Connection>,
    outgoing: usize,
    ready: BTreeSet<NodeId>,
    evict: BTreeSet<NodeId>,
    evicting: BTreeSet<NodeId>,
    /// upgrade claims: lower peer → better peer being dialed to replace it.
    upgrading: BTreeMap<NodeId, NodeId>,
    /// the same claims, better peer → lower peer.
    upgrading_to: BTreeMap<NodeId, NodeId>,
    stored_groups: GroupCounts,
    connected_groups: GroupCounts,
    dialing_groups: GroupCounts,
    /// Addresses of non-private peers.
    advertisable: usize,
    subscriptions: Subscriptions,
    /// Peers whose record changed since the last `poll_store_op`.
    dirty: BTreeSet<NodeId>,
}

impl PeerManager {
    /// A manager with no known peers.
    ///
    /// # Errors
    /// The options' [`OptionsError`].
    pub fn new(
        self_id: NodeId,
        options: PeerManagerOptions,
        clock: ClockAnchor,
    ) -> Result<Self, OptionsError> {
        options.validate()?;
        Ok(PeerManager {
            self_id,
            policy: options.retry_policy(),
            grouping: Grouping {
                ipv4_prefix: options.ipv4_group_prefix,
                ipv6_prefix: options.ipv6_group_prefix,
                exempt_loopback: options.exempt_loopback,
            },
            subscriptions: Subscriptions::new(options.subscription_capacity),
            options,
            clock,
            peers: BTreeMap::new(),
            ranked: BTreeSet::new(),
            dialable: BTreeSet::new(),
            wakeups: BTreeSet::new(),
            connected_ranked: BTreeSet::new(),
            dialing: BTreeMap::new(),
            connected: BTreeMap::new(),
            outgoing: 0,
            ready: BTreeSet::new(),
            evict: BTreeSet::new(),
            evicting: BTreeSet::new(),
            upgrading: BTreeMap::new(),
            upgrading_to: BTreeMap::new(),
            stored_groups: GroupCounts::default(),
            connected_groups: GroupCounts::default(),
            dialing_groups: GroupCounts::default(),
            advertisable: 0,
            dirty: BTreeSet::new(),
        })
    }

    /// A manager rebuilt from stored records (protocol.md §6.8): a record of our own id is
    /// dropped (and a delete queued), the current options' persistent peers and scores
    /// apply, and the store is pruned to `max_peers`. Every persisted field, the mutable
    /// score included, is as stored.
    ///
    /// # Errors
    /// The options' [`OptionsError`].
    pub fn from_records(
        self_id: NodeId,
        options: PeerManagerOptions,
        clock: ClockAnchor,
        now: Instant,
        records: impl IntoIterator<Item = PeerRecord>,
    ) -> Result<Self, OptionsError> {
        let mut manager = PeerManager::new(self_id, options, clock)?;
        let ts = clock.timestamp(now);
        for record in records {
            if record.node_id == self_id {
                manager.dirty.insert(self_id);
                continue;
            }
            if manager.peers.contains_key(&record.node_id) {
                manager.delete_peer(record.node_id);
            }
            let mut peer = manager.new_peer(record.node_id);
            peer.last_connected = record.last_connected;
            peer.last_disconnected = record.last_disconnected;
            peer.inactive = record.inactive;
            peer.mutable_score = record.mutable_score;
            for a in record.addresses {
                if a.address.node_id != record.node_id {
                    continue;
                }
                let group = manager.grouping.group_of_hostname(&a.address.hostname);
                let state = AddressState {
                    group,
                    last_dial_success: a.last_dial_success,
                    last_dial_failure: a.last_dial_failure,
                    dial_failures: a.dial_failures,
                    retry_jitter: a.retry_jitter,
                    address: a.address,
                };
                peer.addresses.insert(state.address.to_string(), state);
            }
            manager.insert_peer(peer);
            manager.reindex(record.node_id, ts);
        }
        manager.prune();
        Ok(manager)
    }

    /// Every stored record, in node-id order (what a database built from all store
    /// operations so far holds).
    pub fn records(&self) -> Vec<PeerRecord> {
        self.peers.values().map(Peer::record).collect()
    }

    /// The next store operation for the driver's database, or `None`. Changes to one peer
    /// between two polls coalesce into one operation carrying its latest state.
    pub fn poll_store_op(&mut self) -> Option<StoreOp> {
        let id = self.dirty.pop_first()?;
        Some(match self.peers.get(&id) {
            Some(peer) => StoreOp::Upsert(peer.record()),
            None => StoreOp::Delete(id),
        })
    }

    /// The earliest instant at which a waiting peer becomes dialable (a retry delay or a
    /// disconnect cooldown ends), or `None`. Call [`PeerManager::try_dial_next`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (at, _) = self.wakeups.first()?;
        self.clock.instant(*at)
    }

    /// Opens a peer-update subscription.
    pub fn subscribe(&mut self) -> SubscriptionId {
        self.subscriptions.subscribe()
    }

    /// Closes a subscription; it receives nothing more.
    pub fn unsubscribe(&mut self, id: SubscriptionId) {
        self.subscriptions.unsubscribe(id);
    }

    /// The subscription's next update, `Ok(None)` when it has none queued.
    ///
    /// # Errors
    /// [`SubscriptionClosed`] once a closed subscription's queue is drained.
    pub fn poll_update(
        &mut self,
        id: SubscriptionId,
    ) -> Result<Option<PeerUpdate>, SubscriptionClosed> {
        self.subscriptions.poll(id)
    }

    /// How long a disconnected peer waits before it is dialed again.
    pub fn disconnect_cooldown_period(&self) -> std::time::Duration {
        self.options.disconnect_cooldown_period
    }

    /// Redials as a PEX seed needs them: the cooldown is raised to at least `recrawl` (never
    /// lowered), so the peers it crawls and disconnects are not redialed every few seconds,
    /// and brief connections no longer grow it, since the seed ends each one itself once
    /// the peer answered (so they say nothing about the peer).
    pub fn use_seed_redials(&mut self, recrawl: std::time::Duration) {
        if recrawl > self.options.disconnect_cooldown_period {
            self.options.disconnect_cooldown_period = recrawl;
        }
        self.options.brief_connection_period = std::time::Duration::ZERO;
    }

    /// How soon after the handshake a connection's end counts as brief (zero: never).
    pub fn brief_connection_period(&self) -> std::time::Duration {
        self.options.brief_connection_period
    }

    /// The peer's current score, if it is known.
    pub fn score(&self, id: NodeId) -> Option<i16> {
        self.peers.get(&id).map(Peer::score)
    }

    /// Known peers, best first.
    pub fn ranked_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.ranked.iter().map(|(_, _, id)| *id)
    }

    /// The known addresses of a peer.
    pub fn addresses(&self, id: NodeId) -> Vec<NodeAddress> {
        self.peers.get(&id).map_or_else(Vec::new, |p| {
            p.addresses.values().map(|a| a.address.clone()).collect()
        })
    }

    /// The peer's most recent dial over all its addresses and whether it succeeded (a
    /// success and a failure at the same time count as a success); `None` if never dialed
    /// or unknown (v0.35 `LastDialed`).
    pub fn last_dialed(&self, id: NodeId) -> Option<(Timestamp, bool)> {
        let peer = self.peers.get(&id)?;
        let mut last: Option<(Timestamp, bool)> = None;
        for a in peer.addresses.values() {
            let candidates = [
                a.last_dial_success.map(|t| (t, true)),
                a.last_dial_failure.map(|t| (t, false)),
            ];
            for (t, success) in candidates.into_iter().flatten() {
                // (t, true) > (t, false): on a tie the success wins.
                if last.is_none_or(|l| (t, success) > l) {
                    last = Some((t, success));
                }
            }
        }
        last
    }

    /// Number of known peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Number of connected peers.
    pub fn connected_count(&self) -> usize {
        self.connected.len()
    }

    /// Number of outgoing connections.
    pub fn outgoing_count(&self) -> usize {
        self.outgoing
    }

    /// Number of dials in progress.
    pub fn dialing_count(&self) -> usize {
        self.dialing.len()
    }

    /// The direction of the peer's connection, if connected.
    pub fn connection(&self, id: NodeId) -> Option<Direction> {
        self.connected.get(&id).map(|c| c.direction)
    }

    /// Whether a dial of the peer is in progress.
    pub fn is_dialing(&self, id: NodeId) -> bool {
        self.dialing.contains_key(&id)
    }

    /// Whether the peer is connected and ready.
    pub fn is_ready(&self, id: NodeId) -> bool {
        self.ready.contains(&id)
    }

    /// Known peers over `max_peers` (0 when unlimited), as v0.35's `PeerRatio`.
    pub fn peer_ratio(&self) -> f64 {
        if self.options.max_peers == 0 {
            return 0.0;
        }
        self.peers.len() as f64 / f64::from(self.options.max_peers)
    }

    /// Adds an address (protocol.md §6.4 `Add`). `Ok(true)` if it is new, `Ok(false)` if
    /// already known. The store is then pruned to `max_peers`, which may delete the lowest
    /// ranked idle peer, possibly this one.
    ///
    /// # Errors
    /// [`PeerManagerError::SelfPeer`], [`PeerManagerError::InactivePeer`],
    /// [`PeerManagerError::IpGroupStoredFull`].
    pub fn add(&mut self, now: Instant, address: NodeAddress) -> Result<bool, PeerManagerError> {
        let id = address.node_id;
        if id == self.self_id {
            return Err(PeerManagerError::SelfPeer(id));
        }
        let key = address.to_string();
        let group = self.grouping.group_of_hostname(&address.hostname);
        let existing = self.peers.get(&id);
        if let Some(peer) = existing {
            if peer.addresses.contains_key(&key) {
                return Ok(false);
            }
            if peer.inactive {
                return Err(PeerManagerError::InactivePeer(id));
            }
        }
        let exempt = existing.map_or_else(|| self.is_group_exempt(id), |p| p.group_exempt);
        let limit = self.options.max_stored_per_ip_group;
        if let (Some(g), false, true) = (group, exempt, limit > 0) {
            let new_in_group = existing.is_none_or(|p| !p.has_group(g));
            if new_in_group && self.stored_groups.get(g) >= u32::from(limit) {
                return Err(PeerManagerError::IpGroupStoredFull { group: g, limit });
            }
        }
        if !self.peers.contains_key(&id) {
            let peer = self.new_peer(id);
            self.insert_peer(peer);
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return Err(PeerManagerError::UnknownPeer(id));
        };
        if let Some(g) = group {
            if !peer.group_exempt && !peer.has_group(g) {
                self.stored_groups.increment(g);
            }
        }
        if !peer.private {
            self.advertisable = self.advertisable.saturating_add(1);
        }
        peer.addresses
            .insert(key, AddressState::new(address, group));
        self.dirty.insert(id);
        self.rerank(id);
        self.reindex(id, self.clock.timestamp(now));
        self.prune();
        Ok(true)
    }

    /// Marks a peer inactive (its handshake showed it incompatible): no new addresses are
    /// taken for it until it connects again.
    ///
    /// # Errors
    /// [`PeerManagerError::UnknownPeer`].
    pub fn inactivate(&mut self, id: NodeId) -> Result<(), PeerManagerError> {
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or(PeerManagerError::UnknownPeer(id))?;
        peer.inactive = true;
        self.dirty.insert(id);
        Ok(())
    }

    /// Applies a score report: mutable score ±1, saturating.
    ///
    /// # Errors
    /// [`PeerManagerError::UnknownPeer`].
    pub fn report(&mut self, id: NodeId, report: ScoreReport) -> Result<(), PeerManagerError> {
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or(PeerManagerError::UnknownPeer(id))?;
        peer.mutable_score = match report {
            ScoreReport::Good => peer.mutable_score.saturating_add(1),
            ScoreReport::Bad => peer.mutable_score.saturating_sub(1),
        };
        self.dirty.insert(id);
        self.rerank(id);
        Ok(())
    }

    fn is_group_exempt(&self, id: NodeId) -> bool {
        self.options.persistent_peers.contains(&id)
            || self.options.unconditional_peers.contains(&id)
    }

    fn new_peer(&self, id: NodeId) -> Peer {
        let mut peer = Peer::new(id, peer::tie_break(self.self_id, id));
        peer.persistent = self.options.persistent_peers.contains(&id);
        peer.private = self.options.private_peers.contains(&id);
        peer.group_exempt = self.is_group_exempt(id);
        peer.fixed_score = self
            .options
            .peer_scores
            .get(&id)
            .copied()
            .filter(|s| *s > 0);
        peer
    }

    /// Registers a peer (with its addresses) in the store and its indexes.
    fn insert_peer(&mut self, mut peer: Peer) {
        let id = peer.id;
        peer.rank = peer.rank_key();
        peer.slot = DialSlot::Idle;
        if !peer.group_exempt {
            for g in peer.groups() {
                self.stored_groups.increment(g);
            }
        }
        if !peer.private {
            self.advertisable = self.advertisable.saturating_add(peer.addresses.len());
        }
        self.ranked.insert(peer.rank);
        self.peers.insert(id, peer);
        self.dirty.insert(id);
    }

    /// Removes a peer from the store and every index; queues its delete.
    fn delete_peer(&mut self, id: NodeId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        self.ranked.remove(&peer.rank);
        self.unslot(&peer);
        if !peer.group_exempt {
            for g in peer.groups() {
                self.stored_groups.decrement(g);
            }
        }
        if !peer.private {
            self.advertisable = self.advertisable.saturating_sub(peer.addresses.len());
        }
        self.dirty.insert(id);
    }

    /// Deletes the lowest-ranked peers that are not persistent, dialing or connected until
    /// the store holds at most `max_peers`. Runs after every change that adds a peer or
    /// makes one prunable, so a restart (which prunes too) finds the same store.
    fn prune(&mut self) {
        let max = usize::from(self.options.max_peers);
        if max == 0 {
            return;
        }
        while self.peers.len() > max {
            let victim = self.ranked.iter().rev().map(|(_, _, id)| *id).find(|id| {
                !self.dialing.contains_key(id)
                    && !self.connected.contains_key(id)
                    && !self.peers.get(id).is_some_and(|p| p.persistent)
            });
            match victim {
                Some(id) => {
                    tracing::debug!(peer = %id, "pruning peer store");
                    self.delete_peer(id);
                }
                None => break,
            }
        }
    }

    fn unslot(&mut self, peer: &Peer) {
        match peer.slot {
            DialSlot::Idle => {}
            DialSlot::Dialable => {
                self.dialable.remove(&peer.rank);
            }
            DialSlot::Waiting(at) => {
                self.wakeups.remove(&(at, peer.id));
            }
        }
    }

    /// Recomputes the peer's score and moves it in every ranked index it is in.
    fn rerank(&mut self, id: NodeId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let key = peer.rank_key();
        if key == peer.rank {
            return;
        }
        let old = std::mem::replace(&mut peer.rank, key);
        self.ranked.remove(&old);
        self.ranked.insert(key);
        if peer.slot == DialSlot::Dialable {
            self.dialable.remove(&old);
            self.dialable.insert(key);
        }
        if self.connected_ranked.remove(&old) {
            self.connected_ranked.insert(key);
        }
    }

    /// Puts the peer in the dialable index, the wake-up queue, or neither, according to
    /// its state at `now`.
    fn reindex(&mut self, id: NodeId, now: Timestamp) {
        let busy = self.dialing.contains_key(&id) || self.connected.contains_key(&id);
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let slot = if busy {
            DialSlot::Idle
        } else {
            let isolated_cap = (self.connected.is_empty()
                && !self.options.isolated_redial_period.is_zero())
            .then_some(self.options.isolated_redial_period);
            match peer.ready_at(
                &self.policy,
                self.options.disconnect_cooldown_period,
                isolated_cap,
            ) {
                None => DialSlot::Idle,
                Some(at) if at <= now => DialSlot::Dialable,
                Some(at) => DialSlot::Waiting(at),
            }
        };
        if slot == peer.slot {
            return;
        }
        let (old, rank) = (peer.slot, peer.rank);
        match old {
            DialSlot::Idle => {}
            DialSlot::Dialable => {
                self.dialable.remove(&rank);
            }
            DialSlot::Waiting(at) => {
                self.wakeups.remove(&(at, id));
            }
        }
        match slot {
            DialSlot::Idle => {}
            DialSlot::Dialable => {
                self.dialable.insert(rank);
            }
            DialSlot::Waiting(at) => {
                self.wakeups.insert((at, id));
            }
        }
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.slot = slot;
        }
    }

    /// Moves every peer whose wake-up time has come into the dialable index.
    fn promote_due(&mut self, now: Timestamp) {
        while let Some(&(at, id)) = self.wakeups.first() {
            if at > now {
                break;
            }
            self.wakeups.pop_first();
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.slot = DialSlot::Dialable;
                self.dialable.insert(peer.rank);
            }
        }
    }
}
