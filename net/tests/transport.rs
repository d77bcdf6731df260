//! Transports over real sockets on loopback, with every driver this machine runs: exact
//! delivery of millions of records, backpressure, reconnection, dead peers, peer-set
//! changes, and intruders that must not harm established connections.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use squall_net::codec::{BatchEncoder, Hello};
use squall_net::transport::{DriverKind, PeerEvent, PeerSpec, Remote, Transport};
use squall_net::{ClusterSecret, ConnectionConfig, Nonce, TopologyId, WorkerId};
use support::{
    CheckingSink, Events, NullSink, Proxy, config, drivers, is_down, is_rejected, is_up,
    send_records, wait_until,
};

const SECONDS_10: Duration = Duration::from_secs(10);

/// Two transports, four senders each way, a million records in each direction.
fn exchange(driver: DriverKind) {
    const PER_SOURCE: u64 = 250_000;
    let (sink_a, seen_a) = CheckingSink::new();
    let (sink_b, seen_b) = CheckingSink::new();
    let (on_a, events_a) = Events::channel();
    let (on_b, events_b) = Events::channel();
    let a = Transport::start(config(1, driver), sink_a, on_a).unwrap();
    let b = Transport::start(config(2, driver), sink_b, on_b).unwrap();
    assert_eq!(a.driver(), driver);
    a.set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    b.set_peers([PeerSpec::tcp(WorkerId(1), a.local_addr())])
        .unwrap();
    let started = Instant::now();
    let mut senders = Vec::new();
    for source in 0..4 {
        senders.push(send_records(
            a.outbound(WorkerId(2)).unwrap(),
            source,
            PER_SOURCE,
        ));
        senders.push(send_records(
            b.outbound(WorkerId(1)).unwrap(),
            100 + source,
            PER_SOURCE,
        ));
    }
    events_a.expect(SECONDS_10, "A sees B up", is_up(2));
    events_b.expect(SECONDS_10, "B sees A up", is_up(1));
    for sender in senders {
        sender.join().unwrap();
    }
    let total = 4 * PER_SOURCE;
    let delivered = wait_until(Duration::from_secs(60), || {
        seen_a.records.load(Ordering::Relaxed) == total
            && seen_b.records.load(Ordering::Relaxed) == total
    });
    let elapsed = started.elapsed();
    assert!(seen_a.errors().is_empty(), "{:?}", seen_a.errors());
    assert!(seen_b.errors().is_empty(), "{:?}", seen_b.errors());
    assert!(
        delivered,
        "delivered {} and {} of {total}",
        seen_a.records.load(Ordering::Relaxed),
        seen_b.records.load(Ordering::Relaxed)
    );
    let stats = a.stats();
    assert_eq!(stats.records_sent, total);
    assert_eq!(stats.records_received, total);
    // Every frame one end sent, the other delivered, bytes for bytes.
    assert_eq!(stats.bytes_sent, b.stats().bytes_received, "{stats:?}");
    assert_eq!(stats.bytes_received, b.stats().bytes_sent, "{stats:?}");
    assert!(
        stats.bytes_sent >= stats.records_sent * 16 + stats.batches_sent * 16,
        "each record and batch has a header: {stats:?}"
    );
    assert!(
        stats.batches_sent < total / 10,
        "records travel in batches: {stats:?}"
    );
    eprintln!("{driver}: 2 x {total} records in {elapsed:?}; {stats:?}");
    // Nobody went down on the way.
    assert!(!events_a.drain().iter().any(is_down(2)));
    a.shutdown().unwrap();
    // A's CLOSE, sent right before its socket closed, tells B why.
    let down = events_b.expect(SECONDS_10, "B sees A leave", is_down(1));
    let PeerEvent::Down { reason, .. } = down else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "peer closed the connection: worker shutting down [normal (0)]"
    );
    b.shutdown().unwrap();
}

#[test]
fn two_transports_exchange_millions_of_records_exactly() {
    for driver in drivers() {
        exchange(driver);
    }
}

