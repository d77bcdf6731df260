//! The options of `squall drill` and the faults they select.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::args::HumanDuration;

/// Options of `squall drill`.
#[derive(Debug, Clone, Args)]
pub struct DrillArgs {
    /// The short drill for CI: a worker kill, a rebalance and a pause, with short waits.
    #[arg(long)]
    pub short: bool,
    /// Drill an existing cluster described by this client configuration file instead of
    /// starting one: submit, rebalance, deactivate/activate and kill only (nothing is
    /// SIGKILLed there).
    #[arg(long, value_name = "CONFIG")]
    pub against: Option<PathBuf>,
    /// With --against: a directory every worker of that cluster can write and this machine
    /// can read (the same machine, or a shared file system), for the ledger.
    #[arg(long, value_name = "DIR", requires = "against")]
    pub state_dir: Option<PathBuf>,
    /// How the local cluster's supervisors are networked: `auto` uses network namespaces
    /// when this runs as root and `ip netns` works, else loopback.
    #[arg(long, value_enum, default_value_t = Network::Auto, conflicts_with = "against")]
    pub network: Network,
    /// The tracked topology program (default: `squall-drill-topology` next to this
    /// binary).
    #[arg(long, value_name = "PROGRAM")]
    pub topology: Option<PathBuf>,
    /// Messages per second each of the two spout tasks emits.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rate: u64,
    /// How long ZooKeeper stays stopped in the outage fault.
    #[arg(long, default_value = "10s")]
    pub zookeeper_outage: HumanDuration,
    /// Keep the drill's directory (configuration, logs, ledger) even when it passes; it is
    /// always kept when it fails.
    #[arg(long)]
    pub keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the local cluster's supervisors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Network {
    /// Namespaces when possible, else loopback.
    Auto,
    /// Every process on 127.0.0.1.
    Loopback,
    /// Each supervisor in a network namespace of its own (needs root).
    Namespaces,
}

/// A fault the drill injects (or a step it takes) and then waits to recover from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// One worker process is SIGKILLed.
    WorkerKill,
    /// A supervisor host is lost with all its processes.
    HostLoss,
    /// The leading nimbus is SIGKILLed.
    LeaderKill,
    /// ZooKeeper stops for a while, then restarts.
    ZooKeeperOutage,
    /// The topology is rebalanced from three workers to two.
    Rebalance,
    /// The topology is deactivated, then activated.
    DeactivateActivate,
}

impl Fault {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::WorkerKill => "worker-kill",
            Fault::HostLoss => "host-loss",
            Fault::LeaderKill => "leader-kill",
            Fault::ZooKeeperOutage => "zookeeper-outage",
            Fault::Rebalance => "rebalance",
            Fault::DeactivateActivate => "deactivate-activate",
        }
    }

    /// How long recovery may take. The host and leader bounds cover the drill cluster's
    /// 2 s session timeout with room for a loaded machine; a production cluster's default
    /// 10 s session timeout needs about 12 s.
    pub fn bound(self) -> Duration {
        Duration::from_secs(match self {
            Fault::WorkerKill => 5,
            Fault::HostLoss => 10,
            Fault::LeaderKill => 10,
            Fault::ZooKeeperOutage => 10,
            Fault::Rebalance => 15,
            Fault::DeactivateActivate => 5,
        })
    }

    /// Whether it needs processes of this machine (so not with --against).
    pub fn destructive(self) -> bool {
        matches!(
            self,
            Fault::WorkerKill | Fault::HostLoss | Fault::LeaderKill | Fault::ZooKeeperOutage
        )
    }
}

/// Workers the tracked topology starts with; the rebalance takes it to one fewer.
pub const START_WORKERS: usize = 3;

impl DrillArgs {
    /// The faults to inject, in order.
    pub fn faults(&self) -> Vec<Fault> {
        let all = if self.short {
            vec![
                Fault::WorkerKill,
                Fault::Rebalance,
                Fault::DeactivateActivate,
            ]
        } else {
            vec![
                Fault::WorkerKill,
                Fault::HostLoss,
                Fault::LeaderKill,
                Fault::ZooKeeperOutage,
                Fault::Rebalance,
                Fault::DeactivateActivate,
            ]
        };
        all.into_iter()
            .filter(|fault| self.against.is_none() || !fault.destructive())
            .collect()
    }

    /// How long the topology runs between faults, so that each starts from a steady
    /// state.
    pub fn settle(&self) -> Duration {
        Duration::from_millis(if self.short { 500 } else { 2_000 })
    }

    /// The tracked topology's message timeout: replays of trees a fault cut wait for it.
    pub fn message_timeout(&self) -> Duration {
        Duration::from_secs(if self.short { 3 } else { 5 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        drill: DrillArgs,
    }

    fn parse(args: &[&str]) -> Result<DrillArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("drill").chain(args.iter().copied()))
            .map(|cli| cli.drill)
    }

    #[test]
    fn the_full_drill_injects_every_fault_in_order() {
        let args = parse(&[]).expect("parses");
        let names: Vec<&str> = args.faults().into_iter().map(Fault::name).collect();
        assert_eq!(
            names,
            [
                "worker-kill",
                "host-loss",
                "leader-kill",
                "zookeeper-outage",
                "rebalance",
                "deactivate-activate"
            ]
        );
        assert_eq!(args.network, Network::Auto);
        assert_eq!(args.zookeeper_outage.get(), Duration::from_secs(10));
        assert_eq!(args.rate, 100);
    }

    #[test]
    fn the_short_drill_is_a_subset() {
        let args = parse(&["--short", "--json", "--network", "loopback"]).expect("parses");
        assert_eq!(
            args.faults(),
            [
                Fault::WorkerKill,
                Fault::Rebalance,
                Fault::DeactivateActivate
            ]
        );
        assert!(args.json);
        assert_eq!(args.network, Network::Loopback);
        assert!(args.settle() < parse(&[]).unwrap().settle());
    }

    #[test]
    fn an_existing_cluster_gets_no_destructive_fault() {
        let args =
            parse(&["--against", "client.toml", "--state-dir", "/shared/drill"]).expect("parses");
        assert_eq!(args.faults(), [Fault::Rebalance, Fault::DeactivateActivate]);
        assert!(args.faults().iter().all(|fault| !fault.destructive()));
    }

    #[test]
    fn contradictory_options_are_refused() {
        let error = parse(&["--state-dir", "/shared"]).unwrap_err();
        assert!(error.to_string().contains("--against"), "{error}");
        let error = parse(&["--against", "c.toml", "--network", "namespaces"]).unwrap_err();
        assert!(error.to_string().contains("cannot be used with"), "{error}");
        let error = parse(&["--rate", "0"]).unwrap_err();
        assert!(error.to_string().contains("--rate"), "{error}");
        let error = parse(&["--network", "wifi"]).unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
    }

    #[test]
    fn bounds_match_the_faults() {
        assert!(Fault::WorkerKill.bound() <= Duration::from_secs(5));
        assert_eq!(Fault::HostLoss.bound(), Duration::from_secs(10));
        assert_eq!(Fault::LeaderKill.bound(), Duration::from_secs(10));
    }
}
