//! Where a scenario runs for a command line: in this process, in worker processes, or (the
//! raw TCP reference) with no topology at all.

use crate::bench::network::Placement;
use crate::cli::BenchCli;
use crate::scenario::{Scenario, WorkerLink};

/// Where a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// The topology runs in this process.
    InProcess,
    /// No topology: loopback TCP with nothing of Squall in the way.
    RawTcp,
    /// The topology runs in worker processes on this machine.
    Workers {
        /// How the workers are linked.
        link: WorkerLink,
        /// Which worker runs which executor.
        placement: Placement,
    },
}

/// Why the options ask for a deployment the scenario does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    /// `--workers` on a scenario that is not a word count.
    #[error(
        "{scenario} runs in one process; --workers {workers} applies to the word counts \
         (wordcount, wordcount-str)"
    )]
    NotSpreadable {
        /// The scenario.
        scenario: Scenario,
        /// The `--workers` asked for.
        workers: u32,
    },
    /// `--workers` or `--transport` on a scenario whose name fixes both.
    #[error(
        "{scenario} always runs in two workers linked as its name says; it takes neither \
         --workers nor --transport"
    )]
    FixedByName {
        /// The scenario.
        scenario: Scenario,
    },
    /// `--transport` with the topology in this process.
    #[error("--transport links worker processes: it needs --workers 2 or more")]
    TransportWithoutWorkers,
    /// `--acking` with the topology in worker processes.
    #[error(
        "{scenario} in worker processes does not take --acking: complete latency is measured \
         where the spouts run, and this run reports what reaches the sinks"
    )]
    AckingAcrossWorkers {
        /// The scenario.
        scenario: Scenario,
    },
}

/// Where `scenario` runs for the command line `cli`.
///
/// # Errors
/// When the options do not apply to the scenario.
pub fn deployment(cli: &BenchCli, scenario: Scenario) -> Result<Deployment, DeploymentError> {
    let spread = cli.workers > 1;
    let deployment = if scenario == Scenario::TcpRaw {
        Deployment::RawTcp
    } else if let Some(link) = scenario.worker_link() {
        if spread || cli.transport.is_some() {
            return Err(DeploymentError::FixedByName { scenario });
        }
        Deployment::Workers {
            link,
            placement: Placement::SourcesApartFromBolts,
        }
    } else if spread {
        if !scenario.spreads_over_workers() {
            return Err(DeploymentError::NotSpreadable {
                scenario,
                workers: cli.workers,
            });
        }
        Deployment::Workers {
            link: cli.transport.unwrap_or(WorkerLink::Mio),
            placement: Placement::DealtOut(cli.workers as usize),
        }
    } else if cli.transport.is_some() {
        return Err(DeploymentError::TransportWithoutWorkers);
    } else {
        Deployment::InProcess
    };
    if cli.acking && matches!(deployment, Deployment::Workers { .. }) {
        return Err(DeploymentError::AckingAcrossWorkers { scenario });
    }
    Ok(deployment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn of(args: &[&str]) -> Result<Deployment, DeploymentError> {
        let cli =
            BenchCli::try_parse_from(std::iter::once(&"squall-bench").chain(args)).expect("parses");
        let [scenario] = cli.scenarios[..] else {
            panic!("one scenario: {args:?}");
        };
        deployment(&cli, scenario)
    }

    #[test]
    fn word_counts_spread_over_workers_on_mio_unless_told() {
        assert_eq!(of(&["wordcount"]), Ok(Deployment::InProcess));
        assert_eq!(
            of(&["wordcount", "--workers", "2"]),
            Ok(Deployment::Workers {
                link: WorkerLink::Mio,
                placement: Placement::DealtOut(2)
            })
        );
        assert_eq!(
            of(&["wordcount-str", "--workers", "3", "--transport", "io-uring"]),
            Ok(Deployment::Workers {
                link: WorkerLink::IoUring,
                placement: Placement::DealtOut(3)
            })
        );
        assert_eq!(
            of(&["wordcount", "--workers", "1"]),
            Ok(Deployment::InProcess)
        );
    }

    #[test]
    fn the_net_scenarios_keep_their_two_workers() {
        assert_eq!(
            of(&["net-shm"]),
            Ok(Deployment::Workers {
                link: WorkerLink::SharedMemory,
                placement: Placement::SourcesApartFromBolts
            })
        );
        assert_eq!(of(&["tcp-raw"]), Ok(Deployment::RawTcp));
        assert_eq!(of(&["const-null"]), Ok(Deployment::InProcess));
    }

    #[test]
    fn options_that_do_not_apply_are_named() {
        let error = of(&["const-null", "--workers", "2"]).expect_err("not a word count");
        assert_eq!(
            error.to_string(),
            "const-null runs in one process; --workers 2 applies to the word counts \
             (wordcount, wordcount-str)"
        );
        assert_eq!(
            of(&["net-mio", "--transport", "shm"]),
            Err(DeploymentError::FixedByName {
                scenario: Scenario::NetMio
            })
        );
        assert_eq!(
            of(&["wordcount", "--transport", "shm"]),
            Err(DeploymentError::TransportWithoutWorkers)
        );
        assert_eq!(
            of(&["wordcount", "--workers", "2", "--acking"]),
            Err(DeploymentError::AckingAcrossWorkers {
                scenario: Scenario::Wordcount
            })
        );
        assert!(
            of(&["net-mio", "--acking"]).is_err(),
            "the net scenarios never took --acking"
        );
    }
}
