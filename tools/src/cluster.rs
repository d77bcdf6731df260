//! The cluster subcommands of `squall`: the daemons, and the client commands that talk to
//! the leader nimbus.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use std::process::ExitCode;

use squall::cluster::logging::LogFormat;
use squall::cluster::protocol::TopologyReport;
use squall::cluster::store::ZkIdentity;
use squall::cluster::{ClusterConfig, NimbusClient, Secret, Submission, WorkerPlan};
use squall::topology_file::{Overrides, topology_from_file};

/// The configuration-file option every cluster command takes.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML). Default: $SQUALL_CONF, else /etc/squall/squall.toml if
    /// it exists, else the built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Talk to the nimbus at this host:port instead of the leader published in ZooKeeper.
    #[arg(long, value_name = "HOST:PORT")]
    pub nimbus: Option<String>,
    /// Prove requests with this client key (listed in nimbus's `nimbus.client_keys`)
    /// instead of the cluster secret; needs --key-file, and --nimbus (a client key opens
    /// no ZooKeeper node). Default: $SQUALL_CLIENT_KEY_NAME, else `client.key_name`.
    #[arg(long, value_name = "NAME")]
    pub key_name: Option<String>,
    /// File (mode 0600) holding the client key's secret. Default:
    /// $SQUALL_CLIENT_KEY_FILE, else `client.key_file`.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Environment variable naming the client key, below `--key-name`.
pub const KEY_NAME_ENV: &str = "SQUALL_CLIENT_KEY_NAME";

/// Environment variable naming the client key's file, below `--key-file`.
pub const KEY_FILE_ENV: &str = "SQUALL_CLIENT_KEY_FILE";

impl ConfigArg {
    /// The configuration these options name.
    ///
    /// # Errors
    /// When the file cannot be read or is invalid.
    pub fn load(&self) -> anyhow::Result<ClusterConfig> {
        let mut config = ClusterConfig::load(self.config.as_deref())?;
        if let Some(nimbus) = &self.nimbus {
            config.client.nimbus = Some(nimbus.clone());
        }
        let from_env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        if let Some(name) = self
            .key_name
            .clone()
            .or_else(|| from_env(KEY_NAME_ENV).map(|name| name.to_string_lossy().into_owned()))
        {
            config.client.key_name = Some(name);
        }
        if let Some(file) = self
            .key_file
            .clone()
            .or_else(|| from_env(KEY_FILE_ENV).map(PathBuf::from))
        {
            config.client.key_file = Some(file);
        }
        config.validate()?;
        Ok(config)
    }

    fn client(&self) -> anyhow::Result<NimbusClient> {
        Ok(NimbusClient::from_config(&self.load()?)?)
    }
}

/// Options of `squall nimbus` and `squall supervisor`.
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// Configuration file (TOML). Default: $SQUALL_CONF, else /etc/squall/squall.toml if
    /// it exists, else the built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: `text` (coloured only on a terminal) or `json` (one object per line,
    /// for log shippers); the supervisor's workers log the same way. Default:
    /// $SQUALL_LOG_FORMAT, else text.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Options of `squall submit`.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Submit the topology paused; start it with `squall activate`.
    #[arg(long)]
    pub inactive: bool,
    /// The topology program (a binary built with the engine), or a topology file
    /// (`.yaml`/`.yml`), which is shipped with the resources it names and run by the
    /// `squall` binary.
    pub program: PathBuf,
    /// Arguments for the program (its `describe` and `worker` modes receive them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Options of commands that name a topology.
#[derive(Debug, Clone, Args)]
pub struct TopologyArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The topology's name.
    pub name: String,
}

/// Options of `squall kill`.
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// Seconds between pausing the spouts and stopping the workers (default: the
    /// topology's message timeout).
    #[arg(long, short = 'w', value_name = "SECS")]
    pub wait: Option<u64>,
}

/// Options of `squall rebalance`.
#[derive(Debug, Clone, Args)]
pub struct RebalanceArgs {
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// New number of worker processes.
    #[arg(long, short = 'n', value_name = "WORKERS")]
    pub workers: Option<usize>,
    /// New executor count of a component, as COMPONENT=N (repeatable).
    #[arg(long = "executors", short = 'e', value_name = "COMPONENT=N", value_parser = parse_parallelism)]
    pub executors: Vec<(String, usize)>,
    /// Seconds between pausing the spouts and rescheduling (default: the topology's
    /// message timeout).
    #[arg(long, short = 'w', value_name = "SECS")]
    pub wait: Option<u64>,
}

