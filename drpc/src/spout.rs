//! The DRPC spout: pulls the requests of one function from every configured DRPC server and
//! emits each as a tracked tuple; a request whose tuple tree fails or times out is reported
//! to its server as failed.
//!
//! Each server gets a thread of its own that keeps a connection, fetches requests while the
//! spout has room for them and sends the failures; a server that is down only delays its
//! own requests. The executor thread never blocks on the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use squall_core::component::{ComponentError, Spout};
use squall_core::context::{ExecutorWaker, TopologyContext};
use squall_core::ids::MessageId;
use squall_core::runtime::SpoutOutput;
use squall_core::topology::OutputDeclarer;
use squall_net::ClusterSecret;

use crate::key::DrpcKey;
use crate::link::Link;
use crate::protocol::{FetchedRequest, ToPeer, ToServer};
use crate::return_info::ReturnInfo;

/// The stream a linear DRPC spout emits requests on: `[id, args]`.
pub const ARGS_STREAM: &str = "args";

/// The stream a linear DRPC spout emits a request's end on, once every tuple of its
/// `args` tree is processed: `[id, return-info]`.
pub const FINISH_STREAM: &str = "finish";

/// Most fetched requests a spout task holds before emitting them.
const INBOX_CAPACITY: usize = 256;

/// Most requests emitted in one `next_tuple` call.
const EMIT_BATCH: usize = 64;

/// The DRPC servers a topology serves, and the key that opens them.
#[derive(Debug, Clone)]
pub struct DrpcServers {
    /// `host:port` of each server's DRPC port.
    pub addresses: Vec<String>,
    /// The cluster secret (local mode) or the topology's worker key (on a cluster).
    pub key: DrpcKey,
}

impl DrpcServers {
    /// The servers at `addresses`, opened with the cluster secret.
    ///
    /// # Errors
    /// When the list is empty or an address is not `host:port`.
    pub fn new(addresses: Vec<String>, secret: ClusterSecret) -> Result<Self, String> {
        Self::with_key(addresses, DrpcKey::cluster(secret))
    }

    /// The servers at `addresses`, opened with `key`; [`DrpcKey::from_environment`] finds
    /// the key of a cluster's worker.
    ///
    /// # Errors
    /// When the list is empty or an address is not `host:port`.
    pub fn with_key(addresses: Vec<String>, key: DrpcKey) -> Result<Self, String> {
        if addresses.is_empty() {
            return Err("no DRPC servers are configured".to_owned());
        }
        for address in &addresses {
            crate::return_info::split_server(address)?;
        }
        Ok(Self { addresses, key })
    }
}

/// What the spout emits for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoutShape {
    /// Storm's `DRPCSpout`: `[args, return-info]` on the default stream; the topology's
    /// last bolt emits `[result, return-info]` to the return bolt.
    Plain,
    /// For linear DRPC topologies: `[id, args]` on [`ARGS_STREAM`], then, once that tree
    /// completes, `[id, return-info]` on [`FINISH_STREAM`] for the aggregator.
    Linear,
}

/// A request in flight in the topology.
#[derive(Debug)]
struct Pending {
    server: usize,
    request: u64,
    return_info: String,
    key: String,
    finishing: bool,
}

/// A request fetched by a server's thread.
#[derive(Debug)]
struct Incoming {
    server: usize,
    request: FetchedRequest,
}

/// One server's thread and what it shares with the spout.
#[derive(Debug)]
struct Fetcher {
    failures: Arc<Mutex<Vec<ToServer>>>,
}

/// Serves `function` from every configured DRPC server.
#[derive(Debug)]
pub struct DrpcSpout {
    function: String,
    servers: DrpcServers,
    shape: SpoutShape,
    fetchers: Vec<Fetcher>,
    inbox: Option<Receiver<Incoming>>,
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    pending: HashMap<u64, Pending>,
    next_message: u64,
    task: u32,
}

impl DrpcSpout {
    /// A spout serving `function` from `servers`, emitting in `shape`.
    pub fn new(function: &str, servers: DrpcServers, shape: SpoutShape) -> Self {
        Self {
            function: function.to_owned(),
            servers,
            shape,
            fetchers: Vec::new(),
            inbox: None,
            queued: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            pending: HashMap::new(),
            next_message: 1,
            task: 0,
        }
    }

    fn fail_request(&mut self, pending: &Pending, reason: &str) {
        if let Some(fetcher) = self.fetchers.get(pending.server) {
            fetcher
                .failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(ToServer::Failure {
                    request: pending.request,
                    reason: reason.to_owned(),
                });
        }
    }
}

