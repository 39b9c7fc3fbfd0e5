//! The persisted form of a peer ([`PeerRecord`]), its versioned byte encoding, the store
//! operations ([`StoreOp`]) a driver applies to its database, and the wall-clock
//! [`Timestamp`]s records carry (a [`ClockAnchor`] maps the caller's `Instant`s to them).
//!
//! # Record encoding, version 1
//!
//! All integers big-endian. A timestamp is u64 nanoseconds since the Unix epoch, 0 = never.
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version = `1` |
//! | 20 | node id (raw bytes) |
//! | 1 | flags: bit 0 = inactive; other bits must be 0 |
//! | 2 | mutable score (i16) |
//! | 8 | last connected |
//! | 8 | last disconnected |
//! | 2 | address count *n* |
//! | *n* × | address entries, below |
//!
//! Address entry: u16 length *L*, *L* bytes of the address string (`NodeAddress`'s
//! `Display`), 8 last dial success, 8 last dial failure, 4 dial failures (u32), 8 retry
//! jitter in nanoseconds. Nothing may follow the last entry.

use std::time::{Duration, Instant};

use crate::address::NodeAddress;
use crate::id::{NodeId, NODE_ID_BYTES};

/// The version byte of the encoding this code writes.
pub const RECORD_VERSION: u8 = 1;

/// Why stored bytes are not a peer record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before a field does.
    #[error("record truncated: {field} needs {needed} bytes, {remaining} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A version this code does not read.
    #[error("record version {found} is not supported (only {RECORD_VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// Flag bits this version does not define.
    #[error("record flags {0:#04x} set undefined bits (only bit 0 is defined)")]
    UnknownFlags(u8),
    /// An address string that does not parse.
    #[error("record address {0:?} does not parse")]
    BadAddress(String),
    /// An address belonging to a different node than the record.
    #[error("record of {record} holds an address of {address}")]
    ForeignAddress {
        /// The record's node.
        record: NodeId,
        /// The node the address names.
        address: NodeId,
    },
    /// Bytes after the last address entry.
    #[error("{0} unexpected bytes after the record")]
    TrailingBytes(usize),
    /// More addresses than the u16 count field can say.
    #[error("a record holds at most {max} addresses, this one {found}", max = u16::MAX)]
    TooManyAddresses {
        /// Addresses in the record.
        found: usize,
    },
    /// An address string longer than the u16 length field can say.
    #[error("an address string is at most {max} bytes, this one {found}", max = u16::MAX)]
    AddressTooLong {
        /// Its length.
        found: usize,
    },
}

/// A wall-clock time: nanoseconds since the Unix epoch (saturating; 0 is never used for a
/// real event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// This time plus `d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(nanos))
    }
}

/// Ties the caller's monotonic clock to wall-clock time, so records written in one run mean
/// something in the next: `instant` and `since_unix_epoch` name the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockAnchor {
    /// A moment on the caller's monotonic clock.
    pub instant: Instant,
    /// The same moment as time since the Unix epoch.
    pub since_unix_epoch: Duration,
}

impl ClockAnchor {
    /// The wall-clock time of `now`.
    pub fn timestamp(&self, now: Instant) -> Timestamp {
        let base = Timestamp(0).saturating_add(self.since_unix_epoch);
        if now >= self.instant {
            base.saturating_add(now.duration_since(self.instant))
        } else {
            let back =
                u64::try_from(self.instant.duration_since(now).as_nanos()).unwrap_or(u64::MAX);
            Timestamp(base.0.saturating_sub(back))
        }
    }

    /// The `Instant` of a wall-clock time, if the platform's `Instant` can represent it.
    pub fn instant(&self, at: Timestamp) -> Option<Instant> {
        let base = u64::try_from(self.since_unix_epoch.as_nanos()).unwrap_or(u64::MAX);
        // cannot panic: each subtraction is guarded by the comparison.
        if at.0 >= base {
            self.instant.checked_add(Duration::from_nanos(at.0 - base))
        } else {
            self.instant.checked_sub(Duration::from_nanos(base - at.0))
        }
    }
}

