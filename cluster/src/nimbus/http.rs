//! Nimbus's HTTP service: `/metrics`, the REST API (`/api/v1/...`), the service-discovery
//! list (`/sd/workers`) and the web page (`/`).
//!
//! A task reads the cluster's records from ZooKeeper every monitor interval into a
//! [`ClusterView`] (and the windows' history); requests are answered from the latest one,
//! so they never wait for ZooKeeper.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::config::NimbusSettings;
use crate::observe::exposition::{CONTENT_TYPE, Exposition, MetricKind};
use crate::observe::http::{HttpError, HttpReply, HttpRequest, HttpServer};
use crate::observe::view::{ClusterView, SupervisorView, TopologyView, WorkerView};
use crate::observe::windows::{History, counts_of};
use crate::observe::{HttpAccess, advertised, discovery, rest};
use crate::records::now_ms;
use crate::store::{self, StoreError};

/// What requests are answered from.
#[derive(Debug, Default)]
struct Latest {
    view: ClusterView,
    history: History,
}

/// Who may read the HTTP service, from `nimbus.http_key_file`.
///
/// # Errors
/// When the key file is unreadable, readable by others, or too short.
pub(crate) fn access(settings: &NimbusSettings) -> Result<HttpAccess, super::NimbusError> {
    Ok(match &settings.http_key_file {
        Some(path) => {
            HttpAccess::Key(crate::secret::Secret::read(path).map_err(super::NimbusError::HttpKey)?)
        }
        None => HttpAccess::Open,
    })
}

