//! The worker's side of the transport: records arriving from peer workers go into the input
//! ring of the thread that runs their destination task.

use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use squall_net::transport::{InboundSink, SinkFull};
use squall_ringbuf::WaitStrategy;
use squall_ringbuf::record::{RecordProducer, WriteError};

use crate::ids::TaskId;
use crate::metrics::RingCounters;
use crate::runtime::start::{Layout, Plane, plane_of};
use crate::topology::Topology;

/// One inbound ring, written by the transport thread.
struct InboundRing {
    producer: RecordProducer,
    counters: Arc<RingCounters>,
    unpublished: u64,
    published: u64,
    #[cfg(feature = "stage-trace")]
    traced: squall_net::trace::InboundRingTrace,
}

impl InboundRing {
    fn publish(&mut self) -> bool {
        if self.unpublished == 0 {
            return false;
        }
        #[cfg(feature = "stage-trace")]
        self.traced.publishing(&self.counters.traced);
        self.producer.publish();
        self.published += self.unpublished;
        self.unpublished = 0;
        // Release: the consuming thread that sees this count finds the records in the ring.
        self.counters
            .published
            .store(self.published, Ordering::Release);
        true
    }
}

/// Delivers records from the transport to the executor threads of this worker: acker
/// traffic into each thread's ack ring, data into its data ring.
pub(crate) struct WorkerInbound {
    /// (thread, plane) of each local task, indexed by task id.
    destinations: Box<[Option<(usize, usize)>]>,
    /// Per thread: the data ring and the ack ring.
    rings: Vec<[InboundRing; 2]>,
    doorbells: Vec<Arc<dyn WaitStrategy>>,
    /// Records for tasks this worker does not run (a peer with an older assignment).
    misrouted: u64,
}

impl WorkerInbound {
    pub(crate) fn new(
        topology: &Topology,
        layout: &Layout,
        producers: Vec<[(RecordProducer, Arc<RingCounters>); 2]>,
    ) -> Self {
        let destinations = (0..layout.thread_of_task.len())
            .map(|task| {
                let thread = layout.thread_of_task[task];
                (task != 0 && thread != usize::MAX).then(|| {
                    let plane = match plane_of(topology, TaskId(task as u32)) {
                        Plane::Data => 0,
                        Plane::Ack => 1,
                    };
                    (thread, plane)
                })
            })
            .collect();
        let rings = producers
            .into_iter()
            .map(|pair| {
                pair.map(|(producer, counters)| InboundRing {
                    producer,
                    counters,
                    unpublished: 0,
                    published: 0,
                    #[cfg(feature = "stage-trace")]
                    traced: Default::default(),
                })
            })
            .collect();
        Self {
            destinations,
            rings,
            doorbells: layout.doorbells.clone(),
            misrouted: 0,
        }
    }
}

impl InboundSink for WorkerInbound {
    #[inline]
    fn deliver(&mut self, dest_task: u32, record: &[u8]) -> Result<(), SinkFull> {
        let dest_task = TaskId(dest_task);
        let Some(&Some((thread, plane))) = self.destinations.get(dest_task.index()) else {
            if self.misrouted == 0 {
                tracing::warn!(
                    task = dest_task.0,
                    "a peer sent a record for a task this worker does not run; dropped"
                );
            }
            self.misrouted += 1;
            return Ok(());
        };
        let ring = &mut self.rings[thread][plane];
        match ring.producer.write(record) {
            Ok(()) => {
                ring.unpublished += 1;
                Ok(())
            }
            Err(WriteError::RecordFull) => {
                // Ask the thread to wake the transport once it has made room, then look
                // once more: the SeqCst fence here and the one after the thread's release
                // of its batch (`drain_port`) make either this second write see the room,
                // or the thread see the flag. No wake-up is lost, so the transport needs
                // no retry timer.
                ring.counters
                    .producer_waiting
                    .store(true, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if ring.producer.write(record).is_ok() {
                    ring.unpublished += 1;
                    return Ok(());
                }
                // Let the thread see what is there, so it can make room.
                if ring.publish() {
                    self.doorbells[thread].notify();
                }
                Err(SinkFull)
            }
            Err(error @ WriteError::Corrupted(_)) => {
                unreachable!("a heap ring shared by no other process is corrupted: {error}")
            }
            Err(WriteError::RecordTooLarge { len, max }) => {
                tracing::error!(
                    task = dest_task.0,
                    len,
                    max,
                    "a record from a peer is larger than this worker's rings take; dropped"
                );
                Ok(())
            }
        }
    }

    #[cfg(feature = "stage-trace")]
    fn deliver_traced(
        &mut self,
        dest_task: u32,
        record: &[u8],
        key: squall_net::trace::LinkKey,
    ) -> Result<(), SinkFull> {
        let destination = self.destinations.get(dest_task as usize).copied().flatten();
        // Records written into the destination ring so far: the traced one's position.
        let written = |inbound: &Self| {
            destination.map(|(thread, plane)| {
                let ring = &inbound.rings[thread][plane];
                ring.published + ring.unpublished
            })
        };
        let position = written(self);
        self.deliver(dest_task, record)?;
        // A record dropped (misrouted, or too large for the ring) was not written.
        if let (Some((thread, plane)), Some(position)) = (destination, position)
            && written(self) != Some(position)
        {
            self.rings[thread][plane].traced.written(position, key);
        }
        Ok(())
    }

    fn flush(&mut self) {
        for (thread, rings) in self.rings.iter_mut().enumerate() {
            let mut any = false;
            for ring in rings.iter_mut() {
                any |= ring.publish();
            }
            if any {
                self.doorbells[thread].notify();
            }
        }
    }
}