/// A stalled sink stops the sender within the credit window, and everything arrives once
/// it takes records again.
fn backpressure(driver: DriverKind) {
    const WINDOW: u64 = 256 << 10;
    const COUNT: u64 = 200_000;
    let (sink, seen) = CheckingSink::new();
    seen.stalled.store(true, Ordering::Relaxed);
    let connection = support::connection(2)
        .with_max_frame_len(64 << 10)
        .with_receive_window(WINDOW);
    let config_b =
        squall_net::transport::TransportConfig::new(connection, "127.0.0.1:0".parse().unwrap())
            .with_driver(driver);
    let b = Transport::start(config_b, sink, |_| {}).unwrap();
    let a = Transport::start(
        config(1, driver).with_outbound_ring_bytes(64 << 10),
        NullSink,
        |_| {},
    )
    .unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    let sender = send_records(a.outbound(WorkerId(2)).unwrap(), 7, COUNT);

    // The sender stops once the window is spent: far fewer records leave than are written.
    std::thread::sleep(Duration::from_millis(500));
    let stalled = a.stats();
    std::thread::sleep(Duration::from_millis(300));
    let later = a.stats();
    assert_eq!(
        stalled.records_sent, later.records_sent,
        "the sender stopped"
    );
    assert!(stalled.records_sent > 0);
    // Records are 12..53 bytes (16..64 on the wire); frames add 16 bytes each.
    let wire_lower_bound = stalled.records_sent * 16 + stalled.batches_sent * 16;
    assert!(
        wire_lower_bound <= WINDOW,
        "sent {stalled:?}, more than the {WINDOW}-byte window"
    );
    assert_eq!(seen.records.load(Ordering::Relaxed), 0);
    assert!(
        !sender.is_finished(),
        "the executor is held back by its full ring"
    );

    seen.stalled.store(false, Ordering::Relaxed);
    assert_eq!(sender.join().unwrap(), COUNT);
    assert!(seen.wait_for(COUNT));
    assert!(seen.errors().is_empty(), "{:?}", seen.errors());
}

#[test]
fn a_stalled_sink_bounds_what_is_in_flight() {
    for driver in drivers() {
        backpressure(driver);
    }
}

/// A connection cut under way comes back, and the peer is reported down then up.
fn reconnection(driver: DriverKind) {
    let (sink, seen) = CheckingSink::new();
    let (on_b, events_b) = Events::channel();
    let (on_a, events_a) = Events::channel();
    let b = Transport::start(config(2, driver), sink, on_b).unwrap();
    let proxy = Proxy::start(b.local_addr());
    let a = Transport::start(config(1, driver), NullSink, on_a).unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), proxy.addr)])
        .unwrap();
    let mut outbound = a.outbound(WorkerId(2)).unwrap();
    support::send_one(&mut outbound, 1, 0);
    events_a.expect(SECONDS_10, "up", is_up(2));
    assert!(seen.wait_for(1));

    proxy.cut();
    events_a.expect(SECONDS_10, "A sees the cut", is_down(2));
    events_b.expect(SECONDS_10, "B sees the cut", is_down(1));
    events_a.expect(SECONDS_10, "A reconnects", is_up(2));
    events_b.expect(SECONDS_10, "B sees A again", is_up(1));
    support::send_one(&mut outbound, 1, 1);
    assert!(seen.wait_for(2));
    assert!(seen.errors().is_empty(), "{:?}", seen.errors());
}

#[test]
fn a_cut_connection_is_reported_and_reestablished() {
    for driver in drivers() {
        reconnection(driver);
    }
}

/// A sink that panics on the first record it is given, as a buggy one would.
struct PanickingSink;

impl squall_net::transport::InboundSink for PanickingSink {
    fn deliver(&mut self, task: u32, _: &[u8]) -> Result<(), squall_net::transport::SinkFull> {
        panic!("no task {task} here");
    }
}

