//! The SecretConnection machine: ephemeral key exchange, AuthSig exchange, then the frame
//! layer in both directions.

use bytes::{Buf, Bytes, BytesMut};
use ed25519_dalek::{Signer, SigningKey};
use prost::Message;
use rand_core::CryptoRngCore;
use tmp2p_proto::crypto::{PublicKey as ProtoPublicKey, PublicKeySum};
use tmp2p_proto::p2p::AuthSigMessage;
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};

use super::aead::AeadBackend;
use super::frame::{FrameOpener, FrameSealer};
use super::kdf::{derive_secrets, transcript_challenge};
use super::{SecretError, AUTH_SIG_MAX_SIZE, KEY_MESSAGE_SIZE};
use crate::delimited::{peek_complete, DelimitedError};
use crate::key::{NodeKey, PublicKey};

/// The 7 low-order X25519 u-coordinates (little-endian); X25519 ignores bit 255, so they
/// are compared with that bit cleared. The all-zero DH check below catches every one of
/// them as well; this list only names the failure earlier and more precisely.
#[allow(clippy::indexing_slicing)] // const-evaluated: a bad index fails the build, not a run
const LOW_ORDER_POINTS: [[u8; 32]; 7] = {
    let mut p = [[0u8; 32]; 7];
    p[1][0] = 1;
    p[2] = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ];
    p[3] = [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ];
    // p - 1, p, p + 1 with p = 2^255 - 19.
    let mut i = 0;
    while i < 3 {
        let mut v = [0xffu8; 32];
        v[0] = 0xec + i as u8;
        v[31] = 0x7f;
        p[4 + i] = v;
        i += 1;
    }
    p
};

/// Configuration of a SecretConnection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretConfig {
    /// Which ChaCha20-Poly1305 implementation to use.
    pub backend: AeadBackend,
}

/// What the layer above must learn from a SecretConnection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretEvent {
    /// The handshake completed: the peer proved it holds this Ed25519 key.
    Authenticated {
        /// The peer's authenticated long-term key (its NodeId is derived from it).
        remote: PublicKey,
    },
}

enum Phase {
    /// Our key is queued; collecting the peer's 35-byte key message.
    AwaitKey {
        secret: EphemeralSecret,
        message: [u8; KEY_MESSAGE_SIZE],
        have: usize,
    },
    /// Keys derived, our AuthSig queued; waiting for the peer's.
    AwaitAuthSig { challenge: [u8; 32] },
    /// Authenticated; application bytes flow.
    Established,
    /// A fatal error happened; nothing more is accepted.
    Failed,
}

/// A SecretConnection as a sans-IO machine (see the module docs for the call order).
pub struct SecretConnection {
    phase: Phase,
    config: SecretConfig,
    signing: SigningKey,
    local_ephemeral: [u8; 32],
    sealer: Option<FrameSealer>,
    opener: Option<FrameOpener>,
    transmit: BytesMut,
    received: BytesMut,
    event: Option<SecretEvent>,
    remote: Option<PublicKey>,
}

/// The halves of an established connection, for drivers that read and write on
/// different threads.
pub struct EstablishedParts {
    /// Seals our outgoing bytes.
    pub sealer: FrameSealer,
    /// Opens the peer's frames.
    pub opener: FrameOpener,
    /// The peer's authenticated key.
    pub remote: PublicKey,
    /// Decrypted bytes not yet consumed.
    pub received: BytesMut,
    /// Sealed bytes not yet written to the socket: write them before anything the sealer
    /// produces.
    pub transmit: BytesMut,
}

