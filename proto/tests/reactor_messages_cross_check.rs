#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every message CometBFT v0.38's reactors send — consensus (0x20–0x23), mempool (0x30),
//! evidence (0x38), block sync (0x40), state sync (0x60, 0x61) — and the types they carry against the independent `tendermint-proto` 0.41 crate
//! (`v0_38`): for arbitrary values (biased towards edge values, optional fields present or
//! not) our encoding equals theirs byte for byte, and each side decodes the other's bytes to
//! the equal value.

#[macro_use]
mod common;

use bytes::Bytes;
use common::gen_string;
use common::{edge_or_any, gen_bytes, gen_u64, same_wire, Any, CASES};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tendermint_proto::google::protobuf::Timestamp as TheirTimestamp;
use tendermint_proto::v0_38::blocksync as their_blocksync;
use tendermint_proto::v0_38::consensus as their_consensus;
use tendermint_proto::v0_38::crypto as their_crypto;
use tendermint_proto::v0_38::libs::bits as their_bits;
use tendermint_proto::v0_38::mempool as their_mempool;
use tendermint_proto::v0_38::statesync as their_statesync;
use tendermint_proto::v0_38::types as their_types;
use tendermint_proto::v0_38::version as their_version;
use tmp2p_proto::blocksync;
use tmp2p_proto::consensus;
use tmp2p_proto::mempool;
use tmp2p_proto::statesync;
use tmp2p_proto::types;

fn gen_u32(g: &mut Gen) -> u32 {
    edge_or_any(g, &[0, 1, 0x7f, 0x80, 0x3fff, 0x4000, u32::MAX])
}

fn gen_txs(g: &mut Gen) -> mempool::Txs {
    let count = usize::from(u8::arbitrary(g) % 6);
    mempool::Txs {
        txs: (0..count).map(|_| Bytes::from(gen_bytes(g))).collect(),
    }
}

fn gen_snapshots_response(g: &mut Gen) -> statesync::SnapshotsResponse {
    statesync::SnapshotsResponse {
        height: gen_u64(g),
        format: gen_u32(g),
        chunks: gen_u32(g),
        hash: Bytes::from(gen_bytes(g)),
        metadata: Bytes::from(gen_bytes(g)),
    }
}

fn gen_chunk_request(g: &mut Gen) -> statesync::ChunkRequest {
    statesync::ChunkRequest {
        height: gen_u64(g),
        format: gen_u32(g),
        index: gen_u32(g),
    }
}

fn gen_chunk_response(g: &mut Gen) -> statesync::ChunkResponse {
    statesync::ChunkResponse {
        height: gen_u64(g),
        format: gen_u32(g),
        index: gen_u32(g),
        chunk: Bytes::from(gen_bytes(g)),
        missing: bool::arbitrary(g),
    }
}

arbitrary_via!(mempool::Txs, gen_txs);
arbitrary_via!(mempool::Message, |g: &mut Gen| mempool::Message {
    sum: (u8::arbitrary(g) % 5 != 0).then(|| mempool::MessageSum::Txs(gen_txs(g))),
});
arbitrary_via!(statesync::SnapshotsResponse, gen_snapshots_response);
arbitrary_via!(statesync::ChunkRequest, gen_chunk_request);
arbitrary_via!(statesync::ChunkResponse, gen_chunk_response);
arbitrary_via!(statesync::Message, |g: &mut Gen| {
    use statesync::MessageSum as Sum;
    statesync::Message {
        sum: match u8::arbitrary(g) % 5 {
            0 => None,
            1 => Some(Sum::SnapshotsRequest(statesync::SnapshotsRequest {})),
            2 => Some(Sum::SnapshotsResponse(gen_snapshots_response(g))),
            3 => Some(Sum::ChunkRequest(gen_chunk_request(g))),
            _ => Some(Sum::ChunkResponse(gen_chunk_response(g))),
        },
    }
});

