//! Which worker process runs which executor of a topology spread over workers.

use squall::cluster::TopologyDescription;

use crate::cli::BenchCli;

/// How a run places the executors of its topology in worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Two workers: the spouts and ackers in the first, the bolts in the second, so every
    /// tuple crosses the link (the `net-*` scenarios).
    SourcesApartFromBolts,
    /// Every component's executors dealt out over this many workers in turn, so each worker
    /// runs a share of every component and fields grouping sends some tuples to a counter
    /// in the same worker and the rest across.
    DealtOut(usize),
}

impl Placement {
    /// Number of worker processes.
    pub fn workers(self) -> usize {
        match self {
            Placement::SourcesApartFromBolts => 2,
            Placement::DealtOut(workers) => workers,
        }
    }

    /// The executors (indexes into `description.executor_components`) of each worker.
    pub fn executors(self, description: &TopologyDescription) -> Vec<Vec<usize>> {
        let mut workers = vec![Vec::new(); self.workers().max(1)];
        let mut dealt_per_component = vec![0usize; description.components.len()];
        for (executor, &component) in description.executor_components.iter().enumerate() {
            let worker = match self {
                Placement::SourcesApartFromBolts => {
                    usize::from(description.components[component].kind == "bolt")
                }
                Placement::DealtOut(count) => {
                    let dealt = &mut dealt_per_component[component];
                    *dealt += 1;
                    (*dealt - 1) % count.max(1)
                }
            };
            workers[worker].push(executor);
        }
        workers
    }

    /// The command line `cli` with enough spouts and counters for every worker to run at
    /// least one of each (when executors are dealt out); otherwise `cli` as it is.
    pub fn shape(self, cli: &BenchCli) -> BenchCli {
        let mut shaped = cli.clone();
        if let Placement::DealtOut(workers) = self {
            let workers = u32::try_from(workers).unwrap_or(u32::MAX);
            shaped.spouts = shaped.spouts.max(workers);
            shaped.sinks = shaped.sinks.max(workers);
        }
        shaped
    }

    /// The name of worker `index`, for its directory and messages.
    pub fn worker_name(self, index: usize) -> String {
        match (self, index) {
            (Placement::SourcesApartFromBolts, 0) => "source".to_owned(),
            (Placement::SourcesApartFromBolts, _) => "sink".to_owned(),
            (Placement::DealtOut(_), index) => format!("worker-{index}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall::builtin::topologies::{self, BuiltinOptions};

    /// The components of `executors`, sorted.
    fn components(description: &TopologyDescription, executors: &[usize]) -> Vec<String> {
        let mut components: Vec<String> = executors
            .iter()
            .map(|&executor| {
                let component = description.executor_components[executor];
                description.components[component].id.clone()
            })
            .collect();
        components.sort();
        components
    }

    fn wordcount(spouts: usize, counters: usize) -> TopologyDescription {
        let options = BuiltinOptions {
            spouts,
            sinks: counters,
            ..BuiltinOptions::default()
        };
        let built = topologies::wordcount("wordcount", false, &options).expect("builds");
        TopologyDescription::of(&built.topology)
    }

    #[test]
    fn dealt_out_workers_each_get_a_share_of_every_component() {
        let description = wordcount(3, 2);
        let workers = Placement::DealtOut(2).executors(&description);
        assert_eq!(workers.len(), 2);
        assert_eq!(
            components(&description, &workers[0]),
            ["count", "words", "words"]
        );
        assert_eq!(components(&description, &workers[1]), ["count", "words"]);
        let mut all: Vec<usize> = workers.concat();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..5).collect::<Vec<_>>(),
            "every executor placed once"
        );
    }

    #[test]
    fn every_dealt_out_worker_gets_a_spout_and_a_counter() {
        use clap::Parser;
        let cli = |args: &[&str]| {
            BenchCli::try_parse_from(std::iter::once(&"squall-bench").chain(args)).expect("parses")
        };
        let shaped = Placement::DealtOut(2).shape(&cli(&["wordcount"]));
        assert_eq!((shaped.spouts, shaped.sinks), (2, 2));
        let shaped = Placement::DealtOut(2).shape(&cli(&["wordcount", "--spouts", "3"]));
        assert_eq!((shaped.spouts, shaped.sinks), (3, 2));
        let shaped = Placement::SourcesApartFromBolts.shape(&cli(&["net-mio"]));
        assert_eq!((shaped.spouts, shaped.sinks), (1, 1));
    }

    #[test]
    fn sources_and_bolts_are_kept_apart() {
        let description = wordcount(2, 3);
        let workers = Placement::SourcesApartFromBolts.executors(&description);
        assert_eq!(components(&description, &workers[0]), ["words", "words"]);
        assert_eq!(
            components(&description, &workers[1]),
            ["count", "count", "count"]
        );
        assert_eq!(Placement::SourcesApartFromBolts.worker_name(1), "sink");
        assert_eq!(Placement::DealtOut(3).worker_name(2), "worker-2");
    }
}
