//! The receiving worker's share of the trace: its input rings, written by the transport
//! thread and drained by executor threads.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::collector::{self, Raw};
use super::{LinkKey, Stage, now_ns};

/// The traced records an executor will find in one of its input rings, handed over by the
/// transport thread: each with its position among the ring's records.
#[derive(Debug)]
pub struct InboundQueue {
    /// Position of the oldest waiting record, `u64::MAX` when none waits: lets the executor
    /// skip the lock.
    oldest: AtomicU64,
    waiting: Mutex<VecDeque<(u64, LinkKey)>>,
}

impl Default for InboundQueue {
    fn default() -> Self {
        Self {
            oldest: AtomicU64::new(u64::MAX),
            waiting: Mutex::new(VecDeque::new()),
        }
    }
}

impl InboundQueue {
    fn push(&self, records: impl IntoIterator<Item = (u64, LinkKey)>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.extend(records);
        if let Some(&(position, _)) = waiting.front() {
            self.oldest.store(position, Ordering::Release);
        }
    }

    /// The executor took the ring's first `consumed` records out and processed them.
    #[inline]
    pub fn drained(&self, consumed: u64) {
        if self.oldest.load(Ordering::Acquire) >= consumed {
            return;
        }
        let ns = now_ns();
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let mut stamps = Vec::new();
        while let Some(&(position, key)) = waiting.front()
            && position < consumed
        {
            waiting.pop_front();
            stamps.push(Raw::Link {
                key,
                stage: Stage::ExecutorRead,
                ns,
            });
        }
        let oldest = waiting.front().map_or(u64::MAX, |&(position, _)| position);
        self.oldest.store(oldest, Ordering::Release);
        drop(waiting);
        collector::record(stamps);
    }
}

/// The transport thread's end of one input ring: traced records written, not yet published.
#[derive(Debug, Default)]
pub struct InboundRingTrace {
    unpublished: Vec<(u64, LinkKey)>,
}

impl InboundRingTrace {
    /// The traced record `key` was written into the ring as its `position`-th record.
    pub fn written(&mut self, position: u64, key: LinkKey) {
        collector::record_link(key, Stage::InboundWrite, now_ns());
        self.unpublished.push((position, key));
    }

    /// The ring is about to be published: stamps the traced records and hands them to the
    /// executor's `queue` before it can see them.
    #[inline]
    pub fn publishing(&mut self, queue: &InboundQueue) {
        if self.unpublished.is_empty() {
            return;
        }
        let ns = now_ns();
        collector::record(self.unpublished.iter().map(|&(_, key)| Raw::Link {
            key,
            stage: Stage::InboundPublish,
            ns,
        }));
        queue.push(self.unpublished.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executor_finds_traced_records_by_position() {
        let key = |ordinal| LinkKey {
            from: 1,
            to: 2,
            ordinal,
        };
        let queue = InboundQueue::default();
        let mut ring = InboundRingTrace::default();
        ring.written(10, key(0));
        ring.written(20, key(1));
        queue.drained(5);
        assert_eq!(queue.oldest.load(Ordering::Relaxed), u64::MAX);
        ring.publishing(&queue);
        assert_eq!(queue.oldest.load(Ordering::Relaxed), 10);
        queue.drained(10);
        assert_eq!(
            queue.waiting.lock().unwrap().len(),
            2,
            "position 10 not taken yet"
        );
        queue.drained(11);
        assert_eq!(queue.oldest.load(Ordering::Relaxed), 20);
        queue.drained(64);
        assert!(queue.waiting.lock().unwrap().is_empty());
    }
}
