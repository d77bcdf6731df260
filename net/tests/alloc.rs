//! The per-record path allocates nothing: once connections are up and buffers warm, moving
//! hundreds of thousands of records between two transports makes (almost) no allocation in
//! the whole process: executors writing rings, the transport threads building, sending,
//! receiving and delivering frames.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use squall_net::WorkerId;
use squall_net::transport::{DriverKind, InboundSink, PeerSpec, SinkFull, Transport};
use support::{Events, config, drivers, is_up, send_records, wait_until};

/// Counts every allocation of the process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
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
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
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
