//! The read-only REST API, modelled on Storm UI's (`/api/v1/...`): pure functions from a
//! [`ClusterView`] and its [`History`] to JSON.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::http::{HttpReply, HttpRequest};
use super::view::{ClusterView, TopologyView, Totals, WorkerView};
use super::windows::{Counts, History, WINDOWS, parse_window, window_name};

/// Answers `request` (a path under `/api/v1/`) from `view`.
pub fn answer(request: &HttpRequest, view: &ClusterView, history: &History) -> HttpReply {
    let window = match request.query_param("window").map(parse_window) {
        None => None,
        Some(Ok(window)) => window,
        Some(Err(message)) => return HttpReply::error(400, &message),
    };
    let parts: Vec<&str> = request
        .path
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|part| !part.is_empty())
        .collect();
    let found = match parts.as_slice() {
        ["cluster", "summary"] => Some(cluster_summary(view)),
        ["nimbus", "summary"] => Some(nimbus_summary(view)),
        ["supervisor", "summary"] => Some(supervisor_summary(view)),
        ["topology", "summary"] => Some(topology_summary(view)),
        ["topology", id] => view
            .topology(id)
            .map(|topology| topology_page(topology, view, history, window)),
        ["topology", id, "component", component] => view.topology(id).and_then(|topology| {
            component_page(topology, component, view.taken_ms, history, window)
        }),
        _ => return HttpReply::error(404, &format!("no such resource: {}", request.path)),
    };
    match found {
        Some(value) => HttpReply::json(200, &value),
        None => HttpReply::error(404, &format!("not found: {}", request.path)),
    }
}

fn uptime(now_ms: u64, since_ms: u64) -> u64 {
    now_ms.saturating_sub(since_ms) / 1000
}

fn latency(histogram: &Histogram<u64>) -> Value {
    let ms = |nanos: u64| nanos as f64 / 1e6;
    if histogram.is_empty() {
        return json!({ "samples": 0 });
    }
    json!({
        "samples": histogram.len(),
        "meanMs": histogram.mean() / 1e6,
        "p50Ms": ms(histogram.value_at_quantile(0.5)),
        "p90Ms": ms(histogram.value_at_quantile(0.9)),
        "p99Ms": ms(histogram.value_at_quantile(0.99)),
        "p999Ms": ms(histogram.value_at_quantile(0.999)),
        "maxMs": ms(histogram.max()),
    })
}

fn cluster_summary(view: &ClusterView) -> Value {
    let slots: usize = view
        .supervisors
        .iter()
        .map(|supervisor| supervisor.info.ports.len())
        .sum();
    let used: usize = view
        .supervisors
        .iter()
        .map(|supervisor| supervisor.used)
        .sum();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "nimbuses": view.nimbuses.len(),
        "supervisors": view.supervisors.len(),
        "topologies": view.topologies.len(),
        "slotsTotal": slots,
        "slotsUsed": used,
        "slotsFree": slots.saturating_sub(used),
        "executorsTotal": view.topologies.iter().map(|t| t.executors).sum::<usize>(),
        "tasksTotal": view.topologies.iter().map(TopologyView::task_count).sum::<usize>(),
    })
}

fn nimbus_summary(view: &ClusterView) -> Value {
    let nimbuses: Vec<Value> = view
        .nimbuses
        .iter()
        .enumerate()
        .map(|(index, nimbus)| {
            json!({
                "id": nimbus.id,
                "host": nimbus.host,
                "port": nimbus.port,
                "status": if index == 0 { "Leader" } else { "Not a Leader" },
                "version": nimbus.version,
                "nimbusUpTimeSeconds": uptime(view.taken_ms, nimbus.started_ms),
            })
        })
        .collect();
    json!({ "nimbuses": nimbuses })
}

fn supervisor_summary(view: &ClusterView) -> Value {
    let supervisors: Vec<Value> = view
        .supervisors
        .iter()
        .map(|supervisor| {
            json!({
                "id": supervisor.info.id,
                "host": supervisor.info.host,
                "uptimeSeconds": uptime(view.taken_ms, supervisor.info.started_ms),
                "slotsTotal": supervisor.info.ports.len(),
                "slotsUsed": supervisor.used,
                "version": supervisor.info.version,
            })
        })
        .collect();
    json!({ "supervisors": supervisors })
}