impl SecretConnection {
    /// Starts a handshake as `key`, with a fresh ephemeral X25519 secret drawn from `rng`
    /// (the same RNG output gives the same handshake). Our ephemeral key message is queued
    /// for [`poll_transmit`](Self::poll_transmit) at once.
    pub fn new(key: &NodeKey, rng: &mut impl CryptoRngCore, config: SecretConfig) -> Self {
        let secret = EphemeralSecret::random_from_rng(&mut *rng);
        let local_ephemeral = X25519Public::from(&secret).to_bytes();
        let mut transmit = BytesMut::with_capacity(KEY_MESSAGE_SIZE);
        transmit.extend_from_slice(&[0x22, 0x0a, 0x20]);
        transmit.extend_from_slice(&local_ephemeral);
        SecretConnection {
            phase: Phase::AwaitKey {
                secret,
                message: [0u8; KEY_MESSAGE_SIZE],
                have: 0,
            },
            config,
            signing: key.signing_key().clone(),
            local_ephemeral,
            sealer: None,
            opener: None,
            transmit,
            received: BytesMut::new(),
            event: None,
            remote: None,
        }
    }

    /// Feeds bytes read from the socket, at any split. Every byte is consumed. An error is
    /// fatal: close the connection.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(), SecretError> {
        let result = self.handle_input_inner(input);
        if result.is_err() {
            self.phase = Phase::Failed;
            // A failed machine reports nothing more, even an event queued before the error.
            self.event = None;
        }
        result
    }

    /// The peer closed its side. An error says what was cut short.
    pub fn handle_eof(&self) -> Result<(), SecretError> {
        match (&self.phase, &self.opener) {
            (Phase::Established, Some(opener)) => opener.handle_eof(),
            (Phase::Failed, _) => Err(SecretError::Failed),
            _ => Err(SecretError::EofDuringHandshake),
        }
    }

    /// Moves every pending sealed byte into `out` (without copying when `out` is empty).
    /// Returns whether anything was moved.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        if self.transmit.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut self.transmit);
        } else {
            out.extend_from_slice(&self.transmit);
            self.transmit.clear();
        }
        true
    }

    /// Bytes waiting for [`poll_transmit`](Self::poll_transmit).
    pub fn pending_transmit(&self) -> usize {
        self.transmit.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SecretEvent> {
        self.event.take()
    }

    /// Seals `data` for the peer into the internal transmit buffer. Allowed once the keys
    /// are derived (our AuthSig is always sealed first).
    pub fn send(&mut self, data: &[u8]) -> Result<(), SecretError> {
        self.usable_sealer()?;
        match self.sealer.as_mut() {
            Some(sealer) => sealer.seal(data, &mut self.transmit),
            None => Err(SecretError::NotReady),
        }
    }

    /// Seals `data` straight into the caller's buffer (after any bytes still pending), so a
    /// large write is one pass over memory the caller owns and many frames go out in one
    /// socket write.
    pub fn send_into(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), SecretError> {
        self.usable_sealer()?;
        self.poll_transmit(out);
        match self.sealer.as_mut() {
            Some(sealer) => sealer.seal(data, out),
            None => Err(SecretError::NotReady),
        }
    }

    /// Decrypted bytes from the peer. Holds handshake bytes until
    /// [`SecretEvent::Authenticated`]; after it, the caller consumes from the front
    /// (`split_to`, `advance`) what it has parsed.
    pub fn received(&mut self) -> &mut BytesMut {
        &mut self.received
    }

    /// The peer's authenticated key, once the handshake is complete.
    pub fn remote_public_key(&self) -> Option<PublicKey> {
        self.remote
    }

    /// Whether the handshake has completed.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established)
    }

    /// Our ephemeral X25519 public key for this connection.
    pub fn local_ephemeral_key(&self) -> [u8; 32] {
        self.local_ephemeral
    }

    /// Splits an established connection into its halves. Hands the machine back if the
    /// handshake is not complete.
    pub fn into_parts(self) -> Result<EstablishedParts, Box<Self>> {
        match (self.phase, self.sealer, self.opener, self.remote) {
            (Phase::Established, Some(sealer), Some(opener), Some(remote)) => {
                Ok(EstablishedParts {
                    sealer,
                    opener,
                    remote,
                    received: self.received,
                    transmit: self.transmit,
                })
            }
            (phase, sealer, opener, remote) => Err(Box::new(SecretConnection {
                phase,
                sealer,
                opener,
                remote,
                ..self
            })),
        }
    }

    fn usable_sealer(&mut self) -> Result<&mut FrameSealer, SecretError> {
        if matches!(self.phase, Phase::Failed) {
            return Err(SecretError::Failed);
        }
        self.sealer.as_mut().ok_or(SecretError::NotReady)
    }

    fn handle_input_inner(&mut self, mut input: &[u8]) -> Result<(), SecretError> {
        if let Phase::AwaitKey { message, have, .. } = &mut self.phase {
            let take = KEY_MESSAGE_SIZE.saturating_sub(*have).min(input.len());
            let (now, rest) = input.split_at(take);
            // cannot panic: `have + take <= KEY_MESSAGE_SIZE`.
            let end = *have + take;
            if let Some(slot) = message.get_mut(*have..end) {
                slot.copy_from_slice(now);
            }
            *have = end;
            input = rest;
            check_key_message_prefix(message.get(..end).unwrap_or_default())?;
            if *have < KEY_MESSAGE_SIZE {
                return Ok(());
            }
            self.complete_key_exchange()?;
        }
        match &self.phase {
            Phase::Failed => return Err(SecretError::Failed),
            Phase::AwaitKey { .. } => return Ok(()),
            Phase::AwaitAuthSig { .. } | Phase::Established => {}
        }
        if let Some(opener) = self.opener.as_mut() {
            opener.open(input, &mut self.received)?;
        }
        if let Phase::AwaitAuthSig { challenge } = self.phase {
            self.try_complete_auth(&challenge)?;
        }
        Ok(())
    }

    /// The peer's key message is complete: DH, key schedule, and our AuthSig.
    fn complete_key_exchange(&mut self) -> Result<(), SecretError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Failed);
        let Phase::AwaitKey {
            secret, message, ..
        } = phase
        else {
            return Err(SecretError::Failed);
        };
        let mut remote = [0u8; 32];
        remote.copy_from_slice(&message[3..]);
        if is_low_order(&remote) {
            return Err(SecretError::LowOrderKey);
        }
        let shared = shared_secret(secret, remote)?;
        let dh = shared.as_bytes();
        let local_is_least = self.local_ephemeral <= remote;
        let (lower, upper) = if local_is_least {
            (&self.local_ephemeral, &remote)
        } else {
            (&remote, &self.local_ephemeral)
        };
        let challenge = transcript_challenge(lower, upper, dh);
        let secrets = derive_secrets(dh, local_is_least);
        let mut sealer = FrameSealer::new(self.config.backend, &secrets.send_key, 0);
        self.opener = Some(FrameOpener::new(self.config.backend, &secrets.recv_key, 0));

        let signature = self.signing.sign(&challenge);
        let auth = AuthSigMessage {
            pub_key: Some(ProtoPublicKey {
                sum: Some(PublicKeySum::Ed25519(Bytes::copy_from_slice(
                    self.signing.verifying_key().as_bytes(),
                ))),
            }),
            sig: Bytes::copy_from_slice(&signature.to_bytes()),
        };
        sealer.seal(&auth.encode_length_delimited_to_vec(), &mut self.transmit)?;
        self.sealer = Some(sealer);
        self.phase = Phase::AwaitAuthSig { challenge };
        Ok(())
    }

    /// Parses and verifies the peer's AuthSig once it has fully arrived.
    fn try_complete_auth(&mut self, challenge: &[u8; 32]) -> Result<(), SecretError> {
        let (prefix, len) = match peek_complete(&self.received, AUTH_SIG_MAX_SIZE) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(()),
            Err(DelimitedError::TooLarge { len, .. }) => {
                return Err(SecretError::AuthSigTooLarge(len))
            }
            Err(DelimitedError::BadPrefix) => return Err(SecretError::AuthSigLengthPrefix),
        };
        self.received.advance(prefix);
        let body = self.received.split_to(len);
        let remote = parse_auth_sig(body.freeze(), challenge)?;
        self.remote = Some(remote);
        self.event = Some(SecretEvent::Authenticated { remote });
        self.phase = Phase::Established;
        Ok(())
    }
}

