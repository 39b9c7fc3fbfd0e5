//! The message layer of the PEX channel (0x00, protocol.md §5.1): [`PexInner`], what the PEX
//! reactor sends and receives, and the `From` / `TryFrom` pair with the CometBFT wire
//! wrapper `tendermint.p2p.Message` ([`Message`]). Use it as
//! `WrapperCodec<Message, PexInner>`.

use tmp2p_proto::p2p::{Message, MessageSum, PexAddrs, PexRequest};

use super::CodecError;

/// One PEX message: a request for addresses, or the addresses sent in reply.
#[derive(Debug, Clone, PartialEq)]
pub enum PexInner {
    /// Asks the peer for addresses it knows.
    Request(PexRequest),
    /// Addresses, in answer to a request.
    Addrs(PexAddrs),
}

impl From<PexInner> for Message {
    fn from(inner: PexInner) -> Self {
        let sum = match inner {
            PexInner::Request(request) => MessageSum::PexRequest(request),
            PexInner::Addrs(addrs) => MessageSum::PexAddrs(addrs),
        };
        Message { sum: Some(sum) }
    }
}

impl TryFrom<Message> for PexInner {
    type Error = CodecError;

    fn try_from(wrapper: Message) -> Result<Self, CodecError> {
        match wrapper.sum {
            Some(MessageSum::PexRequest(request)) => Ok(PexInner::Request(request)),
            Some(MessageSum::PexAddrs(addrs)) => Ok(PexInner::Addrs(addrs)),
            None => Err(CodecError::EmptyWrapper),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::{ChannelCodec, WrapperCodec};
    use bytes::Bytes;
    use quickcheck::quickcheck;
    use tmp2p_proto::p2p::NetAddress;

    type PexCodec = WrapperCodec<Message, PexInner>;

    fn addrs() -> PexInner {
        PexInner::Addrs(PexAddrs {
            addrs: vec![NetAddress {
                id: "ab".to_owned(),
                ip: "1.2.3.4".to_owned(),
                port: 26656,
            }],
        })
    }

    #[test]
    fn a_request_is_field_one_holding_an_empty_message() {
        let wire = PexCodec::new().encode(&PexInner::Request(PexRequest {}));
        assert_eq!(&wire[..], &[0x0a, 0x00]);
        assert_eq!(
            PexCodec::new().decode(wire).unwrap(),
            PexInner::Request(PexRequest {})
        );
    }

    #[test]
    fn addrs_are_field_two_with_the_net_address_layout() {
        // NetAddress { id = 1: "ab", ip = 2: "1.2.3.4", port = 3: 26656 (varint a0 d0 01) }
        let mut net_address = vec![0x0a, 0x02, b'a', b'b', 0x12, 0x07];
        net_address.extend_from_slice(b"1.2.3.4");
        net_address.extend_from_slice(&[0x18, 0xa0, 0xd0, 0x01]);
        let mut pex_addrs = vec![0x0a, 17];
        pex_addrs.extend_from_slice(&net_address);
        let mut expected = vec![0x12, 19];
        expected.extend_from_slice(&pex_addrs);

        let wire = PexCodec::new().encode(&addrs());
        assert_eq!(wire, expected);
        assert_eq!(PexCodec::new().decode(wire).unwrap(), addrs());
    }

    #[test]
    fn an_address_that_is_not_utf8_is_a_decode_error() {
        // PexAddrs { NetAddress { id: [0xff] } }: strings must be UTF-8.
        const WIRE: [u8; 7] = [0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff];
        match PexCodec::new().decode(Bytes::from_static(&WIRE)) {
            Err(CodecError::Decode(reason)) => assert!(reason.contains("UTF-8"), "{reason}"),
            other => panic!("expected a UTF-8 decode error, got {other:?}"),
        }
    }

    quickcheck! {
        fn addresses_round_trip(entries: Vec<(String, String, u32)>) -> bool {
            let inner = PexInner::Addrs(PexAddrs {
                addrs: entries
                    .into_iter()
                    .map(|(id, ip, port)| NetAddress { id, ip, port })
                    .collect(),
            });
            let codec = PexCodec::new();
            codec.decode(codec.encode(&inner)).ok() == Some(inner)
        }

        // PEX bytes are remote input: no panic, and every oneof value is accepted.
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let codec = PexCodec::new();
            match codec.decode(Bytes::from(bytes)) {
                Ok(inner) => codec.decode(codec.encode(&inner)).ok() == Some(inner),
                Err(CodecError::Decode(_) | CodecError::EmptyWrapper) => true,
                Err(CodecError::Unwrap(_) | CodecError::Misplaced { .. }) => false,
            }
        }
    }

    #[test]
    fn an_empty_wrapper_and_garbage_are_typed_errors() {
        assert_eq!(
            PexCodec::new().decode(Bytes::new()),
            Err(CodecError::EmptyWrapper)
        );
        // Field 2 announced as 19 bytes long, only 2 present.
        assert!(matches!(
            PexCodec::new().decode(Bytes::from_static(&[0x12, 19, 0x0a, 0x00])),
            Err(CodecError::Decode(_))
        ));
    }
}
