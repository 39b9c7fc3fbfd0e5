//! Runs tmp2p's sans-IO `SecretConnection` over a blocking `TcpStream`: handshake on one
//! thread, then a [`SecretWriter`] and [`SecretReader`] that can live on two threads; and
//! a pair of them through memory ([`in_memory_handshake`]).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use bytes::BytesMut;
use rand_core::CryptoRngCore;
use tmp2p_core::secret::{
    FrameOpener, FrameSealer, SecretConfig, SecretConnection, SecretError, SecretEvent,
};
use tmp2p_core::{NodeKey, PublicKey};

/// Size of the socket reads the helpers make.
pub const READ_CHUNK: usize = 64 * 1024;

fn to_io(e: SecretError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Completes a SecretConnection handshake on `stream`; returns the two halves and the
/// peer's authenticated key.
pub fn handshake(
    mut stream: TcpStream,
    key: &NodeKey,
    rng: &mut impl CryptoRngCore,
    config: SecretConfig,
) -> io::Result<(SecretWriter, SecretReader, PublicKey)> {
    let mut conn = SecretConnection::new(key, rng, config);
    let mut out = BytesMut::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        if conn.poll_transmit(&mut out) {
            stream.write_all(&out)?;
            out.clear();
        }
        if let Some(SecretEvent::Authenticated { .. }) = conn.poll_event() {
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(to_io(
                conn.handle_eof()
                    .err()
                    .unwrap_or(SecretError::EofDuringHandshake),
            ));
        }
        conn.handle_input(&buf[..n]).map_err(to_io)?;
    }
    let parts = conn
        .into_parts()
        .map_err(|_| io::Error::other("handshake incomplete"))?;
    if !parts.transmit.is_empty() {
        stream.write_all(&parts.transmit)?;
    }
    let read_half = stream.try_clone()?;
    Ok((
        SecretWriter {
            stream,
            sealer: parts.sealer,
            // Sized by the first write; nothing is allocated up front for a connection
            // that may never send.
            out: BytesMut::new(),
        },
        SecretReader {
            stream: read_half,
            opener: parts.opener,
            plain: parts.received,
            // The handshake's read buffer carries on as the reader's.
            buf,
        },
        parts.remote,
    ))
}

/// The sending half: seals into one buffer and writes it with one syscall per call.
pub struct SecretWriter {
    stream: TcpStream,
    sealer: FrameSealer,
    out: BytesMut,
}

impl SecretWriter {
    /// Seals and writes all of `data`, in pieces of at most `batch` bytes per write.
    pub fn write_all(&mut self, data: &[u8], batch: usize) -> io::Result<()> {
        for piece in data.chunks(batch.max(1)) {
            self.out.clear();
            self.sealer.seal(piece, &mut self.out).map_err(to_io)?;
            self.stream.write_all(&self.out)?;
        }
        Ok(())
    }

    /// Closes our sending side.
    pub fn shutdown(&self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }
}

/// The receiving half.
pub struct SecretReader {
    stream: TcpStream,
    opener: FrameOpener,
    plain: BytesMut,
    buf: Vec<u8>,
}

impl SecretReader {
    /// Reads until exactly `len` plaintext bytes have arrived and returns them.
    pub fn read_exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.plain.len() < len {
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"));
            }
            self.opener
                .open(&self.buf[..n], &mut self.plain)
                .map_err(to_io)?;
        }
        Ok(self.plain.split_to(len).to_vec())
    }

    /// Reads and discards exactly `len` plaintext bytes (for throughput measurements).
    pub fn discard(&mut self, mut len: usize) -> io::Result<()> {
        loop {
            let take = len.min(self.plain.len());
            let _ = self.plain.split_to(take);
            len -= take;
            if len == 0 {
                return Ok(());
            }
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"));
            }
            self.opener
                .open(&self.buf[..n], &mut self.plain)
                .map_err(to_io)?;
        }
    }
}

/// Both sides of one handshake through memory, on this thread: every byte one machine
/// transmits is fed to the other until both report `Authenticated` (the benches' same-run
/// anchor: the handshake's crypto and framing with no IO).
pub fn in_memory_handshake<R: CryptoRngCore>(
    a_key: &NodeKey,
    b_key: &NodeKey,
    a_rng: &mut R,
    b_rng: &mut R,
) -> Result<(), SecretError> {
    let mut a = SecretConnection::new(a_key, a_rng, SecretConfig::default());
    let mut b = SecretConnection::new(b_key, b_rng, SecretConfig::default());
    let mut wire = BytesMut::new();
    let (mut a_done, mut b_done) = (false, false);
    // Three exchanges suffice (keys, AuthSigs); more means the machines are stuck.
    for _ in 0..4 {
        if a_done && b_done {
            return Ok(());
        }
        wire.clear();
        if a.poll_transmit(&mut wire) {
            b.handle_input(&wire)?;
        }
        wire.clear();
        if b.poll_transmit(&mut wire) {
            a.handle_input(&wire)?;
        }
        a_done |= a.poll_event().is_some();
        b_done |= b.poll_event().is_some();
    }
    if a_done && b_done {
        Ok(())
    } else {
        Err(SecretError::EofDuringHandshake)
    }
}
