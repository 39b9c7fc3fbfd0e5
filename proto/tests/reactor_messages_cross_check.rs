#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! CometBFT's mempool (0x30) and state-sync (0x60, 0x61) reactor messages against the
//! independent `tendermint-proto` 0.41 crate (`v0_38`): for arbitrary values (biased
//! towards edge values) our encoding equals theirs byte for byte, and each side decodes the
//! other's bytes to the equal value.

#[macro_use]
mod common;

use bytes::Bytes;
use common::{edge_or_any, gen_bytes, gen_u64, same_wire, Any, CASES};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tendermint_proto::v0_38::mempool as their_mempool;
use tendermint_proto::v0_38::statesync as their_statesync;
use tmp2p_proto::mempool;
use tmp2p_proto::statesync;

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