fn their_txs(t: &mempool::Txs) -> their_mempool::Txs {
    their_mempool::Txs {
        txs: t.txs.iter().map(|tx| tx.to_vec()).collect(),
    }
}

fn their_mempool_message(m: &mempool::Message) -> their_mempool::Message {
    their_mempool::Message {
        sum: m.sum.as_ref().map(|sum| match sum {
            mempool::MessageSum::Txs(t) => their_mempool::message::Sum::Txs(their_txs(t)),
        }),
    }
}

fn their_snapshots_response(
    r: &statesync::SnapshotsResponse,
) -> their_statesync::SnapshotsResponse {
    their_statesync::SnapshotsResponse {
        height: r.height,
        format: r.format,
        chunks: r.chunks,
        hash: r.hash.to_vec(),
        metadata: r.metadata.to_vec(),
    }
}

fn their_chunk_request(r: &statesync::ChunkRequest) -> their_statesync::ChunkRequest {
    their_statesync::ChunkRequest {
        height: r.height,
        format: r.format,
        index: r.index,
    }
}

fn their_chunk_response(r: &statesync::ChunkResponse) -> their_statesync::ChunkResponse {
    their_statesync::ChunkResponse {
        height: r.height,
        format: r.format,
        index: r.index,
        chunk: r.chunk.to_vec(),
        missing: r.missing,
    }
}

fn their_statesync_message(m: &statesync::Message) -> their_statesync::Message {
    use statesync::MessageSum as Ours;
    use their_statesync::message::Sum as Theirs;
    their_statesync::Message {
        sum: m.sum.as_ref().map(|sum| match sum {
            Ours::SnapshotsRequest(_) => {
                Theirs::SnapshotsRequest(their_statesync::SnapshotsRequest {})
            }
            Ours::SnapshotsResponse(r) => Theirs::SnapshotsResponse(their_snapshots_response(r)),
            Ours::ChunkRequest(r) => Theirs::ChunkRequest(their_chunk_request(r)),
            Ours::ChunkResponse(r) => Theirs::ChunkResponse(their_chunk_response(r)),
        }),
    }
}

same_wire_property!(mempool_txs_match_tendermint_proto, mempool::Txs, their_txs);
same_wire_property!(
    mempool_message_matches_tendermint_proto,
    mempool::Message,
    their_mempool_message
);
same_wire_property!(
    snapshots_response_matches_tendermint_proto,
    statesync::SnapshotsResponse,
    their_snapshots_response
);
same_wire_property!(
    chunk_request_matches_tendermint_proto,
    statesync::ChunkRequest,
    their_chunk_request
);
same_wire_property!(
    chunk_response_matches_tendermint_proto,
    statesync::ChunkResponse,
    their_chunk_response
);
same_wire_property!(
    statesync_message_matches_tendermint_proto,
    statesync::Message,
    their_statesync_message
);

// ---------------------------------------------------------------------------------------
// Consensus.
// ---------------------------------------------------------------------------------------

fn gen_i64(g: &mut Gen) -> i64 {
    edge_or_any(
        g,
        &[0, 1, -1, 0x7f, 0x80, i64::MIN, i64::MAX, -62_135_596_800],
    )
}

fn gen_i32(g: &mut Gen) -> i32 {
    edge_or_any(g, &[0, 1, -1, 0x7f, 0x80, i32::MIN, i32::MAX])
}

/// One of the vote types, or any other number (a decoder must keep what it does not know).
fn gen_msg_type(g: &mut Gen) -> i32 {
    edge_or_any(g, &[0, 1, 2, 32, 3, -1])
}

/// Absent a fifth of the time.
fn maybe<T>(g: &mut Gen, make: impl FnOnce(&mut Gen) -> T) -> Option<T> {
    (u8::arbitrary(g) % 5 != 0).then(|| make(g))
}

fn gen_timestamp(g: &mut Gen) -> types::Timestamp {
    types::Timestamp {
        seconds: gen_i64(g),
        nanos: gen_i32(g),
    }
}

