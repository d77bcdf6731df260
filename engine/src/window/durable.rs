//! Windows backed by checkpointed state: the tuples open windows hold, and where the windows
//! stand, are kept in a stateful bolt's [`KeyValueState`], so a restarted or rolled-back task
//! rebuilds its open windows from the last checkpoint instead of losing them.
//!
//! Each tuple is one key (`w` and its sequence number, big-endian, so keys sort in arrival
//! order) holding its time and its fields as the tuple encoding has them; it is deleted when
//! the tuple leaves its last window. One more key holds the progress. A checkpoint therefore
//! writes only the tuples that came and went since the last one.

use super::buffer::Progress;
use super::runner::{WindowedBolt, WindowedBoltRunner};
use super::spec::WindowSpec;
use crate::component::{Bolt, ComponentError};
use crate::context::TopologyContext;
use crate::runtime::{BoltOutput, Tuple};
use crate::state::{KeyValueState, StatefulBolt};
use crate::topology::OutputDeclarer;
use crate::tuple::{DecodeError, decode_value};
use crate::value::OwnedValue;

/// The key of the windows' progress.
pub(crate) const PROGRESS_KEY: &[u8] = b"progress";

const TUPLE_TAG: u8 = b'w';

/// The key of tuple `seq`.
pub(crate) fn tuple_key(seq: u64) -> [u8; 9] {
    let mut key = [TUPLE_TAG; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence number of a tuple key; `None` for other keys.
pub(crate) fn seq_of(key: &[u8]) -> Option<u64> {
    match key {
        [TUPLE_TAG, seq @ ..] if seq.len() == 8 => {
            Some(u64::from_be_bytes(seq.try_into().expect("8 bytes")))
        }
        _ => None,
    }
}

/// A tuple's value in state, written into `value` (a buffer reused from tuple to tuple):
/// its time, then its encoded fields.
pub(crate) fn encode_tuple(time_ms: u64, fields: &[u8], value: &mut Vec<u8>) {
    value.clear();
    value.extend_from_slice(&time_ms.to_le_bytes());
    value.extend_from_slice(fields);
}

/// The time and values of a tuple kept by [`encode_tuple`].
pub(crate) fn decode_tuple(value: &[u8]) -> Result<(u64, Vec<OwnedValue>), DecodeError> {
    let Some((time, fields)) = value.split_first_chunk::<8>() else {
        return Err(DecodeError::ShortHeader {
            len: value.len(),
            header: 8,
        });
    };
    let mut values = Vec::new();
    let mut offset = 0;
    while offset < fields.len() {
        let (field, next) = decode_value(fields, offset, values.len())?;
        values.push(field.to_owned_value());
        offset = next;
    }
    Ok((u64::from_le_bytes(*time), values))
}

/// Where the windows stand, as kept in state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Saved {
    pub(crate) buffer: Progress,
    pub(crate) newest_ms: Option<u64>,
}

impl Saved {
    const BYTES: usize = 32;

    pub(crate) fn encode(&self) -> [u8; Self::BYTES] {
        let mut bytes = [0; Self::BYTES];
        let words = [
            self.buffer.since_evaluated,
            self.buffer.next_end,
            self.buffer.watermark,
            self.newest_ms.unwrap_or(u64::MAX),
        ];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::BYTES {
            return None;
        }
        let word = |index: usize| {
            u64::from_le_bytes(bytes[index * 8..index * 8 + 8].try_into().expect("8 bytes"))
        };
        Some(Self {
            buffer: Progress {
                since_evaluated: word(0),
                next_end: word(1),
                watermark: word(2),
            },
            newest_ms: (word(3) != u64::MAX).then(|| word(3)),
        })
    }
}

/// A [`WindowedBolt`] whose open windows are kept in checkpointed state; add it with
/// [`crate::TopologyBuilder::set_state_backed_windowed_bolt`].
///
/// Each input is acked once it is in the windows (the checkpoint keeps it, and a rollback
/// replays what came after the checkpoint); what a window's evaluation emits is anchored to
/// the input that closed it. With replayable sources, every input is in the windows exactly
/// once after any failure.
pub struct StateBackedWindows<B> {
    runner: WindowedBoltRunner<B>,
}

impl<B: WindowedBolt> StateBackedWindows<B> {
    /// Runs `bolt` over windows shaped by `spec`, kept in state.
    pub fn new(bolt: B, spec: WindowSpec) -> Self {
        Self {
            runner: WindowedBoltRunner::new(bolt, spec),
        }
    }
}

impl<B: WindowedBolt> StatefulBolt for StateBackedWindows<B> {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        Bolt::declare_outputs(&self.runner, declarer);
    }

    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        Bolt::prepare(&mut self.runner, context)
    }

    fn restored(&mut self, state: &KeyValueState) {
        self.runner.restore_from(state);
    }

    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    ) {
        self.runner.process(input, output, Some(state));
    }

    fn cleanup(&mut self, _state: &KeyValueState) {
        self.runner.bolt_mut().cleanup();
    }
}

impl<B> std::fmt::Debug for StateBackedWindows<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBackedWindows")
            .field("runner", &self.runner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::FieldEncoder;
    use crate::value::Value;

    #[test]
    fn tuple_keys_sort_in_arrival_order_and_read_back() {
        let keys: Vec<[u8; 9]> = [0u64, 1, 255, 256, 1 << 40].map(tuple_key).into();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        for (key, seq) in keys.iter().zip([0u64, 1, 255, 256, 1 << 40]) {
            assert_eq!(seq_of(key), Some(seq));
        }
        assert_eq!(seq_of(PROGRESS_KEY), None);
        assert_eq!(seq_of(b"w123"), None);
    }

    #[test]
    fn a_tuple_reads_back_as_it_was_written() {
        let mut encoder = FieldEncoder::default();
        encoder.encode(&[Value::Str("word"), Value::U64(7), Value::I64(-3)]);
        let mut value = Vec::new();
        encode_tuple(1_234, encoder.bytes(), &mut value);
        let (time, values) = decode_tuple(&value).unwrap();
        assert_eq!(time, 1_234);
        assert_eq!(
            values,
            vec![
                OwnedValue::Str("word".into()),
                OwnedValue::U64(7),
                OwnedValue::I64(-3)
            ]
        );
        assert!(decode_tuple(&value[..5]).is_err());
        assert!(decode_tuple(&value[..value.len() - 1]).is_err());
    }

    #[test]
    fn progress_reads_back_as_it_was_written() {
        for saved in [
            Saved::default(),
            Saved {
                buffer: Progress {
                    since_evaluated: 3,
                    next_end: u64::MAX,
                    watermark: 99,
                },
                newest_ms: Some(120),
            },
        ] {
            assert_eq!(Saved::decode(&saved.encode()), Some(saved));
        }
        assert_eq!(Saved::decode(&[0; 31]), None);
    }
}