/// Options of `squall list` and `squall status`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `squall status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `squall worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The worker plan file the supervisor wrote (the topology's worker key comes in
    /// `SQUALL_WORKER_KEY`).
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
}

/// Options of `squall config`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

fn parse_parallelism(text: &str) -> Result<(String, usize), String> {
    let (component, count) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not COMPONENT=N"))?;
    let count: usize = count
        .parse()
        .map_err(|_| format!("{count:?} in {text:?} is not a number"))?;
    if component.is_empty() || count == 0 {
        return Err(format!(
            "{text:?}: name a component and at least one executor"
        ));
    }
    Ok((component.to_owned(), count))
}

/// `squall nimbus`.
///
/// # Errors
/// When the daemon cannot start.
pub fn nimbus(args: &DaemonArgs) -> anyhow::Result<Vec<String>> {
    let config = ClusterConfig::load(args.config.as_deref())?;
    squall::cluster::nimbus::run(config)?;
    Ok(Vec::new())
}

/// `squall supervisor`.
///
/// # Errors
/// When the daemon cannot start.
pub fn supervisor(args: &DaemonArgs) -> anyhow::Result<Vec<String>> {
    let config = ClusterConfig::load(args.config.as_deref())?;
    squall::cluster::supervisor::run(config)?;
    Ok(Vec::new())
}

/// `squall worker --plan FILE`: runs one worker of a topology file on a cluster. The plan's
/// first argument names the file inside the unpacked artifact (`squall submit FILE.yaml`
/// arranges this); relative paths in it resolve against the artifact directory. The worker
/// itself (heartbeats, plan following, SIGTERM) is the engine's topology-program runtime.
pub fn worker(args: &WorkerArgs) -> ExitCode {
    let plan_path = args.plan.clone();
    squall::app::main(move |topology_args: &[String]| {
        let plan = WorkerPlan::read(&plan_path)?;
        let file = topology_args.first().ok_or_else(|| {
            format!(
                "the plan {} names no topology file in its arguments",
                plan_path.display()
            )
        })?;
        let overrides = Overrides {
            artifact_dir: Some(plan.artifact_dir.clone()),
            ..Overrides::default()
        };
        Ok(topology_from_file(
            &plan.artifact_dir.join(file),
            &overrides,
        )?)
    })
}

/// `squall submit`.
///
/// # Errors
/// When the program cannot describe itself or the cluster refuses it.
pub fn submit(args: &SubmitArgs) -> anyhow::Result<Vec<String>> {
    let client = args.config.client()?;
    let is_file = args
        .program
        .extension()
        .is_some_and(|extension| extension == "yaml" || extension == "yml");
    let mut submission = if is_file {
        if !args.args.is_empty() {
            anyhow::bail!("a topology file takes no arguments (set them in its config)");
        }
        Submission::topology_file(&args.program)?
    } else {
        Submission::program(&args.program, &args.args)?
    };
    submission.active = !args.inactive;
    let description = submission.description.clone();
    let submitted = client
        .submit(&submission)
        .with_context(|| format!("cannot submit {}", args.program.display()))?;
    let mut lines = vec![format!(
        "submitted topology {} as {} ({} workers, {} executors, artifact {} bytes, held by {} nimbus(es))",
        description.name,
        submitted.topology_id,
        description.workers,
        description.executor_components.len(),
        submission.artifact.bytes.len(),
        submitted.replicas,
    )];
    if let Some(note) = submitted.note {
        lines.push(format!("scheduler: {note}"));
    }
    Ok(lines)
}

