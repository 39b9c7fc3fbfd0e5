//! CometBFT's reactor channels as its nodes register them (ids, priorities, send queues,
//! receive limits), per version, so an application opens them exactly as a CometBFT node
//! does: [`channels`] lists them, [`descriptor`] gives one.
//!
//! The values are those of the Go reactors' `ChannelDescriptor`s, with the fields they
//! leave unset filled as Go's `FillDefaults` fills them (a send queue of 1). Tendermint
//! v0.34.24 and CometBFT v0.38.25 register the same values; only 0x40's reactor is named
//! differently ("fastsync" in v0.34, "blocksync" in v0.38). Go's receive-buffer capacity
//! has no counterpart here (a connection holds received messages within
//! `NodeConfig::inbound_hold_bytes`).
//!
//! | channel | id | priority | send queue | largest message (bytes) |
//! |---|---|---|---|---|
//! | PEX | 0x00 | 1 | 10 | 64 000 (256-byte addresses × 250) |
//! | consensus state | 0x20 | 6 | 100 | 1 048 576 |
//! | consensus data | 0x21 | 10 | 100 | 1 048 576 |
//! | consensus vote | 0x22 | 7 | 100 | 1 048 576 |
//! | consensus vote-set bits | 0x23 | 1 | 2 | 1 048 576 |
//! | mempool | 0x30 | 5 | 1 | [`mempool_recv_capacity`] of `max_tx_bytes` (1 048 584 by default) |
//! | evidence | 0x38 | 6 | 1 | 1 048 576 |
//! | blocksync / fastsync | 0x40 | 5 | 1 000 | 104 857 605 (a 100 MiB block + 5) |
//! | statesync snapshot | 0x60 | 5 | 10 | 4 000 000 |
//! | statesync chunk | 0x61 | 3 | 10 | 16 000 000 |

use crate::mconn::ChannelDescriptor;

/// The CometBFT release line whose channels to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CometVersion {
    /// Tendermint v0.34.
    V0_34,
    /// CometBFT v0.38.
    V0_38,
}

/// PEX.
pub const PEX: u8 = 0x00;
/// Consensus: round state (NewRoundStep, NewValidBlock, HasVote, VoteSetMaj23).
pub const CONSENSUS_STATE: u8 = 0x20;
/// Consensus: proposals and block parts.
pub const CONSENSUS_DATA: u8 = 0x21;
/// Consensus: votes.
pub const CONSENSUS_VOTE: u8 = 0x22;
/// Consensus: vote-set bit arrays.
pub const CONSENSUS_VOTE_SET_BITS: u8 = 0x23;
/// Mempool: transactions.
pub const MEMPOOL: u8 = 0x30;
/// Evidence.
pub const EVIDENCE: u8 = 0x38;
/// Block sync (v0.34's fast sync).
pub const BLOCKSYNC: u8 = 0x40;
/// State sync: snapshots.
pub const STATESYNC_SNAPSHOT: u8 = 0x60;
/// State sync: chunks.
pub const STATESYNC_CHUNK: u8 = 0x61;

/// CometBFT's default `mempool.max_tx_bytes` (1 MiB).
pub const DEFAULT_MAX_TX_BYTES: usize = 1 << 20;

/// One reactor channel: its name in CometBFT and its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CometChannel {
    /// The reactor and channel, e.g. `"consensus vote"`.
    pub name: &'static str,
    /// How to open it.
    pub descriptor: ChannelDescriptor,
}

/// Largest mempool message a CometBFT node accepts when its `max_tx_bytes` is
/// `max_tx_bytes`: the encoded `mempool.Message{Txs{txs: [one max-size tx]}}`, i.e. the
/// tx, its length prefix and field tag inside `Txs`, then `Txs`'s own prefix and tag.
pub fn mempool_recv_capacity(max_tx_bytes: usize) -> usize {
    let txs = 1usize
        .saturating_add(varint_len(max_tx_bytes))
        .saturating_add(max_tx_bytes);
    1usize.saturating_add(varint_len(txs)).saturating_add(txs)
}

