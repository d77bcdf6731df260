//! Counters of what the transport moved, updated once per frame.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the transport moved since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// BATCH frames sent.
    pub batches_sent: u64,
    /// Records sent.
    pub records_sent: u64,
    /// Bytes of the BATCH frames sent, headers included (control frames and TLS records
    /// aside).
    pub bytes_sent: u64,
    /// BATCH frames received and fully delivered to the sink.
    pub batches_received: u64,
    /// Records delivered to the sink.
    pub records_received: u64,
    /// Bytes of the BATCH frames received and delivered, headers included.
    pub bytes_received: u64,
    /// Records dropped because the peer accepts no frame large enough for them.
    pub records_dropped: u64,
    /// Times a connection had records to send and no credit left for them: the peer's
    /// consumers fell behind, and the senders wait for its next CREDIT.
    pub credit_exhausted: u64,
}

/// The live counters behind [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    batches_sent: AtomicU64,
    records_sent: AtomicU64,
    bytes_sent: AtomicU64,
    batches_received: AtomicU64,
    records_received: AtomicU64,
    bytes_received: AtomicU64,
    records_dropped: AtomicU64,
    credit_exhausted: AtomicU64,
}

impl Stats {
    /// Counts one BATCH frame of `bytes` holding `records`, sent.
    pub(crate) fn batch_sent(&self, records: u32, bytes: usize) {
        self.batches_sent.fetch_add(1, Ordering::Relaxed);
        self.records_sent
            .fetch_add(u64::from(records), Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts one BATCH frame of `bytes` holding `records`, delivered.
    pub(crate) fn batch_received(&self, records: u32, bytes: usize) {
        self.batches_received.fetch_add(1, Ordering::Relaxed);
        self.records_received
            .fetch_add(u64::from(records), Ordering::Relaxed);
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// BATCH frames sent and delivered so far: what the event loop calls progress.
    pub(crate) fn batches_moved(&self) -> u64 {
        self.batches_sent.load(Ordering::Relaxed) + self.batches_received.load(Ordering::Relaxed)
    }

    /// Counts records dropped.
    pub(crate) fn dropped(&self, records: u64) {
        self.records_dropped.fetch_add(records, Ordering::Relaxed);
    }

    /// Counts a connection running out of credit with records waiting.
    pub(crate) fn credit_exhausted(&self) {
        self.credit_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the counters.
    pub(crate) fn snapshot(&self) -> TransportStats {
        TransportStats {
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            records_sent: self.records_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            batches_received: self.batches_received.load(Ordering::Relaxed),
            records_received: self.records_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            records_dropped: self.records_dropped.load(Ordering::Relaxed),
            credit_exhausted: self.credit_exhausted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_records_and_bytes_add_up() {
        let stats = Stats::default();
        stats.batch_sent(3, 120);
        stats.batch_sent(1, 40);
        stats.batch_received(2, 64);
        let snapshot = stats.snapshot();
        assert_eq!(
            (
                snapshot.batches_sent,
                snapshot.records_sent,
                snapshot.bytes_sent
            ),
            (2, 4, 160)
        );
        assert_eq!(
            (
                snapshot.batches_received,
                snapshot.records_received,
                snapshot.bytes_received
            ),
            (1, 2, 64)
        );
    }
}
