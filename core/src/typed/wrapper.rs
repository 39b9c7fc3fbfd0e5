//! [`WrapperCodec`]: the ADR 062 `Wrapper` idea in Rust form. A channel's wire type is a
//! prost message whose content is one `oneof`; the reactor works with its own enum of the
//! inner messages and never sees the wrapper.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use prost::Message;

use super::proto_codec::decode_message;
use super::{ChannelCodec, CodecError};

/// Sends and receives inner messages `I` on a channel whose wire type is the wrapper `W`.
///
/// - Outbound: `W::from(inner.clone())`, then protobuf-encode `W` (wrapping cannot fail).
///   The clone is of the inner message; with `Bytes` payloads it shares their buffers.
/// - Inbound: protobuf-decode `W`, then `I::try_from(wrapper)`. A wrapper whose `oneof` is
///   unset should convert to [`CodecError::EmptyWrapper`]; one holding a message `I` does
///   not accept to [`CodecError::Unwrap`]. The conversion's error type only has to convert
///   into [`CodecError`], so a reactor may use its own.
///
/// See [`super::echo`] and [`super::pex`] for the `From` / `TryFrom` pair to write.
pub struct WrapperCodec<W, I> {
    // Holds neither type, so the codec is `Send + Sync` whatever they are.
    types: PhantomData<fn() -> (W, I)>,
}

impl<W, I> WrapperCodec<W, I> {
    /// The codec for inner messages `I` carried in wrapper `W`.
    pub const fn new() -> Self {
        Self { types: PhantomData }
    }
}

impl<W, I> Default for WrapperCodec<W, I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W, I> Clone for WrapperCodec<W, I> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W, I> Copy for WrapperCodec<W, I> {}

impl<W, I> fmt::Debug for WrapperCodec<W, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WrapperCodec<{}, {}>",
            std::any::type_name::<W>(),
            std::any::type_name::<I>()
        )
    }
}

