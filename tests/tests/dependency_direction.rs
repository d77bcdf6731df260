//! The crates depend on each other in one direction only:
//! `tools → engine → {net, ringbuf}`, and `net` may use `ringbuf`.
//! `ringbuf` and `net` must never reach `engine` or `tools`, not even through a
//! dev- or build-dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
            manifest,
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
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
fn leaf_crates_never_depend_on_engine_or_tools() {
    let graph = workspace_dependencies();
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("squall-ringbuf", &[][..]),
        ("squall-net", &["squall-ringbuf"][..]),
        ("squall-engine", &["squall-ringbuf", "squall-net"][..]),
    ]);
    for (crate_name, permitted) in allowed {
        let deps = graph
            .get(crate_name)
            .unwrap_or_else(|| panic!("workspace member {crate_name} is missing"));
        for dep in deps {
            assert!(
                permitted.contains(&dep.as_str()),
                "{crate_name} depends on {dep}; the allowed direction is tools → engine → {{net, ringbuf}}"
            );
        }
    }
}

#[test]
fn every_expected_member_is_in_the_workspace() {
    let graph = workspace_dependencies();
    for member in [
        "squall-ringbuf",
        "squall-net",
        "squall-engine",
        "squall-tools",
        "squall-benches",
        "squall-tests",
    ] {
        assert!(
            graph.contains_key(member),
            "workspace member {member} is missing"
        );
    }
}
