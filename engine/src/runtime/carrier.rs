//! The seam between the executor threads of a worker and whatever carries their records to
//! the other workers of the topology.
//!
//! Executors push records for peer workers into [`Outbound`] rings, one per (thread, peer),
//! and pull records from peers out of inbound rings the carrier fills through an
//! [`InboundSink`](squall_net::transport::InboundSink). Both are rings written and read
//! without allocation, lock or system call per record; the carrier is reached through this
//! trait only when a ring is opened (at start) and when an executor frees room in an
//! inbound ring the carrier found full (at most once per input batch). So a worker runs
//! unchanged over any carrier: the transport over TCP, over shared memory, or over the
//! in-process links of an [`InProcessHub`](squall_net::transport::InProcessHub).

use std::fmt;
use std::sync::Arc;

use squall_net::WorkerId;
use squall_net::transport::{Outbound, TransportError, TransportHandle};
use squall_ringbuf::WaitStrategy;

/// Carries records between this worker's executor threads and its peer workers.
pub(crate) trait PeerCarrier: Send + Sync + fmt::Debug {
    /// A new ring for one executor thread's records to `peer`; the carrier rings
    /// `doorbell` when it takes records, so a thread waiting on a full ring resumes.
    fn open_outbound(
        &self,
        peer: WorkerId,
        doorbell: Arc<dyn WaitStrategy>,
    ) -> Result<Outbound, TransportError>;

    /// An executor freed room in an inbound ring the carrier found full: deliver again now.
    fn room_freed(&self);
}

impl PeerCarrier for TransportHandle {
    fn open_outbound(
        &self,
        peer: WorkerId,
        doorbell: Arc<dyn WaitStrategy>,
    ) -> Result<Outbound, TransportError> {
        self.outbound_with_doorbell(peer, doorbell)
    }

    fn room_freed(&self) {
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use squall_net::transport::{InProcessHub, InboundSink, SinkFull, Transport, TransportConfig};
    use squall_net::{ClusterId, ClusterSecret, ConnectionConfig};

    use super::*;

    struct Refuse;

    impl InboundSink for Refuse {
        fn deliver(&mut self, _: u32, _: &[u8]) -> Result<(), SinkFull> {
            Err(SinkFull)
        }
    }

    #[test]
    fn a_transport_carries_for_the_executors() {
        let secret = ClusterSecret::new(*b"carrier test secret!").unwrap();
        let connection = ConnectionConfig::new(ClusterId(7), WorkerId(1), secret);
        let config = TransportConfig::new(connection, "127.0.0.1:0".parse().unwrap())
            .with_driver(squall_net::transport::DriverKind::Mio)
            .with_in_process(InProcessHub::new());
        let transport = Transport::start(config, Refuse, |_| {}).unwrap();
        let carrier: Arc<dyn PeerCarrier> = Arc::new(transport.handle());
        let doorbell = squall_ringbuf::WaitStrategyKind::SpinThenPark.build();
        let outbound = carrier.open_outbound(WorkerId(2), doorbell).unwrap();
        assert_eq!(outbound.peer(), WorkerId(2));
        carrier.room_freed();
        transport.shutdown().unwrap();
    }
}
