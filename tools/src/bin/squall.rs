//! `squall`: Squall's command-line tool. See `squall --help`.

use std::process::ExitCode;

use clap::Parser;
use squall_tools::cli::{Demo, SquallCli, SquallCommand};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = SquallCli::parse();
    let result = match &cli.command {
        SquallCommand::Demo(Demo::Wordcount(args)) => squall_tools::demo::wordcount(args),
        SquallCommand::Local(args) => squall_tools::local::run(args),
    };
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("squall: {error:#}");
            ExitCode::FAILURE
        }
    }
}