fn gen_bit_array(g: &mut Gen) -> types::BitArray {
    let count = usize::from(u8::arbitrary(g) % 6);
    types::BitArray {
        bits: gen_i64(g),
        elems: (0..count).map(|_| gen_u64(g)).collect(),
    }
}

fn gen_part_set_header(g: &mut Gen) -> types::PartSetHeader {
    types::PartSetHeader {
        total: gen_u32(g),
        hash: Bytes::from(gen_bytes(g)),
    }
}

fn gen_block_id(g: &mut Gen) -> types::BlockId {
    types::BlockId {
        hash: Bytes::from(gen_bytes(g)),
        part_set_header: maybe(g, gen_part_set_header),
    }
}

fn gen_part(g: &mut Gen) -> types::Part {
    let aunts = usize::from(u8::arbitrary(g) % 5);
    types::Part {
        index: gen_u32(g),
        bytes: Bytes::from(gen_bytes(g)),
        proof: maybe(g, |g| types::Proof {
            total: gen_i64(g),
            index: gen_i64(g),
            leaf_hash: Bytes::from(gen_bytes(g)),
            aunts: (0..aunts).map(|_| Bytes::from(gen_bytes(g))).collect(),
        }),
    }
}

fn gen_vote(g: &mut Gen) -> types::Vote {
    types::Vote {
        r#type: gen_msg_type(g),
        height: gen_i64(g),
        round: gen_i32(g),
        block_id: maybe(g, gen_block_id),
        timestamp: maybe(g, gen_timestamp),
        validator_address: Bytes::from(gen_bytes(g)),
        validator_index: gen_i32(g),
        signature: Bytes::from(gen_bytes(g)),
        extension: Bytes::from(gen_bytes(g)),
        extension_signature: Bytes::from(gen_bytes(g)),
    }
}

fn gen_proposal(g: &mut Gen) -> types::Proposal {
    types::Proposal {
        r#type: gen_msg_type(g),
        height: gen_i64(g),
        round: gen_i32(g),
        pol_round: gen_i32(g),
        block_id: maybe(g, gen_block_id),
        timestamp: maybe(g, gen_timestamp),
        signature: Bytes::from(gen_bytes(g)),
    }
}

fn gen_consensus_message(g: &mut Gen) -> consensus::Message {
    use consensus::MessageSum as Sum;
    let sum = match u8::arbitrary(g) % 10 {
        0 => None,
        1 => Some(Sum::NewRoundStep(consensus::NewRoundStep {
            height: gen_i64(g),
            round: gen_i32(g),
            step: gen_u32(g),
            seconds_since_start_time: gen_i64(g),
            last_commit_round: gen_i32(g),
        })),
        2 => Some(Sum::NewValidBlock(consensus::NewValidBlock {
            height: gen_i64(g),
            round: gen_i32(g),
            block_part_set_header: maybe(g, gen_part_set_header),
            block_parts: maybe(g, gen_bit_array),
            is_commit: bool::arbitrary(g),
        })),
        3 => Some(Sum::Proposal(consensus::Proposal {
            proposal: maybe(g, gen_proposal),
        })),
        4 => Some(Sum::ProposalPol(consensus::ProposalPol {
            height: gen_i64(g),
            proposal_pol_round: gen_i32(g),
            proposal_pol: maybe(g, gen_bit_array),
        })),
        5 => Some(Sum::BlockPart(consensus::BlockPart {
            height: gen_i64(g),
            round: gen_i32(g),
            part: maybe(g, gen_part),
        })),
        6 => Some(Sum::Vote(consensus::Vote {
            vote: maybe(g, gen_vote),
        })),
        7 => Some(Sum::HasVote(consensus::HasVote {
            height: gen_i64(g),
            round: gen_i32(g),
            r#type: gen_msg_type(g),
            index: gen_i32(g),
        })),
        8 => Some(Sum::VoteSetMaj23(consensus::VoteSetMaj23 {
            height: gen_i64(g),
            round: gen_i32(g),
            r#type: gen_msg_type(g),
            block_id: maybe(g, gen_block_id),
        })),
        _ => Some(Sum::VoteSetBits(consensus::VoteSetBits {
            height: gen_i64(g),
            round: gen_i32(g),
            r#type: gen_msg_type(g),
            block_id: maybe(g, gen_block_id),
            votes: maybe(g, gen_bit_array),
        })),
    };
    consensus::Message { sum }
}

