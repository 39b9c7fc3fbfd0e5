//! The PEX reactor inside the router task: [`PexDriver`] feeds the sans-IO
//! [`PexReactor`] what the router task sees (peer updates, each peer's socket IP and
//! `NodeInfo` from its `Authenticated` event, inbound channel-0x00 messages, timers) and
//! carries out its outputs on the Router it owns (`Send` → `Router::send`, `PeerError` →
//! `Router::report_error`, `Disconnect` → `Router::disconnect`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use tmp2p_core::node_info::NodeInfo;
use tmp2p_core::peer_manager::{PeerStatus, PeerUpdate};
use tmp2p_core::pex::{PexOutput, PexReactor};
use tmp2p_core::router::{Envelope, PeerError, Router};
use tmp2p_core::NodeId;

/// A peer authenticated but not yet reported Up: what the reactor learns after its Up.
struct Pending {
    ip: Option<IpAddr>,
    info: NodeInfo,
}

/// The reactor and the per-peer facts it is given once the peer is Up.
pub(crate) struct PexDriver {
    reactor: PexReactor,
    pending: BTreeMap<NodeId, Pending>,
}

impl PexDriver {
    pub(crate) fn new(reactor: PexReactor) -> Self {
        PexDriver {
            reactor,
            pending: BTreeMap::new(),
        }
    }

    /// A connection authenticated (its Up update, if the Router accepts it, follows).
    pub(crate) fn on_authenticated(&mut self, info: &NodeInfo, ip: Option<IpAddr>) {
        self.pending.insert(
            info.node_id,
            Pending {
                ip,
                info: info.clone(),
            },
        );
    }

    /// A peer went up or down.
    pub(crate) fn on_peer_update(
        &mut self,
        now: Instant,
        update: &PeerUpdate,
        router: &mut Router,
    ) {
        self.reactor.handle_peer_update(now, update, router);
        match update.status {
            PeerStatus::Up => {
                if let Some(pending) = self.pending.remove(&update.node_id) {
                    if let Some(ip) = pending.ip {
                        self.reactor.set_peer_ip(update.node_id, ip);
                    }
                    if let Some(address) = self.reactor.handle_peer_info(now, &pending.info, router)
                    {
                        tracing::debug!(peer = %update.node_id, %address, "inbound peer's listen address offered");
                    }
                }
            }
            PeerStatus::Down => {
                self.pending.remove(&update.node_id);
            }
        }
    }

    /// A message on the PEX channel.
    pub(crate) fn on_message(&mut self, now: Instant, envelope: Envelope, router: &mut Router) {
        let Some(from) = envelope.from else {
            return;
        };
        self.reactor
            .handle_message(now, from, envelope.message, router, &mut rand_core::OsRng);
    }

    /// When [`PexDriver::on_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.reactor.poll_timeout()
    }

    pub(crate) fn on_timeout(&mut self, now: Instant, router: &mut Router) {
        self.reactor.handle_timeout(now, router);
    }

    /// Carries out every pending output of the reactor on `router`.
    pub(crate) fn carry_out(&mut self, now: Instant, router: &mut Router) {
        while let Some(output) = self.reactor.poll_output() {
            match output {
                PexOutput::Send(envelope) => {
                    // PEX sends at most one request or answer per peer at a time, far
                    // below a peer's window; a refusal means the peer is gone.
                    if let Err(error) = router.send(envelope) {
                        tracing::debug!(%error, "PEX message not sent");
                    }
                }
                PexOutput::PeerError(error) => {
                    tracing::debug!(peer = %error.node, error = %error.error, "PEX peer error");
                    router.report_error(now, PeerError::from(error));
                }
                PexOutput::Disconnect { node } => {
                    if let Err(error) = router.disconnect(node) {
                        tracing::debug!(peer = %node, %error, "PEX disconnect of a gone peer");
                    }
                }
                PexOutput::Learned { from, addresses } => {
                    tracing::debug!(peer = %from, count = addresses.len(), "PEX addresses learned");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tmp2p_core::address::NodeAddress;
    use tmp2p_core::node_config::NodeConfig;
    use tmp2p_core::pex::PexConfig;
    use tmp2p_core::NodeKey;
    use tmp2p_store::MemoryPeerStore;

    use crate::{DriverError, NodeBuilder, NodeHandle};

    async fn start(seed: u8, bootstrap: Option<&NodeHandle>, pex: bool) -> NodeHandle {
        let mut config = NodeConfig::new("pex-driver", "127.0.0.1:0".parse().unwrap());
        if let Some(peer) = bootstrap {
            let text = format!("{}@{}", peer.node_id(), peer.local_addr());
            config.bootstrap_peers = vec![NodeAddress::parse(&text).unwrap()];
        }
        let key = NodeKey::from_seed([seed; 32]);
        let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).unwrap();
        if pex {
            builder.enable_pex(PexConfig::default()).unwrap();
        }
        builder.start().await.unwrap()
    }

    /// Polls until `node` is connected to `peer`, or `limit` passes.
    async fn connects(node: &NodeHandle, peer: &NodeHandle, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if node
                .connected_peers()
                .await
                .unwrap()
                .contains(&peer.node_id())
            {
                return true;
            }
            async_io::Timer::after(Duration::from_millis(50)).await;
        }
        false
    }

    #[test]
    fn a_node_learns_its_peers_peer_by_pex_and_dials_it() {
        smol::block_on(async {
            let a = start(0x41, None, true).await;
            let b = start(0x42, Some(&a), true).await;
            assert!(connects(&b, &a, Duration::from_secs(5)).await);
            let c = start(0x43, Some(&b), true).await;
            // C only knows B; B's answer to C's request carries A's address.
            assert!(connects(&c, &a, Duration::from_secs(10)).await);
            for node in [c, b, a] {
                node.stop().await;
            }
        });
    }

    #[test]
    fn without_pex_a_node_only_knows_its_configured_peers() {
        smol::block_on(async {
            let a = start(0x51, None, false).await;
            let b = start(0x52, Some(&a), false).await;
            assert!(connects(&b, &a, Duration::from_secs(5)).await);
            let c = start(0x53, Some(&b), false).await;
            assert!(connects(&c, &b, Duration::from_secs(5)).await);
            assert!(!connects(&c, &a, Duration::from_secs(1)).await);
            for node in [c, b, a] {
                node.stop().await;
            }
        });
    }

    #[test]
    fn pex_settings_and_the_channel_are_checked_when_enabled() {
        let config = NodeConfig::new("pex-driver", "127.0.0.1:0".parse().unwrap());
        let key = NodeKey::from_seed([0x61; 32]);
        let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).unwrap();
        let too_fast = PexConfig {
            request_interval: Duration::from_secs(1),
            ..PexConfig::default()
        };
        assert!(matches!(
            builder.enable_pex(too_fast),
            Err(DriverError::Pex(_))
        ));
        builder.enable_pex(PexConfig::default()).unwrap();
        assert!(matches!(
            builder.enable_pex(PexConfig::default()),
            Err(DriverError::Router(_))
        ));
    }
}
