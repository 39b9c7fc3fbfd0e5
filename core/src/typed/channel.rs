//! [`TypedChannel`]: a channel id bound to its codec, the typed view of one channel a driver
//! hands an application whose receive loop is its own (the mio driver's typed channels;
//! the smol driver puts the same codecs behind its async senders and receivers).

use super::{decode_inbound, ChannelCodec, UndecodableMessage};
use crate::router::{Envelope, Target};
use crate::NodeId;

/// One channel and its codec (see the module docs). Cheap to clone when the codec is.
#[derive(Debug, Clone)]
pub struct TypedChannel<C> {
    id: u8,
    codec: C,
}

impl<C: ChannelCodec> TypedChannel<C> {
    /// Channel `id`, encoded and decoded with `codec`.
    pub fn new(id: u8, codec: C) -> Self {
        TypedChannel { id, codec }
    }

    /// The channel id.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The envelope that sends `message` to `to` on this channel.
    pub fn envelope(&self, to: Target, message: &C::Message) -> Envelope {
        Envelope {
            from: None,
            to: Some(to),
            channel: self.id,
            message: self.codec.encode(message),
        }
    }

    /// Decodes a received envelope: `None` when it is not of this channel (or has no
    /// sender), else its sender and message, or the error naming the sender of bytes that
    /// do not decode (report it as a fatal `PeerError`, as CometBFT disconnects such a
    /// peer).
    pub fn decode(
        &self,
        envelope: Envelope,
    ) -> Option<Result<(NodeId, C::Message), UndecodableMessage>> {
        let from = envelope.from.filter(|_| envelope.channel == self.id)?;
        Some(decode_inbound(&self.codec, from, envelope.message).map(|m| (from, m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::{CodecError, ProtoCodec};
    use bytes::Bytes;
    use tmp2p_proto::echo::Ping;

    #[test]
    fn a_message_goes_out_and_comes_back_typed() {
        let channel = TypedChannel::new(0x42, ProtoCodec::<Ping>::new());
        let peer = NodeId::from_bytes([4; 20]);
        let ping = Ping {
            payload: Bytes::from_static(b"x"),
        };
        let mut envelope = channel.envelope(Target::Peer(peer), &ping);
        assert_eq!(
            (envelope.channel, envelope.to),
            (0x42, Some(Target::Peer(peer)))
        );
        envelope.from = Some(peer);
        assert_eq!(channel.decode(envelope.clone()), Some(Ok((peer, ping))));
        envelope.channel = 0x43;
        assert_eq!(channel.decode(envelope), None, "another channel's message");
        let garbage = Envelope {
            from: Some(peer),
            to: None,
            channel: 0x42,
            message: Bytes::from_static(&[0xff, 0xff]),
        };
        let error = channel.decode(garbage).unwrap().unwrap_err();
        assert_eq!(error.from, peer);
        assert!(matches!(error.error, CodecError::Decode(_)));
    }
}
