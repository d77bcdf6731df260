//! Decodes a byte stream frame after frame. Whatever decodes must re-encode to the same
//! bytes; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use squall_net::codec::{Decoded, MAX_FRAME_LEN, decode_frame};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limit, so both the protocol's and a smaller one are covered.
    let (limit, mut rest) = match data.split_first() {
        Some((&pick, rest)) if pick & 1 == 1 => (64 << 10, rest),
        Some((_, rest)) => (MAX_FRAME_LEN, rest),
        None => return,
    };
    while let Ok(Decoded::Frame { frame, len }) = decode_frame(rest, limit) {
        assert!(len <= rest.len() && len % 8 == 0);
        let mut again = vec![0u8; frame.encoded_len()];
        assert_eq!(frame.encode(&mut again), Ok(len));
        assert_eq!(&again[..], &rest[..len]);
        rest = &rest[len..];
    }
});
