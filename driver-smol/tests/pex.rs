//! PEX on the smol driver, over loopback TCP: the node machine's built-in reactor lets a
//! node learn its peer's peer and dial it; without PEX a node knows only its configured
//! peers; PEX settings and the channel are checked when it is enabled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tmp2p_core::address::NodeAddress;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::pex::PexConfig;
use tmp2p_core::NodeKey;
use tmp2p_store::MemoryPeerStore;

use tmp2p_driver_smol::{DriverError, NodeBuilder, NodeHandle};

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
