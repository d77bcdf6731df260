//! The `squall` binary's `main`: parses the command line, sets up logging, runs the
//! command and prints its result.

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Demo, SquallCli, SquallCommand};
use crate::cluster;

/// Runs `squall` with the process's arguments.
pub fn main() -> ExitCode {
    let cli = SquallCli::parse();
    if let SquallCommand::Worker(args) = &cli.command {
        // The worker runtime sets up its own logging (SQUALL_LOG).
        return cluster::worker(args);
    }
    // Daemons log what they do; commands only what goes wrong.
    let default_filter = match cli.command {
        SquallCommand::Nimbus(_) | SquallCommand::Supervisor(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        SquallCommand::Demo(Demo::Wordcount(args)) => crate::demo::wordcount(args),
        SquallCommand::Local(args) => crate::local::run(args),
        SquallCommand::Nimbus(args) => cluster::nimbus(args),
        SquallCommand::Supervisor(args) => cluster::supervisor(args),
        SquallCommand::Submit(args) => cluster::submit(args),
        SquallCommand::List(args) => cluster::list(args),
        SquallCommand::Status(args) => cluster::status(args),
        SquallCommand::Kill(args) => cluster::kill(args),
        SquallCommand::Activate(args) => cluster::activate(args),
        SquallCommand::Deactivate(args) => cluster::deactivate(args),
        SquallCommand::Rebalance(args) => cluster::rebalance(args),
        SquallCommand::Config(args) => cluster::config(args),
        SquallCommand::Worker(_) => unreachable!("dispatched above"),
    };
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("squall: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause left out when the message before already ends
/// with it (many errors quote their cause).
fn describe(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_not_repeated() {
        let io = std::io::Error::other("disk on fire");
        let error = anyhow::Error::new(squall::cluster::ConfigError::Read {
            path: "/etc/squall.toml".into(),
            source: io,
        })
        .context("cannot start");
        assert_eq!(
            describe(&error),
            "cannot start: cannot read configuration file /etc/squall.toml: disk on fire"
        );
    }
}
