//! Windows for multi-lang bolts from a topology file: a pystorm bolt receives whole
//! windows, its results match a reference computed here, a window it fails is replayed,
//! and a bad `window` section is named with its line.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_core::state::{ReplayOutput, ReplayableSpout};
use squall_core::{
    Bolt, BoltOutput, ComponentError, OutputDeclarer, RunningTopology, Tuple, Value,
};
use squall_topology_file::{
    BoltFactory, ComponentRegistry, Overrides, ReplayableSpoutFactory, TopologyFile,
};

/// Sums each window it gets; fails the window holding `FAIL_FIRST` as its first tuple, the
/// first time only.
const WINDOW_SUM: &str = r#"
from pystorm import Bolt

class WindowSum(Bolt):
    auto_ack = False
    auto_fail = False

    def initialize(self, conf, context):
        self.failed = False

    def process(self, tup):
        # The handshake names the window tuple's fields: tuples, start, end.
        values = [row[0] for row in tup.values.tuples]
        assert tup.values.start is None and tup.values.end is None
        if values[0] == 40 and not self.failed:
            self.failed = True
            self.fail(tup)
            return
        self.emit([len(values), sum(values), values[0], values[-1]], anchors=[tup])
        self.ack(tup)

if __name__ == "__main__":
    WindowSum().run()
"#;

/// Collects `[count, sum, first, last]` tuples.
#[derive(Debug)]
struct Collect(Arc<Mutex<Vec<[u64; 4]>>>);

impl Bolt for Collect {
    fn execute(&mut self, input: &Tuple<'_>, output: &mut BoltOutput<'_>) {
        let value = |at| input.get_u64(at).unwrap();
        self.0
            .lock()
            .unwrap()
            .push([value(0), value(1), value(2), value(3)]);
        output.ack(input);
    }
}

fn registry(seen: &Arc<Mutex<Vec<[u64; 4]>>>) -> ComponentRegistry {
    let mut registry = ComponentRegistry::with_builtins();
    let sink = Arc::clone(seen);
    registry.add_bolt("collect", "collects window sums", move |_| {
        let sink = Arc::clone(&sink);
        let factory: BoltFactory = Arc::new(move || Box::new(Collect(Arc::clone(&sink))));
        Ok(factory)
    });
    registry
}

fn acked_by(running: &RunningTopology, component: &str) -> u64 {
    figure_of(running, component, |figures| figures.counters.acked)
}

/// One of a component's figures (0 before it has any).
fn figure_of(
    running: &RunningTopology,
    component: &str,
    figure: impl Fn(&squall_core::metrics::ComponentMetrics) -> u64,
) -> u64 {
    running.metrics().component(component).map_or(0, figure)
}

fn file_text(window: &str) -> String {
    format!(
        "\
name: windows
config:
  topology.max.spout.pending: 1000
spouts:
  - id: numbers
    builtin: sequence
    params: {{count: 100}}
bolts:
  - id: sums
    shell:
      command: python3
      args: [window_sum.py]
    outputs:
      - fields: [count, sum, first, last]
    window: {window}
  - id: sink
    builtin: collect
streams:
  - {{from: numbers, to: sums, grouping: shuffle}}
  - {{from: sums, to: sink, grouping: shuffle}}
"
    )
}

/// Sliding windows of 10 tuples every 5, over 0..100 in order: the bolt sees each window
/// whole. The window starting at 40 fails once; its tuples are replayed after the others
/// and land in later windows, so the sums over all windows still account for every input.
#[test]
fn a_pystorm_bolt_gets_whole_windows_and_a_failed_window_replays() {
    squall_test_support::require_python_module("pystorm");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("window_sum.py"), WINDOW_SUM).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let text = file_text("{count: 10, slide_count: 5}");
    let file = TopologyFile::parse(&text, "windows.yaml", dir.path()).unwrap();
    let topology = file
        .build_with(&Overrides::default(), &registry(&seen))
        .unwrap();
    let running = squall_core::run(topology).unwrap();
    // 110 tuples arrive (100, and the 10 of the failed window again), so 22 windows end,
    // one every 5 tuples, and 21 reach the sink. The last 5 tuples stay held for the next
    // window, and the 10 failed ones are acked only as replayed tuples: 95 ids are acked.
    squall_test_support::wait_for_or_explain(
        "the inputs to leave their windows",
        Duration::from_secs(30),
        || acked_by(&running, "numbers") >= 95 && seen.lock().unwrap().len() >= 21,
        || format!("; errors: {:#?}", running.errors()),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(acked_by(&running, "numbers"), 95);
    let report = running.kill(Duration::from_secs(10));
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 21, "{seen:?}");
    // Before the failure every window is the reference's: windows ending at 5, 10, … 45.
    for (index, window) in seen.iter().take(9).enumerate() {
        let end = 5 * (index as u64 + 1);
        let start = end.saturating_sub(10);
        assert_eq!(
            *window,
            [end - start, (start..end).sum(), start, end - 1],
            "window {index}"
        );
    }
    // Every window but the first holds 10 tuples.
    assert!(seen[1..].iter().all(|window| window[0] == 10), "{seen:?}");
}

