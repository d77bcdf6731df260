//! Reads an arbitrary record as its tuples, plain or packed, through every accessor.
//! Nothing may panic; the accessors must agree with each other; a tuple that validates must
//! re-encode to the bytes of its record alone (`TupleRef::to_record`), and a plain record
//! to its own bytes (but for the header bytes that count packed tuples).
#![no_main]

use libfuzzer_sys::fuzz_target;
use squall_core::tuple::{FieldError, TupleRef, encode_record};
use squall_core::value::{OwnedValue, ValueRef};

/// Equal values, floats compared bit for bit (a NaN is not equal to itself).
fn same(a: Result<ValueRef<'_>, FieldError>, b: ValueRef<'_>) -> bool {
    match (a, b) {
        (Ok(ValueRef::F64(a)), ValueRef::F64(b)) => a.to_bits() == b.to_bits(),
        (a, b) => a == Ok(b),
    }
}

fuzz_target!(|record: &[u8]| {
    let Ok(members) = TupleRef::members(record) else {
        assert!(TupleRef::parse(record).is_err());
        return;
    };
    let packed = members.is_packed();
    assert_eq!(TupleRef::parse(record).is_ok(), !packed);
    for tuple in members {
        check(tuple, (!packed).then_some(record));
    }
});

/// Checks one tuple; `record` is its record when it came alone in one.
fn check(tuple: TupleRef<'_>, record: Option<&[u8]>) {
    let _ = (tuple.dest_task(), tuple.source_task(), tuple.stream_id());
    let anchors: Vec<(u64, u64)> = tuple.anchors().iter().collect();
    assert_eq!(anchors.len(), tuple.anchors().len());
    let _ = format!("{tuple:?}");
    // The iterator, the indexed getters and the raw field bytes agree.
    let mut fields = Vec::new();
    for (index, field) in tuple.fields().enumerate() {
        let Ok(value) = field else {
            assert!(tuple.get(index).is_err());
            break;
        };
        assert!(same(tuple.get(index), value));
        let bytes = tuple.field_bytes(index).expect("a decoded field has bytes");
        assert_eq!(bytes[0], value.value_type() as u8);
        match value {
            ValueRef::U64(v) => assert_eq!(tuple.get_u64(index), Ok(v)),
            ValueRef::I64(v) => assert_eq!(tuple.get_i64(index), Ok(v)),
            ValueRef::Bool(v) => assert_eq!(tuple.get_bool(index), Ok(v)),
            ValueRef::Str(v) => assert_eq!(tuple.get_str(index), Ok(v)),
            ValueRef::Bytes(v) => assert_eq!(tuple.get_bytes(index), Ok(v)),
            _ => assert!(tuple.get_u64(index).is_err()),
        }
        fields.push(value.to_owned_value());
    }
    let _ = tuple.get(tuple.field_count());
    if tuple.validate().is_err() {
        return;
    }
    assert_eq!(fields.len(), tuple.field_count());
    let mut again = Vec::new();
    encode_record::<OwnedValue>(
        &mut again,
        tuple.dest_task(),
        tuple.source_task(),
        tuple.stream_id(),
        &anchors,
        &fields,
    );
    assert_eq!(again, tuple.to_record());
    if let Some(record) = record {
        assert_eq!(again[..14], record[..14]);
        assert_eq!(again[16..], record[16..]);
    }
}
