//! The fields-grouping hash: fixed and documented, so every worker in a cluster — whatever
//! its build — routes the same key to the same task.
//!
//! The key of a tuple is the concatenation of the encoded bytes (tag byte and payload, see
//! [`crate::tuple`]) of its key fields, in the order the grouping names them. Its hash is
//! XXH3-64 with seed 0 over those bytes; the target is `targets[hash % targets.len()]`, where
//! `targets` are the subscriber's task ids in ascending order. Partial-key grouping takes its
//! second candidate from the same key with seed [`SECOND_CANDIDATE_SEED`].
//!
//! Because the tag is part of the key, a `u64` 7 and an `i64` 7 are different keys.

use strength_reduce::StrengthReducedU64;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Seed of the second hash of partial-key grouping.
pub const SECOND_CANDIDATE_SEED: u64 = 0x5155_414c_4c32_4e44;

/// Most bytes of key fields hashed without a streaming hasher.
const INLINE_KEY_BYTES: usize = 256;

/// The fields hash of a key made of one field's encoded bytes.
#[inline]
pub fn key_hash(encoded_field: &[u8]) -> u64 {
    xxh3_64(encoded_field)
}

/// The fields hash of a key made of several fields' encoded bytes, in order.
pub fn multi_key_hash<'a>(fields: impl Iterator<Item = &'a [u8]> + Clone, seed: u64) -> u64 {
    let total: usize = fields.clone().map(<[u8]>::len).sum();
    if total <= INLINE_KEY_BYTES {
        let mut key = [0u8; INLINE_KEY_BYTES];
        let mut at = 0;
        for field in fields {
            key[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        xxh3_64_with_seed(&key[..at], seed)
    } else {
        let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(seed);
        for field in fields {
            hasher.update(field);
        }
        hasher.digest()
    }
}

/// Index into `task_count` targets of the key whose hash is `hash`.
#[inline]
pub fn target_index(hash: u64, task_count: usize) -> usize {
    (hash % task_count as u64) as usize
}

/// [`target_index`] for one number of targets, fixed when a router is built: the remainder
/// by multiplications instead of a 64-bit division, which costs tens of cycles per keyed
/// tuple.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TargetIndexer(StrengthReducedU64);

impl TargetIndexer {
    /// For `task_count` targets (at least one).
    pub(crate) fn new(task_count: usize) -> Self {
        Self(StrengthReducedU64::new(task_count.max(1) as u64))
    }

    /// The same as `target_index(hash, task_count)`.
    #[inline(always)]
    pub(crate) fn index(self, hash: u64) -> usize {
        (hash % self.0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::FieldEncoder;
    use crate::value::Value;
    use proptest::prelude::*;

    /// Golden values: if these change, clusters running mixed builds would split keys.
    #[test]
    fn hash_of_encoded_keys_is_fixed() {
        let mut encoder = FieldEncoder::default();
        encoder.encode(&[Value::Str("apple"), Value::U64(7)]);
        assert_eq!(encoder.field(0), b"\x05\x05\x00\x00\x00apple");
        assert_eq!(
            key_hash(encoder.field(0)),
            xxh3_64(b"\x05\x05\x00\x00\x00apple")
        );
        let both = multi_key_hash([encoder.field(0), encoder.field(1)].into_iter(), 0);
        assert_eq!(
            both,
            xxh3_64(b"\x05\x05\x00\x00\x00apple\x03\x07\x00\x00\x00\x00\x00\x00\x00")
        );
        // Cross-checked against the reference XXH3 implementation (Python's `xxhash`).
        assert_eq!(key_hash(encoder.field(1)), 0xaee9_5b96_1d50_b513);
        assert_eq!(both, 0x8951_76b4_cdd2_8972);
    }

    #[test]
    fn long_keys_hash_like_their_concatenation() {
        let long = vec![b'x'; 300];
        let parts = [&long[..100], &long[100..]];
        assert_eq!(
            multi_key_hash(parts.into_iter(), 9),
            xxh3_64_with_seed(&long, 9)
        );
    }

    proptest! {
        #[test]
        fn the_indexer_picks_what_the_remainder_picks(hash: u64, task_count in 1usize..100_000) {
            prop_assert_eq!(
                TargetIndexer::new(task_count).index(hash),
                target_index(hash, task_count)
            );
        }
    }

    #[test]
    fn the_indexer_agrees_at_the_edges() {
        for task_count in [1, 2, 3, 7, 16, 64, 1000, 65_535] {
            let indexer = TargetIndexer::new(task_count);
            for hash in [0, 1, u64::MAX, u64::MAX - 1, 1 << 63, task_count as u64 - 1] {
                assert_eq!(indexer.index(hash), target_index(hash, task_count));
            }
        }
    }
}