/// A panic on the transport thread ends the transport, its owner can tell, and the peer
/// sees the link go down instead of a silent, half-dead worker.
fn panic_on_the_transport_thread(driver: DriverKind) {
    let (on_a, events_a) = Events::channel();
    let a = Transport::start(config(1, driver), NullSink, on_a).unwrap();
    let b = Transport::start(config(2, driver), PanickingSink, |_| {}).unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    b.set_peers([PeerSpec::tcp(WorkerId(1), a.local_addr())])
        .unwrap();
    assert_eq!(b.failure(), None);
    let mut outbound = a.outbound(WorkerId(2)).unwrap();
    events_a.expect(SECONDS_10, "up", is_up(2));
    support::send_one(&mut outbound, 1, 0);
    assert!(wait_until(SECONDS_10, || b.failure().is_some()));
    let failure = b.failure().unwrap();
    assert!(
        failure.contains("the transport thread panicked") && failure.contains("no task"),
        "{failure}"
    );
    events_a.expect(SECONDS_10, "A sees B's transport die", is_down(2));
    assert!(b.shutdown().is_err());
    assert_eq!(a.failure(), None);
}

#[test]
fn a_panic_on_the_transport_thread_is_reported_and_ends_its_links() {
    for driver in drivers() {
        panic_on_the_transport_thread(driver);
    }
}

/// A peer that goes silent with data in flight is declared dead within the idle timeout.
fn silent_peer(driver: DriverKind) {
    let (on_a, events_a) = Events::channel();
    let b = Transport::start(config(2, driver), NullSink, |_| {}).unwrap();
    let proxy = Proxy::start(b.local_addr());
    let a = Transport::start(config(1, driver), NullSink, on_a).unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), proxy.addr)])
        .unwrap();
    let sender = send_records(a.outbound(WorkerId(2)).unwrap(), 1, 50_000);
    events_a.expect(SECONDS_10, "up", is_up(2));
    proxy.freeze();
    let frozen = Instant::now();
    let down = events_a.expect(SECONDS_10, "down after silence", is_down(2));
    let noticed = frozen.elapsed();
    assert!(
        noticed < Duration::from_secs(5),
        "noticed after {noticed:?}: {down:?}"
    );
    drop(proxy);
    drop(sender);
}

#[test]
fn a_silent_peer_is_declared_dead_within_seconds() {
    for driver in drivers() {
        silent_peer(driver);
    }
}

