//! `advertise`: the addresses we hand a peer that asks for more peers (PEX).
//!
//! Our own address comes first (when it has a hostname and a port); then addresses of
//! known peers, never of private peers and never the requester's own. If all eligible
//! addresses fit, all are returned, best-ranked first. Otherwise peers are sampled walking
//! the ranking from the top, each taken with probability [`TAKE_PROBABILITY`] (geometric
//! skips, so the walk costs about `limit / TAKE_PROBABILITY` steps, not the number of known
//! peers); if the walk ends short, the best-ranked peers not yet taken fill the rest. Higher
//! scores are thus strongly favoured while lower ones still appear.

use std::collections::BTreeSet;

use rand_core::RngCore;

use super::{NodeAddress, PeerManager};
use crate::id::NodeId;

/// Probability that the sampling walk takes the peer it stands on.
pub(super) const TAKE_PROBABILITY: f64 = 0.1;

impl PeerManager {
    /// Up to `limit` addresses to advertise to peer `to` (see the module docs).
    pub fn advertise(&self, to: NodeId, limit: usize, rng: &mut impl RngCore) -> Vec<NodeAddress> {
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return out;
        }
        if let Some(own) = &self.options.self_address {
            if !own.hostname.is_empty() && own.port != 0 {
                out.push(own.clone());
            }
        }
        let requester_addresses = self
            .peers
            .get(&to)
            .filter(|p| !p.private)
            .map_or(0, |p| p.addresses.len());
        let eligible = self.advertisable.saturating_sub(requester_addresses);
        let room = limit.saturating_sub(out.len());
        let mut taken = BTreeSet::new();
        if eligible > room {
            let mut walk = self.ranked.iter();
            while out.len() < limit {
                let Some((_, _, id)) = walk.nth(geometric_skip(rng)) else {
                    break;
                };
                self.take(*id, to, limit, &mut out, &mut taken);
            }
        }
        for (_, _, id) in &self.ranked {
            if out.len() >= limit {
                break;
            }
            if !taken.contains(id) {
                self.take(*id, to, limit, &mut out, &mut taken);
            }
        }
        out
    }

    fn take(
        &self,
        id: NodeId,
        to: NodeId,
        limit: usize,
        out: &mut Vec<NodeAddress>,
        taken: &mut BTreeSet<NodeId>,
    ) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if peer.private || id == to {
            return;
        }
        taken.insert(id);
        for a in peer.addresses.values() {
            if out.len() >= limit {
                break;
            }
            out.push(a.address.clone());
        }
    }
}

/// How many peers the walk passes before taking one: geometric with success probability
/// [`TAKE_PROBABILITY`].
fn geometric_skip(rng: &mut impl RngCore) -> usize {
    // uniform in (0, 1]
    let u = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let skip = (u.ln() / (1.0 - TAKE_PROBABILITY).ln()).floor();
    if skip.is_finite() && skip >= 0.0 {
        skip as usize
    } else {
        0
    }
}
