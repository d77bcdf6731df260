//! Reads arbitrary bytes as nimbus reads a client connection: a length-prefixed request
//! frame and its proof frame, then decodes and checks the request. Nothing may panic, and a
//! request that decodes must survive its JSON form unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use squall_cluster::protocol::{MAX_REQUEST_FRAME, decode_request, read_frame};
use squall_cluster::secret::PROOF_LEN;

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    let Ok(body) = read_frame(&mut stream, "fuzz", MAX_REQUEST_FRAME) else {
        return;
    };
    let _ = read_frame(&mut stream, "fuzz", PROOF_LEN);
    let Ok(request) = decode_request(&body) else {
        return;
    };
    let _ = (request.payload_len(), request.needs_leader());
    let json = serde_json::to_vec(&request).expect("requests serialize");
    assert_eq!(
        decode_request(&json).expect("a checked request checks again"),
        request
    );
});
