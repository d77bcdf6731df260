//! The supervisor's HTTP service: its own `/metrics` (its slots and the workers that report
//! to it; each worker serves its own figures) and its workers' logs under `/logs/`
//! ([`super::logs`]).

use super::Beats;
use crate::observe::exposition::{CONTENT_TYPE, Exposition, MetricKind};
use crate::observe::http::{Handler, HttpReply};
use crate::records::now_ms;

/// Who may read the workers' logs, and where they are.
#[derive(Debug, Clone)]
pub(super) struct LogAccess {
    /// The supervisor's worker directories.
    pub(super) workers_dir: std::path::PathBuf,
    /// `None` when logs are not served: the service listens beyond loopback without a key.
    pub(super) access: Option<crate::observe::HttpAccess>,
}

/// The handler of the supervisor's HTTP service.
pub(super) fn handler(
    id: String,
    host: String,
    slots: usize,
    started_ms: u64,
    beats: Beats,
    logs: LogAccess,
) -> Handler {
    std::sync::Arc::new(move |request| {
        if request.path == "/logs" || request.path.starts_with("/logs/") {
            return match &logs.access {
                None => HttpReply::error(
                    403,
                    "worker logs are served on a loopback address, or with nimbus.http_key_file \
                     set (then with \"Authorization: Bearer <key>\")",
                ),
                Some(access) => access
                    .refuse(request)
                    .unwrap_or_else(|| super::logs::answer(&logs.workers_dir, request)),
            };
        }
        if request.path != "/metrics" {
            return HttpReply::error(404, &format!("no such resource: {}", request.path));
        }
        let reporting = beats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        let mut page = Exposition::new();
        let labels = [("supervisor", id.as_str()), ("host", host.as_str())];
        for (name, help, value) in [
            (
                "squall_supervisor_slots",
                "Worker slots of this supervisor.",
                slots as u64,
            ),
            (
                "squall_supervisor_workers_reporting",
                "Workers of this supervisor with a fresh heartbeat.",
                reporting as u64,
            ),
            (
                "squall_supervisor_uptime_seconds",
                "Seconds since this supervisor started.",
                now_ms().saturating_sub(started_ms) / 1000,
            ),
        ] {
            page.sample(name, MetricKind::Gauge, help, &labels, value as f64);
        }
        HttpReply::ok(CONTENT_TYPE, page.finish())
    })
}
