//! `tmp2p_core::cometbft_channels` against the independent encoding: the mempool channel's
//! receive limit is exactly the size tendermint-proto gives the largest message a CometBFT
//! node sends there (one transaction of `max_tx_bytes`), at every varint boundary.
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
