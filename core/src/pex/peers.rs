//! [`PexPeers`]: what the PEX reactor needs from the PeerManager, implemented for the
//! [`PeerManager`] itself and for the [`Router`] that owns one.

use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::address::NodeAddress;
use crate::id::NodeId;
use crate::peer_manager::{Direction, PeerManager, PeerManagerError};
use crate::router::Router;

/// The PeerManager operations PEX uses.
pub trait PexPeers {
    /// Offers a learned address (`PeerManager::add`: its IP-group caps apply). `Ok(true)`
    /// if it was new.
    ///
    /// # Errors
    /// The PeerManager's refusal.
    fn add_address(&mut self, now: Instant, address: NodeAddress)
        -> Result<bool, PeerManagerError>;

    /// Called once after the addresses of one response were offered (a Router starts
    /// dials here).
    fn addresses_added(&mut self, now: Instant) {
        let _ = now;
    }

    /// One PEX answer held `received` addresses, of which the peer store took `new` as
    /// new; for the node's counters.
    fn pex_answer_counted(&mut self, received: usize, new: usize) {
        let _ = (received, new);
    }

    /// Up to `limit` addresses to give peer `to` (`PeerManager::advertise`).
    fn advertise_to(&self, to: NodeId, limit: usize, rng: &mut dyn RngCore) -> Vec<NodeAddress>;

    /// Known peers over the store's capacity (`PeerManager::peer_ratio`).
    fn peer_ratio(&self) -> f64;

    /// The direction of the peer's connection, if connected.
    fn direction(&self, id: NodeId) -> Option<Direction>;

    /// The peer's stored addresses.
    fn known_addresses(&self, id: NodeId) -> Vec<NodeAddress>;
    /// Redial as a seed: a cooldown of at least `recrawl`, not grown by brief connections
    /// (`PeerManager::use_seed_redials`).
    fn use_seed_redials(&mut self, recrawl: Duration);
}

impl PexPeers for PeerManager {
    fn add_address(
        &mut self,
        now: Instant,
        address: NodeAddress,
    ) -> Result<bool, PeerManagerError> {
        self.add(now, address)
    }

    fn advertise_to(
        &self,
        to: NodeId,
        limit: usize,
        mut rng: &mut dyn RngCore,
    ) -> Vec<NodeAddress> {
        self.advertise(to, limit, &mut rng)
    }

    fn peer_ratio(&self) -> f64 {
        PeerManager::peer_ratio(self)
    }

    fn direction(&self, id: NodeId) -> Option<Direction> {
        self.connection(id)
    }

    fn known_addresses(&self, id: NodeId) -> Vec<NodeAddress> {
        self.addresses(id)
    }

    fn use_seed_redials(&mut self, recrawl: Duration) {
        PeerManager::use_seed_redials(self, recrawl);
    }
}

/// Through the Router: addresses go to its PeerManager, and after each response the
/// Router is given a timeout call at `now`, which starts dials to new addresses and queues
/// its store operations (a `handle_timeout` at any time is harmless).
impl PexPeers for Router {
    fn add_address(
        &mut self,
        now: Instant,
        address: NodeAddress,
    ) -> Result<bool, PeerManagerError> {
        self.peer_manager_mut().add(now, address)
    }

    fn addresses_added(&mut self, now: Instant) {
        self.handle_timeout(now);
    }

    fn pex_answer_counted(&mut self, received: usize, new: usize) {
        self.counters().pex_answer(received, new);
    }

    fn advertise_to(&self, to: NodeId, limit: usize, rng: &mut dyn RngCore) -> Vec<NodeAddress> {
        self.peer_manager().advertise_to(to, limit, rng)
    }

    fn peer_ratio(&self) -> f64 {
        self.peer_manager().peer_ratio()
    }

    fn direction(&self, id: NodeId) -> Option<Direction> {
        self.peer_manager().connection(id)
    }

    fn known_addresses(&self, id: NodeId) -> Vec<NodeAddress> {
        self.peer_manager().addresses(id)
    }

    fn use_seed_redials(&mut self, recrawl: Duration) {
        self.peer_manager_mut().use_seed_redials(recrawl);
    }
}
