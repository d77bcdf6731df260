//! Transports of one process linked through an in-process hub: the same frames, credits and
//! handshake as between processes, and a hub that cuts and pauses links on demand.

mod support;

use std::time::Duration;

use squall_net::WorkerId;
use squall_net::transport::{DriverKind, InProcessHub, PeerEvent, PeerSpec, Remote, Transport};
use support::{CheckingSink, Events, config, is_down, is_up, send_records, wait_until};

const SECONDS_10: Duration = Duration::from_secs(10);

fn in_process(
    worker: u64,
    hub: &std::sync::Arc<InProcessHub>,
) -> squall_net::transport::TransportConfig {
    config(worker, DriverKind::Mio).with_in_process(std::sync::Arc::clone(hub))
}

#[test]
fn in_process_transports_exchange_records_exactly() {
    const PER_SOURCE: u64 = 200_000;
    let hub = InProcessHub::new();
    let (sink_a, seen_a) = CheckingSink::new();
    let (sink_b, seen_b) = CheckingSink::new();
    let (on_a, events_a) = Events::channel();
    let (on_b, events_b) = Events::channel();
    let a = Transport::start(in_process(1, &hub), sink_a, on_a).unwrap();
    let b = Transport::start(in_process(2, &hub), sink_b, on_b).unwrap();
    a.set_peers([PeerSpec::in_process(WorkerId(2))]).unwrap();
    b.set_peers([PeerSpec::in_process(WorkerId(1))]).unwrap();
    let senders = [
        send_records(a.outbound(WorkerId(2)).unwrap(), 1, PER_SOURCE),
        send_records(a.outbound(WorkerId(2)).unwrap(), 2, PER_SOURCE),
        send_records(b.outbound(WorkerId(1)).unwrap(), 3, PER_SOURCE),
    ];
    let up = events_a.expect(SECONDS_10, "A sees B up", is_up(2));
    assert!(
        matches!(
            up,
            PeerEvent::Up {
                remote: Remote::InProcess(WorkerId(2)),
                ..
            }
        ),
        "{up:?}"
    );
    events_b.expect(SECONDS_10, "B sees A up", is_up(1));
    for sender in senders {
        sender.join().unwrap();
    }
    assert!(seen_b.wait_for(2 * PER_SOURCE));
    assert!(seen_a.wait_for(PER_SOURCE));
    assert!(seen_a.errors().is_empty(), "{:?}", seen_a.errors());
    assert!(seen_b.errors().is_empty(), "{:?}", seen_b.errors());

    // A leaves: B notices at once and reports it down.
    a.shutdown().unwrap();
    events_b.expect(SECONDS_10, "B sees A leave", is_down(1));
}

#[test]
fn a_cut_link_is_down_on_both_sides_until_restored() {
    let hub = InProcessHub::new();
    let (sink_a, _seen_a) = CheckingSink::new();
    let (sink_b, seen_b) = CheckingSink::new();
    let (on_a, events_a) = Events::channel();
    let (on_b, events_b) = Events::channel();
    let a = Transport::start(in_process(1, &hub), sink_a, on_a).unwrap();
    let b = Transport::start(in_process(2, &hub), sink_b, on_b).unwrap();
    a.set_peers([PeerSpec::in_process(WorkerId(2))]).unwrap();
    b.set_peers([PeerSpec::in_process(WorkerId(1))]).unwrap();
    events_a.expect(SECONDS_10, "A sees B up", is_up(2));
    events_b.expect(SECONDS_10, "B sees A up", is_up(1));

    hub.cut(WorkerId(1), WorkerId(2));
    events_a.expect(SECONDS_10, "A sees B down", is_down(2));
    events_b.expect(SECONDS_10, "B sees A down", is_down(1));
    // Records written while cut wait in the outbound ring and go out once restored.
    send_records(a.outbound(WorkerId(2)).unwrap(), 1, 1000)
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        events_a.drain().iter().all(|event| !is_up(2)(event)),
        "no link while cut"
    );
    hub.restore(WorkerId(2), WorkerId(1));
    events_a.expect(SECONDS_10, "A sees B up again", is_up(2));
    assert!(seen_b.wait_for(1000));
    assert!(seen_b.errors().is_empty(), "{:?}", seen_b.errors());
}

#[test]
fn a_paused_receiver_makes_the_sender_run_out_of_credit() {
    const RECORDS: u64 = 200_000;
    let hub = InProcessHub::new();
    let (sink_a, _seen_a) = CheckingSink::new();
    let (sink_b, seen_b) = CheckingSink::new();
    let (on_a, events_a) = Events::channel();
    let (on_b, _events_b) = Events::channel();
    let a = Transport::start(in_process(1, &hub), sink_a, on_a).unwrap();
    let b = Transport::start(in_process(2, &hub), sink_b, on_b).unwrap();
    hub.pause(WorkerId(1), WorkerId(2));
    a.set_peers([PeerSpec::in_process(WorkerId(2))]).unwrap();
    b.set_peers([PeerSpec::in_process(WorkerId(1))]).unwrap();
    let sender = send_records(a.outbound(WorkerId(2)).unwrap(), 1, RECORDS);
    events_a.expect(SECONDS_10, "A sees B up", is_up(2));
    assert!(
        wait_until(SECONDS_10, || a.stats().credit_exhausted > 0),
        "the sender stops on credit: {:?}",
        a.stats()
    );
    let stalled = a.stats().records_sent;
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        a.stats().records_sent,
        stalled,
        "nothing is sent without credit"
    );
    assert_eq!(
        b.stats().records_received,
        0,
        "the paused side takes nothing"
    );
    hub.resume(WorkerId(1), WorkerId(2));
    sender.join().unwrap();
    assert!(seen_b.wait_for(RECORDS));
    assert!(seen_b.errors().is_empty(), "{:?}", seen_b.errors());
    assert!(
        events_a.drain().iter().all(|event| !is_down(2)(event)),
        "a pause is not a loss"
    );
}
