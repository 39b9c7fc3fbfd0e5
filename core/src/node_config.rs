//! `NodeConfig`: everything an operator sets for a node, in one IO-free place both drivers
//! share (ADR 062's node options). It validates up front, so a bad setting is a typed
//! error at start and never a panic later, and it derives the Router configuration and our
//! NodeInfo.

use std::net::SocketAddr;
use std::time::Duration;

use crate::address::NodeAddress;
use crate::id::NodeId;
use crate::key::NodeKey;
use crate::node_info::{NodeInfo, ProtocolVersions, BLOCK_PROTOCOL_VERSION, P2P_PROTOCOL_VERSION};
use crate::router::{RouterConfig, RouterError};

/// Why a node configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeConfigError {
    /// The network (chain id) is empty.
    #[error("network must not be empty")]
    EmptyNetwork,
    /// `listen_backlog` is zero.
    #[error("listen_backlog must be above zero")]
    ZeroListenBacklog,
    /// The moniker is not printable ASCII.
    #[error("moniker must be non-empty printable ASCII, got {0:?}")]
    InvalidMoniker(String),
    /// A persistent or bootstrap peer is our own id.
    #[error("peer list contains our own id {0}")]
    SelfInPeers(NodeId),
    /// The router or peer-manager settings are invalid.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// The advertised NodeInfo would not pass a peer's validation.
    #[error("our node info would be rejected by peers: {0}")]
    NodeInfo(String),
}

/// A node's settings. Build with [`NodeConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where to listen for peers.
    pub listen: SocketAddr,
    /// Length of the listener's queue of connections the kernel has completed and the
    /// driver has not accepted yet (the `listen(2)` backlog; Linux caps it at
    /// `net.core.somaxconn`). Rust's std and mio use 128: a burst of more inbound
    /// connections than that while the driver is busy (with handshakes, say) makes the
    /// kernel drop SYNs, which dialers retry only after about a second. Unix only.
    pub listen_backlog: u32,
    /// The address peers should dial (`host:port`), advertised in NodeInfo and PEX; the
    /// listen address when `None`.
    pub external_address: Option<String>,
    /// The network (chain id); peers on other networks are refused.
    pub network: String,
    /// Human-readable node name.
    pub moniker: String,
    /// Software version string advertised in NodeInfo.
    pub version: String,
    /// Block protocol version (peers must match).
    pub block_version: u64,
    /// Application version.
    pub app_version: u64,
    /// Peers always kept connected (score max, own retry cap).
    pub persistent_peers: Vec<NodeAddress>,
    /// Peers to learn the network from (dialed like any other peer).
    pub bootstrap_peers: Vec<NodeAddress>,
    /// Peers never advertised to others.
    pub private_peer_ids: Vec<NodeId>,
    /// Router, PeerManager, queue, timeout, payload-size and rate-limit settings.
    pub router: RouterConfig,
    /// How long a connection's close may take (the node machine's `Link`), twice. From the
    /// node's close until the sends queued before it are in the connection: past it what is
    /// left is dropped and the connection ends, so a peer that stops reading cannot keep a
    /// connection the node decided to close. Then, from the connection's close, by either
    /// side: until the application took what the peer sent before it (the peer's `Down`
    /// waits for that) and the socket is written out and has read the peer's EOF; past it
    /// the rest is dropped, and what the application did not take is counted as
    /// undelivered.
    pub close_linger: Duration,
    /// How long a graceful stop waits for the messages the node accepted to be handed to
    /// their connections (default 10 s); past it, what is left is dropped and counted. Each
    /// connection then closes within `close_linger` and finishes within one more, so a stop
    /// is over by `stop_timeout` plus twice `close_linger` (`Node::stop_give_up`), plus the
    /// driver's few seconds of grace, at the latest.
    pub stop_timeout: Duration,
    /// Received payload bytes a connection may hold for the application's full channels
    /// before it stops reading its socket (default 1 MiB; see `node::Link`). Below it, a
    /// slow reactor holds back only its own channel while pings and the other channels'
    /// messages go on; above it, TCP pushes back on that one peer.
    pub inbound_hold_bytes: usize,
    /// How long peer-store changes are gathered before they go to the store as one batch
    /// (one transaction, one fsync), default 1 s; a stop writes what waits at once. A
    /// crash loses at most this long's changes. Zero writes every change as it happens.
    pub store_flush_interval: Duration,
}

impl NodeConfig {
    /// Defaults for `network`, listening on `listen`.
    pub fn new(network: impl Into<String>, listen: SocketAddr) -> Self {
        NodeConfig {
            listen,
            listen_backlog: 1024,
            external_address: None,
            network: network.into(),
            moniker: "tmp2p".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            block_version: BLOCK_PROTOCOL_VERSION,
            app_version: 0,
            persistent_peers: Vec::new(),
            bootstrap_peers: Vec::new(),
            private_peer_ids: Vec::new(),
            router: RouterConfig::default(),
            close_linger: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(10),
            inbound_hold_bytes: 1 << 20,
            store_flush_interval: Duration::from_secs(1),
        }
    }

