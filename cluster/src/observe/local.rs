//! `/metrics` and the REST API for a topology running in this process (`squall local
//! --http`): the same pages as a cluster's, for a cluster of one worker.

use std::sync::{Arc, Mutex, PoisonError};

use squall_core::runtime::RunningTopology;
use squall_core::worker::figures::{LinkFigures, WorkerFigures};
use squall_core::worker::{TopologyDescription, WorkerHeartbeat};

use super::exposition::{CONTENT_TYPE, Exposition};
use super::http::{HttpError, HttpReply, HttpRequest, HttpServer};
use super::rest;
use super::view::{ClusterView, TopologyView, WorkerView};
use super::windows::{History, counts_of};
use super::worker_series::{WorkerLabels, write_worker};
use crate::records::now_ms;

/// The host and supervisor name the local run's single worker is shown with.
const LOCAL: &str = "local";

#[derive(Debug, Default)]
struct Latest {
    view: ClusterView,
    history: History,
}

/// The HTTP service of a local run; dropping it stops it.
#[derive(Debug)]
pub struct LocalWatch {
    server: HttpServer,
    latest: Arc<Mutex<Latest>>,
    started_ms: u64,
}

impl LocalWatch {
    /// Serves on `bind`, which must be a loopback `ip:port` (the service has no key).
    ///
    /// # Errors
    /// When `bind` is not a loopback address or cannot be bound.
    pub fn start(bind: &str) -> Result<Self, HttpError> {
        let refuse = |reason: &str| HttpError {
            address: bind.to_owned(),
            reason: reason.to_owned(),
        };
        let address: std::net::SocketAddr =
            bind.parse().map_err(|_| refuse("not an ip:port address"))?;
        if !address.ip().is_loopback() {
            return Err(refuse(
                "a local run serves without a key, so only on a loopback address",
            ));
        }
        let latest = Arc::new(Mutex::new(Latest::default()));
        let handler = {
            let latest = Arc::clone(&latest);
            Arc::new(move |request: &HttpRequest| {
                let latest = latest.lock().unwrap_or_else(PoisonError::into_inner);
                answer(request, &latest)
            })
        };
        let server = HttpServer::start(bind, "squall-local-http", handler)?;
        Ok(Self {
            server,
            latest,
            started_ms: now_ms(),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// Takes the figures of `running` as they are now.
    pub fn update(&self, running: &RunningTopology) {
        let topology = running.topology();
        let metrics = running.metrics();
        let figures = WorkerFigures::new(&metrics, LinkFigures::default(), &running.errors());
        let executors: Vec<usize> = (0..topology.executors().len()).collect();
        let heartbeat = WorkerHeartbeat {
            pid: std::process::id(),
            time_ms: now_ms(),
            topology_id: topology.name().to_owned(),
            version: 0,
            executors: executors.clone(),
            executed: figures.tasks.iter().map(|task| task.executed).sum(),
            emitted: figures.tasks.iter().map(|task| task.emitted).sum(),
            errors: running.error_count(),
            metrics_endpoint: Some(self.local_addr().to_string()),
            figures,
        };
        let view = ClusterView {
            taken_ms: heartbeat.time_ms,
            nimbuses: Vec::new(),
            supervisors: Vec::new(),
            topologies: vec![TopologyView {
                id: topology.name().to_owned(),
                name: topology.name().to_owned(),
                status: format!("{:?}", running.state()).to_lowercase(),
                submitted_ms: self.started_ms,
                workers_requested: 1,
                components: TopologyDescription::of(topology).components,
                executors: executors.len(),
                workers: vec![WorkerView {
                    supervisor: LOCAL.to_owned(),
                    host: LOCAL.to_owned(),
                    port: self.local_addr().port(),
                    executors,
                    heartbeat: Some(heartbeat),
                }],
                control_errors: Vec::new(),
            }],
        };
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        latest.history.record(view.taken_ms, counts_of(&view));
        latest.view = view;
    }
}

fn answer(request: &HttpRequest, latest: &Latest) -> HttpReply {
    if request.path == "/metrics" {
        let mut page = Exposition::new();
        for topology in &latest.view.topologies {
            for worker in &topology.workers {
                if let Some(beat) = &worker.heartbeat {
                    let labels = WorkerLabels {
                        topology: topology.name.clone(),
                        topology_id: topology.id.clone(),
                        host: worker.host.clone(),
                        port: worker.port,
                    };
                    write_worker(&mut page, &labels, beat);
                }
            }
        }
        return HttpReply::ok(CONTENT_TYPE, page.finish());
    }
    if request.path.starts_with("/api/v1/") {
        return rest::answer(request, &latest.view, &latest.history);
    }
    if request.path == "/" || request.path == "/index.html" {
        return super::page();
    }
    HttpReply::error(404, &format!("no such resource: {}", request.path))
}
