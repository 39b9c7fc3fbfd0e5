//! The message layers of CometBFT's reactor channels, for typed channels: one inner enum per
//! reactor wrapper (`tendermint.consensus.Message`, `tendermint.mempool.Message`,
//! `tendermint.blocksync.Message`, `tendermint.statesync.Message`) with the `From` /
//! `TryFrom` pair [`WrapperCodec`] needs, and the codec for each channel. The evidence
//! channel carries a bare `EvidenceList` ([`EvidenceCodec`]). Open the channels with
//! `crate::cometbft_channels` descriptors.
//!
//! The consensus and state-sync reactors spread one wrapper over several channels, each
//! message type on one of them ([`ConsensusInner::channel`], [`StatesyncInner::channel`]).
//! Their codecs are made per channel and refuse a well-formed message of another channel
//! with [`CodecError::Misplaced`] (fatal for its sender, as every undecodable message is).
//! CometBFT's Go reactors log and ignore such a message; no CometBFT node sends one, so
//! only a broken or hostile peer is cut off.

use bytes::Bytes;
use tmp2p_proto::{blocksync, consensus, mempool, statesync, types};

use super::{ChannelCodec, CodecError, ProtoCodec, WrapperCodec};
use crate::cometbft_channels::{
    CONSENSUS_DATA, CONSENSUS_STATE, CONSENSUS_VOTE, CONSENSUS_VOTE_SET_BITS, STATESYNC_CHUNK,
    STATESYNC_SNAPSHOT,
};

