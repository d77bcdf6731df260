//! Tuple values as JSON, both ways.
//!
//! | engine value | JSON | back in the engine |
//! |--------------|------|--------------------|
//! | null | `null` | null |
//! | bool | `true`, `false` | bool |
//! | u64 | integer | u64 |
//! | i64 | integer | i64 when negative, u64 otherwise |
//! | f64 (finite) | number with a fraction or exponent (`1.0`, `2.5e-3`) | f64 |
//! | string | string | string |
//! | list | array | list |
//! | map with string keys | object (pairs in order) | map with string keys |
//!
//! JSON has one integer type: an integer literal reads as `u64` when it is not negative and
//! as `i64` when it is, so no integer from `i64::MIN` to `u64::MAX` changes its value. An
//! integer outside that range, a float that overflows, bytes, a non-finite float and a map key
//! that is not a string have no faithful counterpart and are errors naming where in the tuple
//! they are. Nesting is limited to [`MAX_DEPTH`] levels.

use std::fmt::{self, Write as _};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use squall_core::tuple::{DecodeError, FieldIter};
use squall_core::value::{OwnedValue, ValueRef, ValueType};

/// Most levels of lists and maps inside one tuple value.
pub const MAX_DEPTH: usize = 64;

/// One step of the way from a tuple to a nested value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Index(usize),
    Key(String),
}

/// Where a value sits in a tuple: `tuple[2]["counts"][0]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValuePath(Vec<Step>);

impl ValuePath {
    fn push_index(&mut self, index: usize) {
        self.0.push(Step::Index(index));
    }

    fn push_key(&mut self, key: &str) {
        self.0.push(Step::Key(key.to_owned()));
    }

    fn pop(&mut self) {
        self.0.pop();
    }

