//! [`PeerManagerOptions`]: the peer manager's limits and policies (protocol.md §6.2), plus
//! the IP-group caps and subscription bound that v0.35.9 lacks, and their validation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::retry::RetryPolicy;
use crate::address::NodeAddress;
use crate::id::NodeId;

/// Why a set of options was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// More persistent peers than connection slots.
    #[error("{persistent} persistent peers exceed max_connected {max_connected}")]
    TooManyPersistentPeers {
        /// Number of persistent peers configured.
        persistent: usize,
        /// The `max_connected` limit.
        max_connected: u16,
    },
    /// `max_peers` is set but `max_connected` is not.
    #[error("max_peers {max_peers} requires max_connected to be set")]
    MaxPeersWithoutMaxConnected {
        /// The `max_peers` limit.
        max_peers: u16,
    },
    /// The store cannot even hold the connected peers.
    #[error("max_connected {max_connected} + max_connected_upgrade {upgrade} exceeds max_peers {max_peers}")]
    MaxPeersTooSmall {
        /// The `max_peers` limit.
        max_peers: u16,
        /// The `max_connected` limit.
        max_connected: u16,
        /// The `max_connected_upgrade` limit.
        upgrade: u16,
    },
    /// A retry cap is set without a base retry time.
    #[error("a retry cap is set but min_retry_time is zero")]
    RetryCapWithoutMinRetry,
    /// A retry cap is smaller than the base retry time.
    #[error("retry cap {cap:?} is below min_retry_time {min:?}")]
    RetryCapBelowMin {
        /// The offending cap.
        cap: Duration,
        /// `min_retry_time`.
        min: Duration,
    },
    /// More outgoing connections allowed than connections in total.
    #[error("max_outgoing_connections {outgoing} exceeds max_connected {max_connected}")]
    OutgoingAboveMaxConnected {
        /// The `max_outgoing_connections` limit.
        outgoing: u16,
        /// The `max_connected` limit.
        max_connected: u16,
    },
    /// An IPv4 group prefix longer than 32 bits.
    #[error("IPv4 group prefix /{0} is longer than 32 bits")]
    Ipv4PrefixTooLong(u8),
    /// An IPv6 group prefix longer than 128 bits.
    #[error("IPv6 group prefix /{0} is longer than 128 bits")]
    Ipv6PrefixTooLong(u8),
    /// A subscription queue that can hold nothing.
    #[error("subscription_capacity must be at least 1")]
    ZeroSubscriptionCapacity,
}

/// Limits and policies of a [`super::PeerManager`]. `Default` gives Go's zero values:
/// everything unlimited, no retries, no IP-group caps; [`PeerManagerOptions::node_defaults`]
/// gives the settings a v0.35.9 node uses plus our IP-group caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerManagerOptions {
    /// Always-wanted peers: score 32767, their own retry cap, never pruned, exempt from
    /// IP-group caps.
    pub persistent_peers: BTreeSet<NodeId>,
    /// Peers exempt from the IP-group caps (CometBFT's unconditional peers).
    pub unconditional_peers: BTreeSet<NodeId>,
    /// Peers never handed out by `advertise`.
    pub private_peers: BTreeSet<NodeId>,
    /// Fixed scores (values ≤ 0 are ignored).
    pub peer_scores: BTreeMap<NodeId, i16>,
    /// Our own address, advertised first when it has a hostname and a port.
    pub self_address: Option<NodeAddress>,
    /// Maximum peers kept in the store; 0 = unlimited.
    pub max_peers: u16,
    /// Maximum connected peers (in + out); 0 = unlimited.
    pub max_connected: u16,
    /// Maximum outgoing connections; 0 = no limit.
    pub max_outgoing_connections: u16,
    /// Extra connection slots used to replace lower-scored peers with better ones.
    pub max_connected_upgrade: u16,
    /// Base dial-retry delay; zero disables retries.
    pub min_retry_time: Duration,
    /// Cap on the retry delay (after jitter); zero = no cap.
    pub max_retry_time: Duration,
    /// Cap for persistent peers; zero = use `max_retry_time`.
    pub max_retry_time_persistent: Duration,
    /// Jitter added to a retry delay: uniform in `[0, retry_time_jitter)`.
    pub retry_time_jitter: Duration,
    /// A peer is not redialed for this long after it disconnected.
    pub disconnect_cooldown_period: Duration,
    /// A connection that ends sooner than this after it was established is brief. After
    /// the second brief connection in a row the peer's redial cooldown doubles, and again
    /// after each further one (up to the retry caps, and 2^10 times at most), so a peer that
    /// keeps closing on us soon after the handshake (a seed, which answers one PEX request
    /// and disconnects; a full node refusing one more peer) is not redialed every
    /// `disconnect_cooldown_period` for ever. A connection that lasts resets it. While the
    /// node has no connection at all the cooldown is cut to `isolated_redial_period`.
    /// Zero disables it, and so does a zero cooldown.
    pub brief_connection_period: Duration,
    /// While the node has no connection at all, a cooldown grown by brief connections is
    /// cut to this (or to `disconnect_cooldown_period`, if longer): CometBFT's
    /// `ensurePeersPeriod` (30 s in `node_defaults`), the pace at which a node without
    /// peers falls back to its seeds. Zero: no cut.
    pub isolated_redial_period: Duration,
    /// IPv4 addresses sharing this many leading bits form one IP group (default 16).
    pub ipv4_group_prefix: u8,
    /// IPv6 addresses sharing this many leading bits form one IP group (default 32).
    pub ipv6_group_prefix: u8,
    /// Maximum connected peers per IP group; 0 = unlimited.
    pub max_connected_per_ip_group: u16,
    /// Maximum stored peers with an address in one IP group; 0 = unlimited.
    pub max_stored_per_ip_group: u16,
    /// Loopback addresses form no group (so no cap applies to them). Off by default.
    pub exempt_loopback: bool,
    /// Updates a subscriber may have queued; one more closes it as lagging.
    pub subscription_capacity: usize,
}

