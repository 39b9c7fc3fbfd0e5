#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `BytesValue` (the ephemeral-key message) against a hand-computed encoding for
//! arbitrary lengths: tendermint-proto has no such type to cross-check it with. The
//! 35-byte handshake vectors of both nodes are in `session_vectors.rs`.

use bytes::Bytes;
use prost::Message as _;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tmp2p_proto::BytesValue;

/// Number of random cases per property.
const CASES: u64 = 300;

/// An arbitrary value of one of our types (quickcheck needs a local type).
#[derive(Clone, Debug)]
struct Any<T>(T);

/// Empty, short, 32 bytes (a key), or lengths either side of the 1- / 2- / 3-byte
/// varint boundaries of the field length.
impl Arbitrary for Any<BytesValue> {
    fn arbitrary(g: &mut Gen) -> Self {
        let seed = Vec::<u8>::arbitrary(g);
        let seed = if seed.is_empty() { vec![0x5a] } else { seed };
        let len = match u8::arbitrary(g) % 6 {
            0 => 0,
            1 => 32,
            2 => 0x7f + usize::from(u8::arbitrary(g) % 2),
            3 => 16_383 + usize::from(u8::arbitrary(g) % 2),
            4 => 20_000,
            _ => seed.len(),
        };
        let value: Vec<u8> = seed.iter().copied().cycle().take(len).collect();
        Any(BytesValue {
            value: Bytes::from(value),
        })
    }
}

/// Unsigned LEB128, as Go's `binary.PutUvarint`.
fn uvarint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

#[test]
fn uvarint_helper_matches_known_encodings() {
    assert_eq!(uvarint(0), [0x00]);
    assert_eq!(uvarint(0x22), [0x22]);
    assert_eq!(uvarint(0x7f), [0x7f]);
    assert_eq!(uvarint(0x80), [0x80, 0x01]);
    assert_eq!(uvarint(1034), [0x8a, 0x08]);
    assert_eq!(uvarint(16_384), [0x80, 0x80, 0x01]);
}

#[test]
fn bytes_value_matches_hand_computed_encoding() {
    fn prop(value: Any<BytesValue>) -> TestResult {
        let value = value.0;
        let len = value.value.len() as u64;
        // proto3: an empty `value` is omitted entirely.
        let mut expected = Vec::new();
        if len > 0 {
            expected.push(0x0a); // field 1, wire type 2
            expected.extend(uvarint(len));
            expected.extend_from_slice(&value.value);
        }
        let mut expected_delimited = uvarint(expected.len() as u64);
        expected_delimited.extend_from_slice(&expected);

        let encoded = value.encode_to_vec();
        if encoded != expected {
            return TestResult::error(format!(
                "len {len}: got {}, expected {}",
                hex::encode(&encoded),
                hex::encode(&expected)
            ));
        }
        if value.encode_length_delimited_to_vec() != expected_delimited {
            return TestResult::error("length-delimited encoding differs");
        }
        match BytesValue::decode(expected.as_slice()) {
            Ok(decoded) => TestResult::from_bool(decoded == value),
            Err(e) => TestResult::error(format!("failed to decode: {e}")),
        }
    }
    QuickCheck::new()
        .tests(CASES)
        .quickcheck(prop as fn(Any<BytesValue>) -> TestResult);
}

#[test]
fn bytes_value_of_an_ephemeral_key_is_35_bytes_delimited() {
    let key: Vec<u8> = (0u8..32).collect();
    let msg = BytesValue {
        value: Bytes::from(key.clone()),
    };
    let mut expected = vec![0x22, 0x0a, 0x20];
    expected.extend_from_slice(&key);
    assert_eq!(msg.encode_length_delimited_to_vec(), expected);
    assert_eq!(
        BytesValue::decode_length_delimited(expected.as_slice()).unwrap(),
        msg
    );
}