    fn depth(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tuple")?;
        for step in &self.0 {
            match step {
                Step::Index(index) => write!(f, "[{index}]")?,
                Step::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

/// A value that has no faithful counterpart on the other side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The tuple is not a JSON array.
    #[error("the tuple must be a JSON array of field values, found {found}")]
    NotAList {
        /// The JSON type found.
        found: &'static str,
    },
    /// An integer literal outside `i64::MIN..=u64::MAX`.
    #[error("{path}: integer {literal} does not fit in 64 bits (i64 or u64)")]
    IntegerOutOfRange {
        /// Where.
        path: ValuePath,
        /// The literal, shortened if long.
        literal: String,
    },
    /// A float literal too large for an f64.
    #[error("{path}: number {literal} is too large for a 64-bit float")]
    FloatOutOfRange {
        /// Where.
        path: ValuePath,
        /// The literal, shortened if long.
        literal: String,
    },
    /// Lists and maps nested deeper than [`MAX_DEPTH`].
    #[error("{path}: lists and maps are nested deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// Where the limit was reached.
        path: ValuePath,
    },
    /// Raw bytes, which JSON cannot carry.
    #[error("{path}: a bytes value ({len} bytes) has no JSON form; send it as a string or a list")]
    Bytes {
        /// Where.
        path: ValuePath,
        /// Its length.
        len: usize,
    },
    /// NaN or an infinity, which JSON cannot carry.
    #[error("{path}: the float {value} has no JSON form")]
    NonFiniteFloat {
        /// Where.
        path: ValuePath,
        /// The value, as Rust prints it.
        value: String,
    },
    /// A map key that is not a string, which a JSON object cannot carry.
    #[error("{path}: a map key of type {key_type} has no JSON form (object keys are strings)")]
    NonStringKey {
        /// The map.
        path: ValuePath,
        /// The key's type.
        key_type: ValueType,
    },
    /// The encoded tuple itself is malformed.
    #[error("the tuple cannot be read: {0}")]
    Decode(#[from] DecodeError),
    /// JSON that passed the message parser but not the value parser (not expected).
    #[error("{path}: {message}")]
    Json {
        /// Where.
        path: ValuePath,
        /// The parser's message.
        message: String,
    },
}

/// The name of the JSON type a raw value starts with.
pub(crate) fn json_kind(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        Some(_) => "a number",
        None => "nothing",
    }
}

/// A literal for an error message: at most 40 characters.
fn shorten(literal: &str) -> String {
    let mut chars = literal.chars();
    let short: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() {
        format!("{short}…")
    } else {
        short
    }
}

/// Reads the field values of a tuple from a JSON array.
///
/// # Errors
/// [`ValueError`] naming the first value with no faithful counterpart.
pub fn tuple_from_json(raw: &RawValue) -> Result<Vec<OwnedValue>, ValueError> {
    let text = raw.get();
    if !text.trim_start().starts_with('[') {
        return Err(ValueError::NotAList {
            found: json_kind(text),
        });
    }
    let mut path = ValuePath::default();
    let items: Vec<&RawValue> = parse(text, &path)?;
    let mut values = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        path.push_index(index);
        values.push(decode(item, &mut path)?);
        path.pop();
    }
    Ok(values)
}

/// Reads one value from JSON.
///
/// # Errors
/// [`ValueError`] naming the first part with no faithful counterpart.
pub fn value_from_json(raw: &RawValue) -> Result<OwnedValue, ValueError> {
    decode(raw, &mut ValuePath::default())
}

fn parse<'a, T: Deserialize<'a>>(text: &'a str, path: &ValuePath) -> Result<T, ValueError> {
    serde_json::from_str(text).map_err(|error| ValueError::Json {
        path: path.clone(),
        message: error.to_string(),
    })
}

fn decode(raw: &RawValue, path: &mut ValuePath) -> Result<OwnedValue, ValueError> {
    let text = raw.get().trim();
    match text.as_bytes().first() {
        Some(b'n') => Ok(OwnedValue::Null),
        Some(b't') => Ok(OwnedValue::Bool(true)),
        Some(b'f') => Ok(OwnedValue::Bool(false)),
        Some(b'"') => parse::<String>(text, path).map(OwnedValue::Str),
        Some(b'[') => {
            if path.depth() >= MAX_DEPTH {
                return Err(ValueError::TooDeep { path: path.clone() });
            }
            let items: Vec<&RawValue> = parse(text, path)?;
            let mut values = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                path.push_index(index);
                values.push(decode(item, path)?);
                path.pop();
            }
            Ok(OwnedValue::List(values))
        }
        Some(b'{') => {
            if path.depth() >= MAX_DEPTH {
                return Err(ValueError::TooDeep { path: path.clone() });
            }
            let Pairs(pairs) = parse(text, path)?;
            let mut values = Vec::with_capacity(pairs.len());
            for (key, item) in pairs {
                path.push_key(&key);
                let value = decode(item, path)?;
                path.pop();
                values.push((OwnedValue::Str(key), value));
            }
            Ok(OwnedValue::Map(values))
        }
        _ => decode_number(text, path),
    }
}

fn decode_number(text: &str, path: &ValuePath) -> Result<OwnedValue, ValueError> {
    if text.contains(['.', 'e', 'E']) {
        return match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(OwnedValue::F64(value)),
            Ok(_) => Err(ValueError::FloatOutOfRange {
                path: path.clone(),
                literal: shorten(text),
            }),
            Err(error) => Err(ValueError::Json {
                path: path.clone(),
                message: format!("{:?} is not a number: {error}", shorten(text)),
            }),
        };
    }
    let parsed = if text.starts_with('-') {
        // `-0` is not negative: it reads as the u64 0, as `0` does.
        text.parse::<i64>().map(|value| match u64::try_from(value) {
            Ok(value) => OwnedValue::U64(value),
            Err(_) => OwnedValue::I64(value),
        })
    } else {
        text.parse::<u64>().map(OwnedValue::U64)
    };
    parsed.map_err(|_| {
        if text.bytes().skip(1).all(|byte| byte.is_ascii_digit()) && !text.is_empty() {
            ValueError::IntegerOutOfRange {
                path: path.clone(),
                literal: shorten(text),
            }
        } else {
            ValueError::Json {
                path: path.clone(),
                message: format!("{:?} is not a number", shorten(text)),
            }
        }
    })
}

