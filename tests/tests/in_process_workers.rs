//! Several workers of one topology in one process, linked through an in-process hub: the
//! workers, executors, transports and wire protocol of a cluster, with links a test can cut
//! and pause at will. Every message is tracked and its outcome logged (`ledger`), so the
//! tests check exact counts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall::worker::{Worker, WorkerOptions, WorkerPlan, WorkerSlot, worker_id};
use squall::{Topology, TopologyBuilder, TopologyConfig};
use squall_net::transport::InProcessHub;
use squall_net::{ClusterSecret, WorkerId};
use squall_tests::ledger::{LedgerArgs, LedgerBolt, LedgerCheck, LedgerSpout, RelayBolt};

/// Workers of one topology in this process, sharing one hub.
struct InProcessWorkers {
    hub: Arc<InProcessHub>,
    workers: Vec<Worker>,
    ids: Vec<WorkerId>,
}

impl InProcessWorkers {
    /// Starts `count` workers of `topology`; `place` says which worker runs the n-th
    /// executor of a component.
    fn start(topology: &Arc<Topology>, count: usize, place: impl Fn(&str, usize) -> usize) -> Self {
        Self::start_paused(topology, count, place, &[])
    }

    /// As [`start`](Self::start), with the directions `(from, to)` (worker indices) paused
    /// before any worker starts, so that not one frame crosses them until resumed.
    fn start_paused(
        topology: &Arc<Topology>,
        count: usize,
        place: impl Fn(&str, usize) -> usize,
        paused: &[(usize, usize)],
    ) -> Self {
        let mut slots: Vec<WorkerSlot> = (0..count)
            .map(|index| WorkerSlot {
                id: format!("in-process:{index}"),
                host: "127.0.0.1".to_owned(),
                port: 0,
                executors: Vec::new(),
            })
            .collect();
        let mut seen = std::collections::BTreeMap::<usize, usize>::new();
        for (index, executor) in topology.executors().iter().enumerate() {
            let nth = seen.entry(executor.component).or_default();
            let component = topology.components()[executor.component].id();
            slots[place(component, *nth)].executors.push(index);
            *nth += 1;
        }
        let hub = InProcessHub::new();
        let secret = ClusterSecret::new(*b"in-process workers test secret").unwrap();
        let mut options = WorkerOptions::new(secret);
        options.in_process = Some(Arc::clone(&hub));
        let ids: Vec<WorkerId> = slots.iter().map(|slot| worker_id(&slot.id)).collect();
        for &(from, to) in paused {
            hub.pause(ids[from], ids[to]);
        }
        let workers = (0..count)
            .map(|this_worker| {
                let plan = WorkerPlan {
                    topology_id: format!("{}-1", topology.name()),
                    topology: topology.name().to_owned(),
                    cluster_id: "in-process".to_owned(),
                    version: 1,
                    workers: slots.clone(),
                    this_worker,
                    parallelism: Default::default(),
                    artifact_dir: PathBuf::from("."),
                    transport: "mio".to_owned(),
                    args: Vec::new(),
                    active: true,
                };
                Worker::start(Arc::clone(topology), plan, options.clone()).unwrap()
            })
            .collect();
        Self { hub, workers, ids }
    }

    /// Trees failed so far by the spout tasks of `component`, over every worker.
    fn failed(&self, component: &str) -> u64 {
        self.counter(component, |counters| counters.failed)
    }

    fn counter(
        &self,
        component: &str,
        pick: impl Fn(&squall::metrics::TaskCounters) -> u64,
    ) -> u64 {
        self.workers
            .iter()
            .flat_map(|worker| worker.running().metrics().tasks)
            .filter(|task| task.component == component)
            .map(|task| pick(&task.counters))
            .sum()
    }

    fn shutdown(self) {
        for worker in self.workers {
            worker.shutdown(Duration::from_secs(1));
        }
    }
}

fn ledger(messages: u64, dir: &Path, rate: u64) -> LedgerArgs {
    std::fs::create_dir_all(dir).unwrap();
    LedgerArgs {
        name: "wordcount".to_owned(),
        messages,
        state_dir: dir.to_owned(),
        spouts: 1,
        relays: 1,
        counters: 1,
        workers: 1,
        timeout_ms: 20_000,
        pending: 200,
        rate,
    }
}

