//! The run's event trace, folded into a 64-bit FNV-1a hash as it happens: two runs are the
//! same, byte for byte, exactly when their traces hash the same (every segment's bytes,
//! every delivery, every peer update and network event goes in, with its virtual time).

/// FNV-1a 64 offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`, continuing from `state`.
pub fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// FNV-1a 64 of `bytes` from the offset basis.
pub fn fnv1a_of(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

/// The running trace hash and record count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    hash: u64,
    records: u64,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            hash: FNV_OFFSET,
            records: 0,
        }
    }
}

impl Trace {
    /// Adds one record: a tag, the virtual time in nanoseconds, and fields.
    pub fn record(&mut self, tag: &str, at_nanos: u64, fields: &[u64], bytes: &[u8]) {
        self.records += 1;
        let mut h = fnv1a(self.hash, tag.as_bytes());
        h = fnv1a(h, &at_nanos.to_be_bytes());
        for f in fields {
            h = fnv1a(h, &f.to_be_bytes());
        }
        h = fnv1a(h, &(bytes.len() as u64).to_be_bytes());
        self.hash = fnv1a(h, bytes);
    }

    /// The hash so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Records so far.
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_field_changes_the_hash() {
        let mut a = Trace::default();
        a.record("x", 1, &[2], b"abc");
        let mut b = Trace::default();
        b.record("x", 1, &[2], b"abd");
        let mut c = Trace::default();
        c.record("x", 2, &[2], b"abc");
        assert_ne!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        let mut d = Trace::default();
        d.record("x", 1, &[2], b"abc");
        assert_eq!(a, d);
    }
}