/// Declares a reactor's inner enum (one variant per oneof case, each holding that case's
/// message) and its `From` / `TryFrom` pair with the wire wrapper.
macro_rules! inner_messages {
    (
        $(#[$doc:meta])*
        $inner:ident for $module:ident { $($(#[$vdoc:meta])* $variant:ident($ty:ty)),+ $(,)? }
    ) => {
        $(#[$doc])*
        // The variants are the wire messages as prost decodes them (a block response holds
        // a whole block); each is moved once per delivery, so boxing would buy nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum $inner {
            $($(#[$vdoc])* $variant($ty),)+
        }

        impl From<$inner> for $module::Message {
            fn from(inner: $inner) -> Self {
                let sum = match inner {
                    $($inner::$variant(message) => $module::MessageSum::$variant(message),)+
                };
                $module::Message { sum: Some(sum) }
            }
        }

        impl TryFrom<$module::Message> for $inner {
            type Error = CodecError;

            fn try_from(wrapper: $module::Message) -> Result<Self, CodecError> {
                match wrapper.sum {
                    $(Some($module::MessageSum::$variant(message)) => Ok($inner::$variant(message)),)+
                    None => Err(CodecError::EmptyWrapper),
                }
            }
        }
    };
}

inner_messages! {
    /// A consensus message (channels 0x20–0x23).
    ConsensusInner for consensus {
        /// A peer's height, round and step.
        NewRoundStep(consensus::NewRoundStep),
        /// A peer saw +2/3 prevotes for a block, or committed it.
        NewValidBlock(consensus::NewValidBlock),
        /// A block proposal.
        Proposal(consensus::Proposal),
        /// The proof-of-lock bit array of a proposal.
        ProposalPol(consensus::ProposalPol),
        /// One part of the proposed block.
        BlockPart(consensus::BlockPart),
        /// A prevote or precommit.
        Vote(consensus::Vote),
        /// A peer has a vote.
        HasVote(consensus::HasVote),
        /// A peer saw +2/3 votes for a block.
        VoteSetMaj23(consensus::VoteSetMaj23),
        /// Which votes a peer has for a block.
        VoteSetBits(consensus::VoteSetBits),
        /// A peer has one part of the proposed block (CometBFT v1; v0.38 never sends it).
        HasProposalBlockPart(consensus::HasProposalBlockPart),
    }
}

inner_messages! {
    /// A mempool message (channel 0x30).
    MempoolInner for mempool {
        /// Transactions.
        Txs(mempool::Txs),
    }
}

inner_messages! {
    /// A block-sync message (channel 0x40).
    BlocksyncInner for blocksync {
        /// Asks for the block at a height.
        BlockRequest(blocksync::BlockRequest),
        /// The peer does not have that block.
        NoBlockResponse(blocksync::NoBlockResponse),
        /// A block (and, from v0.38, its extended commit).
        BlockResponse(blocksync::BlockResponse),
        /// Asks for the peer's base and height.
        StatusRequest(blocksync::StatusRequest),
        /// The peer's base and height.
        StatusResponse(blocksync::StatusResponse),
    }
}

inner_messages! {
    /// A state-sync message (channels 0x60 and 0x61).
    StatesyncInner for statesync {
        /// Asks for the peer's snapshots.
        SnapshotsRequest(statesync::SnapshotsRequest),
        /// One snapshot the peer has.
        SnapshotsResponse(statesync::SnapshotsResponse),
        /// Asks for one chunk of a snapshot.
        ChunkRequest(statesync::ChunkRequest),
        /// One chunk of a snapshot.
        ChunkResponse(statesync::ChunkResponse),
    }
}

impl ConsensusInner {
    /// The channel CometBFT sends this message on.
    pub fn channel(&self) -> u8 {
        match self {
            ConsensusInner::NewRoundStep(_)
            | ConsensusInner::NewValidBlock(_)
            | ConsensusInner::HasVote(_)
            | ConsensusInner::VoteSetMaj23(_)
            | ConsensusInner::HasProposalBlockPart(_) => CONSENSUS_STATE,
            ConsensusInner::Proposal(_)
            | ConsensusInner::ProposalPol(_)
            | ConsensusInner::BlockPart(_) => CONSENSUS_DATA,
            ConsensusInner::Vote(_) => CONSENSUS_VOTE,
            ConsensusInner::VoteSetBits(_) => CONSENSUS_VOTE_SET_BITS,
        }
    }

    /// The message's name in CometBFT's proto.
    pub fn name(&self) -> &'static str {
        match self {
            ConsensusInner::NewRoundStep(_) => "NewRoundStep",
            ConsensusInner::NewValidBlock(_) => "NewValidBlock",
            ConsensusInner::Proposal(_) => "Proposal",
            ConsensusInner::ProposalPol(_) => "ProposalPOL",
            ConsensusInner::BlockPart(_) => "BlockPart",
            ConsensusInner::Vote(_) => "Vote",
            ConsensusInner::HasVote(_) => "HasVote",
            ConsensusInner::VoteSetMaj23(_) => "VoteSetMaj23",
            ConsensusInner::VoteSetBits(_) => "VoteSetBits",
            ConsensusInner::HasProposalBlockPart(_) => "HasProposalBlockPart",
        }
    }
}

impl StatesyncInner {
    /// The channel CometBFT sends this message on.
    pub fn channel(&self) -> u8 {
        match self {
            StatesyncInner::SnapshotsRequest(_) | StatesyncInner::SnapshotsResponse(_) => {
                STATESYNC_SNAPSHOT
            }
            StatesyncInner::ChunkRequest(_) | StatesyncInner::ChunkResponse(_) => STATESYNC_CHUNK,
        }
    }

    /// The message's name in CometBFT's proto.
    pub fn name(&self) -> &'static str {
        match self {
            StatesyncInner::SnapshotsRequest(_) => "SnapshotsRequest",
            StatesyncInner::SnapshotsResponse(_) => "SnapshotsResponse",
            StatesyncInner::ChunkRequest(_) => "ChunkRequest",
            StatesyncInner::ChunkResponse(_) => "ChunkResponse",
        }
    }
}

/// Declares the codec of a reactor whose wrapper spans several channels: it decodes the
/// wrapper and refuses a message that belongs on another channel.
macro_rules! per_channel_codec {
    ($(#[$doc:meta])* $codec:ident, $wrapper:ty, $inner:ty, $channels:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $codec {
            channel: u8,
        }

        impl $codec {
            /// The codec for channel `channel`: it takes only the messages CometBFT sends
            /// there. None for a channel the reactor does not use (its codec would refuse
            /// every message).
            pub fn for_channel(channel: u8) -> Option<Self> {
                $channels.contains(&channel).then_some(Self { channel })
            }

            /// The channel this codec serves.
            pub const fn channel(&self) -> u8 {
                self.channel
            }
        }

        impl ChannelCodec for $codec {
            type Message = $inner;

            fn encode(&self, message: &$inner) -> Bytes {
                WrapperCodec::<$wrapper, $inner>::new().encode(message)
            }

            fn decode(&self, bytes: Bytes) -> Result<$inner, CodecError> {
                let message = WrapperCodec::<$wrapper, $inner>::new().decode(bytes)?;
                if message.channel() == self.channel {
                    Ok(message)
                } else {
                    Err(CodecError::Misplaced {
                        message: message.name(),
                        channel: self.channel,
                        belongs_on: message.channel(),
                    })
                }
            }
        }
    };
}

per_channel_codec! {
    /// A consensus channel's codec (one per channel 0x20–0x23).
    ConsensusCodec, consensus::Message, ConsensusInner,
    [CONSENSUS_STATE, CONSENSUS_DATA, CONSENSUS_VOTE, CONSENSUS_VOTE_SET_BITS]
}

per_channel_codec! {
    /// A state-sync channel's codec (one per channel 0x60, 0x61).
    StatesyncCodec, statesync::Message, StatesyncInner,
    [STATESYNC_SNAPSHOT, STATESYNC_CHUNK]
}

/// The mempool channel's codec.
pub type MempoolCodec = WrapperCodec<mempool::Message, MempoolInner>;
/// The block-sync channel's codec.
pub type BlocksyncCodec = WrapperCodec<blocksync::Message, BlocksyncInner>;
/// The evidence channel's codec: a bare `EvidenceList`, no wrapper.
pub type EvidenceCodec = ProtoCodec<types::EvidenceList>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::ChannelCodec;
    use bytes::Bytes;

    #[test]
    fn a_new_round_step_is_field_one_of_the_consensus_wrapper() {
        let step = consensus::NewRoundStep {
            height: 7,
            round: 1,
            step: 3,
            seconds_since_start_time: 2,
            last_commit_round: 0,
        };
        let codec = ConsensusCodec::for_channel(CONSENSUS_STATE).unwrap();
        let wire = codec.encode(&ConsensusInner::NewRoundStep(step));
        // Field 1, length 8: height 7, round 1, step 3, seconds 2 (last_commit_round 0 is
        // the default and not sent).
        assert_eq!(&wire[..], &[0x0a, 8, 0x08, 7, 0x10, 1, 0x18, 3, 0x20, 2]);
        assert_eq!(
            codec.decode(wire).unwrap(),
            ConsensusInner::NewRoundStep(step)
        );
    }

    #[test]
    fn a_message_on_another_channel_than_its_own_is_a_typed_error() {
        let vote = ConsensusInner::Vote(consensus::Vote { vote: None });
        let wire = ConsensusCodec::for_channel(CONSENSUS_VOTE)
            .unwrap()
            .encode(&vote);
        assert_eq!(
            ConsensusCodec::for_channel(CONSENSUS_VOTE)
                .unwrap()
                .decode(wire.clone()),
            Ok(vote)
        );
        assert_eq!(
            ConsensusCodec::for_channel(CONSENSUS_STATE)
                .unwrap()
                .decode(wire),
            Err(CodecError::Misplaced {
                message: "Vote",
                channel: CONSENSUS_STATE,
                belongs_on: CONSENSUS_VOTE,
            })
        );
        let request = StatesyncInner::SnapshotsRequest(statesync::SnapshotsRequest {});
        let wire = StatesyncCodec::for_channel(STATESYNC_SNAPSHOT)
            .unwrap()
            .encode(&request);
        let misplaced = StatesyncCodec::for_channel(STATESYNC_CHUNK)
            .unwrap()
            .decode(wire)
            .unwrap_err();
        assert_eq!(
            misplaced.to_string(),
            "SnapshotsRequest is a channel 0x60 message, received on channel 0x61"
        );
        // Only the reactor's own channels have a codec.
        assert_eq!(ConsensusCodec::for_channel(0x30), None);
        assert_eq!(StatesyncCodec::for_channel(CONSENSUS_STATE), None);
    }

    #[test]
    fn each_consensus_message_decodes_on_its_channel_only() {
        use consensus::*;
        let all = [
            (
                ConsensusInner::NewRoundStep(NewRoundStep::default()),
                CONSENSUS_STATE,
            ),
            (
                ConsensusInner::NewValidBlock(NewValidBlock::default()),
                CONSENSUS_STATE,
            ),
            (ConsensusInner::HasVote(HasVote::default()), CONSENSUS_STATE),
            (
                ConsensusInner::VoteSetMaj23(VoteSetMaj23::default()),
                CONSENSUS_STATE,
            ),
            (
                ConsensusInner::HasProposalBlockPart(HasProposalBlockPart::default()),
                CONSENSUS_STATE,
            ),
            (
                ConsensusInner::Proposal(Proposal::default()),
                CONSENSUS_DATA,
            ),
            (
                ConsensusInner::ProposalPol(ProposalPol::default()),
                CONSENSUS_DATA,
            ),
            (
                ConsensusInner::BlockPart(BlockPart::default()),
                CONSENSUS_DATA,
            ),
            (ConsensusInner::Vote(Vote::default()), CONSENSUS_VOTE),
            (
                ConsensusInner::VoteSetBits(VoteSetBits::default()),
                CONSENSUS_VOTE_SET_BITS,
            ),
        ];
        let channels = [
            CONSENSUS_STATE,
            CONSENSUS_DATA,
            CONSENSUS_VOTE,
            CONSENSUS_VOTE_SET_BITS,
        ];
        for (message, home) in all {
            assert_eq!(message.channel(), home, "{}", message.name());
            for id in channels {
                let codec = ConsensusCodec::for_channel(id).unwrap();
                let decoded = codec.decode(codec.encode(&message));
                if id == home {
                    assert_eq!(decoded.as_ref(), Ok(&message));
                } else {
                    let expected = CodecError::Misplaced {
                        message: message.name(),
                        channel: id,
                        belongs_on: home,
                    };
                    assert_eq!(decoded, Err(expected));
                }
            }
        }
    }

    #[test]
    fn a_v1_has_proposal_block_part_is_field_ten_and_decodes() {
        // CometBFT v1's consensus Message, field 10 (tag 0x52), length 6: height 7, round 1,
        // index 3. A v0.38 decoder would see an empty wrapper and cut the v1 peer off.
        let wire = Bytes::from_static(&[0x52, 6, 0x08, 7, 0x10, 1, 0x18, 3]);
        let part = ConsensusInner::HasProposalBlockPart(consensus::HasProposalBlockPart {
            height: 7,
            round: 1,
            index: 3,
        });
        let codec = ConsensusCodec::for_channel(CONSENSUS_STATE).unwrap();
        assert_eq!(codec.decode(wire.clone()).unwrap(), part);
        assert_eq!(codec.encode(&part), wire);
    }

    #[test]
    fn every_wrapper_round_trips_and_an_empty_one_is_an_error() {
        let txs = MempoolInner::Txs(mempool::Txs {
            txs: vec![Bytes::from_static(b"tx")],
        });
        let codec = MempoolCodec::new();
        assert_eq!(codec.decode(codec.encode(&txs)).unwrap(), txs);
        let status = BlocksyncInner::StatusResponse(blocksync::StatusResponse {
            height: 10,
            base: 1,
        });
        let codec = BlocksyncCodec::new();
        assert_eq!(codec.decode(codec.encode(&status)).unwrap(), status);
        let chunk = StatesyncInner::ChunkRequest(statesync::ChunkRequest {
            height: 5,
            format: 1,
            index: 2,
        });
        let codec = StatesyncCodec::for_channel(STATESYNC_CHUNK).unwrap();
        assert_eq!(codec.decode(codec.encode(&chunk)).unwrap(), chunk);
        // An empty wrapper (no oneof case) decodes as a typed error, not a message.
        assert_eq!(
            ConsensusCodec::for_channel(CONSENSUS_STATE)
                .unwrap()
                .decode(Bytes::new()),
            Err(CodecError::EmptyWrapper)
        );
        assert!(MempoolCodec::new()
            .decode(Bytes::from_static(&[0xff]))
            .is_err());
        let evidence = types::EvidenceList { evidence: vec![] };
        let codec = EvidenceCodec::new();
        assert_eq!(codec.decode(codec.encode(&evidence)).unwrap(), evidence);
    }
}
