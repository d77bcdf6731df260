//! Finding the line of a key in a topology file, for errors found after parsing.
//!
//! The file is read again by the YAML parser with a visitor that walks down the key path and
//! fails on purpose at the node it names; the parser reports where that failure happened.
//! So the position comes from the parser itself, whatever the file's layout.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A key of a mapping.
    Key(String),
    /// An item of a sequence.
    Index(usize),
}

/// A key path: `bolts[2].grouping.type`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeyPath(pub(crate) Vec<Step>);

impl KeyPath {
    pub(crate) fn key(mut self, key: &str) -> Self {
        self.0.push(Step::Key(key.to_owned()));
        self
    }

    pub(crate) fn index(mut self, index: usize) -> Self {
        self.0.push(Step::Index(index));
        self
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if position == 0 => f.write_str(key)?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The message of the error raised at the target node.
const HERE: &str = "squall: the node looked for";

/// The line (from 1) where `path` is in the YAML `text`, if it is there.
pub(crate) fn line_of(text: &str, path: &KeyPath) -> Option<usize> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    match (Seek { path: &path.0 }).deserialize(deserializer) {
        Err(error) if error.to_string().contains(HERE) => error.location().map(|at| at.line()),
        _ => None,
    }
}

struct Seek<'p> {
    path: &'p [Step],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.path.split_first() {
            // Failing inside the visitor makes the parser report the node's own position.
            None => deserializer.deserialize_any(Here),
            Some((Step::Key(key), rest)) => deserializer.deserialize_map(InMap { key, rest }),
            Some((Step::Index(index), rest)) => deserializer.deserialize_seq(InSeq {
                index: *index,
                rest,
            }),
        }
    }
}

/// Fails on whatever node it is given.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_seq<S: SeqAccess<'de>>(self, _: S) -> Result<(), S::Error> {
        Err(de::Error::custom(HERE))
    }

    fn visit_map<M: MapAccess<'de>>(self, _: M) -> Result<(), M::Error> {
        Err(de::Error::custom(HERE))
    }
}

struct InMap<'p> {
    key: &'p str,
    rest: &'p [Step],
}

impl<'de> Visitor<'de> for InMap<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let seed = KeySeed {
            target: self.key,
            fail: self.rest.is_empty(),
        };
        while let Some(found) = map.next_key_seed(seed)? {
            if found {
                return map.next_value_seed(Seek { path: self.rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Reads a mapping key: whether it is the target; fails on the target when `fail`, inside
/// the key's own visitor, so that the parser reports the key's line.
#[derive(Clone, Copy)]
struct KeySeed<'p> {
    target: &'p str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        if key == self.target && self.fail {
            return Err(E::custom(HERE));
        }
        Ok(key == self.target)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

struct InSeq<'p> {
    index: usize,
    rest: &'p [Step],
}

impl<'de> Visitor<'de> for InSeq<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Seek { path: self.rest })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_items() {
        let text = "name: x\nbolts:\n  - id: a\n    parallelism: 2\n\n  - id: b\n    grouping:\n      type: fields\n";
        let bolts = KeyPath::default().key("bolts");
        assert_eq!(
            line_of(text, &bolts.clone().index(0).key("parallelism")),
            Some(4)
        );
        assert_eq!(line_of(text, &bolts.clone().index(1).key("id")), Some(6));
        assert_eq!(
            line_of(text, &bolts.clone().index(1).key("grouping").key("type")),
            Some(8)
        );
        assert_eq!(line_of(text, &bolts.clone().index(5)), None);
        assert_eq!(line_of(text, &KeyPath::default().key("spouts")), None);
        assert_eq!(
            bolts.index(1).key("grouping").to_string(),
            "bolts[1].grouping"
        );
    }
}
