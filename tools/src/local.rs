//! `squall local <file>`: runs a topology file in this process, with live progress, then
//! stops it and sums up what each component did.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Map as JsonMap, Value as JsonValue};
use squall::cluster::drpc::{DrpcServer, DrpcServerConfig};
use squall::cluster::observe::local::LocalWatch;
use squall::cluster::{ClusterConfig, Secret};
use squall::metrics::TopologyMetrics;
use squall::topology::ComponentKind;
use squall::topology_file::drpc::DrpcDefaults;
use squall::topology_file::{ComponentRegistry, Overrides, TopologyFile};

use crate::args::HumanDuration;
use crate::format;
use crate::progress::{ProgressLine, ProgressStyle};

/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How long what is in flight may take to finish once the run is over.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `squall local`.
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// The topology file (YAML; see docs/topology-files.md).
    pub file: PathBuf,
    /// How long to run before stopping (e.g. 20s, 2m).
    #[arg(long, default_value = "20s")]
    pub duration: HumanDuration,
    /// A setting over the file's `config`, as KEY=VALUE (VALUE is read as JSON when it is
    /// JSON: 5, true, [1, 2]; else as text); repeatable.
    #[arg(long = "set", short = 'c', value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, JsonValue)>,
    /// Print no progress line, only the summary.
    #[arg(long)]
    pub quiet: bool,
    /// Serve `/metrics` and the REST API (`/api/v1/...`) of the run on this loopback
    /// `ip:port` while it runs.
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<String>,
    /// Start a DRPC server in this process on HOST:PORT (0 picks a free port); the file's
    /// DRPC components use it unless their params name other servers. The cluster secret
    /// is read as by the cluster commands.
    #[arg(long, value_name = "HOST:PORT")]
    pub drpc: Option<std::net::SocketAddr>,
    /// Serve the in-process DRPC server's HTTP port (`POST /drpc/FUNCTION`,
    /// `GET /subscribe/TOPOLOGY/STREAM`) on HOST:PORT (0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", requires = "drpc")]
    pub drpc_http: Option<std::net::SocketAddr>,
    /// Exit 0 even when tasks reported errors (panics, reported errors, failing
    /// subprocesses); without it such a run exits with status 3.
    #[arg(long)]
    pub allow_errors: bool,
}

/// The exit status of a run whose tasks reported errors (without `--allow-errors`).
pub const EXIT_TASK_ERRORS: u8 = 3;

/// A run that went its course while its tasks reported errors: its summary, and how many.
#[derive(Debug, thiserror::Error)]
#[error(
    "{errors} task errors reported (shown above); the run counts as failed (exit status 3; \
     --allow-errors accepts it)"
)]
pub struct TaskErrorsReported {
    /// How many errors.
    pub errors: usize,
    /// The run's summary, printed as for a clean run.
    pub summary: Vec<String>,
}

fn parse_setting(text: &str) -> Result<(String, JsonValue), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| JsonValue::from(value));
    Ok((key.trim().to_owned(), value))
}

/// Starts the in-process DRPC server of `--drpc`.
fn start_drpc(
    address: std::net::SocketAddr,
    http: Option<std::net::SocketAddr>,
) -> anyhow::Result<(DrpcServer, Secret)> {
    let config = ClusterConfig::load(None)?;
    let secret = Secret::load(&config.cluster).context("--drpc needs the cluster secret")?;
    let server = DrpcServer::start(
        DrpcServerConfig {
            listen: address,
            http_listen: http,
            request_timeout: crate::drpc::LOCAL_REQUEST_TIMEOUT,
        },
        secret.clone(),
    )?;
    Ok((server, secret))
}

