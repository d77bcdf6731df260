//! The crates depend on each other in one direction only:
//!
//! ```text
//! tools → squall (facade) → cluster → topology-file → {multilang, builtin, drpc, connectors} → core → {net, ringbuf}
//! ```
//!
//! and an embedder that takes only the engine core (`squall-core`) compiles none of the
//! control plane's crates: no async runtime, ZooKeeper client, archive, YAML, TOML or CLI
//! parser. Every workspace member must appear in the table below, so a new crate states its
//! place before it can depend on anything.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each member and the workspace crates it may depend on (normal, dev or build), besides
/// `squall-test-support`, which any member may take as a dev-dependency.
const ALLOWED: &[(&str, &[&str])] = &[
    ("squall-test-support", &[]),
    ("squall-ringbuf", &[]),
    ("squall-net", &["squall-ringbuf"]),
    ("squall-core", &["squall-ringbuf", "squall-net"]),
    ("squall-multilang", &["squall-core"]),
    ("squall-builtin", &["squall-core"]),
    // The publish bolt writes tuples as multi-lang's JSON does.
    (
        "squall-drpc",
        &["squall-core", "squall-net", "squall-multilang"],
    ),
    ("squall-connectors", &["squall-core"]),
    (
        "squall-topology-file",
        &[
            "squall-core",
            "squall-multilang",
            "squall-builtin",
            "squall-drpc",
            "squall-connectors",
        ],
    ),
    (
        "squall-cluster",
        &[
            "squall-core",
            "squall-net",
            "squall-multilang",
            "squall-drpc",
            "squall-topology-file",
        ],
    ),
    (
        "squall",
        &[
            "squall-core",
            "squall-multilang",
            "squall-builtin",
            "squall-drpc",
            "squall-connectors",
            "squall-topology-file",
            "squall-cluster",
        ],
    ),
    ("squall-tools", &["squall"]),
    ("squall-benches", &["squall-ringbuf", "squall"]),
    (
        "squall-tests",
        &["squall-ringbuf", "squall-net", "squall", "squall-tools"],
    ),
];

/// Crates an embedder of the engine core must never compile.
const NOT_IN_CORE: &[&str] = &[
    "tokio",
    "zookeeper-client",
    "tar",
    "toml",
    "clap",
    "serde_yaml_ng",
    "tracing-subscriber",
    "signal-hook",
];

fn metadata() -> serde_json::Value {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let mut command = Command::new(env!("CARGO"));
    command.args([
        "metadata",
        "--format-version",
        "1",
        "--manifest-path",
        manifest,
    ]);
    command.arg("--no-deps");
    let output = command.output().expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Every member and the workspace members it depends on, of any kind.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let metadata = metadata();
    let packages = metadata["packages"].as_array().expect("packages array");
    let ours: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("package name").to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("package name").to_owned();
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies array")
                .iter()
                .map(|d| d["name"].as_str().expect("dependency name").to_owned())
                .filter(|d| ours.contains(d))
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn members_depend_only_downwards() {
    let graph = workspace_dependencies();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    for (member, deps) in &graph {
        let permitted = allowed.get(member.as_str()).unwrap_or_else(|| {
            panic!("workspace member {member} has no place in the dependency table of this test")
        });
        for dep in deps {
            assert!(
                permitted.contains(&dep.as_str()) || dep == "squall-test-support",
                "{member} depends on {dep}; it may depend only on {permitted:?}"
            );
        }
    }
    for (member, _) in ALLOWED {
        assert!(
            graph.contains_key(*member),
            "workspace member {member} is missing"
        );
    }
}

#[test]
fn the_engine_core_compiles_no_control_plane_crate() {
    // Exactly what an embedder compiles for this machine: `cargo tree -e normal`.
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "squall-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--manifest-path", manifest])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("cargo tree prints UTF-8");
    let reached: BTreeSet<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for banned in NOT_IN_CORE {
        assert!(
            !reached.contains(banned),
            "squall-core's dependency tree includes {banned}: {reached:?}"
        );
    }
    assert!(reached.contains("squall-net") && reached.contains("squall-ringbuf"));
}
