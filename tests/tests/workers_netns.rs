//! A topology over three "hosts" — network namespaces with their own addresses, joined by
//! veth pairs — surviving a host's link going down for longer than a peer may stay silent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use squall_tests::ledger::LedgerCheck;
use squall_tests::netns::{self, Hosts};
use squall_tests::workers::Workers;

#[test]
fn three_hosts_survive_a_link_going_down() {
    if !netns::available() {
        eprintln!("skipped: network namespaces need root and `ip`");
        return;
    }
    let hosts = Hosts::create(3).expect("network namespaces for the hosts");
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let messages = 15_000u64;
    let args: Vec<String> = [
        "--messages",
        &messages.to_string(),
        "--state-dir",
        state.to_str().unwrap(),
        "--spouts",
        "3",
        "--relays",
        "3",
        "--counters",
        "3",
        "--workers",
        "3",
        "--pending",
        "100",
        "--timeout-ms",
        "4000",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let addresses: Vec<String> = (0..3).map(|host| hosts.address(host)).collect();
    let program = PathBuf::from(env!("CARGO_BIN_EXE_squall-test-wordcount"));
    let mut workers = Workers::plan(&program, &args, &addresses, "auto", root.path());
    for host in 0..3 {
        workers.workers[host].prefix = hosts.prefix(host);
    }
    workers.start_all();

    let wait_for = |target: u64, timeout: Duration| {
        let deadline = Instant::now() + timeout;
        loop {
            let check = LedgerCheck::read(&state);
            if check.acked.len() as u64 >= target {
                return check;
            }
            if Instant::now() > deadline {
                for index in 0..3 {
                    eprintln!("--- worker {index} ---\n{}", workers.log(index));
                }
                panic!("{} of {target} acked after {timeout:?}", check.acked.len());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(messages / 5, Duration::from_secs(60));
    hosts.set_link(2, false).expect("taking host 2's link down");
    let during = LedgerCheck::read(&state).acked.len();
    // Longer than the 5 s of silence after which a peer is declared dead, so the loss is
    // noticed by the heartbeats themselves, not by how late TCP's backed-off retransmission
    // happens to be once the link is back.
    std::thread::sleep(Duration::from_secs(7));
    hosts.set_link(2, true).expect("bringing host 2's link up");
    let check = wait_for(messages, Duration::from_secs(120));
    let replayed = check.assert_consistent(messages, true);
    eprintln!("{during} acked when the link went down; {replayed} processed more than once");
    let log = workers.log(0) + &workers.log(1);
    assert!(
        log.contains("peer worker lost"),
        "the lost link was noticed"
    );
}