/// Reads what a transport answers until it closes the connection.
fn read_until_closed(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(SECONDS_10)).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// Intruders: a client with the wrong secret, one that skips authentication and sends a
/// batch, and one that sends garbage. All are rejected, none of their records is read, and
/// the established connection carries on.
fn intruders(driver: DriverKind) {
    let (sink, seen) = CheckingSink::new();
    let (on_b, events_b) = Events::channel();
    let b = Transport::start(config(2, driver), sink, on_b).unwrap();
    let a = Transport::start(config(1, driver), NullSink, |_| {}).unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    let sender = send_records(a.outbound(WorkerId(2)).unwrap(), 1, 300_000);
    events_b.expect(SECONDS_10, "A up", is_up(1));

    // A worker that does not know the secret.
    let wrong = ClusterSecret::new(*b"not the secret of this cluster!!").unwrap();
    let intruder_config = squall_net::transport::TransportConfig::new(
        ConnectionConfig::new(support::CLUSTER, WorkerId(0), wrong),
        "127.0.0.1:0".parse().unwrap(),
    )
    .with_driver(driver);
    let (on_intruder, intruder_events) = Events::channel();
    let intruder = Transport::start(intruder_config, NullSink, on_intruder).unwrap();
    intruder
        .set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    let rejected = events_b.expect(SECONDS_10, "the wrong secret rejected", is_rejected);
    let PeerEvent::Rejected { reason, .. } = &rejected else {
        unreachable!()
    };
    // B finds the intruder's proof wrong, or (when the intruder checked B's proof first)
    // hears it give up: either way the secret was not proved.
    assert!(
        reason.contains("failed to prove the cluster secret"),
        "{reason}"
    );
    drop(intruder);
    assert!(
        !intruder_events
            .drain()
            .iter()
            .any(|e| matches!(e, PeerEvent::Up { .. }))
    );
    // Forget the rejections of the intruder's retries.
    std::thread::sleep(Duration::from_millis(200));
    events_b.drain();

    // A client that says HELLO, then sends a BATCH without proving anything.
    let mut sneaky = TcpStream::connect(b.local_addr()).unwrap();
    let hello = Hello {
        max_version: 1,
        max_frame_len: 64 << 10,
        cluster_id: support::CLUSTER,
        worker_id: WorkerId(0),
        topology_id: TopologyId::UNSCOPED,
        plan_version: 0,
        nonce: Nonce::random().unwrap(),
    };
    let mut bytes = hello.to_frame_bytes().to_vec();
    let mut batch = vec![0u8; 256];
    let mut encoder = BatchEncoder::new(&mut batch).unwrap();
    encoder.push(3, b"forged tuple, never to be read").unwrap();
    let len = encoder.finish();
    bytes.extend_from_slice(&batch[..len]);
    sneaky.write_all(&bytes).unwrap();
    let answer = read_until_closed(sneaky);
    assert!(
        answer.len() >= Hello::FRAME_LEN,
        "B said HELLO, then closed"
    );
    let rejected = events_b.expect(SECONDS_10, "the forged batch rejected", is_rejected);
    let PeerEvent::Rejected { reason, .. } = &rejected else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "BATCH frame is not allowed between the peer's HELLO and its AUTH"
    );

    // Garbage.
    let mut garbage = TcpStream::connect(b.local_addr()).unwrap();
    garbage.write_all(&[0xff; 64]).unwrap();
    read_until_closed(garbage);
    let rejected = events_b.expect(SECONDS_10, "garbage rejected", is_rejected);
    let PeerEvent::Rejected { reason, .. } = &rejected else {
        unreachable!()
    };
    assert!(
        reason.starts_with("malformed frame: frame length 4294967295 exceeds max"),
        "{reason}"
    );

    // The established connection never noticed.
    assert_eq!(sender.join().unwrap(), 300_000);
    assert!(seen.wait_for(300_000));
    assert!(seen.errors().is_empty(), "{:?}", seen.errors());
    assert_eq!(
        seen.foreign.load(Ordering::Relaxed),
        0,
        "no intruder record was read"
    );
    assert!(!events_b.drain().iter().any(is_down(1)));
}

#[test]
fn intruders_are_rejected_without_harming_established_connections() {
    for driver in drivers() {
        intruders(driver);
    }
}

/// A peer moves to another address: the transport follows it, and records go to the new
/// place.
fn peer_moves(driver: DriverKind) {
    let (on_a, events_a) = Events::channel();
    let a = Transport::start(config(1, driver), NullSink, on_a).unwrap();
    let (old_sink, old_seen) = CheckingSink::new();
    let old = Transport::start(config(2, driver), old_sink, |_| {}).unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), old.local_addr())])
        .unwrap();
    let mut outbound = a.outbound(WorkerId(2)).unwrap();
    support::send_one(&mut outbound, 1, 0);
    events_a.expect(SECONDS_10, "up at the old place", is_up(2));
    assert!(old_seen.wait_for(1));

    let (new_sink, new_seen) = CheckingSink::new();
    let new = Transport::start(config(2, driver), new_sink, |_| {}).unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), new.local_addr())])
        .unwrap();
    events_a.expect(SECONDS_10, "down at the old place", is_down(2));
    events_a.expect(SECONDS_10, "up at the new place", is_up(2));
    support::send_one(&mut outbound, 2, 0);
    assert!(new_seen.wait_for(1));
    assert_eq!(old_seen.records.load(Ordering::Relaxed), 1);

    // Leaving the peer set closes the peer's rings.
    a.set_peers([]).unwrap();
    events_a.expect(SECONDS_10, "down when removed", is_down(2));
    assert!(wait_until(SECONDS_10, || outbound.is_closed()));
}

