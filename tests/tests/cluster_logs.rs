//! Daemons and their workers asked for JSON logs (`SQUALL_LOG_FORMAT=json`, as a log
//! shipper wants them) write one JSON object per line, with no colour codes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use squall::cluster::WorkerHeartbeat;
use squall_tests::cluster::{Cluster, Timings};

const TOPOLOGY: &str = "\
name: lines
spouts:
  - id: lines
    builtin: lines
    params: {file: lines.txt, repeat: true}
bolts:
  - id: count
    builtin: field_count
    params: {field: line}
streams:
  - {from: lines, to: count, grouping: {type: shuffle}}
";

/// Checks that every line of `log` is a JSON object with a level and a message; returns
/// how many lines there are.
fn assert_json_lines(name: &str, log: &str) -> usize {
    assert!(!log.contains('\u{1b}'), "{name} log has escape codes");
    let mut count = 0;
    for line in log.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("{name} log line is not JSON ({error}): {line}"));
        assert!(value.is_object(), "{name}: {line}");
        assert!(value["level"].is_string(), "{name}: {line}");
        assert!(value["fields"]["message"].is_string(), "{name}: {line}");
        count += 1;
    }
    count
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut cluster = Cluster::new(
        &PathBuf::from(env!("CARGO_BIN_EXE_squall-cli")),
        1,
        1,
        1,
        Timings::default(),
        &[("SQUALL_LOG_FORMAT", "json")],
    );
    let source = cluster.dir.path().join("topology");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("lines.yaml"), TOPOLOGY).unwrap();
    std::fs::write(source.join("lines.txt"), "alpha\nbeta\n").unwrap();
    cluster.start_and_settle();
    let file = source.join("lines.yaml");
    let (ok, stdout, stderr) = cluster.cli(&["submit", file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let worker = cluster.wait_for("the worker to run", Duration::from_secs(20), || {
        let (_, worker) = cluster.all_workers().into_iter().next()?;
        let beat = WorkerHeartbeat::read_from(&worker.dir)?;
        (beat.pid == worker.pid && beat.executed > 0).then_some(worker)
    });
    let worker_log = std::fs::read_to_string(Path::new(&worker.dir).join("worker.log")).unwrap();
    assert!(assert_json_lines("worker", &worker_log) > 0);
    assert!(assert_json_lines("nimbus", &cluster.nimbuses[0].log()) > 0);
    assert!(assert_json_lines("supervisor", &cluster.supervisors[0].log()) > 0);
}
