//! The stateful word counter of the `wordcount-stateful` benchmark: the word count's
//! counting done in checkpointed state, to measure what checkpoints cost.

use squall_core::component::ComponentError;
use squall_core::context::TopologyContext;
use squall_core::state::{KeyValueState, StatefulBolt};
use squall_core::{BoltOutput, TaskId, Tuple, ValueRef};

use super::components::{SinkMeters, SinkProbes};
use super::counts::WordMap;
use super::probe::WordCountProbe;

/// Counts words (field 0: a u64 id, or a string) in its state; reports the counts to the
/// probe when it stops.
#[derive(Debug)]
pub struct StatefulCountBolt {
    probe: WordCountProbe,
    meters: SinkMeters,
    task: TaskId,
}

impl StatefulCountBolt {
    /// A counter reporting to `probe` and `sinks`.
    pub fn new(probe: WordCountProbe, sinks: &SinkProbes) -> Self {
        Self {
            probe,
            meters: SinkMeters::new(sinks),
            task: TaskId(0),
        }
    }
}

impl StatefulBolt for StatefulCountBolt {
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.task = context.task_id();
        Ok(())
    }

    #[inline]
    fn execute(
        &mut self,
        input: &Tuple<'_>,
        state: &mut KeyValueState,
        output: &mut BoltOutput<'_>,
    ) {
        match input.get(0) {
            Ok(ValueRef::U64(id)) => state.add_u64(&id.to_le_bytes(), 1),
            Ok(ValueRef::Str(word)) => state.add_u64(word.as_bytes(), 1),
            _ => {
                output.fail(input);
                return;
            }
        };
        self.meters.record(input, 1);
        output.ack(input);
    }

    fn cleanup(&mut self, state: &KeyValueState) {
        self.meters.latency.flush();
        let mut counts = WordMap::with_capacity_and_hasher(state.len(), Default::default());
        for (key, _) in state.iter() {
            if let Ok(id) = <[u8; 8]>::try_from(key) {
                counts.insert(u64::from_le_bytes(id), state.get_u64(key));
            }
        }
        self.probe.report_id_counts(self.task, counts);
    }
}
