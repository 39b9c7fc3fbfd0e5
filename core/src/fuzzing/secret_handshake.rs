//! Bodies that drive a whole SecretConnection: a hostile peer from the first byte, and an
//! honest peer's key exchange followed by fuzz bytes in the AuthSig and frame path.

use bytes::{Bytes, BytesMut};
use ed25519_dalek::Signer;
use prost::Message;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tmp2p_proto::crypto::{PublicKey as ProtoPublicKey, PublicKeySum};
use tmp2p_proto::p2p::AuthSigMessage;
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};

use super::{
    chunks, pick_backend, HIGH_EPHEMERAL_SEED, LOCAL_IDENTITY_SEED, LOW_EPHEMERAL_SEED,
    PEER_IDENTITY_SEED,
};
use crate::delimited::{peek_complete, DelimitedError};
use crate::key::{NodeKey, PublicKey};
use crate::secret::{
    derive_secrets, transcript_challenge, AeadBackend, FrameOpener, FrameSealer, SecretConfig,
    SecretConnection, SecretError, SecretEvent, AUTH_SIG_MAX_SIZE, FRAME_SEALED_SIZE,
    KEY_MESSAGE_SIZE,
};

/// The peer's inbound stream (after one split-schedule byte) to a machine whose ephemeral
/// key starts `00 00` ([`LOW_EPHEMERAL_SEED`]). Layout: `[split, stream...]`.
pub fn secret_handshake_low(data: &[u8]) {
    hostile_handshake(LOW_EPHEMERAL_SEED, data);
}

/// As [`secret_handshake_low`], for a machine whose ephemeral key starts `ff ff`
/// ([`HIGH_EPHEMERAL_SEED`]).
pub fn secret_handshake_high(data: &[u8]) {
    hostile_handshake(HIGH_EPHEMERAL_SEED, data);
}

/// A real peer completes the key exchange, so the fuzz bytes land in the AuthSig and frame
/// path. Layout: `[control, split, payload...]`; control bit 0 picks which side holds the
/// low ephemeral key (0: us), bit 1 the AEAD backend, bits 2–3 the mode:
/// - 0: `payload` is the plaintext the peer seals (its AuthSig, then application data);
/// - 1: the peer's valid AuthSig, then `payload` sealed as application data;
/// - 2: `payload` is raw ciphertext right after the peer's key message;
/// - 3: the peer's valid sealed AuthSig frame, then `payload` as raw ciphertext.
pub fn secret_handshake_valid_prefix(data: &[u8]) {
    let (control, split, payload) = match data {
        [control, split, payload @ ..] => (*control, *split, payload),
        _ => (0, 0, data),
    };
    let (local_seed, peer_seed) = if control & 1 == 0 {
        (LOW_EPHEMERAL_SEED, HIGH_EPHEMERAL_SEED)
    } else {
        (HIGH_EPHEMERAL_SEED, LOW_EPHEMERAL_SEED)
    };
    let backend = pick_backend(control >> 1);
    let mut harness = Harness::new(local_seed, backend);
    let mut peer = HonestPeer::new(peer_seed, &harness.conn.local_ephemeral_key(), backend);

    let mode = (control >> 2) & 3;
    let mut stream = peer.key_message.to_vec();
    match mode {
        0 => peer.seal_in_chunks(payload, split.rotate_left(4), &mut stream),
        1 => {
            let auth = peer.auth_sig.clone();
            peer.seal_in_chunks(&auth, 0, &mut stream);
            peer.seal_in_chunks(payload, split.rotate_left(4), &mut stream);
        }
        2 => stream.extend_from_slice(payload),
        _ => {
            let auth = peer.auth_sig.clone();
            peer.seal_in_chunks(&auth, 0, &mut stream);
            stream.extend_from_slice(payload);
        }
    }
    harness.feed_all(&stream, split);
    let eof = harness.conn.handle_eof();

    match mode {
        0 => expect_plaintext_outcome(&mut harness, payload, &eof),
        1 => {
            assert_eq!(harness.error, None, "a valid session failed");
            assert_eq!(harness.remote, Some(peer.public), "wrong or no peer key");
            assert_eq!(&harness.conn.received()[..], payload, "plaintext differs");
            assert_eq!(eof, Ok(()));
        }
        2 => {
            if payload.len() < FRAME_SEALED_SIZE {
                assert_eq!(harness.error, None, "error before any complete frame");
                assert_eq!(eof, Err(SecretError::EofDuringHandshake));
            }
            expect_frame_or_auth_error(&harness.error);
        }
        _ => {
            if payload.len() < FRAME_SEALED_SIZE {
                assert_eq!(harness.error, None, "error before any complete raw frame");
                assert_eq!(harness.remote, Some(peer.public), "valid AuthSig refused");
                let partial = payload.len();
                let expected = if partial == 0 {
                    Ok(())
                } else {
                    Err(SecretError::TruncatedFrame(partial))
                };
                assert_eq!(eof, expected);
            }
            match harness.error {
                None | Some(SecretError::FrameDataLength(_)) => {}
                Some(SecretError::Decrypt { nonce }) => assert!(nonce >= 1, "AuthSig refused"),
                Some(other) => panic!("unexpected error after a valid AuthSig: {other:?}"),
            }
        }
    }
    if harness.remote.is_some() && harness.error.is_none() {
        harness.check_send_reaches(&mut peer.opener);
    }
}