arbitrary_via!(types::Vote, gen_vote);
arbitrary_via!(types::Proposal, gen_proposal);
arbitrary_via!(types::Part, gen_part);
arbitrary_via!(consensus::Message, gen_consensus_message);

fn their_timestamp(t: &types::Timestamp) -> TheirTimestamp {
    TheirTimestamp {
        seconds: t.seconds,
        nanos: t.nanos,
    }
}

fn their_bit_array(b: &types::BitArray) -> their_bits::BitArray {
    their_bits::BitArray {
        bits: b.bits,
        elems: b.elems.clone(),
    }
}

fn their_part_set_header(h: &types::PartSetHeader) -> their_types::PartSetHeader {
    their_types::PartSetHeader {
        total: h.total,
        hash: h.hash.to_vec(),
    }
}

fn their_block_id(b: &types::BlockId) -> their_types::BlockId {
    their_types::BlockId {
        hash: b.hash.to_vec(),
        part_set_header: b.part_set_header.as_ref().map(their_part_set_header),
    }
}

fn their_part(p: &types::Part) -> their_types::Part {
    their_types::Part {
        index: p.index,
        bytes: p.bytes.to_vec(),
        proof: p.proof.as_ref().map(|proof| their_crypto::Proof {
            total: proof.total,
            index: proof.index,
            leaf_hash: proof.leaf_hash.to_vec(),
            aunts: proof.aunts.iter().map(|a| a.to_vec()).collect(),
        }),
    }
}

fn their_vote(v: &types::Vote) -> their_types::Vote {
    their_types::Vote {
        r#type: v.r#type,
        height: v.height,
        round: v.round,
        block_id: v.block_id.as_ref().map(their_block_id),
        timestamp: v.timestamp.as_ref().map(their_timestamp),
        validator_address: v.validator_address.to_vec(),
        validator_index: v.validator_index,
        signature: v.signature.to_vec(),
        extension: v.extension.to_vec(),
        extension_signature: v.extension_signature.to_vec(),
    }
}

fn their_proposal(p: &types::Proposal) -> their_types::Proposal {
    their_types::Proposal {
        r#type: p.r#type,
        height: p.height,
        round: p.round,
        pol_round: p.pol_round,
        block_id: p.block_id.as_ref().map(their_block_id),
        timestamp: p.timestamp.as_ref().map(their_timestamp),
        signature: p.signature.to_vec(),
    }
}

