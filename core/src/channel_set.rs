//! [`ChannelSet`]: a set of channel ids, one bit per `u8`, for the per-connection checks
//! that run on every message (no allocation, no lookup).

/// A set of channel ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChannelSet([u64; 4]);

impl ChannelSet {
    /// The set of `ids`.
    pub(crate) fn from_ids(ids: &[u8]) -> Self {
        let mut set = ChannelSet::default();
        for &id in ids {
            set.insert(id);
        }
        set
    }

    /// Adds `id`.
    pub(crate) fn insert(&mut self, id: u8) {
        if let Some(word) = self.0.get_mut(usize::from(id / 64)) {
            *word |= 1 << (id % 64);
        }
    }

    /// Whether `id` is in the set.
    pub(crate) fn contains(&self, id: u8) -> bool {
        self.0
            .get(usize::from(id / 64))
            .is_some_and(|word| word & (1 << (id % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelSet;

    #[test]
    fn holds_exactly_the_ids_put_in() {
        let set = ChannelSet::from_ids(&[0, 63, 64, 200, 255]);
        for id in 0..=255u8 {
            assert_eq!(
                set.contains(id),
                matches!(id, 0 | 63 | 64 | 200 | 255),
                "{id}"
            );
        }
    }
}
