//! A CometBFT gossip observer on the smol driver, in one file to copy.
//!
//! It joins one node as a non-validator peer, follows the node's round with core's
//! `RoundFollower` (the node gossips votes and transactions only to peers that announce
//! its height), and prints round steps, votes and transactions as they arrive.
//!
//! ```text
//! cargo run -p tmp2p-examples --example observe_smol -- ID@HOST:PORT CHAIN_ID
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use futures_lite::future;
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};
use tmp2p_core::address::NodeAddress;
use tmp2p_core::cometbft_channels::{self as comet, CometVersion};
use tmp2p_core::mconn::ChannelDescriptor;
use tmp2p_core::node_config::NodeConfig;
use tmp2p_core::peer_manager::{PeerStatus, PeerUpdate};
use tmp2p_core::round_follower::RoundFollower;
use tmp2p_core::typed::cometbft::{ConsensusCodec, ConsensusInner, MempoolCodec, MempoolInner};
use tmp2p_core::NodeKey;
use tmp2p_driver_smol::{Envelope, NodeBuilder};
use tmp2p_store::MemoryPeerStore;

type Error = Box<dyn std::error::Error>;

/// What one turn of the loop received.
enum Received {
    Consensus(Box<Envelope<ConsensusInner>>),
    Mempool(Envelope<MempoolInner>),
    Peer(PeerUpdate),
    Closed,
}

fn descriptor(id: u8) -> Result<ChannelDescriptor, Error> {
    comet::descriptor(CometVersion::V0_38, id)
        .ok_or_else(|| format!("no channel 0x{id:02x}").into())
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(chain_id)) = (args.next(), args.next()) else {
        eprintln!("usage: observe_smol ID@HOST:PORT CHAIN_ID");
        std::process::exit(2);
    };
    let address = NodeAddress::parse(&address)?;

    // A node nobody can dial (loopback, any port), with the observed node as its one
    // persistent peer (redialled if it drops), and its peer records in memory.
    let mut config = NodeConfig::new(chain_id, "127.0.0.1:0".parse()?);
    config.moniker = "observe-smol-example".into();
    config.persistent_peers.push(address);
    let key = NodeKey::generate(&mut OsRng);
    let mut builder = NodeBuilder::new(config, key, Box::new(MemoryPeerStore::new()))?;

    // Channels are advertised in our NodeInfo, so they are opened before the start. The
    // state channel carries round steps both ways; votes and transactions only come in.
    let state = builder.open_channel(
        descriptor(comet::CONSENSUS_STATE)?,
        ConsensusCodec::for_channel(comet::CONSENSUS_STATE).ok_or("not a consensus channel")?,
    )?;
    let votes = builder.open_channel(
        descriptor(comet::CONSENSUS_VOTE)?,
        ConsensusCodec::for_channel(comet::CONSENSUS_VOTE).ok_or("not a consensus channel")?,
    )?;
    let mempool = builder.open_channel(descriptor(comet::MEMPOOL)?, MempoolCodec::new())?;
    let updates = builder.subscribe();

    smol::block_on(async {
        let node = builder.start().await?;
        println!("observing as {}", node.node_id());
        let mut follower = RoundFollower::new();
        loop {
            let consensus = async {
                let either = future::or(state.inbound.recv(), votes.inbound.recv()).await;
                either.map_or(Received::Closed, |e| Received::Consensus(Box::new(e)))
            };
            let txs = async {
                mempool
                    .inbound
                    .recv()
                    .await
                    .map_or(Received::Closed, Received::Mempool)
            };
            let peers = async {
                updates
                    .recv()
                    .await
                    .map_or(Received::Closed, Received::Peer)
            };
            match future::or(peers, future::or(consensus, txs)).await {
                // A peer that comes back starts over: its first round step is echoed again.
                Received::Peer(update) => {
                    if update.status == PeerStatus::Down {
                        follower.peer_down(&update.node_id);
                    }
                    println!("peer {} {:?}", update.node_id, update.status);
                }
                Received::Consensus(envelope) => {
                    let Some(peer) = envelope.from else { continue };
                    // Echo the peer's round back to it: the only message we ever send.
                    if let Some(reply) = follower.handle_message(peer, &envelope.message) {
                        // Fails only when the peer went down meanwhile: nothing to answer.
                        if let Err(error) =
                            state.outbound.send(Envelope::to_peer(peer, reply)).await
                        {
                            eprintln!("round step to {peer} not sent: {error}");
                        }
                    }
                    match &envelope.message {
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
                Received::Mempool(envelope) => {
                    let MempoolInner::Txs(txs) = &envelope.message;
                    for tx in &txs.txs {
                        println!(
                            "tx {} ({} bytes)",
                            hex::encode_upper(Sha256::digest(tx)),
                            tx.len()
                        );
                    }
                }
                Received::Closed => break,
            }
        }
        node.stop().await;
        Ok(())
    })
}