/// `squall list`.
///
/// # Errors
/// When the cluster cannot be reached.
pub fn list(args: &ListArgs) -> anyhow::Result<Vec<String>> {
    let (topologies, supervisors) = args.config.client()?.list()?;
    if args.json {
        let json = serde_json::json!({ "topologies": topologies, "supervisors": supervisors });
        return Ok(vec![json.to_string()]);
    }
    let mut lines = Vec::new();
    if topologies.is_empty() {
        lines.push("no topologies".to_owned());
    } else {
        let mut rows = vec![[
            "NAME".to_owned(),
            "ID".to_owned(),
            "STATUS".to_owned(),
            "WORKERS".to_owned(),
            "EXECUTORS".to_owned(),
            "UPTIME".to_owned(),
        ]];
        for topology in &topologies {
            rows.push([
                topology.name.clone(),
                topology.id.clone(),
                topology.status.clone(),
                format!("{}/{}", topology.workers, topology.requested_workers),
                topology.executors.to_string(),
                duration(topology.uptime_secs),
            ]);
        }
        lines.extend(table(&rows));
        for topology in &topologies {
            if let Some(note) = &topology.note {
                lines.push(format!("{}: {note}", topology.name));
            }
        }
    }
    lines.push(String::new());
    let slots: usize = supervisors.iter().map(|supervisor| supervisor.slots).sum();
    let used: usize = supervisors.iter().map(|supervisor| supervisor.used).sum();
    lines.push(format!(
        "{} supervisor(s), {used} of {slots} slots used",
        supervisors.len()
    ));
    let mut rows = vec![[
        "SUPERVISOR".to_owned(),
        "HOST".to_owned(),
        "SLOTS".to_owned(),
        "USED".to_owned(),
        "UPTIME".to_owned(),
    ]];
    for supervisor in &supervisors {
        rows.push([
            supervisor.id.clone(),
            supervisor.host.clone(),
            supervisor.slots.to_string(),
            supervisor.used.to_string(),
            duration(supervisor.uptime_secs),
        ]);
    }
    if !supervisors.is_empty() {
        lines.extend(table(&rows));
    }
    Ok(lines)
}

/// `squall status`.
///
/// # Errors
/// When the cluster cannot be reached or has no such topology.
pub fn status(args: &StatusArgs) -> anyhow::Result<Vec<String>> {
    let report = args.topology.config.client()?.status(&args.topology.name)?;
    if args.json {
        return Ok(vec![serde_json::to_string(&report)?]);
    }
    Ok(describe_report(&report))
}

/// The text `squall status` prints for `report`.
pub fn describe_report(report: &TopologyReport) -> Vec<String> {
    let record = &report.record;
    let now = report.now_ms;
    let mut lines = vec![
        format!("topology {} ({})", record.name, record.id),
        format!("  status     {}", record.status.name()),
        format!(
            "  uptime     {}",
            duration(now.saturating_sub(record.submitted_ms) / 1000)
        ),
        format!(
            "  artifact   {} ({} bytes)",
            record.artifact, record.artifact_bytes
        ),
    ];
    if !record.args.is_empty() {
        lines.push(format!("  arguments  {}", record.args.join(" ")));
    }
    if let Some(key) = &record.submitted_by {
        lines.push(format!("  submitted  by client key '{key}'"));
    }
    if let Some(note) = &record.note {
        lines.push(format!("  scheduler  {note}"));
    }
    let executors = record.executor_components();
    lines.push(String::new());
    let mut rows = vec![[
        "COMPONENT".to_owned(),
        "KIND".to_owned(),
        "EXECUTORS".to_owned(),
        "TASKS".to_owned(),
    ]];
    for (index, component) in record.description.components.iter().enumerate() {
        rows.push([
            component.id.clone(),
            component.kind.clone(),
            executors
                .iter()
                .filter(|&&owner| owner == index)
                .count()
                .to_string(),
            component.tasks.to_string(),
        ]);
    }
    lines.extend(table(&rows));
    lines.push(String::new());
    match &report.assignment {
        None => lines.push("not scheduled".to_owned()),
        Some(assignment) => {
            lines.push(format!(
                "assignment version {} ({}), {} of {} workers",
                assignment.version,
                if assignment.active {
                    "active"
                } else {
                    "paused"
                },
                assignment.workers.len(),
                record.workers
            ));
            let mut rows = vec![[
                "WORKER".to_owned(),
                "ADDRESS".to_owned(),
                "EXECUTORS".to_owned(),
                "HEARTBEAT".to_owned(),
                "EXECUTED".to_owned(),
                "EMITTED".to_owned(),
            ]];
            for worker in &assignment.workers {
                let slot = worker.slot().to_string();
                let components: BTreeMap<&str, usize> =
                    worker
                        .executors
                        .iter()
                        .fold(BTreeMap::new(), |mut counts, &executor| {
                            if let Some(component) = executors
                                .get(executor)
                                .and_then(|&index| record.description.components.get(index))
                            {
                                *counts.entry(component.id.as_str()).or_insert(0) += 1;
                            }
                            counts
                        });
                let components: Vec<String> = components
                    .iter()
                    .map(|(id, count)| format!("{id}×{count}"))
                    .collect();
                let beat = report.heartbeats.get(&slot);
                rows.push([
                    slot,
                    format!("{}:{}", worker.host, worker.port),
                    components.join(" "),
                    beat.map_or("none".to_owned(), |beat| {
                        format!(
                            "{:.1} s ago",
                            now.saturating_sub(beat.heartbeat.time_ms) as f64 / 1000.0
                        )
                    }),
                    beat.map_or("-".to_owned(), |beat| {
                        crate::format::count(beat.heartbeat.executed)
                    }),
                    beat.map_or("-".to_owned(), |beat| {
                        crate::format::count(beat.heartbeat.emitted)
                    }),
                ]);
            }
            lines.extend(table(&rows));
        }
    }
    let mut task_errors: Vec<(&str, &squall::worker::figures::ErrorFigures)> = report
        .heartbeats
        .iter()
        .flat_map(|(slot, beat)| {
            beat.heartbeat
                .figures
                .errors
                .iter()
                .map(move |error| (slot.as_str(), error))
        })
        .collect();
    task_errors.sort_by_key(|(_, error)| error.time_ms);
    if !task_errors.is_empty() {
        lines.push(String::new());
        lines.push("task errors (latest per worker):".to_owned());
        for (slot, error) in task_errors {
            lines.push(format!(
                "  {} ago  {slot}  {}",
                duration(now.saturating_sub(error.time_ms) / 1000),
                error.message
            ));
        }
    }
    if !report.errors.is_empty() {
        lines.push(String::new());
        lines.push("recent errors:".to_owned());
        for error in &report.errors {
            lines.push(format!(
                "  {} ago  {}  {}",
                duration(now.saturating_sub(error.time_ms) / 1000),
                error.source,
                error.message
            ));
        }
    }
    lines
}

