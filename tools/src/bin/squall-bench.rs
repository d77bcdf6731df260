//! `squall-bench`: Squall's benchmark tool. See `squall-bench --help`.

use std::process::ExitCode;

use clap::Parser;
use squall_tools::bench::{network, run_scenario};
use squall_tools::cli::BenchCli;
use squall_tools::report::ScenarioReport;
use squall_tools::scenario::Scenario;

fn main() -> ExitCode {
    if network::is_worker_mode() {
        return network::worker_main();
    }
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
    let scenarios = network::with_reference(if cli.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        cli.scenarios.clone()
    });
    if !cli.json {
        println!("{}", ScenarioReport::table_header());
    }
    let mut failed = false;
    let mut raw_tcp = None;
    let mut reports = Vec::new();
    for scenario in scenarios {
        let result = run_scenario(&cli, scenario).map(|mut report| {
            network::relate_to_reference(&mut report, &mut raw_tcp);
            report
        });
        if let Ok(report) = &result {
            reports.push(report.clone());
        }
        match result {
            Ok(report) if cli.json => println!("{}", report.to_json_line()),
            Ok(report) => {
                println!("{}", report.table_row());
                if let Some(timeline) = report
                    .network
                    .as_ref()
                    .and_then(|network| network.stage_timeline.as_ref())
                {
                    println!("{}", timeline.table());
                }
            }
            Err(error) => {
                eprintln!("squall-bench: {scenario}: {error:#}");
                failed = true;
            }
        }
    }
    if let Some(path) = &cli.report {
        let command: Vec<String> = std::env::args().collect();
        let html = squall_tools::html_report::render(&reports, &command.join(" "));
        if let Err(error) = std::fs::write(path, html) {
            eprintln!(
                "squall-bench: cannot write the report {}: {error}",
                path.display()
            );
            failed = true;
        } else if !cli.json {
            println!("report: {}", path.display());
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
