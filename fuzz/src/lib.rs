//! Checks shared by the fuzz targets.

use squall_net::codec::{DecodeError, FrameType, HEADER_LEN, decode_body};

/// Decodes `body` as a `frame_type` body, through the generic entry point, and compares with
/// `direct`, the outcome of that type's own decoder; a body that decodes must re-encode to
/// the same bytes.
pub fn check_body<T>(frame_type: FrameType, body: &[u8], direct: Result<T, DecodeError>) {
    let via_frame = decode_body(frame_type, body);
    assert_eq!(direct.as_ref().err(), via_frame.as_ref().err());
    if let Ok(frame) = via_frame {
        let mut again = vec![0u8; frame.encoded_len()];
        frame
            .encode(&mut again)
            .expect("the buffer is the frame's size");
        assert_eq!(&again[HEADER_LEN..], body);
    }
}
