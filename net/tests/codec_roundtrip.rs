//! Round-trip properties: every frame type decodes to what was encoded, from one buffer or
//! from a stream cut at arbitrary places.

mod common;

use common::{OwnedFrame, frame, hello, records};
use proptest::prelude::*;
use squall_net::codec::{
    BatchEncoder, Close, CloseCode, Credit, Decoded, Frame, MAX_FRAME_LEN, Needed, decode_frame,
};

fn decode_one(bytes: &[u8]) -> Frame<'_> {
    match decode_frame(bytes, MAX_FRAME_LEN) {
        Ok(Decoded::Frame { frame, len }) => {
            assert_eq!(len, bytes.len(), "the frame takes all its bytes");
            frame
        }
        other => panic!("expected a whole frame, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(common::cases(512))]

    #[test]
    fn hello_round_trips(hello in hello()) {
        let bytes = OwnedFrame::Hello(hello).encode();
        prop_assert_eq!(bytes.len(), 80);
        prop_assert_eq!(decode_one(&bytes), Frame::Hello(hello));
    }

    #[test]
    fn auth_round_trips(proof in any::<[u8; 32]>()) {
        let owned = OwnedFrame::Auth(proof);
        let bytes = owned.encode();
        prop_assert_eq!(bytes.len(), 40);
        prop_assert!(owned.matches(&decode_one(&bytes)));
    }

    #[test]
    fn batch_round_trips(records in records()) {
        let owned = OwnedFrame::Batch(records);
        let bytes = owned.encode();
        let frame = decode_one(&bytes);
        prop_assert!(owned.matches(&frame));
        let Frame::Batch(view) = frame else { unreachable!() };
        prop_assert_eq!(view.frame_len(), bytes.len());
        for record in view.iter() {
            // Every record's bytes start 8-byte aligned relative to the frame.
            let offset = record.bytes.as_ptr() as usize - bytes.as_ptr() as usize;
            prop_assert_eq!(offset % 8, 0);
        }
    }

    #[test]
    fn batch_filled_in_place_round_trips(
        records in records(),
        slack in prop::collection::vec(0usize..16, 12),
    ) {
        // `push_with` reserving more than it uses gives the same frame as `push`.
        let mut buf = vec![0x55u8; 1 << 16];
        let mut batch = BatchEncoder::new(&mut buf).unwrap();
        for ((dest, record), extra) in records.iter().zip(slack.iter().cycle()) {
            let used = batch
                .push_with(*dest, record.len() + extra, |out| {
                    out[..record.len()].copy_from_slice(record);
                    record.len()
                })
                .unwrap();
            prop_assert_eq!(used, record.len());
        }
        let len = batch.finish();
        let expected = OwnedFrame::Batch(records).encode();
        prop_assert_eq!(&buf[..len], &expected[..]);
    }

    #[test]
    fn credit_round_trips(limit in any::<u64>()) {
        let bytes = OwnedFrame::Credit(limit).encode();
        prop_assert_eq!(decode_one(&bytes), Frame::Credit(Credit { limit }));
    }

    #[test]
    fn close_round_trips(code in any::<u32>(), reason in ".{0,256}") {
        let bytes = OwnedFrame::Close(code, reason.clone()).encode();
        prop_assert_eq!(bytes.len() % 8, 0);
        prop_assert_eq!(
            decode_one(&bytes),
            Frame::Close(Close { code: CloseCode(code), reason: &reason })
        );
    }

    #[test]
    fn frames_decode_from_a_stream_cut_anywhere(
        frames in prop::collection::vec(frame(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            frame.encode_into(&mut stream);
        }
        // Feed the stream in pieces, as reads from a socket would deliver it.
        let mut ends: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        ends.push(stream.len());
        ends.sort_unstable();
        let mut decoded = 0;
        let mut start = 0;
        for end in ends {
            loop {
                match decode_frame(&stream[start..end], MAX_FRAME_LEN).unwrap() {
                    Decoded::Frame { frame, len } => {
                        prop_assert!(frames[decoded].matches(&frame));
                        decoded += 1;
                        start += len;
                    }
                    Decoded::Incomplete(needed) => {
                        let missing = stream.len() - end;
                        match needed {
                            Needed::Exactly(n) => prop_assert!(n <= missing || end == stream.len()),
                            Needed::AtLeast(n) => prop_assert!((1..=8).contains(&n)),
                        }
                        break;
                    }
                }
            }
        }
        prop_assert_eq!(decoded, frames.len());
        prop_assert_eq!(start, stream.len());
    }
}

#[test]
fn empty_batch_is_a_valid_frame() {
    let bytes = OwnedFrame::Batch(Vec::new()).encode();
    assert_eq!(bytes.len(), 16);
    let Frame::Batch(view) = decode_one(&bytes) else {
        panic!("a batch")
    };
    assert!(view.is_empty());
}
