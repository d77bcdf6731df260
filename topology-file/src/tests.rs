use super::*;

const GOOD: &str = "\
name: words
config:
  topology.max.spout.pending: 100
  app.greeting: hello
spouts:
  - id: sentences
    shell:
      command: python3
      args: [spout.py, --fast]
    outputs:
      - fields: [sentence]
bolts:
  - id: split
    parallelism: 2
    shell:
      command: bin/split
      resources: scripts
    outputs:
      - fields: [word]
      - stream: lengths
        fields: [word, length]
        direct: true
  - id: count
    builtin: field_count
    params: {field: word, output: \"counts-{task}.json\"}
    parallelism: 2
    config:
      topology.tick.tuple.freq.secs: 5
streams:
  - name: split them
    from: sentences
    to: split
    grouping: SHUFFLE
  - from: split
    to: count
    grouping:
      type: fields
      args: [word]
";

fn parse(text: &str) -> Result<TopologyFile, TopologyFileError> {
    TopologyFile::parse(text, "t.yaml", Path::new("/topologies/words"))
}

fn build_error(text: &str) -> String {
    match parse(text).and_then(|file| file.build(&Overrides::default())) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_good_file_builds() {
    let file = parse(GOOD).unwrap();
    let topology = file.build(&Overrides::default()).unwrap();
    assert_eq!(topology.name(), "words");
    assert_eq!(topology.config().max_spout_pending, Some(100));
    assert_eq!(topology.config().user["app.greeting"], "hello");
    let count = topology.component("count").unwrap();
    assert_eq!(count.task_count(), 2);
    assert_eq!(
        count.config().tick_frequency,
        Some(std::time::Duration::from_secs(5))
    );
    let split = topology.component("split").unwrap();
    assert_eq!(split.outputs().len(), 2);

    let renamed = file
        .build(&Overrides {
            name: Some("other".into()),
            artifact_dir: Some("/artifacts/1".into()),
            ..Overrides::default()
        })
        .unwrap();
    assert_eq!(renamed.name(), "other");
    assert_eq!(
        renamed.config().user[squall_multilang::ARTIFACT_DIR_KEY],
        "/artifacts/1"
    );
}

#[test]
fn resources_are_listed_for_the_submitter() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spout.py"), "").unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, GOOD).unwrap();
    let file = TopologyFile::read(&path).unwrap();
    let resources = file.resources();
    let listed: Vec<(Option<&str>, &Path, ResourceKind)> = resources
        .iter()
        .map(|r| (r.component.as_deref(), r.path.as_path(), r.kind))
        .collect();
    assert_eq!(
        listed,
        vec![
            (None, Path::new("t.yaml"), ResourceKind::File),
            (Some("sentences"), Path::new("spout.py"), ResourceKind::File),
            (Some("split"), Path::new("scripts"), ResourceKind::Directory),
        ]
    );
}

#[test]
fn yaml_errors_name_line_and_key() {
    let cases = [
        (
            GOOD.replace("parallelism: 2\n    shell", "paralelism: 2\n    shell"),
            "t.yaml:14: bolts[0]: unknown field `paralelism`, expected one of",
        ),
        (
            GOOD.replace("type: fields", "type: feilds"),
            "t.yaml:37: streams[1].grouping.type: unknown variant `feilds`, expected one of",
        ),
        (
            GOOD.replace("parallelism: 2\n    shell", "parallelism: two\n    shell"),
            "t.yaml:14: bolts[0].parallelism: invalid type: string \"two\"",
        ),
        (
            GOOD.replace("name: words\n", ""),
            "t.yaml:1: missing field `name`",
        ),
    ];
    for (text, expected) in cases {
        let error = parse(&text).unwrap_err().to_string();
        assert!(
            error.starts_with(expected),
            "got {error:?}\nwant {expected:?}"
        );
    }
}

#[test]
fn semantic_errors_name_line_and_key() {
    let cases = [
        (
            GOOD.replace("builtin: field_count", "builtin: feld_count"),
            "t.yaml:24: bolts[1].builtin: no builtin bolt is called \"feld_count\" (the builtin bolts: count, drpc_aggregate, drpc_return, field_count,",
        ),
        (
            GOOD.replace("to: count", "to: cont"),
            "t.yaml:35: streams[1].to: no bolt is called \"cont\" (the bolts: split, count)",
        ),
        (
            GOOD.replace("from: sentences", "from: sentence"),
            "t.yaml:31: streams[0].from: no component is called \"sentence\" (the components: sentences, split, count)",
        ),
        (
            GOOD.replace("      args: [word]\n", ""),
            "t.yaml:36: streams[1].grouping: a fields or partial_key grouping needs the key fields in `args`",
        ),
        (
            GOOD.replace("grouping: SHUFFLE", "grouping: {type: shuffle, args: [x]}"),
            "t.yaml:33: streams[0].grouping.args: only fields and partial_key groupings take `args`",
        ),
        (
            GOOD.replace("  - id: count", "  - id: split"),
            "t.yaml:23: bolts[1].id: component id \"split\" is already used by bolts[0].id",
        ),
        (
            GOOD.replace(
                "topology.max.spout.pending: 100",
                "topology.max.spout.pending: -5",
            ),
            "t.yaml:3: config.topology.max.spout.pending: must be an integer of at least 1, found -5",
        ),
        (
            GOOD.replace("{field: word, output", "{feild: word, output"),
            "t.yaml:25: bolts[1].params: unknown field `feild`, expected one of `field`, `emit`, `output`",
        ),
        (
            GOOD.replace("\"counts-{task}.json\"", "counts.json"),
            "t.yaml:25: bolts[1].params: output /topologies/words/counts.json is written by each of the 2 tasks",
        ),
        (
            GOOD.replace("    builtin: field_count\n", ""),
            "t.yaml:23: bolts[1]: \"count\" has neither `shell` nor `builtin`: give one",
        ),
        (
            GOOD.replace(
                "  - id: count\n",
                "  - id: count\n    outputs: [{fields: [x]}]\n",
            ),
            "t.yaml:24: bolts[1].outputs: a builtin component declares its own outputs",
        ),
        (
            GOOD.replace("    outputs:\n      - fields: [sentence]\n", ""),
            "t.yaml: bolt \"split\" subscribes to stream \"default\" of \"sentences\", which declares only []",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, expected) in cases {
        let error = build_error(&text);
        if !error.starts_with(expected) {
            wrong.push(format!("got  {error:?}\nwant {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn listed_resources_travel_as_files_or_directories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "x").unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    let path = dir.path().join("t.yaml");
    let text =
        "name: r\nresources: [data.txt, assets]\nspouts:\n  - id: s\n    builtin: sequence\n";
    std::fs::write(&path, text).unwrap();
    let file = TopologyFile::read(&path).unwrap();
    let listed: Vec<(Option<String>, PathBuf, ResourceKind)> = file
        .resources()
        .into_iter()
        .map(|r| (r.component, r.path, r.kind))
        .collect();
    assert_eq!(
        listed,
        vec![
            (None, PathBuf::from("t.yaml"), ResourceKind::File),
            (None, PathBuf::from("data.txt"), ResourceKind::File),
            (None, PathBuf::from("assets"), ResourceKind::Directory),
        ]
    );
}
