//! Self-checking workload messages and the ledger that checks deliveries against them.
//!
//! A stamped message carries its sender's index, a per-sender sequence number, the channel
//! it was sent on, a body derived from those, and an FNV-1a checksum of everything before
//! it. The [`Ledger`] verifies every delivery: right channel, right sender, intact bytes,
//! and never the same (sender, sequence) twice at one receiver.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use tmp2p_core::NodeId;

use super::trace::fnv1a_of;

/// Header: sender u32, seq u64, channel u8, body length u32.
const HEADER: usize = 4 + 8 + 1 + 4;
/// Trailing checksum.
const CHECKSUM: usize = 8;

/// What a stamped message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Index of the sending node.
    pub sender: u32,
    /// The sender's sequence number.
    pub seq: u64,
    /// The channel it was sent on.
    pub channel: u8,
}

/// Why a delivery broke an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// Shorter than header plus checksum, or the length field disagrees with the size.
    #[error(
        "message of {len} bytes is truncated or mis-sized (header {HEADER} + checksum {CHECKSUM})"
    )]
    Malformed {
        /// Its length.
        len: usize,
    },
    /// The checksum or body does not match.
    #[error("message {stamp:?} is corrupted")]
    Corrupted {
        /// What it claims to be.
        stamp: Stamp,
    },
    /// Delivered on a channel other than the one it was sent on.
    #[error("message {stamp:?} delivered on channel {got:#04x}")]
    WrongChannel {
        /// What it claims to be.
        stamp: Stamp,
        /// Where it arrived.
        got: u8,
    },
    /// Delivered as coming from a node other than its sender.
    #[error("message {stamp:?} delivered as from {from}")]
    WrongSender {
        /// What it claims to be.
        stamp: Stamp,
        /// Who the router said sent it.
        from: NodeId,
    },
    /// Delivered twice to the same node.
    #[error("message {stamp:?} delivered twice to node {receiver}")]
    Duplicate {
        /// What it claims to be.
        stamp: Stamp,
        /// The receiving node.
        receiver: usize,
    },
}

fn body_byte(stamp: Stamp, k: usize) -> u8 {
    (u64::from(stamp.sender)
        .wrapping_mul(31)
        .wrapping_add(stamp.seq.wrapping_mul(7))
        .wrapping_add(k as u64)
        & 0xff) as u8
}

/// A message of `body_len` body bytes carrying `stamp`.
pub fn stamped(stamp: Stamp, body_len: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + body_len + CHECKSUM);
    out.put_u32(stamp.sender);
    out.put_u64(stamp.seq);
    out.put_u8(stamp.channel);
    out.put_u32(u32::try_from(body_len).unwrap_or(u32::MAX));
    for k in 0..body_len {
        out.put_u8(body_byte(stamp, k));
    }
    let sum = fnv1a_of(&out);
    out.put_u64(sum);
    out.freeze()
}

fn be<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at + N)?.try_into().ok()
}

/// Parses and verifies a stamped message.
///
/// # Errors
/// [`StampError::Malformed`] or [`StampError::Corrupted`].
pub fn verify(bytes: &[u8]) -> Result<Stamp, StampError> {
    let malformed = StampError::Malformed { len: bytes.len() };
    let (Some(sender), Some(seq), Some(&channel), Some(len)) = (
        be::<4>(bytes, 0),
        be::<8>(bytes, 4),
        bytes.get(12),
        be::<4>(bytes, 13),
    ) else {
        return Err(malformed);
    };
    let stamp = Stamp {
        sender: u32::from_be_bytes(sender),
        seq: u64::from_be_bytes(seq),
        channel,
    };
    let body_len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| malformed.clone())?;
    if bytes.len() != HEADER + body_len + CHECKSUM {
        return Err(malformed);
    }
    let signed = bytes.get(..HEADER + body_len).ok_or(malformed.clone())?;
    let sum = be::<8>(bytes, HEADER + body_len).ok_or(malformed)?;
    let body_ok = signed.get(HEADER..).is_some_and(|body| {
        body.iter()
            .enumerate()
            .all(|(k, &b)| b == body_byte(stamp, k))
    });
    if u64::from_be_bytes(sum) != fnv1a_of(signed) || !body_ok {
        return Err(StampError::Corrupted { stamp });
    }
    Ok(stamp)
}

/// Every stamped delivery seen so far, per receiver.
#[derive(Debug, Default)]
pub struct Ledger {
    seen: BTreeSet<(usize, Stamp)>,
}

impl Ledger {
    /// Checks one delivery to node `receiver` on `channel` from `from`, where `sender_id`
    /// maps a sender index to its node id.
    ///
    /// # Errors
    /// The broken invariant.
    pub fn check(
        &mut self,
        receiver: usize,
        channel: u8,
        from: NodeId,
        message: &[u8],
        sender_id: impl Fn(u32) -> Option<NodeId>,
    ) -> Result<Stamp, StampError> {
        let stamp = verify(message)?;
        if stamp.channel != channel {
            return Err(StampError::WrongChannel {
                stamp,
                got: channel,
            });
        }
        if sender_id(stamp.sender) != Some(from) {
            return Err(StampError::WrongSender { stamp, from });
        }
        if !self.seen.insert((receiver, stamp)) {
            return Err(StampError::Duplicate { stamp, receiver });
        }
        Ok(stamp)
    }

    /// Distinct deliveries seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing was delivered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_public_key(&[n; 32])
    }

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let stamp = Stamp {
            sender: 3,
            seq: 9,
            channel: 0x20,
        };
        let msg = stamped(stamp, 40);
        assert_eq!(verify(&msg), Ok(stamp));
        for i in 0..msg.len() {
            let mut bad = msg.to_vec();
            bad[i] ^= 0x01;
            assert!(verify(&bad).is_err(), "flip at {i} not caught");
        }
        assert!(verify(&msg[..msg.len() - 1]).is_err());
        assert!(verify(&[]).is_err());
    }

    #[test]
    fn ledger_catches_channel_sender_and_duplicates() {
        let stamp = Stamp {
            sender: 1,
            seq: 0,
            channel: 0x20,
        };
        let msg = stamped(stamp, 10);
        let ids = |s: u32| Some(id(s as u8));
        let mut ledger = Ledger::default();
        assert!(matches!(
            ledger.check(0, 0x21, id(1), &msg, ids),
            Err(StampError::WrongChannel { .. })
        ));
        assert!(matches!(
            ledger.check(0, 0x20, id(2), &msg, ids),
            Err(StampError::WrongSender { .. })
        ));
        assert_eq!(ledger.check(0, 0x20, id(1), &msg, ids), Ok(stamp));
        assert_eq!(ledger.check(5, 0x20, id(1), &msg, ids), Ok(stamp));
        assert!(matches!(
            ledger.check(0, 0x20, id(1), &msg, ids),
            Err(StampError::Duplicate { .. })
        ));
    }
}
