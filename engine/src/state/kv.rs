//! A task's key-value state: the whole map in memory, and the keys changed since the last
//! checkpoint, so a checkpoint writes only those (an incremental snapshot).

use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use rustc_hash::FxBuildHasher;

/// Keys up to this long are kept inline, compared and hashed as one 128-bit word.
const INLINE: usize = 16;

/// A stored key: short ones inline (no allocation, no `memcmp`), long ones boxed.
#[derive(Debug, Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Long(Box<[u8]>),
}

impl Key {
    fn new(bytes: &[u8]) -> Self {
        match Lookup::new(bytes).inline {
            Some(word) => Key::Inline {
                len: bytes.len() as u8,
                bytes: word.to_le_bytes(),
            },
            None => Key::Long(bytes.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Long(bytes) => bytes,
        }
    }
}

/// A key being looked up, with its inline word worked out once.
struct Lookup<'a> {
    bytes: &'a [u8],
    /// The key zero-padded to one word, when it is short enough to be inline.
    inline: Option<u128>,
}

impl<'a> Lookup<'a> {
    #[inline]
    fn new(bytes: &'a [u8]) -> Self {
        let inline = (bytes.len() <= INLINE).then(|| {
            let mut word = [0u8; INLINE];
            word[..bytes.len()].copy_from_slice(bytes);
            u128::from_le_bytes(word)
        });
        Self { bytes, inline }
    }
}

impl Hash for Lookup<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.inline {
            Some(word) => {
                state.write_u128(word);
                state.write_u8(self.bytes.len() as u8);
            }
            None => state.write(self.bytes),
        }
    }
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Key::Inline { len, bytes } => {
                state.write_u128(u128::from_le_bytes(*bytes));
                state.write_u8(*len);
            }
            Key::Long(bytes) => state.write(bytes),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Key::Inline { len, bytes },
                Key::Inline {
                    len: other_len,
                    bytes: other_bytes,
                },
            ) => len == other_len && bytes == other_bytes,
            (Key::Long(bytes), Key::Long(other)) => bytes == other,
            _ => false,
        }
    }
}

impl Eq for Key {}

impl Equivalent<Key> for Lookup<'_> {
    #[inline]
    fn equivalent(&self, key: &Key) -> bool {
        match (self.inline, key) {
            (Some(word), Key::Inline { len, bytes }) => {
                usize::from(*len) == self.bytes.len() && word == u128::from_le_bytes(*bytes)
            }
            (None, Key::Long(bytes)) => **bytes == *self.bytes,
            _ => false,
        }
    }
}

/// A stored value: short ones inline, so a counter is read and written without an
/// allocation or a second cache miss; long ones in a buffer reused as the value changes.
#[derive(Debug)]
enum Stored {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl Stored {
    #[inline]
    fn new(value: &[u8]) -> Self {
        if value.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..value.len()].copy_from_slice(value);
            Stored::Inline {
                len: value.len() as u8,
                bytes,
            }
        } else {
            Stored::Heap(value.to_vec())
        }
    }

    fn from_vec(value: Vec<u8>) -> Self {
        if value.len() <= INLINE {
            Self::new(&value)
        } else {
            Stored::Heap(value)
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            Stored::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Stored::Heap(bytes) => bytes,
        }
    }

    /// Replaces the value, keeping a long value's buffer.
    #[inline]
    fn set(&mut self, value: &[u8]) {
        match self {
            Stored::Heap(buffer) if value.len() > INLINE => {
                buffer.clear();
                buffer.extend_from_slice(value);
            }
            _ => *self = Self::new(value),
        }
    }

    /// The value as a `u64` counter, when it is 8 bytes long.
    #[inline]
    fn as_u64(&self) -> Option<u64> {
        match self {
            Stored::Inline { len: 8, bytes } => {
                Some(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")))
            }
            _ => None,
        }
    }
}

/// One key's value and whether the next snapshot must write it.
#[derive(Debug)]
struct Slot {
    value: Stored,
    /// Deleted since the last snapshot: kept until the snapshot records the deletion.
    live: bool,
    /// Already listed in `KeyValueState::changed`.
    changed: bool,
}

/// A whole state: every key with its value.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// What one checkpoint writes for one task: the keys changed since the previous one, each
/// with its new value or `None` when it was deleted, packed in one buffer so that taking
/// them costs two allocations, not two per key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The checkpoint it belongs to.
    pub checkpoint: u64,
    /// Keys and values back to back.
    bytes: Vec<u8>,
    /// Where each change's key starts, its length, and its value's length (`None`: the
    /// key was deleted); the value follows the key.
    spans: Vec<(usize, u32, Option<u32>)>,
}