impl Default for PeerManagerOptions {
    fn default() -> Self {
        PeerManagerOptions {
            persistent_peers: BTreeSet::new(),
            unconditional_peers: BTreeSet::new(),
            private_peers: BTreeSet::new(),
            peer_scores: BTreeMap::new(),
            self_address: None,
            max_peers: 0,
            max_connected: 0,
            max_outgoing_connections: 0,
            max_connected_upgrade: 0,
            min_retry_time: Duration::ZERO,
            max_retry_time: Duration::ZERO,
            max_retry_time_persistent: Duration::ZERO,
            retry_time_jitter: Duration::ZERO,
            disconnect_cooldown_period: Duration::ZERO,
            brief_connection_period: Duration::ZERO,
            isolated_redial_period: Duration::ZERO,
            ipv4_group_prefix: 16,
            ipv6_group_prefix: 32,
            max_connected_per_ip_group: 0,
            max_stored_per_ip_group: 0,
            exempt_loopback: false,
            subscription_capacity: 64,
        }
    }
}

impl PeerManagerOptions {
    /// The v0.35.9 node settings (`node/setup.go`): 64 connected, 12 outgoing, 4 upgrade
    /// slots, 260 stored, retries 250 ms..30 min (5 min persistent) with 5 s jitter, 2 s
    /// cooldown; plus our own doubling of that cooldown after each connection in a row that
    /// lasted under 10 s, and at most 8 connected and 32 stored peers per IP group.
    pub fn node_defaults() -> Self {
        PeerManagerOptions {
            max_peers: 260,
            max_connected: 64,
            max_outgoing_connections: 12,
            max_connected_upgrade: 4,
            min_retry_time: Duration::from_millis(250),
            max_retry_time: Duration::from_secs(30 * 60),
            max_retry_time_persistent: Duration::from_secs(5 * 60),
            retry_time_jitter: Duration::from_secs(5),
            disconnect_cooldown_period: Duration::from_secs(2),
            brief_connection_period: Duration::from_secs(10),
            isolated_redial_period: Duration::from_secs(30),
            max_connected_per_ip_group: 8,
            max_stored_per_ip_group: 32,
            ..PeerManagerOptions::default()
        }
    }

