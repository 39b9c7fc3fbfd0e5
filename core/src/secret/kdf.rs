//! The key schedule: the Merlin transcript that yields the signed challenge, and the
//! HKDF-SHA256 expansion that yields the two frame keys (protocol.md §1.4, §1.5).

use hkdf::Hkdf;
use merlin::Transcript;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

const TRANSCRIPT_LABEL: &[u8] = b"TENDERMINT_SECRET_CONNECTION_TRANSCRIPT_HASH";
const LOWER_KEY_LABEL: &[u8] = b"EPHEMERAL_LOWER_PUBLIC_KEY";
const UPPER_KEY_LABEL: &[u8] = b"EPHEMERAL_UPPER_PUBLIC_KEY";
const DH_LABEL: &[u8] = b"DH_SECRET";
const CHALLENGE_LABEL: &[u8] = b"SECRET_CONNECTION_MAC";
const HKDF_INFO: &[u8] = b"TENDERMINT_SECRET_CONNECTION_KEY_AND_CHALLENGE_GEN";

/// The frame keys of one side, and the unused third HKDF block.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DerivedSecrets {
    /// Key that opens the peer's frames.
    pub recv_key: [u8; 32],
    /// Key that seals our frames.
    pub send_key: [u8; 32],
    /// `okm[64..96]`: the pre-v0.33 challenge, computed for parity with the golden file
    /// and otherwise unused.
    pub legacy_challenge: [u8; 32],
}

/// HKDF-SHA256 over the DH secret (no salt, 96 bytes), split by which side's ephemeral key
/// sorts lower: the lower side receives with the first 32 bytes.
pub fn derive_secrets(dh_secret: &[u8; 32], local_is_least: bool) -> DerivedSecrets {
    let mut okm = [0u8; 96];
    // 96 bytes is far below HKDF-SHA256's 8160-byte output limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(None, dh_secret).expand(HKDF_INFO, &mut okm);
    let mut first = [0u8; 32];
    let mut second = [0u8; 32];
    let mut legacy_challenge = [0u8; 32];
    first.copy_from_slice(&okm[..32]);
    second.copy_from_slice(&okm[32..64]);
    legacy_challenge.copy_from_slice(&okm[64..]);
    okm.zeroize();
    let (recv_key, send_key) = if local_is_least {
        (first, second)
    } else {
        (second, first)
    };
    DerivedSecrets {
        recv_key,
        send_key,
        legacy_challenge,
    }
}

/// The 32-byte challenge both sides sign: a Merlin transcript over the sorted ephemeral
/// keys and the DH secret.
pub fn transcript_challenge(lower: &[u8; 32], upper: &[u8; 32], dh_secret: &[u8; 32]) -> [u8; 32] {
    let mut transcript = Transcript::new(TRANSCRIPT_LABEL);
    transcript.append_message(LOWER_KEY_LABEL, lower);
    transcript.append_message(UPPER_KEY_LABEL, upper);
    transcript.append_message(DH_LABEL, dh_secret);
    let mut challenge = [0u8; 32];
    transcript.challenge_bytes(CHALLENGE_LABEL, &mut challenge);
    challenge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merlin_reference_vector() {
        let mut t = Transcript::new(b"test protocol");
        t.append_message(b"some label", b"some data");
        let mut out = [0u8; 32];
        t.challenge_bytes(b"challenge", &mut out);
        assert_eq!(
            hex::encode(out),
            "d5a21972d0d5fe320c0d263fac7fffb8145aa640af6e9bca177c03c7efcf0615"
        );
    }
}
