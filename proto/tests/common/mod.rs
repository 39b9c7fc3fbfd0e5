//! What the cross-check tests share: generators biased towards the values where
//! encodings go wrong, the `Any` wrapper quickcheck needs, and the `same_wire` property
//! (same bytes both ways, each side decodes the other's to the equal value).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use quickcheck::{Arbitrary, Gen, TestResult};

/// Number of random cases per property (quickcheck's default is 100).
pub(crate) const CASES: u64 = 300;

// ---------------------------------------------------------------------------------------
// Generators, biased towards the values where encodings go wrong.
// ---------------------------------------------------------------------------------------

/// A value from `edges` half of the time, otherwise an arbitrary one.
pub(crate) fn edge_or_any<T: Arbitrary + Clone>(g: &mut Gen, edges: &[T]) -> T {
    if bool::arbitrary(g) {
        g.choose(edges).cloned().unwrap_or_else(|| T::arbitrary(g))
    } else {
        T::arbitrary(g)
    }
}

/// Repeats `seed` (or a fixed byte pattern when empty) until it is at least `len` long.
pub(crate) fn stretch(seed: Vec<u8>, len: usize) -> Vec<u8> {
    let seed = if seed.is_empty() {
        vec![0xa5, 0x00, 0xff]
    } else {
        seed
    };
    seed.iter().copied().cycle().take(len).collect()
}

/// Empty, short arbitrary, or large (past the 1024-byte packet payload and past the
/// 2-byte varint length boundary of 16384).
pub(crate) fn gen_bytes(g: &mut Gen) -> Vec<u8> {
    match u8::arbitrary(g) % 8 {
        0 => Vec::new(),
        1 => stretch(Vec::arbitrary(g), 1024),
        2 => stretch(Vec::arbitrary(g), 20_000),
        _ => Vec::arbitrary(g),
    }
}

/// Empty, arbitrary Unicode, or huge (multi-byte characters, beyond 16384 bytes).
pub(crate) fn gen_string(g: &mut Gen) -> String {
    match u8::arbitrary(g) % 8 {
        0 => String::new(),
        1 => {
            let seed = String::arbitrary(g);
            let seed = if seed.is_empty() {
                "ü€𝄞x".to_owned()
            } else {
                seed
            };
            seed.repeat(20_000 / seed.len() + 1)
        }
        _ => String::arbitrary(g),
    }
}

pub(crate) fn gen_u64(g: &mut Gen) -> u64 {
    edge_or_any(g, &[0, 1, 8, 11, 0x7f, 0x80, u64::from(u32::MAX), u64::MAX])
}

/// An arbitrary value of one of our wire types (quickcheck needs a local type to
/// implement `Arbitrary` on).
#[derive(Clone, Debug)]
pub(crate) struct Any<T>(pub(crate) T);

macro_rules! arbitrary_via {
    ($ty:ty, $gen:expr) => {
        impl Arbitrary for Any<$ty> {
            fn arbitrary(g: &mut Gen) -> Self {
                Any($gen(g))
            }
        }
    };
}

pub(crate) fn same_wire<O, T>(ours: &O, theirs: &T) -> TestResult
where
    O: prost::Message + Default + PartialEq,
    T: prost::Message + Default + PartialEq,
{
    let our_bytes = ours.encode_to_vec();
    let their_bytes = theirs.encode_to_vec();
    if our_bytes != their_bytes {
        return TestResult::error(format!(
            "encodings differ:\n ours   {}\n theirs {}",
            hex::encode(&our_bytes),
            hex::encode(&their_bytes)
        ));
    }
    if ours.encoded_len() != our_bytes.len() {
        return TestResult::error("our encoded_len disagrees with our encoding");
    }
    if ours.encode_length_delimited_to_vec() != theirs.encode_length_delimited_to_vec() {
        return TestResult::error("length-delimited encodings differ");
    }
    match O::decode(their_bytes.as_slice()) {
        Ok(decoded) if decoded == *ours => {}
        Ok(_) => return TestResult::error("ours decoded theirs to a different value"),
        Err(e) => return TestResult::error(format!("ours failed to decode theirs: {e}")),
    }
    match T::decode(our_bytes.as_slice()) {
        Ok(decoded) if decoded == *theirs => TestResult::passed(),
        Ok(_) => TestResult::error("theirs decoded ours to a different value"),
        Err(e) => TestResult::error(format!("theirs failed to decode ours: {e}")),
    }
}

/// One `#[test]` per type: `same_wire` for `CASES` arbitrary values of it.
macro_rules! same_wire_property {
    ($name:ident, $ty:ty, $theirs:expr) => {
        #[test]
        fn $name() {
            fn prop(value: Any<$ty>) -> TestResult {
                same_wire(&value.0, &$theirs(&value.0))
            }
            QuickCheck::new()
                .tests(CASES)
                .quickcheck(prop as fn(Any<$ty>) -> TestResult);
        }
    };
}