/// The body of the two hostile-handshake targets.
fn hostile_handshake(ephemeral_seed: u64, data: &[u8]) {
    let (split, stream) = match data {
        [split, stream @ ..] => (*split, stream),
        [] => (0, data),
    };
    let mut harness = Harness::new(ephemeral_seed, AeadBackend::default());
    harness.feed_all(stream, split);
    let eof = harness.conn.handle_eof();
    // Without our ephemeral secret nobody can seal a frame we open, so the peer can fail
    // only on its key message or on the first frame, and can never authenticate.
    assert_eq!(
        harness.remote, None,
        "authenticated a peer that has no keys"
    );
    match &harness.error {
        None => assert_eq!(eof, Err(SecretError::EofDuringHandshake)),
        Some(
            SecretError::KeyMessageLength(_)
            | SecretError::KeyMessageLengthOversized
            | SecretError::KeyMessageMalformed(_)
            | SecretError::LowOrderKey
            | SecretError::ZeroSharedSecret
            | SecretError::Decrypt { nonce: 0 },
        ) => {}
        Some(other) => panic!("unexpected handshake error: {other:?}"),
    }
    if harness.error.is_none() {
        let complete_frame = stream.len() >= KEY_MESSAGE_SIZE + FRAME_SEALED_SIZE;
        assert!(!complete_frame, "a whole bogus frame was accepted");
    }
}

/// The mode-0 oracle of [`secret_handshake_valid_prefix`]: `payload` is the decrypted
/// stream; work out from it alone what the machine must have done.
fn expect_plaintext_outcome(harness: &mut Harness, payload: &[u8], eof: &Result<(), SecretError>) {
    let error = harness.error.clone();
    match peek_complete(payload, AUTH_SIG_MAX_SIZE) {
        Err(DelimitedError::TooLarge { len, .. }) => {
            assert_eq!(error, Some(SecretError::AuthSigTooLarge(len)));
        }
        Err(DelimitedError::BadPrefix) => {
            assert_eq!(error, Some(SecretError::AuthSigLengthPrefix));
        }
        Ok(None) => {
            assert_eq!(error, None, "failed on an incomplete AuthSig");
            assert_eq!(eof, &Err(SecretError::EofDuringHandshake));
        }
        Ok(Some((prefix, len))) => {
            let body = payload.get(prefix..prefix.saturating_add(len));
            let decoded = body.map(AuthSigMessage::decode);
            match (decoded, &error, harness.remote) {
                (Some(Err(_)), Some(SecretError::AuthSigDecode(_)), None) => {}
                (Some(Ok(_)), Some(e), None) => assert!(
                    matches!(
                        e,
                        SecretError::UnsupportedKeyType(_)
                            | SecretError::InvalidPublicKey(_)
                            | SecretError::SignatureLength(_)
                            | SecretError::BadSignature
                    ),
                    "decodable AuthSig refused with {e:?}"
                ),
                (Some(Ok(auth)), None, Some(remote)) => {
                    let key = match auth.pub_key.and_then(|k| k.sum) {
                        Some(PublicKeySum::Ed25519(key)) => key,
                        other => panic!("authenticated a non-Ed25519 key {other:?}"),
                    };
                    assert_eq!(&key[..], remote.as_bytes(), "remote is not the signed key");
                    let rest = payload
                        .get(prefix.saturating_add(len)..)
                        .unwrap_or_default();
                    assert_eq!(&harness.conn.received()[..], rest, "application data");
                    assert_eq!(eof, &Ok(()));
                }
                other => panic!("AuthSig outcome does not match its bytes: {other:?}"),
            }
        }
    }
}