fn topology_summary(view: &ClusterView) -> Value {
    let topologies: Vec<Value> = view
        .topologies
        .iter()
        .map(|topology| {
            let totals = Totals::of(topology.tasks().into_iter().map(|task| task.figures));
            json!({
                "id": topology.id,
                "name": topology.name,
                "status": topology.status,
                "uptimeSeconds": uptime(view.taken_ms, topology.submitted_ms),
                "workersTotal": topology.workers.len(),
                "executorsTotal": topology.executors,
                "tasksTotal": topology.task_count(),
                "emitted": totals.emitted,
                "transferred": totals.transferred,
                "executed": totals.executed,
                "acked": totals.acked,
                "failed": totals.failed,
                "taskErrors": topology.task_errors().len(),
            })
        })
        .collect();
    json!({ "topologies": topologies })
}

fn counts_json(counts: Counts, covered_secs: Option<f64>, tasks: usize) -> Value {
    let mut value = json!({
        "emitted": counts.emitted,
        "transferred": counts.transferred,
        "executed": counts.executed,
        "acked": counts.acked,
        "failed": counts.failed,
        "backpressuredMs": counts.backpressured_nanos as f64 / 1e6,
    });
    if let Some(secs) = covered_secs.filter(|secs| *secs > 0.0) {
        value["coveredSeconds"] = json!(secs);
        value["executedPerSecond"] = json!(counts.executed as f64 / secs);
        value["emittedPerSecond"] = json!(counts.emitted as f64 / secs);
        value["backpressuredFraction"] = json!(backpressured_fraction(
            counts.backpressured_nanos,
            secs,
            tasks
        ));
    }
    value
}

/// The share of `tasks`' time over `secs` that they spent held back, from 0 to 1.
fn backpressured_fraction(nanos: u64, secs: f64, tasks: usize) -> f64 {
    if secs <= 0.0 || tasks == 0 {
        return 0.0;
    }
    (nanos as f64 / (secs * 1e9 * tasks as f64)).min(1.0)
}

/// The counts over `window` of the tasks of `topology` that `keep` selects.
fn windowed(
    topology: &TopologyView,
    now_ms: u64,
    history: &History,
    window: Option<u64>,
    keep: impl Fn(&str) -> bool,
) -> Counts {
    topology
        .tasks()
        .into_iter()
        .filter(|task| keep(&task.figures.component))
        .map(|task| {
            let figures = task.figures;
            history.over(window, now_ms, &topology.id, figures.task, figures.into())
        })
        .fold(Counts::default(), Counts::plus)
}

/// How many tasks of `topology` that `keep` selects have reported figures.
fn reporting_tasks(topology: &TopologyView, keep: impl Fn(&str) -> bool) -> usize {
    topology
        .tasks()
        .iter()
        .filter(|task| keep(&task.figures.component))
        .count()
}

fn stats_by_window(
    topology: &TopologyView,
    now_ms: u64,
    history: &History,
    keep: impl Fn(&str) -> bool,
) -> Vec<Value> {
    WINDOWS
        .into_iter()
        .map(|window| {
            let counts = windowed(topology, now_ms, history, window, &keep);
            let covered = history.start_of(window, now_ms).1;
            let tasks = reporting_tasks(topology, &keep);
            let mut value = counts_json(counts, window.map(|_| covered), tasks);
            value["window"] = json!(window_name(window));
            value
        })
        .collect()
}

/// Where the worker's supervisor serves its log, when that supervisor serves HTTP.
fn log_url(view: &ClusterView, topology: &TopologyView, worker: &WorkerView) -> Option<String> {
    let supervisor = view
        .supervisors
        .iter()
        .find(|supervisor| supervisor.info.id == worker.supervisor)?;
    let endpoint = supervisor.info.metrics_endpoint.as_deref()?;
    Some(format!(
        "http://{endpoint}/logs/{}-{}/worker.log",
        topology.id, worker.port
    ))
}

