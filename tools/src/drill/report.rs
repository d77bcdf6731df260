//! The drill's report: each fault's recovery time against its bound, what the ledger says
//! (acknowledged, lost, duplicated), and whether the drill passed.

use std::time::Duration;

use serde::Serialize;

use crate::drill::ledger::LedgerSummary;

/// How one fault (or step) went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultResult {
    /// Short name: `worker-kill`, `host-loss`, ...
    pub fault: String,
    /// What was done.
    pub action: String,
    /// How long recovery may take.
    #[serde(serialize_with = "millis")]
    pub bound: Duration,
    /// How long it took (`None`: not within the time the drill waited).
    #[serde(serialize_with = "optional_millis")]
    pub recovery: Option<Duration>,
    /// What else was seen (for instance, acks during an outage).
    pub detail: Option<String>,
    /// Why it did not recover, when it did not.
    pub problem: Option<String>,
}

impl FaultResult {
    /// Whether it recovered within its bound.
    pub fn within_bound(&self) -> bool {
        self.recovery.is_some_and(|recovery| recovery <= self.bound)
    }
}

/// Where the drill ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// A cluster it started, supervisors on loopback.
    Loopback,
    /// A cluster it started, each supervisor in a network namespace of its own.
    Namespaces,
    /// An existing cluster.
    Existing,
}

impl Setting {
    fn describe(self) -> &'static str {
        match self {
            Setting::Loopback => "a local cluster, supervisors on loopback",
            Setting::Namespaces => {
                "a local cluster, each supervisor in a network namespace of its own"
            }
            Setting::Existing => "an existing cluster",
        }
    }
}

/// The whole drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillReport {
    /// Where it ran.
    pub setting: Setting,
    /// The cluster's shape and timings, in words.
    pub cluster: String,
    /// The topology it submitted.
    pub topology: String,
    /// Each fault in order.
    pub faults: Vec<FaultResult>,
    /// What the ledger says once the topology was killed.
    pub ledger: LedgerSummary,
    /// Messages emitted but never acked, not even after their replays were waited for.
    pub unacked: u64,
    /// Where the drill's files (logs, ledger) are, when kept.
    pub kept_files: Option<String>,
}

impl DrillReport {
    /// Every reason the drill failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut failures: Vec<String> = self
            .faults
            .iter()
            .filter(|fault| !fault.within_bound())
            .map(|fault| match (fault.recovery, &fault.problem) {
                (Some(recovery), _) => format!(
                    "{}: recovered in {} (bound {})",
                    fault.fault,
                    seconds(recovery),
                    seconds(fault.bound)
                ),
                (None, Some(problem)) => format!("{}: did not recover: {problem}", fault.fault),
                (None, None) => format!("{}: did not recover", fault.fault),
            })
            .collect();
        if self.ledger.lost > 0 {
            failures.push(format!(
                "{} acknowledged messages were never processed, for instance {:?}",
                self.ledger.lost, self.ledger.lost_examples
            ));
        }
        if self.ledger.misfiled > 0 {
            failures.push(format!(
                "{} messages were counted under another word",
                self.ledger.misfiled
            ));
        }
        if self.unacked > 0 {
            failures.push(format!(
                "{} emitted messages were never acknowledged, even after replays",
                self.unacked
            ));
        }
        failures
    }

    /// Whether every fault recovered within its bound and nothing was lost.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// The report as lines of text.
    pub fn to_text(&self) -> Vec<String> {
        let mut lines = vec![
            format!("squall drill on {}", self.setting.describe()),
            format!("cluster:  {}", self.cluster),
            format!("topology: {}", self.topology),
            String::new(),
        ];
        let rows: Vec<[String; 4]> = self
            .faults
            .iter()
            .map(|fault| {
                [
                    fault.fault.clone(),
                    fault.recovery.map_or_else(|| "none".to_owned(), seconds),
                    seconds(fault.bound),
                    if fault.within_bound() { "ok" } else { "MISSED" }.to_owned(),
                ]
            })
            .collect();
        let header = ["fault", "recovery", "bound", ""].map(str::to_owned);
        let widths: Vec<usize> = (0..4)
            .map(|column| {
                std::iter::once(&header)
                    .chain(&rows)
                    .map(|row| row[column].len())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (index, row) in std::iter::once(&header).chain(&rows).enumerate() {
            lines.push(
                format!(
                    "{:<w0$}  {:>w1$}  {:>w2$}  {}",
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2]
                )
                .trim_end()
                .to_owned(),
            );
            if index > 0 {
                let fault = &self.faults[index - 1];
                lines.push(format!("    {}", fault.action));
                if let Some(detail) = &fault.detail {
                    lines.push(format!("    {detail}"));
                }
                if let Some(problem) = fault.problem.as_ref().filter(|_| !fault.within_bound()) {
                    lines.push(format!("    last seen: {problem}"));
                }
            }
        }
        lines.push(String::new());
        lines.push(format!(
            "messages: {} acknowledged, {} lost, {} duplicated (processed more than once), {} never acknowledged",
            self.ledger.acked, self.ledger.lost, self.ledger.duplicated, self.unacked
        ));
        if let Some(dir) = &self.kept_files {
            lines.push(format!("files (logs, configuration, ledger): {dir}"));
        }
        let failures = self.failures();
        if failures.is_empty() {
            lines.push("PASSED: every fault recovered within its bound, nothing lost".into());
        } else {
            lines.push(format!("FAILED ({}):", failures.len()));
            lines.extend(failures.into_iter().map(|failure| format!("  {failure}")));
        }
        lines
    }
}

