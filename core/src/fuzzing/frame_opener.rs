//! The frame-layer body: a FrameOpener fed raw ciphertext, or frames from the matching
//! sealer with one mutation, on every AEAD backend with the outcomes compared.

use bytes::BytesMut;

use super::{chunks, FRAME_KEY};

/// Frames [`frame_opener`] seals per input at most: enough for every mutation (the swap and
/// the drop need two, exhaustion from `u64::MAX - 1` needs three) while keeping each
/// execution cheap.
const MAX_SEALED_FRAMES: usize = 8;
use crate::secret::{
    AeadBackend, FrameOpener, FrameSealer, SecretError, DATA_MAX_SIZE, FRAME_SEALED_SIZE,
};

/// Arbitrary bytes into a [`FrameOpener`] keyed with [`FRAME_KEY`], run on every compiled
/// backend with the results compared. Layout: `[control, split, param_lo, param_hi,
/// payload...]`. Control bit 0 selects the mode: 0 feeds `payload` as raw ciphertext; 1
/// seals `payload` with the matching sealer (in chunks cut by `split`), applies the
/// mutation in bits 1–3 (none, flip one bit, truncate, replay, swap, drop the first frame;
/// position from the `param` bytes) and asserts the round trip or the exact typed error.
/// Bit 4 starts both nonce counters at `u64::MAX - 1` to reach nonce exhaustion. At most
/// eight frames are sealed, so a payload cut into one-byte chunks costs a
/// few frames rather than one 1 044-byte frame per input byte.
pub fn frame_opener(data: &[u8]) {
    let (control, split, param, payload) = match data {
        [control, split, lo, hi, payload @ ..] => {
            (*control, *split, u16::from_le_bytes([*lo, *hi]), payload)
        }
        _ => (0, 0, 0, data),
    };
    let first_nonce = if control & 0x10 == 0 { 0 } else { u64::MAX - 1 };
    let mut outcomes = Vec::new();
    for &backend in AeadBackend::all() {
        let outcome = if control & 1 == 0 {
            raw_frames(backend, first_nonce, split, payload)
        } else {
            sealed_frames(backend, first_nonce, control >> 1, split, param, payload)
        };
        outcomes.push(outcome);
    }
    assert!(
        outcomes.windows(2).all(|pair| pair[0] == pair[1]),
        "AEAD backends disagree: {outcomes:?}"
    );
}

/// What one backend made of one input, compared across backends.
#[derive(Debug, PartialEq, Eq)]
struct OpenOutcome {
    wire: Vec<u8>,
    error: Option<SecretError>,
    plaintext: Vec<u8>,
    eof: Result<(), SecretError>,
}

fn raw_frames(backend: AeadBackend, first_nonce: u64, split: u8, wire: &[u8]) -> OpenOutcome {
    let mut opener = FrameOpener::new(backend, &FRAME_KEY, first_nonce);
    let (error, plaintext) = open_checked(&mut opener, wire, split);
    let opened = match &error {
        None => wire.len() / FRAME_SEALED_SIZE,
        Some(SecretError::Decrypt { nonce }) => nonce_offset(first_nonce, *nonce),
        Some(SecretError::FrameDataLength(_)) | Some(SecretError::NonceExhausted(_)) => {
            plaintext.len().div_ceil(DATA_MAX_SIZE)
        }
        Some(other) => panic!("opener failed with a non-frame error: {other:?}"),
    };
    assert!(plaintext.len() <= opened.saturating_mul(DATA_MAX_SIZE));
    if error.is_none() {
        assert_eq!(opener.partial_len(), wire.len() % FRAME_SEALED_SIZE);
    }
    OpenOutcome {
        wire: Vec::new(),
        error,
        plaintext,
        eof: opener.handle_eof(),
    }
}