/// Waits until every message of `dir`'s ledger is acked; returns the ledger.
fn wait_for_acks(dir: &Path, messages: u64, timeout: Duration) -> LedgerCheck {
    let deadline = Instant::now() + timeout;
    loop {
        let check = LedgerCheck::read(dir);
        if check.acked.len() as u64 >= messages {
            return check;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {messages} messages of {} acked after {timeout:?}",
            check.acked.len(),
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spouts and counters on worker 0, relays on worker 1: every tree crosses the link twice.
#[test]
fn two_workers_exchange_tuples_and_everything_is_acked_exactly() {
    let root = tempfile::tempdir().unwrap();
    let messages = 20_000;
    let args = LedgerArgs {
        spouts: 2,
        relays: 2,
        counters: 2,
        ..ledger(messages, root.path(), 0)
    };
    let mut builder = TopologyBuilder::new();
    let spout_args = args.clone();
    builder.set_spout("messages", move || LedgerSpout::new(&spout_args), 2);
    builder
        .set_bolt("relay", || RelayBolt, 2)
        .shuffle_grouping("messages");
    let bolt_args = args.clone();
    builder
        .set_bolt("count", move || LedgerBolt::new(&bolt_args), 2)
        .fields_grouping("relay", &["word"]);
    let config = TopologyConfig::default()
        .with_workers(2)
        .with_message_timeout(Duration::from_secs(20))
        .with_max_spout_pending(500);
    let topology = builder.build("two-workers", config).unwrap();
    let workers = InProcessWorkers::start(&topology, 2, |component, nth| match component {
        "relay" => 1,
        "messages" | "count" => 0,
        _ => nth % 2,
    });
    let check = wait_for_acks(root.path(), messages, Duration::from_secs(8));
    assert_eq!(
        check.assert_consistent(messages, true),
        0,
        "nothing replayed"
    );
    assert_eq!(check.processed.len() as u64, messages);
    assert_eq!(workers.failed("messages"), 0);
    assert_eq!(
        workers.counter("relay", |counters| counters.executed),
        messages,
        "each message crossed to the relays once"
    );
    workers.shutdown();
}

/// Worker A (0) runs the counters of `near` and the acker, B (1) both spouts, C (2) the
/// counter of `far`: `near` trees go B → A only, `far` trees B → C. Cutting B–C fails the
/// `far` trees in flight at once (no timeout is involved: it is 20 s) and not one `near`
/// tree, and once the link is back everything is acked.
#[test]
fn a_lost_link_fails_only_the_trees_routed_through_it() {
    let root = tempfile::tempdir().unwrap();
    let (near_dir, far_dir) = (root.path().join("near"), root.path().join("far"));
    let messages = 4_000;
    let near = ledger(messages, &near_dir, 2_000);
    let far = ledger(messages, &far_dir, 2_000);
    let mut builder = TopologyBuilder::new();
    let (near_spout, far_spout) = (near.clone(), far.clone());
    builder.set_spout("near", move || LedgerSpout::new(&near_spout), 1);
    builder.set_spout("far", move || LedgerSpout::new(&far_spout), 1);
    builder
        .set_bolt("near_count", move || LedgerBolt::new(&near), 1)
        .shuffle_grouping("near");
    builder
        .set_bolt("far_count", move || LedgerBolt::new(&far), 1)
        .shuffle_grouping("far");
    let config = TopologyConfig::default()
        .with_workers(3)
        .with_ackers(1)
        .with_message_timeout(Duration::from_secs(20))
        .with_max_spout_pending(200);
    let topology = builder.build("link-loss", config).unwrap();
    let workers = InProcessWorkers::start(&topology, 3, |component, _| match component {
        "near" | "far" => 1,
        "far_count" => 2,
        _ => 0,
    });
    let (b, c) = (workers.ids[1], workers.ids[2]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (LedgerCheck::read(&far_dir).acked.len() as u64) < messages / 5 {
        assert!(Instant::now() < deadline, "far trees flow before the cut");
        std::thread::sleep(Duration::from_millis(10));
    }
    // C stops taking B's records, so far trees are surely in flight on the link; then the
    // link goes, with them.
    workers.hub.pause(b, c);
    std::thread::sleep(Duration::from_millis(150));
    workers.hub.cut(b, c);
    std::thread::sleep(Duration::from_millis(300));
    let failed_while_cut = workers.failed("far");
    workers.hub.resume(b, c);
    workers.hub.restore(b, c);

    let far_check = wait_for_acks(&far_dir, messages, Duration::from_secs(8));
    let near_check = wait_for_acks(&near_dir, messages, Duration::from_secs(8));
    assert!(
        failed_while_cut > 0,
        "far trees in flight on the lost link fail at once"
    );
    assert_eq!(workers.failed("near"), 0, "no near tree failed");
    assert_eq!(
        near_check.assert_consistent(messages, true),
        0,
        "near trees were never replayed"
    );
    let replayed = far_check.assert_consistent(messages, true);
    eprintln!("{failed_while_cut} far trees failed with the link; {replayed} processed twice");
    workers.shutdown();
}

/// A paused consumer: worker 1 takes nothing from worker 0 for a while. Worker 0's
/// transport runs out of credit and stops sending (its executors stop on full rings); once
/// resumed, every message arrives and is acked once.
#[test]
fn a_paused_consumer_stops_the_sender_on_credit_and_nothing_is_lost() {
    let root = tempfile::tempdir().unwrap();
    let messages = 120_000;
    let args = ledger(messages, root.path(), 0);
    let mut builder = TopologyBuilder::new();
    let spout_args = args.clone();
    builder.set_spout("messages", move || LedgerSpout::new(&spout_args), 1);
    builder
        .set_bolt("count", move || LedgerBolt::new(&args), 1)
        .shuffle_grouping("messages");
    let config = TopologyConfig::default()
        .with_workers(2)
        .with_ackers(1)
        .with_message_timeout(Duration::from_secs(20))
        .with_max_spout_pending(100_000);
    let topology = builder.build("paused-consumer", config).unwrap();
    // Paused before the workers start: the spout emits at once, and a frame that crossed
    // before the pause would reach the counter.
    let workers = InProcessWorkers::start_paused(
        &topology,
        2,
        |component, _| match component {
            "count" => 1,
            _ => 0,
        },
        &[(0, 1)],
    );
    let (a, b) = (workers.ids[0], workers.ids[1]);
    let sender = &workers.workers[0];
    let deadline = Instant::now() + Duration::from_secs(5);
    while sender.transport_stats().credit_exhausted == 0 {
        assert!(
            Instant::now() < deadline,
            "the sender never ran out of credit: {:?}",
            sender.transport_stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stalled = sender.transport_stats().records_sent;
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sender.transport_stats().records_sent,
        stalled,
        "nothing is sent without credit"
    );
    assert_eq!(workers.counter("count", |counters| counters.executed), 0);
    workers.hub.resume(a, b);
    let check = wait_for_acks(root.path(), messages, Duration::from_secs(8));
    assert_eq!(
        check.assert_consistent(messages, true),
        0,
        "nothing replayed"
    );
    assert_eq!(workers.failed("messages"), 0);
    workers.shutdown();
}

/// A counter that keeps to a pace: it sleeps a millisecond every `every` tuples.
struct Paced {
    inner: LedgerBolt,
    every: u64,
    seen: u64,
}

impl squall::Bolt for Paced {
    fn declare_outputs(&self, declarer: &mut squall::OutputDeclarer) {
        self.inner.declare_outputs(declarer);
    }

    fn prepare(&mut self, context: &squall::TopologyContext) -> Result<(), squall::ComponentError> {
        self.inner.prepare(context)
    }

    fn execute(&mut self, input: &squall::Tuple<'_>, output: &mut squall::BoltOutput<'_>) {
        self.seen += 1;
        if self.seen.is_multiple_of(self.every) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.inner.execute(input, output);
    }
}

/// A slow consumer on worker 1 (at most 50 000 tuples a second) and a spout on worker 0
/// without a pending limit: the spout runs at the consumer's pace — credit and full rings
/// hold it back — so what is in flight stays bounded by the receive window and the rings
/// (about 5.3 MiB, some 90 000 of these tuples), well below the 150 000 messages, and
/// nothing is lost.
#[test]
fn a_slow_consumer_sets_the_pace_and_memory_stays_bounded() {
    let root = tempfile::tempdir().unwrap();
    let messages = 150_000;
    let args = ledger(messages, root.path(), 0);
    let mut builder = TopologyBuilder::new();
    let spout_args = args.clone();
    builder.set_spout("messages", move || LedgerSpout::new(&spout_args), 1);
    builder
        .set_bolt(
            "count",
            move || Paced {
                inner: LedgerBolt::new(&args),
                every: 50,
                seen: 0,
            },
            1,
        )
        .shuffle_grouping("messages");
    let config = TopologyConfig::default()
        .with_workers(2)
        .with_ackers(1)
        .with_message_timeout(Duration::from_secs(20));
    let topology = builder.build("slow-consumer", config).unwrap();
    let started = Instant::now();
    let workers = InProcessWorkers::start(&topology, 2, |component, _| match component {
        "count" => 1,
        _ => 0,
    });
    let mut most_in_flight = 0;
    let deadline = started + Duration::from_secs(9);
    loop {
        let emitted = workers.counter("messages", |counters| counters.emitted);
        let executed = workers.counter("count", |counters| counters.executed);
        most_in_flight = most_in_flight.max(emitted.saturating_sub(executed));
        if LedgerCheck::read(root.path()).acked.len() as u64 >= messages {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow consumer never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let check = LedgerCheck::read(root.path());
    assert_eq!(
        check.assert_consistent(messages, true),
        0,
        "nothing replayed"
    );
    assert!(
        elapsed >= Duration::from_millis(messages * 1000 / 50_000),
        "no faster than the consumer"
    );
    assert!(
        workers.workers[0].transport_stats().credit_exhausted > 0,
        "the consumer's pace reached the sender as credit"
    );
    eprintln!("{most_in_flight} tuples in flight at most, {elapsed:?} in all");
    assert!(
        most_in_flight < 100_000,
        "{most_in_flight} tuples in flight: the spout ran ahead of the consumer"
    );
    workers.shutdown();
}

/// Emitted tuples of the spouts of `component`, sampled until two samples `every` apart
/// agree (or `timeout` passes); returns the last sample and whether it settled.
fn settled_emits(workers: &InProcessWorkers, component: &str, every: Duration) -> (u64, bool) {
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut last = workers.counter(component, |counters| counters.emitted);
    loop {
        std::thread::sleep(every);
        let now = workers.counter(component, |counters| counters.emitted);
        if now == last {
            return (now, true);
        }
        if Instant::now() >= deadline {
            return (now, false);
        }
        last = now;
    }
}

/// A spout on worker 0 without a pending limit feeds a relay on worker 1 that sends to a
/// sink on worker 2; the link 1 → 2 stops taking records. The spout does not know worker 2,
/// and no other worker of it is congested, so only the relay's bound on what it queues for
/// worker 2 stops the flow: past `peer_overflow_bytes` the relay's thread stops reading,
/// worker 1 stops granting credit to worker 0, and the spout, whose tuples reach worker 1,
/// is no longer asked for tuples. Emitting stops instead of the relay's queue growing
/// without bound, and everything flows again once the link resumes.
#[test]
fn records_queued_for_a_stalled_peer_are_bounded_and_throttle_the_spouts_upstream() {
    let probes = squall::builtin::components::SinkProbes::default();
    let mut builder = TopologyBuilder::new();
    builder.set_spout(
        "values",
        || {
            squall::builtin::components::ConstSpout::new(
                7,
                squall::builtin::components::SourceOptions::default(),
            )
        },
        1,
    );
    builder
        .set_bolt("relay", || squall::builtin::components::IdentityBolt, 1)
        .shuffle_grouping("values");
    let sink_probes = probes.clone();
    builder
        .set_bolt(
            "sink",
            move || squall::builtin::components::NullBolt::new(&sink_probes),
            1,
        )
        .shuffle_grouping("relay");
    let config = TopologyConfig::default()
        .with_workers(3)
        .with_ackers(0)
        .with_peer_overflow_bytes(1 << 20);
    let topology = builder.build("stalled-peer", config).unwrap();
    let workers = InProcessWorkers::start(&topology, 3, |component, _| match component {
        "values" => 0,
        "relay" => 1,
        _ => 2,
    });
    let (relay, sink) = (workers.ids[1], workers.ids[2]);
    let flowing = Instant::now() + Duration::from_secs(8);
    while workers.counter("sink", |counters| counters.executed) < 100_000 {
        assert!(Instant::now() < flowing, "tuples never reached the sink");
        std::thread::sleep(Duration::from_millis(10));
    }

    workers.hub.pause(relay, sink);
    let (stalled_at, settled) = settled_emits(&workers, "values", Duration::from_millis(300));
    assert!(
        settled,
        "the spout kept emitting ({stalled_at} tuples) while its tuples could not leave worker 1"
    );
    std::thread::sleep(Duration::from_millis(500));
    let still = workers.counter("values", |counters| counters.emitted);
    assert_eq!(
        still, stalled_at,
        "the spout stays throttled while the peer is stalled"
    );
    // Both count the time: the spout, whose peer is congested, for the 800 ms since the
    // stall at least; the relay, whose thread stopped reading, as long as its overflow
    // stayed over the limit.
    let held = |component| workers.counter(component, |counters| counters.backpressured_nanos);
    assert!(
        held("values") > 500_000_000,
        "the spout counts {} ns held back",
        held("values")
    );
    assert!(held("relay") > 0, "the relay counts no time held back");
    let relayed = workers.counter("relay", |counters| counters.executed);
    let delivered = workers.counter("sink", |counters| counters.executed);
    eprintln!(
        "stalled: {stalled_at} emitted, {relayed} relayed, {delivered} delivered; \
         {} tuples held between the relay and the sink",
        relayed - delivered
    );
    // 1 MiB of overflow, the outbound ring and a 1 MiB credit window, of tuples of about
    // 40 bytes on the wire: some 100 000. Without the bound the relay reads on and queues
    // every tuple the spout makes, millions a second.
    assert!(
        relayed - delivered < 400_000,
        "{} tuples queued for the stalled peer",
        relayed - delivered
    );

    workers.hub.resume(relay, sink);
    let resumed = Instant::now() + Duration::from_secs(8);
    while workers.counter("values", |counters| counters.emitted) < stalled_at + 100_000 {
        assert!(Instant::now() < resumed, "the spout never resumed");
        std::thread::sleep(Duration::from_millis(10));
    }
    workers.shutdown();
}
