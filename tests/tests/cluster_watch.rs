//! Watching a running cluster (real ZooKeeper, nimbus, supervisor and worker processes):
//! `/metrics` of nimbus, the supervisor and each worker, the service-discovery list, every
//! REST endpoint with figures checked against the topology's known counts, and the message
//! of an error a failing bolt injects, in the REST API and in `squall status`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use squall_tests::cluster::{Cluster, Timings};

fn get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(response) => (
            response.status(),
            response.into_string().expect("a text body"),
        ),
        Err(ureq::Error::Status(status, response)) => {
            (status, response.into_string().unwrap_or_default())
        }
        Err(error) => panic!("GET {url}: {error}"),
    }
}

fn json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {url}: {error}: {body}"))
}

/// The value of the series `name` whose labels include every one of `labels`, summed.
fn series_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn component<'a>(page: &'a Value, kind: &str, id: &str) -> &'a Value {
    page[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|component| component["id"] == id)
        .unwrap_or_else(|| panic!("no {kind} {id} in {page:#}"))
}

#[test]
fn a_cluster_is_watchable_over_http() {
    let mut cluster = Cluster::new(
        &PathBuf::from(env!("CARGO_BIN_EXE_squall-cli")),
        1,
        1,
        2,
        Timings::default(),
        &[],
    );
    cluster.start_and_settle();
    let program = PathBuf::from(env!("CARGO_BIN_EXE_squall-test-watched"));
    let (ok, stdout, stderr) = cluster.cli(&["submit", program.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    let nimbus = format!("http://{}", cluster.nimbuses[0].config.nimbus.http_bind);

    // Every tree has completed once the spout saw 999 acks and the refused one's failure.
    let page = cluster.wait_for(
        "every tuple tree to complete",
        Duration::from_secs(60),
        || {
            let (status, body) = get(&format!("{nimbus}/api/v1/topology/watched"));
            let page: Value = serde_json::from_str(&body).ok()?;
            let numbers = page["spouts"].as_array()?.first()?.clone();
            (status == 200
                && numbers["stats"]["acked"] == 999
                && numbers["stats"]["failed"] == 1
                && page["workers"]
                    .as_array()?
                    .iter()
                    .all(|worker| worker["metricsEndpoint"].is_string()))
            .then_some(page)
        },
    );
    assert_eq!(page["name"], "watched");
    assert_eq!(page["status"], "active");
    assert_eq!(page["workersTotal"], 2);
    assert!(page["tasksTotal"].as_u64().unwrap() >= 5, "{page:#}");
    let numbers = component(&page, "spouts", "numbers");
    assert_eq!(numbers["stats"]["emitted"], 1000);
    assert_eq!(numbers["completeLatency"]["samples"], 999);
    let split = component(&page, "bolts", "split");
    assert_eq!(split["stats"]["executed"], 1000);
    assert_eq!(split["stats"]["emitted"], 1000);
    assert_eq!(split["stats"]["acked"], 1000);
    let check = component(&page, "bolts", "check");
    assert_eq!(
        check["stats"]["executed"], 999,
        "the refused tuple panicked"
    );
    assert_eq!(check["stats"]["acked"], 999);
    assert!(
        check["lastError"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("check refuses 7")),
        "{check:#}"
    );
    let windows: Vec<&str> = page["topologyStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stats| stats["window"].as_str().unwrap())
        .collect();
    assert_eq!(windows, ["60", "600", ":all-time"]);
    // Ackers count too, so the topology's totals are at least its components'.
    let all_time = &page["topologyStats"][2];
    assert!(
        all_time["acked"].as_u64().unwrap() >= 999 + 1000 + 999,
        "{all_time}"
    );

    // One component: per stream counts, every task placed, the error with its task.
    let split = json(&format!("{nimbus}/api/v1/topology/watched/component/split"));
    let streams: Vec<(String, u64)> = split["outputStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stream| {
            (
                stream["stream"].as_str().unwrap().to_owned(),
                stream["emitted"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(streams, [("even".into(), 500), ("odd".into(), 500)]);
    let tasks = split["taskStats"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    for task in tasks {
        assert_eq!(task["host"], "127.0.0.1");
        assert!(
            task["worker"].as_str().unwrap().starts_with("host0:"),
            "{task}"
        );
        assert!(
            task["thread"].is_u64() && task["executor"].is_u64(),
            "{task}"
        );
    }
    assert_eq!(
        tasks
            .iter()
            .map(|task| task["executed"].as_u64().unwrap())
            .sum::<u64>(),
        1000
    );
    // The spout counts its trees by the stream their root went out on.
    let numbers = json(&format!(
        "{nimbus}/api/v1/topology/watched/component/numbers"
    ));
    assert_eq!(
        numbers["outputStats"][0]["stream"], "default",
        "{numbers:#}"
    );
    assert_eq!(numbers["outputStats"][0]["acked"], 999, "{numbers:#}");
    assert_eq!(numbers["outputStats"][0]["failed"], 1, "{numbers:#}");
    let check = json(&format!("{nimbus}/api/v1/topology/watched/component/check"));
    // Per input stream: the refused tuple (7, odd) failed without completing its execute.
    let inputs: Vec<(&str, &str, u64, u64, u64)> = check["inputStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| {
            (
                input["component"].as_str().unwrap(),
                input["stream"].as_str().unwrap(),
                input["executed"].as_u64().unwrap(),
                input["acked"].as_u64().unwrap(),
                input["failed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        inputs,
        [
            ("split", "even", 500, 500, 0),
            ("split", "odd", 499, 499, 1)
        ]
    );
    assert!(
        check["taskStats"][0]["backpressuredMs"].is_number(),
        "{check:#}"
    );
    let errors = check["componentErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{check:#}");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("check refuses 7")
    );
    assert!(errors[0]["errorTime"].as_u64().unwrap() > 0);

    // The summaries.
    let summary = json(&format!("{nimbus}/api/v1/cluster/summary"));
    assert_eq!(summary["supervisors"], 1);
    assert_eq!(summary["topologies"], 1);
    assert_eq!(summary["slotsTotal"], 2);
    assert_eq!(summary["slotsUsed"], 2);
    let nimbuses = json(&format!("{nimbus}/api/v1/nimbus/summary"));
    assert_eq!(nimbuses["nimbuses"][0]["status"], "Leader");
    let supervisors = json(&format!("{nimbus}/api/v1/supervisor/summary"));
    assert_eq!(supervisors["supervisors"][0]["id"], "host0");
    assert_eq!(supervisors["supervisors"][0]["slotsUsed"], 2);
    let topologies = json(&format!("{nimbus}/api/v1/topology/summary"));
    assert_eq!(topologies["topologies"][0]["name"], "watched");
    assert!(topologies["topologies"][0]["executed"].as_u64().unwrap() >= 1000 + 999);
    assert_eq!(topologies["topologies"][0]["taskErrors"], 1);

    // Bad requests are named.
    let (status, body) = get(&format!("{nimbus}/api/v1/topology/watched?window=5"));
    assert_eq!(status, 400);
    assert!(body.contains("unknown window \\\"5\\\""), "{body}");
    let (status, body) = get(&format!("{nimbus}/api/v1/topology/nothing"));
    assert_eq!(status, 404);
    assert!(body.contains("/api/v1/topology/nothing"), "{body}");

    // Daemons' /metrics.
    let (status, text) = get(&format!("{nimbus}/metrics"));
    assert_eq!(status, 200);
    assert_eq!(
        series_sum(&text, "squall_nimbus_leader", &["nimbus=\"nimbus0\""]),
        1.0,
        "{text}"
    );
    assert_eq!(series_sum(&text, "squall_cluster_slots_used", &[]), 2.0);
    let supervisor = format!(
        "http://{}",
        cluster.supervisors[0].config.supervisor.metrics_bind
    );
    let (_, text) = get(&format!("{supervisor}/metrics"));
    assert_eq!(
        series_sum(
            &text,
            "squall_supervisor_slots",
            &["supervisor=\"host0\"", "host=\"127.0.0.1\""]
        ),
        2.0,
        "{text}"
    );

    // Service discovery lists every endpoint; the workers' figures add up.
    let targets = json(&format!("{nimbus}/sd/workers"));
    let workers: Vec<String> = targets
        .as_array()
        .unwrap()
        .iter()
        .filter(|group| group["labels"]["squall_role"] == "worker")
        .map(|group| group["targets"][0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(workers.len(), 2, "{targets:#}");
    assert!(targets.as_array().unwrap().iter().any(|group| {
        group["labels"]["squall_role"] == "supervisor"
            && group["targets"][0] == cluster.supervisors[0].config.supervisor.metrics_bind
    }));
    let scraped: Vec<String> = workers
        .iter()
        .map(|target| get(&format!("http://{target}/metrics")).1)
        .collect();
    let total = |name: &str, labels: &[&str]| -> f64 {
        scraped
            .iter()
            .map(|text| series_sum(text, name, labels))
            .sum()
    };
    let topology = "topology=\"watched\"";
    assert_eq!(
        total(
            "squall_task_executed_total",
            &[topology, "component=\"check\""]
        ),
        999.0
    );
    assert_eq!(
        total(
            "squall_stream_emitted_total",
            &[
                topology,
                "component=\"split\"",
                "stream=\"odd\"",
                "host=\"127.0.0.1\""
            ]
        ),
        500.0
    );
    assert_eq!(
        total(
            "squall_task_complete_latency_seconds_count",
            &[topology, "component=\"numbers\"", "task=\""]
        ),
        999.0
    );
    assert_eq!(total("squall_worker_task_errors_total", &[topology]), 1.0);
    assert!(
        scraped
            .iter()
            .any(|text| text.contains("# TYPE squall_link_frames_sent_total counter"))
    );
    assert_eq!(
        total(
            "squall_stream_acked_total",
            &[
                topology,
                "component=\"check\"",
                "source_component=\"split\"",
                "stream=\"even\""
            ]
        ),
        500.0
    );
    assert_eq!(
        total(
            "squall_stream_trees_failed_total",
            &[topology, "component=\"numbers\"", "stream=\"default\""]
        ),
        1.0
    );
    assert!(
        scraped
            .iter()
            .all(|text| text.contains("# TYPE squall_task_backpressured_seconds_total counter")),
        "every worker reports backpressure time"
    );
    // The two workers exchanged tuples and acks, and both ends counted the bytes.
    let bytes_sent = total("squall_link_bytes_sent_total", &[topology]);
    let bytes_received = total("squall_link_bytes_received_total", &[topology]);
    assert!(bytes_sent > 0.0 && bytes_received > 0.0, "{scraped:?}");

    // `squall status` shows the task error's message.
    let (ok, stdout, _) = cluster.cli(&["status", "watched"]);
    assert!(ok && stdout.contains("check refuses 7"), "{stdout}");

    // The graph's edges, and each worker's log as its supervisor serves it.
    let page = json(&format!("{nimbus}/api/v1/topology/watched"));
    let edges: Vec<(&str, &str)> = page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| (edge["from"].as_str().unwrap(), edge["to"].as_str().unwrap()))
        .collect();
    assert!(edges.contains(&("numbers", "split")), "{edges:?}");
    assert!(
        page["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|edge| edge["emittedPerSec"]
                .as_f64()
                .is_some_and(|rate| rate >= 0.0)),
        "{page:#}"
    );
    let links_bytes: u64 = page["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|worker| worker["links"]["bytes_sent"].as_u64().unwrap())
        .sum();
    assert!(links_bytes > 0, "{page:#}");
    assert!(edges.contains(&("split", "check")), "{edges:?}");
    for worker in page["workers"].as_array().unwrap() {
        let url = worker["logUrl"].as_str().unwrap();
        assert!(url.starts_with(&supervisor), "{url}");
        let (status, log) = get(url);
        assert_eq!(status, 200, "{url}: {log}");
        assert!(log.contains(" INFO "), "{url}: {log}");
    }
    let (status, _) = get(&format!("{supervisor}/logs/../secret"));
    assert_eq!(status, 404);
    let (status, listing) = get(&format!("{supervisor}/logs/"));
    assert_eq!(status, 200);
    assert!(listing.contains("watched-"), "{listing}");

    // The web UI, rendered by a real browser.
    let (status, page) = get(&format!("{nimbus}/"));
    assert_eq!(status, 200);
    assert!(page.contains("/api/v1/topology/summary"));
    let dom = squall_tests::browser::rendered_dom(&format!("{nimbus}/"));
    for expected in [
        r#"<svg class="graph""#,
        r#"data-component="numbers""#,
        r#"data-component="check""#,
        r#"data-from="split" data-to="check""#,
        "check refuses 7",
        r#"class="log""#,
        "host0",
    ] {
        assert!(
            dom.contains(expected),
            "{expected} is not in the page: {dom}"
        );
    }
    squall_tests::browser::screenshot(
        &format!("{nimbus}/"),
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots/cluster.png"),
    );

    let (ok, stdout, _) = cluster.cli(&["kill", "watched", "--wait", "0"]);
    assert!(ok, "{stdout}");
}

/// With `nimbus.http_key_file`, nimbus answers only requests carrying the key; a key file
/// others can read is refused at start-up.
#[test]
fn a_keyed_nimbus_answers_only_with_the_key() {
    let mut cluster = Cluster::new(
        &PathBuf::from(env!("CARGO_BIN_EXE_squall-cli")),
        1,
        1,
        1,
        Timings::default(),
        &[],
    );
    let key_file = cluster.dir.path().join("http.key");
    std::fs::write(&key_file, "a-key-of-at-least-16-bytes\n").unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let nimbus = &mut cluster.nimbuses[0];
    nimbus.config.nimbus.http_key_file = Some(key_file.clone());
    std::fs::write(&nimbus.config_path, nimbus.config.to_toml()).unwrap();
    let base = format!("http://{}", nimbus.config.nimbus.http_bind);

    // Others can read the key: nimbus refuses to start.
    cluster.start_nimbus(0);
    // The refusal is logged just before the process exits, so wait for both.
    let refused = squall_test_support::poll_until(Duration::from_secs(10), || {
        let nimbus = &mut cluster.nimbuses[0];
        (nimbus.log().contains(key_file.to_str().unwrap()) && !nimbus.running()).then_some(())
    });
    assert!(
        refused.is_some(),
        "nimbus did not refuse its key{}",
        cluster.logs()
    );

    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    cluster.start_and_settle();
    let url = format!("{base}/api/v1/cluster/summary");
    let (status, body) = cluster.wait_for("nimbus to serve", Duration::from_secs(10), || {
        ureq::get(&url).call().err().and_then(|error| match error {
            ureq::Error::Status(status, response) => {
                Some((status, response.into_string().unwrap_or_default()))
            }
            ureq::Error::Transport(_) => None,
        })
    });
    assert_eq!(status, 401);
    assert!(body.contains("Authorization: Bearer <key>"), "{body}");
    let (status, _) = get(&format!("{base}/metrics"));
    assert_eq!(status, 401, "/metrics needs the key too");
    // The view is refreshed every monitor interval: wait for the supervisor to show.
    cluster.wait_for(
        "the keyed API to show the supervisor",
        Duration::from_secs(10),
        || {
            let summary = ureq::get(&url)
                .set("Authorization", "Bearer a-key-of-at-least-16-bytes")
                .call()
                .expect("the key opens the API");
            let summary: Value = serde_json::from_str(&summary.into_string().ok()?).ok()?;
            (summary["supervisors"] == 1).then_some(())
        },
    );
}
