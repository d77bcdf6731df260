//! The named benchmark scenarios of `squall-bench`.

use std::fmt;

/// A benchmark scenario: which built-in topology runs and what it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Scenario {
    /// Constant spout → null bolt: the cost of one hop.
    ConstNull,
    /// Constant spout → identity bolt → null bolt: two hops and a re-emit.
    ConstIdNull,
    /// u64 word ids drawn from 10,000 → fields grouping → counting bolts; counts checked.
    Wordcount,
    /// The same word count with string words.
    WordcountStr,
    /// The u64 word count with its counters in tumbling 100 ms windows: what windowing
    /// costs.
    WordcountWindowed,
    /// The u64 word count with its counters in checkpointed state, checkpointed every
    /// second: what checkpoints cost.
    WordcountStateful,
    /// Loopback TCP with nothing of Squall in the way: the reference for the three below.
    TcpRaw,
    /// The payload topology with its spouts in one worker process and its sinks in
    /// another, linked by TCP through the mio driver.
    NetMio,
    /// The same, linked by TCP through the io_uring driver.
    NetUring,
    /// The same, linked by shared-memory rings.
    NetShm,
    /// Constant spout → Python (pystorm) identity bolt → null bolt, every tuple tracked.
    ShellBolt,
    /// The DRPC identity function through an in-process DRPC server: requests/s with 1 and
    /// 64 clients, latency at a fixed rate.
    Drpc,
    /// A tracked spout → the PostgreSQL write bolt upserting each tuple: acknowledged rows/s
    /// batched, and row at a time.
    Postgres,
}

impl Scenario {
    /// Every scenario, in the order `squall-bench` runs them by default.
    pub const ALL: [Scenario; 13] = [
        Scenario::ConstNull,
        Scenario::ConstIdNull,
        Scenario::Wordcount,
        Scenario::WordcountStr,
        Scenario::WordcountWindowed,
        Scenario::WordcountStateful,
        Scenario::TcpRaw,
        Scenario::NetMio,
        Scenario::NetUring,
        Scenario::NetShm,
        Scenario::ShellBolt,
        Scenario::Drpc,
        Scenario::Postgres,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ConstNull => "const-null",
            Scenario::ConstIdNull => "const-id-null",
            Scenario::Wordcount => "wordcount",
            Scenario::WordcountStr => "wordcount-str",
            Scenario::WordcountWindowed => "wordcount-windowed",
            Scenario::WordcountStateful => "wordcount-stateful",
            Scenario::NetMio => "net-mio",
            Scenario::NetUring => "net-uring",
            Scenario::NetShm => "net-shm",
            Scenario::TcpRaw => "tcp-raw",
            Scenario::ShellBolt => "shell-bolt",
            Scenario::Drpc => "drpc",
            Scenario::Postgres => "postgres",
        }
    }

    /// One line on what the scenario runs.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::ConstNull => "constant spout -> null bolt (one hop)",
            Scenario::ConstIdNull => "constant spout -> identity bolt -> null bolt (two hops)",
            Scenario::Wordcount => {
                "u64 word ids from 10,000 -> fields grouping -> count bolts, counts checked exactly"
            }
            Scenario::WordcountStr => {
                "string words from 10,000 -> fields grouping -> count bolts, counts checked exactly"
            }
            Scenario::WordcountWindowed => {
                "wordcount with windowed count bolts (tumbling 100 ms windows), counts checked exactly"
            }
            Scenario::WordcountStateful => {
                "wordcount with its counts in checkpointed state (1 s checkpoints, embedded backend), tracked, counts checked exactly"
            }
            Scenario::NetMio => {
                "100-byte tuples, spouts in one worker process, sinks in another: TCP via mio"
            }
            Scenario::NetUring => {
                "100-byte tuples, spouts in one worker process, sinks in another: TCP via io_uring"
            }
            Scenario::NetShm => {
                "100-byte tuples, spouts in one worker process, sinks in another: shared memory"
            }
            Scenario::TcpRaw => {
                "raw loopback TCP, 1 MiB writes: the bytes/s reference of the net-* scenarios"
            }
            Scenario::ShellBolt => {
                "constant spout -> Python identity bolt (pystorm) -> null bolt, tracked (needs python3 and pystorm)"
            }
            Scenario::Drpc => {
                "DRPC identity function via an in-process server: requests/s with 1 and 64 clients, latency at --rate (default half the 64-client rate)"
            }
            Scenario::Postgres => {
                "tracked spout -> PostgreSQL upserts, acked rows/s batched and row at a time (a private server, or --postgres)"
            }
        }
    }

    /// Whether the scenario tracks every tuple whatever `--acking` says.
    pub fn always_tracks(self) -> bool {
        matches!(
            self,
            Scenario::ShellBolt | Scenario::Drpc | Scenario::Postgres | Scenario::WordcountStateful
        )
    }

    /// Whether the scenario ends with an exact count check.
    pub fn counts_words(self) -> bool {
        matches!(
            self,
            Scenario::Wordcount
                | Scenario::WordcountStr
                | Scenario::WordcountWindowed
                | Scenario::WordcountStateful
        )
    }

    /// Whether `--workers N` can deal the scenario out over worker processes.
    pub fn spreads_over_workers(self) -> bool {
        matches!(self, Scenario::Wordcount | Scenario::WordcountStr)
    }

    /// How the two worker processes of a scenario between workers are linked (`None` for
    /// the others).
    pub fn worker_link(self) -> Option<WorkerLink> {
        match self {
            Scenario::NetMio => Some(WorkerLink::Mio),
            Scenario::NetUring => Some(WorkerLink::IoUring),
            Scenario::NetShm => Some(WorkerLink::SharedMemory),
            _ => None,
        }
    }
}

/// How the worker processes of a scenario between workers are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum WorkerLink {
    /// TCP, driven by mio.
    Mio,
    /// TCP, driven by io_uring.
    IoUring,
    /// Shared-memory rings (the workers share a host).
    #[value(name = "shm", alias = "shared-memory")]
    SharedMemory,
}

impl WorkerLink {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            WorkerLink::Mio => "mio",
            WorkerLink::IoUring => "io-uring",
            WorkerLink::SharedMemory => "shared-memory",
        }
    }

    /// The transport driver named in the workers' plans (shared-memory links are set up by
    /// the mio event loop).
    pub fn driver(self) -> &'static str {
        match self {
            WorkerLink::Mio | WorkerLink::SharedMemory => "mio",
            WorkerLink::IoUring => "io-uring",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn command_line_names_match_report_names() {
        for scenario in Scenario::ALL {
            let value = scenario
                .to_possible_value()
                .expect("every scenario is selectable");
            assert_eq!(value.get_name(), scenario.name());
            assert_eq!(Scenario::from_str(scenario.name(), false), Ok(scenario));
        }
        assert_eq!(Scenario::value_variants(), &Scenario::ALL);
    }
}