/// Emits `[n]` for `n` in `0..100`; its position is the next `n`.
struct ReplayableNumbers {
    next: u64,
}

impl ReplayableSpout for ReplayableNumbers {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(&["n"]);
    }

    fn next_tuple(&mut self, output: &mut ReplayOutput<'_, '_>) {
        if self.next < 100 {
            output.emit(&[Value::U64(self.next)]);
            self.next += 1;
        }
        output.idle_for(Duration::from_millis(1));
    }

    fn position(&self) -> Vec<u8> {
        self.next.to_le_bytes().to_vec()
    }

    fn seek(&mut self, position: Option<&[u8]>) -> Result<(), ComponentError> {
        self.next = match position {
            Some(bytes) => u64::from_le_bytes(bytes.try_into()?),
            None => 0,
        };
        Ok(())
    }
}

/// Windows in checkpointed state, from a file: the failed window rolls the topology back,
/// the windows are rebuilt from the checkpoint and the source replays from its position, so
/// every window the bolt answers is one of the reference's, and every one of them comes.
#[test]
fn a_pystorm_bolt_with_windows_in_state_sees_exactly_the_reference_windows() {
    squall_test_support::require_python_module("pystorm");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("window_sum.py"), WINDOW_SUM).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut registry = registry(&seen);
    registry.add_replayable_spout("replayable_numbers", "0..100", |_| {
        let factory: ReplayableSpoutFactory = Arc::new(|| Box::new(ReplayableNumbers { next: 0 }));
        Ok(factory)
    });
    let text = file_text("{count: 10, slide_count: 5, state: true}")
        .replace(
            "config:\n",
            &format!(
                "checkpoint: {{interval_secs: 0.05, dir: '{}'}}\nconfig:\n  topology.message.timeout.secs: 5\n",
                dir.path().join("state").display()
            ),
        )
        .replace(
            "    builtin: sequence\n    params: {count: 100}\n",
            "    builtin: replayable_numbers\n",
        );
    let file = TopologyFile::parse(&text, "windows.yaml", dir.path()).unwrap();
    let topology = file.build_with(&Overrides::default(), &registry).unwrap();
    let running = squall_core::run(topology).unwrap();
    let reference: BTreeSet<[u64; 4]> = (1..=20u64)
        .map(|slide| {
            let end = 5 * slide;
            let start = end.saturating_sub(10);
            [end - start, (start..end).sum(), start, end - 1]
        })
        .collect();
    let distinct = || {
        seen.lock()
            .unwrap()
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
    };
    squall_test_support::wait_for_or_explain(
        "every reference window",
        Duration::from_secs(60),
        || distinct() == reference,
        || {
            format!(
                "; seen {:?}; errors: {:#?}",
                distinct().difference(&reference).collect::<Vec<_>>(),
                running.errors()
            )
        },
    );
    // The window was failed (so the topology rolled back), and it came again after the
    // rollback: every reference window is there. Whether windows answered before the
    // failure are answered twice depends on where the last checkpoint fell, so the count
    // of answers is not checked.
    let failed = figure_of(&running, "sums", |figures| figures.counters.failed);
    running.kill(Duration::from_secs(10));
    assert!(failed >= 1, "the window bolt failed nothing");
    assert_eq!(distinct(), reference);
}

#[test]
fn a_bad_window_is_named_with_its_line() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cases = [
        (
            "{count: 10, secs: 2}",
            "give the window's length as count (tuples) or secs, one of them",
        ),
        (
            "{count: 10, slide_secs: 1}",
            "slide", // the spec's own reason: a count window slides by counts
        ),
        ("{secs: 1, lag_secs: 0.5}", "lag_secs needs time_field"),
        (
            "{secs: 1, late_stream: late}",
            "late_stream needs late_fields",
        ),
        ("{count: 10, size: 3}", "unknown field `size`"),
    ];
    for (window, reason) in cases {
        let text = file_text(window);
        let error = TopologyFile::parse(&text, "windows.yaml", Path::new("."))
            .map_err(|error| error.to_string())
            .and_then(|file| {
                file.build_with(&Overrides::default(), &registry(&seen))
                    .map(|_| ())
                    .map_err(|error| error.to_string())
            })
            .unwrap_err();
        assert!(
            error.starts_with("windows.yaml:15: bolts[0].window"),
            "{window}: {error}"
        );
        assert!(error.contains(reason), "{window}: {error}");
    }
    let on_builtin = file_text("{count: 10}").replace(
        "    shell:\n      command: python3\n      args: [window_sum.py]\n    outputs:\n      \
         - fields: [count, sum, first, last]\n",
        "    builtin: identity\n",
    );
    let error = TopologyFile::parse(&on_builtin, "windows.yaml", Path::new("."))
        .unwrap()
        .build_with(&Overrides::default(), &registry(&seen))
        .unwrap_err()
        .to_string();
    assert!(error.contains("window applies to shell bolts"), "{error}");
}