/// The pairs of a JSON object, in order, values still raw.
struct Pairs<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for PairsVisitor<'a> {
            type Value = Pairs<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Pairs<'a>, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some((key, value)) = map.next_entry::<String, &'a RawValue>()? {
                    pairs.push((key, value));
                }
                Ok(Pairs(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor(std::marker::PhantomData))
    }
}

/// Writes the fields of a tuple as a JSON array.
///
/// # Errors
/// [`ValueError`] naming the first value with no JSON form; `out` then holds a partial
/// array.
pub fn write_tuple_json(out: &mut Vec<u8>, fields: FieldIter<'_>) -> Result<(), ValueError> {
    out.push(b'[');
    let mut path = ValuePath::default();
    for (index, field) in fields.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        path.push_index(index);
        write_value(out, field?, &mut path)?;
        path.pop();
    }
    out.push(b']');
    Ok(())
}

/// Writes one value as JSON.
///
/// # Errors
/// [`ValueError`] naming the first part with no JSON form.
pub fn write_value_json(out: &mut Vec<u8>, value: ValueRef<'_>) -> Result<(), ValueError> {
    write_value(out, value, &mut ValuePath::default())
}

fn write_json_str(out: &mut Vec<u8>, text: &str) {
    // Writing to a Vec cannot fail, and a str always serialises.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_value(
    out: &mut Vec<u8>,
    value: ValueRef<'_>,
    path: &mut ValuePath,
) -> Result<(), ValueError> {
    match value {
        ValueRef::Null => out.extend_from_slice(b"null"),
        ValueRef::Bool(true) => out.extend_from_slice(b"true"),
        ValueRef::Bool(false) => out.extend_from_slice(b"false"),
        ValueRef::I64(v) => write_display(out, v),
        ValueRef::U64(v) => write_display(out, v),
        ValueRef::F64(v) => {
            if !v.is_finite() {
                return Err(ValueError::NonFiniteFloat {
                    path: path.clone(),
                    value: v.to_string(),
                });
            }
            // serde_json writes the shortest form that reads back exactly, always with a
            // fraction or an exponent, so the value comes back as a float.
            let _ = serde_json::to_writer(&mut *out, &v);
        }
        ValueRef::Str(text) => write_json_str(out, text),
        ValueRef::Bytes(bytes) => {
            return Err(ValueError::Bytes {
                path: path.clone(),
                len: bytes.len(),
            });
        }
        ValueRef::List(list) => {
            if path.depth() >= MAX_DEPTH {
                return Err(ValueError::TooDeep { path: path.clone() });
            }
            out.push(b'[');
            for (index, item) in list.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                path.push_index(index);
                write_value(out, item, path)?;
                path.pop();
            }
            out.push(b']');
        }
        ValueRef::Map(map) => {
            if path.depth() >= MAX_DEPTH {
                return Err(ValueError::TooDeep { path: path.clone() });
            }
            out.push(b'{');
            for (index, (key, item)) in map.iter().enumerate() {
                let ValueRef::Str(key) = key else {
                    return Err(ValueError::NonStringKey {
                        path: path.clone(),
                        key_type: key.value_type(),
                    });
                };
                if index > 0 {
                    out.push(b',');
                }
                write_json_str(out, key);
                out.push(b':');
                path.push_key(key);
                write_value(out, item, path)?;
                path.pop();
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_display(out: &mut Vec<u8>, value: impl fmt::Display) {
    struct Bytes<'a>(&'a mut Vec<u8>);
    impl fmt::Write for Bytes<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0.extend_from_slice(text.as_bytes());
            Ok(())
        }
    }
    let _ = write!(Bytes(out), "{value}");
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
