//! The MConnection packet codec (protocol.md §4.1, §4.2): sizes of encoded packets, the
//! chunk size that keeps every packet within the peer's limit, encoding of message chunks
//! straight into the output buffer, and decoding of one received packet.

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;
use tmp2p_proto::p2p::{Packet, PacketSum};

use super::MConnError;

/// A delimited `Packet{PacketPing{}}`.
pub(crate) const PING: [u8; 3] = [0x02, 0x0a, 0x00];
/// A delimited `Packet{PacketPong{}}`.
pub(crate) const PONG: [u8; 3] = [0x02, 0x12, 0x00];

fn varint_len(value: usize) -> usize {
    // usize always fits in u64 on supported targets.
    encoded_len_varint(value as u64)
}

/// Length of the encoded `PacketMsg` body (proto3: zero channel, false eof, empty data
/// are omitted). Saturates at `usize::MAX` for absurd `data_len`.
fn msg_body_len(channel: u8, eof: bool, data_len: usize) -> usize {
    // cannot panic: a u8 channel's field takes at most 3 bytes.
    let channel_len = if channel == 0 {
        0
    } else {
        1 + encoded_len_varint(u64::from(channel))
    };
    let eof_len = if eof { 2 } else { 0 };
    let data_field_len = if data_len == 0 {
        0
    } else {
        data_len.saturating_add(1 + varint_len(data_len))
    };
    data_field_len.saturating_add(channel_len + eof_len)
}

/// Length of an encoded `Packet{PacketMsg{channel, eof, data}}` (without its delimiter).
/// Saturates at `usize::MAX` for absurd `data_len`.
fn msg_packet_len(channel: u8, eof: bool, data_len: usize) -> usize {
    let body = msg_body_len(channel, eof, data_len);
    body.saturating_add(1 + varint_len(body))
}

/// The largest packet (without its length prefix) we send for a payload size, and the
/// limit a Go receiver enforces: `Packet{PacketMsg{channel_id: 1, eof: true, data: payload
/// bytes}}` (1034 for 1024). Go sizes its limit for a one-byte channel id, so on channel
/// ids ≥ 0x80 we chunk one byte smaller ([`chunk_size`]) and every packet we send passes a
/// Go peer's check. Callers keep `payload` within the validated config range.
pub fn max_sent_packet_size(payload: usize) -> usize {
    msg_packet_len(1, true, payload)
}

/// The largest packet (without its length prefix) we accept for a payload size: the
/// largest one a CometBFT node can emit, a full `payload`-byte chunk with eof set on a
/// channel id ≥ 0x80, whose varint takes two bytes (1035 for 1024). Go's MConnection
/// chunks at `payload` bytes on every channel id, so on those channels it sends packets
/// one byte above its own receive limit ([`max_sent_packet_size`]); accepting them is the
/// "liberal in what we accept" half of that Go bug, and a packet one byte larger is still
/// refused with `MConnError::OversizedPacket`.
pub fn max_received_packet_size(payload: usize) -> usize {
    // Every channel id a CometBFT node can send fits in a byte; 0xFF has the longest
    // varint among them (two bytes, like every id ≥ 0x80).
    msg_packet_len(u8::MAX, true, payload)
}

/// The chunk size used on `channel`: the payload size, less what a channel id ≥ 0x80 costs
/// in extra varint bytes, so that every packet fits in [`max_sent_packet_size`] (1023 at
/// 1024).
pub fn chunk_size(channel: u8, payload: usize) -> usize {
    let max = max_sent_packet_size(payload);
    let mut size = payload;
    while size > 1 && msg_packet_len(channel, true, size) > max {
        // cannot panic: size > 1.
        size -= 1;
    }
    size
}

/// Appends one delimited message chunk to `out`; returns the bytes written.
pub(crate) fn write_msg(out: &mut BytesMut, channel: u8, eof: bool, data: &[u8]) -> usize {
    let body = msg_body_len(channel, eof, data.len());
    // cannot panic: `data` is an in-memory slice, so these few-byte overheads fit.
    let packet = 1 + varint_len(body) + body;
    let total = varint_len(packet) + packet;
    out.reserve(total);
    encode_varint(packet as u64, out);
    out.put_u8(0x1a);
    encode_varint(body as u64, out);
    if channel != 0 {
        out.put_u8(0x08);
        encode_varint(u64::from(channel), out);
    }
    if eof {
        out.put_slice(&[0x10, 0x01]);
    }
    if !data.is_empty() {
        out.put_u8(0x1a);
        encode_varint(data.len() as u64, out);
        out.put_slice(data);
    }
    total
}

