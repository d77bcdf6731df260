//! Topology and component configuration, with documented defaults.

use std::time::Duration;

use serde_json::{Map as JsonMap, Value as JsonValue};
use squall_ringbuf::WaitStrategyKind;

/// What an executor thread does with a task whose code panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PanicPolicy {
    /// Report the panic, drop the task's instance and start a fresh one from the component's
    /// factory (`open`/`prepare` run again). The tuple being processed fails (and is replayed
    /// if it was tracked); the rest of the topology keeps running. The default.
    #[default]
    RestartTask,
    /// Report the panic and stop the whole topology.
    StopTopology,
}

/// Whether executor threads are pinned to cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pinning {
    /// Pin each executor thread to its own core when there are at least as many cores as
    /// threads; otherwise leave them to the scheduler and say so in the start-up log.
    #[default]
    Auto,
    /// Never pin.
    Never,
}

/// Whether executors of different components share threads ("chaining").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chaining {
    /// Give every executor its own thread when the machine has enough cores; otherwise pack
    /// executors onto one thread per core, in topological order, so no core runs two busy
    /// threads. The default.
    #[default]
    Auto,
    /// One thread per executor, as in Storm.
    Never,
    /// Pack executors onto this many threads, in topological order.
    Threads(usize),
    /// This many lanes: threads each running one parallel instance of every component (what
    /// Flink calls slot sharing): the k-th executor of each component runs on thread
    /// `k mod threads`. A data-parallel topology (n spouts → fields → n counters) then
    /// keeps a spout and a counter on every core, and only the records whose key belongs
    /// to another core cross between threads. Records flow between threads both ways; the
    /// overflow buffers behind every ring keep that free of deadlocks.
    Lanes(usize),
}

/// Settings of one topology. Every field has a default; see [`TopologyConfig::default`].
#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// Worker processes the topology runs in (1 in local mode). Default 1.
    pub workers: usize,
    /// Acker tasks. `None`: one per worker. `Some(0)` disables tracking: a spout's tracked
    /// emits are acked as soon as they are sent.
    pub ackers: Option<usize>,
    /// Most tracked tuple trees in flight per spout task; the spout is not asked for more
    /// while it has this many. Default `None` (no limit).
    pub max_spout_pending: Option<u32>,
    /// A tuple tree not completed this long after its spout emitted it fails. Default 30 s.
    pub message_timeout: Duration,
    /// How idle executor threads wait for input. Default spin, then yield, then park.
    pub wait_strategy: WaitStrategyKind,
    /// Bytes of each ring between two executor threads. Default 256 KiB.
    pub ring_bytes: usize,
    /// Most bytes of records an executor thread queues for one peer worker beyond its
    /// outbound ring (a peer that is down, slow or out of credit). Past this the thread stops
    /// reading data, so the backlog pushes back upstream; spouts feeding that peer stop as
    /// soon as anything is queued for it. Default 32 MiB.
    pub peer_overflow_bytes: usize,
    /// Most records an executor takes from one input ring at a time. Default 256. A thread
    /// running more than 16 bolts that take runs reads 16 per such bolt, up to 1,024, so
    /// that each gets runs of about 16 once their input is put in task order.
    pub input_batch: usize,
    /// Most `next_tuple` calls per spout between two publishes, and the tuples after which
    /// a pass stops calling a spout that emits many per call. Default 256, as many as
    /// `input_batch`: a pass then emits about as many tuples as it reads, and a consumer that
    /// keeps up reads the spout's records in runs of that length rather than chasing its
    /// writes (with 64, acked `const-null` ran at four fifths of the speed).
    pub spout_batch: usize,
    /// Pinning of executor threads. Default [`Pinning::Auto`].
    pub pinning: Pinning,
    /// Sharing of threads between executors. Default [`Chaining::Auto`].
    pub chaining: Chaining,
    /// What happens when a task panics. Default [`PanicPolicy::RestartTask`].
    pub on_panic: PanicPolicy,
    /// One in this many executed tuples has its execute latency measured. Default 64.
    pub latency_sample_every: u32,
    /// How long a spout that emitted nothing is left alone before it is asked again (grows
    /// from zero up to this while it stays idle). Default 1 ms.
    pub spout_idle_backoff: Duration,
    /// Free-form settings handed to every component (and to multi-language components in
    /// their handshake), under Storm's key names where one exists.
    pub user: JsonMap<String, JsonValue>,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            ackers: None,
            max_spout_pending: None,
            message_timeout: Duration::from_secs(30),
            wait_strategy: WaitStrategyKind::SpinThenPark,
            ring_bytes: 256 * 1024,
            peer_overflow_bytes: 32 << 20,
            input_batch: 256,
            spout_batch: 256,
            pinning: Pinning::Auto,
            chaining: Chaining::Auto,
            on_panic: PanicPolicy::RestartTask,
            latency_sample_every: 64,
            spout_idle_backoff: Duration::from_millis(1),
            user: JsonMap::new(),
        }
    }
}

impl TopologyConfig {
    /// The number of acker tasks this configuration asks for.
    pub fn acker_count(&self) -> usize {
        self.ackers.unwrap_or(self.workers.max(1))
    }

    /// Sets [`workers`](Self::workers).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets [`ackers`](Self::ackers).
    pub fn with_ackers(mut self, ackers: usize) -> Self {
        self.ackers = Some(ackers);
        self
    }

    /// Sets [`max_spout_pending`](Self::max_spout_pending).
    pub fn with_max_spout_pending(mut self, pending: u32) -> Self {
        self.max_spout_pending = Some(pending);
        self
    }

    /// Sets [`peer_overflow_bytes`](Self::peer_overflow_bytes).
    pub fn with_peer_overflow_bytes(mut self, bytes: usize) -> Self {
        self.peer_overflow_bytes = bytes;
        self
    }

    /// Sets [`message_timeout`](Self::message_timeout).
    pub fn with_message_timeout(mut self, timeout: Duration) -> Self {
        self.message_timeout = timeout;
        self
    }

    /// Sets [`wait_strategy`](Self::wait_strategy).
    pub fn with_wait_strategy(mut self, wait: WaitStrategyKind) -> Self {
        self.wait_strategy = wait;
        self
    }

    /// Sets [`chaining`](Self::chaining).
    pub fn with_chaining(mut self, chaining: Chaining) -> Self {
        self.chaining = chaining;
        self
    }

    /// Sets [`pinning`](Self::pinning).
    pub fn with_pinning(mut self, pinning: Pinning) -> Self {
        self.pinning = pinning;
        self
    }

    /// Sets [`on_panic`](Self::on_panic).
    pub fn with_on_panic(mut self, policy: PanicPolicy) -> Self {
        self.on_panic = policy;
        self
    }

    /// Sets one free-form setting.
    pub fn with_user(mut self, key: impl Into<String>, value: impl Into<JsonValue>) -> Self {
        self.user.insert(key.into(), value.into());
        self
    }
}

/// Settings of one component, on top of its topology's.
#[derive(Debug, Clone, Default)]
pub struct ComponentConfig {
    /// Deliver a tick tuple to every task of the component this often. Default none.
    pub tick_frequency: Option<Duration>,
    /// Bolts only: ack every input once `execute` returns unless the bolt acked or failed
    /// it itself, and anchor every emit to the input (Storm's `BasicBolt`). Default off.
    pub auto_ack: bool,
    /// Free-form settings, merged over the topology's for this component's tasks.
    pub user: JsonMap<String, JsonValue>,
}
