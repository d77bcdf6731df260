//! `squall-bench`: Squall's benchmark tool. See `squall-bench --help`.

use std::process::ExitCode;

use clap::Parser;
use squall_tools::bench::run_scenario;
use squall_tools::cli::BenchCli;
use squall_tools::report::ScenarioReport;
use squall_tools::scenario::Scenario;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = BenchCli::parse();
    if cli.list {
        for scenario in Scenario::ALL {
            println!("{:<16} {}", scenario.name(), scenario.description());
        }
        return ExitCode::SUCCESS;
    }
    let scenarios = if cli.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        cli.scenarios.clone()
    };
    if !cli.json {
        println!("{}", ScenarioReport::table_header());
    }
    let mut failed = false;
    for scenario in scenarios {
        match run_scenario(&cli, scenario) {
            Ok(report) if cli.json => println!("{}", report.to_json_line()),
            Ok(report) => println!("{}", report.table_row()),
            Err(error) => {
                eprintln!("squall-bench: {scenario}: {error:#}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