/// What is stored about one address of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRecord {
    /// The address.
    pub address: NodeAddress,
    /// When a dial of it last succeeded.
    pub last_dial_success: Option<Timestamp>,
    /// When a dial of it last failed.
    pub last_dial_failure: Option<Timestamp>,
    /// Consecutive failed dials since the last success.
    pub dial_failures: u32,
    /// Jitter drawn at the last failure, part of its retry delay.
    pub retry_jitter: Duration,
}

/// What is stored about one peer: every field that survives a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer.
    pub node_id: NodeId,
    /// Its known addresses, in address-string order.
    pub addresses: Vec<AddressRecord>,
    /// When it last connected.
    pub last_connected: Option<Timestamp>,
    /// When it last disconnected.
    pub last_disconnected: Option<Timestamp>,
    /// A handshake showed it incompatible: no new addresses are taken for it.
    pub inactive: bool,
    /// The score moved by good/bad reports and errors.
    pub mutable_score: i16,
}

/// A change the driver must apply to its peer database, pulled with
/// [`super::PeerManager::poll_store_op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Insert or replace the record of `record.node_id` (store [`PeerRecord::encode`]).
    Upsert(PeerRecord),
    /// Delete the record of this peer.
    Delete(NodeId),
}

fn time_bytes(t: Option<Timestamp>) -> [u8; 8] {
    t.map_or(0, |t| t.0).to_be_bytes()
}

