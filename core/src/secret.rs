//! SecretConnection: the authenticated, encrypted byte stream every Tendermint / CometBFT
//! peer connection starts with (protocol.md §1), as a sans-IO machine.
//!
//! [`SecretConnection`] runs the handshake (X25519 key exchange, Merlin challenge, HKDF key
//! schedule, Ed25519 AuthSig exchange) and then seals and opens ChaCha20-Poly1305 frames of
//! exactly 1044 bytes. Bytes from the socket go in with [`SecretConnection::handle_input`]
//! at any split; bytes for the socket come out of [`SecretConnection::poll_transmit`];
//! decrypted bytes collect in [`SecretConnection::received`]. After the handshake the
//! machine can be split into a [`FrameSealer`] and a [`FrameOpener`] that run on different
//! threads.
//!
//! Call order, for a driver:
//! 1. [`SecretConnection::new`] queues our ephemeral key at once (never wait for the peer's).
//! 2. Loop: write whatever [`SecretConnection::poll_transmit`] yields; feed every byte read
//!    to [`SecretConnection::handle_input`]; after each input, drain
//!    [`SecretConnection::poll_event`]. An `Err` from any call is fatal: close the socket.
//! 3. After [`SecretEvent::Authenticated`], [`SecretConnection::send`] seals application
//!    bytes and [`SecretConnection::received`] holds what the peer sent.

mod aead;
mod connection;
mod frame;
mod kdf;

pub use aead::AeadBackend;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use connection::parse_auth_sig;
pub use connection::{SecretConfig, SecretConnection, SecretEvent};
pub use frame::{FrameOpener, FrameSealer};
pub use kdf::{derive_secrets, transcript_challenge, DerivedSecrets};

/// Bytes of application data one frame carries at most.
pub const DATA_MAX_SIZE: usize = 1024;
/// Bytes of the little-endian data-length field at the start of each frame.
pub const DATA_LEN_SIZE: usize = 4;
/// Bytes of a frame before sealing: length field and zero-padded data.
pub const FRAME_PLAINTEXT_SIZE: usize = DATA_LEN_SIZE + DATA_MAX_SIZE;
/// Bytes of the Poly1305 tag.
pub const TAG_SIZE: usize = 16;
/// Bytes of every sealed frame on the wire.
pub const FRAME_SEALED_SIZE: usize = FRAME_PLAINTEXT_SIZE + TAG_SIZE;
/// Bytes of the ephemeral-key message: uvarint 34, then `BytesValue{value: key}`.
pub const KEY_MESSAGE_SIZE: usize = 35;
/// Largest AuthSig message (after its length prefix) we accept. An Ed25519 AuthSig is
/// 102 bytes; Go reads up to 1 MiB, but nothing above one frame can be a valid Ed25519
/// AuthSig unless it is padded with unknown fields, which no implementation sends.
pub const AUTH_SIG_MAX_SIZE: usize = DATA_MAX_SIZE;

/// Everything that can go wrong in a SecretConnection. Every variant is fatal for the
/// connection that produced it, and for nothing else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The ephemeral-key message's length prefix is not 34.
    #[error("ephemeral key message length is {0}, expected 34")]
    KeyMessageLength(u8),
    /// The ephemeral-key message's length prefix is a multi-byte uvarint (≥ 128).
    #[error("ephemeral key message length prefix is 128 or more, expected 34")]
    KeyMessageLengthOversized,
    /// The 34 bytes after the prefix are not `BytesValue{value: <32 bytes>}` (`0a 20 ...`).
    #[error("ephemeral key message is not a BytesValue holding 32 bytes (starts {0:02x?})")]
    KeyMessageMalformed([u8; 2]),
    /// The peer's ephemeral key is one of the low-order X25519 points (bit 255 ignored).
    #[error("peer's ephemeral key is a low-order point")]
    LowOrderKey,
    /// The X25519 shared secret is all zeros.
    #[error("X25519 shared secret is all zero")]
    ZeroSharedSecret,
    /// A frame failed authentication: corrupted, replayed, reordered or wrong keys.
    #[error("frame {nonce} failed to decrypt (corrupted, replayed, reordered or wrong key)")]
    Decrypt {
        /// The receive counter at which it failed.
        nonce: u64,
    },
    /// A frame's data-length field exceeds 1024.
    #[error("frame data length {0} exceeds {DATA_MAX_SIZE}")]
    FrameDataLength(u32),
    /// The nonce counter of one direction is used up; the connection must close.
    #[error("nonce counter exhausted in the {0} direction")]
    NonceExhausted(&'static str),
    /// The AuthSig message's length prefix is malformed or above the limit.
    #[error("AuthSig message length {0} is above the limit of {AUTH_SIG_MAX_SIZE}")]
    AuthSigTooLarge(u64),
    /// The AuthSig length prefix is not a valid uvarint.
    #[error("AuthSig length prefix is not a valid uvarint")]
    AuthSigLengthPrefix,
    /// The AuthSig message is not valid protobuf.
    #[error("AuthSig message is not valid protobuf: {0}")]
    AuthSigDecode(String),
    /// The AuthSig carries no public key, or one that is not Ed25519.
    #[error("peer's public key is {0}, only Ed25519 is accepted")]
    UnsupportedKeyType(&'static str),
    /// The Ed25519 key in the AuthSig is not 32 bytes or not a valid point.
    #[error("peer's Ed25519 public key is invalid ({0} bytes)")]
    InvalidPublicKey(usize),
    /// The signature is not 64 bytes.
    #[error("challenge signature is {0} bytes, expected 64")]
    SignatureLength(usize),
    /// The signature does not verify over the challenge.
    #[error("challenge signature verification failed")]
    BadSignature,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({0} of 1044 bytes received)")]
    TruncatedFrame(usize),
    /// The stream ended before the handshake completed.
    #[error("stream ended during the handshake")]
    EofDuringHandshake,
    /// `send` was called before the handshake derived the keys.
    #[error("cannot send application data before the key exchange")]
    NotReady,
    /// The machine already failed; the connection must be closed.
    #[error("connection already failed")]
    Failed,
}
