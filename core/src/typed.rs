//! Typed channels: the one generic place where a channel's bytes become a reactor's
//! messages and back (ADR 062 "Channel" and "Wrapper", protocol.md §6.1).
//!
//! The router and MConnection carry `(channel, Bytes)`. A driver that hands an application
//! a typed channel picks one [`ChannelCodec`] per channel:
//! - [`ProtoCodec<M>`]: one plain prost message type `M` per channel.
//! - [`WrapperCodec<W, I>`]: the ADR's `Wrapper` in Rust form. `W` is a prost message whose
//!   only content is a `oneof`; `I` is the reactor's own enum of inner messages, with
//!   `W: From<I>` (wrap) and `I: TryFrom<W>` (unwrap). The reactor sends and receives `I`;
//!   the wire carries `W`. Sending the wrapper type itself is [`ProtoCodec<W>`].
//! - [`RawCodec`]: no decoding at all; the reactor sees the bytes.
//!
//! Inbound bytes are remote input: decoding never panics, and an undecodable message is
//! reported as a `PeerError` against its sender (see [`decode_inbound`]), never a crash.
//! [`echo`] and [`pex`] are the wrapper pairs for the ADR's echo example and for PEX;
//! [`cometbft`] has CometBFT's reactor channels (consensus, mempool, evidence, block sync,
//! state sync).

mod channel;
pub mod cometbft;
pub mod echo;
pub mod pex;
mod proto_codec;
mod raw;
mod wrapper;

use bytes::Bytes;

use crate::NodeId;

pub use channel::TypedChannel;
pub use proto_codec::ProtoCodec;
pub use raw::RawCodec;
pub use wrapper::WrapperCodec;

/// Encodes and decodes one channel's messages.
///
/// Implementations are stateless and shared by every connection of a node, hence
/// `Send + Sync + 'static`.
pub trait ChannelCodec: Send + Sync + 'static {
    /// What the reactor sends and receives on this channel.
    type Message: Send + 'static;

    /// The wire bytes of `message`. Encoding our own messages cannot fail.
    fn encode(&self, message: &Self::Message) -> Bytes;

    /// Parses bytes received from a peer. Never panics, whatever the bytes.
    fn decode(&self, bytes: Bytes) -> Result<Self::Message, CodecError>;
}

/// Why received bytes are not a message of the channel's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid protobuf encoding of the channel's message type; the
    /// string names that type and what prost found wrong.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// The bytes decoded as the channel's wrapper message, but its `oneof` is unset, so
    /// there is no inner message to deliver.
    #[error("wrapper message has no inner message set (its oneof is empty)")]
    EmptyWrapper,
    /// The wrapper's inner message is not one this channel's reactor accepts; the string
    /// names the wrapper, the variant and the reactor's inner type.
    #[error("cannot unwrap: {0}")]
    Unwrap(String),
    /// A well-formed message of a reactor that spreads its messages over several
    /// channels arrived on another channel than the one its type is sent on.
    #[error(
        "{message} is a channel {belongs_on:#04x} message, received on channel {channel:#04x}"
    )]
    Misplaced {
        /// The message's type name.
        message: &'static str,
        /// The channel it arrived on.
        channel: u8,
        /// The channel its type belongs on.
        belongs_on: u8,
    },
}

/// An `Infallible` unwrap (a type unwrapped into itself) converts to any error.
impl From<std::convert::Infallible> for CodecError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// An inbound message that could not be decoded, with the peer that sent it. The router
/// turns it into a `PeerError` against [`UndecodableMessage::from`]: the node keeps running,
/// only that peer is held to account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer {from} sent an undecodable message: {error}")]
pub struct UndecodableMessage {
    /// The peer that sent the bytes.
    pub from: NodeId,
    /// What was wrong with them.
    #[source]
    pub error: CodecError,
}

/// Decodes `bytes` received from peer `from` with the channel's `codec`.
///
/// On failure the error names the sender, so the caller can report a `PeerError` against
/// it (and drop the message); an undecodable inbound message must never crash the node or
/// be delivered half-parsed. Failures are traced at debug level.
pub fn decode_inbound<C: ChannelCodec>(
    codec: &C,
    from: NodeId,
    bytes: Bytes,
) -> Result<C::Message, UndecodableMessage> {
    codec.decode(bytes).map_err(|error| {
        tracing::debug!(peer = %from, %error, "dropping undecodable inbound message");
        UndecodableMessage { from, error }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmp2p_proto::echo::{EchoMessage, EchoMessageSum, Ping};

    fn peer() -> NodeId {
        NodeId::from_public_key(&[7; 32])
    }

    #[test]
    fn decode_inbound_delivers_a_valid_message() {
        let codec = ProtoCodec::<EchoMessage>::new();
        let message = EchoMessage {
            sum: Some(EchoMessageSum::Ping(Ping {
                payload: Bytes::from_static(b"hi"),
            })),
        };
        let got = decode_inbound(&codec, peer(), codec.encode(&message)).unwrap();
        assert_eq!(got, message);
    }

    #[test]
    fn decode_inbound_names_the_sender_of_garbage() {
        let codec = WrapperCodec::<EchoMessage, echo::EchoInner>::new();
        // Field 1 (ping) with wire type 7, which does not exist.
        let err = decode_inbound(&codec, peer(), Bytes::from_static(&[0x0f])).unwrap_err();
        assert_eq!(err.from, peer());
        assert!(matches!(err.error, CodecError::Decode(_)), "{err:?}");
        // An empty wrapper is the sender's fault too.
        let err = decode_inbound(&codec, peer(), Bytes::new()).unwrap_err();
        assert_eq!(err.from, peer());
        assert_eq!(err.error, CodecError::EmptyWrapper);
    }
}