/// Raw ciphertext after the key exchange may fail on a frame or, if it happens to hold a
/// valid frame, on the AuthSig; never on anything earlier.
fn expect_frame_or_auth_error(error: &Option<SecretError>) {
    if let Some(
        SecretError::KeyMessageLength(_)
        | SecretError::KeyMessageLengthOversized
        | SecretError::KeyMessageMalformed(_)
        | SecretError::LowOrderKey
        | SecretError::ZeroSharedSecret
        | SecretError::Failed
        | SecretError::NotReady,
    ) = error
    {
        panic!("key-exchange error after a valid key exchange: {error:?}");
    }
}

/// A SecretConnection under test plus what it has done so far, checking the invariants
/// that hold for every input after every call.
struct Harness {
    conn: SecretConnection,
    error: Option<SecretError>,
    remote: Option<PublicKey>,
    wire_out: Vec<u8>,
}

impl Harness {
    fn new(ephemeral_seed: u64, backend: AeadBackend) -> Self {
        let key = NodeKey::from_seed(LOCAL_IDENTITY_SEED);
        let mut rng = ChaCha20Rng::seed_from_u64(ephemeral_seed);
        let conn = SecretConnection::new(&key, &mut rng, SecretConfig { backend });
        let mut harness = Harness {
            conn,
            error: None,
            remote: None,
            wire_out: Vec::new(),
        };
        harness.drain();
        let mut expected = vec![0x22, 0x0a, 0x20];
        expected.extend_from_slice(&harness.conn.local_ephemeral_key());
        assert_eq!(harness.wire_out, expected, "our key message");
        harness
    }

    fn feed_all(&mut self, stream: &[u8], split: u8) {
        let result = self.conn.handle_input(&[]);
        self.after(result);
        for chunk in chunks(stream, split) {
            let result = self.conn.handle_input(chunk);
            self.after(result);
        }
    }

    fn after(&mut self, result: Result<(), SecretError>) {
        match (&self.error, result) {
            (None, Ok(())) => {}
            (None, Err(error)) => {
                assert!(!error.to_string().is_empty());
                self.error = Some(error);
            }
            (Some(_), result) => assert_eq!(result, Err(SecretError::Failed), "recovered"),
        }
        self.drain();
        if self.error.is_some() {
            assert!(!self.conn.is_established(), "established after an error");
            assert_eq!(self.conn.handle_input(&[]), Err(SecretError::Failed));
            assert_eq!(self.conn.handle_eof(), Err(SecretError::Failed));
            assert_eq!(self.conn.send(b"x"), Err(SecretError::Failed));
            assert_eq!(self.conn.pending_transmit(), 0, "sealed after an error");
            assert_eq!(self.conn.poll_event(), None, "event after an error");
        }
    }

    /// Takes events and outgoing bytes; we only ever send the key message and one AuthSig.
    fn drain(&mut self) {
        while let Some(SecretEvent::Authenticated { remote }) = self.conn.poll_event() {
            assert_eq!(self.remote, None, "second Authenticated event");
            assert!(self.conn.is_established());
            assert_eq!(self.conn.remote_public_key(), Some(remote));
            self.remote = Some(remote);
        }
        let mut out = BytesMut::new();
        self.conn.poll_transmit(&mut out);
        self.wire_out.extend_from_slice(&out);
        let sent = self.wire_out.len();
        assert!(
            sent == KEY_MESSAGE_SIZE || sent == KEY_MESSAGE_SIZE + FRAME_SEALED_SIZE,
            "sent {sent} bytes during the handshake"
        );
    }