fn their_consensus_message(m: &consensus::Message) -> their_consensus::Message {
    use consensus::MessageSum as Ours;
    use their_consensus::message::Sum as Theirs;
    let sum = m.sum.as_ref().map(|sum| match sum {
        Ours::NewRoundStep(s) => Theirs::NewRoundStep(their_consensus::NewRoundStep {
            height: s.height,
            round: s.round,
            step: s.step,
            seconds_since_start_time: s.seconds_since_start_time,
            last_commit_round: s.last_commit_round,
        }),
        Ours::NewValidBlock(b) => Theirs::NewValidBlock(their_consensus::NewValidBlock {
            height: b.height,
            round: b.round,
            block_part_set_header: b.block_part_set_header.as_ref().map(their_part_set_header),
            block_parts: b.block_parts.as_ref().map(their_bit_array),
            is_commit: b.is_commit,
        }),
        Ours::Proposal(p) => Theirs::Proposal(their_consensus::Proposal {
            proposal: p.proposal.as_ref().map(their_proposal),
        }),
        Ours::ProposalPol(p) => Theirs::ProposalPol(their_consensus::ProposalPol {
            height: p.height,
            proposal_pol_round: p.proposal_pol_round,
            proposal_pol: p.proposal_pol.as_ref().map(their_bit_array),
        }),
        Ours::BlockPart(b) => Theirs::BlockPart(their_consensus::BlockPart {
            height: b.height,
            round: b.round,
            part: b.part.as_ref().map(their_part),
        }),
        Ours::Vote(v) => Theirs::Vote(their_consensus::Vote {
            vote: v.vote.as_ref().map(their_vote),
        }),
        Ours::HasVote(h) => Theirs::HasVote(their_consensus::HasVote {
            height: h.height,
            round: h.round,
            r#type: h.r#type,
            index: h.index,
        }),
        Ours::VoteSetMaj23(v) => Theirs::VoteSetMaj23(their_consensus::VoteSetMaj23 {
            height: v.height,
            round: v.round,
            r#type: v.r#type,
            block_id: v.block_id.as_ref().map(their_block_id),
        }),
        Ours::VoteSetBits(v) => Theirs::VoteSetBits(their_consensus::VoteSetBits {
            height: v.height,
            round: v.round,
            r#type: v.r#type,
            block_id: v.block_id.as_ref().map(their_block_id),
            votes: v.votes.as_ref().map(their_bit_array),
        }),
        // CometBFT v1 only: tendermint-proto 0.41 has no counterpart, so the generator never
        // makes one (its bytes are checked against a hand-encoded vector in tmp2p-core).
        Ours::HasProposalBlockPart(_) => panic!("not generated"),
    });
    their_consensus::Message { sum }
}

same_wire_property!(vote_matches_tendermint_proto, types::Vote, their_vote);
same_wire_property!(
    proposal_matches_tendermint_proto,
    types::Proposal,
    their_proposal
);
same_wire_property!(part_matches_tendermint_proto, types::Part, their_part);
same_wire_property!(
    consensus_message_matches_tendermint_proto,
    consensus::Message,
    their_consensus_message
);

#[test]
fn the_vote_types_have_cometbfts_numbers() {
    assert_eq!(types::SignedMsgType::Prevote as i32, 1);
    assert_eq!(types::SignedMsgType::Precommit as i32, 2);
    assert_eq!(types::SignedMsgType::Proposal as i32, 32);
}

// ---------------------------------------------------------------------------------------
// Blocks, evidence and block sync.
// ---------------------------------------------------------------------------------------

/// Up to `max` items.
fn some_of<T>(g: &mut Gen, max: u8, make: impl Fn(&mut Gen) -> T) -> Vec<T> {
    let count = u8::arbitrary(g) % (max + 1);
    (0..count).map(|_| make(g)).collect()
}

fn gen_header(g: &mut Gen) -> types::Header {
    // The nine hash fields, in field order.
    let hashes: Vec<Bytes> = (0..9).map(|_| Bytes::from(gen_bytes(g))).collect();
    let mut hashes = hashes.into_iter();
    let mut hash = || hashes.next().unwrap_or_default();
    types::Header {
        version: maybe(g, |g| types::Consensus {
            block: gen_u64(g),
            app: gen_u64(g),
        }),
        chain_id: gen_string(g),
        height: gen_i64(g),
        time: maybe(g, gen_timestamp),
        last_block_id: maybe(g, gen_block_id),
        last_commit_hash: hash(),
        data_hash: hash(),
        validators_hash: hash(),
        next_validators_hash: hash(),
        consensus_hash: hash(),
        app_hash: hash(),
        last_results_hash: hash(),
        evidence_hash: hash(),
        proposer_address: hash(),
    }
}

