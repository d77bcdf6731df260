//! The data path allocates nothing per tuple once warm: a counting global allocator watches
//! every thread while fixed-size tuples flow through a two-hop pipeline, untracked and
//! tracked.
//!
//! Untracked, nothing at all is allocated. Tracked, acker traffic is never throttled (acks
//! must flow for anything to complete), so its overflow buffers may still grow to a new
//! high-water mark now and then; that is growth, not a per-tuple cost, and is bounded here
//! to a handful per hundred thousand tuples.

use std::time::Duration;

use squall_builtin::topologies::{self, BuiltinOptions};
use squall_core::{Chaining, TopologyConfig};
use squall_test_support::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn steady_state_allocations(tracked: bool, chaining: Chaining) -> (u64, u64) {
    let mut options = BuiltinOptions {
        config: TopologyConfig::default()
            .with_ackers(usize::from(tracked))
            .with_chaining(chaining)
            .with_max_spout_pending(10_000)
            // Short, so every map reaches its working size during the warm-up.
            .with_message_timeout(Duration::from_millis(300)),
        ..BuiltinOptions::default()
    };
    options.source.tracked = tracked;
    let built = topologies::const_id_null("no-allocation", &options).unwrap();
    let running = squall_core::run(built.topology.clone()).unwrap();
    // Warm up: every map, buffer and histogram reaches its working size.
    std::thread::sleep(Duration::from_millis(500));
    let tuples_before = built.sinks.received.total();
    let allocations_before = CountingAllocator::process_allocations();
    std::thread::sleep(Duration::from_millis(500));
    let allocations = CountingAllocator::process_allocations() - allocations_before;
    let tuples = built.sinks.received.total() - tuples_before;
    built.source.switch.turn_off();
    assert!(running.kill(Duration::from_secs(30)).drained);
    (allocations, tuples)
}

/// One test, so no other test's set-up runs (and allocates) while this one counts.
#[test]
fn tuples_allocate_nothing_once_warm() {
    for (tracked, chaining) in [
        (false, Chaining::Never),
        (false, Chaining::Threads(1)),
        (true, Chaining::Never),
        (true, Chaining::Threads(1)),
    ] {
        let (allocations, tuples) = steady_state_allocations(tracked, chaining);
        assert!(tuples > 50_000, "only {tuples} tuples flowed");
        let allowed = if tracked { tuples / 20_000 } else { 0 };
        assert!(
            allocations <= allowed,
            "{allocations} allocations for {tuples} tuples (tracked: {tracked}, {chaining:?})"
        );
    }
}
