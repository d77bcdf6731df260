//! A topology file (YAML) on a cluster: `squall submit FILE.yaml` ships the file with the
//! resources it names, and the supervisor runs it with the stock binary as
//! `squall worker --plan FILE`.

use std::path::PathBuf;
use std::time::Duration;

use squall::cluster::WorkerHeartbeat;
use squall_tests::cluster::{Cluster, Timings};

const TOPOLOGY: &str = "\
name: lines
spouts:
  - id: lines
    builtin: lines
    params: {file: data/lines.txt, repeat: true}
bolts:
  - id: count
    builtin: field_count
    params: {field: line}
streams:
  - {from: lines, to: count, grouping: {type: fields, args: [line]}}
";

/// The multi-lang pid directories of the worker process `pid`.
fn pid_dirs_of(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(squall::multilang::pid_dir::owner_of)
                == Some(pid)
        })
        .map(|entry| entry.path())
        .collect()
}

#[test]
fn a_topology_file_runs_on_the_cluster_with_its_resources() {
    let mut cluster = Cluster::new(
        &PathBuf::from(env!("CARGO_BIN_EXE_squall-cli")),
        1,
        1,
        2,
        Timings::default(),
        &[],
    );
    let source = cluster.dir.path().join("topology");
    std::fs::create_dir_all(source.join("data")).unwrap();
    std::fs::write(source.join("lines.yaml"), TOPOLOGY).unwrap();
    std::fs::write(source.join("data/lines.txt"), "alpha\nbeta\ngamma\n").unwrap();
    cluster.start_and_settle();

    let file = source.join("lines.yaml");
    let (ok, stdout, stderr) = cluster.cli(&["submit", file.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("submitted topology lines as lines-"),
        "{stdout}"
    );
    let worker = cluster.wait_for("the worker to count lines", Duration::from_secs(20), || {
        let (_, worker) = cluster.all_workers().into_iter().next()?;
        let beat = WorkerHeartbeat::read_from(&worker.dir)?;
        (beat.pid == worker.pid && beat.executed > 100).then_some(worker)
    });
    let plan = squall::cluster::WorkerPlan::read(&worker.dir.join("plan.json")).unwrap();
    assert_eq!(plan.args, ["lines.yaml"]);
    assert_eq!(
        std::fs::read_to_string(plan.artifact_dir.join("data/lines.txt")).unwrap(),
        "alpha\nbeta\ngamma\n",
        "the resource travelled with the file"
    );
    let (ok, stdout, _) = cluster.cli(&["status", "lines"]);
    assert!(ok && stdout.contains("count      bolt"), "{stdout}");
    // Logs written to files carry no colour codes.
    let worker_log = std::fs::read_to_string(worker.dir.join("worker.log")).unwrap();
    for (name, log) in [
        ("nimbus", cluster.nimbuses[0].log()),
        ("supervisor", cluster.supervisors[0].log()),
        ("worker", worker_log),
    ] {
        assert!(log.contains(" INFO "), "{name} logs: {log}");
        assert!(
            !log.contains('\u{1b}'),
            "{name} log has escape codes: {log:?}"
        );
    }

    let (ok, stdout, _) = cluster.cli(&["kill", "lines", "--wait", "0"]);
    assert!(ok, "{stdout}");
    cluster.wait_for("the worker to stop", Duration::from_secs(15), || {
        cluster.all_workers().is_empty().then_some(())
    });
}

/// The shipped example: a pystorm spout and split bolt (Python subprocesses whose scripts
/// travel as resources) feeding Squall's built-in counter, on a cluster.
#[test]
fn the_pystorm_word_count_example_runs_on_the_cluster() {
    let mut cluster = Cluster::new(
        &PathBuf::from(env!("CARGO_BIN_EXE_squall-cli")),
        1,
        1,
        2,
        Timings::default(),
        &[],
    );
    cluster.start_and_settle();
    let example = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/wordcount/topology.yaml"
    ));
    let (ok, stdout, stderr) = cluster.cli(&["submit", example.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    // Every tuple starts in the Python spout (20 sentences, 186 words) and passes the Python
    // split bolt, so counted words mean both subprocesses run and speak the protocol.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let worker = loop {
        let running = cluster.all_workers().into_iter().next().map(|(_, w)| w);
        if let Some(worker) = &running
            && let Some(beat) = WorkerHeartbeat::read_from(&worker.dir)
            && beat.pid == worker.pid
            && beat.executed > 100
        {
            break running.unwrap();
        }
        if std::time::Instant::now() >= deadline {
            let log = running
                .map(|worker| std::fs::read_to_string(worker.dir.join("worker.log")))
                .and_then(Result::ok)
                .unwrap_or_default();
            panic!("the Python components fed no counters within 60 s; worker log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let plan = squall::cluster::WorkerPlan::read(&worker.dir.join("plan.json")).unwrap();
    for script in ["sentence_spout.py", "split_bolt.py", "sentences.txt"] {
        assert!(
            plan.artifact_dir.join(script).is_file(),
            "{script} travelled with the topology file"
        );
    }
    // Each Python subprocess got a pid directory; a worker SIGKILLed cannot remove them, so
    // its supervisor does once it has reaped the worker.
    let subprocesses = pid_dirs_of(worker.pid).len();
    assert!(subprocesses >= 2, "one per spout and bolt task");
    cluster.kill_worker(worker.pid);
    let restarted = cluster.wait_for("the worker to restart", Duration::from_secs(30), || {
        let (_, restarted) = cluster.all_workers().into_iter().next()?;
        (restarted.pid != worker.pid && pid_dirs_of(restarted.pid).len() == subprocesses)
            .then_some(restarted)
    });
    cluster.wait_for(
        "the supervisor to sweep the killed worker's pid directories",
        Duration::from_secs(10),
        || pid_dirs_of(worker.pid).is_empty().then_some(()),
    );
    // A worker that stops normally removes its own.
    let (ok, stdout, _) = cluster.cli(&["kill", "wordcount", "--wait", "0"]);
    assert!(ok, "{stdout}");
    cluster.wait_for("the worker to stop", Duration::from_secs(15), || {
        cluster.all_workers().is_empty().then_some(())
    });
    assert_eq!(pid_dirs_of(restarted.pid), Vec::<PathBuf>::new());
    let log = cluster.supervisors[0].log();
    assert!(
        log.contains(&format!("squall-pids-{}-", worker.pid)),
        "the supervisor swept the killed worker's directories: {log}"
    );
    assert!(
        !log.contains(&format!("squall-pids-{}-", restarted.pid)),
        "the stopped worker removed its directories itself: {log}"
    );
}
