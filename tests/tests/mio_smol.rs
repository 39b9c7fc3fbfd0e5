//! A mio node and a smol node over loopback TCP exchange messages both ways on two
//! channels: a typed ADR 062 wrapper channel (echo) and a raw channel. The mio side
//! encodes and decodes the typed messages with the same core codec the smol side uses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use tmp2p_core::address::NodeAddress;
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::router::{Envelope, Target};
use tmp2p_core::typed::echo::EchoInner;
use tmp2p_core::typed::WrapperCodec;
use tmp2p_core::NodeKey;
use tmp2p_driver_mio::{AppEvent, DriverSetup, RunningNode};
use tmp2p_driver_smol::NodeBuilder;
use tmp2p_proto::echo::{EchoMessage, Ping};
use tmp2p_store::MemoryPeerStore;

const ECHO: u8 = 0x20;
const RAW: u8 = 0x21;
const COUNT: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

fn descriptor(id: u8) -> ChannelDescriptor {
    ChannelDescriptor {
        id,
        priority: 5,
        send_queue_capacity: 16,
        recv_message_capacity: 1 << 20,
    }
}

fn config() -> NodeConfig {
    let mut config = NodeConfig::new("mio-smol", "127.0.0.1:0".parse().unwrap());
    config.router.incoming_window = Duration::ZERO;
    config.router.peer_manager.min_retry_time = Duration::from_millis(50);
    config.router.peer_manager.retry_time_jitter = Duration::from_millis(10);
    config
}

fn ping(payload: String) -> EchoInner {
    EchoInner::Ping(Ping {
        payload: Bytes::from(payload),
    })
}

#[test]
fn mio_and_smol_nodes_exchange_both_ways_on_two_channels() {
    let codec = WrapperCodec::<EchoMessage, EchoInner>::new();
    let mut setup = DriverSetup::new(config(), NodeKey::from_seed([31; 32]), vec![]);
    let echo_at_mio = setup.open_typed(descriptor(ECHO), codec);
    setup.channels.push(descriptor(RAW));
    let mio_node = RunningNode::spawn(setup, 1024).unwrap();
    let mio_id = mio_node.node_id();
    let mio_address = NodeAddress::parse(&format!("{mio_id}@{}", mio_node.local_addr())).unwrap();

    let mut smol_config = config();
    smol_config.persistent_peers = vec![mio_address];
    let mut builder = NodeBuilder::new(
        smol_config,
        NodeKey::from_seed([32; 32]),
        Box::new(MemoryPeerStore::new()),
    )
    .unwrap();
    let echo = builder
        .open_channel(
            descriptor(ECHO),
            WrapperCodec::<EchoMessage, EchoInner>::new(),
        )
        .unwrap();
    let raw = builder.open_raw_channel(descriptor(RAW)).unwrap();
    let updates = builder.subscribe();
    let smol_node = smol::block_on(builder.start()).unwrap();
    let smol_id = smol_node.node_id();

    // Both sides see the other up.
    let inbound = mio_node.inbound().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "mio side never saw the smol peer"
        );
        if let Some(AppEvent::PeerUpdate(u)) = inbound.recv_timeout(WAIT).unwrap() {
            if u.status == PeerStatus::Up {
                assert_eq!(u.node_id, smol_id);
                break;
            }
        }
    }
    smol::block_on(future::or(
        async {
            loop {
                let u = updates.recv().await.unwrap();
                if u.status == PeerStatus::Up && u.node_id == mio_id {
                    return;
                }
            }
        },
        async {
            smol::Timer::after(WAIT).await;
            panic!("smol side never saw the mio peer");
        },
    ));

    // mio → smol on both channels.
    for i in 0..COUNT {
        let to = Target::Peer(smol_id);
        let message = ping(format!("mio ping {i}"));
        mio_node
            .handle()
            .send_typed(&echo_at_mio, to, &message)
            .unwrap();
        mio_node
            .handle()
            .send(Envelope::to_peer(
                smol_id,
                RAW,
                Bytes::from(format!("mio raw {i}")),
            ))
            .unwrap();
    }
    // smol → mio on both channels.
    smol::block_on(async {
        for i in 0..COUNT {
            echo.outbound
                .send(tmp2p_driver_smol::Envelope::to_peer(
                    mio_id,
                    ping(format!("smol ping {i}")),
                ))
                .await
                .unwrap();
            raw.outbound
                .send(tmp2p_driver_smol::Envelope::to_peer(
                    mio_id,
                    Bytes::from(format!("smol raw {i}")),
                ))
                .await
                .unwrap();
        }
    });

    // The smol side got the mio messages, in order per channel.
    let (typed_at_smol, raw_at_smol) = smol::block_on(future::or(
        async {
            let mut typed = Vec::new();
            for _ in 0..COUNT {
                let env = echo.inbound.recv().await.unwrap();
                assert_eq!(env.from, Some(mio_id));
                typed.push(env.message);
            }
            let mut raws = Vec::new();
            for _ in 0..COUNT {
                let env = raw.inbound.recv().await.unwrap();
                assert_eq!(env.from, Some(mio_id));
                raws.push(env.message);
            }
            (typed, raws)
        },
        async {
            smol::Timer::after(WAIT).await;
            panic!("smol side did not receive the mio messages");
        },
    ));
    for i in 0..COUNT {
        assert_eq!(typed_at_smol[i], ping(format!("mio ping {i}")));
        assert_eq!(raw_at_smol[i], Bytes::from(format!("mio raw {i}")));
    }

    // The mio side got the smol messages, in order per channel, typed ones decoded with
    // the channel codec.
    let mut typed_at_mio = Vec::new();
    let mut raw_at_mio = Vec::new();
    let deadline = Instant::now() + WAIT;
    while typed_at_mio.len() < COUNT || raw_at_mio.len() < COUNT {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "mio side did not receive the smol messages"
        );
        if let Some(AppEvent::Message(env)) = inbound.recv_timeout(left).unwrap() {
            assert_eq!(env.from, Some(smol_id));
            match env.channel {
                ECHO => {
                    let (from, message) =
                        mio_node.handle().receive_typed(&echo_at_mio, env).unwrap();
                    assert_eq!(from, smol_id);
                    typed_at_mio.push(message);
                }
                RAW => raw_at_mio.push(env.message),
                other => panic!("unexpected channel {other:#x}"),
            }
        }
    }
    for i in 0..COUNT {
        assert_eq!(typed_at_mio[i], ping(format!("smol ping {i}")));
        assert_eq!(raw_at_mio[i], Bytes::from(format!("smol raw {i}")));
    }
    let peers: BTreeSet<_> = smol::block_on(smol_node.connected_peers())
        .unwrap()
        .into_iter()
        .collect();
    assert!(peers.contains(&mio_id));

    smol::block_on(smol_node.stop());
    mio_node.stop().unwrap();
}
