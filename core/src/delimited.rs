//! uvarint length-delimited framing, the way Go's `protoio` writes protobuf messages onto
//! a stream: an unsigned LEB128 length, then that many bytes. Used by the handshake
//! messages and MConnection packets.

/// Why a length prefix cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DelimitedError {
    /// The prefix runs past 10 bytes or overflows 64 bits.
    #[error("length prefix is not a valid uvarint")]
    BadPrefix,
    /// The announced length is above the reader's limit.
    #[error("message length {len} exceeds the limit of {max}")]
    TooLarge {
        /// The length the prefix announced.
        len: u64,
        /// The limit in force.
        max: usize,
    },
}

/// Looks at the start of `buf` for one delimited message of at most `max` bytes.
/// `Ok(None)`: more bytes are needed. `Ok(Some((prefix_len, body_len)))`: the message is
/// `buf[prefix_len..prefix_len + body_len]`, which may not have fully arrived yet; callers
/// check `buf.len()`. The limit is enforced as soon as the prefix is complete, before the
/// body arrives.
pub fn peek_prefix(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, DelimitedError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        // The 10th byte may only contribute the top bit of a u64.
        if i == 9 && byte > 1 {
            return Err(DelimitedError::BadPrefix);
        }
        // cannot panic: i < 10, so the shift is < 64 (and byte 10 only carries bit 63).
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return match usize::try_from(value) {
                // cannot panic: i < 10.
                Ok(len) if len <= max => Ok(Some((i + 1, len))),
                _ => Err(DelimitedError::TooLarge { len: value, max }),
            };
        }
    }
    if buf.len() >= 10 {
        Err(DelimitedError::BadPrefix)
    } else {
        Ok(None)
    }
}

/// Like [`peek_prefix`], but only succeeds once the whole message has arrived:
/// `Ok(Some((prefix_len, body_len)))` means `buf` holds all `prefix_len + body_len` bytes.
pub fn peek_complete(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, DelimitedError> {
    Ok(peek_prefix(buf, max)?.filter(|&(prefix, body)| {
        buf.len()
            .checked_sub(prefix)
            .is_some_and(|rest| rest >= body)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn prefixes() {
        assert_eq!(peek_prefix(&[], 10), Ok(None));
        assert_eq!(peek_prefix(&[0x80], 1000), Ok(None));
        assert_eq!(peek_prefix(&[0x22], 34), Ok(Some((1, 34))));
        assert_eq!(
            peek_prefix(&[0x22], 33),
            Err(DelimitedError::TooLarge { len: 34, max: 33 })
        );
        assert_eq!(peek_prefix(&[0x8c, 0x08], 1036), Ok(Some((2, 1036))));
        assert_eq!(
            peek_prefix(&[0xff; 10], usize::MAX),
            Err(DelimitedError::BadPrefix)
        );
        assert_eq!(peek_complete(&[0x02, 0x0a], 10), Ok(None));
        assert_eq!(peek_complete(&[0x02, 0x0a, 0x00], 10), Ok(Some((1, 2))));
    }

    quickcheck! {
        fn agrees_with_prost(len: u64) -> bool {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(len, &mut buf);
            let expect = usize::try_from(len).map(|l| (buf.len(), l)).ok();
            peek_prefix(&buf, usize::MAX).ok().flatten() == expect
        }
    }
}
