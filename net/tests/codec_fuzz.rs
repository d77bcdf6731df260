//! Fuzz-style checks of every decoder, bounded so they run in CI: random bytes and mutated
//! valid frames must never panic; whatever decodes must re-encode to the same bytes (the
//! encoding is canonical); every error must name values that really are in the input.

mod common;

use common::{OwnedFrame, frame};
use proptest::prelude::*;
use squall_net::codec::{
    Auth, BatchView, Close, Credit, DecodeError, Decoded, FrameHeader, FrameType, HEADER_LEN,
    Hello, MAX_CLOSE_REASON, MAX_FRAME_LEN, Needed, decode_body, decode_frame,
};

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Checks that `error`, returned for the frame at the start of `input`, tells the truth
/// about `input`.
fn assert_precise(input: &[u8], max: u32, error: DecodeError) {
    assert!(!error.to_string().is_empty());
    let len = || u32_at(input, 0);
    match error {
        DecodeError::FrameTooShort { len: l, min } => {
            assert_eq!((l, min), (len(), 8));
            assert!(l < 8);
        }
        DecodeError::FrameTooLong { len: l, max: m } => {
            assert_eq!((l, m), (len(), max.min(MAX_FRAME_LEN)));
            assert!(l > m);
        }
        DecodeError::UnalignedLength { len: l } => {
            assert_eq!(l, len());
            assert_ne!(l % 8, 0);
        }
        DecodeError::UnsupportedVersion { found, supported } => {
            assert_eq!((found, supported), (input[4], 1));
            assert_ne!(found, 1);
        }
        DecodeError::UnknownFrameType { found } => {
            assert_eq!(found, input[5]);
            assert!(FrameType::from_byte(found).is_none());
        }
        DecodeError::NonZeroReserved {
            frame,
            offset,
            value,
        } => {
            assert_eq!(FrameType::from_byte(input[5]), Some(frame));
            let found = match offset {
                6 | 10 => u32::from(u16::from_le_bytes([input[offset], input[offset + 1]])),
                _ => u32_at(input, offset),
            };
            assert_eq!(found, value);
            assert_ne!(value, 0);
        }
        DecodeError::BodyLength {
            frame,
            found,
            expected,
        } => {
            assert_eq!(FrameType::from_byte(input[5]), Some(frame));
            assert_eq!(found, len() as usize - HEADER_LEN);
            assert_ne!(found, expected);
        }
        DecodeError::BodyTooShort { frame, found, min } => {
            assert_eq!(FrameType::from_byte(input[5]), Some(frame));
            assert_eq!(found, len() as usize - HEADER_LEN);
            assert!(found < min);
        }
        DecodeError::HelloVersionZero => {
            assert_eq!(&input[8..10], &[0, 0]);
        }
        DecodeError::HelloFrameLimit { found, .. } => {
            assert_eq!(found, u32_at(input, 12));
        }
        DecodeError::TruncatedRecord {
            offset,
            needed,
            available,
            ..
        } => {
            assert_eq!(offset % 8, 0);
            assert_eq!(available, len() as usize - offset);
            assert!(needed > available);
        }
        DecodeError::TrailingBytes { declared, trailing } => {
            assert_eq!(declared, u32_at(input, 8));
            assert!(trailing > 0 && trailing < len() as usize);
        }
        DecodeError::NonZeroPadding { offset, .. } => {
            assert_ne!(input[offset], 0);
            assert!(offset < len() as usize);
        }
        DecodeError::CloseReasonTooLong { len: reason, max } => {
            assert_eq!(reason, u32_at(input, 12));
            assert_eq!(max as usize, MAX_CLOSE_REASON);
        }
        DecodeError::CloseLength {
            reason_len, found, ..
        } => {
            assert_eq!(reason_len, u32_at(input, 12));
            assert_eq!(found, len() as usize - HEADER_LEN);
        }
        DecodeError::CloseReasonNotUtf8 { valid_up_to } => {
            let reason = &input[16..16 + u32_at(input, 12) as usize];
            assert_eq!(
                std::str::from_utf8(reason).unwrap_err().valid_up_to(),
                valid_up_to
            );
        }
        DecodeError::CloseNonZeroPadding { offset } => {
            assert_ne!(input[offset], 0);
        }
    }
}

/// Runs `decode_frame` over `input` as a stream, checking every outcome.
fn check_stream(input: &[u8], max: u32) {
    let mut rest = input;
    loop {
        match decode_frame(rest, max) {
            Ok(Decoded::Frame { frame, len }) => {
                assert!(len <= rest.len() && len >= HEADER_LEN && len % 8 == 0);
                // Canonical: re-encoding gives back the very bytes.
                let mut again = vec![0u8; frame.encoded_len()];
                assert_eq!(frame.encode(&mut again), Ok(len));
                assert_eq!(&again[..], &rest[..len]);
                rest = &rest[len..];
            }
            Ok(Decoded::Incomplete(needed)) => {
                match needed {
                    Needed::AtLeast(n) => assert_eq!(n, 8 - rest.len()),
                    Needed::Exactly(n) => assert_eq!(n, u32_at(rest, 0) as usize - rest.len()),
                }
                return;
            }
            Err(error) => {
                if rest.len() >= 4 {
                    assert_precise(rest, max, error);
                }
                // The header is checked on its own too: it fails with the same error when
                // the error lies in the header.
                if let Err(header_error) = FrameHeader::decode(rest, max) {
                    assert_eq!(header_error, error);
                }
                return;
            }
        }
    }
}