    /// Checks every setting for the node identified by `self_id`.
    ///
    /// # Errors
    /// The first [`NodeConfigError`] found.
    pub fn validate(&self, self_id: NodeId) -> Result<(), NodeConfigError> {
        if self.network.is_empty() {
            return Err(NodeConfigError::EmptyNetwork);
        }
        if self.listen_backlog == 0 {
            return Err(NodeConfigError::ZeroListenBacklog);
        }
        let printable =
            |s: &str| s.bytes().all(|b| (32..=126).contains(&b)) && s.bytes().any(|b| b != b' ');
        if !printable(&self.moniker) {
            return Err(NodeConfigError::InvalidMoniker(self.moniker.clone()));
        }
        if let Some(peer) = self
            .persistent_peers
            .iter()
            .chain(&self.bootstrap_peers)
            .find(|a| a.node_id == self_id)
        {
            return Err(NodeConfigError::SelfInPeers(peer.node_id));
        }
        self.router_config().validate()?;
        let mut info = self.node_info(self_id);
        // Peers validate the channel list too; any single channel stands in for the
        // channels opened later.
        info.channels = vec![0];
        info.validate()
            .map_err(|e| NodeConfigError::NodeInfo(e.to_string()))
    }

    /// The Router configuration, with the persistent and private peers folded into the
    /// PeerManager options.
    pub fn router_config(&self) -> RouterConfig {
        let mut config = self.router.clone();
        let pm = &mut config.peer_manager;
        pm.persistent_peers
            .extend(self.persistent_peers.iter().map(|a| a.node_id));
        pm.private_peers
            .extend(self.private_peer_ids.iter().copied());
        config
    }

    /// Our NodeInfo (without channels: the Router fills in the channels it opens).
    pub fn node_info(&self, self_id: NodeId) -> NodeInfo {
        let listen = self
            .external_address
            .clone()
            .unwrap_or_else(|| self.listen.to_string());
        NodeInfo {
            protocol_version: ProtocolVersions {
                p2p: P2P_PROTOCOL_VERSION,
                block: self.block_version,
                app: self.app_version,
            },
            node_id: self_id,
            listen_addr: format!("tcp://{listen}"),
            network: self.network.clone(),
            version: self.version.clone(),
            channels: Vec::new(),
            moniker: self.moniker.clone(),
            tx_index: "off".into(),
            rpc_address: String::new(),
        }
    }

    /// Every address to add to the Router at start: persistent peers, then bootstrap peers.
    pub fn initial_peers(&self) -> impl Iterator<Item = &NodeAddress> {
        self.persistent_peers.iter().chain(&self.bootstrap_peers)
    }

    /// Convenience: validates for `key`'s id.
    ///
    /// # Errors
    /// See [`NodeConfig::validate`].
    pub fn validate_for(&self, key: &NodeKey) -> Result<(), NodeConfigError> {
        self.validate(key.node_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_settings_are_typed_errors() {
        let key = NodeKey::from_seed([1; 32]);
        let mut config = NodeConfig::new("chain", "127.0.0.1:26656".parse().unwrap());
        config.validate_for(&key).unwrap();
        assert_eq!(
            config.node_info(key.node_id()).listen_addr,
            "tcp://127.0.0.1:26656"
        );

        let mut bad = config.clone();
        bad.network.clear();
        assert_eq!(bad.validate_for(&key), Err(NodeConfigError::EmptyNetwork));
        let mut bad = config.clone();
        bad.listen_backlog = 0;
        assert_eq!(
            bad.validate_for(&key),
            Err(NodeConfigError::ZeroListenBacklog)
        );
        let mut bad = config.clone();
        bad.moniker = "tab\there".into();
        assert!(matches!(
            bad.validate_for(&key),
            Err(NodeConfigError::InvalidMoniker(_))
        ));
        let mut bad = config.clone();
        bad.router.send_credit = 0;
        assert!(matches!(
            bad.validate_for(&key),
            Err(NodeConfigError::Router(_))
        ));
        let mut bad = config.clone();
        bad.persistent_peers
            .push(NodeAddress::parse(&format!("{}@127.0.0.1:1", key.node_id())).unwrap());
        assert!(matches!(
            bad.validate_for(&key),
            Err(NodeConfigError::SelfInPeers(_))
        ));

        let peer = NodeKey::from_seed([2; 32]).node_id();
        config
            .persistent_peers
            .push(NodeAddress::parse(&format!("{peer}@127.0.0.1:1")).unwrap());
        assert!(config
            .router_config()
            .peer_manager
            .persistent_peers
            .contains(&peer));
    }
}
