//! The per-record path allocates nothing: once connections are up and buffers warm, moving
//! hundreds of thousands of records between two transports makes (almost) no allocation in
//! the whole process: executors writing rings, the transport threads building, sending,
//! receiving and delivering frames.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use squall_net::WorkerId;
use squall_net::transport::{DriverKind, InboundSink, PeerSpec, SinkFull, Transport};
use squall_test_support::CountingAllocator;
use support::{Events, config, drivers, is_up, send_records, wait_until};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Counts records without allocating.
struct CountingSink(std::sync::Arc<AtomicU64>);

impl InboundSink for CountingSink {
    fn deliver(&mut self, _: u32, _: &[u8]) -> Result<(), SinkFull> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn steady_state(driver: DriverKind) {
    const WARM_UP: u64 = 200_000;
    const MEASURED: u64 = 500_000;
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let (on_a, events_a) = Events::channel();
    let a = Transport::start(config(1, driver), CountingSink(received.clone()), on_a).unwrap();
    let b = Transport::start(config(2, driver), CountingSink(received.clone()), |_| {}).unwrap();
    a.set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    events_a.expect(Duration::from_secs(10), "up", is_up(2));
    let to_b = a.outbound(WorkerId(2)).unwrap();
    let to_a = b.outbound(WorkerId(1)).unwrap();
    // Warm up: buffers and rings reach their steady sizes.
    let warm = [
        send_records(to_b, 1, WARM_UP),
        send_records(to_a, 2, WARM_UP),
    ];
    for sender in warm {
        sender.join().unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || received
        .load(Ordering::Relaxed)
        == 2 * WARM_UP));

    let to_b = a.outbound(WorkerId(2)).unwrap();
    let to_a = b.outbound(WorkerId(1)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let before = CountingAllocator::process_allocations();
    let measured = [
        send_records(to_b, 3, MEASURED),
        send_records(to_a, 4, MEASURED),
    ];
    for sender in measured {
        sender.join().unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || {
        received.load(Ordering::Relaxed) == 2 * (WARM_UP + MEASURED)
    }));
    let allocations = CountingAllocator::process_allocations() - before;
    // The two sender threads (spawning, their buffer) allocate a little; a million records
    // moved must not add to that.
    eprintln!(
        "{driver}: {allocations} allocations for {} records",
        2 * MEASURED
    );
    assert!(
        allocations < 50,
        "{driver}: {allocations} allocations while moving {} records",
        2 * MEASURED
    );
}

#[test]
fn moving_records_does_not_allocate() {
    for driver in drivers() {
        steady_state(driver);
    }
}