/// Applies one mutation to `bytes`.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    SetWord(prop::sample::Index, u32),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(0),
                Just(u32::MAX),
                Just(MAX_FRAME_LEN + 8),
                any::<u32>()
            ]
        )
            .prop_map(|(i, w)| Mutation::SetWord(i, w)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<prop::sample::Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Set(i, b) => bytes[i.index(len)] = *b,
        Mutation::SetWord(i, w) => {
            // Words land on 4-byte boundaries, where the format keeps its fields.
            let at = i.index(bytes.len()) & !3;
            let end = (at + 4).min(bytes.len());
            bytes[at..end].copy_from_slice(&w.to_le_bytes()[..end - at]);
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Insert(i, extra) => {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let at = i.index(bytes.len());
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
    }
}

/// Each body decoder alone, on arbitrary bodies: no panic; success re-encodes to the same
/// bytes; errors tell the truth.
fn check_bodies(body: &[u8]) {
    let mut frame = vec![0u8; HEADER_LEN];
    frame.extend_from_slice(body);
    let frame_len = u32::try_from(frame.len()).unwrap();
    frame[..4].copy_from_slice(&frame_len.to_le_bytes());
    frame[4] = 1;
    for frame_type in [
        FrameType::Hello,
        FrameType::Auth,
        FrameType::Batch,
        FrameType::Credit,
        FrameType::Heartbeat,
        FrameType::Close,
    ] {
        frame[5] = frame_type as u8;
        let direct = match frame_type {
            FrameType::Hello => Hello::decode_body(body).map(drop),
            FrameType::Auth => Auth::decode_body(body).map(drop),
            FrameType::Batch => BatchView::decode_body(body).map(drop),
            FrameType::Credit => Credit::decode_body(body).map(drop),
            FrameType::Heartbeat => decode_body(frame_type, body).map(drop),
            FrameType::Close => Close::decode_body(body).map(drop),
        };
        match decode_body(frame_type, body) {
            Ok(decoded) => {
                assert!(direct.is_ok());
                let mut again = vec![0u8; decoded.encoded_len()];
                decoded.encode(&mut again).unwrap();
                if frame.len().is_multiple_of(8) {
                    assert_eq!(again, frame);
                }
            }
            Err(error) => {
                assert_eq!(direct, Err(error));
                assert_precise(&frame, MAX_FRAME_LEN, error);
            }
        }
    }
}

proptest! {
    #![proptest_config(common::cases(2000))]

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..300)) {
        check_stream(&input, MAX_FRAME_LEN);
        check_stream(&input, 64 << 10);
        check_bodies(&input);
    }

    #[test]
    fn plausible_headers_with_random_bodies_never_panic(
        frame_type in 0u8..8,
        body in prop::collection::vec(any::<u8>(), 0..200),
        zero_tail in any::<bool>(),
    ) {
        let mut body = body;
        if zero_tail {
            // Zero the second half so reserved fields and padding often pass.
            let half = body.len() / 2;
            body[half..].fill(0);
        }
        let len = (HEADER_LEN + body.len()) as u32;
        let mut input = len.to_le_bytes().to_vec();
        input.extend_from_slice(&[1, frame_type, 0, 0]);
        input.extend_from_slice(&body);
        check_stream(&input, MAX_FRAME_LEN);
        check_bodies(&body);
    }

    #[test]
    fn mutated_frames_never_panic_and_fail_precisely(
        frames in prop::collection::vec(frame(), 1..4),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut input = Vec::new();
        for frame in &frames {
            frame.encode_into(&mut input);
        }
        for mutation in &mutations {
            mutate(&mut input, mutation);
        }
        check_stream(&input, MAX_FRAME_LEN);
        if input.len() > HEADER_LEN {
            check_bodies(&input[HEADER_LEN..]);
        }
    }
}

#[test]
fn batch_with_huge_count_fails_fast_and_precisely() {
    let mut frame = OwnedFrame::Batch(vec![(1, b"abc".to_vec())]).encode();
    frame[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let error = decode_frame(&frame, MAX_FRAME_LEN).unwrap_err();
    assert_eq!(
        error.to_string(),
        "BATCH record 1 at byte 32 needs 8 bytes but only 0 remain in the frame"
    );
}

#[test]
fn close_reason_that_is_not_utf8_is_named() {
    let mut frame = OwnedFrame::Close(0, "abcd".into()).encode();
    frame[18] = 0xff;
    assert_eq!(
        decode_frame(&frame, MAX_FRAME_LEN).unwrap_err().to_string(),
        "CLOSE reason is not UTF-8 after its first 2 bytes"
    );
}

#[test]
fn frame_over_the_announced_limit_names_the_limit() {
    let frame = OwnedFrame::Batch(vec![(1, vec![0; 70 << 10])]).encode();
    assert_eq!(
        decode_frame(&frame, 64 << 10).unwrap_err().to_string(),
        format!("frame length {} exceeds max 65536", frame.len())
    );
}
