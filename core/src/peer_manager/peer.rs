//! One known peer as the manager holds it: its addresses with their dial history, its
//! score, and where it sits in the dialing indexes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::ip_group::IpGroup;
use super::record::{AddressRecord, PeerRecord, Timestamp};
use super::retry::{redial_cooldown, retry_delay, RetryPolicy};
use crate::address::NodeAddress;
use crate::id::NodeId;

/// The score of a persistent peer.
pub const PEER_SCORE_PERSISTENT: i16 = i16::MAX;
/// The highest score a non-persistent peer can reach.
pub const MAX_PEER_SCORE_NOT_PERSISTENT: i16 = i16::MAX - 1;

/// Orders peers best first. Ties are broken by a per-node order ([`tie_break`]), then by
/// node id so the order is total and deterministic.
pub(super) type RankKey = (Reverse<i16>, u64, NodeId);

/// The order in which node `own` ranks peers of equal score: a mix of both ids, so it is
/// fixed for one node (deterministic, no RNG needed) but differs from node to node. Ranked
/// by id alone, every node that learned the same addresses (from the same seed, say) would
/// dial them in the same order and the network would grow into a hub around the lowest ids;
/// v0.35 breaks score ties by map order, which is random.
pub(super) fn tie_break(own: NodeId, peer: NodeId) -> u64 {
    let word = |id: NodeId| {
        let mut bytes = [0u8; 8];
        for (to, from) in bytes.iter_mut().zip(id.as_bytes()) {
            *to = *from;
        }
        u64::from_le_bytes(bytes)
    };
    // The SplitMix64 finalizer: every input bit moves every output bit.
    let mut z = word(own) ^ word(peer);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where a peer sits in the dialing indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DialSlot {
    /// Not dialable: dialing, connected, no address, or retries exhausted.
    Idle,
    /// In the ranked dialable index.
    Dialable,
    /// In the wake-up queue until this time.
    Waiting(Timestamp),
}

#[derive(Debug, Clone)]
pub(super) struct AddressState {
    pub(super) address: NodeAddress,
    pub(super) group: Option<IpGroup>,
    pub(super) last_dial_success: Option<Timestamp>,
    pub(super) last_dial_failure: Option<Timestamp>,
    pub(super) dial_failures: u32,
    pub(super) retry_jitter: Duration,
}

impl AddressState {
    pub(super) fn new(address: NodeAddress, group: Option<IpGroup>) -> Self {
        AddressState {
            address,
            group,
            last_dial_success: None,
            last_dial_failure: None,
            dial_failures: 0,
            retry_jitter: Duration::ZERO,
        }
    }

    /// When this address may next be dialed; `None` = never.
    pub(super) fn ready_at(&self, policy: &RetryPolicy, persistent: bool) -> Option<Timestamp> {
        let delay = retry_delay(policy, self.dial_failures, persistent, self.retry_jitter)?;
        if self.dial_failures == 0 {
            return Some(Timestamp(0));
        }
        Some(
            self.last_dial_failure
                .unwrap_or(Timestamp(0))
                .saturating_add(delay),
        )
    }
}

#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub(super) id: NodeId,
    /// Keyed by the address string.
    pub(super) addresses: BTreeMap<String, AddressState>,
    pub(super) last_connected: Option<Timestamp>,
    pub(super) last_disconnected: Option<Timestamp>,
    /// Connections in a row that ended within `brief_connection_period` (not stored: a
    /// restart forgets it).
    pub(super) brief_streak: u32,
    pub(super) inactive: bool,
    pub(super) mutable_score: i16,
    pub(super) persistent: bool,
    pub(super) private: bool,
    /// Persistent or unconditional: no IP-group caps.
    pub(super) group_exempt: bool,
    pub(super) fixed_score: Option<i16>,
    pub(super) rank: RankKey,
    /// This peer's place among peers of equal score ([`tie_break`]).
    pub(super) tie_break: u64,
    pub(super) slot: DialSlot,
}

