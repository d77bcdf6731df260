//! The tuple encoding: golden records quoted from `docs/tuple-encoding.md`, round trips of
//! random tuples, and random bytes that must never make a reader panic.

use proptest::prelude::*;
use squall_core::tuple::{TupleRef, encode_packed_record, encode_record};
use squall_core::{OwnedValue, TaskId, Value, ValueRef};

const DOC: &str = include_str!("../../docs/tuple-encoding.md");

/// The bytes of the hex block marked `golden=<name>` in the document.
fn golden(name: &str) -> Vec<u8> {
    let marker = format!("```hex golden={name}\n");
    let start = DOC
        .find(&marker)
        .unwrap_or_else(|| panic!("no golden block {name}"))
        + marker.len();
    let end = start + DOC[start..].find("```").expect("closed block");
    DOC[start..end]
        .split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

#[test]
fn the_documented_records_are_what_the_encoder_writes() {
    let mut record = Vec::new();
    encode_record(
        &mut record,
        TaskId(7),
        TaskId(3),
        16,
        &[],
        &[Value::U64(42), Value::Str("hi")],
    );
    assert_eq!(record, golden("untracked"));

    encode_packed_record(
        &mut record,
        TaskId(7),
        TaskId(3),
        16,
        &[[1u64, 2], [3, 4]],
        &[],
    );
    assert_eq!(record, golden("packed"));
    let tuples: Vec<(u64, u64)> = TupleRef::members(&record)
        .unwrap()
        .map(|view| (view.get_u64(0).unwrap(), view.get_u64(1).unwrap()))
        .collect();
    assert_eq!(tuples, [(1, 2), (3, 4)]);

    let list = [Value::U64(1)];
    let map = [(Value::Str("k"), Value::I64(-2))];
    encode_record(
        &mut record,
        TaskId(9),
        TaskId(4),
        17,
        &[(0x1122_3344_5566_7788, 0x99aa_bbcc_ddee_ff00)],
        &[
            Value::Bool(true),
            Value::F64(1.5),
            Value::Null,
            Value::Bytes(&[1, 2]),
            Value::List(&list),
            Value::Map(&map),
        ],
    );
    assert_eq!(record, golden("tracked"));

    let view = TupleRef::parse(&record).unwrap();
    view.validate().unwrap();
    assert_eq!(
        (view.dest_task(), view.source_task(), view.stream_id()),
        (TaskId(9), TaskId(4), 17)
    );
    assert_eq!(
        view.anchors().iter().collect::<Vec<_>>(),
        [(0x1122_3344_5566_7788, 0x99aa_bbcc_ddee_ff00)]
    );
    let ValueRef::Map(decoded) = view.get(5).unwrap() else {
        panic!("a map")
    };
    assert_eq!(decoded.get_str_key("k"), Some(ValueRef::I64(-2)));
    assert_eq!(view.get_bytes(3).unwrap(), [1, 2]);
    assert!(
        view.get_u64(0)
            .unwrap_err()
            .to_string()
            .contains("field 0 is bool, not u64")
    );
}

fn value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        Just(OwnedValue::Null),
        any::<bool>().prop_map(OwnedValue::Bool),
        any::<i64>().prop_map(OwnedValue::I64),
        any::<u64>().prop_map(OwnedValue::U64),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |v| !v.is_nan())
            .prop_map(OwnedValue::F64),
        ".{0,20}".prop_map(OwnedValue::Str),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(OwnedValue::List),
            proptest::collection::vec((inner.clone(), inner), 0..3).prop_map(OwnedValue::Map),
        ]
    })
}

