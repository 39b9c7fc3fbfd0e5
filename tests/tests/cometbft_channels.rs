//! CometBFT's reactor channels: the mempool channel's receive limit is exactly the size
//! tendermint-proto gives the largest message a CometBFT node sends there (one transaction
//! of `max_tx_bytes`), at every varint boundary; and a smol node with every reactor channel
//! open as a typed channel takes a well-formed message from a reference peer and cuts off
//! only the peer that sends hostile bytes on any of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prost::Message as _;
use tendermint_proto::v0_38::mempool::{message::Sum, Message, Txs};
use tmp2p_core::cometbft_channels::{
    descriptor, mempool_recv_capacity, CometVersion, DEFAULT_MAX_TX_BYTES, MEMPOOL,
};

#[test]
fn the_mempool_limit_is_tendermint_protos_size_of_one_max_size_tx() {
    for size in [
        0,
        1,
        127,
        128,
        16_383,
        16_384,
        2_097_151,
        2_097_152,
        DEFAULT_MAX_TX_BYTES,
    ] {
        let message = Message {
            sum: Some(Sum::Txs(Txs {
                txs: vec![vec![0u8; size]],
            })),
        };
        assert_eq!(mempool_recv_capacity(size), message.encoded_len(), "{size}");
    }
    let default = descriptor(CometVersion::V0_38, MEMPOOL).unwrap();
    assert_eq!(
        default.recv_message_capacity,
        mempool_recv_capacity(DEFAULT_MAX_TX_BYTES)
    );
}

/// For each consensus and state-sync channel, a well-formed message of the type another of
/// the reactor's channels carries.
fn misplaced_messages() -> Vec<(u8, Vec<u8>)> {
    use tendermint_proto::v0_38::consensus::{self as c, message::Sum as C};
    use tendermint_proto::v0_38::statesync::{self as s, message::Sum as S};
    let consensus = |sum| c::Message { sum: Some(sum) }.encode_to_vec();
    let statesync = |sum| s::Message { sum: Some(sum) }.encode_to_vec();
    vec![
        (0x20, consensus(C::Vote(c::Vote { vote: None }))),
        (0x21, consensus(C::NewRoundStep(c::NewRoundStep::default()))),
        (0x22, consensus(C::BlockPart(c::BlockPart::default()))),
        (0x23, consensus(C::HasVote(c::HasVote::default()))),
        (0x60, statesync(S::ChunkRequest(s::ChunkRequest::default()))),
        (0x61, statesync(S::SnapshotsRequest(s::SnapshotsRequest {}))),
    ]
}

/// Opens a typed channel and keeps its handle for the test's length.
fn open<C: tmp2p_core::typed::ChannelCodec>(
    builder: &mut tmp2p_driver_smol::NodeBuilder,
    descriptor: tmp2p_core::mconn::ChannelDescriptor,
    codec: C,
) -> Box<dyn std::any::Any> {
    Box::new(builder.open_channel(descriptor, codec).unwrap())
}

