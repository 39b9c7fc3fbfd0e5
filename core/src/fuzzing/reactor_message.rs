//! Fuzz body of CometBFT's reactor channels' codecs (`typed::cometbft`): bytes a peer
//! sends on a consensus, mempool, evidence, block-sync or state-sync channel.

use bytes::Bytes;

use crate::cometbft_channels::{
    BLOCKSYNC, CONSENSUS_DATA, CONSENSUS_STATE, CONSENSUS_VOTE, CONSENSUS_VOTE_SET_BITS, EVIDENCE,
    MEMPOOL, STATESYNC_CHUNK, STATESYNC_SNAPSHOT,
};
use crate::typed::cometbft::{
    BlocksyncCodec, ConsensusCodec, EvidenceCodec, MempoolCodec, StatesyncCodec,
};
use crate::typed::ChannelCodec;

/// The channels, in the order `data[0]` picks them.
const CHANNELS: [u8; 9] = [
    CONSENSUS_STATE,
    CONSENSUS_DATA,
    CONSENSUS_VOTE,
    CONSENSUS_VOTE_SET_BITS,
    MEMPOOL,
    EVIDENCE,
    BLOCKSYNC,
    STATESYNC_SNAPSHOT,
    STATESYNC_CHUNK,
];

/// `data[0]` picks the channel (modulo 9: 0x20, 0x21, 0x22, 0x23, 0x30, 0x38, 0x40, 0x60,
/// 0x61); the rest is the message. Decoding gives a message or a typed error, never a
/// panic; a message it gives must decode again, unchanged, from its own encoding (what we
/// accepted is what a reactor sees and may relay).
pub fn reactor_message(data: &[u8]) {
    let _ = reactor_message_decodes(data);
}

/// What [`reactor_message`] does, saying whether `data` decoded to a message (the corpus
/// test checks every seed does).
pub fn reactor_message_decodes(data: &[u8]) -> bool {
    let Some((&pick, message)) = data.split_first() else {
        return false;
    };
    let channel = CHANNELS[usize::from(pick) % CHANNELS.len()];
    let bytes = Bytes::copy_from_slice(message);
    if let Some(codec) = ConsensusCodec::for_channel(channel) {
        return round_trips(&codec, bytes);
    }
    if let Some(codec) = StatesyncCodec::for_channel(channel) {
        return round_trips(&codec, bytes);
    }
    match channel {
        MEMPOOL => round_trips(&MempoolCodec::new(), bytes),
        EVIDENCE => round_trips(&EvidenceCodec::new(), bytes),
        _ => round_trips(&BlocksyncCodec::new(), bytes),
    }
}

fn round_trips<C>(codec: &C, bytes: Bytes) -> bool
where
    C: ChannelCodec,
    C::Message: PartialEq + std::fmt::Debug,
{
    let Ok(message) = codec.decode(bytes) else {
        return false;
    };
    let again = codec.decode(codec.encode(&message));
    assert_eq!(
        again.as_ref().ok(),
        Some(&message),
        "accepted message does not round-trip"
    );
    true
}