impl Delta {
    /// An empty delta of `checkpoint`.
    pub fn new(checkpoint: u64) -> Self {
        Self {
            checkpoint,
            ..Self::default()
        }
    }

    /// Adds a change: `key` set to `value`, or deleted.
    ///
    /// # Panics
    /// When the key or value is 4 GiB long or more.
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        if let Some(value) = value {
            self.bytes.extend_from_slice(value);
        }
        let length = |bytes: &[u8]| u32::try_from(bytes.len()).expect("under 4 GiB");
        self.spans.push((start, length(key), value.map(length)));
    }

    /// How many changes it holds.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether it holds no change.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The changes, first changed first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        self.spans.iter().map(|&(start, key, value)| {
            let value_start = start + key as usize;
            (
                &self.bytes[start..value_start],
                value.map(|value| &self.bytes[value_start..value_start + value as usize]),
            )
        })
    }
}

/// A stateful bolt's state: byte-string keys and values, with typed helpers for counters.
///
/// Reads and writes are map operations in memory. A checkpoint takes the changed keys
/// ([`take_changes`](Self::take_changes)): a copy of each changed value, never the whole map,
/// handed to a writer thread, so the bolt pauses for the copy and not for the write.
#[derive(Debug, Default)]
pub struct KeyValueState {
    slots: HashMap<Key, Slot, FxBuildHasher>,
    /// Keys changed since the last snapshot, first change first.
    changed: Vec<Key>,
    live: usize,
}

impl KeyValueState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.slots
            .get(&Lookup::new(key))
            .filter(|slot| slot.live)
            .map(|slot| slot.value.as_slice())
    }

    /// Sets `key` to `value`. Allocates only the first time a key changes between two
    /// checkpoints (or when the value outgrows its buffer).
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        match self.slots.get_mut(&Lookup::new(key)) {
            Some(slot) => {
                overwrite(slot, key, value, &mut self.live, &mut self.changed);
            }
            None => {
                self.slots.insert(
                    Key::new(key),
                    Slot {
                        value: Stored::new(value),
                        live: true,
                        changed: true,
                    },
                );
                self.changed.push(Key::new(key));
                self.live += 1;
            }
        }
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let Some(slot) = self.slots.get_mut(&Lookup::new(key)) else {
            return false;
        };
        if !slot.live {
            return false;
        }
        slot.live = false;
        slot.value = Stored::new(&[]);
        self.live -= 1;
        if !slot.changed {
            slot.changed = true;
            self.changed.push(Key::new(key));
        }
        true
    }

    /// Every key and value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.slots
            .iter()
            .filter(|(_, slot)| slot.live)
            .map(|(key, slot)| (key.as_bytes(), slot.value.as_slice()))
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The value of `key` as a little-endian `u64` (0 when absent or not 8 bytes long).
    pub fn get_u64(&self, key: &[u8]) -> u64 {
        self.get(key)
            .and_then(|value| <[u8; 8]>::try_from(value).ok())
            .map_or(0, u64::from_le_bytes)
    }

    /// Sets `key` to `value` as a little-endian `u64`.
    pub fn put_u64(&mut self, key: &[u8], value: u64) {
        self.put(key, &value.to_le_bytes());
    }

    /// Adds `amount` to the `u64` counter `key` (wrapping) and returns the new value: one
    /// lookup, no allocation once the key changed since the last checkpoint.
    pub fn add_u64(&mut self, key: &[u8], amount: u64) -> u64 {
        let Some(slot) = self.slots.get_mut(&Lookup::new(key)) else {
            self.put_u64(key, amount);
            return amount;
        };
        let current = match slot.value.as_u64() {
            Some(current) if slot.live => current,
            _ => 0,
        };
        let value = current.wrapping_add(amount);
        overwrite(
            slot,
            key,
            &value.to_le_bytes(),
            &mut self.live,
            &mut self.changed,
        );
        value
    }

    /// Whether anything changed since the last snapshot.
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty()
    }

    /// The changes since the last snapshot, as checkpoint `checkpoint`'s delta; the state
    /// then counts as unchanged. Costs one copy per changed value.
    pub fn take_changes(&mut self, checkpoint: u64) -> Delta {
        let mut delta = Delta::new(checkpoint);
        delta.spans.reserve(self.changed.len());
        delta.bytes.reserve(self.changed.len() * 16);
        for key in std::mem::take(&mut self.changed) {
            let Some(slot) = self.slots.get_mut(&key) else {
                continue;
            };
            slot.changed = false;
            if slot.live {
                delta.push(key.as_bytes(), Some(slot.value.as_slice()));
            } else {
                delta.push(key.as_bytes(), None);
                self.slots.remove(&key);
            }
        }
        delta
    }

    /// Replaces the whole state with `entries`, as unchanged.
    pub fn restore(&mut self, entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
        self.slots.clear();
        self.changed.clear();
        for (key, value) in entries {
            self.slots.insert(
                Key::new(&key),
                Slot {
                    value: Stored::from_vec(value),
                    live: true,
                    changed: false,
                },
            );
        }
        self.live = self.slots.len();
    }
}

