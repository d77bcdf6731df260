//! Command-line arguments of `squall` and `squall-bench`.

use clap::{Args, Parser, Subcommand};

use crate::args::{HumanDuration, RateSpec};
use crate::cluster::{
    ConfigArgs, DaemonArgs, KillArgs, ListArgs, RebalanceArgs, StatusArgs, SubmitArgs,
    TopologyArgs, WorkerArgs,
};
use crate::scenario::{Scenario, WorkerLink};

/// Squall: a real-time stream-processing engine in the Storm model.
#[derive(Debug, Parser)]
#[command(name = "squall", version, propagate_version = true)]
pub struct SquallCli {
    /// What to do.
    #[command(subcommand)]
    pub command: SquallCommand,
}

/// The `squall` subcommands.
#[derive(Debug, Subcommand)]
pub enum SquallCommand {
    /// Run a built-in topology on this machine and show what it does.
    #[command(subcommand)]
    Demo(Demo),
    /// Run a topology file (YAML) on this machine, with live progress.
    Local(crate::local::LocalArgs),
    /// Run the master daemon (any number may run; one leads).
    Nimbus(DaemonArgs),
    /// Run the node daemon that starts this machine's workers.
    Supervisor(DaemonArgs),
    /// Run a DRPC server (any number may run), or `drpc call FUNCTION ARGUMENT`.
    Drpc(crate::drpc::DrpcArgs),
    /// Print the tuples a topology publishes on a stream (a continuous query), one JSON
    /// array a line, from a DRPC server's HTTP port.
    Subscribe(crate::subscribe::SubscribeArgs),
    /// Submit a topology program to the cluster.
    Submit(SubmitArgs),
    /// List the cluster's topologies and supervisors.
    List(ListArgs),
    /// Show one topology: status, workers, heartbeats, errors.
    Status(StatusArgs),
    /// Kill a topology: pause its spouts, wait, stop its workers.
    Kill(KillArgs),
    /// Resume a topology's spouts.
    Activate(TopologyArgs),
    /// Pause a topology's spouts.
    Deactivate(TopologyArgs),
    /// Reschedule a topology with a new worker count or parallelism.
    Rebalance(RebalanceArgs),
    /// Print the effective configuration (defaults included) as TOML.
    Config(ConfigArgs),
    /// Print the cluster's ZooKeeper credentials (`squall:PASSWORD`, derived from the
    /// cluster secret) for `zkCli.sh`'s `addauth digest`.
    ZookeeperAuth(ConfigArgs),
    /// Run one worker of a topology file on a cluster (started by a supervisor).
    Worker(WorkerArgs),
    /// Fault drill: start a cluster on this machine (or use one with --against), run a
    /// tracked topology, inject faults and report recovery times and lost messages.
    Drill(crate::drill::args::DrillArgs),
}

/// The built-in demonstrations.
#[derive(Debug, Subcommand)]
pub enum Demo {
    /// Count words: sentences -> split -> fields grouping -> count, with exact checks.
    Wordcount(WordcountDemoArgs),
}

/// Options of `squall demo wordcount`.
#[derive(Debug, Clone, Args)]
pub struct WordcountDemoArgs {
    /// How long the spouts emit sentences (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s")]
    pub duration: HumanDuration,
    /// Number of distinct words in the vocabulary.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub words: u32,
    /// Words in each sentence the spout emits.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub sentence_words: u32,
    /// Number of count bolt tasks the words are spread over by fields grouping.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub counters: u32,
    /// Emit sentences at this constant rate (e.g. 200k) instead of flat out.
    #[arg(long)]
    pub rate: Option<RateSpec>,
    /// Print no progress line, only the summary.
    #[arg(long)]
    pub quiet: bool,
}