impl Peer {
    /// A peer with no address yet, ranked among equals by `tie_break`.
    pub(super) fn new(id: NodeId, tie_break: u64) -> Self {
        Peer {
            id,
            addresses: BTreeMap::new(),
            last_connected: None,
            last_disconnected: None,
            brief_streak: 0,
            inactive: false,
            mutable_score: 0,
            persistent: false,
            private: false,
            group_exempt: false,
            fixed_score: None,
            rank: (Reverse(0), tie_break, id),
            tie_break,
            slot: DialSlot::Idle,
        }
    }

    /// protocol.md §6.3: fixed score if positive; else 32767 if persistent; else the
    /// mutable score minus all dial failures, within `[-32768, 32766]`.
    pub(super) fn score(&self) -> i16 {
        if let Some(fixed) = self.fixed_score {
            return fixed;
        }
        if self.persistent {
            return PEER_SCORE_PERSISTENT;
        }
        let failures: i64 = self
            .addresses
            .values()
            .map(|a| i64::from(a.dial_failures))
            .sum();
        let score = i64::from(self.mutable_score).saturating_sub(failures);
        let clamped = score.clamp(
            i64::from(i16::MIN),
            i64::from(MAX_PEER_SCORE_NOT_PERSISTENT),
        );
        i16::try_from(clamped).unwrap_or(i16::MIN)
    }

    pub(super) fn rank_key(&self) -> RankKey {
        (Reverse(self.score()), self.tie_break, self.id)
    }

    /// When the peer may next be dialed: its earliest ready address, but not before the
    /// disconnect cooldown (grown by brief connections in a row, but to `isolated_cap` at
    /// most when given: the node has no connection at all) ends. `None` = never (no
    /// address, or retries disabled).
    pub(super) fn ready_at(
        &self,
        policy: &RetryPolicy,
        cooldown: Duration,
        isolated_cap: Option<Duration>,
    ) -> Option<Timestamp> {
        let earliest = self
            .addresses
            .values()
            .filter_map(|a| a.ready_at(policy, self.persistent))
            .min()?;
        let mut grown = redial_cooldown(policy, cooldown, self.brief_streak, self.persistent);
        if let Some(cap) = isolated_cap {
            grown = grown.min(cooldown.max(cap));
        }
        let cooldown = grown;
        let cooled = self
            .last_disconnected
            .map_or(Timestamp(0), |t| t.saturating_add(cooldown));
        Some(earliest.max(cooled))
    }

    pub(super) fn groups(&self) -> BTreeSet<IpGroup> {
        self.addresses.values().filter_map(|a| a.group).collect()
    }

    pub(super) fn has_group(&self, group: IpGroup) -> bool {
        self.addresses.values().any(|a| a.group == Some(group))
    }

    pub(super) fn record(&self) -> PeerRecord {
        PeerRecord {
            node_id: self.id,
            addresses: self
                .addresses
                .values()
                .map(|a| AddressRecord {
                    address: a.address.clone(),
                    last_dial_success: a.last_dial_success,
                    last_dial_failure: a.last_dial_failure,
                    dial_failures: a.dial_failures,
                    retry_jitter: a.retry_jitter,
                })
                .collect(),
            last_connected: self.last_connected,
            last_disconnected: self.last_disconnected,
            inactive: self.inactive,
            mutable_score: self.mutable_score,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_with_failures(mutable: i16, failures: u32) -> Peer {
        let mut p = Peer::new(NodeId::from_bytes([1; 20]), 0);
        p.mutable_score = mutable;
        let addr = NodeAddress::parse(&format!("{}@1.2.3.4:1", p.id)).unwrap();
        let mut a = AddressState::new(addr, None);
        a.dial_failures = failures;
        p.addresses.insert("a".into(), a);
        p
    }

    #[test]
    fn score_subtracts_failures_and_saturates() {
        assert_eq!(peer_with_failures(5, 2).score(), 3);
        assert_eq!(peer_with_failures(i16::MIN, u32::MAX).score(), i16::MIN);
        assert_eq!(
            peer_with_failures(i16::MAX, 0).score(),
            MAX_PEER_SCORE_NOT_PERSISTENT
        );
        let mut p = peer_with_failures(0, 9);
        p.persistent = true;
        assert_eq!(p.score(), PEER_SCORE_PERSISTENT);
        p.fixed_score = Some(7);
        assert_eq!(p.score(), 7);
    }
}
