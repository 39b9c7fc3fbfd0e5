//! [`RawCodec`]: a channel whose reactor works on the bytes themselves.

use bytes::Bytes;

use super::{ChannelCodec, CodecError};

/// Bytes in, bytes out: no encoding, no decoding, no copy. For reactors that parse their
/// own payloads (or forward them untouched).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawCodec;

impl ChannelCodec for RawCodec {
    type Message = Bytes;

    fn encode(&self, message: &Bytes) -> Bytes {
        // A reference-count increment, not a copy.
        message.clone()
    }

    fn decode(&self, bytes: Bytes) -> Result<Bytes, CodecError> {
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn decode_shares_the_buffer_instead_of_copying() {
        let bytes = Bytes::from(vec![1, 2, 3]);
        let decoded = RawCodec.decode(bytes.clone()).unwrap();
        assert_eq!(decoded.as_ptr(), bytes.as_ptr());
        assert_eq!(RawCodec.encode(&decoded).as_ptr(), bytes.as_ptr());
    }

    quickcheck! {
        fn round_trip_is_identity(payload: Vec<u8>) -> bool {
            let message = Bytes::from(payload.clone());
            let wire = RawCodec.encode(&message);
            wire == payload && RawCodec.decode(wire).ok() == Some(message)
        }
    }
}
