//! The znode layout, relative to the cluster's root (`zookeeper.root`, a chroot).
//!
//! ```text
//! /leader/nimbus-<seq>                      ephemeral sequential: NimbusInfo; the lowest leads
//! /supervisors/<supervisor-id>              ephemeral: SupervisorInfo
//! /topologies/<topology-id>                 TopologyRecord
//! /assignments/<topology-id>                Assignment
//! /workerbeats/<topology-id>/<slot>         WorkerBeat, relayed by the worker's supervisor
//! /errors/<topology-id>/e-<seq>             persistent sequential: ErrorRecord (newest kept)
//! /artifacts/<sha256>/<nimbus-id>           ephemeral: NimbusInfo of a nimbus holding it
//! ```
//!
//! `<slot>` is `<supervisor-id>:<port>`. Every value is JSON. `docs/zookeeper-layout.md`
//! describes each record.

/// Parent of the leader-election nodes.
pub const LEADER: &str = "/leader";
/// Prefix of a leader-election node's name (ZooKeeper appends the sequence).
pub const LEADER_PREFIX: &str = "nimbus-";
/// Parent of the supervisor registrations.
pub const SUPERVISORS: &str = "/supervisors";
/// Parent of the topology records.
pub const TOPOLOGIES: &str = "/topologies";
/// Parent of the assignments.
pub const ASSIGNMENTS: &str = "/assignments";
/// Parent of the worker-heartbeat directories.
pub const WORKERBEATS: &str = "/workerbeats";
/// Parent of the error directories.
pub const ERRORS: &str = "/errors";
/// Parent of the artifact holder directories.
pub const ARTIFACTS: &str = "/artifacts";

/// The persistent directories every daemon creates at start-up.
pub const DIRECTORIES: [&str; 7] = [
    LEADER,
    SUPERVISORS,
    TOPOLOGIES,
    ASSIGNMENTS,
    WORKERBEATS,
    ERRORS,
    ARTIFACTS,
];

/// `/supervisors/<id>`.
pub fn supervisor(id: &str) -> String {
    format!("{SUPERVISORS}/{id}")
}

/// `/topologies/<id>`.
pub fn topology(id: &str) -> String {
    format!("{TOPOLOGIES}/{id}")
}

/// `/assignments/<id>`.
pub fn assignment(topology_id: &str) -> String {
    format!("{ASSIGNMENTS}/{topology_id}")
}

/// `/workerbeats/<topology-id>`.
pub fn workerbeats(topology_id: &str) -> String {
    format!("{WORKERBEATS}/{topology_id}")
}

/// `/workerbeats/<topology-id>/<supervisor-id>:<port>`.
pub fn workerbeat(topology_id: &str, supervisor: &str, port: u16) -> String {
    format!("{WORKERBEATS}/{topology_id}/{supervisor}:{port}")
}

/// `/errors/<topology-id>`.
pub fn errors(topology_id: &str) -> String {
    format!("{ERRORS}/{topology_id}")
}

/// `/errors/<topology-id>/e-` (the prefix of a new sequential error node).
pub fn error_prefix(topology_id: &str) -> String {
    format!("{ERRORS}/{topology_id}/e-")
}

/// `/artifacts/<digest>`.
pub fn artifact(digest: &str) -> String {
    format!("{ARTIFACTS}/{digest}")
}

/// `/artifacts/<digest>/<nimbus-id>`.
pub fn artifact_holder(digest: &str, nimbus: &str) -> String {
    format!("{ARTIFACTS}/{digest}/{nimbus}")
}

/// The sequence number of a sequential node's name (`nimbus-0000000042` → 42).
pub fn sequence_of(name: &str) -> Option<u64> {
    let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
    name[digits..].parse().ok()
}

/// Whether `name` can be one component of a znode path.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name != "zookeeper"
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_sequences() {
        assert_eq!(
            workerbeat("wc-1", "host-6700", 6701),
            "/workerbeats/wc-1/host-6700:6701"
        );
        assert_eq!(error_prefix("wc-1"), "/errors/wc-1/e-");
        assert_eq!(sequence_of("nimbus-0000000042"), Some(42));
        assert_eq!(sequence_of("nimbus-"), None);
        assert!(is_valid_name("wc-1700000000"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name(".."));
    }
}