fn gen_commit_sig(g: &mut Gen) -> types::CommitSig {
    types::CommitSig {
        block_id_flag: edge_or_any(g, &[0, 1, 2, 3, 4]),
        validator_address: Bytes::from(gen_bytes(g)),
        timestamp: maybe(g, gen_timestamp),
        signature: Bytes::from(gen_bytes(g)),
    }
}

fn gen_commit(g: &mut Gen) -> types::Commit {
    types::Commit {
        height: gen_i64(g),
        round: gen_i32(g),
        block_id: maybe(g, gen_block_id),
        signatures: some_of(g, 3, gen_commit_sig),
    }
}

fn gen_extended_commit(g: &mut Gen) -> types::ExtendedCommit {
    types::ExtendedCommit {
        height: gen_i64(g),
        round: gen_i32(g),
        block_id: maybe(g, gen_block_id),
        extended_signatures: some_of(g, 3, |g| types::ExtendedCommitSig {
            block_id_flag: edge_or_any(g, &[0, 1, 2, 3]),
            validator_address: Bytes::from(gen_bytes(g)),
            timestamp: maybe(g, gen_timestamp),
            signature: Bytes::from(gen_bytes(g)),
            extension: Bytes::from(gen_bytes(g)),
            extension_signature: Bytes::from(gen_bytes(g)),
        }),
    }
}

fn gen_validator(g: &mut Gen) -> types::Validator {
    types::Validator {
        address: Bytes::from(gen_bytes(g)),
        pub_key: maybe(g, |g| tmp2p_proto::crypto::PublicKey {
            sum: Some(tmp2p_proto::crypto::PublicKeySum::Ed25519(Bytes::from(
                gen_bytes(g),
            ))),
        }),
        voting_power: gen_i64(g),
        proposer_priority: gen_i64(g),
    }
}

fn gen_light_block(g: &mut Gen) -> types::LightBlock {
    types::LightBlock {
        signed_header: maybe(g, |g| types::SignedHeader {
            header: maybe(g, gen_header),
            commit: maybe(g, gen_commit),
        }),
        validator_set: maybe(g, |g| types::ValidatorSet {
            validators: some_of(g, 3, gen_validator),
            proposer: maybe(g, gen_validator),
            total_voting_power: gen_i64(g),
        }),
    }
}

fn gen_evidence(g: &mut Gen) -> types::Evidence {
    use types::EvidenceSum as Sum;
    let sum = match u8::arbitrary(g) % 3 {
        0 => None,
        1 => Some(Sum::DuplicateVoteEvidence(types::DuplicateVoteEvidence {
            vote_a: maybe(g, gen_vote),
            vote_b: maybe(g, gen_vote),
            total_voting_power: gen_i64(g),
            validator_power: gen_i64(g),
            timestamp: maybe(g, gen_timestamp),
        })),
        _ => Some(Sum::LightClientAttackEvidence(
            types::LightClientAttackEvidence {
                conflicting_block: maybe(g, gen_light_block),
                common_height: gen_i64(g),
                byzantine_validators: some_of(g, 3, gen_validator),
                total_voting_power: gen_i64(g),
                timestamp: maybe(g, gen_timestamp),
            },
        )),
    };
    types::Evidence { sum }
}

fn gen_evidence_list(g: &mut Gen) -> types::EvidenceList {
    types::EvidenceList {
        evidence: some_of(g, 2, gen_evidence),
    }
}

fn gen_block(g: &mut Gen) -> types::Block {
    types::Block {
        header: maybe(g, gen_header),
        data: maybe(g, |g| types::Data {
            txs: some_of(g, 4, |g| Bytes::from(gen_bytes(g))),
        }),
        evidence: maybe(g, gen_evidence_list),
        last_commit: maybe(g, gen_commit),
    }
}

