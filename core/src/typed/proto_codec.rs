//! [`ProtoCodec`]: a channel that carries one plain prost message type.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use prost::Message;

use super::{ChannelCodec, CodecError};

/// Encodes and decodes a single prost message type `M` per channel. With `M` a oneof
/// wrapper, the reactor sends and receives the wrapper itself (the ADR's "wrapped into
/// itself" case).
///
/// `bytes` fields are `Bytes` in our generated types, and decoding reads straight from the
/// received `Bytes`, so payloads are shared with the received frame rather than copied.
pub struct ProtoCodec<M> {
    // `fn() -> M`: the codec holds no `M`, so it is `Send + Sync` whatever `M` is.
    message: PhantomData<fn() -> M>,
}

impl<M> ProtoCodec<M> {
    /// The codec for message type `M`.
    pub const fn new() -> Self {
        Self {
            message: PhantomData,
        }
    }
}

impl<M> Default for ProtoCodec<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> Clone for ProtoCodec<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for ProtoCodec<M> {}

impl<M> fmt::Debug for ProtoCodec<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProtoCodec<{}>", std::any::type_name::<M>())
    }
}

impl<M: Message + Default + 'static> ChannelCodec for ProtoCodec<M> {
    type Message = M;

    fn encode(&self, message: &M) -> Bytes {
        Bytes::from(message.encode_to_vec())
    }

    fn decode(&self, bytes: Bytes) -> Result<M, CodecError> {
        decode_message(bytes)
    }
}

/// Decodes one `M` from `bytes`, naming `M` in the error.
pub(super) fn decode_message<M: Message + Default>(bytes: Bytes) -> Result<M, CodecError> {
    M::decode(bytes)
        .map_err(|error| CodecError::Decode(format!("{}: {error}", std::any::type_name::<M>())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;
    use tmp2p_proto::echo::{EchoMessage, EchoMessageSum, Ping, Pong};
    use tmp2p_proto::p2p::ProtocolVersion;

    fn ping(payload: &[u8]) -> EchoMessage {
        EchoMessage {
            sum: Some(EchoMessageSum::Ping(Ping {
                payload: Bytes::copy_from_slice(payload),
            })),
        }
    }

    #[test]
    fn encodes_the_standard_protobuf_bytes() {
        // Ping { payload: "ab" } = field 1, length 2; EchoMessage.ping = field 1 around it.
        let wire = ProtoCodec::<Ping>::new().encode(&Ping {
            payload: Bytes::from_static(b"ab"),
        });
        assert_eq!(&wire[..], &[0x0a, 0x02, b'a', b'b']);
        let wire = ProtoCodec::<EchoMessage>::new().encode(&ping(b"ab"));
        assert_eq!(&wire[..], &[0x0a, 0x04, 0x0a, 0x02, b'a', b'b']);
    }

    #[test]
    fn the_wrapper_type_itself_round_trips() {
        let codec = ProtoCodec::<EchoMessage>::new();
        for message in [ping(b"x"), ping(b""), EchoMessage { sum: None }] {
            assert_eq!(codec.decode(codec.encode(&message)).unwrap(), message);
        }
    }

    #[test]
    fn decoded_payload_shares_the_received_buffer() {
        let wire = ProtoCodec::<Pong>::new().encode(&Pong {
            payload: Bytes::from(vec![9; 64]),
        });
        let pong = ProtoCodec::<Pong>::new().decode(wire.clone()).unwrap();
        // The payload starts after the 2-byte field header, inside the same allocation.
        assert_eq!(pong.payload.as_ptr(), wire[2..].as_ptr());
    }

    #[test]
    fn garbage_is_a_decode_error_naming_the_type() {
        let codec = ProtoCodec::<EchoMessage>::new();
        // Length 5 announced, 1 byte present.
        let err = codec
            .decode(Bytes::from_static(&[0x0a, 0x05, 0x00]))
            .unwrap_err();
        match err {
            CodecError::Decode(reason) => assert!(reason.contains("EchoMessage"), "{reason}"),
            other => panic!("expected Decode, got {other:?}"),
        }
    }

    #[test]
    fn another_message_type_with_a_clashing_field_is_a_decode_error() {
        // ProtocolVersion's field 1 is a varint; EchoMessage's field 1 is a message.
        let other = ProtocolVersion {
            p2p: 8,
            block: 11,
            app: 0,
        }
        .encode_to_vec();
        let err = ProtoCodec::<EchoMessage>::new()
            .decode(Bytes::from(other))
            .unwrap_err();
        assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
    }

    quickcheck! {
        fn ping_round_trips(payload: Vec<u8>) -> bool {
            let codec = ProtoCodec::<EchoMessage>::new();
            let message = ping(&payload);
            codec.decode(codec.encode(&message)).ok() == Some(message)
        }

        fn protocol_version_round_trips(p2p: u64, block: u64, app: u64) -> bool {
            let codec = ProtoCodec::<ProtocolVersion>::new();
            let message = ProtocolVersion { p2p, block, app };
            codec.decode(codec.encode(&message)).ok() == Some(message)
        }

        // Whatever arrives: no panic, and anything accepted re-encodes to an equal message.
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let codec = ProtoCodec::<EchoMessage>::new();
            match codec.decode(Bytes::from(bytes)) {
                Ok(message) => codec.decode(codec.encode(&message)).ok() == Some(message),
                Err(CodecError::Decode(_)) => true,
                Err(_) => false,
            }
        }
    }
}