    /// Checks the rules of protocol.md §6.2 and our own.
    ///
    /// # Errors
    /// The first rule broken, as an [`OptionsError`].
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.max_connected > 0 && self.persistent_peers.len() > usize::from(self.max_connected) {
            return Err(OptionsError::TooManyPersistentPeers {
                persistent: self.persistent_peers.len(),
                max_connected: self.max_connected,
            });
        }
        if self.max_peers > 0 {
            if self.max_connected == 0 {
                return Err(OptionsError::MaxPeersWithoutMaxConnected {
                    max_peers: self.max_peers,
                });
            }
            // cannot panic: two u16 values summed in a u32.
            let needed = u32::from(self.max_connected) + u32::from(self.max_connected_upgrade);
            if needed > u32::from(self.max_peers) {
                return Err(OptionsError::MaxPeersTooSmall {
                    max_peers: self.max_peers,
                    max_connected: self.max_connected,
                    upgrade: self.max_connected_upgrade,
                });
            }
        }
        for cap in [self.max_retry_time, self.max_retry_time_persistent] {
            if cap.is_zero() {
                continue;
            }
            if self.min_retry_time.is_zero() {
                return Err(OptionsError::RetryCapWithoutMinRetry);
            }
            if cap < self.min_retry_time {
                return Err(OptionsError::RetryCapBelowMin {
                    cap,
                    min: self.min_retry_time,
                });
            }
        }
        if self.max_connected > 0 && self.max_outgoing_connections > self.max_connected {
            return Err(OptionsError::OutgoingAboveMaxConnected {
                outgoing: self.max_outgoing_connections,
                max_connected: self.max_connected,
            });
        }
        if self.ipv4_group_prefix > 32 {
            return Err(OptionsError::Ipv4PrefixTooLong(self.ipv4_group_prefix));
        }
        if self.ipv6_group_prefix > 128 {
            return Err(OptionsError::Ipv6PrefixTooLong(self.ipv6_group_prefix));
        }
        if self.subscription_capacity == 0 {
            return Err(OptionsError::ZeroSubscriptionCapacity);
        }
        Ok(())
    }

    pub(super) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            min_retry_time: self.min_retry_time,
            max_retry_time: self.max_retry_time,
            max_retry_time_persistent: self.max_retry_time_persistent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 20])
    }

    /// TestPeerManagerOptions_Validate: the §6.2 rules, case by case.
    #[test]
    fn peer_manager_options_validate() {
        let ms = Duration::from_millis;
        let ok = |o: PeerManagerOptions| o.validate().is_ok();
        assert!(ok(PeerManagerOptions::default()));
        assert!(ok(PeerManagerOptions::node_defaults()));
        let mut o = PeerManagerOptions {
            persistent_peers: [id(1), id(2)].into(),
            max_connected: 1,
            ..Default::default()
        };
        assert!(matches!(
            o.validate(),
            Err(OptionsError::TooManyPersistentPeers {
                persistent: 2,
                max_connected: 1
            })
        ));
        o.max_connected = 2;
        assert!(ok(o.clone()));
        o.max_connected = 0;
        assert!(ok(o), "no connection limit: any number of persistent peers");
        let o = PeerManagerOptions {
            max_peers: 5,
            ..Default::default()
        };
        assert_eq!(
            o.validate(),
            Err(OptionsError::MaxPeersWithoutMaxConnected { max_peers: 5 })
        );
        let o = PeerManagerOptions {
            max_peers: 5,
            max_connected: 4,
            max_connected_upgrade: 2,
            ..Default::default()
        };
        assert!(matches!(
            o.validate(),
            Err(OptionsError::MaxPeersTooSmall { .. })
        ));
        let o = PeerManagerOptions {
            max_peers: 6,
            max_connected: 4,
            max_connected_upgrade: 2,
            ..Default::default()
        };
        assert!(ok(o));
        let o = PeerManagerOptions {
            max_retry_time: ms(10),
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionsError::RetryCapWithoutMinRetry));
        let o = PeerManagerOptions {
            max_retry_time_persistent: ms(10),
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionsError::RetryCapWithoutMinRetry));
        let o = PeerManagerOptions {
            min_retry_time: ms(20),
            max_retry_time: ms(10),
            ..Default::default()
        };
        assert!(matches!(
            o.validate(),
            Err(OptionsError::RetryCapBelowMin { .. })
        ));
        let o = PeerManagerOptions {
            min_retry_time: ms(20),
            max_retry_time_persistent: ms(10),
            ..Default::default()
        };
        assert!(matches!(
            o.validate(),
            Err(OptionsError::RetryCapBelowMin { .. })
        ));
        let o = PeerManagerOptions {
            min_retry_time: ms(10),
            max_retry_time: ms(10),
            max_retry_time_persistent: ms(20),
            ..Default::default()
        };
        assert!(ok(o));
        let o = PeerManagerOptions {
            max_connected: 2,
            max_outgoing_connections: 3,
            ..Default::default()
        };
        assert!(matches!(
            o.validate(),
            Err(OptionsError::OutgoingAboveMaxConnected { .. })
        ));
        let o = PeerManagerOptions {
            max_outgoing_connections: 3,
            ..Default::default()
        };
        assert!(ok(o));
        let o = PeerManagerOptions {
            ipv4_group_prefix: 33,
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionsError::Ipv4PrefixTooLong(33)));
        let o = PeerManagerOptions {
            ipv6_group_prefix: 129,
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionsError::Ipv6PrefixTooLong(129)));
        let o = PeerManagerOptions {
            subscription_capacity: 0,
            ..Default::default()
        };
        assert_eq!(o.validate(), Err(OptionsError::ZeroSubscriptionCapacity));
    }
}
