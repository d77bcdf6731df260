//! The windowed word counter of the `wordcount-windowed` benchmark: the word count's
//! counting done by a windowed bolt, to measure what windowing costs.

use squall_core::TaskId;
use squall_core::component::ComponentError;
use squall_core::context::TopologyContext;
use squall_core::window::{Window, WindowOutput, WindowedBolt};

use super::components::{SinkMeters, SinkProbes};
use super::counts::WordMap;
use super::probe::WordCountProbe;

/// Counts word ids (field 0) window by window, adding each window's counts to its totals,
/// and records each tuple's latency (stamp in field 1) when its window is evaluated;
/// reports its totals to the probe when it stops.
#[derive(Debug)]
pub struct WindowedCountBolt {
    by_id: WordMap<u64, u64>,
    probe: WordCountProbe,
    meters: SinkMeters,
    task: TaskId,
}

impl WindowedCountBolt {
    /// A counter reporting to `probe` and `sinks`.
    pub fn new(probe: WordCountProbe, sinks: &SinkProbes) -> Self {
        let size = probe.vocabulary().len();
        Self {
            by_id: WordMap::with_capacity_and_hasher(size, Default::default()),
            probe,
            meters: SinkMeters::new(sinks),
            task: TaskId(0),
        }
    }
}

impl WindowedBolt for WindowedCountBolt {
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.task = context.task_id();
        Ok(())
    }

    fn execute(&mut self, window: &Window<'_>, output: &mut WindowOutput<'_, '_>) {
        for tuple in window.iter() {
            let Some(id) = tuple.u64(0) else {
                output.report_error("a windowed word count got a tuple without a word id");
                continue;
            };
            *self.by_id.entry(id).or_insert(0) += 1;
            self.meters.received.add(1);
            if let Some(stamp) = tuple.u64(1) {
                self.meters.latency.record_since(stamp);
            }
        }
    }

    fn cleanup(&mut self) {
        self.meters.latency.flush();
        self.probe
            .report_id_counts(self.task, std::mem::take(&mut self.by_id));
    }
}
