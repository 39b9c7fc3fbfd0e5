//! A CometBFT gossip observer on the mio driver, in one file to copy.
//!
//! The node runs on a thread of its own (`RunningNode`); this thread takes its inbound
//! events from a blocking queue and answers through the `NodeHandle`. It follows each
//! peer's round with core's `RoundFollower` (the node gossips votes and transactions only
//! to peers that announce its height) and prints round steps, votes and transactions.
//! To embed the same node in an event loop of your own, build a `tmp2p_driver_mio::Driver`
//! on your `mio::Registry` instead (see the driver's docs for the call order).
//!
//! ```text
//! cargo run -p tmp2p-examples --example observe_mio -- ID@HOST:PORT[,ID@HOST:PORT...] CHAIN_ID
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use rand_core::OsRng;
use sha2::{Digest as _, Sha256};
use tmp2p_core::address::NodeAddress;
use tmp2p_core::cometbft_channels::{self as comet, CometVersion};
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::PeerStatus;
use tmp2p_core::round_follower::RoundFollower;
use tmp2p_core::router::Target;
use tmp2p_core::typed::cometbft::{ConsensusCodec, ConsensusInner, MempoolCodec, MempoolInner};
use tmp2p_core::NodeKey;
use tmp2p_driver_mio::{AppEvent, DriverSetup, RunningNode};

type Error = Box<dyn std::error::Error>;

/// Inbound events queued for this thread before the node stops reading sockets.
const INBOUND_CAPACITY: usize = 1024;

fn descriptor(id: u8) -> Result<ChannelDescriptor, Error> {
    comet::descriptor(CometVersion::V0_38, id)
        .ok_or_else(|| format!("no channel 0x{id:02x}").into())
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(addresses), Some(chain_id)) = (args.next(), args.next()) else {
        eprintln!("usage: observe_mio ID@HOST:PORT[,ID@HOST:PORT...] CHAIN_ID");
        std::process::exit(2);
    };
    let mut config = NodeConfig::new(chain_id, "127.0.0.1:0".parse()?);
    config.moniker = "observe-mio-example".into();
    for address in addresses.split(',') {
        config.persistent_peers.push(NodeAddress::parse(address)?);
    }
    let key = NodeKey::generate(&mut OsRng);

    // Typed channels: the setup advertises them, the returned handles encode and decode.
    let mut setup = DriverSetup::new(config, key, Vec::new());
    let state = setup.open_typed(
        descriptor(comet::CONSENSUS_STATE)?,
        ConsensusCodec::for_channel(comet::CONSENSUS_STATE).ok_or("not a consensus channel")?,
    );
    let votes = setup.open_typed(
        descriptor(comet::CONSENSUS_VOTE)?,
        ConsensusCodec::for_channel(comet::CONSENSUS_VOTE).ok_or("not a consensus channel")?,
    );
    let mempool = setup.open_typed(descriptor(comet::MEMPOOL)?, MempoolCodec::new());

    let mut node = RunningNode::spawn(setup, INBOUND_CAPACITY)?;
    println!("observing as {}", node.node_id());
    let inbound = node.take_inbound().ok_or("no inbound queue")?;
    let handle = node.handle().clone();
    let mut follower = RoundFollower::new();
    while let Ok(event) = inbound.recv() {
        let envelope = match event {
            AppEvent::Message(envelope) => envelope,
            AppEvent::PeerUpdate(update) => {
                if update.status == PeerStatus::Down {
                    follower.peer_down(&update.node_id);
                }
                println!("peer {} {:?}", update.node_id, update.status);
                continue;
            }
            AppEvent::Writable { .. } => continue,
        };
        if envelope.channel == mempool.id() {
            if let Some((_, MempoolInner::Txs(txs))) = handle.receive_typed(&mempool, envelope) {
                for tx in &txs.txs {
                    println!(
                        "tx {} ({} bytes)",
                        hex::encode_upper(Sha256::digest(tx)),
                        tx.len()
                    );
                }
            }
            continue;
        }
        let channel = if envelope.channel == votes.id() {
            &votes
        } else {
            &state
        };
        // An undecodable message is reported against its sender and comes back as None.
        let Some((peer, message)) = handle.receive_typed(channel, envelope) else {
            continue;
        };
        if let Some(reply) = follower.handle_message(peer, &message) {
            // Fails when the peer went down meanwhile (nothing to answer) or the node stopped.
            if let Err(error) = handle.send_typed(&state, Target::Peer(peer), &reply) {
                eprintln!("round step to {peer} not sent: {error}");
            }
        }
        match &message {
            ConsensusInner::NewRoundStep(s) => {
                println!(
                    "{peer} step height={} round={} step={}",
                    s.height, s.round, s.step
                );
            }
            ConsensusInner::Vote(v) => {
                if let Some(v) = &v.vote {
                    println!(
                        "{peer} vote height={} round={} type={} validator={}",
                        v.height, v.round, v.r#type, v.validator_index
                    );
                }
            }
            _ => {}
        }
    }
    node.stop()?;
    Ok(())
}