/// Checks what has arrived of the 35-byte key message, byte by byte, so a wrong prefix is
/// refused before the rest arrives.
fn check_key_message_prefix(got: &[u8]) -> Result<(), SecretError> {
    if let Some(&len) = got.first() {
        if len & 0x80 != 0 {
            return Err(SecretError::KeyMessageLengthOversized);
        }
        if len != 0x22 {
            return Err(SecretError::KeyMessageLength(len));
        }
    }
    let tag = [got.get(1).copied(), got.get(2).copied()];
    match tag {
        [Some(0x0a), Some(0x20)] | [Some(0x0a), None] | [None, None] => Ok(()),
        [a, b] => Err(SecretError::KeyMessageMalformed([
            a.unwrap_or(0),
            b.unwrap_or(0),
        ])),
    }
}

/// X25519 with the mandatory all-zero check (it catches every low-order input, including
/// the bit-255 variants a list misses).
fn shared_secret(
    secret: EphemeralSecret,
    remote: [u8; 32],
) -> Result<x25519_dalek::SharedSecret, SecretError> {
    let shared = secret.diffie_hellman(&X25519Public::from(remote));
    if shared.was_contributory() {
        Ok(shared)
    } else {
        Err(SecretError::ZeroSharedSecret)
    }
}

fn is_low_order(point: &[u8; 32]) -> bool {
    let mut masked = *point;
    masked[31] &= 0x7f;
    LOW_ORDER_POINTS.contains(&masked)
}