proptest! {
    #[test]
    fn plain_numbers_encode_as_their_values(
        unsigned in any::<u64>(),
        signed in any::<i64>(),
        float in any::<f64>(),
    ) {
        let mut plain = Vec::new();
        let mut values = Vec::new();
        encode_record(&mut plain, TaskId(1), TaskId(2), 3, &[], &[unsigned, unsigned]);
        encode_record(&mut values, TaskId(1), TaskId(2), 3, &[], &[Value::U64(unsigned); 2]);
        prop_assert_eq!(&plain, &values);
        encode_record(&mut plain, TaskId(1), TaskId(2), 3, &[], &[signed]);
        encode_record(&mut values, TaskId(1), TaskId(2), 3, &[], &[Value::I64(signed)]);
        prop_assert_eq!(&plain, &values);
        encode_record(&mut plain, TaskId(1), TaskId(2), 3, &[], &[float]);
        encode_record(&mut values, TaskId(1), TaskId(2), 3, &[], &[Value::F64(float)]);
        prop_assert_eq!(&plain, &values);
    }

    #[test]
    fn tuples_round_trip(
        fields in proptest::collection::vec(value(), 0..6),
        anchors in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3),
        dest in any::<u32>().prop_map(TaskId),
        source in any::<u32>().prop_map(TaskId),
        stream in any::<u16>(),
    ) {
        let mut record = Vec::new();
        encode_record(&mut record, dest, source, stream, &anchors, &fields);
        let view = TupleRef::parse(&record).unwrap();
        prop_assert!(view.validate().is_ok());
        prop_assert_eq!((view.dest_task(), view.source_task(), view.stream_id()), (dest, source, stream));
        prop_assert_eq!(view.anchors().iter().collect::<Vec<_>>(), anchors.clone());
        let decoded: Vec<OwnedValue> = view.fields().map(|field| field.unwrap().to_owned_value()).collect();
        prop_assert_eq!(&decoded, &fields);
        for (index, field) in fields.iter().enumerate() {
            prop_assert_eq!(view.get(index).unwrap().to_owned_value(), field.clone());
        }
        // Passing a read value on re-encodes it to the same bytes.
        let again: Vec<ValueRef<'_>> = view.fields().map(Result::unwrap).collect();
        let mut copy = Vec::new();
        encode_record(&mut copy, dest, source, stream, &anchors, &again);
        prop_assert_eq!(copy, record);
    }

    #[test]
    fn readers_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(view) = TupleRef::parse(&bytes) {
            let _ = view.validate();
            for index in 0..view.field_count().min(8) {
                let _ = view.get(index);
                let _ = view.get_u64(index);
                let _ = view.get_str(index);
                let _ = view.field_bytes(index);
            }
            let _ = view.fields().count();
            let _ = format!("{view:?}");
        }
    }

    #[test]
    fn packed_records_read_back_as_their_tuples(
        tuples in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<bool>()), 1..40),
        dest in any::<u32>().prop_map(TaskId),
        source in any::<u32>().prop_map(TaskId),
        stream in any::<u16>(),
        tracked in any::<bool>(),
    ) {
        let encoded: Vec<[Value<'_>; 3]> = tuples
            .iter()
            .map(|&(u, i, b)| [Value::U64(u), Value::I64(i), Value::Bool(b)])
            .collect();
        let pairs: Vec<[(u64, u64); 1]> = tuples.iter().map(|&(u, i, _)| [(u, i as u64)]).collect();
        let anchors: Vec<&[(u64, u64)]> = match tracked {
            true => pairs.iter().map(|pair| &pair[..]).collect(),
            false => Vec::new(),
        };
        let mut record = Vec::new();
        encode_packed_record(&mut record, dest, source, stream, &encoded, &anchors);
        let members = TupleRef::members(&record).unwrap();
        prop_assert_eq!(members.len(), tuples.len());
        for (view, &(u, i, b)) in members.zip(&tuples) {
            view.validate().unwrap();
            prop_assert_eq!((view.dest_task(), view.source_task()), (dest, source));
            prop_assert_eq!(view.stream_id(), stream);
            let expected: &[(u64, u64)] = if tracked { &[(u, i as u64)] } else { &[] };
            prop_assert_eq!(view.anchors().iter().collect::<Vec<_>>(), expected);
            prop_assert_eq!(view.get_u64(0), Ok(u));
            prop_assert_eq!(view.get_i64(1), Ok(i));
            prop_assert_eq!(view.get_bool(2), Ok(b));
            let alone = view.to_record();
            let again = TupleRef::parse(&alone).unwrap();
            prop_assert_eq!(again.get_i64(1), Ok(i));
            prop_assert_eq!(again.fields_bytes(), view.fields_bytes());
        }
    }

    #[test]
    fn readers_never_panic_on_damaged_packed_records(
        tuples in proptest::collection::vec(any::<u64>(), 1..20),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let encoded: Vec<[u64; 1]> = tuples.iter().map(|&u| [u]).collect();
        let mut record = Vec::new();
        encode_packed_record(&mut record, TaskId(1), TaskId(2), 16, &encoded, &[]);
        for (at, byte) in flips {
            let at = at % record.len();
            record[at] ^= byte;
        }
        record.truncate(cut % (record.len() + 1));
        if let Ok(members) = TupleRef::members(&record) {
            for view in members {
                let _ = view.validate();
                for index in 0..view.field_count().min(8) {
                    let _ = view.get(index).map(|value| value.to_owned_value());
                }
                let _ = view.to_record();
                let _ = format!("{view:?}");
            }
        }
    }

    #[test]
    fn readers_never_panic_on_damaged_records(
        fields in proptest::collection::vec(value(), 1..5),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let mut record = Vec::new();
        encode_record(&mut record, TaskId(1), TaskId(2), 16, &[], &fields);
        for (at, byte) in flips {
            let at = at % record.len();
            record[at] ^= byte;
        }
        record.truncate(cut % (record.len() + 1));
        if let Ok(view) = TupleRef::parse(&record) {
            let _ = view.validate();
            for index in 0..view.field_count().min(8) {
                let _ = view.get(index).map(|value| value.to_owned_value());
            }
        }
    }
}

