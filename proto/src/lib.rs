//! prost types of every message tmp2p puts on the wire: the key-exchange `BytesValue`,
//! `tendermint.crypto.PublicKey`, `tendermint.p2p.AuthSigMessage`, `DefaultNodeInfo`,
//! MConnection `Packet`s, the PEX `Message` wrapper, every message CometBFT v0.38's
//! reactors send (consensus, mempool, evidence, block sync, state sync) with the types they
//! carry, and the ADR 062 echo example messages.
//!
//! No logic lives here. Types are generated at build time from the `.proto` files under
//! `proto/` by prost-build fed by protox (no system `protoc`), except the two that need
//! encodings prost-build cannot express (see [`BytesValue`] and [`DefaultNodeInfo`]).
//! Every `bytes` field is a [`bytes::Bytes`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod key_exchange;
mod node_info;

pub use key_exchange::BytesValue;
pub use node_info::DefaultNodeInfo;

/// Generated code, arranged in the protobuf package hierarchy (`tendermint.crypto`,
/// `tendermint.p2p`) so cross-package references resolve.
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod generated {
    pub mod tendermint {
        pub mod crypto {
            include!(concat!(env!("OUT_DIR"), "/tendermint.crypto.rs"));
        }
        pub mod p2p {
            include!(concat!(env!("OUT_DIR"), "/tendermint.p2p.rs"));
        }
        pub mod libs {
            pub mod bits {
                include!(concat!(env!("OUT_DIR"), "/tendermint.libs.bits.rs"));
            }
        }
        pub mod version {
            include!(concat!(env!("OUT_DIR"), "/tendermint.version.rs"));
        }
        pub mod types {
            include!(concat!(env!("OUT_DIR"), "/tendermint.types.rs"));
        }
        pub mod blocksync {
            include!(concat!(env!("OUT_DIR"), "/tendermint.blocksync.rs"));
        }
        pub mod consensus {
            include!(concat!(env!("OUT_DIR"), "/tendermint.consensus.rs"));
        }
        pub mod mempool {
            include!(concat!(env!("OUT_DIR"), "/tendermint.mempool.rs"));
        }
        pub mod statesync {
            include!(concat!(env!("OUT_DIR"), "/tendermint.statesync.rs"));
        }
    }
    pub mod tmp2p {
        pub mod echo {
            include!(concat!(env!("OUT_DIR"), "/tmp2p.echo.rs"));
        }
    }
}

/// `tendermint.crypto`: the public key of a node's long-term identity.
pub mod crypto {
    pub use crate::generated::tendermint::crypto::public_key::Sum as PublicKeySum;
    pub use crate::generated::tendermint::crypto::PublicKey;
}

/// `tendermint.p2p`: authentication, node info, MConnection packets and PEX.
pub mod p2p {
    pub use crate::generated::tendermint::p2p::message::Sum as MessageSum;
    pub use crate::generated::tendermint::p2p::packet::Sum as PacketSum;
    pub use crate::generated::tendermint::p2p::{
        AuthSigMessage, DefaultNodeInfoOther, Message, NetAddress, Packet, PacketMsg, PacketPing,
        PacketPong, PexAddrs, PexRequest, ProtocolVersion,
    };
    pub use crate::node_info::DefaultNodeInfo;
}

/// `tendermint.types` (what the reactor messages carry: votes, proposals, block parts,
/// blocks, commits, evidence, light blocks), with `tendermint.libs.bits.BitArray`,
/// `tendermint.version.Consensus` and the Merkle `Proof` of `tendermint.crypto`.
pub mod types {
    pub use crate::generated::tendermint::crypto::Proof;
    pub use crate::generated::tendermint::libs::bits::BitArray;
    pub use crate::generated::tendermint::types::evidence::Sum as EvidenceSum;
    pub use crate::generated::tendermint::types::{
        Block, BlockId, BlockIdFlag, Commit, CommitSig, Data, DuplicateVoteEvidence, Evidence,
        EvidenceList, ExtendedCommit, ExtendedCommitSig, Header, LightBlock,
        LightClientAttackEvidence, Part, PartSetHeader, Proposal, SignedHeader, SignedMsgType,
        Validator, ValidatorSet, Vote,
    };
    pub use crate::generated::tendermint::version::Consensus;
    pub use prost_types::Timestamp;
}

/// `tendermint.blocksync`: the block-sync reactor's messages on channel 0x40. (The
/// evidence reactor sends a bare [`types::EvidenceList`] on 0x38.)
pub mod blocksync {
    pub use crate::generated::tendermint::blocksync::message::Sum as MessageSum;
    pub use crate::generated::tendermint::blocksync::{
        BlockRequest, BlockResponse, Message, NoBlockResponse, StatusRequest, StatusResponse,
    };
}

/// `tendermint.consensus`: the consensus reactor's messages on channels 0x20–0x23.
pub mod consensus {
    pub use crate::generated::tendermint::consensus::message::Sum as MessageSum;
    pub use crate::generated::tendermint::consensus::{
        BlockPart, HasProposalBlockPart, HasVote, Message, NewRoundStep, NewValidBlock, Proposal,
        ProposalPol, Vote, VoteSetBits, VoteSetMaj23,
    };
}

/// `tendermint.mempool`: the mempool reactor's messages on channel 0x30.
pub mod mempool {
    pub use crate::generated::tendermint::mempool::message::Sum as MessageSum;
    pub use crate::generated::tendermint::mempool::{Message, Txs};
}

/// `tendermint.statesync`: the state-sync reactor's messages on channels 0x60 and 0x61.
pub mod statesync {
    pub use crate::generated::tendermint::statesync::message::Sum as MessageSum;
    pub use crate::generated::tendermint::statesync::{
        ChunkRequest, ChunkResponse, Message, SnapshotsRequest, SnapshotsResponse,
    };
}

/// `tmp2p.echo`: the ADR 062 echo example (`Ping`, `Pong` and their oneof wrapper
/// `EchoMessage`), used to exercise typed channels.
pub mod echo {
    pub use crate::generated::tmp2p::echo::echo_message::Sum as EchoMessageSum;
    pub use crate::generated::tmp2p::echo::{EchoMessage, Ping, Pong};
}
