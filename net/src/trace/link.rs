//! A connection's share of the trace: numbering traced records in wire order, and stamping
//! the writes that complete their frames and the CREDIT frames that return their bytes.

use std::collections::VecDeque;

use super::collector::{self, Raw};
use super::{LinkKey, RingPickups, Stage, now_ns};

/// One connection's traced records, both directions.
#[derive(Debug, Default)]
pub(crate) struct LinkTrace {
    /// Ordinal of the next traced record sent.
    next_sent: u64,
    /// Ordinal of the next traced record received.
    next_received: u64,
    /// Traced records of the BATCH frame being built.
    batch: Vec<LinkKey>,
    /// Traced records delivered from the frame being received.
    frame: Vec<LinkKey>,
    /// When the read that brought in the frame being received ended.
    pub(crate) read_at: u64,
    /// Received frames with traced records, oldest first, with the credit limit that
    /// returns their bytes to the peer.
    credit_waits: VecDeque<(u64, Vec<LinkKey>)>,
}

impl LinkTrace {
    /// Numbers the traced records `pickups` took into the frame being built.
    pub(crate) fn picked_up(&mut self, pickups: &mut RingPickups, from: u64, to: u64) {
        pickups.number(from, to, &mut self.next_sent, &mut self.batch);
    }

    /// The frame being built was queued: its traced records are stamped when the write that
    /// completes it ends.
    pub(crate) fn batch_queued(&mut self, marks: &mut WriteMarks) {
        if !self.batch.is_empty() {
            marks.mark(Stage::FrameWritten, std::mem::take(&mut self.batch));
        }
    }

    /// The key the next traced record received from `from` on this connection to `to` gets.
    pub(crate) fn next_received(&self, from: u64, to: u64) -> LinkKey {
        LinkKey {
            from,
            to,
            ordinal: self.next_received,
        }
    }

    /// The sink took the traced record `key` (from [`next_received`](Self::next_received)).
    pub(crate) fn delivered(&mut self, key: LinkKey) {
        self.next_received += 1;
        collector::record_link(key, Stage::SocketRead, self.read_at);
        self.frame.push(key);
    }

    /// Every record of the frame being received was delivered; a CREDIT granting up to
    /// `limit` returns its bytes.
    pub(crate) fn frame_delivered(&mut self, limit: u64) {
        if !self.frame.is_empty() {
            self.credit_waits
                .push_back((limit, std::mem::take(&mut self.frame)));
        }
    }

    /// Control frames were queued; `granted` is the limit of the latest CREDIT among them or
    /// before them (`None` while a newer one waits). The frames it returns are stamped when
    /// the write holding it ends.
    pub(crate) fn control_queued(&mut self, granted: Option<u64>, marks: &mut WriteMarks) {
        let Some(granted) = granted else {
            return;
        };
        let mut keys = Vec::new();
        while let Some((limit, _)) = self.credit_waits.front()
            && *limit <= granted
        {
            let (_, frame) = self.credit_waits.pop_front().expect("a front exists");
            keys.extend(frame);
        }
        if !keys.is_empty() {
            marks.mark(Stage::CreditSent, keys);
        }
    }
}

/// A send queue's stream positions, and the traced frames waiting in it to be written.
#[derive(Debug, Default)]
pub(crate) struct WriteMarks {
    /// Bytes ever queued.
    queued: u64,
    /// Bytes ever written.
    written: u64,
    /// Frames with traced records, oldest first: where the frame ends in the stream, the
    /// stage its write completes, and the records.
    waiting: VecDeque<(u64, Stage, Vec<LinkKey>)>,
}

impl WriteMarks {
    /// `n` bytes were queued.
    #[inline]
    pub(crate) fn queued(&mut self, n: usize) {
        self.queued += n as u64;
    }

    /// The frame queued last holds `keys`; their `stage` ends when it is written.
    pub(crate) fn mark(&mut self, stage: Stage, keys: Vec<LinkKey>) {
        self.waiting.push_back((self.queued, stage, keys));
    }

    /// `n` more queued bytes were written: stamps the frames that completed.
    #[inline]
    pub(crate) fn written(&mut self, n: usize) {
        self.written += n as u64;
        if self
            .waiting
            .front()
            .is_none_or(|&(end, ..)| end > self.written)
        {
            return;
        }
        let ns = now_ns();
        let mut stamps = Vec::new();
        while let Some(&(end, ..)) = self.waiting.front()
            && end <= self.written
        {
            let (_, stage, keys) = self.waiting.pop_front().expect("a front exists");
            stamps.extend(keys.into_iter().map(|key| Raw::Link { key, stage, ns }));
        }
        collector::record(stamps);
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ordinal: u64) -> LinkKey {
        LinkKey {
            from: 3,
            to: 4,
            ordinal,
        }
    }

    #[test]
    fn a_frame_is_stamped_once_the_write_reaches_its_end() {
        let mut marks = WriteMarks::default();
        marks.queued(100);
        marks.mark(Stage::FrameWritten, vec![key(0)]);
        marks.queued(50);
        marks.mark(Stage::FrameWritten, vec![key(1)]);
        marks.written(99);
        assert_eq!(marks.waiting(), 2);
        marks.written(1);
        assert_eq!(marks.waiting(), 1);
        marks.written(50);
        assert_eq!(marks.waiting(), 0);
    }

    #[test]
    fn credit_waits_end_with_the_first_grant_that_covers_them() {
        let mut trace = LinkTrace::default();
        let first = trace.next_received(1, 2);
        trace.delivered(first);
        trace.frame_delivered(1_000);
        let second = trace.next_received(1, 2);
        assert_eq!(second.ordinal, 1);
        trace.delivered(second);
        trace.frame_delivered(2_000);
        let mut marks = WriteMarks::default();
        trace.control_queued(None, &mut marks);
        trace.control_queued(Some(999), &mut marks);
        assert_eq!(marks.waiting(), 0);
        trace.control_queued(Some(1_500), &mut marks);
        assert_eq!(marks.waiting(), 1);
        assert_eq!(trace.credit_waits.len(), 1);
    }
}