/// A record whose one field is `depth` lists, each holding the next, the innermost empty.
fn nested_lists(depth: usize) -> Vec<u8> {
    let mut field = vec![7, 0, 0, 0, 0, 0, 0, 0, 0];
    for _ in 1..depth {
        let mut outer = vec![7];
        outer.extend_from_slice(&(field.len() as u32).to_le_bytes());
        outer.extend_from_slice(&1u32.to_le_bytes());
        outer.extend_from_slice(&field);
        field = outer;
    }
    let mut record = vec![0u8; 16];
    record[10] = 1;
    record.extend_from_slice(&field);
    record
}

#[test]
fn nesting_is_limited_so_a_record_cannot_overflow_the_readers_stack() {
    use squall_core::tuple::{DecodeError, FieldError, MAX_NESTING};
    let deepest = nested_lists(MAX_NESTING);
    let tuple = TupleRef::parse(&deepest).unwrap();
    assert_eq!(tuple.validate(), Ok(()));
    let mut value = tuple.get(0).unwrap();
    for _ in 1..MAX_NESTING {
        let ValueRef::List(list) = value else {
            panic!("a list")
        };
        value = list.iter().next().unwrap();
    }
    // A hundred thousand levels, read on a thread with a small stack, as a bolt reads a
    // record from a peer: an error, not a crash.
    let deep = nested_lists(100_000);
    let error = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let tuple = TupleRef::parse(&deep).unwrap();
            (tuple.validate(), tuple.get(0).map(|_| ()))
        })
        .unwrap()
        .join()
        .expect("the reader did not crash");
    let too_deep = DecodeError::TooDeep {
        index: 0,
        offset: 16 + 9 * MAX_NESTING,
        max: MAX_NESTING,
    };
    assert_eq!(
        error,
        (
            Err(too_deep.clone()),
            Err(FieldError::Decode(too_deep.clone()))
        )
    );
    assert_eq!(
        too_deep.to_string(),
        "field 0 nests lists and maps deeper than 128 levels (at byte 1168)"
    );
    assert_eq!(
        TupleRef::parse(&nested_lists(MAX_NESTING + 1))
            .unwrap()
            .validate(),
        Err(DecodeError::TooDeep {
            index: 0,
            offset: 16 + 9 * MAX_NESTING,
            max: MAX_NESTING
        })
    );
}

#[test]
fn a_bool_is_0_or_1_so_that_equal_values_hash_alike() {
    use squall_core::tuple::{DecodeError, FieldError};
    let mut record = Vec::new();
    encode_record(
        &mut record,
        TaskId(1),
        TaskId(2),
        0,
        &[],
        &[Value::Bool(true)],
    );
    assert_eq!(TupleRef::parse(&record).unwrap().get_bool(0), Ok(true));
    *record.last_mut().unwrap() = 0xff;
    let tuple = TupleRef::parse(&record).unwrap();
    let error = DecodeError::InvalidBool {
        index: 0,
        offset: 16,
        byte: 0xff,
    };
    assert_eq!(tuple.validate(), Err(error.clone()));
    assert_eq!(tuple.get_bool(0), Err(FieldError::Decode(error.clone())));
    assert_eq!(
        error.to_string(),
        "bool field 0 at byte 16 holds 0xff, not 0 or 1"
    );
}