fn jitter_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl PeerRecord {
    /// The version-1 encoding (see the module docs).
    ///
    /// # Errors
    /// [`RecordError::TooManyAddresses`] / [`RecordError::AddressTooLong`] when a count or
    /// length does not fit its u16 field.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let count =
            u16::try_from(self.addresses.len()).map_err(|_| RecordError::TooManyAddresses {
                found: self.addresses.len(),
            })?;
        // cannot panic: the count fits a u16 (checked above).
        let mut out = Vec::with_capacity(42 + self.addresses.len() * 80);
        out.push(RECORD_VERSION);
        out.extend_from_slice(self.node_id.as_bytes());
        out.push(u8::from(self.inactive));
        out.extend_from_slice(&self.mutable_score.to_be_bytes());
        out.extend_from_slice(&time_bytes(self.last_connected));
        out.extend_from_slice(&time_bytes(self.last_disconnected));
        out.extend_from_slice(&count.to_be_bytes());
        for a in &self.addresses {
            let text = a.address.to_string();
            let len = u16::try_from(text.len())
                .map_err(|_| RecordError::AddressTooLong { found: text.len() })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(&time_bytes(a.last_dial_success));
            out.extend_from_slice(&time_bytes(a.last_dial_failure));
            out.extend_from_slice(&a.dial_failures.to_be_bytes());
            out.extend_from_slice(&jitter_nanos(a.retry_jitter).to_be_bytes());
        }
        Ok(out)
    }

    /// Reads a record written by [`PeerRecord::encode`].
    ///
    /// # Errors
    /// A [`RecordError`] naming the first thing wrong.
    pub fn decode(bytes: &[u8]) -> Result<PeerRecord, RecordError> {
        let mut r = Reader { rest: bytes };
        let [version] = r.array::<1>("version")?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion { found: version });
        }
        let node_id = NodeId::from_bytes(r.array::<NODE_ID_BYTES>("node id")?);
        let [flags] = r.array::<1>("flags")?;
        if flags & !1 != 0 {
            return Err(RecordError::UnknownFlags(flags));
        }
        let mutable_score = i16::from_be_bytes(r.array("mutable score")?);
        let last_connected = r.time("last connected")?;
        let last_disconnected = r.time("last disconnected")?;
        let count = u16::from_be_bytes(r.array("address count")?);
        let mut addresses = Vec::with_capacity(usize::from(count).min(64));
        for _ in 0..count {
            let len = u16::from_be_bytes(r.array("address length")?);
            let raw = r.take("address", usize::from(len))?;
            let text = String::from_utf8_lossy(raw);
            let address =
                NodeAddress::parse(&text).map_err(|_| RecordError::BadAddress(text.to_string()))?;
            if address.node_id != node_id {
                return Err(RecordError::ForeignAddress {
                    record: node_id,
                    address: address.node_id,
                });
            }
            addresses.push(AddressRecord {
                address,
                last_dial_success: r.time("last dial success")?,
                last_dial_failure: r.time("last dial failure")?,
                dial_failures: u32::from_be_bytes(r.array("dial failures")?),
                retry_jitter: Duration::from_nanos(u64::from_be_bytes(r.array("retry jitter")?)),
            });
        }
        if !r.rest.is_empty() {
            return Err(RecordError::TrailingBytes(r.rest.len()));
        }
        Ok(PeerRecord {
            node_id,
            addresses,
            last_connected,
            last_disconnected,
            inactive: flags & 1 == 1,
            mutable_score,
        })
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], RecordError> {
        if self.rest.len() < n {
            return Err(RecordError::Truncated {
                field,
                needed: n,
                remaining: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], RecordError> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn time(&mut self, field: &'static str) -> Result<Option<Timestamp>, RecordError> {
        let v = u64::from_be_bytes(self.array(field)?);
        Ok((v != 0).then_some(Timestamp(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PeerRecord {
        let id = NodeId::from_bytes([7; 20]);
        let addr = |h: &str| NodeAddress::parse(&format!("{id}@{h}:26656")).unwrap();
        PeerRecord {
            node_id: id,
            addresses: vec![
                AddressRecord {
                    address: addr("10.0.0.1"),
                    last_dial_success: Some(Timestamp(5)),
                    last_dial_failure: None,
                    dial_failures: 0,
                    retry_jitter: Duration::ZERO,
                },
                AddressRecord {
                    address: addr("example.com"),
                    last_dial_success: None,
                    last_dial_failure: Some(Timestamp(1_700_000_000_000_000_000)),
                    dial_failures: 3,
                    retry_jitter: Duration::from_millis(1234),
                },
            ],
            last_connected: Some(Timestamp(9)),
            last_disconnected: None,
            inactive: true,
            mutable_score: -17,
        }
    }

    #[test]
    fn encode_decode_round_trips() {
        let rec = sample();
        let bytes = rec.encode().unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(PeerRecord::decode(&bytes).unwrap(), rec);
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    PeerRecord::decode(&bytes[..cut]),
                    Err(RecordError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn decode_refuses_bad_version_flags_trailing_and_foreign() {
        let mut bytes = sample().encode().unwrap();
        bytes.push(0);
        assert_eq!(
            PeerRecord::decode(&bytes),
            Err(RecordError::TrailingBytes(1))
        );
        bytes.pop();
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            PeerRecord::decode(&v2),
            Err(RecordError::UnsupportedVersion { found: 2 })
        );
        let mut flags = bytes.clone();
        flags[21] = 0x82;
        assert_eq!(
            PeerRecord::decode(&flags),
            Err(RecordError::UnknownFlags(0x82))
        );
        let mut foreign = bytes;
        foreign[1] = 8;
        assert!(matches!(
            PeerRecord::decode(&foreign),
            Err(RecordError::ForeignAddress { .. })
        ));
    }

    #[test]
    fn clock_anchor_maps_both_ways() {
        let t0 = crate::test_clock::epoch();
        let anchor = ClockAnchor {
            instant: t0,
            since_unix_epoch: Duration::from_secs(1_700_000_000),
        };
        let later = t0 + Duration::from_millis(1500);
        let ts = anchor.timestamp(later);
        assert_eq!(ts.0, 1_700_000_001_500_000_000);
        assert_eq!(anchor.instant(ts), Some(later));
    }
}
