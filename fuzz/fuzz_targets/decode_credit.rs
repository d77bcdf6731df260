//! Decodes a CREDIT body; a body that decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use squall_net::codec::{Credit, FrameType};

fuzz_target!(|body: &[u8]| {
    squall_net_fuzz::check_body(FrameType::Credit, body, Credit::decode_body(body));
});
