//! Cheap cross-thread counters: each task owns one cache line, the observer sums them.
//!
//! A task's [`MeterCounter`] keeps its running total privately and publishes it with one
//! relaxed store per update — no read-modify-write, no shared cache line between tasks — so
//! counting every tuple costs about as much as not counting. An observer reads
//! [`ThroughputMeter::total`] a few times a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_utils::CachePadded;

type SharedCount = Arc<CachePadded<AtomicU64>>;

/// The sum of many tasks' counters; cloning gives another handle to the same meter.
#[derive(Debug, Clone, Default)]
pub struct ThroughputMeter {
    shared: Arc<Mutex<Vec<SharedCount>>>,
}

impl ThroughputMeter {
    /// A meter with no counters yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new counter, owned by one task, that adds to this meter.
    pub fn counter(&self) -> MeterCounter {
        let shared: SharedCount = Arc::default();
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&shared));
        MeterCounter { shared, local: 0 }
    }

    /// The sum of every counter's latest published value.
    pub fn total(&self) -> u64 {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        // Relaxed is enough: each value is a monotonic count read for reporting only.
        shared
            .iter()
            .map(|shared| shared.load(Ordering::Relaxed))
            .sum()
    }

    /// Number of counters made so far.
    pub fn counters(&self) -> usize {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One task's counter of a [`ThroughputMeter`]; not shared, so updates need no atomic add.
#[derive(Debug)]
pub struct MeterCounter {
    shared: SharedCount,
    local: u64,
}

impl MeterCounter {
    /// Adds `count` and publishes the new total.
    #[inline]
    pub fn add(&mut self, count: u64) {
        self.local += count;
        self.shared.store(self.local, Ordering::Relaxed);
    }

    /// This counter's total.
    pub fn value(&self) -> u64 {
        self.local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_across_threads() {
        let meter = ThroughputMeter::new();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let mut counter = meter.counter();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counter.add(1);
                    }
                    counter.value()
                })
            })
            .collect();
        let per_worker: Vec<u64> = workers
            .into_iter()
            .map(|worker| worker.join().expect("worker runs"))
            .collect();
        assert_eq!(per_worker, vec![10_000; 4]);
        assert_eq!(meter.total(), 40_000);
        assert_eq!(meter.counters(), 4);
    }

    #[test]
    fn a_dropped_counter_still_counts() {
        let meter = ThroughputMeter::new();
        let mut counter = meter.clone().counter();
        counter.add(7);
        drop(counter);
        assert_eq!(meter.total(), 7);
    }
}
