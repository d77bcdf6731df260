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

/// Words in, a counter that reports an error every 5 000 tuples, and a bolt too slow for the
/// words, which holds their spout back.
fn failing_counter_topology() -> std::sync::Arc<squall::Topology> {
    use squall::builtin::components::{ConstSpout, SourceOptions};
    use squall::{Bolt, BoltOutput, OutputDeclarer, TopologyBuilder, TopologyConfig, Tuple};

    struct FlakyCount(u64);
    impl Bolt for FlakyCount {
        fn declare_outputs(&self, _: &mut OutputDeclarer) {}
        fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
            self.0 += 1;
            if self.0.is_multiple_of(5_000) {
                output.report_error("injected failure for the web UI");
            }
            output.ack(input);
        }
    }

    /// At most 10 000 tuples a second: half the words' rate.
    struct Slow(u64);
    impl Bolt for Slow {
        fn declare_outputs(&self, _: &mut OutputDeclarer) {}
        fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
            self.0 += 1;
            if self.0.is_multiple_of(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            output.ack(input);
        }
    }

    let mut builder = TopologyBuilder::new();
    let options = SourceOptions {
        rate: Some(squall::builtin::pacing::TuplesPerSecond::new(20_000).unwrap()),
        ..SourceOptions::default()
    };
    builder.set_spout("words", move || ConstSpout::new(7, options.clone()), 1);
    builder
        .set_bolt("count", || FlakyCount(0), 2)
        .shuffle_grouping("words");
    builder
        .set_bolt("slow", || Slow(0), 1)
        .shuffle_grouping("words");
    // A thread per executor, so that the slow bolt does not share the spout's thread (where
    // it would slow the spout down without any ring filling up); small rings fill within
    // milliseconds of it falling behind.
    let config = TopologyConfig {
        chaining: squall::Chaining::Never,
        ring_bytes: 16 * 1024,
        ..TopologyConfig::default()
    };
    builder.build("flaky", config).unwrap()
}

/// The web UI in a real browser: the graph, the rates, the task placement and the errors
/// are rendered from the REST API; screenshots are kept in the target directory.
#[test]
fn the_web_ui_renders_a_running_topology_in_headless_chromium() {
    squall_tests::browser::chromium();
    let running = squall::run(failing_counter_topology()).unwrap();
    let watch = squall::cluster::observe::local::LocalWatch::start("127.0.0.1:0").unwrap();
    let base = format!("http://{}", watch.local_addr());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                watch.update(&running);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, body)) = get(&format!("{base}/api/v1/topology/flaky")) {
                if Instant::now() >= deadline {
                    // Let the updating thread end, so that the scope (and the test) does.
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    panic!("no error or no backpressure reached the API: {body}");
                }
                let page: Value = serde_json::from_str(&body).unwrap();
                // The edge's rate comes from the API, so the page's first paint shows it.
                let words = &page["spouts"][0];
                if !page["taskErrors"].as_array().unwrap().is_empty()
                    && page["edges"][0]["emittedPerSec"].as_f64().unwrap() > 0.0
                    && words["rates"]["backpressuredFraction"].as_f64().unwrap() > 0.1
                {
                    assert_eq!(page["edges"][0]["from"], "words", "{page}");
                    assert_eq!(page["edges"][0]["to"], "count", "{page}");
                    assert_eq!(page["edges"][0]["grouping"], "shuffle", "{page}");
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }

        let dom = squall_tests::browser::rendered_dom(&format!("{base}/#open=flaky/count"));
        for expected in [
            r#"<svg class="graph""#,
            r#"data-component="words""#,
            r#"data-component="count""#,
            r#"data-from="words" data-to="count" data-stream="default">"#,
            "injected failure for the web UI",
            r#"<table class="tasks">"#,
            r#"<tr data-input="words/default">"#,
            // The slow bolt holds the words back: their node is marked.
            r#"<g class="node backpressured" data-component="words">"#,
            r#"class="backpressure""#,
        ] {
            assert!(
                dom.contains(expected),
                "{expected} is not in the page: {dom}"
            );
        }
        let rates: Vec<&str> = dom
            .split(r#"class="rate""#)
            .skip(1)
            .filter_map(|rest| {
                rest.split_once('>')?
                    .1
                    .split_once('<')
                    .map(|(text, _)| text)
            })
            .collect();
        assert_eq!(rates.len(), 3, "{dom}");
        for rate in rates {
            assert!(!rate.ends_with(" 0/s"), "a node shows no traffic: {rate}");
        }
        let edge = dom
            .split(r#"data-from="words" data-to="count""#)
            .nth(1)
            .and_then(|rest| rest.split("</g>").next())
            .unwrap();
        assert!(
            edge.contains("/s</text>") && !edge.contains(" 0/s</text>"),
            "the edge shows its rate: {edge}"
        );
        let tasks = dom.matches("data-task=").count();
        assert_eq!(tasks, 2, "count has two tasks: {dom}");

        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        squall_tests::browser::screenshot(&base, &shots.join("topology.png"));
        squall_tests::browser::screenshot(
            &format!("{base}/#open=flaky/count"),
            &shots.join("component-tasks.png"),
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    running.kill(Duration::from_secs(2));
}
