//! The frame layer: turns a byte stream into sealed 1044-byte frames and back
//! (protocol.md §1.6, §1.7). Each direction has its own key and nonce counter.

use bytes::{BufMut, BytesMut};

use super::aead::{AeadBackend, FrameCipher};
use super::{SecretError, DATA_LEN_SIZE, DATA_MAX_SIZE, FRAME_PLAINTEXT_SIZE, FRAME_SEALED_SIZE};

/// A per-direction nonce counter: 4 zero bytes, then a little-endian u64. Every value is
/// used at most once; once `u64::MAX` has been used the direction is exhausted and the
/// connection must close (Go and tendermint-rs panic there instead).
#[derive(Debug, Clone)]
struct NonceCounter {
    next: u64,
    exhausted: bool,
}

impl NonceCounter {
    fn new(start: u64) -> Self {
        NonceCounter {
            next: start,
            exhausted: false,
        }
    }

    /// How many nonces are left, saturated at `usize::MAX`.
    fn remaining(&self) -> u128 {
        if self.exhausted {
            0
        } else {
            // cannot panic: `next <= u64::MAX`, and the sum is at most 2^64 in a u128.
            u128::from(u64::MAX - self.next) + 1
        }
    }

    fn take(&mut self) -> Option<(u64, [u8; 12])> {
        if self.exhausted {
            return None;
        }
        let counter = self.next;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&counter.to_le_bytes());
        match counter.checked_add(1) {
            Some(next) => self.next = next,
            None => self.exhausted = true,
        }
        Some((counter, nonce))
    }
}

/// Seals outgoing bytes into frames. Owns the send key and send nonce.
pub struct FrameSealer {
    cipher: FrameCipher,
    nonce: NonceCounter,
}

impl FrameSealer {
    /// A sealer with `key`, starting at nonce `first_nonce` (0 for a new connection).
    pub fn new(backend: AeadBackend, key: &[u8; 32], first_nonce: u64) -> Self {
        FrameSealer {
            cipher: FrameCipher::new(backend, key),
            nonce: NonceCounter::new(first_nonce),
        }
    }

    /// Number of sealed bytes `len` bytes of data occupy on the wire.
    pub fn sealed_len(len: usize) -> usize {
        len.div_ceil(DATA_MAX_SIZE)
            .saturating_mul(FRAME_SEALED_SIZE)
    }

    /// Seals `data` as ⌈len/1024⌉ frames appended to `out`, encrypting in place in `out`
    /// (one copy of `data`, no allocation when `out` has room). Zero bytes seal to nothing.
    /// Fails, writing nothing, if the send nonces would run out.
    #[allow(clippy::indexing_slicing)] // `start` was `out.len()` before this frame was appended
    pub fn seal(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), SecretError> {
        let frames = data.len().div_ceil(DATA_MAX_SIZE);
        if (frames as u128) > self.nonce.remaining() {
            return Err(SecretError::NonceExhausted("send"));
        }
        out.reserve(Self::sealed_len(data.len()));
        for chunk in data.chunks(DATA_MAX_SIZE) {
            let Some((_, nonce)) = self.nonce.take() else {
                return Err(SecretError::NonceExhausted("send"));
            };
            let start = out.len();
            // chunk.len() <= 1024, so the cast is lossless.
            out.put_u32_le(chunk.len() as u32);
            out.extend_from_slice(chunk);
            out.put_bytes(0, DATA_MAX_SIZE.saturating_sub(chunk.len()));
            let tag = self.cipher.seal(nonce, &mut out[start..]);
            out.extend_from_slice(&tag);
        }
        Ok(())
    }
}

/// Opens incoming frames from a byte stream that may arrive at any split. Owns the receive
/// key, the receive nonce and one partial frame.
pub struct FrameOpener {
    cipher: FrameCipher,
    nonce: NonceCounter,
    partial: Box<[u8; FRAME_SEALED_SIZE]>,
    partial_len: usize,
    failed: bool,
}

impl FrameOpener {
    /// An opener with `key`, starting at nonce `first_nonce` (0 for a new connection).
    pub fn new(backend: AeadBackend, key: &[u8; 32], first_nonce: u64) -> Self {
        FrameOpener {
            cipher: FrameCipher::new(backend, key),
            nonce: NonceCounter::new(first_nonce),
            partial: Box::new([0u8; FRAME_SEALED_SIZE]),
            partial_len: 0,
            failed: false,
        }
    }

    /// Bytes of an incomplete frame held back, waiting for the rest.
    pub fn partial_len(&self) -> usize {
        self.partial_len
    }

