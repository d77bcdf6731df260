//! What a checkpoint costs a stateful bolt, on both state backends: the pause (the bolt
//! copies the changed keys and goes on) and the write that follows on the state writer
//! thread, for a first checkpoint that writes every key and for an incremental one that
//! writes a tenth of them; then folding into the base, and restoring.
//!
//! Every case runs once per round, cases interleaved; the table gives the median over
//! rounds with the lowest and highest.
//!
//! ```text
//! cargo run --release -p squall-benches --bin checkpoints -- [--rounds N] [--keys 10000,1000000] [--redis URL]
//! ```
//!
//! Without `--redis`, a private Redis server is started with `scripts/redis.sh` (Redis must
//! be installed: `scripts/redis.sh install`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use squall::connectors::RedisBackend;
use squall::state::{EmbeddedBackend, KeyValueState, StateBackend};
use squall_benches::stats::median;

#[derive(Debug, Parser)]
#[command(about = "Checkpoint pause and write time of stateful bolts, embedded and Redis")]
struct Args {
    /// Rounds: every case runs once per round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// State sizes, in keys.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 1_000_000])]
    keys: Vec<usize>,
    /// A Redis server to use instead of a private one.
    #[arg(long)]
    redis: Option<String>,
}

/// One case's timings in one round, in seconds.
#[derive(Debug, Default, Clone)]
struct Timings {
    full_pause: f64,
    full_write: f64,
    incremental_pause: f64,
    incremental_write: f64,
    fold: f64,
    restore: f64,
}

/// Runs one case: a fresh task store holding `keys` keys.
fn measure(backend: &dyn StateBackend, topology: &str, keys: usize) -> anyhow::Result<Timings> {
    let mut store = backend.task_store(topology, "count", 0)?;
    let mut state = KeyValueState::new();
    for key in 0..keys as u64 {
        state.put_u64(&key.to_le_bytes(), key);
    }
    let mut timings = Timings::default();

    let started = Instant::now();
    let delta = state.take_changes(1);
    timings.full_pause = started.elapsed().as_secs_f64();
    let started = Instant::now();
    store.save(&delta)?;
    timings.full_write = started.elapsed().as_secs_f64();
    drop(delta);

    for key in (0..keys as u64).step_by(10) {
        state.add_u64(&key.to_le_bytes(), 1);
    }
    let started = Instant::now();
    let delta = state.take_changes(2);
    timings.incremental_pause = started.elapsed().as_secs_f64();
    let started = Instant::now();
    store.save(&delta)?;
    timings.incremental_write = started.elapsed().as_secs_f64();

    let started = Instant::now();
    store.compact(1)?;
    timings.fold = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let restored = store.restore(2)?;
    timings.restore = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        restored.len() == keys,
        "restored {} keys of {keys}",
        restored.len()
    );
    Ok(timings)
}

/// A Redis server started for the run, stopped at the end.
struct PrivateRedis {
    script: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn private_redis() -> anyhow::Result<(PrivateRedis, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis.sh");
    anyhow::ensure!(
        script.is_file(),
        "no --redis given, and no scripts/redis.sh to start one"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = tempfile::tempdir()?;
    let status = Command::new(&script)
        .arg("start")
        .arg(dir.path())
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "scripts/redis.sh could not start a server (is Redis installed? scripts/redis.sh install)"
    );
    Ok((
        PrivateRedis { script, dir },
        format!("redis://127.0.0.1:{port}"),
    ))
}

fn figure(values: &[f64]) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(0.0, f64::max);
    let show = |seconds: f64| {
        if seconds < 1e-3 {
            format!("{:.0} µs", seconds * 1e6)
        } else if seconds < 1.0 {
            format!("{:.1} ms", seconds * 1e3)
        } else {
            format!("{seconds:.2} s")
        }
    };
    format!("{} ({}–{})", show(median(values)), show(low), show(high))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (_server, redis_url) = match &args.redis {
        Some(url) => (None, url.clone()),
        None => {
            let (server, url) = private_redis()?;
            (Some(server), url)
        }
    };
    let dir = tempfile::tempdir()?;
    let backends: Vec<(&str, Arc<dyn StateBackend>)> = vec![
        ("embedded", Arc::new(EmbeddedBackend::new(dir.path()))),
        (
            "redis",
            Arc::new(RedisBackend::new(&redis_url, "squall-checkpoint-bench")?),
        ),
    ];
    let mut results: Vec<Vec<Timings>> = vec![Vec::new(); backends.len() * args.keys.len()];
    for round in 0..args.rounds {
        for (b, (name, backend)) in backends.iter().enumerate() {
            for (k, &keys) in args.keys.iter().enumerate() {
                // A topology name per case and round: every case starts from an empty store.
                let topology = format!("bench-{round}-{keys}");
                let timings = measure(backend.as_ref(), &topology, keys)
                    .map_err(|error| anyhow::anyhow!("{name}, {keys} keys: {error}"))?;
                results[b * args.keys.len() + k].push(timings);
            }
        }
    }
    println!(
        "{:<9} {:>9}  {:<24} {:<24} {:<24} {:<24} {:<24} {:<24}",
        "backend",
        "keys",
        "pause, all keys",
        "write, all keys",
        "pause, a tenth",
        "write, a tenth",
        "fold into base",
        "restore"
    );
    for (b, (name, _)) in backends.iter().enumerate() {
        for (k, keys) in args.keys.iter().enumerate() {
            let runs = &results[b * args.keys.len() + k];
            let column =
                |pick: fn(&Timings) -> f64| figure(&runs.iter().map(pick).collect::<Vec<_>>());
            println!(
                "{:<9} {:>9}  {:<24} {:<24} {:<24} {:<24} {:<24} {:<24}",
                name,
                keys,
                column(|t| t.full_pause),
                column(|t| t.full_write),
                column(|t| t.incremental_pause),
                column(|t| t.incremental_write),
                column(|t| t.fold),
                column(|t| t.restore),
            );
        }
    }
    Ok(())
}
