use proptest::prelude::*;
use serde_json::value::RawValue;

use super::*;
use squall_core::TaskId;
use squall_core::tuple::{TupleRef, encode_record};

fn raw(text: &str) -> &RawValue {
    serde_json::from_str(text).expect("valid JSON in the test")
}

fn tuple_json(values: &[OwnedValue]) -> Result<String, ValueError> {
    let mut record = Vec::new();
    encode_record(&mut record, TaskId(1), TaskId(2), 16, &[], values);
    let view = TupleRef::parse(&record).expect("encoded record");
    let mut out = Vec::new();
    write_tuple_json(&mut out, view.fields())?;
    Ok(String::from_utf8(out).expect("JSON is UTF-8"))
}

/// What a value reads back as: non-negative i64 become u64.
fn normalized(value: &OwnedValue) -> OwnedValue {
    match value {
        OwnedValue::I64(v) if *v >= 0 => OwnedValue::U64(*v as u64),
        OwnedValue::List(items) => OwnedValue::List(items.iter().map(normalized).collect()),
        OwnedValue::Map(pairs) => OwnedValue::Map(
            pairs
                .iter()
                .map(|(key, value)| (normalized(key), normalized(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Values JSON can carry.
fn json_value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        Just(OwnedValue::Null),
        any::<bool>().prop_map(OwnedValue::Bool),
        any::<i64>().prop_map(OwnedValue::I64),
        any::<u64>().prop_map(OwnedValue::U64),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(OwnedValue::F64),
        ".{0,12}".prop_map(OwnedValue::Str),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
            prop::collection::vec((".{0,6}", inner), 0..6).prop_map(|pairs| {
                OwnedValue::Map(
                    pairs
                        .into_iter()
                        .map(|(key, value)| (OwnedValue::Str(key), value))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #[test]
    fn values_round_trip_through_json(values in prop::collection::vec(json_value(), 0..6)) {
        let text = tuple_json(&values).expect("every generated value has a JSON form");
        let back = tuple_from_json(raw(&text)).expect("our own JSON reads back");
        let expected: Vec<OwnedValue> = values.iter().map(normalized).collect();
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn any_json_reads_or_is_refused_precisely(text in any::<String>()) {
        if let Ok(value) = serde_json::from_str::<&RawValue>(&text) {
            match tuple_from_json(value) {
                Ok(_) => {}
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
            let _ = value_from_json(value);
        }
    }

    #[test]
    fn integer_literals_read_exactly_or_are_refused(digits in "-?[1-9][0-9]{0,30}") {
        let result = value_from_json(raw(&digits));
        match digits.parse::<i128>() {
            Ok(n) if n < 0 && n >= i128::from(i64::MIN) => {
                prop_assert_eq!(result, Ok(OwnedValue::I64(n as i64)));
            }
            Ok(n) if n >= 0 && n <= i128::from(u64::MAX) => {
                prop_assert_eq!(result, Ok(OwnedValue::U64(n as u64)));
            }
            _ => {
                let is_out_of_range = matches!(result, Err(ValueError::IntegerOutOfRange { .. }));
                prop_assert!(is_out_of_range);
            }
        }
    }
}

#[test]
fn numbers_keep_their_kind() {
    let values = tuple_from_json(raw(
        "[1, -1, 1.0, 2.5e-3, 18446744073709551615, -9223372036854775808]",
    ))
    .expect("in range");
    assert_eq!(
        values,
        vec![
            OwnedValue::U64(1),
            OwnedValue::I64(-1),
            OwnedValue::F64(1.0),
            OwnedValue::F64(2.5e-3),
            OwnedValue::U64(u64::MAX),
            OwnedValue::I64(i64::MIN),
        ]
    );
    assert_eq!(
        tuple_json(&[OwnedValue::F64(1.0)]).expect("finite"),
        "[1.0]"
    );
}

#[test]
fn objects_keep_their_order() {
    let values = tuple_from_json(raw(r#"[{"b": 1, "a": [true, null]}]"#)).expect("valid");
    assert_eq!(
        values,
        vec![OwnedValue::Map(vec![
            (OwnedValue::Str("b".into()), OwnedValue::U64(1)),
            (
                OwnedValue::Str("a".into()),
                OwnedValue::List(vec![OwnedValue::Bool(true), OwnedValue::Null])
            ),
        ])]
    );
}

#[test]
fn unrepresentable_values_are_named_with_their_place() {
    let error = tuple_from_json(raw(r#"[1, {"big": [18446744073709551616]}]"#)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "tuple[1][\"big\"][0]: integer 18446744073709551616 does not fit in 64 bits (i64 or u64)"
    );
    let error = tuple_from_json(raw("[1e400]")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "tuple[0]: number 1e400 is too large for a 64-bit float"
    );
    let error = tuple_from_json(raw(r#"{"a": 1}"#)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the tuple must be a JSON array of field values, found an object"
    );
    let deep = format!(
        "[{}{}]",
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    let error = tuple_from_json(raw(&deep)).unwrap_err();
    assert!(matches!(error, ValueError::TooDeep { .. }), "{error}");

    let error = tuple_json(&[OwnedValue::Null, OwnedValue::Bytes(vec![1, 2])]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "tuple[1]: a bytes value (2 bytes) has no JSON form; send it as a string or a list"
    );
    let error = tuple_json(&[OwnedValue::List(vec![OwnedValue::F64(f64::NAN)])]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "tuple[0][0]: the float NaN has no JSON form"
    );
    let error = tuple_json(&[OwnedValue::Map(vec![(
        OwnedValue::U64(1),
        OwnedValue::Null,
    )])])
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "tuple[0]: a map key of type u64 has no JSON form (object keys are strings)"
    );
}

#[test]
fn very_deep_input_does_not_overflow_the_stack() {
    let depth = 100_000;
    let text = format!("[{}{}]", "[".repeat(depth), "]".repeat(depth));
    if let Ok(value) = serde_json::from_str::<&RawValue>(&text) {
        assert!(tuple_from_json(value).is_err());
    }
}

#[test]
fn minus_zero_is_the_u64_zero_so_it_round_trips() {
    let raw: Box<RawValue> = serde_json::from_str("[-0, 0, -1]").unwrap();
    assert_eq!(
        tuple_from_json(&raw).unwrap(),
        [OwnedValue::U64(0), OwnedValue::U64(0), OwnedValue::I64(-1)]
    );
}