    /// Consumes all of `input`, appending the data of every completed frame to
    /// `plaintext`. After an error the opener stays failed.
    pub fn open(&mut self, mut input: &[u8], plaintext: &mut BytesMut) -> Result<(), SecretError> {
        if self.failed {
            return Err(SecretError::Failed);
        }
        while !input.is_empty() {
            let want = FRAME_SEALED_SIZE.saturating_sub(self.partial_len);
            let (now, rest) = input.split_at(want.min(input.len()));
            // cannot panic: both terms are at most FRAME_SEALED_SIZE.
            let end = self.partial_len + now.len();
            if let Some(slot) = self.partial.get_mut(self.partial_len..end) {
                slot.copy_from_slice(now);
            }
            self.partial_len = end;
            input = rest;
            if self.partial_len == FRAME_SEALED_SIZE {
                self.partial_len = 0;
                if let Err(error) = self.open_frame(plaintext) {
                    self.failed = true;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// The end of the stream: an error if a frame was cut short.
    pub fn handle_eof(&self) -> Result<(), SecretError> {
        if self.failed {
            return Err(SecretError::Failed);
        }
        match self.partial_len {
            0 => Ok(()),
            have => Err(SecretError::TruncatedFrame(have)),
        }
    }

    fn open_frame(&mut self, plaintext: &mut BytesMut) -> Result<(), SecretError> {
        let Some((counter, nonce)) = self.nonce.take() else {
            return Err(SecretError::NonceExhausted("receive"));
        };
        let (body, tag) = self.partial.split_at_mut(FRAME_PLAINTEXT_SIZE);
        let tag: &[u8; 16] = (&*tag)
            .try_into()
            .map_err(|_| SecretError::Decrypt { nonce: counter })?;
        self.cipher
            .open(nonce, body, tag)
            .map_err(|_| SecretError::Decrypt { nonce: counter })?;
        let (len_bytes, data) = body.split_at(DATA_LEN_SIZE);
        let mut len = [0u8; DATA_LEN_SIZE];
        len.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len);
        match data.get(..len as usize) {
            Some(chunk) if len as usize <= DATA_MAX_SIZE => {
                plaintext.extend_from_slice(chunk);
                Ok(())
            }
            _ => Err(SecretError::FrameDataLength(len)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(backend: AeadBackend, start: u64) -> (FrameSealer, FrameOpener) {
        let key = [9u8; 32];
        (
            FrameSealer::new(backend, &key, start),
            FrameOpener::new(backend, &key, start),
        )
    }

    #[test]
    fn sizes_and_round_trip_at_frame_boundaries() {
        for &backend in AeadBackend::all() {
            for len in [0usize, 1, 1023, 1024, 1025, 2048, 5000] {
                let (mut sealer, mut opener) = pair(backend, 0);
                let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
                let mut wire = BytesMut::new();
                sealer.seal(&data, &mut wire).unwrap();
                assert_eq!(wire.len(), len.div_ceil(1024) * FRAME_SEALED_SIZE);
                let mut plain = BytesMut::new();
                opener.open(&wire, &mut plain).unwrap();
                assert_eq!(&plain[..], &data[..]);
            }
        }
    }

    #[test]
    fn exhausted_nonce_closes_instead_of_wrapping() {
        for &backend in AeadBackend::all() {
            let (mut sealer, mut opener) = pair(backend, u64::MAX - 1);
            let mut wire = BytesMut::new();
            // Three frames need nonces MAX-1, MAX and one more: refused, nothing written.
            assert_eq!(
                sealer.seal(&[1u8; 3000], &mut wire),
                Err(SecretError::NonceExhausted("send"))
            );
            assert!(wire.is_empty());
            sealer.seal(&[1u8; 2048], &mut wire).unwrap();
            assert_eq!(
                sealer.seal(&[1u8; 1], &mut wire),
                Err(SecretError::NonceExhausted("send"))
            );
            let mut plain = BytesMut::new();
            opener.open(&wire, &mut plain).unwrap();
            assert_eq!(plain.len(), 2048);
            // The receive side is exhausted too: one more frame is refused.
            let mut sealer2 = FrameSealer::new(backend, &[9u8; 32], 0);
            let mut extra = BytesMut::new();
            sealer2.seal(b"x", &mut extra).unwrap();
            assert_eq!(
                opener.open(&extra, &mut plain),
                Err(SecretError::NonceExhausted("receive"))
            );
        }
    }

    #[test]
    fn data_length_above_1024_is_rejected_after_authentication() {
        for &backend in AeadBackend::all() {
            let key = [3u8; 32];
            let cipher = FrameCipher::new(backend, &key);
            let mut frame = vec![0u8; FRAME_PLAINTEXT_SIZE];
            frame[..4].copy_from_slice(&1025u32.to_le_bytes());
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&0u64.to_le_bytes());
            let tag = cipher.seal(nonce, &mut frame);
            frame.extend_from_slice(&tag);
            let mut opener = FrameOpener::new(backend, &key, 0);
            let mut plain = BytesMut::new();
            assert_eq!(
                opener.open(&frame, &mut plain),
                Err(SecretError::FrameDataLength(1025))
            );
            assert_eq!(opener.open(&[0], &mut plain), Err(SecretError::Failed));
            assert_eq!(opener.handle_eof(), Err(SecretError::Failed));
        }
    }
}
