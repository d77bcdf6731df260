//! `squall drill --short` end to end: a real ZooKeeper, two nimbuses and three supervisors
//! on loopback, the tracked topology, a worker SIGKILLed, a rebalance and a pause; the drill
//! must pass, lose nothing and finish well within a minute.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_short_drill_passes_and_loses_nothing() {
    squall_tests::zookeeper::ensure_installed();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_squall-cli"))
        .args(["drill", "--short", "--json", "--network", "loopback"])
        .arg("--topology")
        .arg(PathBuf::from(env!("CARGO_BIN_EXE_squall-test-wordcount")))
        .env_remove("SQUALL_CONF")
        .output()
        .expect("the squall binary runs");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the drill failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["setting"], "loopback");
    assert_eq!(report["ledger"]["lost"], 0, "{report:#}");
    assert!(
        report["ledger"]["acked"].as_u64().unwrap_or(0) > 0,
        "{report:#}"
    );
    let faults: Vec<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter_map(|fault| fault["fault"].as_str())
        .collect();
    assert_eq!(
        faults,
        [
            "submit",
            "worker-kill",
            "rebalance",
            "deactivate-activate",
            "kill"
        ]
    );
    assert!(
        report["kept_files"].is_null(),
        "a passed drill cleans up: {report:#}"
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "the drill took {elapsed:?}"
    );
    eprintln!("short drill in {elapsed:?}: {report}");
}
