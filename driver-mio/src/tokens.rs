//! The slice of a caller's mio token space the driver uses: one token for the listener,
//! one reserved for the driver's waker, and one per connection after them.

use mio::Token;

use crate::error::DriverError;

/// Fixed tokens at the start of the range (listener, waker).
const FIXED: usize = 2;

/// A range of mio tokens `start .. start + len` handed to the driver. The driver
/// registers nothing outside it, so the caller can use every other token freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRange {
    start: usize,
    len: usize,
}

impl TokenRange {
    /// The tokens `start .. start + len`. The range holds `len - 2` connections at once.
    ///
    /// # Errors
    /// [`DriverError::TokenRange`] when `len < 3` or the range overflows `usize`.
    pub fn new(start: usize, len: usize) -> Result<Self, DriverError> {
        let min = FIXED + 1;
        if len < min || start.checked_add(len).is_none() {
            return Err(DriverError::TokenRange { start, len, min });
        }
        Ok(TokenRange { start, len })
    }

    /// The listening socket's token (the first of the range).
    pub fn listener(&self) -> Token {
        Token(self.start)
    }

    /// The token reserved for the driver's own [`mio::Waker`] (the second of the range).
    pub fn waker(&self) -> Token {
        Token(self.start + 1)
    }

    /// Whether `token` belongs to the driver.
    pub fn contains(&self, token: Token) -> bool {
        token.0 >= self.start && token.0 - self.start < self.len
    }

    /// How many connections the range can hold at once.
    pub fn connection_capacity(&self) -> usize {
        self.len - FIXED
    }

    /// The token of connection slot `slot`, if the range has room for it.
    pub(crate) fn connection(&self, slot: usize) -> Option<Token> {
        (slot < self.connection_capacity()).then(|| Token(self.start + FIXED + slot))
    }

    /// The connection slot of `token`, if it is a connection token of this range.
    pub(crate) fn slot(&self, token: Token) -> Option<usize> {
        if !self.contains(token) {
            return None;
        }
        (token.0 - self.start).checked_sub(FIXED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_maps_slots_to_tokens_and_back_within_bounds() {
        let range = TokenRange::new(100, 5).unwrap();
        assert_eq!(range.listener(), Token(100));
        assert_eq!(range.waker(), Token(101));
        assert_eq!(range.connection_capacity(), 3);
        assert_eq!(range.connection(0), Some(Token(102)));
        assert_eq!(range.connection(2), Some(Token(104)));
        assert_eq!(range.connection(3), None);
        assert_eq!(range.slot(Token(104)), Some(2));
        assert_eq!(range.slot(Token(101)), None);
        assert_eq!(range.slot(Token(105)), None);
        assert_eq!(range.slot(Token(99)), None);
        assert!(!range.contains(Token(105)));
    }

    #[test]
    fn too_small_or_overflowing_ranges_are_refused() {
        assert!(TokenRange::new(0, 2).is_err());
        assert!(TokenRange::new(usize::MAX - 1, 10).is_err());
    }
}
