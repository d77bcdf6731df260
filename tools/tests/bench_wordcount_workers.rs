//! `squall-bench wordcount --workers 2` end to end: two worker processes of the bench binary,
//! fields grouping across them, and the exact count check at the end.

use std::process::Command;

#[test]
fn a_word_count_over_two_workers_counts_exactly() {
    let output = Command::new(env!("CARGO_BIN_EXE_squall-bench"))
        .args([
            "wordcount",
            "--workers",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--json",
        ])
        .output()
        .expect("squall-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "squall-bench failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("not one JSON report ({error}): {stdout}"));
    assert_eq!(report["scenario"], "wordcount");
    assert_eq!(report["workers"], 2);
    assert_eq!(report["transport"], "mio");
    // The counts are present only when every word was counted exactly as often as the
    // spouts of both workers emitted it.
    let counted = report["counts"]["total"].as_u64().expect("counts checked");
    let tuples = report["tuples"].as_u64().expect("tuples counted");
    assert!(tuples > 0, "{report}");
    assert!(
        counted >= tuples,
        "the whole run counted fewer words than its window: {report}"
    );
    assert!(
        report["counts"]["distinct_words"].as_u64() > Some(0),
        "{report}"
    );
}
