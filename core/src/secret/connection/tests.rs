//! Vectors, hostile inputs and split-invariance properties of the SecretConnection machine.

use super::*;
use crate::secret::{FrameSealer, FRAME_SEALED_SIZE};
use quickcheck::{quickcheck, TestResult};
use serde_json::Value;

/// An RNG that plays back fixed bytes, then zeros: injects the vectors' ephemeral secrets.
struct FixedRng(Vec<u8>);
impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest.iter_mut() {
            *d = if self.0.is_empty() {
                0
            } else {
                self.0.remove(0)
            };
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for FixedRng {}

fn vectors() -> Value {
    let text = include_str!("../../../../testdata/session_vectors.json");
    serde_json::from_str(text).unwrap()
}

fn hexv(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn arr32(v: &Value) -> [u8; 32] {
    hexv(v).try_into().unwrap()
}

fn node(v: &Value, name: &str, backend: AeadBackend) -> SecretConnection {
    let n = &v["nodes"][name];
    let key = NodeKey::from_seed(arr32(&n["ed25519_seed"]));
    let mut rng = FixedRng(hexv(&n["x25519_eph_priv_unclamped"]));
    SecretConnection::new(&key, &mut rng, SecretConfig { backend })
}

fn take(conn: &mut SecretConnection) -> Vec<u8> {
    let mut out = BytesMut::new();
    conn.poll_transmit(&mut out);
    out.to_vec()
}

/// Runs two machines against each other in memory until both are established.
fn pair(seed_a: u8, seed_b: u8, backend: AeadBackend) -> (SecretConnection, SecretConnection) {
    let mut rng_a = FixedRng(vec![seed_a.wrapping_add(100); 32]);
    let mut rng_b = FixedRng(vec![seed_b.wrapping_add(200); 32]);
    let mut a = SecretConnection::new(
        &NodeKey::from_seed([seed_a; 32]),
        &mut rng_a,
        SecretConfig { backend },
    );
    let mut b = SecretConnection::new(
        &NodeKey::from_seed([seed_b; 32]),
        &mut rng_b,
        SecretConfig { backend },
    );
    for _ in 0..4 {
        let to_b = take(&mut a);
        let to_a = take(&mut b);
        b.handle_input(&to_b).unwrap();
        a.handle_input(&to_a).unwrap();
    }
    assert!(a.is_established() && b.is_established());
    (a, b)
}

#[test]
fn session_vectors_reproduced_byte_for_byte_for_both_nodes() {
    let v = vectors();
    for &backend in AeadBackend::all() {
        for (me, peer) in [("A", "B"), ("B", "A")] {
            let mine = &v["nodes"][me];
            let theirs = &v["nodes"][peer];
            let mut conn = node(&v, me, backend);
            assert_eq!(
                take(&mut conn),
                hexv(&mine["wire_eph_msg"]),
                "{me} key message"
            );
            conn.handle_input(&hexv(&theirs["wire_eph_msg"])).unwrap();
            assert_eq!(
                take(&mut conn),
                hexv(&mine["auth_sig_sealed_frame_nonce0"]),
                "{me} sealed AuthSig"
            );
            // The peer's AuthSig, fed one byte at a time.
            for byte in hexv(&theirs["auth_sig_sealed_frame_nonce0"]) {
                assert!(conn.poll_event().is_none());
                conn.handle_input(&[byte]).unwrap();
            }
            let remote = PublicKey(arr32(&theirs["ed25519_pub"]));
            assert_eq!(
                conn.poll_event(),
                Some(SecretEvent::Authenticated { remote })
            );
            assert_eq!(
                remote.node_id().to_string(),
                theirs["node_id"].as_str().unwrap()
            );
            conn.send(&hexv(&mine["node_info_plaintext_delimited"]))
                .unwrap();
            assert_eq!(
                take(&mut conn),
                hexv(&mine["node_info_sealed_frame_nonce1"]),
                "{me} sealed NodeInfo"
            );
            conn.handle_input(&hexv(&theirs["node_info_sealed_frame_nonce1"]))
                .unwrap();
            assert_eq!(
                conn.received().split().to_vec(),
                hexv(&theirs["node_info_plaintext_delimited"])
            );
            if me == "A" {
                let stream = &v["mconn_stream_from_A"];
                assert_eq!(stream["first_nonce"], 2);
                let mut out = BytesMut::new();
                conn.send_into(&hexv(&stream["plaintext_stream"]), &mut out)
                    .unwrap();
                assert_eq!(out.to_vec(), hexv(&stream["sealed_frames_concat"]));
            } else {
                // B opens A's packet stream.
                let stream = &v["mconn_stream_from_A"];
                conn.handle_input(&hexv(&stream["sealed_frames_concat"]))
                    .unwrap();
                assert_eq!(
                    conn.received().split().to_vec(),
                    hexv(&stream["plaintext_stream"])
                );
            }
        }
    }
}

#[test]
fn key_schedule_matches_shared_vector_values() {
    let v = vectors();
    let shared = &v["shared"];
    let dh = arr32(&shared["dh_secret"]);
    assert_eq!(
        transcript_challenge(
            &arr32(&shared["eph_lower"]),
            &arr32(&shared["eph_upper"]),
            &dh
        ),
        arr32(&shared["challenge"])
    );
    for name in ["A", "B"] {
        let n = &v["nodes"][name];
        let secrets = derive_secrets(&dh, n["loc_is_least"].as_bool().unwrap());
        assert_eq!(secrets.recv_key, arr32(&n["recv_key"]));
        assert_eq!(secrets.send_key, arr32(&n["send_key"]));
        let okm = hexv(&shared["hkdf_okm_96"]);
        assert_eq!(&secrets.legacy_challenge[..], &okm[64..]);
    }
}

fn fresh(backend: AeadBackend) -> SecretConnection {
    let mut rng = FixedRng(vec![7; 32]);
    SecretConnection::new(
        &NodeKey::from_seed([1; 32]),
        &mut rng,
        SecretConfig { backend },
    )
}

#[test]
fn hostile_key_messages() {
    let mut key_msg = vec![0x22, 0x0a, 0x20];
    key_msg.extend_from_slice(&[9u8; 32]);
    let cases: Vec<(Vec<u8>, SecretError)> = vec![
        (vec![0x21], SecretError::KeyMessageLength(0x21)),
        (vec![0x23], SecretError::KeyMessageLength(0x23)),
        // Amino v0.33 form: `21 20 <32>`.
        (vec![0x21, 0x20], SecretError::KeyMessageLength(0x21)),
        (
            vec![0x80, 0x80, 0x40],
            SecretError::KeyMessageLengthOversized,
        ),
        (vec![0xff], SecretError::KeyMessageLengthOversized),
        (
            vec![0x22, 0x12],
            SecretError::KeyMessageMalformed([0x12, 0]),
        ),
        (
            vec![0x22, 0x0a, 0x1f],
            SecretError::KeyMessageMalformed([0x0a, 0x1f]),
        ),
        (
            vec![0x22, 0xff, 0xff],
            SecretError::KeyMessageMalformed([0xff, 0xff]),
        ),
    ];
    for &backend in AeadBackend::all() {
        for (input, expected) in &cases {
            let mut conn = fresh(backend);
            assert_eq!(
                conn.handle_input(input).as_ref(),
                Err(expected),
                "{input:02x?}"
            );
            assert_eq!(conn.handle_input(&key_msg), Err(SecretError::Failed));
        }
    }
}

#[test]
fn every_low_order_point_and_its_bit_255_twin_is_refused() {
    let text = include_str!("../../../../testdata/x25519_low_order_points.json");
    let v: Value = serde_json::from_str(text).unwrap();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 7);
    for p in points {
        for field in ["point", "same_point_with_bit255_set"] {
            let point = hexv(&p[field]);
            let mut msg = vec![0x22, 0x0a, 0x20];
            msg.extend_from_slice(&point);
            let mut conn = fresh(AeadBackend::default());
            assert_eq!(
                conn.handle_input(&msg),
                Err(SecretError::LowOrderKey),
                "{field}"
            );
            // And the DH check alone (without the list) refuses it too.
            let secret = EphemeralSecret::random_from_rng(FixedRng(vec![5; 32]));
            assert!(matches!(
                shared_secret(secret, point.clone().try_into().unwrap()),
                Err(SecretError::ZeroSharedSecret)
            ));
        }
    }
}

/// Builds A's side up to the point where it waits for B's AuthSig, and hands back B's
/// send key so a test can forge what B sends.
fn awaiting_auth(backend: AeadBackend) -> (SecretConnection, FrameSealer, [u8; 32]) {
    let v = vectors();
    let mut a = node(&v, "A", backend);
    a.handle_input(&hexv(&v["nodes"]["B"]["wire_eph_msg"]))
        .unwrap();
    let b_sealer = FrameSealer::new(backend, &arr32(&v["nodes"]["B"]["send_key"]), 0);
    (a, b_sealer, arr32(&v["shared"]["challenge"]))
}

fn auth_bytes(key: Option<PublicKeySum>, sig: Vec<u8>) -> Vec<u8> {
    AuthSigMessage {
        pub_key: key.map(|sum| ProtoPublicKey { sum: Some(sum) }),
        sig: sig.into(),
    }
    .encode_length_delimited_to_vec()
}

#[test]
fn hostile_auth_sig_messages() {
    let b_key = NodeKey::from_seed(arr32(&vectors()["nodes"]["B"]["ed25519_seed"]));
    let b_pub = Bytes::copy_from_slice(&b_key.public_key().0);
    for &backend in AeadBackend::all() {
        let (_, _, challenge) = awaiting_auth(backend);
        let good_sig = b_key.signing_key().sign(&challenge).to_bytes().to_vec();
        let wrong_sig = b_key
            .signing_key()
            .sign(b"not the challenge")
            .to_bytes()
            .to_vec();
        let cases: Vec<(Vec<u8>, SecretError)> = vec![
            (
                auth_bytes(Some(PublicKeySum::Ed25519(b_pub.clone())), wrong_sig),
                SecretError::BadSignature,
            ),
            (
                auth_bytes(
                    Some(PublicKeySum::Secp256k1(vec![2u8; 33].into())),
                    good_sig.clone(),
                ),
                SecretError::UnsupportedKeyType("secp256k1"),
            ),
            (
                auth_bytes(None, good_sig.clone()),
                SecretError::UnsupportedKeyType("missing or unknown"),
            ),
            (
                auth_bytes(
                    Some(PublicKeySum::Ed25519(vec![1u8; 31].into())),
                    good_sig.clone(),
                ),
                SecretError::InvalidPublicKey(31),
            ),
            (
                auth_bytes(
                    Some(PublicKeySum::Ed25519(b_pub.clone())),
                    good_sig[..63].to_vec(),
                ),
                SecretError::SignatureLength(63),
            ),
            (vec![0x80, 0x10], SecretError::AuthSigTooLarge(2048)),
            (vec![0xff; 11], SecretError::AuthSigLengthPrefix),
        ];
        for (plaintext, expected) in cases {
            let (mut a, mut b_sealer, _) = awaiting_auth(backend);
            let mut wire = BytesMut::new();
            b_sealer.seal(&plaintext, &mut wire).unwrap();
            assert_eq!(a.handle_input(&wire), Err(expected));
            assert!(!a.is_established());
        }
        // Garbage protobuf: a field with wire type 7 does not exist.
        let (mut a, mut b_sealer, _) = awaiting_auth(backend);
        let mut wire = BytesMut::new();
        b_sealer.seal(&[0x03, 0x0f, 0xff, 0xff], &mut wire).unwrap();
        assert!(matches!(
            a.handle_input(&wire),
            Err(SecretError::AuthSigDecode(_))
        ));
        // And the honest message is accepted, as a control.
        let (mut a, mut b_sealer, _) = awaiting_auth(backend);
        let mut wire = BytesMut::new();
        let honest = auth_bytes(Some(PublicKeySum::Ed25519(b_pub.clone())), good_sig);
        b_sealer.seal(&honest, &mut wire).unwrap();
        a.handle_input(&wire).unwrap();
        assert!(a.is_established());
    }
}

#[test]
fn frame_attacks_after_establishment() {
    for &backend in AeadBackend::all() {
        // Replay.
        let (mut a, mut b) = pair(1, 2, backend);
        b.send(b"once").unwrap();
        let frame = take(&mut b);
        a.handle_input(&frame).unwrap();
        assert_eq!(&a.received()[..], b"once");
        assert_eq!(
            a.handle_input(&frame),
            Err(SecretError::Decrypt { nonce: 2 })
        );
        // Reorder.
        let (mut a, mut b) = pair(1, 2, backend);
        b.send(b"first").unwrap();
        b.send(b"second").unwrap();
        let both = take(&mut b);
        let (first, second) = both.split_at(FRAME_SEALED_SIZE);
        assert_eq!(
            a.handle_input(second),
            Err(SecretError::Decrypt { nonce: 1 })
        );
        assert_eq!(a.handle_input(first), Err(SecretError::Failed));
        // Truncated frame, then EOF.
        let (mut a, mut b) = pair(1, 2, backend);
        b.send(b"cut").unwrap();
        let frame = take(&mut b);
        a.handle_input(&frame[..500]).unwrap();
        assert_eq!(a.handle_eof(), Err(SecretError::TruncatedFrame(500)));
        // EOF mid-handshake.
        assert_eq!(
            fresh(backend).handle_eof(),
            Err(SecretError::EofDuringHandshake)
        );
        // An Authenticated event not yet polled is dropped when a later input fails.
        let v = vectors();
        let mut a = node(&v, "A", backend);
        let mut input = hexv(&v["nodes"]["B"]["wire_eph_msg"]);
        input.extend(hexv(&v["nodes"]["B"]["auth_sig_sealed_frame_nonce0"]));
        a.handle_input(&input).unwrap();
        assert!(a.handle_input(&[0u8; FRAME_SEALED_SIZE]).is_err());
        assert_eq!(a.poll_event(), None);
        // Data sent before the key exchange is refused.
        assert_eq!(fresh(backend).send(b"x"), Err(SecretError::NotReady));
    }
}

#[test]
fn split_halves_keep_the_stream() {
    let (a, mut b) = pair(3, 4, AeadBackend::default());
    let mut parts = a.into_parts().ok().unwrap();
    let mut wire = BytesMut::new();
    parts.sealer.seal(b"from a half", &mut wire).unwrap();
    b.handle_input(&wire).unwrap();
    assert_eq!(&b.received()[..], b"from a half");
    b.send(b"to a half").unwrap();
    let mut plain = BytesMut::new();
    parts.opener.open(&take(&mut b), &mut plain).unwrap();
    assert_eq!(&plain[..], b"to a half");
    assert!(fresh(AeadBackend::default()).into_parts().is_err());
}

/// Feeds `input` to a machine in the chunk sizes `splits` (cycled).
fn feed_split(
    conn: &mut SecretConnection,
    input: &[u8],
    splits: &[usize],
) -> Result<(), SecretError> {
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = splits
            .get(i % splits.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        let (now, later) = rest.split_at(n.min(rest.len()));
        conn.handle_input(now)?;
        rest = later;
        i += 1;
    }
    Ok(())
}

quickcheck! {
    /// Any split of B's whole inbound stream (key, AuthSig, data) gives A the same
    /// plaintext and the same event.
    fn any_split_same_plaintext_and_event(payload: Vec<u8>, splits: Vec<usize>) -> bool {
        let splits: Vec<usize> = splits.into_iter().map(|s| s % 2100 + 1).collect();
        let (_, mut b) = pair(5, 6, AeadBackend::default());
        let mut rng_b = FixedRng(vec![206; 32]);
        let mut b_fresh = SecretConnection::new(&NodeKey::from_seed([6; 32]), &mut rng_b, SecretConfig::default());
        let mut rng_a = FixedRng(vec![105; 32]);
        let mut a = SecretConnection::new(&NodeKey::from_seed([5; 32]), &mut rng_a, SecretConfig::default());
        // Handshake B against A's messages to produce B's complete outbound stream.
        let mut stream = take(&mut b_fresh);
        b_fresh.handle_input(&take(&mut a)).unwrap();
        stream.extend(take(&mut b_fresh));
        b_fresh.send(&payload).unwrap();
        stream.extend(take(&mut b_fresh));
        drop(b.send(b""));
        feed_split(&mut a, &stream, &splits).unwrap();
        let event = a.poll_event();
        event == Some(SecretEvent::Authenticated { remote: NodeKey::from_seed([6; 32]).public_key() })
            && a.received()[..] == payload[..]
    }

    /// Flipping any bit of any sealed frame is detected.
    fn any_bit_flip_detected(payload: Vec<u8>, position: usize, bit: u8) -> TestResult {
        if payload.is_empty() {
            return TestResult::discard();
        }
        let (mut a, mut b) = pair(7, 8, AeadBackend::default());
        b.send(&payload).unwrap();
        let mut wire = take(&mut b);
        let at = position % wire.len();
        wire[at] ^= 1 << (bit % 8);
        TestResult::from_bool(matches!(a.handle_input(&wire), Err(SecretError::Decrypt { .. })))
    }

    /// Arbitrary payloads round-trip on every backend, in both directions.
    fn payloads_round_trip(x: Vec<u8>, y: Vec<u8>) -> bool {
        AeadBackend::all().iter().all(|&backend| {
            let (mut a, mut b) = pair(9, 10, backend);
            a.send(&x).unwrap();
            b.send(&y).unwrap();
            let (to_b, to_a) = (take(&mut a), take(&mut b));
            b.handle_input(&to_b).unwrap();
            a.handle_input(&to_a).unwrap();
            a.received()[..] == y[..] && b.received()[..] == x[..]
        })
    }
}
