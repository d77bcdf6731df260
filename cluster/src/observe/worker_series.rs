//! A worker's figures as Prometheus series, labelled with topology, component, task,
//! stream and host.

use squall_core::worker::WorkerHeartbeat;

use super::exposition::{Exposition, MetricKind};

/// Where the worker runs, for labels.
#[derive(Debug, Clone)]
pub struct WorkerLabels {
    /// The topology's name.
    pub topology: String,
    /// The topology's id.
    pub topology_id: String,
    /// The worker's host.
    pub host: String,
    /// The worker's slot port.
    pub port: u16,
}

/// Adds the series of `beat` to `page`.
pub fn write_worker(page: &mut Exposition, labels: &WorkerLabels, beat: &WorkerHeartbeat) {
    use MetricKind::{Counter, Gauge};
    let port = labels.port.to_string();
    let worker: [(&str, &str); 4] = [
        ("topology", &labels.topology),
        ("topology_id", &labels.topology_id),
        ("host", &labels.host),
        ("port", &port),
    ];
    let figures = &beat.figures;
    for task in &figures.tasks {
        let id = task.task.to_string();
        let executor = task.executor.to_string();
        let mut task_labels = worker.to_vec();
        task_labels.extend([
            ("component", task.component.as_str()),
            ("task", id.as_str()),
            ("executor", executor.as_str()),
        ]);
        for (name, help, value, kind) in [
            (
                "squall_task_emitted_total",
                "Tuples emitted by the task.",
                task.emitted,
                Counter,
            ),
            (
                "squall_task_transferred_total",
                "Records the task sent to target tasks.",
                task.transferred,
                Counter,
            ),
            (
                "squall_task_executed_total",
                "Tuples executed (bolts) or handed to ack/fail (spouts).",
                task.executed,
                Counter,
            ),
            (
                "squall_task_acked_total",
                "Tuples acked (bolts) or tuple trees completed (spouts).",
                task.acked,
                Counter,
            ),
            (
                "squall_task_failed_total",
                "Tuples failed (bolts) or tuple trees failed or timed out (spouts).",
                task.failed,
                Counter,
            ),
            (
                "squall_task_pending",
                "Tuple trees in flight (spouts).",
                task.pending,
                Gauge,
            ),
        ] {
            page.sample(name, kind, help, &task_labels, value as f64);
        }
        page.sample(
            "squall_task_backpressured_seconds_total",
            Counter,
            "Seconds the task was held back by backpressure: a spout not asked for tuples, a bolt not given input, because an output had no room.",
            &task_labels,
            task.backpressured_nanos as f64 / 1e9,
        );
        for stream in &task.streams {
            let mut stream_labels = task_labels.clone();
            stream_labels.push(("stream", stream.stream.as_str()));
            page.sample(
                "squall_stream_emitted_total",
                Counter,
                "Tuples the task emitted on the stream.",
                &stream_labels,
                stream.emitted as f64,
            );
            page.sample(
                "squall_stream_transferred_total",
                Counter,
                "Records the task sent to target tasks on the stream.",
                &stream_labels,
                stream.transferred as f64,
            );
            // Only spouts root trees; the series appear once a tree rooted on the stream
            // has ended, as counters commonly do.
            if stream.acked + stream.failed > 0 {
                page.sample(
                    "squall_stream_trees_acked_total",
                    Counter,
                    "Tuple trees rooted on the spout's stream that completed.",
                    &stream_labels,
                    stream.acked as f64,
                );
                page.sample(
                    "squall_stream_trees_failed_total",
                    Counter,
                    "Tuple trees rooted on the spout's stream that failed or timed out.",
                    &stream_labels,
                    stream.failed as f64,
                );
            }
        }
        for input in &task.inputs {
            let mut input_labels = task_labels.clone();
            input_labels.extend([
                ("source_component", input.component.as_str()),
                ("stream", input.stream.as_str()),
            ]);
            for (name, help, value) in [
                (
                    "squall_stream_executed_total",
                    "Tuples of the input stream the bolt task executed.",
                    input.executed,
                ),
                (
                    "squall_stream_acked_total",
                    "Tuples of the input stream the bolt task acked.",
                    input.acked,
                ),
                (
                    "squall_stream_failed_total",
                    "Tuples of the input stream the bolt task failed.",
                    input.failed,
                ),
            ] {
                page.sample(name, Counter, help, &input_labels, value as f64);
            }
        }
        if !task.execute_latency.0.is_empty() {
            page.latency(
                "squall_task_execute_latency_seconds",
                "Execute latency of the task (a sample of its executions).",
                &task_labels,
                &task.execute_latency.histogram(),
            );
        }
        if !task.complete_latency.0.is_empty() {
            page.latency(
                "squall_task_complete_latency_seconds",
                "Emit-to-ack latency of the task's tuple trees.",
                &task_labels,
                &task.complete_latency.histogram(),
            );
        }
    }
    for queue in &figures.queues {
        let from = queue.from_thread.to_string();
        let to = queue.to_thread.to_string();
        let mut queue_labels = worker.to_vec();
        queue_labels.extend([("from_thread", from.as_str()), ("to_thread", to.as_str())]);
        page.sample(
            "squall_queue_depth",
            Gauge,
            "Records waiting in the ring between two executor threads.",
            &queue_labels,
            queue.depth as f64,
        );
        page.sample(
            "squall_queue_records_total",
            Counter,
            "Records that went through the ring between two executor threads.",
            &queue_labels,
            queue.total as f64,
        );
    }
    let links = &figures.links;
    for (name, help, value) in [
        (
            "squall_link_frames_sent_total",
            "BATCH frames sent to peer workers.",
            links.frames_sent,
        ),
        (
            "squall_link_records_sent_total",
            "Records sent to peer workers.",
            links.records_sent,
        ),
        (
            "squall_link_bytes_sent_total",
            "Bytes of the BATCH frames sent to peer workers.",
            links.bytes_sent,
        ),
        (
            "squall_link_frames_received_total",
            "BATCH frames received from peer workers.",
            links.frames_received,
        ),
        (
            "squall_link_records_received_total",
            "Records received from peer workers.",
            links.records_received,
        ),
        (
            "squall_link_bytes_received_total",
            "Bytes of the BATCH frames received from peer workers.",
            links.bytes_received,
        ),
        (
            "squall_link_records_dropped_total",
            "Records dropped because no peer frame could hold them.",
            links.records_dropped,
        ),
        (
            "squall_link_credit_stalls_total",
            "Times a link had records to send and no credit left.",
            links.credit_stalls,
        ),
    ] {
        page.sample(name, Counter, help, &worker, value as f64);
    }
    page.sample(
        "squall_worker_task_errors_total",
        Counter,
        "Errors the worker's tasks reported.",
        &worker,
        beat.errors as f64,
    );
    page.sample(
        "squall_worker_uptime_seconds",
        Gauge,
        "Seconds since the worker's executors started.",
        &worker,
        figures.uptime_secs as f64,
    );
}
