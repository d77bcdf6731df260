//! One bolt task with its emitter, topology and run state, for the unit tests of the parts
//! that emit, ack and execute (collector, input runs, emitter).

use std::sync::Arc;

use squall_ringbuf::record::{RecordConsumer, heap_ring};
use squall_ringbuf::wait::BusySpin;

use super::collector::{BoltOutput, TaskOutput, TaskStreams};
use super::emitter::{Emitter, StreamRoute};
use super::outputs::{Outputs, Route};
use super::ports::OutputPort;
use super::run_state::RunState;
use super::tree_workers::TreeWorkers;
use crate::grouping::router::Router;
use crate::ids::{StreamId, TaskId};
use crate::metrics::{RingCounters, TaskMeter};
use crate::runtime::acker_traffic::{AckerReport, AckerTraffic};
use crate::testing::{NullBolt, NullSpout};
use crate::topology::Topology;
use crate::tuple::{TupleRef, encode_record};
use crate::{TopologyBuilder, TopologyConfig, Value};

/// The stream every fixture task emits on, and its inputs' stream.
pub(crate) const STREAM: StreamId = StreamId(StreamId::FIRST_USER);

/// An output port over a heap ring of `capacity` bytes, and the ring's reader.
pub(crate) fn output(capacity: usize) -> (OutputPort, RecordConsumer) {
    let (producer, consumer) = heap_ring(capacity);
    let counters = Arc::new(RingCounters::default());
    (
        OutputPort::local(producer, Arc::new(BusySpin), counters),
        consumer,
    )
}

/// An emitter for a thread that runs task 1; task 2, behind port 0, is the topology's one
/// acker; task 3 runs nowhere. Returns the reader of the thread's own queue and of port 0.
pub(crate) fn emitter(capacity: usize) -> (Emitter, RecordConsumer, RecordConsumer) {
    let (local, local_reader) = output(capacity);
    let (port, port_reader) = output(capacity);
    let routes = [Route::Nowhere, Route::Local, Route::Port(0), Route::Nowhere];
    let emitter = Emitter::new(
        Outputs::new(routes.into(), vec![port], local, usize::MAX),
        AckerTraffic::new(
            TaskId(2)..TaskId(3),
            3,
            |_| true,
            crate::runtime::tree_root::RootLayout::new(3, None, 1),
        ),
        7,
        TreeWorkers::local(3),
    );
    (emitter, local_reader, port_reader)
}

/// Every record waiting in `reader`, copied out.
pub(crate) fn records(reader: &mut RecordConsumer) -> Vec<Vec<u8>> {
    reader.read(usize::MAX).iter().map(<[u8]>::to_vec).collect()
}

/// Task 1, a bolt of component "sink" whose one stream goes to task 2.
pub(crate) struct OneTask {
    pub(crate) emitter: Emitter,
    pub(crate) port_reader: RecordConsumer,
    pub(crate) task: TaskStreams,
    pub(crate) run_state: RunState,
    pub(crate) topology: Arc<Topology>,
}

impl OneTask {
    pub(crate) fn new() -> Self {
        let (emitter, _, port_reader) = emitter(1 << 16);
        let route = StreamRoute {
            id: STREAM,
            name: crate::ids::DEFAULT_STREAM.to_owned(),
            field_count: 1,
            direct: false,
            routers: vec![Router::Global { target: TaskId(2) }],
            stays_in_worker: true,
        };
        let task = TaskStreams {
            task: TaskId(1),
            component_id: "sink".to_owned(),
            streams: vec![route],
            default_stream: Some(0),
            meter: TaskMeter::new(1, 1, usize::from(STREAM.0) + 1),
            peer_reach: 0,
        };
        let mut builder = TopologyBuilder::new();
        builder.set_spout("source", || NullSpout::declaring(&["n"]), 1);
        builder
            .set_bolt("sink", || NullBolt::declaring(&["n"]), 1)
            .shuffle_grouping("source");
        let topology = builder
            .build("fixture", TopologyConfig::default())
            .expect("a valid topology");
        Self {
            emitter,
            port_reader,
            task,
            run_state: RunState::new("fixture".to_owned(), 1),
            topology,
        }
    }

    /// The task's output, its unanchored emits anchored to `auto_anchor`.
    pub(crate) fn output<'a>(
        &'a mut self,
        auto_anchor: Option<&'a super::anchor::Anchor>,
    ) -> BoltOutput<'a> {
        BoltOutput {
            out: TaskOutput {
                emitter: &mut self.emitter,
                run_state: &self.run_state,
                task: &mut self.task,
            },
            auto_anchor,
        }
    }

    /// The records the task sent to task 2, as (value, anchor pairs).
    pub(crate) fn sent(&mut self) -> Vec<(u64, Vec<(u64, u64)>)> {
        self.emitter.outputs.publish_all();
        records(&mut self.port_reader)
            .iter()
            .flat_map(|record| TupleRef::members(record).expect("a well-formed record"))
            .map(|view| {
                assert_eq!(view.dest_task(), TaskId(2));
                (
                    view.get_u64(0).expect("a u64"),
                    view.anchors().iter().collect(),
                )
            })
            .collect()
    }

    /// The reports gathered for the acker, in order.
    pub(crate) fn reports(&mut self) -> Vec<AckerReport> {
        let mut reports = Vec::new();
        while let Some((acker, entries)) = self.emitter.acker_traffic.reports.take_next() {
            assert_eq!(acker, TaskId(2));
            reports.extend(entries);
        }
        reports
    }
}

/// An input record for task 1 carrying `value`, in the trees of `anchors`.
pub(crate) fn input(value: u64, anchors: &[(u64, u64)]) -> Vec<u8> {
    let mut record = Vec::new();
    encode_record(
        &mut record,
        TaskId(1),
        TaskId(9),
        STREAM.0,
        anchors,
        &[Value::U64(value)],
    );
    record
}