impl Spout for DrpcSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        match self.shape {
            SpoutShape::Plain => {
                declarer.declare(&["args", "return-info"]);
            }
            SpoutShape::Linear => {
                declarer.declare_stream(ARGS_STREAM, &["id", "args"]);
                declarer.declare_stream(FINISH_STREAM, &["id", "return-info"]);
            }
        }
    }

    fn open(&mut self, context: &TopologyContext) -> Result<(), ComponentError> {
        self.servers.key = self.servers.key.resolve()?;
        self.task = context.task_id().0;
        let (sender, receiver) = std::sync::mpsc::channel();
        self.inbox = Some(receiver);
        for (index, server) in self.servers.addresses.iter().enumerate() {
            let failures = Arc::new(Mutex::new(Vec::new()));
            let thread = FetchThread {
                index,
                server: server.clone(),
                key: self.servers.key.clone(),
                function: self.function.clone(),
                sender: sender.clone(),
                queued: self.queued.clone(),
                failures: failures.clone(),
                stop: self.stop.clone(),
                waker: context.waker(),
            };
            std::thread::Builder::new()
                .name(format!("drpc-fetch-{}", self.function))
                .spawn(move || thread.run())?;
            self.fetchers.push(Fetcher { failures });
        }
        Ok(())
    }

    fn next_tuple(&mut self, output: &mut SpoutOutput<'_>) {
        let Some(inbox) = &self.inbox else { return };
        let mut fetched = Vec::new();
        while fetched.len() < EMIT_BATCH {
            match inbox.try_recv() {
                Ok(incoming) => fetched.push(incoming),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        self.queued.fetch_sub(fetched.len(), Ordering::Relaxed);
        for Incoming { server, request } in fetched {
            let address = &self.servers.addresses[server];
            let return_info = match ReturnInfo::new(request.request, address) {
                Ok(info) => info.to_json(),
                Err(reason) => {
                    output.report_error(reason);
                    continue;
                }
            };
            let message = self.next_message;
            self.next_message += 1;
            let key = format!("{}-{message}", self.task);
            match self.shape {
                SpoutShape::Plain => output.emit_with_id(
                    &[
                        request.argument.as_str().into(),
                        return_info.as_str().into(),
                    ],
                    MessageId(message),
                ),
                SpoutShape::Linear => output.emit_on(
                    ARGS_STREAM,
                    &[key.as_str().into(), request.argument.as_str().into()],
                    Some(MessageId(message)),
                ),
            }
            self.pending.insert(
                message,
                Pending {
                    server,
                    request: request.request,
                    return_info,
                    key,
                    finishing: false,
                },
            );
        }
    }

    fn ack(&mut self, message: MessageId, output: &mut SpoutOutput<'_>) {
        let Some(mut pending) = self.pending.remove(&message.0) else {
            return;
        };
        if self.shape == SpoutShape::Linear && !pending.finishing {
            // Every tuple of the request reached the aggregator: tell it to answer.
            let finish = self.next_message;
            self.next_message += 1;
            output.emit_on(
                FINISH_STREAM,
                &[
                    pending.key.as_str().into(),
                    pending.return_info.as_str().into(),
                ],
                Some(MessageId(finish)),
            );
            pending.finishing = true;
            self.pending.insert(finish, pending);
        }
    }

    fn fail(&mut self, message: MessageId, _output: &mut SpoutOutput<'_>) {
        if let Some(pending) = self.pending.remove(&message.0) {
            self.fail_request(
                &pending,
                "the request's tuple tree failed or timed out in the topology",
            );
        }
    }

    fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for DrpcSpout {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The connection of one spout task to one server.
struct FetchThread {
    index: usize,
    server: String,
    key: DrpcKey,
    function: String,
    sender: Sender<Incoming>,
    queued: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<ToServer>>>,
    stop: Arc<AtomicBool>,
    waker: Option<ExecutorWaker>,
}

impl FetchThread {
    fn run(self) {
        let what = format!("DRPC spout of {}", self.function);
        crate::link::keep_connected(&self.server, &self.key, &self.stop, &what, |link| {
            self.serve(link)
        });
    }

    /// Fetches until stopped (`Ok`) or the connection fails.
    fn serve(&self, mut link: Link) -> Result<(), crate::link::LinkError> {
        link.set_receive_timeout(Duration::from_secs(10))?;
        while !self.stop.load(Ordering::Relaxed) {
            let failures =
                std::mem::take(&mut *self.failures.lock().unwrap_or_else(PoisonError::into_inner));
            for failure in &failures {
                link.send(failure)?;
            }
            let room = INBOX_CAPACITY.saturating_sub(self.queued.load(Ordering::Relaxed));
            if room == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            link.send(&ToServer::Fetch {
                function: self.function.clone(),
                max: room as u32,
            })?;
            match link.receive()? {
                ToPeer::Requests { requests, .. } => {
                    if requests.is_empty() {
                        continue;
                    }
                    self.queued.fetch_add(requests.len(), Ordering::Relaxed);
                    for request in requests {
                        let incoming = Incoming {
                            server: self.index,
                            request,
                        };
                        if self.sender.send(incoming).is_err() {
                            return Ok(());
                        }
                    }
                    if let Some(waker) = &self.waker {
                        waker.wake();
                    }
                }
                ToPeer::Refused { error, .. } => {
                    tracing::warn!(server = %self.server, %error, "DRPC server refused a fetch");
                    std::thread::sleep(Duration::from_millis(200));
                }
                ToPeer::Answer { .. } => {}
            }
        }
        Ok(())
    }
}