/// One component's line of figures.
fn figures(metrics: &TopologyMetrics, topology: &squall::Topology) -> Vec<String> {
    let spouts = topology
        .components()
        .iter()
        .filter(|component| component.kind() == ComponentKind::Spout);
    let bolts = topology
        .components()
        .iter()
        .filter(|component| component.kind() == ComponentKind::Bolt);
    spouts
        .chain(bolts)
        .filter_map(|component| {
            let figures = metrics.component(component.id())?;
            let counters = &figures.counters;
            Some(match component.kind() {
                ComponentKind::Spout => format!(
                    "{} {} emitted, {} acked, {} failed",
                    component.id(),
                    format::count(counters.emitted),
                    format::count(counters.acked),
                    format::count(counters.failed)
                ),
                _ => format!(
                    "{} {} in, {} out",
                    component.id(),
                    format::count(counters.executed),
                    format::count(counters.emitted)
                ),
            })
        })
        .collect()
}

/// Runs the file; returns the summary lines.
///
/// # Errors
/// When the file is not a valid topology, or the topology cannot start or stopped itself.
pub fn run(args: &LocalArgs) -> anyhow::Result<Vec<String>> {
    let file = TopologyFile::read(&args.file)?;
    let mut config = JsonMap::new();
    for (key, value) in &args.settings {
        config.insert(key.clone(), value.clone());
    }
    let overrides = Overrides {
        config,
        ..Overrides::default()
    };
    let drpc_server = match args.drpc {
        Some(address) => Some(start_drpc(address, args.drpc_http)?),
        None => None,
    };
    let topology = match &drpc_server {
        Some((server, secret)) => {
            let mut registry = ComponentRegistry::with_builtins();
            registry.with_drpc(DrpcDefaults {
                servers: vec![server.address().to_string()],
                secret: Some(secret.cluster_secret()),
            });
            file.build_with(&overrides, &registry)?
        }
        None => file.build(&overrides)?,
    };
    let watch = args
        .http
        .as_deref()
        .map(LocalWatch::start)
        .transpose()
        .context("--http")?;
    let style = if args.quiet {
        ProgressStyle::Silent
    } else {
        ProgressStyle::for_stdout()
    };
    if !args.quiet {
        println!(
            "squall: running {:?} from {} for {} (Ctrl-C stops it at once)",
            topology.name(),
            args.file.display(),
            args.duration
        );
    }
    if let Some((server, _)) = &drpc_server {
        // Printed even when quiet: with port 0 it is the only way to learn the port.
        println!("squall: DRPC server listening on {}", server.address());
        if let Some(http) = server.http_address() {
            println!("squall: DRPC HTTP port listening on {http}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    let running = squall::run(std::sync::Arc::clone(&topology))
        .with_context(|| format!("starting {:?}", topology.name()))?;
    if let Some(watch) = &watch {
        watch.update(&running);
        if !args.quiet {
            println!(
                "squall: serving the web UI, /metrics and /api/v1 on http://{}",
                watch.local_addr()
            );
        }
    }
    let mut progress = ProgressLine::new(style);
    let started = Instant::now();
    let mut errors_shown = 0;
    while started.elapsed() < args.duration.get() && !running.has_stopped() {
        std::thread::sleep(
            PROGRESS_EVERY.min(args.duration.get().saturating_sub(started.elapsed())),
        );
        let errors = running.errors();
        if errors.len() > errors_shown {
            progress.finish();
            for error in &errors[errors_shown..] {
                eprintln!("squall: {error}");
            }
            errors_shown = errors.len();
        }
        if let Some(watch) = &watch {
            watch.update(&running);
        }
        progress.update(&format!(
            "{:>6.1}s  {}",
            started.elapsed().as_secs_f64(),
            figures(&running.metrics(), &topology).join("  |  ")
        ));
    }
    progress.finish();
    let stopped_by = running.stopped_by();
    let metrics = running.metrics();
    let report = running.kill(DRAIN_TIMEOUT);
    if let Some((server, _)) = drpc_server {
        server.stop();
    }
    for error in report.errors.iter().skip(errors_shown) {
        eprintln!("squall: {error}");
    }
    if let Some(failure) = stopped_by {
        anyhow::bail!("{:?} stopped: {failure}", topology.name());
    }
    let mut lines = vec![format!(
        "{:?} ran for {:.1}s and stopped with {} in flight; {} errors reported",
        topology.name(),
        started.elapsed().as_secs_f64(),
        if report.drained { "nothing" } else { "tuples" },
        report.errors.len()
    )];
    lines.extend(
        figures(&metrics, &topology)
            .into_iter()
            .map(|line| format!("  {line}")),
    );
    if !report.errors.is_empty() && !args.allow_errors {
        return Err(TaskErrorsReported {
            errors: report.errors.len(),
            summary: lines,
        }
        .into());
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_json_or_text() {
        assert_eq!(
            parse_setting("topology.max.spout.pending=500"),
            Ok((
                "topology.max.spout.pending".to_owned(),
                JsonValue::from(500)
            ))
        );
        assert_eq!(
            parse_setting("greeting=hello there"),
            Ok(("greeting".to_owned(), JsonValue::from("hello there")))
        );
        assert!(parse_setting("no-equals").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::Parser;
        let cli = crate::cli::SquallCli::try_parse_from([
            "squall",
            "local",
            "wc.yaml",
            "--duration",
            "5s",
            "-c",
            "topology.workers=1",
        ])
        .expect("parses");
        let crate::cli::SquallCommand::Local(args) = cli.command else {
            panic!("not local: {:?}", cli.command);
        };
        assert_eq!(args.file, PathBuf::from("wc.yaml"));
        assert_eq!(args.duration.get(), Duration::from_secs(5));
        assert_eq!(args.settings, [("topology.workers".to_owned(), 1.into())]);
    }

    #[test]
    fn a_file_runs_and_is_summed_up() {
        let dir = std::env::temp_dir().join(format!("squall-local-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("numbers.yaml");
        std::fs::write(
            &path,
            "name: numbers\nspouts:\n  - {id: numbers, builtin: sequence, params: {count: 1000}}\n\
             bolts:\n  - {id: count, builtin: field_count, params: {emit: false}}\n\
             streams:\n  - {from: numbers, to: count, grouping: {type: fields, args: [n]}}\n",
        )
        .unwrap();
        let args = LocalArgs {
            file: path,
            duration: "1s".parse().unwrap(),
            settings: vec![("topology.max.spout.pending".to_owned(), 100.into())],
            quiet: true,
            http: None,
            drpc: None,
            allow_errors: false,
            drpc_http: None,
        };
        let lines = run(&args).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            lines[0].contains("stopped with nothing in flight; 0 errors reported"),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"  numbers 1,000 emitted, 1,000 acked, 0 failed".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"  count 1,000 in, 0 out".to_owned()),
            "{lines:?}"
        );

        let broken = LocalArgs {
            file: PathBuf::from("/nonexistent/topology.yaml"),
            ..args.clone()
        };
        let error = run(&broken).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot read topology file /nonexistent/topology.yaml"),
            "{error}"
        );
    }

    /// A bolt whose subprocess dies at once: the run reports the errors and fails with
    /// status 3, unless `--allow-errors`.
    #[test]
    fn task_errors_fail_the_run_unless_allowed() {
        let dir = std::env::temp_dir().join(format!("squall-local-errors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crashing.yaml");
        std::fs::write(
            &path,
            r#"name: crashing
spouts:
  - {id: numbers, builtin: sequence, params: {count: 100}}
bolts:
  - id: crash
    shell: {command: sh, args: ["-c", "exit 7"]}
streams:
  - {from: numbers, to: crash, grouping: shuffle}
"#,
        )
        .unwrap();
        let args = LocalArgs {
            file: path,
            duration: "2s".parse().unwrap(),
            settings: Vec::new(),
            quiet: true,
            http: None,
            drpc: None,
            allow_errors: false,
            drpc_http: None,
        };
        let error = run(&args).unwrap_err();
        let reported = error
            .downcast_ref::<TaskErrorsReported>()
            .unwrap_or_else(|| panic!("not a task error report: {error:#}"));
        assert!(reported.errors > 0);
        assert!(
            reported.summary[0].contains("errors reported"),
            "{reported:?}"
        );
        let allowed = LocalArgs {
            allow_errors: true,
            ..args
        };
        let lines = run(&allowed).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!lines[0].contains("; 0 errors reported"), "{lines:?}");
    }
}
