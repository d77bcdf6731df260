//! The data path allocates nothing per tuple once warm: a counting global allocator watches
//! every thread while fixed-size tuples flow through a two-hop pipeline, untracked and
//! tracked, into a sink that takes them one by one or in runs (`Bolt::execute_batch`), its
//! tasks' input put in task order when they share a thread; and through the word count,
//! whose source emits in batches (`SpoutOutput::emit_batch`) to counters keyed by word.
//!
//! Untracked, nothing at all is allocated. Tracked, acker traffic is never throttled (acks
//! must flow for anything to complete), so its overflow buffers may still grow to a new
//! high-water mark now and then; that is growth, not a per-tuple cost, and is bounded here
//! to a handful per hundred thousand tuples.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use squall_builtin::components::{ConstSpout, IdentityBolt};
use squall_builtin::topologies::{self, BuiltinOptions};
use squall_core::{
    Bolt, BoltOutput, Chaining, InputBatch, Topology, TopologyBuilder, TopologyConfig, Tuple,
};
use squall_test_support::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// A sink that takes its input in runs, counts it and acks it.
struct RunSink(Arc<AtomicU64>);

impl Bolt for RunSink {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
        output.ack(input);
    }

    fn execute_batch(&mut self, batch: &mut InputBatch<'_>) {
        let mut seen = 0;
        batch.for_each(|input, output| {
            seen += 1;
            output.ack(input);
        });
        self.0.fetch_add(seen, Ordering::Relaxed);
    }

    fn wants_runs(&self) -> bool {
        true
    }
}

/// const → identity → a sink taking runs, as `const_id_null` but for the sink.
///
/// The sink has four tasks: on threads of their own, the identity fans out to four rings,
/// which fill now and then on two cores; sharing one thread, their input is put in task
/// order.
fn const_id_runs(options: &BuiltinOptions, received: &Arc<AtomicU64>) -> Arc<Topology> {
    let sinks = 4;
    let mut builder = TopologyBuilder::new();
    let source = options.source.clone();
    builder.set_spout("const", move || ConstSpout::new(1, source.clone()), 1);
    builder
        .set_bolt("identity", || IdentityBolt, 1)
        .shuffle_grouping("const");
    let received = Arc::clone(received);
    builder
        .set_bolt("runs", move || RunSink(Arc::clone(&received)), sinks)
        .shuffle_grouping("identity");
    builder
        .build("no-allocation-runs", options.config.clone())
        .unwrap()
}

/// The topology whose data path is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// const → identity → null.
    ConstIdNull,
    /// const → identity → a sink of four tasks taking runs.
    Runs,
    /// The word count: word batches → fields grouping → counters taking runs.
    Words,
}

fn steady_state_allocations(tracked: bool, chaining: Chaining, path: Path) -> (u64, u64) {
    let mut options = BuiltinOptions {
        config: TopologyConfig::default()
            .with_ackers(usize::from(tracked))
            .with_chaining(chaining)
            .with_max_spout_pending(10_000)
            // Short, so every map reaches its working size during the warm-up.
            .with_message_timeout(Duration::from_millis(300)),
        ..BuiltinOptions::default()
    };
    options.source.tracked = tracked;
    let built = match path {
        Path::Words => topologies::wordcount("no-allocation-words", false, &options),
        _ => topologies::const_id_null("no-allocation", &options),
    }
    .unwrap();
    let run_sink = Arc::new(AtomicU64::new(0));
    let topology = match path {
        Path::Runs => const_id_runs(&options, &run_sink),
        _ => built.topology.clone(),
    };
    let received = || match path {
        Path::Runs => run_sink.load(Ordering::Relaxed),
        _ => built.sinks.received.total(),
    };
    let running = squall_core::run(topology).unwrap();
    // Warm up: every map, buffer and histogram reaches its working size.
    std::thread::sleep(Duration::from_millis(500));
    let tuples_before = received();
    let allocations_before = CountingAllocator::process_allocations();
    std::thread::sleep(Duration::from_millis(500));
    let allocations = CountingAllocator::process_allocations() - allocations_before;
    let tuples = received() - tuples_before;
    options.source.switch.turn_off();
    assert!(running.kill(Duration::from_secs(30)).drained);
    (allocations, tuples)
}

/// One test, so no other test's set-up runs (and allocates) while this one counts.
#[test]
fn tuples_allocate_nothing_once_warm() {
    for (tracked, chaining, path) in [
        (false, Chaining::Never, Path::ConstIdNull),
        (false, Chaining::Threads(1), Path::ConstIdNull),
        (true, Chaining::Never, Path::ConstIdNull),
        (true, Chaining::Threads(1), Path::ConstIdNull),
        (false, Chaining::Never, Path::Runs),
        (false, Chaining::Threads(1), Path::Runs),
        (true, Chaining::Threads(1), Path::Runs),
        (false, Chaining::Never, Path::Words),
        (false, Chaining::Threads(1), Path::Words),
        (true, Chaining::Threads(1), Path::Words),
    ] {
        let (allocations, tuples) = steady_state_allocations(tracked, chaining, path);
        assert!(tuples > 50_000, "only {tuples} tuples flowed");
        let allowed = if tracked { tuples / 20_000 } else { 0 };
        assert!(
            allocations <= allowed,
            "{allocations} allocations for {tuples} tuples (tracked: {tracked}, {chaining:?}, {path:?})"
        );
    }
}
