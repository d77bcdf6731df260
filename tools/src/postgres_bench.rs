//! The `postgres` scenario of `squall-bench`: a tracked spout whose every tuple the
//! PostgreSQL write bolt upserts as a row, measured as acknowledged rows per second, first
//! batched as the bolt does by default, then one row per transaction, in the same run.
//!
//! The server is the one `--postgres` names, or a private one started for the run with
//! `scripts/postgres.sh` (PostgreSQL must be installed: `scripts/postgres.sh install`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use squall::connectors::{BatchSettings, PostgresTable, postgres_write_bolt};
use squall::{
    MessageId, OutputDeclarer, Spout, SpoutOutput, TopologyBuilder, TopologyConfig, Value,
};

use crate::cli::BenchCli;
use crate::progress::ProgressLine;
use crate::report::{LatencyNanos, ScenarioReport};
use crate::scenario::Scenario;

/// Tuple trees the spout keeps in flight: enough for several full batches.
const MAX_PENDING: u32 = 8192;

/// One phase's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PostgresPhase {
    /// The most rows per transaction.
    pub max_rows: usize,
    /// Rows acknowledged per second over the timed window (each committed first).
    pub rows_per_sec: f64,
    /// Tuples failed over the whole phase.
    pub failed: u64,
}

/// The figures of the `postgres` scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PostgresFigures {
    /// Batched, as the bolt does by default.
    pub batched: PostgresPhase,
    /// One row per transaction.
    pub row_at_a_time: PostgresPhase,
}

impl PostgresFigures {
    /// The phases in one line.
    pub fn summary(&self) -> String {
        format!(
            "batched {} rows/s, row at a time {} rows/s ({:.1}×); {} failed",
            crate::format::rate(self.batched.rows_per_sec).trim_end_matches("/s"),
            crate::format::rate(self.row_at_a_time.rows_per_sec).trim_end_matches("/s"),
            self.batched.rows_per_sec / self.row_at_a_time.rows_per_sec.max(1e-9),
            self.batched.failed + self.row_at_a_time.failed
        )
    }
}

/// `[id, word]` for ids 0, 1, 2, …, each tracked.
struct Rows {
    next: u64,
}

impl Spout for Rows {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["id", "word"]);
    }
    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        let word = format!("word-{}", self.next % 10_000);
        output.emit_with_id(
            &[Value::U64(self.next), Value::Str(&word)],
            MessageId(self.next),
        );
        self.next += 1;
    }
}

/// A private server for the run, stopped when dropped.
struct PrivateServer {
    script: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Starts a private server with the project's script; returns it and its settings.
fn private_server() -> anyhow::Result<(PrivateServer, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh");
    anyhow::ensure!(
        script.is_file(),
        "the postgres scenario needs a server: pass --postgres SETTINGS, or run it from the \
         source tree, where scripts/postgres.sh starts one"
    );
    let dir = tempfile::Builder::new()
        .prefix("squall-bench-postgres-")
        .tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let password = "squall-bench";
    let output = Command::new(&script)
        .arg("start")
        .arg(dir.path())
        .arg(port.to_string())
        .env("SQUALL_POSTGRES_PASSWORD", password)
        .output()
        .context("running scripts/postgres.sh")?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/postgres.sh could not start a server (is PostgreSQL installed? \
         scripts/postgres.sh install): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let settings =
        format!("host=127.0.0.1 port={port} user=squall password={password} dbname=squall");
    Ok((PrivateServer { script, dir }, settings))
}

/// Runs one phase: a fresh table, `warmup`, then acked rows counted over `window`.
fn phase(
    settings_text: &str,
    batch: BatchSettings,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<PostgresPhase> {
    let mut admin = postgres::Client::connect(settings_text, postgres::NoTls)
        .context("connecting to PostgreSQL")?;
    admin.batch_execute(
        "DROP TABLE IF EXISTS squall_bench_rows;
         CREATE TABLE squall_bench_rows (id bigint PRIMARY KEY, word text NOT NULL)",
    )?;
    let table = PostgresTable {
        connection: settings_text.to_owned(),
        table: "squall_bench_rows".into(),
        columns: vec![("id".into(), "id".into()), ("word".into(), "word".into())],
        key: vec!["id".into()],
    };
    table.check()?;
    let mut builder = TopologyBuilder::new();
    builder.set_spout("rows", || Rows { next: 0 }, 1);
    builder
        .set_bolt(
            "write",
            move || postgres_write_bolt(table.clone(), batch).expect("the table was checked"),
            1,
        )
        .shuffle_grouping("rows");
    let config = TopologyConfig {
        max_spout_pending: Some(MAX_PENDING),
        ..TopologyConfig::default()
    };
    let running = squall::run(builder.build("postgres-bench", config)?)?;
    let acked = || {
        running
            .metrics()
            .component("rows")
            .map_or(0, |figures| figures.counters.acked)
    };
    std::thread::sleep(warmup);
    let (start, from) = (Instant::now(), acked());
    std::thread::sleep(window);
    let (elapsed, to) = (start.elapsed(), acked());
    let failed = running
        .metrics()
        .component("rows")
        .map_or(0, |figures| figures.counters.failed);
    running.kill(Duration::from_secs(5));
    Ok(PostgresPhase {
        max_rows: batch.max_rows,
        rows_per_sec: (to - from) as f64 / elapsed.as_secs_f64(),
        failed,
    })
}

/// Runs the scenario as the command line says.
///
/// # Errors
/// When no server can be reached or started, or the topology cannot start.
pub fn run(cli: &BenchCli, progress: &mut ProgressLine) -> anyhow::Result<ScenarioReport> {
    let (_server, settings) = match &cli.postgres {
        Some(settings) => (None, settings.clone()),
        None => {
            let (server, settings) = private_server()?;
            (Some(server), settings)
        }
    };
    let (warmup, window) = (cli.warmup.get(), cli.duration.get());
    progress.update("postgres: batched");
    let batched = phase(&settings, BatchSettings::default(), warmup, window)?;
    progress.update("postgres: row at a time");
    let row_at_a_time = phase(&settings, BatchSettings::row_at_a_time(), warmup, window)?;
    progress.finish();
    Ok(ScenarioReport {
        scenario: Scenario::Postgres.name().to_owned(),
        tuples_per_sec: batched.rows_per_sec,
        latency_ns: LatencyNanos::default(),
        complete_latency_ns: None,
        acking: true,
        failed: batched.failed + row_at_a_time.failed,
        executors: 1,
        pinned: false,
        tuples: (batched.rows_per_sec * window.as_secs_f64()) as u64,
        duration_secs: window.as_secs_f64(),
        warmup_secs: warmup.as_secs_f64(),
        target_rate: None,
        latency_sample_every: 1,
        counts: None,
        network: None,
        workers: None,
        transport: None,
        drpc: None,
        postgres: Some(PostgresFigures {
            batched,
            row_at_a_time,
        }),
        interference: None,
        plots: crate::report::Plots::default(),
    })
}
