//! The publish bolt: streams its input tuples to the subscribers of a DRPC server's
//! published stream (`<topology name>/<stream>`), Storm's "continuous query on data
//! streams, streaming the results into clients".
//!
//! Each configured server gets a sender thread and a bounded queue of its own. The executor
//! only queues: when a server is slow or down, its queue fills and the oldest tuples are
//! dropped (and counted), so the topology never waits on the network. Each input is acked
//! once it is queued: subscribers get at-most-once delivery.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use squall_core::component::{Bolt, ComponentError};
use squall_core::context::TopologyContext;
use squall_core::runtime::{BoltOutput, Tuple};

use crate::link::Link;
use crate::protocol::{self, ToServer};
use crate::spout::DrpcServers;

/// Most tuples a server's queue holds before the oldest are dropped.
pub const QUEUE_CAPACITY: usize = 8192;

/// Most tuples sent in one frame.
const SEND_BATCH: usize = 512;

/// Tuples waiting for one server, oldest first; full, it drops the oldest.
#[derive(Debug)]
pub struct PublishQueue {
    tuples: VecDeque<serde_json::Value>,
    capacity: usize,
    dropped: u64,
}

impl PublishQueue {
    /// An empty queue of at most `capacity` tuples (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            tuples: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Queues `tuple`, dropping the oldest when full.
    pub fn push(&mut self, tuple: serde_json::Value) {
        if self.tuples.len() == self.capacity {
            self.tuples.pop_front();
            self.dropped += 1;
        }
        self.tuples.push_back(tuple);
    }

    /// Up to `max` tuples, oldest first, taken off the queue.
    pub fn take(&mut self, max: usize) -> Vec<serde_json::Value> {
        let count = max.min(self.tuples.len());
        self.tuples.drain(..count).collect()
    }

    /// Counts `lost` tuples as dropped (taken, then not delivered).
    pub fn count_lost(&mut self, lost: usize) {
        self.dropped += lost as u64;
    }

    /// Tuples waiting.
    pub fn len(&self) -> usize {
        self.tuples.len()
    }

    /// Whether no tuple waits.
    pub fn is_empty(&self) -> bool {
        self.tuples.is_empty()
    }

    /// Tuples dropped so far: pushed out by newer ones, or lost with a connection.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// What a server's sender thread shares with the bolt.
#[derive(Debug)]
struct Outbox {
    queue: Mutex<PublishQueue>,
    queued: Condvar,
    sent: AtomicU64,
}

impl Outbox {
    fn queue(&self) -> std::sync::MutexGuard<'_, PublishQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Publishes its input tuples, as JSON arrays of their values, on stream
/// `<topology name>/<stream>` of every configured DRPC server.
#[derive(Debug)]
pub struct PublishBolt {
    stream: String,
    servers: DrpcServers,
    capacity: usize,
    full_name: String,
    outboxes: Vec<Arc<Outbox>>,
    stop: Arc<AtomicBool>,
    encoded: Vec<u8>,
}

impl PublishBolt {
    /// Publishes on `stream` of `servers`, with queues of [`QUEUE_CAPACITY`].
    ///
    /// # Errors
    /// When `stream` is not a valid stream name.
    pub fn new(stream: &str, servers: DrpcServers) -> Result<Self, String> {
        Self::with_capacity(stream, servers, QUEUE_CAPACITY)
    }

    /// Publishes on `stream` of `servers`, each server's queue holding `capacity` tuples.
    ///
    /// # Errors
    /// When `stream` is not a valid stream name.
    pub fn with_capacity(
        stream: &str,
        servers: DrpcServers,
        capacity: usize,
    ) -> Result<Self, String> {
        protocol::check_stream_part("stream name", stream)?;
        Ok(Self {
            stream: stream.to_owned(),
            servers,
            capacity,
            full_name: String::new(),
            outboxes: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            encoded: Vec::new(),
        })
    }

    /// Tuples sent to the servers so far, summed over them.
    pub fn sent(&self) -> u64 {
        self.outboxes
            .iter()
            .map(|outbox| outbox.sent.load(Ordering::Relaxed))
            .sum()
    }

    /// Tuples dropped so far, summed over the servers.
    pub fn dropped(&self) -> u64 {
        self.outboxes
            .iter()
            .map(|outbox| outbox.queue().dropped())
            .sum()
    }