    /// After authentication, a `send` reaches the honest peer intact (after our AuthSig).
    fn check_send_reaches(&mut self, peer_opener: &mut FrameOpener) {
        let mut out = BytesMut::new();
        assert_eq!(self.conn.send_into(b"fuzz", &mut out), Ok(()));
        let mut wire = self
            .wire_out
            .get(KEY_MESSAGE_SIZE..)
            .unwrap_or_default()
            .to_vec();
        wire.extend_from_slice(&out);
        let mut plain = BytesMut::new();
        assert_eq!(peer_opener.open(&wire, &mut plain), Ok(()));
        assert!(plain.ends_with(b"fuzz"), "peer cannot read what we sent");
    }
}

/// The honest side of [`secret_handshake_valid_prefix`]: its key message, its sealer and
/// opener for the session keys, and a valid signed AuthSig.
struct HonestPeer {
    key_message: [u8; KEY_MESSAGE_SIZE],
    sealer: FrameSealer,
    opener: FrameOpener,
    auth_sig: Vec<u8>,
    public: PublicKey,
}

impl HonestPeer {
    fn new(ephemeral_seed: u64, remote_ephemeral: &[u8; 32], backend: AeadBackend) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(ephemeral_seed);
        let secret = EphemeralSecret::random_from_rng(&mut rng);
        let ephemeral = X25519Public::from(&secret).to_bytes();
        let dh = secret
            .diffie_hellman(&X25519Public::from(*remote_ephemeral))
            .to_bytes();
        let peer_is_least = ephemeral <= *remote_ephemeral;
        let (lower, upper) = if peer_is_least {
            (&ephemeral, remote_ephemeral)
        } else {
            (remote_ephemeral, &ephemeral)
        };
        let challenge = transcript_challenge(lower, upper, &dh);
        let secrets = derive_secrets(&dh, peer_is_least);
        let identity = NodeKey::from_seed(PEER_IDENTITY_SEED);
        let signing = identity.signing_key();
        let auth = AuthSigMessage {
            pub_key: Some(ProtoPublicKey {
                sum: Some(PublicKeySum::Ed25519(Bytes::copy_from_slice(
                    signing.verifying_key().as_bytes(),
                ))),
            }),
            sig: Bytes::copy_from_slice(&signing.sign(&challenge).to_bytes()),
        };
        let mut key_message = [0u8; KEY_MESSAGE_SIZE];
        key_message[..3].copy_from_slice(&[0x22, 0x0a, 0x20]);
        key_message[3..].copy_from_slice(&ephemeral);
        HonestPeer {
            key_message,
            sealer: FrameSealer::new(backend, &secrets.send_key, 0),
            opener: FrameOpener::new(backend, &secrets.recv_key, 0),
            auth_sig: auth.encode_length_delimited_to_vec(),
            public: identity.public_key(),
        }
    }

    /// Seals `plaintext` in one `seal` call per chunk of `split`, appending to `out`.
    fn seal_in_chunks(&mut self, plaintext: &[u8], split: u8, out: &mut Vec<u8>) {
        let mut wire = BytesMut::new();
        for chunk in chunks(plaintext, split) {
            assert_eq!(self.sealer.seal(chunk, &mut wire), Ok(()));
        }
        out.extend_from_slice(&wire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_give_the_documented_ephemeral_keys() {
        let low = Harness::new(LOW_EPHEMERAL_SEED, AeadBackend::default());
        let high = Harness::new(HIGH_EPHEMERAL_SEED, AeadBackend::default());
        assert_eq!(
            low.conn.local_ephemeral_key()[..4],
            [0x00, 0x00, 0x9e, 0x80]
        );
        assert_eq!(
            high.conn.local_ephemeral_key()[..4],
            [0xff, 0xff, 0x9d, 0x34]
        );
    }

    #[test]
    fn valid_session_modes_authenticate_both_key_orders_and_backends() {
        for control in [0b0100u8, 0b0101, 0b0110, 0b0111] {
            // Mode 1 with a 3000-byte payload: asserts the round trip inside.
            let mut input = vec![control, 7];
            input.extend((0..3000u32).map(|i| (i * 7) as u8));
            secret_handshake_valid_prefix(&input);
        }
    }
}