/// Sets an existing slot's value, counting it live again and listing it as changed.
#[inline]
fn overwrite(slot: &mut Slot, key: &[u8], value: &[u8], live: &mut usize, changed: &mut Vec<Key>) {
    slot.value.set(value);
    if !slot.live {
        slot.live = true;
        *live += 1;
    }
    if !slot.changed {
        slot.changed = true;
        changed.push(Key::new(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_list_each_changed_key_once_with_its_last_value() {
        let mut state = KeyValueState::new();
        state.put(b"a", b"1");
        state.put(b"b", b"2");
        state.put(b"a", b"3");
        assert_eq!(state.add_u64(b"n", 2), 2);
        assert_eq!(state.add_u64(b"n", 3), 5);
        let delta = state.take_changes(7);
        assert_eq!(delta.checkpoint, 7);
        let five = 5u64.to_le_bytes();
        assert_eq!(
            delta.iter().collect::<Vec<_>>(),
            vec![
                (&b"a"[..], Some(&b"3"[..])),
                (&b"b"[..], Some(&b"2"[..])),
                (&b"n"[..], Some(&five[..])),
            ]
        );
        assert!(!state.has_changes());
        assert!(state.take_changes(8).is_empty());
        assert_eq!(state.get(b"a"), Some(&b"3"[..]));
        assert_eq!(state.len(), 3);
    }

    #[test]
    fn a_deletion_is_recorded_and_then_forgotten() {
        let mut state = KeyValueState::new();
        state.put(b"gone", b"x");
        state.take_changes(1);
        assert!(state.delete(b"gone"));
        assert!(!state.delete(b"gone"));
        assert_eq!(state.get(b"gone"), None);
        assert!(state.is_empty());
        let delta = state.take_changes(2);
        assert_eq!(delta.iter().collect::<Vec<_>>(), vec![(&b"gone"[..], None)]);
        // Deleted and written again before a snapshot: the snapshot has the new value.
        state.put(b"k", b"1");
        state.delete(b"k");
        state.put(b"k", b"2");
        assert_eq!(
            state.take_changes(3).iter().collect::<Vec<_>>(),
            vec![(&b"k"[..], Some(&b"2"[..]))]
        );
    }

    #[test]
    fn short_and_long_keys_are_told_apart() {
        let mut state = KeyValueState::new();
        let long = [7u8; 40];
        state.put(b"", b"empty");
        state.put(b"a", b"1");
        state.put(b"a\0", b"2");
        state.put(&[9u8; 16], b"16");
        state.put(&[9u8; 17], b"17");
        state.put(&long, b"long");
        assert_eq!(state.get(b""), Some(&b"empty"[..]));
        assert_eq!(state.get(b"a"), Some(&b"1"[..]));
        assert_eq!(state.get(b"a\0"), Some(&b"2"[..]));
        assert_eq!(state.get(&[9u8; 16]), Some(&b"16"[..]));
        assert_eq!(state.get(&[9u8; 17]), Some(&b"17"[..]));
        assert_eq!(state.get(&long), Some(&b"long"[..]));
        assert_eq!(state.get(&[7u8; 39]), None);
        assert_eq!(state.len(), 6);
        let delta = state.take_changes(1);
        assert_eq!(delta.len(), 6);
        assert!(delta.iter().any(|(key, _)| key == long));
    }

    #[test]
    fn a_restore_replaces_everything_and_changes_nothing() {
        let mut state = KeyValueState::new();
        state.put(b"old", b"1");
        state.restore(vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), vec![]),
        ]);
        assert_eq!(state.get(b"old"), None);
        assert_eq!(state.len(), 2);
        assert!(!state.has_changes());
        let mut keys: Vec<_> = state.iter().map(|(key, _)| key.to_vec()).collect();
        keys.sort();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    }
}
