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
        let ids = slots.iter().map(|slot| worker_id(&slot.id)).collect();
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