#[test]
fn the_transport_follows_peers_that_move_or_leave() {
    for driver in drivers() {
        peer_moves(driver);
    }
}

#[test]
fn auto_uses_io_uring_here_and_forced_mio_uses_mio() {
    let auto = Transport::start(config(1, DriverKind::Auto), NullSink, |_| {}).unwrap();
    let expected = *drivers().last().unwrap();
    assert_eq!(auto.driver(), expected);
    let mio = Transport::start(config(1, DriverKind::Mio), NullSink, |_| {}).unwrap();
    assert_eq!(mio.driver(), DriverKind::Mio);
}

/// Co-located workers over shared-memory rings: the same records, credits and handshake.
#[test]
fn colocated_workers_exchange_records_through_shared_memory() {
    const PER_SOURCE: u64 = 200_000;
    let dir = tempfile::tempdir_in(shm_dir()).unwrap();
    let shm_config = |worker| config(worker, DriverKind::Mio).with_shm(dir.path(), 4 << 20);
    let (sink_a, seen_a) = CheckingSink::new();
    let (sink_b, seen_b) = CheckingSink::new();
    let (on_a, events_a) = Events::channel();
    let (on_b, events_b) = Events::channel();
    let a = Transport::start(shm_config(1), sink_a, on_a).unwrap();
    let b = Transport::start(shm_config(2), sink_b, on_b).unwrap();
    a.set_peers([PeerSpec::shared_memory(WorkerId(2))]).unwrap();
    b.set_peers([PeerSpec::shared_memory(WorkerId(1))]).unwrap();
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
                remote: Remote::SharedMemory(_),
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

    // A leaves: B notices and reports it down; the ring files go with A.
    a.shutdown().unwrap();
    events_b.expect(SECONDS_10, "B sees A leave", is_down(1));
    assert!(wait_until(SECONDS_10, || std::fs::read_dir(dir.path())
        .unwrap()
        .count()
        == 0));
}