/// `1.23 s`.
fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

fn optional_millis<S: serde::Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => millis(duration, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(name: &str, recovery_ms: Option<u64>, bound_ms: u64) -> FaultResult {
        FaultResult {
            fault: name.into(),
            action: format!("{name} was injected"),
            bound: Duration::from_millis(bound_ms),
            recovery: recovery_ms.map(Duration::from_millis),
            detail: None,
            problem: recovery_ms
                .is_none()
                .then(|| "2 workers assigned, 3 expected".into()),
        }
    }

    fn report(faults: Vec<FaultResult>, lost: u64) -> DrillReport {
        DrillReport {
            setting: Setting::Loopback,
            cluster: "1 ZooKeeper, 2 nimbuses, 3 supervisors".into(),
            topology: "drill".into(),
            faults,
            ledger: LedgerSummary {
                acked: 1000,
                processed: 1000,
                lost,
                lost_examples: (0..lost).collect(),
                duplicated: 7,
                misfiled: 0,
            },
            unacked: 0,
            kept_files: None,
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        assert!(fault("worker-kill", Some(5_000), 5_000).within_bound());
        assert!(!fault("worker-kill", Some(5_001), 5_000).within_bound());
        assert!(!fault("worker-kill", None, 5_000).within_bound());
    }

    #[test]
    fn a_clean_drill_passes() {
        let report = report(vec![fault("worker-kill", Some(800), 5_000)], 0);
        assert!(report.passed());
        let text = report.to_text().join("\n");
        assert!(text.contains("worker-kill    0.80 s  5.00 s  ok"), "{text}");
        assert!(
            text.contains("1000 acknowledged, 0 lost, 7 duplicated"),
            "{text}"
        );
        assert!(text.ends_with("PASSED: every fault recovered within its bound, nothing lost"));
    }

    #[test]
    fn missed_bounds_and_losses_fail_with_reasons() {
        let report = report(
            vec![
                fault("host-loss", Some(12_500), 10_000),
                fault("rebalance", None, 15_000),
            ],
            2,
        );
        assert_eq!(
            report.failures(),
            [
                "host-loss: recovered in 12.50 s (bound 10.00 s)",
                "rebalance: did not recover: 2 workers assigned, 3 expected",
                "2 acknowledged messages were never processed, for instance [0, 1]",
            ]
        );
        let text = report.to_text().join("\n");
        assert!(text.contains("MISSED"), "{text}");
        assert!(text.contains("FAILED (3):"), "{text}");
    }

    #[test]
    fn json_gives_times_in_milliseconds() {
        let report = report(vec![fault("rebalance", None, 15_000)], 0);
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["setting"], "loopback");
        assert_eq!(json["faults"][0]["bound"], 15_000);
        assert!(json["faults"][0]["recovery"].is_null());
        assert_eq!(json["ledger"]["duplicated"], 7);
    }
}