/// Decodes an AuthSig message body (its length prefix removed, at most
/// `AUTH_SIG_MAX_SIZE` bytes) and verifies it over `challenge`: the peer's key on success.
pub(crate) fn parse_auth_sig(body: Bytes, challenge: &[u8; 32]) -> Result<PublicKey, SecretError> {
    let auth =
        AuthSigMessage::decode(body).map_err(|e| SecretError::AuthSigDecode(e.to_string()))?;
    verify_auth_sig(&auth, challenge)
}

/// Checks the AuthSig: an Ed25519 key, a 64-byte signature that verifies over the
/// challenge. Verification uses ZIP-215 rules (`ed25519-consensus`), as CometBFT does
/// (curve25519-voi), so we accept exactly the signatures real nodes accept.
fn verify_auth_sig(auth: &AuthSigMessage, challenge: &[u8; 32]) -> Result<PublicKey, SecretError> {
    let key_bytes = match auth.pub_key.as_ref().and_then(|k| k.sum.as_ref()) {
        Some(PublicKeySum::Ed25519(bytes)) => bytes,
        Some(PublicKeySum::Secp256k1(_)) => {
            return Err(SecretError::UnsupportedKeyType("secp256k1"))
        }
        None => return Err(SecretError::UnsupportedKeyType("missing or unknown")),
    };
    let key: [u8; 32] = key_bytes
        .as_ref()
        .try_into()
        .map_err(|_| SecretError::InvalidPublicKey(key_bytes.len()))?;
    let verifying = ed25519_consensus::VerificationKey::try_from(key)
        .map_err(|_| SecretError::InvalidPublicKey(32))?;
    let signature: [u8; 64] = auth
        .sig
        .as_ref()
        .try_into()
        .map_err(|_| SecretError::SignatureLength(auth.sig.len()))?;
    verifying
        .verify(&ed25519_consensus::Signature::from(signature), challenge)
        .map_err(|_| SecretError::BadSignature)?;
    Ok(PublicKey(key))
}

#[cfg(test)]
mod tests;