impl<W, I> ChannelCodec for WrapperCodec<W, I>
where
    W: Message + Default + From<I> + 'static,
    I: TryFrom<W> + Clone + Send + 'static,
    <I as TryFrom<W>>::Error: Into<CodecError>,
{
    type Message = I;

    fn encode(&self, message: &I) -> Bytes {
        Bytes::from(W::from(message.clone()).encode_to_vec())
    }

    fn decode(&self, bytes: Bytes) -> Result<I, CodecError> {
        let wrapper: W = decode_message(bytes)?;
        I::try_from(wrapper).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::echo::EchoInner;
    use crate::typed::ProtoCodec;
    use quickcheck::quickcheck;
    use tmp2p_proto::echo::{EchoMessage, EchoMessageSum, Ping, Pong};
    use tmp2p_proto::p2p::PacketMsg;

    type EchoCodec = WrapperCodec<EchoMessage, EchoInner>;

    fn ping(payload: &[u8]) -> Ping {
        Ping {
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn sending_an_inner_ping_puts_the_wrapper_on_the_wire() {
        let inner = EchoInner::Ping(ping(b"hello"));
        let wire = EchoCodec::new().encode(&inner);
        let wrapper = EchoMessage {
            sum: Some(EchoMessageSum::Ping(ping(b"hello"))),
        };
        assert_eq!(wire, wrapper.encode_to_vec());
        // The same bytes a channel carrying the wrapper type itself would send.
        assert_eq!(wire, ProtoCodec::<EchoMessage>::new().encode(&wrapper));
    }

    #[test]
    fn a_wrapper_sent_as_itself_arrives_as_the_inner_message() {
        let wrapper = EchoMessage {
            sum: Some(EchoMessageSum::Pong(Pong {
                payload: Bytes::from_static(b"back"),
            })),
        };
        let wire = ProtoCodec::<EchoMessage>::new().encode(&wrapper);
        let inner = EchoCodec::new().decode(wire).unwrap();
        assert_eq!(
            inner,
            EchoInner::Pong(Pong {
                payload: Bytes::from_static(b"back")
            })
        );
    }

    #[test]
    fn the_wrapper_type_can_be_unwrapped_into_itself() {
        // W: From<W> and TryFrom<W> for W (Infallible) hold, as the ADR allows.
        let codec = WrapperCodec::<EchoMessage, EchoMessage>::new();
        let wrapper = EchoMessage {
            sum: Some(EchoMessageSum::Ping(ping(b"self"))),
        };
        assert_eq!(codec.decode(codec.encode(&wrapper)).unwrap(), wrapper);
    }

    #[test]
    fn an_unset_oneof_is_an_empty_wrapper_error() {
        let wire = EchoMessage { sum: None }.encode_to_vec();
        assert!(wire.is_empty());
        assert_eq!(
            EchoCodec::new().decode(Bytes::from(wire)),
            Err(CodecError::EmptyWrapper)
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        // A truncated varint length.
        let err = EchoCodec::new()
            .decode(Bytes::from_static(&[0x0a, 0xff]))
            .unwrap_err();
        assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
    }

    #[test]
    fn another_message_type_is_rejected_with_a_typed_error() {
        // PacketMsg's field 1 is a varint channel id; EchoMessage's field 1 is a message.
        let clashing = PacketMsg {
            channel_id: 0x20,
            eof: true,
            data: Bytes::from_static(b"block"),
        };
        let err = EchoCodec::new()
            .decode(Bytes::from(clashing.encode_to_vec()))
            .unwrap_err();
        assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
        // With only field 3 set, every field is unknown to EchoMessage and skipped: the
        // oneof stays unset, which must be an error rather than a default Ping.
        let unknown_only = PacketMsg {
            channel_id: 0,
            eof: false,
            data: Bytes::from_static(b"block"),
        };
        assert_eq!(
            EchoCodec::new().decode(Bytes::from(unknown_only.encode_to_vec())),
            Err(CodecError::EmptyWrapper)
        );
    }

    /// A reactor that only ever receives pings: a `Pong` on its channel is the sender's
    /// mistake, reported through `CodecError::Unwrap`.
    #[derive(Debug, Clone, PartialEq)]
    struct PingOnly(Ping);

    impl From<PingOnly> for EchoMessage {
        fn from(inner: PingOnly) -> Self {
            EchoMessage {
                sum: Some(EchoMessageSum::Ping(inner.0)),
            }
        }
    }

    impl TryFrom<EchoMessage> for PingOnly {
        type Error = CodecError;

        fn try_from(wrapper: EchoMessage) -> Result<Self, CodecError> {
            match wrapper.sum {
                Some(EchoMessageSum::Ping(ping)) => Ok(PingOnly(ping)),
                Some(EchoMessageSum::Pong(_)) => Err(CodecError::Unwrap(
                    "EchoMessage.pong is not accepted by PingOnly".to_owned(),
                )),
                None => Err(CodecError::EmptyWrapper),
            }
        }
    }

    #[test]
    fn an_inner_message_the_reactor_does_not_accept_is_an_unwrap_error() {
        let codec = WrapperCodec::<EchoMessage, PingOnly>::new();
        let pong = EchoMessage {
            sum: Some(EchoMessageSum::Pong(Pong {
                payload: Bytes::from_static(b"unasked"),
            })),
        };
        let err = codec.decode(Bytes::from(pong.encode_to_vec())).unwrap_err();
        assert!(
            matches!(err, CodecError::Unwrap(ref why) if why.contains("pong")),
            "{err:?}"
        );
        let ping = PingOnly(ping(b"ok"));
        assert_eq!(codec.decode(codec.encode(&ping)).unwrap(), ping);
    }

    quickcheck! {
        // A valid encoding with one byte overwritten and cut short anywhere: no panic, and
        // anything accepted re-encodes to an equal inner message.
        fn corrupted_encodings_never_panic(
            payload: Vec<u8>,
            position: usize,
            byte: u8,
            cut: usize
        ) -> bool {
            let codec = EchoCodec::new();
            let mut wire = codec.encode(&EchoInner::Ping(Ping { payload: Bytes::from(payload) })).to_vec();
            let len = wire.len();
            if let Some(slot) = wire.get_mut(position % len) {
                *slot = byte;
            }
            wire.truncate(cut % (len + 1));
            match codec.decode(Bytes::from(wire)) {
                Ok(inner) => codec.decode(codec.encode(&inner)).ok() == Some(inner),
                Err(CodecError::Decode(_) | CodecError::EmptyWrapper) => true,
                Err(CodecError::Unwrap(_) | CodecError::Misplaced { .. }) => false,
            }
        }

        fn ping_and_pong_round_trip(payload: Vec<u8>, is_ping: bool) -> bool {
            let payload = Bytes::from(payload);
            let inner = if is_ping {
                EchoInner::Ping(Ping { payload })
            } else {
                EchoInner::Pong(Pong { payload })
            };
            let codec = EchoCodec::new();
            codec.decode(codec.encode(&inner)).ok() == Some(inner)
        }

        // Whatever arrives: no panic; accepted input re-encodes to an equal inner message.
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let codec = EchoCodec::new();
            match codec.decode(Bytes::from(bytes)) {
                Ok(inner) => codec.decode(codec.encode(&inner)).ok() == Some(inner),
                Err(CodecError::Decode(_) | CodecError::EmptyWrapper) => true,
                Err(CodecError::Unwrap(_) | CodecError::Misplaced { .. }) => false,
            }
        }
    }
}
