//! The command line through a change of leader: a request made right after the leading
//! nimbus dies waits for the standby to take over and is answered by it, instead of failing
//! with the dead leader's refused connection or a refusal naming no leader.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use squall_tests::cluster::{Cluster, Timings};

#[test]
fn a_command_during_failover_is_answered_by_the_new_leader() {
    let mut cluster = Cluster::new(
        &PathBuf::from(env!("CARGO_BIN_EXE_squall-cli")),
        2,
        0,
        0,
        Timings::default(),
        &[],
    );
    cluster.start_and_settle();
    let leader = cluster.leader_index().expect("a leader");
    cluster.kill_nimbus(leader);
    let asked = Instant::now();
    let (ok, stdout, stderr) = cluster.cli(&["list"]);
    let took = asked.elapsed();
    assert!(
        ok,
        "answered after {took:?}: {stdout}{stderr}{}",
        cluster.logs()
    );
    assert!(stdout.contains("no topologies"), "{stdout}");
    assert!(stderr.is_empty(), "nothing to complain about: {stderr}");
    // Bounded by the session timeout plus the time to settle.
    let bound = Timings::default().session + Duration::from_secs(2);
    assert!(took <= bound + Duration::from_secs(1), "took {took:?}");
    assert_eq!(
        cluster.leader_index(),
        Some(1 - leader),
        "the standby leads"
    );
}
