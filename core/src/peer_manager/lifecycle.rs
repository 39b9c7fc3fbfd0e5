//! The connection lifecycle (protocol.md §6.4): dial_next, dial_failed, dialed, accepted,
//! ready, evict_next, disconnected, errored, with upgrades of lower-scored peers.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::record::Timestamp;
use super::{
    Connection, Direction, IpGroup, NodeAddress, PeerManager, PeerManagerError, PeerStatus,
    PeerUpdate,
};
use crate::id::NodeId;

impl PeerManager {
    /// Moves peers whose retry delay or cooldown has ended into the dialable index. Safe to
    /// call at any time; [`PeerManager::try_dial_next`] calls it itself.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.promote_due(self.clock.timestamp(now));
    }

    /// The next address to dial, or `None` (v0.35 `TryDialNext`): the best-ranked peer
    /// that is not dialing, connected, cooling down or waiting out a retry delay, and whose
    /// IP group has room. When all `max_connected` slots are taken it is only returned if
    /// it can upgrade (replace) a lower-scored connected peer, which it then claims.
    pub fn try_dial_next(&mut self, now: Instant) -> Option<NodeAddress> {
        let ts = self.clock.timestamp(now);
        self.promote_due(ts);
        let max_connected = usize::from(self.options.max_connected);
        let upgrade = usize::from(self.options.max_connected_upgrade);
        if max_connected > 0
            && self.connected.len().saturating_add(self.dialing.len())
                >= max_connected.saturating_add(upgrade)
        {
            return None;
        }
        let max_out = usize::from(self.options.max_outgoing_connections);
        if max_out > 0 && self.outgoing.saturating_add(self.dialing.len()) >= max_out {
            return None;
        }
        let group_cap = u32::from(self.options.max_connected_per_ip_group);
        let mut choice = None;
        for (_, _, id) in &self.dialable {
            let Some(peer) = self.peers.get(id) else {
                continue;
            };
            let usable = peer.addresses.values().find(|a| {
                a.ready_at(&self.policy, peer.persistent)
                    .is_some_and(|t| t <= ts)
                    && match a.group {
                        Some(g) if group_cap > 0 && !peer.group_exempt => {
                            self.connected_groups
                                .get(g)
                                .saturating_add(self.dialing_groups.get(g))
                                < group_cap
                        }
                        _ => true,
                    }
            });
            let Some(address) = usable else {
                continue;
            };
            let mut upgrade_from = None;
            if max_connected > 0 && self.connected.len() >= max_connected {
                match self.find_upgrade_candidate(*id, peer.score()) {
                    Some(lower) => upgrade_from = Some(lower),
                    None => return None,
                }
            }
            choice = Some((*id, address.address.clone(), address.group, upgrade_from));
            break;
        }
        let (id, address, group, upgrade_from) = choice?;
        let group = group.filter(|_| !self.peers.get(&id).is_some_and(|p| p.group_exempt));
        self.dialing.insert(id, group);
        if let Some(g) = group {
            self.dialing_groups.increment(g);
        }
        if let Some(lower) = upgrade_from {
            self.upgrading.insert(lower, id);
            self.upgrading_to.insert(id, lower);
        }
        self.reindex(id, ts);
        Some(address)
    }

    /// A dial of `address` failed: the dial and any upgrade claim end; a known address
    /// counts the failure and waits `retry_delay` (jitter drawn from `rng`) before it is
    /// dialed again.
    pub fn dial_failed(&mut self, now: Instant, address: &NodeAddress, rng: &mut impl RngCore) {
        let id = address.node_id;
        let ts = self.clock.timestamp(now);
        self.end_dial(id);
        let jitter = self.draw_jitter(rng);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        // A peer has few addresses: comparing them beats formatting the lookup key.
        if let Some(a) = peer.addresses.values_mut().find(|a| a.address == *address) {
            a.last_dial_failure = Some(ts);
            a.dial_failures = a.dial_failures.saturating_add(1);
            a.retry_jitter = jitter;
            self.dirty.insert(id);
            self.rerank(id);
        }
        self.reindex(id, ts);
        self.prune();
    }

    /// A dial of `address` succeeded and the handshake proved the peer's identity.
    /// `remote_ip` is the IP actually connected to (for the IP-group cap; the address's
    /// hostname is used when it is `None`).
    ///
    /// # Errors
    /// [`PeerManagerError::SelfPeer`], [`PeerManagerError::AlreadyConnected`] (e.g. it
    /// connected inbound meanwhile), [`PeerManagerError::Full`],
    /// [`PeerManagerError::OutgoingFull`],
    /// [`PeerManagerError::UnknownPeer`], [`PeerManagerError::IpGroupConnectedFull`]. On
    /// error the caller closes the connection.
    pub fn dialed(
        &mut self,
        now: Instant,
        address: &NodeAddress,
        remote_ip: Option<IpAddr>,
    ) -> Result<(), PeerManagerError> {
        let id = address.node_id;
        let ts = self.clock.timestamp(now);
        let upgrade_from = self.end_dial(id);
        let result = self.dialed_checked(ts, address, remote_ip, upgrade_from.is_some());
        self.reindex(id, ts);
        if result.is_ok() && upgrade_from.is_some() {
            let max = usize::from(self.options.max_connected);
            // Still full (nobody left meanwhile): evict the lowest peer below us, which
            // may be lower than the one originally claimed.
            if max > 0 && self.connected.len() > max {
                let lower = self
                    .score(id)
                    .and_then(|score| self.find_upgrade_candidate(id, score))
                    .or(upgrade_from.filter(|l| self.connected.contains_key(l)));
                if let Some(lower) = lower {
                    self.evict.insert(lower);
                }
            }
        }
        self.prune();
        result
    }

    fn dialed_checked(
        &mut self,
        ts: super::Timestamp,
        address: &NodeAddress,
        remote_ip: Option<IpAddr>,
        upgrading: bool,
    ) -> Result<(), PeerManagerError> {
        let id = address.node_id;
        if id == self.self_id {
            return Err(PeerManagerError::SelfPeer(id));
        }
        if self.connected.contains_key(&id) {
            return Err(PeerManagerError::AlreadyConnected(id));
        }
        let max = usize::from(self.options.max_connected);
        let with_upgrade = max.saturating_add(usize::from(self.options.max_connected_upgrade));
        if max > 0 && self.connected.len() >= max {
            if !upgrading {
                return Err(PeerManagerError::Full { limit: max });
            }
            if self.connected.len() >= with_upgrade {
                return Err(PeerManagerError::Full {
                    limit: with_upgrade,
                });
            }
        }
        let max_out = usize::from(self.options.max_outgoing_connections);
        if max_out > 0 && self.outgoing >= max_out {
            return Err(PeerManagerError::OutgoingFull { limit: max_out });
        }
        let Some(peer) = self.peers.get(&id) else {
            return Err(PeerManagerError::UnknownPeer(id));
        };
        let group = if peer.group_exempt {
            None
        } else {
            match remote_ip {
                Some(ip) => self.grouping.group_of(ip),
                None => self.grouping.group_of_hostname(&address.hostname),
            }
        };
        self.check_connected_group(group)?;
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.inactive = false;
            peer.last_connected = Some(ts);
            if let Some(a) = peer.addresses.values_mut().find(|a| a.address == *address) {
                a.dial_failures = 0;
                a.last_dial_success = Some(ts);
            }
        }
        self.connect(ts, id, Direction::Outbound, group);
        Ok(())
    }

    /// A peer connected to us and proved its identity (v0.35 `Accepted`). An unknown peer
    /// is registered; all its addresses' failure counts reset. When the regular slots are
    /// full it is accepted only if it can replace a lower-scored peer, which is then
    /// scheduled for eviction. An inbound connection from a peer we are dialing wins: the
    /// later `dialed` fails.
    ///
    /// # Errors
    /// [`PeerManagerError::SelfPeer`], [`PeerManagerError::AlreadyConnected`],
    /// [`PeerManagerError::Full`], [`PeerManagerError::IpGroupConnectedFull`].
    pub fn accepted(
        &mut self,
        now: Instant,
        id: NodeId,
        remote_ip: Option<IpAddr>,
    ) -> Result<(), PeerManagerError> {
        if id == self.self_id {
            return Err(PeerManagerError::SelfPeer(id));
        }
        if self.connected.contains_key(&id) {
            return Err(PeerManagerError::AlreadyConnected(id));
        }
        let max = usize::from(self.options.max_connected);
        let with_upgrade = max.saturating_add(usize::from(self.options.max_connected_upgrade));
        if max > 0 && self.connected.len() >= with_upgrade {
            return Err(PeerManagerError::Full {
                limit: with_upgrade,
            });
        }
        let existing = self.peers.get(&id);
        let exempt = existing.map_or_else(|| self.is_group_exempt(id), |p| p.group_exempt);
        // The score it will have once its failures are reset.
        let mut probe = existing.cloned().unwrap_or_else(|| self.new_peer(id));
        for a in probe.addresses.values_mut() {
            a.dial_failures = 0;
        }
        let score = probe.score();
        let mut upgrade_from = None;
        if max > 0 && self.connected.len() >= max {
            upgrade_from = self.find_upgrade_candidate(id, score);
            if upgrade_from.is_none() {
                return Err(PeerManagerError::Full { limit: max });
            }
        }
        let group = if exempt {
            None
        } else {
            remote_ip.and_then(|ip| self.grouping.group_of(ip))
        };
        self.check_connected_group(group)?;
        let ts = self.clock.timestamp(now);
        if !self.peers.contains_key(&id) {
            let peer = self.new_peer(id);
            self.insert_peer(peer);
        }
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.last_connected = Some(ts);
            peer.inactive = false;
            for a in peer.addresses.values_mut() {
                a.dial_failures = 0;
            }
        }
        self.dirty.insert(id);
        self.rerank(id);
        if let Some(lower) = upgrade_from {
            self.evict.insert(lower);
        }
        self.connect(ts, id, Direction::Inbound, group);
        self.reindex(id, ts);
        self.prune();
        Ok(())
    }

    /// The peer's connection is set up and routed (v0.35 `Ready`): it becomes `Up`, and
    /// subscribers get an update carrying its channels. Ignored for unconnected peers.
    pub fn ready(&mut self, id: NodeId, channels: Vec<u16>) {
        if self.connected.contains_key(&id) && self.ready.insert(id) {
            self.subscriptions.broadcast(&PeerUpdate {
                node_id: id,
                status: PeerStatus::Up,
                channels,
            });
        }
    }

    /// The next peer to disconnect, or `None` (v0.35 `TryEvictNext`): first a peer marked
    /// for eviction (errored or upgraded away), else, while more than `max_connected` are
    /// connected and not already being evicted, the lowest-ranked one. A returned peer is
    /// not returned again while its eviction is under way.
    pub fn try_evict_next(&mut self) -> Option<NodeId> {
        while let Some(id) = self.evict.pop_first() {
            if self.connected.contains_key(&id) && self.evicting.insert(id) {
                return Some(id);
            }
        }
        let max = usize::from(self.options.max_connected);
        if max == 0 || self.connected.len().saturating_sub(self.evicting.len()) <= max {
            return None;
        }
        let lowest = self
            .connected_ranked
            .iter()
            .rev()
            .map(|(_, _, id)| *id)
            .find(|id| !self.evicting.contains(id))?;
        self.evicting.insert(lowest);
        Some(lowest)
    }

    /// The peer's connection closed (v0.35 `Disconnected`). A peer that was up becomes
    /// `Down` for subscribers; it is not redialed for `disconnect_cooldown_period`, doubled
    /// for each brief connection in a row beyond the first (`brief_connection_period`), but
    /// cut to `isolated_redial_period` while the node has no connection left, as a CometBFT
    /// node without peers falls back to its seeds. A dial of it in progress continues.
    pub fn disconnected(&mut self, now: Instant, id: NodeId) {
        let ts = self.clock.timestamp(now);
        let brief = self.options.brief_connection_period;
        let was_ready = self.ready.remove(&id);
        let connection = self.connected.remove(&id);
        let was_connected = connection.is_some();
        if let Some(conn) = connection {
            if conn.direction == Direction::Outbound {
                self.outgoing = self.outgoing.saturating_sub(1);
            }
            if let Some(g) = conn.group {
                self.connected_groups.decrement(g);
            }
            if let Some(peer) = self.peers.get(&id) {
                self.connected_ranked.remove(&peer.rank);
            }
        }
        self.evict.remove(&id);
        self.evicting.remove(&id);
        if let Some(to) = self.upgrading.remove(&id) {
            self.upgrading_to.remove(&to);
        }
        if let Some(peer) = self.peers.get_mut(&id) {
            let was_brief = was_connected
                && !brief.is_zero()
                && peer
                    .last_connected
                    .is_some_and(|at| ts < at.saturating_add(brief));
            if was_brief {
                peer.brief_streak = peer.brief_streak.saturating_add(1);
            } else if was_connected {
                peer.brief_streak = 0;
            }
            peer.last_disconnected = Some(ts);
            self.dirty.insert(id);
            self.reindex(id, ts);
        }
        if was_connected && self.connected.is_empty() {
            // Alone now: peers kept away by brief connections come back sooner.
            self.reindex_backed_off(ts);
        }
        self.prune();
        if was_ready {
            self.subscriptions.broadcast(&PeerUpdate {
                node_id: id,
                status: PeerStatus::Down,
                channels: Vec::new(),
            });
        }
    }

    /// The peer misbehaved fatally (v0.35 `Errored`): if connected, it is scheduled for
    /// eviction. Errors about unconnected peers are ignored.
    pub fn errored(&mut self, id: NodeId) {
        if self.connected.contains_key(&id) {
            self.evict.insert(id);
        }
    }

    /// Ends a dial of `id` and its upgrade claim; returns the claimed lower peer.
    fn end_dial(&mut self, id: NodeId) -> Option<NodeId> {
        if let Some(Some(g)) = self.dialing.remove(&id) {
            self.dialing_groups.decrement(g);
        }
        let lower = self.upgrading_to.remove(&id)?;
        self.upgrading.remove(&lower);
        Some(lower)
    }

    /// Recomputes when the peers kept away by brief connections may be dialed: the node
    /// just lost its last connection, or got its first.
    fn reindex_backed_off(&mut self, ts: Timestamp) {
        let backed_off: Vec<NodeId> = self
            .peers
            .values()
            .filter(|peer| peer.brief_streak > 1)
            .map(|peer| peer.id)
            .collect();
        for peer in backed_off {
            self.reindex(peer, ts);
        }
    }

    fn connect(&mut self, ts: Timestamp, id: NodeId, direction: Direction, group: Option<IpGroup>) {
        let was_isolated = self.connected.is_empty();
        self.connected.insert(id, Connection { direction, group });
        if was_isolated {
            // No longer alone: the backed-off peers wait their full cooldown again.
            self.reindex_backed_off(ts);
        }
        if direction == Direction::Outbound {
            self.outgoing = self.outgoing.saturating_add(1);
        }
        if let Some(g) = group {
            self.connected_groups.increment(g);
        }
        if let Some(peer) = self.peers.get(&id) {
            self.connected_ranked.insert(peer.rank);
        }
        self.dirty.insert(id);
        self.rerank(id);
    }

    fn check_connected_group(&self, group: Option<IpGroup>) -> Result<(), PeerManagerError> {
        let limit = self.options.max_connected_per_ip_group;
        match group {
            Some(g) if limit > 0 && self.connected_groups.get(g) >= u32::from(limit) => {
                Err(PeerManagerError::IpGroupConnectedFull { group: g, limit })
            }
            _ => Ok(()),
        }
    }

    /// The peer `id` may replace: the one it already claimed (dialing for an upgrade),
    /// else the lowest-ranked connected peer scoring below `score` that is not already
    /// being evicted or claimed by another upgrade.
    fn find_upgrade_candidate(&self, id: NodeId, score: i16) -> Option<NodeId> {
        if let Some(claimed) = self.upgrading_to.get(&id) {
            return Some(*claimed);
        }
        for (rank, _, candidate) in self.connected_ranked.iter().rev() {
            if rank.0 >= score {
                return None;
            }
            if self.evict.contains(candidate)
                || self.evicting.contains(candidate)
                || self.upgrading.contains_key(candidate)
            {
                continue;
            }
            return Some(*candidate);
        }
        None
    }

    fn draw_jitter(&self, rng: &mut impl RngCore) -> Duration {
        let max = u64::try_from(self.options.retry_time_jitter.as_nanos()).unwrap_or(u64::MAX);
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.next_u64() % max) // cannot panic: max > 0
    }
}