fn worker_json(worker: &WorkerView, now_ms: u64) -> Value {
    let beat = worker.heartbeat.as_ref();
    json!({
        "supervisorId": worker.supervisor,
        "host": worker.host,
        "port": worker.port,
        "executors": worker.executors,
        "heartbeatAgeSeconds": beat.map(|beat| now_ms.saturating_sub(beat.time_ms) as f64 / 1000.0),
        "uptimeSeconds": beat.map(|beat| beat.figures.uptime_secs),
        "metricsEndpoint": beat.and_then(|beat| beat.metrics_endpoint.clone()),
        "links": beat.map(|beat| serde_json::to_value(&beat.figures.links).unwrap_or_default()),
        "queues": beat.map(|beat| serde_json::to_value(&beat.figures.queues).unwrap_or_default()),
    })
}

fn errors_json(topology: &TopologyView, now_ms: u64, component: Option<&str>) -> Vec<Value> {
    topology
        .task_errors()
        .into_iter()
        .filter(|(_, error)| component.is_none_or(|component| error.component == component))
        .map(|(worker, error)| {
            json!({
                "component": error.component,
                "task": error.task,
                "host": worker.host,
                "port": worker.port,
                "error": error.message,
                "errorTime": error.time_ms,
                "errorLapsedSecs": now_ms.saturating_sub(error.time_ms) / 1000,
            })
        })
        .collect()
}

fn topology_page(
    topology: &TopologyView,
    view: &ClusterView,
    history: &History,
    window: Option<u64>,
) -> Value {
    let now_ms = view.taken_ms;
    let totals = topology.component_totals();
    let components: Vec<Value> = topology
        .components
        .iter()
        .map(|component| {
            let all = totals.get(&component.id).cloned().unwrap_or_default();
            let counts = windowed(topology, now_ms, history, window, |id| id == component.id);
            json!({
                "id": component.id,
                "type": component.kind,
                "executors": component.parallelism,
                "tasks": component.tasks,
                "window": window_name(window),
                "stats": counts_json(counts, None, 0),
                "rates": rates_json(topology, now_ms, history, &component.id),
                "queued": queued_input(topology, &component.id),
                "executeLatency": latency(&all.execute_latency),
                "completeLatency": latency(&all.complete_latency),
                "lastError": errors_json(topology, now_ms, Some(&component.id)).pop(),
            })
        })
        .collect();
    let spouts: Vec<&Value> = components.iter().filter(|c| c["type"] == "spout").collect();
    let edges = edges(topology, now_ms, history);
    let bolts: Vec<&Value> = components.iter().filter(|c| c["type"] != "spout").collect();
    let control_errors: Vec<Value> = topology
        .control_errors
        .iter()
        .map(|error| {
            json!({ "source": error.source, "error": error.message, "errorTime": error.time_ms })
        })
        .collect();
    json!({
        "id": topology.id,
        "name": topology.name,
        "status": topology.status,
        "uptimeSeconds": uptime(now_ms, topology.submitted_ms),
        "workersTotal": topology.workers.len(),
        "workersRequested": topology.workers_requested,
        "executorsTotal": topology.executors,
        "tasksTotal": topology.task_count(),
        "windows": WINDOWS.into_iter().map(window_name).collect::<Vec<_>>(),
        "window": window_name(window),
        "topologyStats": stats_by_window(topology, now_ms, history, |_| true),
        "takenMs": now_ms,
        "spouts": spouts,
        "bolts": bolts,
        "edges": edges,
        "workers": topology.workers.iter().map(|worker| {
            let mut json = worker_json(worker, now_ms);
            json["logUrl"] = json!(log_url(view, topology, worker));
            json
        }).collect::<Vec<_>>(),
        "taskErrors": errors_json(topology, now_ms, None),
        "controlErrors": control_errors,
    })
}

/// The window per-second rates are given over.
const RATE_WINDOW_SECS: u64 = 60;