/// `squall kill`.
///
/// # Errors
/// When the cluster cannot be reached or has no such topology.
pub fn kill(args: &KillArgs) -> anyhow::Result<Vec<String>> {
    let client = args.topology.config.client()?;
    Ok(vec![client.kill(&args.topology.name, args.wait)?])
}

/// `squall activate`.
///
/// # Errors
/// When the cluster cannot be reached or has no such topology.
pub fn activate(args: &TopologyArgs) -> anyhow::Result<Vec<String>> {
    Ok(vec![args.config.client()?.activate(&args.name)?])
}

/// `squall deactivate`.
///
/// # Errors
/// When the cluster cannot be reached or has no such topology.
pub fn deactivate(args: &TopologyArgs) -> anyhow::Result<Vec<String>> {
    Ok(vec![args.config.client()?.deactivate(&args.name)?])
}

/// `squall rebalance`.
///
/// # Errors
/// When the cluster cannot be reached, has no such topology, or refuses the parallelism.
pub fn rebalance(args: &RebalanceArgs) -> anyhow::Result<Vec<String>> {
    if args.workers.is_none() && args.executors.is_empty() {
        anyhow::bail!("say what to change: --workers N and/or --executors COMPONENT=N");
    }
    let client = args.topology.config.client()?;
    let parallelism = args.executors.iter().cloned().collect();
    Ok(vec![client.rebalance(
        &args.topology.name,
        args.workers,
        parallelism,
        args.wait,
    )?])
}

/// `squall config`: the effective configuration, defaults included.
///
/// # Errors
/// When the file cannot be read or is invalid.
pub fn config(args: &ConfigArgs) -> anyhow::Result<Vec<String>> {
    Ok(vec![args.config.load()?.to_toml()])
}

/// `squall zookeeper-auth`: the `digest` credentials every daemon of the cluster presents
/// to ZooKeeper.
pub fn zookeeper_auth(args: &ConfigArgs) -> anyhow::Result<Vec<String>> {
    let config = args.config.load()?;
    let secret = Secret::load(&config.cluster)?;
    Ok(vec![ZkIdentity::from_secret(&secret).digest_credentials()])
}

/// `1d 2h`, `3h 4m`, `5m 6s`, `7s`.
fn duration(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Left-aligned columns separated by two spaces.
fn table<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
                if index + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_arguments_parse() {
        assert_eq!(parse_parallelism("count=4"), Ok(("count".to_owned(), 4)));
        assert!(parse_parallelism("count").is_err());
        assert!(parse_parallelism("count=0").is_err());
        assert!(
            parse_parallelism("count=x")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn durations_and_tables_read_well() {
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(366), "6m 6s");
        assert_eq!(duration(3 * 3600 + 240), "3h 4m");
        assert_eq!(duration(90_000), "1d 1h");
        let rows = [
            ["A".to_owned(), "B".to_owned()],
            ["long".to_owned(), "x".to_owned()],
        ];
        assert_eq!(table(&rows), ["A     B", "long  x"]);
    }
}