fn gen_blocksync_message(g: &mut Gen) -> blocksync::Message {
    use blocksync::MessageSum as Sum;
    let sum = match u8::arbitrary(g) % 6 {
        0 => None,
        1 => Some(Sum::BlockRequest(blocksync::BlockRequest {
            height: gen_i64(g),
        })),
        2 => Some(Sum::NoBlockResponse(blocksync::NoBlockResponse {
            height: gen_i64(g),
        })),
        3 => Some(Sum::BlockResponse(blocksync::BlockResponse {
            block: maybe(g, gen_block),
            ext_commit: maybe(g, gen_extended_commit),
        })),
        4 => Some(Sum::StatusRequest(blocksync::StatusRequest {})),
        _ => Some(Sum::StatusResponse(blocksync::StatusResponse {
            height: gen_i64(g),
            base: gen_i64(g),
        })),
    };
    blocksync::Message { sum }
}

arbitrary_via!(types::EvidenceList, gen_evidence_list);
arbitrary_via!(types::Block, gen_block);
arbitrary_via!(types::LightBlock, gen_light_block);
arbitrary_via!(blocksync::Message, gen_blocksync_message);

fn their_header(h: &types::Header) -> their_types::Header {
    their_types::Header {
        version: h.version.as_ref().map(|v| their_version::Consensus {
            block: v.block,
            app: v.app,
        }),
        chain_id: h.chain_id.clone(),
        height: h.height,
        time: h.time.as_ref().map(their_timestamp),
        last_block_id: h.last_block_id.as_ref().map(their_block_id),
        last_commit_hash: h.last_commit_hash.to_vec(),
        data_hash: h.data_hash.to_vec(),
        validators_hash: h.validators_hash.to_vec(),
        next_validators_hash: h.next_validators_hash.to_vec(),
        consensus_hash: h.consensus_hash.to_vec(),
        app_hash: h.app_hash.to_vec(),
        last_results_hash: h.last_results_hash.to_vec(),
        evidence_hash: h.evidence_hash.to_vec(),
        proposer_address: h.proposer_address.to_vec(),
    }
}

fn their_commit(c: &types::Commit) -> their_types::Commit {
    their_types::Commit {
        height: c.height,
        round: c.round,
        block_id: c.block_id.as_ref().map(their_block_id),
        signatures: c
            .signatures
            .iter()
            .map(|s| their_types::CommitSig {
                block_id_flag: s.block_id_flag,
                validator_address: s.validator_address.to_vec(),
                timestamp: s.timestamp.as_ref().map(their_timestamp),
                signature: s.signature.to_vec(),
            })
            .collect(),
    }
}

fn their_extended_commit(c: &types::ExtendedCommit) -> their_types::ExtendedCommit {
    their_types::ExtendedCommit {
        height: c.height,
        round: c.round,
        block_id: c.block_id.as_ref().map(their_block_id),
        extended_signatures: c
            .extended_signatures
            .iter()
            .map(|s| their_types::ExtendedCommitSig {
                block_id_flag: s.block_id_flag,
                validator_address: s.validator_address.to_vec(),
                timestamp: s.timestamp.as_ref().map(their_timestamp),
                signature: s.signature.to_vec(),
                extension: s.extension.to_vec(),
                extension_signature: s.extension_signature.to_vec(),
            })
            .collect(),
    }
}

fn their_validator(v: &types::Validator) -> their_types::Validator {
    their_types::Validator {
        address: v.address.to_vec(),
        pub_key: v.pub_key.as_ref().map(|k| their_crypto::PublicKey {
            sum: k.sum.as_ref().map(|sum| match sum {
                tmp2p_proto::crypto::PublicKeySum::Ed25519(key) => {
                    their_crypto::public_key::Sum::Ed25519(key.to_vec())
                }
                tmp2p_proto::crypto::PublicKeySum::Secp256k1(key) => {
                    their_crypto::public_key::Sum::Secp256k1(key.to_vec())
                }
            }),
        }),
        voting_power: v.voting_power,
        proposer_priority: v.proposer_priority,
    }
}