/// One received packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// The peer pings us.
    Ping,
    /// The peer answers a ping.
    Pong,
    /// A message chunk; `data` shares the input buffer.
    Msg {
        /// The channel id exactly as sent (may be out of range).
        channel: i32,
        /// Whether this is the message's last chunk.
        eof: bool,
        /// The chunk.
        data: Bytes,
    },
}

/// Decodes one packet body (its length prefix already removed).
pub(crate) fn decode(body: Bytes) -> Result<Received, MConnError> {
    let packet = Packet::decode(body).map_err(|e| MConnError::MalformedPacket(e.to_string()))?;
    match packet.sum {
        Some(PacketSum::PacketPing(_)) => Ok(Received::Ping),
        Some(PacketSum::PacketPong(_)) => Ok(Received::Pong),
        Some(PacketSum::PacketMsg(msg)) => Ok(Received::Msg {
            channel: msg.channel_id,
            eof: msg.eof,
            data: msg.data,
        }),
        None => Err(MConnError::EmptyPacket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;
    use tmp2p_proto::p2p::PacketMsg;

    #[test]
    fn sizes_of_absurd_payloads_saturate_instead_of_overflowing() {
        assert_eq!(max_sent_packet_size(usize::MAX), usize::MAX);
        assert_eq!(max_sent_packet_size(usize::MAX - 5), usize::MAX);
        assert_eq!(max_received_packet_size(usize::MAX - 5), usize::MAX);
        assert!(chunk_size(0xff, usize::MAX - 5) <= usize::MAX - 5);
    }

    fn prost_delimited(channel: u8, eof: bool, data: &[u8]) -> Vec<u8> {
        let packet = Packet {
            sum: Some(PacketSum::PacketMsg(PacketMsg {
                channel_id: i32::from(channel),
                eof,
                data: Bytes::copy_from_slice(data),
            })),
        };
        packet.encode_length_delimited_to_vec()
    }

    #[test]
    fn limits_match_go() {
        assert_eq!(max_sent_packet_size(1024), 1034);
        assert_eq!(max_sent_packet_size(1400), 1410);
        assert_eq!(max_received_packet_size(1024), 1035);
        assert_eq!(msg_packet_len(0x80, true, 1024), 1035);
        assert_eq!(chunk_size(0x7f, 1024), 1024);
        assert_eq!(chunk_size(0x80, 1024), 1023);
        assert_eq!(chunk_size(0xff, 1024), 1023);
        assert_eq!(chunk_size(0, 1024), 1024);
        for ch in 0..=255u8 {
            for payload in [64, 100, 127, 128, 1024, 1400, 16383, 16384, 1 << 20] {
                let size = chunk_size(ch, payload);
                assert!(msg_packet_len(ch, true, size) <= max_sent_packet_size(payload));
                // What Go sends on any channel: a full chunk with eof.
                let go = prost_delimited(ch, true, &vec![0xa5; payload]);
                let go_packet = go.len() - varint_len(go.len());
                assert!(go_packet <= max_received_packet_size(payload));
            }
        }
    }

    #[test]
    fn ping_pong_decode() {
        assert_eq!(decode(Bytes::from_static(&PING[1..])), Ok(Received::Ping));
        assert_eq!(decode(Bytes::from_static(&PONG[1..])), Ok(Received::Pong));
        assert_eq!(decode(Bytes::new()), Err(MConnError::EmptyPacket));
        assert!(matches!(
            decode(Bytes::from_static(&[0x1a, 0x05, 0x08])),
            Err(MConnError::MalformedPacket(_))
        ));
    }

    quickcheck! {
        fn encoding_matches_prost(channel: u8, eof: bool, data: Vec<u8>) -> bool {
            let mut out = BytesMut::new();
            let n = write_msg(&mut out, channel, eof, &data);
            let expect = prost_delimited(channel, eof, &data);
            n == out.len() && out[..] == expect[..]
                && msg_packet_len(channel, eof, data.len()) + varint_len(msg_packet_len(channel, eof, data.len())) == n
        }

        fn decode_inverts_encode(channel: u8, eof: bool, data: Vec<u8>) -> bool {
            let mut out = BytesMut::new();
            write_msg(&mut out, channel, eof, &data);
            let (prefix, _) = crate::delimited::peek_complete(&out, usize::MAX).unwrap().unwrap();
            let got = decode(out.freeze().slice(prefix..));
            got == Ok(Received::Msg { channel: i32::from(channel), eof, data: Bytes::from(data) })
        }
    }
}