/// Starts the HTTP service on `nimbus.http_bind` and the task that keeps its view fresh;
/// `None` when it is off.
///
/// # Errors
/// When the address cannot be bound.
pub(crate) fn start(
    shared: &Arc<Shared>,
    access: HttpAccess,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<(HttpServer, tokio::task::JoinHandle<()>)>, super::NimbusError> {
    let settings = &shared.config.nimbus;
    if settings.http_bind.is_empty() {
        return Ok(None);
    }
    let latest = Arc::new(Mutex::new(Latest::default()));
    let endpoint = Arc::new(Mutex::new(String::new()));
    let handler = {
        let latest = Arc::clone(&latest);
        let endpoint = Arc::clone(&endpoint);
        let shared = Arc::clone(shared);
        Arc::new(move |request: &HttpRequest| {
            if let Some(refusal) = access.refuse(request) {
                return refusal;
            }
            let latest = latest.lock().unwrap_or_else(PoisonError::into_inner);
            let endpoint = endpoint
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            answer(request, &latest, &shared, &endpoint)
        })
    };
    let server = HttpServer::start(&settings.http_bind, "squall-nimbus-http", handler).map_err(
        |HttpError { address, reason }| super::NimbusError::Bind {
            address,
            source: std::io::Error::other(reason),
        },
    )?;
    *endpoint.lock().unwrap_or_else(PoisonError::into_inner) =
        advertised(server.local_addr(), &settings.host);
    tracing::info!(http = %server.local_addr(), "nimbus serving /metrics and /api/v1");
    let refresh = tokio::spawn(refresh(Arc::clone(shared), latest, shutdown));
    Ok(Some((server, refresh)))
}

async fn refresh(
    shared: Arc<Shared>,
    latest: Arc<Mutex<Latest>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(shared.config.nimbus.monitor_interval_ms.max(100));
    loop {
        match read_view(&shared).await {
            Ok(view) => {
                let mut latest = latest.lock().unwrap_or_else(PoisonError::into_inner);
                latest.history.record(view.taken_ms, counts_of(&view));
                latest.view = view;
            }
            Err(error) => tracing::debug!("cannot read the cluster for the HTTP view: {error}"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = crate::shutdown::requested(&mut shutdown) => return,
        }
    }
}

/// The cluster as the REST API shows it, read from ZooKeeper.
async fn read_view(shared: &Shared) -> Result<ClusterView, StoreError> {
    let zk = &shared.store;
    let nimbuses = store::read_nimbuses(zk).await?;
    let supervisors = store::read_supervisors(zk).await?;
    let topologies = store::read_topologies(zk).await?;
    let assignments = store::read_assignments(zk).await?;
    let mut views = Vec::new();
    let mut used: std::collections::BTreeMap<String, usize> = Default::default();
    for (id, record) in topologies {
        let beats = store::read_workerbeats(zk, &id).await?;
        let control_errors = store::read_errors(zk, &id).await?;
        let workers: Vec<WorkerView> = assignments
            .get(&id)
            .map(|assignment| {
                assignment
                    .workers
                    .iter()
                    .map(|worker| {
                        *used.entry(worker.supervisor.clone()).or_default() += 1;
                        let beat = beats.get(&worker.slot().to_string());
                        WorkerView {
                            supervisor: worker.supervisor.clone(),
                            host: worker.host.clone(),
                            port: worker.port,
                            executors: worker.executors.clone(),
                            heartbeat: beat.map(|beat| beat.heartbeat.clone()),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let executors = assignments
            .get(&id)
            .map_or(record.description.executor_components.len(), |a| {
                a.executors
            });
        views.push(TopologyView {
            id,
            name: record.name,
            status: record.status.name().to_owned(),
            submitted_ms: record.submitted_ms,
            workers_requested: record.workers,
            components: record.description.components,
            executors,
            workers,
            control_errors,
        });
    }
    Ok(ClusterView {
        taken_ms: now_ms(),
        nimbuses,
        supervisors: supervisors
            .into_values()
            .map(|info| SupervisorView {
                used: used.get(&info.id).copied().unwrap_or(0),
                info,
            })
            .collect(),
        topologies: views,
    })
}

fn answer(request: &HttpRequest, latest: &Latest, shared: &Shared, endpoint: &str) -> HttpReply {
    match request.path.as_str() {
        "/metrics" => HttpReply::ok(CONTENT_TYPE, metrics(&latest.view, shared)),
        "/sd/workers" => HttpReply::json(
            200,
            &discovery::targets(
                &latest.view,
                &[(shared.info.id.clone(), endpoint.to_owned())],
            ),
        ),
        "/" | "/index.html" => crate::observe::page(),
        path if path.starts_with("/api/v1/") => {
            rest::answer(request, &latest.view, &latest.history)
        }
        path => HttpReply::error(404, &format!("no such resource: {path}")),
    }
}

/// Nimbus's own series: whether it leads, and what it sees of the cluster.
fn metrics(view: &ClusterView, shared: &Shared) -> String {
    use MetricKind::Gauge;
    let mut page = Exposition::new();
    let labels = [
        ("nimbus", shared.info.id.as_str()),
        ("host", shared.info.host.as_str()),
    ];
    let leading = *shared.leading.borrow();
    let slots: usize = view.supervisors.iter().map(|s| s.info.ports.len()).sum();
    let used: usize = view.supervisors.iter().map(|s| s.used).sum();
    let reporting = view
        .topologies
        .iter()
        .flat_map(|topology| &topology.workers)
        .filter(|worker| worker.heartbeat.is_some())
        .count();
    for (name, help, value) in [
        (
            "squall_nimbus_leader",
            "1 when this nimbus leads the cluster.",
            u64::from(leading),
        ),
        (
            "squall_nimbus_uptime_seconds",
            "Seconds since this nimbus started.",
            now_ms().saturating_sub(shared.info.started_ms) / 1000,
        ),
        (
            "squall_cluster_nimbuses",
            "Nimbuses taking part in the election.",
            view.nimbuses.len() as u64,
        ),
        (
            "squall_cluster_supervisors",
            "Registered supervisors.",
            view.supervisors.len() as u64,
        ),
        (
            "squall_cluster_topologies",
            "Submitted topologies.",
            view.topologies.len() as u64,
        ),
        (
            "squall_cluster_slots",
            "Worker slots of the registered supervisors.",
            slots as u64,
        ),
        (
            "squall_cluster_slots_used",
            "Worker slots assigned to topologies.",
            used as u64,
        ),
        (
            "squall_cluster_workers_reporting",
            "Assigned workers with a relayed heartbeat.",
            reporting as u64,
        ),
    ] {
        page.sample(name, Gauge, help, &labels, value as f64);
    }
    page.finish()
}