fn their_light_block(b: &types::LightBlock) -> their_types::LightBlock {
    their_types::LightBlock {
        signed_header: b.signed_header.as_ref().map(|s| their_types::SignedHeader {
            header: s.header.as_ref().map(their_header),
            commit: s.commit.as_ref().map(their_commit),
        }),
        validator_set: b
            .validator_set
            .as_ref()
            .map(|set| their_types::ValidatorSet {
                validators: set.validators.iter().map(their_validator).collect(),
                proposer: set.proposer.as_ref().map(their_validator),
                total_voting_power: set.total_voting_power,
            }),
    }
}

fn their_evidence(e: &types::Evidence) -> their_types::Evidence {
    use their_types::evidence::Sum as Theirs;
    use types::EvidenceSum as Ours;
    their_types::Evidence {
        sum: e.sum.as_ref().map(|sum| match sum {
            Ours::DuplicateVoteEvidence(d) => {
                Theirs::DuplicateVoteEvidence(their_types::DuplicateVoteEvidence {
                    vote_a: d.vote_a.as_ref().map(their_vote),
                    vote_b: d.vote_b.as_ref().map(their_vote),
                    total_voting_power: d.total_voting_power,
                    validator_power: d.validator_power,
                    timestamp: d.timestamp.as_ref().map(their_timestamp),
                })
            }
            Ours::LightClientAttackEvidence(l) => {
                Theirs::LightClientAttackEvidence(their_types::LightClientAttackEvidence {
                    conflicting_block: l.conflicting_block.as_ref().map(their_light_block),
                    common_height: l.common_height,
                    byzantine_validators: l
                        .byzantine_validators
                        .iter()
                        .map(their_validator)
                        .collect(),
                    total_voting_power: l.total_voting_power,
                    timestamp: l.timestamp.as_ref().map(their_timestamp),
                })
            }
        }),
    }
}

fn their_evidence_list(l: &types::EvidenceList) -> their_types::EvidenceList {
    their_types::EvidenceList {
        evidence: l.evidence.iter().map(their_evidence).collect(),
    }
}

fn their_block(b: &types::Block) -> their_types::Block {
    their_types::Block {
        header: b.header.as_ref().map(their_header),
        data: b.data.as_ref().map(|d| their_types::Data {
            txs: d.txs.iter().map(|tx| tx.to_vec()).collect(),
        }),
        evidence: b.evidence.as_ref().map(their_evidence_list),
        last_commit: b.last_commit.as_ref().map(their_commit),
    }
}

fn their_blocksync_message(m: &blocksync::Message) -> their_blocksync::Message {
    use blocksync::MessageSum as Ours;
    use their_blocksync::message::Sum as Theirs;
    their_blocksync::Message {
        sum: m.sum.as_ref().map(|sum| match sum {
            Ours::BlockRequest(r) => {
                Theirs::BlockRequest(their_blocksync::BlockRequest { height: r.height })
            }
            Ours::NoBlockResponse(r) => {
                Theirs::NoBlockResponse(their_blocksync::NoBlockResponse { height: r.height })
            }
            Ours::BlockResponse(r) => Theirs::BlockResponse(their_blocksync::BlockResponse {
                block: r.block.as_ref().map(their_block),
                ext_commit: r.ext_commit.as_ref().map(their_extended_commit),
            }),
            Ours::StatusRequest(_) => Theirs::StatusRequest(their_blocksync::StatusRequest {}),
            Ours::StatusResponse(r) => Theirs::StatusResponse(their_blocksync::StatusResponse {
                height: r.height,
                base: r.base,
            }),
        }),
    }
}

same_wire_property!(
    evidence_list_matches_tendermint_proto,
    types::EvidenceList,
    their_evidence_list
);
same_wire_property!(block_matches_tendermint_proto, types::Block, their_block);
same_wire_property!(
    light_block_matches_tendermint_proto,
    types::LightBlock,
    their_light_block
);
same_wire_property!(
    blocksync_message_matches_tendermint_proto,
    blocksync::Message,
    their_blocksync_message
);
