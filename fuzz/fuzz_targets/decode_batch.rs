//! Decodes a BATCH body and walks its records; a body that decodes must re-encode to the
//! same bytes, and its records must lie inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use squall_net::codec::{BatchEncoder, BatchView, HEADER_LEN};

fuzz_target!(|body: &[u8]| {
    let Ok(view) = BatchView::decode_body(body) else {
        return;
    };
    let mut rebuilt = vec![0u8; view.frame_len()];
    let mut encoder = BatchEncoder::new(&mut rebuilt).expect("room for the header");
    let mut count = 0;
    for record in view.iter() {
        let start = record.bytes.as_ptr() as usize - body.as_ptr() as usize;
        assert!(start + record.bytes.len() <= body.len());
        encoder
            .push(record.dest_task, record.bytes)
            .expect("the records fit the frame they came from");
        count += 1;
    }
    assert_eq!(count, view.len());
    let len = encoder.finish();
    assert_eq!(&rebuilt[HEADER_LEN..len], body);
});