fn sealed_frames(
    backend: AeadBackend,
    first_nonce: u64,
    mutation: u8,
    split: u8,
    param: u16,
    payload: &[u8],
) -> OpenOutcome {
    let mut sealer = FrameSealer::new(backend, &FRAME_KEY, first_nonce);
    let mut wire = BytesMut::new();
    let mut frames: Vec<&[u8]> = Vec::new();
    for chunk in chunks(payload, split.rotate_left(4)) {
        if frames.len() >= MAX_SEALED_FRAMES {
            break;
        }
        let before = wire.len();
        match sealer.seal(chunk, &mut wire) {
            Ok(()) => frames.extend(chunk.chunks(DATA_MAX_SIZE)),
            Err(error) => {
                assert_eq!(error, SecretError::NonceExhausted("send"));
                assert_eq!(wire.len(), before, "a refused seal wrote bytes");
                assert!(first_nonce > 0, "nonces ran out from 0");
            }
        }
    }
    assert_eq!(wire.len(), frames.len().saturating_mul(FRAME_SEALED_SIZE));
    let sealed = wire.to_vec();
    let count = frames.len();
    let position = usize::from(param);
    let data_before = |frame: usize| {
        frames
            .iter()
            .take(frame)
            .flat_map(|f| f.iter().copied())
            .collect::<Vec<u8>>()
    };
    let next_nonce_error = |used: usize| match u64::try_from(used)
        .ok()
        .and_then(|used| first_nonce.checked_add(used))
    {
        Some(nonce) => SecretError::Decrypt { nonce },
        None => SecretError::NonceExhausted("receive"),
    };

    // Each arm: the bytes to open and the (error, plaintext, eof) they must give.
    let (input, expected_error, expected_plain, expected_eof) = match mutation & 7 {
        1 if !sealed.is_empty() => {
            let at = position % sealed.len();
            let mut input = sealed.clone();
            if let Some(byte) = input.get_mut(at) {
                *byte ^= 1 << (param >> 13);
            }
            let frame = at / FRAME_SEALED_SIZE;
            (
                input,
                Some(next_nonce_error(frame)),
                data_before(frame),
                None,
            )
        }
        2 => {
            let cut = position % (sealed.len() + 1);
            let complete = cut / FRAME_SEALED_SIZE;
            let eof = match cut % FRAME_SEALED_SIZE {
                0 => Ok(()),
                have => Err(SecretError::TruncatedFrame(have)),
            };
            let input = sealed.get(..cut).unwrap_or(&sealed).to_vec();
            (input, None, data_before(complete), Some(eof))
        }
        3 if count >= 1 => {
            let mut input = sealed.clone();
            input.extend_from_slice(sealed.get(..FRAME_SEALED_SIZE).unwrap_or_default());
            (
                input,
                Some(next_nonce_error(count)),
                data_before(count),
                None,
            )
        }
        4 if count >= 2 => {
            let mut input = sealed.clone();
            if let (Some(first), Some(second)) = (
                sealed.get(..FRAME_SEALED_SIZE),
                sealed.get(FRAME_SEALED_SIZE..2 * FRAME_SEALED_SIZE),
            ) {
                let swapped: Vec<u8> = second.iter().chain(first).copied().collect();
                input.splice(..2 * FRAME_SEALED_SIZE, swapped);
            }
            (input, Some(next_nonce_error(0)), Vec::new(), None)
        }
        5 if count >= 2 => {
            let input = sealed.get(FRAME_SEALED_SIZE..).unwrap_or_default().to_vec();
            (input, Some(next_nonce_error(0)), Vec::new(), None)
        }
        _ => (sealed.clone(), None, data_before(count), Some(Ok(()))),
    };

    let mut opener = FrameOpener::new(backend, &FRAME_KEY, first_nonce);
    let (error, plaintext) = open_checked(&mut opener, &input, split);
    assert_eq!(
        error, expected_error,
        "mutation {mutation} of {count} frames"
    );
    assert_eq!(plaintext, expected_plain, "mutation {mutation} plaintext");
    let eof = opener.handle_eof();
    if let Some(expected_eof) = expected_eof {
        assert_eq!(eof, expected_eof);
    }
    OpenOutcome {
        wire: sealed,
        error,
        plaintext,
        eof,
    }
}

/// Feeds `wire` to `opener` at the splits of `split`; checks that after an error every
/// further call fails with [`SecretError::Failed`] and yields no plaintext.
fn open_checked(
    opener: &mut FrameOpener,
    wire: &[u8],
    split: u8,
) -> (Option<SecretError>, Vec<u8>) {
    let mut plaintext = BytesMut::new();
    let mut error = None;
    for chunk in chunks(wire, split) {
        let before = plaintext.len();
        let result = opener.open(chunk, &mut plaintext);
        match (&error, result) {
            (None, Ok(())) => {}
            (None, Err(first)) => error = Some(first),
            (Some(_), result) => {
                assert_eq!(result, Err(SecretError::Failed), "opener recovered");
                assert_eq!(plaintext.len(), before, "plaintext after an error");
            }
        }
    }
    if error.is_some() {
        assert_eq!(opener.open(&[0], &mut plaintext), Err(SecretError::Failed));
    }
    (error, plaintext.to_vec())
}

/// Which nonce offset from `first` the counter `nonce` is (saturated).
fn nonce_offset(first: u64, nonce: u64) -> usize {
    usize::try_from(nonce.saturating_sub(first)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_mutation_holds_its_oracle() {
        let payload: Vec<u8> = (0..2100u32).map(|i| (i * 13) as u8).collect();
        for control in (1..=0x1fu8).step_by(2) {
            for split in [0u8, 1, 200] {
                let mut input = vec![control, split, 0x34, 0x92];
                input.extend_from_slice(&payload);
                frame_opener(&input);
            }
        }
    }
}