/// Emitted and executed per second, and the share of the time held back by backpressure,
/// over the last [`RATE_WINDOW_SECS`] (the part of it the samples cover); zeros until two
/// samples exist.
fn rates_json(topology: &TopologyView, now_ms: u64, history: &History, component: &str) -> Value {
    let window = Some(RATE_WINDOW_SECS);
    let counts = windowed(topology, now_ms, history, window, |id| id == component);
    let covered = history.start_of(window, now_ms).1;
    let tasks = reporting_tasks(topology, |id| id == component);
    let per_sec = |count: u64| {
        if covered > 0.0 {
            count as f64 / covered
        } else {
            0.0
        }
    };
    json!({
        "windowSeconds": RATE_WINDOW_SECS,
        "coveredSeconds": covered,
        "emittedPerSec": per_sec(counts.emitted),
        "executedPerSec": per_sec(counts.executed),
        "backpressuredFraction": backpressured_fraction(counts.backpressured_nanos, covered, tasks),
    })
}

/// Records waiting in the rings into the executor threads that run `component`'s tasks:
/// how far its input is backed up.
fn queued_input(topology: &TopologyView, component: &str) -> u64 {
    topology
        .workers
        .iter()
        .filter_map(|worker| worker.heartbeat.as_ref())
        .map(|beat| {
            let threads: std::collections::BTreeSet<usize> = beat
                .figures
                .tasks
                .iter()
                .filter(|task| task.component == component)
                .map(|task| task.thread)
                .collect();
            beat.figures
                .queues
                .iter()
                .filter(|queue| threads.contains(&queue.to_thread))
                .map(|queue| queue.depth)
                .sum::<u64>()
        })
        .sum()
}

/// One input of a component as its description gives it: `source/stream (grouping)`.
fn parse_input(input: &str) -> Option<(&str, &str, &str)> {
    let (source_stream, grouping) = input.rsplit_once(" (")?;
    let grouping = grouping.strip_suffix(')')?;
    let (source, stream) = source_stream.split_once('/')?;
    Some((source, stream, grouping))
}

/// The topology's edges (every component input), each with what its source emitted on the
/// stream so far and per second over the last [`RATE_WINDOW_SECS`] (zero until two samples
/// exist), so that a graph shows rates from its first reading.
fn edges(topology: &TopologyView, now_ms: u64, history: &History) -> Vec<Value> {
    let window = Some(RATE_WINDOW_SECS);
    let covered = history.start_of(window, now_ms).1;
    let mut emitted: std::collections::BTreeMap<(&str, &str), (u64, u64)> = Default::default();
    for task in topology.tasks() {
        for stream in &task.figures.streams {
            let recent = history.stream_emitted_over(
                window,
                now_ms,
                (&topology.id, task.figures.task, &stream.stream),
                stream.emitted,
            );
            let entry = emitted
                .entry((task.figures.component.as_str(), stream.stream.as_str()))
                .or_default();
            entry.0 += stream.emitted;
            entry.1 += recent;
        }
    }
    topology
        .components
        .iter()
        .flat_map(|component| {
            let emitted = &emitted;
            component.inputs.iter().filter_map(move |input| {
                let (source, stream, grouping) = parse_input(input)?;
                let (all, recent) = emitted.get(&(source, stream)).copied().unwrap_or_default();
                Some(json!({
                    "from": source,
                    "to": component.id,
                    "stream": stream,
                    "grouping": grouping,
                    "emitted": all,
                    "emittedPerSec": if covered > 0.0 { recent as f64 / covered } else { 0.0 },
                }))
            })
        })
        .collect()
}

