//! Topology files run for real: the shipped word-count example (pystorm spout and split
//! bolt, built-in counting bolt) from an artifact directory, as a cluster worker runs it;
//! components an embedder registers; and errors that name the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_core::{Bolt, BoltOutput, RunningTopology, Tuple};
use squall_topology_file::{
    BoltFactory, ComponentRegistry, Overrides, ResourceKind, TopologyFile, topology_from_file,
};

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/wordcount")
}

/// Waits until `done()`, or fails with the topology's errors.
fn wait_for(running: &RunningTopology, what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    squall_test_support::wait_for_or_explain(what, timeout, done, || {
        format!("; errors: {:#?}", running.errors())
    });
}

fn acked_by(running: &RunningTopology, component: &str) -> u64 {
    running
        .metrics()
        .component(component)
        .map_or(0, |figures| figures.counters.acked)
}

/// Copies the example's files into `dir`, as a submitter would ship them.
fn ship_example(dir: &Path) -> PathBuf {
    let file = TopologyFile::read(&example_dir().join("topology.yaml")).unwrap();
    for resource in file.resources() {
        assert_eq!(resource.kind, ResourceKind::File, "{resource:?}");
        std::fs::copy(example_dir().join(&resource.path), dir.join(&resource.path)).unwrap();
    }
    // The spout reads its sentences from a file named in the settings (and in the file's
    // `resources`).
    std::fs::copy(
        example_dir().join("sentences.txt"),
        dir.join("sentences.txt"),
    )
    .unwrap();
    dir.join("topology.yaml")
}

#[test]
fn the_example_word_count_counts_exactly_from_an_artifact_dir() {
    squall_test_support::require_python_module("pystorm");
    let artifact = tempfile::tempdir().unwrap();
    let file = ship_example(artifact.path());
    let listed: Vec<PathBuf> = TopologyFile::read(&file)
        .unwrap()
        .resources()
        .into_iter()
        .map(|resource| resource.path)
        .collect();
    assert_eq!(
        listed,
        [
            "topology.yaml",
            "sentences.txt",
            "sentence_spout.py",
            "split_bolt.py"
        ]
        .map(PathBuf::from)
    );
    let overrides = Overrides {
        artifact_dir: Some(artifact.path().to_owned()),
        ..Overrides::default()
    };
    let topology = topology_from_file(&file, &overrides).unwrap();
    let text = std::fs::read_to_string(artifact.path().join("sentences.txt")).unwrap();
    let lines = text.lines().filter(|line| !line.trim().is_empty()).count() as u64;
    let running = squall_core::run(topology).unwrap();
    wait_for(
        &running,
        "every sentence acked",
        Duration::from_secs(30),
        || acked_by(&running, "sentences") == lines,
    );
    let report = running.kill(Duration::from_secs(10));
    assert!(report.errors.is_empty(), "{:#?}", report.errors);

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for word in text
        .to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c == '\''))
    {
        if !word.is_empty() {
            *expected.entry(word.to_owned()).or_default() += 1;
        }
    }
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    let out = artifact.path().join("out");
    let mut files = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        files += 1;
        let counts: BTreeMap<String, u64> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (word, count) in counts {
            assert!(
                counted.insert(word, count).is_none(),
                "a word counted by two tasks"
            );
        }
    }
    assert_eq!(files, 2, "one file per counting task");
    assert_eq!(counted, expected);
}

/// Collects what it gets, for the test that registers it.
#[derive(Debug)]
struct Collect(Arc<Mutex<Vec<u64>>>);

impl Bolt for Collect {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        self.0.lock().unwrap().push(input.get_u64(0).unwrap());
        output.ack(input);
    }
}

#[test]
fn an_embedder_adds_its_own_components() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut registry = ComponentRegistry::with_builtins();
    let sink = Arc::clone(&seen);
    registry.add_bolt("collect", "collects u64s", move |args| {
        if !args.params.is_empty() {
            return Err("collect takes no params".to_owned());
        }
        let sink = Arc::clone(&sink);
        let factory: BoltFactory = Arc::new(move || Box::new(Collect(Arc::clone(&sink))));
        Ok(factory)
    });
    let text = "\
name: numbers
spouts:
  - id: numbers
    builtin: sequence
    params: {count: 500}
bolts:
  - id: sink
    builtin: collect
    parallelism: 2
streams:
  - {from: numbers, to: sink, grouping: shuffle}
";
    let file = TopologyFile::parse(text, "numbers.yaml", Path::new(".")).unwrap();
    let running =
        squall_core::run(file.build_with(&Overrides::default(), &registry).unwrap()).unwrap();
    wait_for(
        &running,
        "every number acked",
        Duration::from_secs(20),
        || acked_by(&running, "numbers") == 500,
    );
    let report = running.kill(Duration::from_secs(10));
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..500).collect::<Vec<u64>>());

    let error = file.build(&Overrides::default()).unwrap_err().to_string();
    assert!(
        error
            .starts_with("numbers.yaml:8: bolts[0].builtin: no builtin bolt is called \"collect\""),
        "{error}"
    );
}

#[test]
fn a_broken_file_is_reported_with_its_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "name: broken\nspouts:\n  - id: s\n    shell:\n      comand: python3\n",
    )
    .unwrap();
    let error = topology_from_file(&path, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "{}:5: spouts[0].shell: unknown field `comand`, expected one of `command`, `args`, `cwd`, `resources`, `env`, `restart`",
            path.display()
        )
    );
    let missing = dir.path().join("missing.yaml");
    let error = topology_from_file(&missing, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("cannot read topology file"), "{error}");
}
