//! The named benchmark scenarios of `squall-bench`.

use std::fmt;

/// A benchmark scenario: which built-in topology runs and what it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Scenario {
    /// Constant spout → null bolt: the cost of one hop.
    ConstNull,
    /// Constant spout → identity bolt → null bolt: two hops and a re-emit.
    ConstIdNull,
    /// u64 word ids drawn from 10,000 → fields grouping → counting bolts; counts checked.
    Wordcount,
    /// The same word count with string words.
    WordcountStr,
    /// Constant spout → Python (pystorm) identity bolt → null bolt, every tuple tracked.
    ShellBolt,
}

impl Scenario {
    /// Every scenario, in the order `squall-bench` runs them by default.
    pub const ALL: [Scenario; 5] = [
        Scenario::ConstNull,
        Scenario::ConstIdNull,
        Scenario::Wordcount,
        Scenario::WordcountStr,
        Scenario::ShellBolt,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ConstNull => "const-null",
            Scenario::ConstIdNull => "const-id-null",
            Scenario::Wordcount => "wordcount",
            Scenario::WordcountStr => "wordcount-str",
            Scenario::ShellBolt => "shell-bolt",
        }
    }

    /// One line on what the scenario runs.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::ConstNull => "constant spout -> null bolt (one hop)",
            Scenario::ConstIdNull => "constant spout -> identity bolt -> null bolt (two hops)",
            Scenario::Wordcount => {
                "u64 word ids from 10,000 -> fields grouping -> count bolts, counts checked exactly"
            }
            Scenario::WordcountStr => {
                "string words from 10,000 -> fields grouping -> count bolts, counts checked exactly"
            }
            Scenario::ShellBolt => {
                "constant spout -> Python identity bolt (pystorm) -> null bolt, tracked (needs python3 and pystorm)"
            }
        }
    }

    /// Whether the scenario tracks every tuple whatever `--acking` says.
    pub fn always_tracks(self) -> bool {
        matches!(self, Scenario::ShellBolt)
    }

    /// Whether the scenario ends with an exact count check.
    pub fn counts_words(self) -> bool {
        matches!(self, Scenario::Wordcount | Scenario::WordcountStr)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn command_line_names_match_report_names() {
        for scenario in Scenario::ALL {
            let value = scenario
                .to_possible_value()
                .expect("every scenario is selectable");
            assert_eq!(value.get_name(), scenario.name());
            assert_eq!(Scenario::from_str(scenario.name(), false), Ok(scenario));
        }
        assert_eq!(Scenario::value_variants(), &Scenario::ALL);
    }
}