fn component_page(
    topology: &TopologyView,
    component_id: &str,
    now_ms: u64,
    history: &History,
    window: Option<u64>,
) -> Option<Value> {
    let component = topology
        .components
        .iter()
        .find(|component| component.id == component_id)?;
    let tasks: Vec<_> = topology
        .tasks()
        .into_iter()
        .filter(|task| task.figures.component == component_id)
        .collect();
    let totals = Totals::of(tasks.iter().map(|task| task.figures));
    let mut streams: std::collections::BTreeMap<&str, [u64; 4]> = Default::default();
    for task in &tasks {
        for stream in &task.figures.streams {
            let entry = streams.entry(stream.stream.as_str()).or_default();
            entry[0] += stream.emitted;
            entry[1] += stream.transferred;
            entry[2] += stream.acked;
            entry[3] += stream.failed;
        }
    }
    let mut inputs: std::collections::BTreeMap<(&str, &str), (u64, u64, u64)> = Default::default();
    for task in &tasks {
        for input in &task.figures.inputs {
            let entry = inputs
                .entry((input.component.as_str(), input.stream.as_str()))
                .or_default();
            entry.0 += input.executed;
            entry.1 += input.acked;
            entry.2 += input.failed;
        }
    }
    let rate_window = Some(RATE_WINDOW_SECS);
    let rate_covered = history.start_of(rate_window, now_ms).1;
    let task_rows: Vec<Value> = tasks
        .iter()
        .map(|task| {
            let figures = task.figures;
            let recent = history.over(
                rate_window,
                now_ms,
                &topology.id,
                figures.task,
                figures.into(),
            );
            json!({
                "task": figures.task,
                "executor": figures.executor,
                "thread": figures.thread,
                "core": figures.core,
                "worker": format!("{}:{}", task.worker.supervisor, task.worker.port),
                "host": task.worker.host,
                "port": task.worker.port,
                "emitted": figures.emitted,
                "transferred": figures.transferred,
                "executed": figures.executed,
                "acked": figures.acked,
                "failed": figures.failed,
                "pending": figures.pending,
                "backpressuredMs": figures.backpressured_nanos as f64 / 1e6,
                "backpressuredFraction": backpressured_fraction(recent.backpressured_nanos, rate_covered, 1),
                "executeLatency": latency(&figures.execute_latency.histogram()),
                "completeLatency": latency(&figures.complete_latency.histogram()),
            })
        })
        .collect();
    Some(json!({
        "id": component.id,
        "topologyId": topology.id,
        "type": component.kind,
        "executors": component.parallelism,
        "tasks": component.tasks,
        "windows": WINDOWS.into_iter().map(window_name).collect::<Vec<_>>(),
        "componentStats": stats_by_window(topology, now_ms, history, |id| id == component_id),
        "executeLatency": latency(&totals.execute_latency),
        "completeLatency": latency(&totals.complete_latency),
        "outputStats": streams.into_iter().map(|(stream, [emitted, transferred, acked, failed])| json!({
            "stream": stream, "emitted": emitted, "transferred": transferred,
            "acked": acked, "failed": failed,
        })).collect::<Vec<_>>(),
        "inputStats": inputs.into_iter().map(|((source, stream), (executed, acked, failed))| json!({
            "component": source, "stream": stream,
            "executed": executed, "acked": acked, "failed": failed,
        })).collect::<Vec<_>>(),
        "taskStats": task_rows,
        "window": window_name(window),
        "componentErrors": errors_json(topology, now_ms, Some(component_id)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_parse_into_source_stream_and_grouping() {
        assert_eq!(
            parse_input("words/default (fields)"),
            Some(("words", "default", "fields"))
        );
        assert_eq!(
            parse_input("requests/finish (fields)"),
            Some(("requests", "finish", "fields"))
        );
        assert_eq!(parse_input("no grouping"), None);
        assert_eq!(parse_input("nostream (shuffle)"), None);
    }

    use crate::observe::view::WorkerView;
    use crate::observe::windows::counts_of;
    use squall_core::worker::figures::{InputFigures, StreamFigures, TaskFigures, WorkerFigures};
    use squall_core::worker::{ComponentDescription, WorkerHeartbeat};

    /// A spout (task 1) feeding a bolt (task 2), as one worker reports them `at_ms`.
    fn view_at(at_ms: u64, emitted: u64, backpressured_nanos: u64) -> ClusterView {
        let component = |id: &str, kind: &str, inputs: Vec<String>| ComponentDescription {
            id: id.into(),
            kind: kind.into(),
            parallelism: 1,
            tasks: 1,
            inputs,
        };
        let tasks = vec![
            TaskFigures {
                task: 1,
                component: "src".into(),
                emitted,
                backpressured_nanos,
                streams: vec![StreamFigures {
                    stream: "default".into(),
                    emitted,
                    transferred: emitted,
                    acked: emitted - 1,
                    failed: 1,
                }],
                ..TaskFigures::default()
            },
            TaskFigures {
                task: 2,
                component: "sink".into(),
                executed: emitted,
                acked: emitted,
                inputs: vec![InputFigures {
                    component: "src".into(),
                    stream: "default".into(),
                    executed: emitted,
                    acked: emitted,
                    failed: 0,
                }],
                ..TaskFigures::default()
            },
        ];
        ClusterView {
            taken_ms: at_ms,
            topologies: vec![TopologyView {
                id: "t-1".into(),
                name: "t".into(),
                status: "active".into(),
                submitted_ms: 0,
                workers_requested: 1,
                components: vec![
                    component("src", "spout", Vec::new()),
                    component("sink", "bolt", vec!["src/default (shuffle)".into()]),
                ],
                executors: 2,
                workers: vec![WorkerView {
                    supervisor: "host0".into(),
                    host: "127.0.0.1".into(),
                    port: 6700,
                    executors: vec![0, 1],
                    heartbeat: Some(WorkerHeartbeat {
                        pid: 1,
                        time_ms: at_ms,
                        topology_id: "t-1".into(),
                        version: 1,
                        executors: vec![0, 1],
                        executed: emitted,
                        emitted,
                        errors: 0,
                        metrics_endpoint: None,
                        figures: WorkerFigures {
                            tasks,
                            ..WorkerFigures::default()
                        },
                    }),
                }],
                control_errors: Vec::new(),
            }],
            ..ClusterView::default()
        }
    }

    fn get(path: &str, view: &ClusterView, history: &History) -> Value {
        let request = HttpRequest {
            path: path.into(),
            query: String::new(),
            authorization: None,
        };
        let reply = answer(&request, view, history);
        assert_eq!(reply.status, 200);
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn rates_backpressure_and_input_streams_come_from_the_samples() {
        let mut history = History::default();
        let first = view_at(1_000_000, 1_000, 0);
        history.record(first.taken_ms, counts_of(&first));
        // Ten seconds later: 5 000 more tuples, the spout held back 2.5 s of them.
        let now = view_at(1_010_000, 6_000, 2_500_000_000);
        history.record(now.taken_ms, counts_of(&now));
        let page = get("/api/v1/topology/t", &now, &history);
        let spout = &page["spouts"][0];
        assert_eq!(spout["rates"]["backpressuredFraction"], 0.25, "{spout:#}");
        assert_eq!(spout["stats"]["backpressuredMs"], 2_500.0);
        assert_eq!(page["edges"][0]["emittedPerSec"], 500.0, "{page:#}");
        let sink = get("/api/v1/topology/t/component/sink", &now, &history);
        assert_eq!(
            sink["inputStats"],
            serde_json::json!([{"component": "src", "stream": "default",
                                "executed": 6_000, "acked": 6_000, "failed": 0}])
        );
        let src = get("/api/v1/topology/t/component/src", &now, &history);
        assert_eq!(src["taskStats"][0]["backpressuredFraction"], 0.25);
        assert_eq!(
            src["outputStats"],
            serde_json::json!([{"stream": "default", "emitted": 6_000, "transferred": 6_000,
                                "acked": 5_999, "failed": 1}])
        );
    }

    #[test]
    fn the_backpressured_share_is_over_every_task_and_at_most_one() {
        assert_eq!(backpressured_fraction(30_000_000_000, 60.0, 2), 0.25);
        assert_eq!(backpressured_fraction(90_000_000_000, 60.0, 1), 1.0);
        assert_eq!(backpressured_fraction(5, 0.0, 1), 0.0);
        assert_eq!(backpressured_fraction(5, 60.0, 0), 0.0);
    }
}