/// A shared-memory ring smaller than the credit window fills while the receiver stalls:
/// frames then wait in the send queue for room, and every record arrives, in order, once
/// the receiver takes them again.
#[test]
fn a_full_shared_memory_ring_holds_frames_until_the_peer_frees_room() {
    const COUNT: u64 = 400_000;
    const WINDOW: u64 = 16 << 20;
    let dir = tempfile::tempdir_in(shm_dir()).unwrap();
    let shm_config = |worker| {
        let connection = support::connection(worker)
            .with_receive_window(WINDOW)
            .with_initial_receive_window(WINDOW);
        squall_net::transport::TransportConfig::new(connection, "127.0.0.1:0".parse().unwrap())
            .with_driver(DriverKind::Mio)
            .with_shm(dir.path(), 4 << 20)
    };
    let (sink_b, seen_b) = CheckingSink::new();
    seen_b.stalled.store(true, Ordering::Relaxed);
    let (on_a, events_a) = Events::channel();
    let a = Transport::start(shm_config(1), NullSink, on_a).unwrap();
    let b = Transport::start(shm_config(2), sink_b, |_| {}).unwrap();
    a.set_peers([PeerSpec::shared_memory(WorkerId(2))]).unwrap();
    b.set_peers([PeerSpec::shared_memory(WorkerId(1))]).unwrap();
    let sender = send_records(a.outbound(WorkerId(2)).unwrap(), 5, COUNT);
    events_a.expect(SECONDS_10, "A sees B up", is_up(2));

    // The window (16 MiB) outlasts the ring (4 MiB): the ring fills, not the credit.
    std::thread::sleep(Duration::from_millis(500));
    let stalled = a.stats();
    assert!(
        stalled.bytes_sent > 4 << 20 && stalled.bytes_sent < WINDOW,
        "{stalled:?}"
    );
    assert_eq!(seen_b.records.load(Ordering::Relaxed), 0);
    assert!(!sender.is_finished(), "the sender is held back");

    seen_b.stalled.store(false, Ordering::Relaxed);
    assert_eq!(sender.join().unwrap(), COUNT);
    assert!(seen_b.wait_for(COUNT));
    assert!(seen_b.errors().is_empty(), "{:?}", seen_b.errors());
    assert!(!events_a.drain().iter().any(is_down(2)));
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// Records sent now and then over shared memory, each after the receiving transport has
/// gone to sleep, arrive as soon as the sender rings the receiver's pipe: far sooner than
/// the loop's 200 ms housekeeping round, the only other thing that would wake it.
fn shared_memory_wake_ups(driver: DriverKind) {
    let dir = tempfile::tempdir_in(shm_dir()).unwrap();
    let shm_config = |worker| config(worker, driver).with_shm(dir.path(), 4 << 20);
    let (sink_b, seen_b) = CheckingSink::new();
    let (on_a, events_a) = Events::channel();
    let a = Transport::start(shm_config(1), NullSink, on_a).unwrap();
    let b = Transport::start(shm_config(2), sink_b, |_| {}).unwrap();
    a.set_peers([PeerSpec::shared_memory(WorkerId(2))]).unwrap();
    b.set_peers([PeerSpec::shared_memory(WorkerId(1))]).unwrap();
    events_a.expect(SECONDS_10, "A sees B up", is_up(2));
    let mut outbound = a.outbound(WorkerId(2)).unwrap();
    let mut delays = Vec::new();
    for seq in 0..15 {
        // Long enough for both transports to run out of work and sleep.
        std::thread::sleep(Duration::from_millis(30));
        let sent = Instant::now();
        support::send_one(&mut outbound, 1, seq);
        assert!(seen_b.wait_for(seq + 1));
        delays.push(sent.elapsed());
    }
    delays.sort();
    let median = delays[delays.len() / 2];
    assert!(
        median < Duration::from_millis(50),
        "{driver}: median delay {median:?} over shared memory: {delays:?}"
    );
    assert!(seen_b.errors().is_empty(), "{:?}", seen_b.errors());
}

#[test]
fn a_sleeping_shared_memory_peer_is_woken_by_its_pipe() {
    for driver in drivers() {
        shared_memory_wake_ups(driver);
    }
}

/// A directory in memory for ring files where there is one.
fn shm_dir() -> std::path::PathBuf {
    let dev_shm = std::path::Path::new("/dev/shm");
    if dev_shm.is_dir() {
        dev_shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// A receiver that stops reading for longer than `TCP_USER_TIMEOUT`, with the socket
/// buffers full, keeps its connection: it is slow, not dead. Its heartbeats keep reaching
/// the sender, and the kernel does not abort a peer that answers zero-window probes.
fn long_stall(driver: DriverKind) {
    let (sink, seen) = CheckingSink::new();
    seen.stalled.store(true, Ordering::Relaxed);
    // A window far larger than the socket buffers, so that the kernel buffers fill up.
    let connection = support::connection(2).with_receive_window(64 << 20);
    let config_b =
        squall_net::transport::TransportConfig::new(connection, "127.0.0.1:0".parse().unwrap())
            .with_driver(driver)
            .with_tcp_user_timeout(Duration::from_secs(1));
    let b = Transport::start(config_b, sink, |_| {}).unwrap();
    let (on_a, events_a) = Events::channel();
    let config_a = config(1, driver).with_tcp_user_timeout(Duration::from_secs(1));
    let a = Transport::start(config_a, NullSink, on_a).unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    let sender = send_records(a.outbound(WorkerId(2)).unwrap(), 7, 1_000_000);
    events_a.expect(SECONDS_10, "up", is_up(2));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !sender.is_finished(),
        "the sender is held back: {:?}",
        a.stats()
    );
    let events = events_a.drain();
    assert!(events.is_empty(), "the connection stayed up: {events:?}");
    seen.stalled.store(false, Ordering::Relaxed);
    sender.join().unwrap();
    assert!(seen.wait_for(1_000_000), "{:?}", seen.errors());
    assert!(events_a.drain().is_empty());
}

#[test]
fn a_receiver_that_stalls_longer_than_the_tcp_user_timeout_stays_connected() {
    for driver in drivers() {
        long_stall(driver);
    }
}

/// Another process scribbling over the header of a live link's ring file: the reading side
/// finds the ring corrupted, closes the link with a reason naming the file and what is
/// wrong, both transports report the peer down, and a fresh link (with fresh rings) carries
/// records again.
#[test]
fn a_corrupted_shared_memory_ring_closes_the_link_with_the_reason() {
    use std::os::unix::fs::FileExt;

    let dir = tempfile::tempdir_in(shm_dir()).unwrap();
    let shm_config = |worker| config(worker, DriverKind::Mio).with_shm(dir.path(), 4 << 20);
    let (sink_b, seen_b) = CheckingSink::new();
    let (on_a, events_a) = Events::channel();
    let (on_b, events_b) = Events::channel();
    let a = Transport::start(shm_config(1), NullSink, on_a).unwrap();
    let b = Transport::start(shm_config(2), sink_b, on_b).unwrap();
    a.set_peers([PeerSpec::shared_memory(WorkerId(2))]).unwrap();
    b.set_peers([PeerSpec::shared_memory(WorkerId(1))]).unwrap();
    events_a.expect(SECONDS_10, "A sees B up", is_up(2));
    events_b.expect(SECONDS_10, "B sees A up", is_up(1));
    let mut outbound = a.outbound(WorkerId(2)).unwrap();
    for seq in 0..100 {
        support::send_one(&mut outbound, 1, seq);
    }
    assert!(seen_b.wait_for(100));

    let ring_path = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with("-1-to-2.ring"))
        .expect("the ring from A to B");
    let ring = std::fs::OpenOptions::new()
        .write(true)
        .open(&ring_path)
        .unwrap();
    // A write sequence that no producer writes: not a multiple of 8, far beyond the ring.
    // A's own publishing puts the true value back, so the garbage is written again and
    // again until B has read it.
    let garbage = (u64::MAX - 2).to_ne_bytes();
    let started = Instant::now();
    let down = loop {
        ring.write_all_at(&garbage, 128).unwrap();
        if let Some(down) = events_b.drain().into_iter().find(is_down(1)) {
            break down;
        }
        assert!(
            started.elapsed() < SECONDS_10,
            "B never found the ring corrupted"
        );
    };
    drop(ring);
    let PeerEvent::Down { reason, .. } = down else {
        unreachable!()
    };
    let expected = format!(
        "the incoming shared-memory ring {} is corrupted: record ring corrupted: write \
         sequence 18446744073709551613 is not a multiple of 8",
        ring_path.display()
    );
    assert!(reason.contains(&expected), "{reason}");
    // A learns it too: from B's CLOSE through the ring that is still sound, or, when B
    // removed its rings first, from their going.
    let PeerEvent::Down { reason, .. } = events_a.expect(SECONDS_10, "A sees B down", is_down(2))
    else {
        unreachable!()
    };
    assert!(
        reason.contains("is corrupted") || reason.contains("the peer left the rings"),
        "{reason}"
    );

    // The link comes back over fresh rings and records flow again.
    events_b.expect(SECONDS_10, "B sees A up again", is_up(1));
    let delivered = seen_b.records.load(Ordering::Relaxed);
    for seq in 100..200 {
        support::send_one(&mut outbound, 1, seq);
    }
    assert!(
        wait_until(SECONDS_10, || seen_b.records.load(Ordering::Relaxed)
            >= delivered + 100),
        "records after the new link: {:?}",
        b.stats()
    );
}