/// Squall's benchmark tool: runs named scenarios and reports throughput and latency.
///
/// Each scenario runs a built-in topology in this process (the `net-*` scenarios and
/// `--workers` in worker processes of this machine): a warm-up, then a timed window over
/// which tuples/s (counted at the sink) and emit-to-sink latency percentiles (from HDR
/// histograms of a sample of the tuples) are reported.
#[derive(Debug, Clone, Parser)]
#[command(name = "squall-bench", version)]
pub struct BenchCli {
    /// Scenarios to run, in order (default: all).
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Length of each timed window (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    pub duration: HumanDuration,
    /// Warm-up before each timed window, not measured.
    #[arg(long, default_value = "1s")]
    pub warmup: HumanDuration,
    /// Constant-rate load: tuples per second (250000, 500k, 25M) or a share of the
    /// unthrottled rate measured just before (50%). Latency then counts from each tuple's
    /// intended send time, so stalls are not hidden (no coordinated omission).
    #[arg(long)]
    pub rate: Option<RateSpec>,
    /// Stamp one tuple in this many with its emit time for latency (1 stamps every tuple).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub sample_every: u64,
    /// Track every tuple tree (acking): the spouts emit with message ids, one acker per
    /// worker completes the trees, and the complete latency is reported.
    #[arg(long)]
    pub acking: bool,
    /// With `--acking`: most tuple trees in flight per spout task (`max_spout_pending`);
    /// 0 leaves it unbounded.
    #[arg(long, default_value_t = 4096)]
    pub max_pending: u32,
    /// Spout executors.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub spouts: u32,
    /// Executors of the middle bolt (const-id-null's identity bolt).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub middle: u32,
    /// Sink (null or count bolt) executors.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub sinks: u32,
    /// How idle executors wait: busy-spin, spin-yield or spin-park.
    #[arg(long, default_value = "spin-park")]
    pub wait: squall::WaitStrategyKind,
    /// Executor threads: `auto` (one per core at most), `never` (one per executor), a
    /// number (executors packed in flow order), or `lanes:N` (N threads, each running one
    /// instance of every component).
    #[arg(long, default_value = "auto")]
    pub threads: ThreadsArg,
    /// Run the word counts in this many worker processes on this machine, spouts and
    /// counters dealt out over them (at least one of each per worker), fields grouping
    /// across them; 1 runs them in this process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub workers: u32,
    /// With `--workers 2` or more: how the workers are linked, mio, io-uring or shm
    /// (default mio).
    #[arg(long, value_enum)]
    pub transport: Option<WorkerLink>,
    /// Link the worker processes (net-mio, word counts over mio) with TLS, using a
    /// certificate authority and certificate made for the run.
    #[arg(long)]
    pub tls: bool,
    /// Print one JSON object per scenario (one per line) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Also write a self-contained HTML report with plots (throughput per scenario and over
    /// time, the latency percentile distribution) to this file.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<std::path::PathBuf>,
    /// The `postgres` scenario writes to this server (libpq settings, e.g.
    /// "host=db port=5432 user=u password=p dbname=d") instead of a private one it starts
    /// with scripts/postgres.sh.
    #[arg(long, value_name = "SETTINGS")]
    pub postgres: Option<String>,
}

/// The `--threads` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadsArg(pub squall::Chaining);

impl std::str::FromStr for ThreadsArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(ThreadsArg(squall::Chaining::Auto)),
            "never" => Ok(ThreadsArg(squall::Chaining::Never)),
            _ => {
                let (lanes, number) = match text.strip_prefix("lanes:") {
                    Some(number) => (true, number),
                    None => (false, text),
                };
                match number.parse::<usize>() {
                    Ok(threads) if threads > 0 && lanes => {
                        Ok(ThreadsArg(squall::Chaining::Lanes(threads)))
                    }
                    Ok(threads) if threads > 0 => {
                        Ok(ThreadsArg(squall::Chaining::Threads(threads)))
                    }
                    _ => Err(format!(
                        "--threads {text:?}: expected auto, never, a positive number, or \
                         lanes:N (N threads, each running one instance of every component)"
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_demo_has_sensible_defaults() {
        let cli = SquallCli::try_parse_from(["squall", "demo", "wordcount"]).expect("parses");
        let SquallCommand::Demo(Demo::Wordcount(args)) = cli.command else {
            panic!("not the demo: {:?}", cli.command);
        };
        assert_eq!(args.duration.get(), Duration::from_secs(10));
        assert_eq!(args.words, 10_000);
        assert!(args.rate.is_none());
    }

    #[test]
    fn cluster_commands_parse() {
        let cli = SquallCli::try_parse_from([
            "squall",
            "submit",
            "-c",
            "squall.toml",
            "./wordcount",
            "--sentences",
            "100",
        ])
        .expect("parses");
        let SquallCommand::Submit(args) = cli.command else {
            panic!("not submit");
        };
        assert_eq!(args.program.to_str(), Some("./wordcount"));
        assert_eq!(args.args, ["--sentences", "100"]);
        assert_eq!(
            args.config.config.as_deref().and_then(|p| p.to_str()),
            Some("squall.toml")
        );
        let cli = SquallCli::try_parse_from([
            "squall",
            "rebalance",
            "wc",
            "-n",
            "3",
            "-e",
            "count=4",
            "-e",
            "split=2",
            "--wait",
            "0",
        ])
        .expect("parses");
        let SquallCommand::Rebalance(args) = cli.command else {
            panic!("not rebalance");
        };
        assert_eq!(args.workers, Some(3));
        assert_eq!(
            args.executors,
            [("count".to_owned(), 4), ("split".to_owned(), 2)]
        );
        assert_eq!(args.wait, Some(0));
        let error = SquallCli::try_parse_from(["squall", "rebalance", "wc", "-e", "count"])
            .expect_err("not COMPONENT=N");
        assert!(error.to_string().contains("COMPONENT=N"), "{error}");
        let cli =
            SquallCli::try_parse_from(["squall", "kill", "wc", "--wait", "5"]).expect("parses");
        let SquallCommand::Kill(args) = cli.command else {
            panic!("not kill");
        };
        assert_eq!((args.topology.name.as_str(), args.wait), ("wc", Some(5)));
        let cli = SquallCli::try_parse_from([
            "squall",
            "list",
            "--nimbus",
            "n1:6627",
            "--key-name",
            "ops-view",
            "--key-file",
            "/keys/ops-view",
        ])
        .expect("parses");
        let SquallCommand::List(args) = cli.command else {
            panic!("not list");
        };
        assert_eq!(args.config.key_name.as_deref(), Some("ops-view"));
        assert_eq!(
            args.config.key_file.as_deref().and_then(|p| p.to_str()),
            Some("/keys/ops-view")
        );
    }

    #[test]
    fn daemons_take_a_log_format() {
        let cli = SquallCli::try_parse_from(["squall", "supervisor", "--log-format", "json"])
            .expect("parses");
        let SquallCommand::Supervisor(args) = cli.command else {
            panic!("not supervisor");
        };
        assert_eq!(
            args.log_format,
            Some(squall::cluster::logging::LogFormat::Json)
        );
        let error = SquallCli::try_parse_from(["squall", "nimbus", "--log-format", "xml"])
            .expect_err("not a format");
        assert!(
            error.to_string().contains("expected `text` or `json`"),
            "{error}"
        );
    }

    #[test]
    fn bench_options_parse() {
        let cli = BenchCli::try_parse_from([
            "squall-bench",
            "const-null",
            "wordcount",
            "--duration",
            "2s",
            "--rate",
            "50%",
            "--json",
        ])
        .expect("parses");
        assert_eq!(
            cli.scenarios,
            vec![Scenario::ConstNull, Scenario::Wordcount]
        );
        assert_eq!(cli.duration.get(), Duration::from_secs(2));
        assert_eq!(cli.rate, Some(RateSpec::FractionOfMax(0.5)));
        assert!(cli.json);
        assert_eq!((cli.workers, cli.transport), (1, None));
        let cli = BenchCli::try_parse_from([
            "squall-bench",
            "wordcount",
            "--workers",
            "2",
            "--transport",
            "shm",
        ])
        .expect("parses");
        assert_eq!(
            (cli.workers, cli.transport),
            (2, Some(WorkerLink::SharedMemory))
        );
        for (name, link) in [("mio", WorkerLink::Mio), ("io-uring", WorkerLink::IoUring)] {
            let cli =
                BenchCli::try_parse_from(["squall-bench", "--transport", name]).expect("parses");
            assert_eq!(cli.transport, Some(link));
        }
        let error =
            BenchCli::try_parse_from(["squall-bench", "--workers", "0"]).expect_err("no workers");
        assert!(error.to_string().contains("--workers"), "{error}");
        let threads = |text: &str| text.parse::<ThreadsArg>().map(|threads| threads.0);
        assert_eq!(threads("3"), Ok(squall::Chaining::Threads(3)));
        assert_eq!(threads("lanes:2"), Ok(squall::Chaining::Lanes(2)));
        assert!(threads("lanes:0").unwrap_err().contains("lanes:N"));
    }

    #[test]
    fn bad_arguments_are_explained() {
        let error = BenchCli::try_parse_from(["squall-bench", "const-nul"]).expect_err("typo");
        let message = error.to_string();
        assert!(message.contains("const-nul"), "{message}");
        assert!(message.contains("const-null"), "{message}");
        let error = SquallCli::try_parse_from(["squall", "demo", "wordcount", "--duration", "ten"])
            .expect_err("not a duration");
        assert!(
            error.to_string().contains("does not start with a number"),
            "{error}"
        );
        let error = SquallCli::try_parse_from(["squall", "demo", "wordcount", "--words", "0"])
            .expect_err("empty vocabulary");
        assert!(error.to_string().contains("--words"), "{error}");
    }
}
