//! The limit invariants every running node must keep at every step: connected peers within
//! `max_connected` plus upgrade slots, outgoing within `max_outgoing_connections`,
//! connections within `max_connections`, and the router never routing more peers than its
//! PeerManager counts as connected.

use super::{Sim, SimError};

impl Sim {
    /// Checks the limits of every running node: connected peers within `max_connected`
    /// plus upgrade slots, connections within `max_connections`, and the router and driver
    /// agreeing on the connected set.
    ///
    /// # Errors
    /// [`SimError::Invariant`] naming the node and limit.
    pub fn check_limits(&self) -> Result<(), SimError> {
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(running) = &node.running else {
                continue;
            };
            let options = &node.spec.config.peer_manager;
            let connected = running.node.router().peer_manager().connected_count();
            let cap =
                usize::from(options.max_connected) + usize::from(options.max_connected_upgrade);
            if options.max_connected > 0 && connected > cap {
                return Err(self.violation(format!(
                    "node {i} has {connected} connected peers, above max_connected + upgrade = {cap}"
                )));
            }
            let outgoing = running.node.router().peer_manager().outgoing_count();
            let max_out = usize::from(options.max_outgoing_connections);
            if max_out > 0 && outgoing > max_out {
                return Err(self.violation(format!(
                    "node {i} has {outgoing} outgoing connections, above max_outgoing_connections {max_out}"
                )));
            }
            let routed = running.node.connected_peers().count();
            if routed > connected {
                return Err(self.violation(format!(
                    "node {i} routes {routed} peers but its peer manager counts {connected}"
                )));
            }
            let max = node.spec.config.max_connections;
            if running.conns.len() > max {
                return Err(self.violation(format!(
                    "node {i} holds {} connections, above max_connections {max}",
                    running.conns.len()
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn violation(&self, what: String) -> SimError {
        SimError::Invariant {
            at: self.elapsed(),
            what,
        }
    }
}