    fn encode(&mut self, input: &Tuple<'_>) -> Result<serde_json::Value, String> {
        self.encoded.clear();
        squall_multilang::values::write_tuple_json(&mut self.encoded, input.fields())
            .map_err(|error| error.to_string())?;
        serde_json::from_slice(&self.encoded).map_err(|error| error.to_string())
    }
}

impl Bolt for PublishBolt {
    fn prepare(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.servers.key = self.servers.key.resolve()?;
        let topology = context.topology().name();
        protocol::check_stream_part("topology name", topology)
            .map_err(|reason| ComponentError::from(format!("cannot publish: {reason}")))?;
        self.full_name = format!("{topology}/{}", self.stream);
        for server in &self.servers.addresses {
            let outbox = Arc::new(Outbox {
                queue: Mutex::new(PublishQueue::new(self.capacity)),
                queued: Condvar::new(),
                sent: AtomicU64::new(0),
            });
            let sender = Sender {
                server: server.clone(),
                key: self.servers.key.clone(),
                stream: self.full_name.clone(),
                outbox: outbox.clone(),
                stop: self.stop.clone(),
            };
            std::thread::Builder::new()
                .name(format!("drpc-publish-{}", self.stream))
                .spawn(move || sender.run())?;
            self.outboxes.push(outbox);
        }
        Ok(())
    }

    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        if input.is_tick() {
            output.ack(input);
            return;
        }
        match self.encode(input) {
            Ok(tuple) => {
                for outbox in &self.outboxes {
                    outbox.queue().push(tuple.clone());
                    outbox.queued.notify_one();
                }
                output.ack(input);
            }
            Err(reason) => {
                output.report_error(format!(
                    "cannot publish a tuple on {}: {reason}",
                    self.full_name
                ));
                output.fail(input);
            }
        }
    }

    fn cleanup(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for outbox in &self.outboxes {
            outbox.queued.notify_all();
        }
    }
}

impl Drop for PublishBolt {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The connection of one publish task to one server.
struct Sender {
    server: String,
    key: crate::key::DrpcKey,
    stream: String,
    outbox: Arc<Outbox>,
    stop: Arc<AtomicBool>,
}

impl Sender {
    // Tuples queued while the server is away keep arriving; the queue bounds them.
    fn run(self) {
        let what = format!("publisher of {}", self.stream);
        // Dropped tuples the server has been told of, carried across connections.
        let mut reported_dropped = 0;
        crate::link::keep_connected(&self.server, &self.key, &self.stop, &what, |link| {
            self.serve(link, &mut reported_dropped)
        });
    }

    /// Sends until stopped (`Ok`) or the connection fails. Each frame tells the server how
    /// many tuples were dropped since the previous one; drops before this connection (lost
    /// with an earlier one, or while the server was away) go with its first frame.
    fn serve(
        &self,
        mut link: Link,
        reported_dropped: &mut u64,
    ) -> Result<(), crate::link::LinkError> {
        while !self.stop.load(Ordering::Relaxed) {
            let (tuples, dropped) = {
                let mut queue = self.outbox.queue();
                if queue.is_empty() {
                    queue = self
                        .outbox
                        .queued
                        .wait_timeout(queue, Duration::from_millis(200))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                (queue.take(SEND_BATCH), queue.dropped())
            };
            if tuples.is_empty() {
                continue;
            }
            let count = tuples.len();
            let message = ToServer::Publish {
                stream: self.stream.clone(),
                tuples,
                dropped: dropped - *reported_dropped,
            };
            if let Err(error) = link.send(&message) {
                self.outbox.queue().count_lost(count);
                return Err(error);
            }
            *reported_dropped = dropped;
            self.outbox.sent.fetch_add(count as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let mut queue = PublishQueue::new(3);
        for n in 0..5 {
            queue.push(serde_json::json!([n]));
        }
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.dropped(), 2);
        assert_eq!(
            queue.take(2),
            vec![serde_json::json!([2]), serde_json::json!([3])]
        );
        queue.count_lost(1);
        assert_eq!(queue.dropped(), 3);
        assert_eq!(queue.take(10), vec![serde_json::json!([4])]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_bad_stream_name_is_refused() {
        let secret = squall_net::ClusterSecret::new(*b"0123456789abcdef0123").unwrap();
        let servers = DrpcServers::new(vec!["127.0.0.1:3772".into()], secret).unwrap();
        let error = PublishBolt::new("a/b", servers.clone()).unwrap_err();
        assert!(error.contains("stream name \"a/b\""), "{error}");
        assert!(PublishBolt::new("trending", servers).is_ok());
    }
}