/// A smol node with every CometBFT v0.38 reactor channel open as a typed channel (its
/// descriptors from `cometbft_channels`, the `typed::cometbft` codecs), against reference
/// peers of independent crates over loopback TCP: a well-formed NewRoundStep arrives typed;
/// then on each channel a new peer sends bytes that do not decode, and only that peer is
/// disconnected while a bystander peer stays up; a message past the channel's limit closes
/// its sender too, and so does a well-formed message on the wrong consensus or state-sync
/// channel.
#[test]
fn hostile_input_on_each_reactor_channel_closes_only_its_sender() {
    use std::net::TcpStream;
    use std::time::Duration;

    use tmp2p_core::cometbft_channels::{channels, CONSENSUS_STATE};
    use tmp2p_core::node_config::NodeConfig;
    use tmp2p_core::peer_manager::PeerStatus;
    use tmp2p_core::typed::cometbft::{
        BlocksyncCodec, ConsensusCodec, ConsensusInner, EvidenceCodec, MempoolCodec, StatesyncCodec,
    };
    use tmp2p_core::NodeKey;
    use tmp2p_driver_smol::NodeBuilder;
    use tmp2p_store::MemoryPeerStore;
    use tmp2p_tests::reference_peer::{reference_info, ReferencePeer};
    use tmp2p_tests::smol_support::within;

    const NETWORK: &str = "cometbft-channels";
    let mut config = NodeConfig::new(NETWORK, "127.0.0.1:0".parse().unwrap());
    config.router.incoming_window = Duration::ZERO;
    config.router.peer_manager.exempt_loopback = true;
    let key = NodeKey::from_seed([0x61; 32]);
    let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new())).unwrap();
    let reactor_channels: Vec<_> = channels(CometVersion::V0_38)
        .into_iter()
        .map(|c| c.descriptor)
        .filter(|d| d.id != 0x00)
        .collect();
    let ids: Vec<u8> = reactor_channels.iter().map(|d| d.id).collect();
    // Each channel with its reactor's codec; the handles stay open for the whole test.
    let mut consensus = Vec::new();
    let mut others: Vec<Box<dyn std::any::Any>> = Vec::new();
    for descriptor in reactor_channels {
        let id = descriptor.id;
        match id {
            0x20..=0x23 => consensus.push(
                builder
                    .open_channel(descriptor, ConsensusCodec::for_channel(id).unwrap())
                    .unwrap(),
            ),
            0x30 => others.push(open(&mut builder, descriptor, MempoolCodec::new())),
            0x38 => others.push(open(&mut builder, descriptor, EvidenceCodec::new())),
            0x40 => others.push(open(&mut builder, descriptor, BlocksyncCodec::new())),
            id => others.push(open(
                &mut builder,
                descriptor,
                StatesyncCodec::for_channel(id).unwrap(),
            )),
        }
    }
    let updates = builder.subscribe();
    let node = smol::block_on(builder.start()).unwrap();
    let connect = |seed: u8| {
        let mut key = [0u8; 32];
        key[0] = seed;
        let stream = TcpStream::connect(node.local_addr()).unwrap();
        let peer = ReferencePeer::start(stream, key, reference_info(key, NETWORK, &ids)).unwrap();
        let up = within("a peer to come up", updates.recv()).unwrap();
        assert_eq!(up.status, PeerStatus::Up);
        (peer, up.node_id)
    };
    let (bystander, bystander_id) = connect(1);

    // The path works: a NewRoundStep arrives as the consensus reactor's typed message.
    let step = tmp2p_proto::consensus::NewRoundStep {
        height: 42,
        round: 0,
        step: 1,
        seconds_since_start_time: 3,
        last_commit_round: 0,
    };
    let wire = tendermint_proto::v0_38::consensus::Message {
        sum: Some(
            tendermint_proto::v0_38::consensus::message::Sum::NewRoundStep(
                tendermint_proto::v0_38::consensus::NewRoundStep {
                    height: 42,
                    round: 0,
                    step: 1,
                    seconds_since_start_time: 3,
                    last_commit_round: 0,
                },
            ),
        ),
    };
    bystander.send(CONSENSUS_STATE, wire.encode_to_vec());
    let got = within("the NewRoundStep", consensus[0].inbound.recv()).unwrap();
    assert_eq!(got.message, ConsensusInner::NewRoundStep(step));
    assert_eq!(got.from, Some(bystander_id));

    // Undecodable bytes (field 1 with the non-existent wire type 7) on every channel, each
    // from a fresh peer; then a message one byte past the state channel's 1 MiB limit.
    let mut attacks: Vec<(u8, Vec<u8>)> = ids.iter().map(|&id| (id, vec![0x0f])).collect();
    attacks.push((CONSENSUS_STATE, vec![0u8; 1_048_577]));
    // Then well-formed messages (tendermint-proto's encoding) of the wrong type: for the
    // reactors whose wrapper spans several channels, each channel gets a message that
    // belongs on another. (On a single-channel reactor a wrong type is either bytes that
    // do not decode, as above, or bytes that happen to be a valid message of its own.)
    attacks.extend(misplaced_messages());
    for (n, (channel, bytes)) in attacks.into_iter().enumerate() {
        let (attacker, attacker_id) = connect(u8::try_from(n).unwrap() + 2);
        attacker.send(channel, bytes);
        let down = within("the attacker to be cut off", updates.recv()).unwrap();
        assert_eq!(
            (down.node_id, down.status),
            (attacker_id, PeerStatus::Down),
            "channel {channel:#x}"
        );
    }
    // The bystander was never touched.
    assert!(updates.try_recv().is_err());
    let connected = smol::block_on(node.connected_peers()).unwrap();
    assert_eq!(connected, vec![bystander_id]);
    drop(bystander);
    within("stop", node.stop());
}
