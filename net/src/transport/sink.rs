//! Where inbound records go: a sink the caller provides.

/// The sink has no room for this record right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("inbound sink is full")]
pub struct SinkFull;

/// Receives the records that arrive from peers, on the transport thread.
///
/// The engine implements it by writing each record into the ring of the executor that runs
/// `dest_task`. When a ring is full, `deliver` returns [`SinkFull`]: the transport keeps the
/// record, stops reading from that connection and stops granting it credit, and retries
/// at once after [`TransportHandle::wake`](super::TransportHandle::wake), which the consumer
/// calls when it frees room (the engine's executors do, without losing a wake-up: see
/// `engine/src/worker/inbound.rs`). A sink whose consumers never call it is retried every
/// [`sink_retry`](super::TransportConfig::sink_retry), a backstop. The peer then runs out of
/// credit and its executors stop on full outbound rings: backpressure crosses hosts, and
/// memory stays bounded.
///
/// Records of one connection arrive in the order they were sent. A record refused with
/// [`SinkFull`] is offered again, and nothing after it from the same connection is offered
/// before it.
pub trait InboundSink: Send {
    /// Hands `record`, addressed to `dest_task`, to its consumer. The slice borrows the
    /// transport's receive buffer and is valid only during the call.
    ///
    /// # Errors
    /// [`SinkFull`] when there is no room now; the record is offered again later.
    fn deliver(&mut self, dest_task: u32, record: &[u8]) -> Result<(), SinkFull>;

    /// As [`deliver`](Self::deliver), for the traced record `key`: a sink that hands records
    /// on stamps where they go (the engine's does).
    ///
    /// # Errors
    /// As [`deliver`](Self::deliver).
    #[cfg(feature = "stage-trace")]
    fn deliver_traced(
        &mut self,
        dest_task: u32,
        record: &[u8],
        key: crate::trace::LinkKey,
    ) -> Result<(), SinkFull> {
        let _ = key;
        self.deliver(dest_task, record)
    }

    /// Called after a burst of deliveries, before the transport waits for more input:
    /// publish pending writes and wake consumers here.
    fn flush(&mut self) {}
}
