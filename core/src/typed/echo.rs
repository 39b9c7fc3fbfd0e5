//! The message layer of the ADR 062 echo reactor: [`EchoInner`], the messages the reactor
//! sends and receives, and the `From` / `TryFrom` pair with the wire wrapper
//! [`EchoMessage`]. Use it as `WrapperCodec<EchoMessage, EchoInner>`; drivers and tests use
//! it as their example wrapper channel.

use tmp2p_proto::echo::{EchoMessage, EchoMessageSum, Ping, Pong};

use super::CodecError;

/// One message of the echo reactor: a `Ping` to be answered, or the `Pong` answering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EchoInner {
    /// Asks the peer to send the payload back.
    Ping(Ping),
    /// Carries a ping's payload back.
    Pong(Pong),
}

impl From<EchoInner> for EchoMessage {
    fn from(inner: EchoInner) -> Self {
        let sum = match inner {
            EchoInner::Ping(ping) => EchoMessageSum::Ping(ping),
            EchoInner::Pong(pong) => EchoMessageSum::Pong(pong),
        };
        EchoMessage { sum: Some(sum) }
    }
}

impl TryFrom<EchoMessage> for EchoInner {
    type Error = CodecError;

    fn try_from(wrapper: EchoMessage) -> Result<Self, CodecError> {
        match wrapper.sum {
            Some(EchoMessageSum::Ping(ping)) => Ok(EchoInner::Ping(ping)),
            Some(EchoMessageSum::Pong(pong)) => Ok(EchoInner::Pong(pong)),
            None => Err(CodecError::EmptyWrapper),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn wrap_then_unwrap_is_identity_for_both_variants() {
        let ping = EchoInner::Ping(Ping {
            payload: Bytes::from_static(b"p"),
        });
        let pong = EchoInner::Pong(Pong {
            payload: Bytes::from_static(b"q"),
        });
        for inner in [ping, pong] {
            assert_eq!(
                EchoInner::try_from(EchoMessage::from(inner.clone())),
                Ok(inner)
            );
        }
    }

    #[test]
    fn ping_and_pong_land_in_their_own_oneof_fields() {
        let payload = Bytes::from_static(b"same");
        let ping = EchoMessage::from(EchoInner::Ping(Ping {
            payload: payload.clone(),
        }));
        let pong = EchoMessage::from(EchoInner::Pong(Pong { payload }));
        assert!(matches!(ping.sum, Some(EchoMessageSum::Ping(_))));
        assert!(matches!(pong.sum, Some(EchoMessageSum::Pong(_))));
    }

    #[test]
    fn an_empty_wrapper_does_not_unwrap() {
        assert_eq!(
            EchoInner::try_from(EchoMessage { sum: None }),
            Err(CodecError::EmptyWrapper)
        );
    }
}
