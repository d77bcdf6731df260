//! Smoke runs of the scenarios that measure services: `drpc` (an in-process DRPC server)
//! and `postgres` (a private PostgreSQL started by the project's script). Short windows:
//! they check that the scenarios run and report, not their figures.

use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_squall-bench"))
        .args(args)
        .args(["--duration", "1s", "--warmup", "200ms", "--json"])
        .output()
        .expect("squall-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "squall-bench {args:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("not one JSON report ({error}): {stdout}"))
}

#[test]
fn the_drpc_scenario_reports_every_phase() {
    let report = bench(&["drpc", "--rate", "200"]);
    let drpc = &report["drpc"];
    for phase in ["single_client", "concurrent", "pipelined", "paced"] {
        assert!(
            drpc[phase]["requests_per_sec"].as_f64().unwrap_or_default() > 0.0,
            "{phase}: {report}"
        );
        assert_eq!(drpc[phase]["errors"], 0, "{phase}: {report}");
    }
}

#[test]
fn the_postgres_scenario_reports_batched_and_row_at_a_time() {
    let installed = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/postgres.sh"
    ))
    .arg("install")
    .status()
    .expect("scripts/postgres.sh runs");
    assert!(installed.success(), "PostgreSQL cannot be installed");
    let report = bench(&["postgres"]);
    let postgres = &report["postgres"];
    assert_eq!(postgres["batched"]["max_rows"], 1000, "{report}");
    assert_eq!(postgres["row_at_a_time"]["max_rows"], 1, "{report}");
    for phase in ["batched", "row_at_a_time"] {
        assert!(
            postgres[phase]["rows_per_sec"].as_f64().unwrap_or_default() > 0.0,
            "{phase}: {report}"
        );
        assert_eq!(postgres[phase]["failed"], 0, "{phase}: {report}");
    }
}
