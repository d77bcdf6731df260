//! Local hygiene: daemons and the command line refuse a cluster secret file that group or
//! others can open, and say how to fix it.

use std::path::PathBuf;
use std::time::Duration;

use squall_tests::cluster::{Cluster, Timings};

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn set_mode(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

#[test]
fn a_secret_file_others_can_read_stops_daemons_and_clients() {
    let mut cluster = Cluster::new(&squall(), 1, 1, 1, Timings::default(), &[]);
    let secret_file = cluster
        .base
        .cluster
        .secret_file
        .clone()
        .expect("a secret file");
    let fix = format!("chmod 600 {}", secret_file.display());
    set_mode(&secret_file, 0o644);
    cluster.start_all();
    let refused = squall_test_support::poll_until(Duration::from_secs(10), || {
        let nimbus_ended = !cluster.nimbuses[0].running();
        let supervisor_ended = !cluster.supervisors[0].running();
        (nimbus_ended && supervisor_ended).then_some(())
    });
    assert!(refused.is_some(), "the daemons still run{}", cluster.logs());
    for daemon in cluster.nimbuses.iter().chain(&cluster.supervisors) {
        let log = daemon.log();
        assert!(
            log.contains("is open to group or others (mode 644)") && log.contains(&fix),
            "{}: {log}",
            daemon.name
        );
    }
    let (ok, _, stderr) = cluster.cli(&["list"]);
    assert!(!ok && stderr.contains(&fix), "{stderr}");

    // Made private, the same file serves.
    set_mode(&secret_file, 0o600);
    cluster.start_and_settle();
    let (ok, _, stderr) = cluster.cli(&["list"]);
    assert!(ok, "{stderr}");
}
