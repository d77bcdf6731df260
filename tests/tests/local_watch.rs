//! `squall local FILE --http IP:PORT` serves the run's `/metrics` and REST API while it runs.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use squall_tests::workers::free_port;

const TOPOLOGY: &str = "\
name: numbers
spouts:
  - {id: numbers, builtin: sequence, params: {count: 1000}}
bolts:
  - {id: count, builtin: field_count, params: {emit: false}}
streams:
  - {from: numbers, to: count, grouping: {type: fields, args: [n]}}
";

fn get(url: &str) -> Option<(u16, String)> {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(response) => Some((response.status(), response.into_string().ok()?)),
        Err(ureq::Error::Status(status, response)) => {
            Some((status, response.into_string().unwrap_or_default()))
        }
        Err(_) => None,
    }
}

#[test]
fn a_local_run_serves_metrics_and_the_rest_api() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.yaml");
    std::fs::write(&file, TOPOLOGY).unwrap();
    let squall = PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"));

    let output = Command::new(&squall)
        .args([
            "local",
            file.to_str().unwrap(),
            "--quiet",
            "--http",
            "0.0.0.0:9",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("only on a loopback address"), "{stderr}");

    let address = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let mut child = Command::new(&squall)
        .args([
            "local",
            file.to_str().unwrap(),
            "--quiet",
            "--duration",
            "60s",
        ])
        .args(["--http", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        assert!(Instant::now() < deadline, "the run never acked 1000 tuples");
        if let Some((200, body)) = get(&format!("{base}/api/v1/topology/numbers")) {
            let page: Value = serde_json::from_str(&body).unwrap();
            if page["spouts"][0]["stats"]["acked"] == 1000 {
                break page;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(page["bolts"][0]["id"], "count");
    assert_eq!(page["bolts"][0]["stats"]["executed"], 1000);
    assert_eq!(page["spouts"][0]["completeLatency"]["samples"], 1000);
    let component = get(&format!("{base}/api/v1/topology/numbers/component/count")).unwrap();
    assert_eq!(component.0, 200);
    let component: Value = serde_json::from_str(&component.1).unwrap();
    let executed: u64 = component["taskStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["executed"].as_u64().unwrap())
        .sum();
    assert_eq!(executed, 1000);
    let summary = get(&format!("{base}/api/v1/topology/summary")).unwrap();
    assert!(summary.1.contains("\"name\": \"numbers\""), "{}", summary.1);

    let (status, metrics) = get(&format!("{base}/metrics")).unwrap();
    assert_eq!(status, 200);
    let executed: f64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with("squall_task_executed_total{")
                && line.contains("topology=\"numbers\"")
                && line.contains("component=\"count\"")
                && line.contains("host=\"local\"")
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(executed, 1000.0, "{metrics}");

    child.kill().unwrap();
    child.wait().unwrap();
}
