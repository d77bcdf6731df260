//! Feeds arbitrary subprocess output, line by line, to the multi-lang framer and decodes
//! every message it completes as a command and as a handshake reply. Nothing may panic, and
//! an emitted tuple must convert back to JSON that reads as the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use squall_core::tuple::FieldEncoder;
use squall_multilang::ShellCommand;
use squall_multilang::framing::Framer;
use squall_multilang::protocol::{decode_command, decode_pid};
use squall_multilang::values::{tuple_from_json, write_value_json};

fuzz_target!(|data: &[u8]| {
    let mut framer = Framer::new(64 << 10);
    for line in data.split_inclusive(|&byte| byte == b'\n') {
        let Ok(Some(message)) = framer.push_line(line) else {
            continue;
        };
        let _ = decode_pid(&message);
        let Ok(ShellCommand::Emit(emit)) = decode_command(&message) else {
            continue;
        };
        // Values that came from JSON go back to JSON (bytes never come from JSON), and the
        // JSON reads as the same values.
        let mut encoder = FieldEncoder::default();
        encoder.encode(&emit.tuple);
        let mut json = b"[".to_vec();
        for index in 0..encoder.field_count() {
            if index > 0 {
                json.push(b',');
            }
            write_value_json(&mut json, encoder.value(index))
                .expect("JSON values have a JSON form");
        }
        json.push(b']');
        let text = std::str::from_utf8(&json).expect("JSON is UTF-8");
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_str(text).expect("written JSON parses");
        assert_eq!(
            tuple_from_json(&raw).expect("written JSON reads back"),
            emit.tuple
        );
    }
});
