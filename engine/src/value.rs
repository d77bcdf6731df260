//! The values a tuple field can hold.
//!
//! Three shapes of the same closed set of types:
//!
//! - [`Value`]: what a task emits. Strings, bytes, lists and maps are borrowed, so building
//!   the values of a tuple on the stack allocates nothing.
//! - [`ValueRef`]: what a task reads. It borrows the encoded tuple; lists and maps are lazy
//!   views ([`ListRef`], [`MapRef`]) over the encoded bytes.
//! - [`OwnedValue`]: an owned copy, for tasks that keep values beyond one `execute` call and
//!   for the multi-language bridge.

use std::fmt;

use crate::tuple::{ListRef, MapRef};

/// The type of a value, as named in errors and in the encoding's tag byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueType {
    /// No value (JSON `null` from multi-language components).
    Null = 0,
    /// `true` or `false`.
    Bool = 1,
    /// Signed 64-bit integer.
    I64 = 2,
    /// Unsigned 64-bit integer.
    U64 = 3,
    /// IEEE-754 double.
    F64 = 4,
    /// UTF-8 string.
    Str = 5,
    /// Raw bytes.
    Bytes = 6,
    /// Ordered list of values.
    List = 7,
    /// Map from values to values, in insertion order.
    Map = 8,
}

impl ValueType {
    /// The type whose tag byte is `tag`, if any.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            0 => ValueType::Null,
            1 => ValueType::Bool,
            2 => ValueType::I64,
            3 => ValueType::U64,
            4 => ValueType::F64,
            5 => ValueType::Str,
            6 => ValueType::Bytes,
            7 => ValueType::List,
            8 => ValueType::Map,
            _ => return None,
        })
    }

    /// The lowercase name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Null => "null",
            ValueType::Bool => "bool",
            ValueType::I64 => "i64",
            ValueType::U64 => "u64",
            ValueType::F64 => "f64",
            ValueType::Str => "string",
            ValueType::Bytes => "bytes",
            ValueType::List => "list",
            ValueType::Map => "map",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A field value to emit; borrowed parts make building a tuple allocation-free.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A double.
    F64(f64),
    /// A string.
    Str(&'a str),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// A list of values.
    List(&'a [Value<'a>]),
    /// Key/value pairs.
    Map(&'a [(Value<'a>, Value<'a>)]),
}

impl Value<'_> {
    /// This value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Null => ValueType::Null,
            Value::Bool(_) => ValueType::Bool,
            Value::I64(_) => ValueType::I64,
            Value::U64(_) => ValueType::U64,
            Value::F64(_) => ValueType::F64,
            Value::Str(_) => ValueType::Str,
            Value::Bytes(_) => ValueType::Bytes,
            Value::List(_) => ValueType::List,
            Value::Map(_) => ValueType::Map,
        }
    }
}

macro_rules! value_from {
    ($($source:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {
        $(impl From<$source> for Value<'_> {
            #[inline]
            fn from(value: $source) -> Self {
                Value::$variant(value $(as $cast)?)
            }
        })*
    };
}

value_from! {
    bool => Bool,
    i64 => I64,
    i32 => I64 as i64,
    u64 => U64,
    u32 => U64 as u64,
    usize => U64 as u64,
    f64 => F64,
    f32 => F64 as f64,
}

impl<'a> From<&'a str> for Value<'a> {
    #[inline]
    fn from(value: &'a str) -> Self {
        Value::Str(value)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    #[inline]
    fn from(value: &'a String) -> Self {
        Value::Str(value)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    #[inline]
    fn from(value: &'a [u8]) -> Self {
        Value::Bytes(value)
    }
}

/// A field value read from an encoded tuple; borrows the tuple's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A double.
    F64(f64),
    /// A string, borrowed from the tuple.
    Str(&'a str),
    /// Bytes, borrowed from the tuple.
    Bytes(&'a [u8]),
    /// A list, decoded lazily.
    List(ListRef<'a>),
    /// A map, decoded lazily.
    Map(MapRef<'a>),
}

impl<'a> ValueRef<'a> {
    /// This value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            ValueRef::Null => ValueType::Null,
            ValueRef::Bool(_) => ValueType::Bool,
            ValueRef::I64(_) => ValueType::I64,
            ValueRef::U64(_) => ValueType::U64,
            ValueRef::F64(_) => ValueType::F64,
            ValueRef::Str(_) => ValueType::Str,
            ValueRef::Bytes(_) => ValueType::Bytes,
            ValueRef::List(_) => ValueType::List,
            ValueRef::Map(_) => ValueType::Map,
        }
    }

    /// An owned copy of this value (allocates for strings, bytes, lists and maps).
    pub fn to_owned_value(&self) -> OwnedValue {
        match *self {
            ValueRef::Null => OwnedValue::Null,
            ValueRef::Bool(v) => OwnedValue::Bool(v),
            ValueRef::I64(v) => OwnedValue::I64(v),
            ValueRef::U64(v) => OwnedValue::U64(v),
            ValueRef::F64(v) => OwnedValue::F64(v),
            ValueRef::Str(v) => OwnedValue::Str(v.to_owned()),
            ValueRef::Bytes(v) => OwnedValue::Bytes(v.to_vec()),
            ValueRef::List(list) => {
                OwnedValue::List(list.iter().map(|item| item.to_owned_value()).collect())
            }
            ValueRef::Map(map) => OwnedValue::Map(
                map.iter()
                    .map(|(key, value)| (key.to_owned_value(), value.to_owned_value()))
                    .collect(),
            ),
        }
    }
}

/// An owned field value.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A double.
    F64(f64),
    /// A string.
    Str(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list of values.
    List(Vec<OwnedValue>),
    /// Key/value pairs in order.
    Map(Vec<(OwnedValue, OwnedValue)>),
}

impl OwnedValue {
    /// This value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            OwnedValue::Null => ValueType::Null,
            OwnedValue::Bool(_) => ValueType::Bool,
            OwnedValue::I64(_) => ValueType::I64,
            OwnedValue::U64(_) => ValueType::U64,
            OwnedValue::F64(_) => ValueType::F64,
            OwnedValue::Str(_) => ValueType::Str,
            OwnedValue::Bytes(_) => ValueType::Bytes,
            OwnedValue::List(_) => ValueType::List,
            OwnedValue::Map(_) => ValueType::Map,
        }
    }
}