/// Bytes of `value` as a protobuf varint.
fn varint_len(value: usize) -> usize {
    let bits = usize::BITS - (value | 1).leading_zeros();
    usize::try_from(bits.div_ceil(7)).unwrap_or(10)
}

const fn channel(
    name: &'static str,
    id: u8,
    priority: u32,
    send_queue_capacity: usize,
    recv_message_capacity: usize,
) -> CometChannel {
    CometChannel {
        name,
        descriptor: ChannelDescriptor {
            id,
            priority,
            send_queue_capacity,
            recv_message_capacity,
        },
    }
}

/// Every channel a `version` node registers with its default configuration, ids
/// ascending (the mempool's limit for `max_tx_bytes` = [`DEFAULT_MAX_TX_BYTES`]).
pub fn channels(version: CometVersion) -> Vec<CometChannel> {
    const CONSENSUS_MAX: usize = 1_048_576;
    let block_sync = match version {
        CometVersion::V0_34 => "fastsync",
        CometVersion::V0_38 => "blocksync",
    };
    vec![
        channel("pex", PEX, 1, 10, 64_000),
        channel("consensus state", CONSENSUS_STATE, 6, 100, CONSENSUS_MAX),
        channel("consensus data", CONSENSUS_DATA, 10, 100, CONSENSUS_MAX),
        channel("consensus vote", CONSENSUS_VOTE, 7, 100, CONSENSUS_MAX),
        channel(
            "consensus vote-set bits",
            CONSENSUS_VOTE_SET_BITS,
            1,
            2,
            CONSENSUS_MAX,
        ),
        channel(
            "mempool",
            MEMPOOL,
            5,
            1,
            mempool_recv_capacity(DEFAULT_MAX_TX_BYTES),
        ),
        channel("evidence", EVIDENCE, 6, 1, 1_048_576),
        channel(block_sync, BLOCKSYNC, 5, 1000, 104_857_605),
        channel("statesync snapshot", STATESYNC_SNAPSHOT, 5, 10, 4_000_000),
        channel("statesync chunk", STATESYNC_CHUNK, 3, 10, 16_000_000),
    ]
}

/// The descriptor of channel `id` in `version`, if such a node registers it.
pub fn descriptor(version: CometVersion, id: u8) -> Option<ChannelDescriptor> {
    channels(version)
        .into_iter()
        .find(|c| c.descriptor.id == id)
        .map(|c| c.descriptor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_valid_unique_and_ascending() {
        for version in [CometVersion::V0_34, CometVersion::V0_38] {
            let list = channels(version);
            let ids: Vec<u8> = list.iter().map(|c| c.descriptor.id).collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
            let descriptors: Vec<ChannelDescriptor> =
                list.iter().map(|c| c.descriptor.clone()).collect();
            // An MConnection over all of them accepts them (priorities, queues, ids).
            let config = crate::mconn::MConnConfig::default();
            crate::mconn::MConnection::new(config, descriptors, crate::test_clock::epoch())
                .unwrap();
            assert_eq!(ids.len(), 10);
        }
        assert_eq!(
            descriptor(CometVersion::V0_38, CONSENSUS_DATA).map(|d| d.priority),
            Some(10)
        );
        assert_eq!(descriptor(CometVersion::V0_38, 0x99), None);
        assert_eq!(channels(CometVersion::V0_34)[7].name, "fastsync");
    }

    #[test]
    fn the_mempool_limit_is_the_encoded_size_of_one_max_size_tx() {
        // CometBFT's default, worked out from its generated Size() code.
        assert_eq!(mempool_recv_capacity(DEFAULT_MAX_TX_BYTES), 1_048_584);
        assert_eq!(mempool_recv_capacity(100), 104);
        assert_eq!(mempool_recv_capacity(0), 4);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
    }
}
