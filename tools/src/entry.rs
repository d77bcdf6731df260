//! The `squall` binary's `main`: parses the command line, sets up logging, runs the
//! command and prints its result.

use std::process::ExitCode;

use clap::Parser;
use squall::cluster::logging::LogFormat;

use crate::cli::{Demo, SquallCli, SquallCommand};
use crate::cluster;

/// Runs `squall` with the process's arguments.
pub fn main() -> ExitCode {
    let cli = SquallCli::parse();
    if let SquallCommand::Worker(args) = &cli.command {
        // The worker runtime sets up its own logging (SQUALL_LOG).
        return cluster::worker(args);
    }
    if let Err(error) = init_logging(&cli.command) {
        eprintln!("squall: {error:#}");
        return ExitCode::FAILURE;
    }
    if let SquallCommand::Drill(args) = &cli.command {
        return crate::drill::main(args);
    }
    let result = match &cli.command {
        SquallCommand::Demo(Demo::Wordcount(args)) => crate::demo::wordcount(args),
        SquallCommand::Local(args) => crate::local::run(args),
        SquallCommand::Nimbus(args) => cluster::nimbus(args),
        SquallCommand::Supervisor(args) => cluster::supervisor(args),
        SquallCommand::Drpc(args) => crate::drpc::run(args),
        SquallCommand::Subscribe(args) => crate::subscribe::run(args),
        SquallCommand::Submit(args) => cluster::submit(args),
        SquallCommand::List(args) => cluster::list(args),
        SquallCommand::Status(args) => cluster::status(args),
        SquallCommand::Kill(args) => cluster::kill(args),
        SquallCommand::Activate(args) => cluster::activate(args),
        SquallCommand::Deactivate(args) => cluster::deactivate(args),
        SquallCommand::Rebalance(args) => cluster::rebalance(args),
        SquallCommand::Config(args) => cluster::config(args),
        SquallCommand::ZookeeperAuth(args) => cluster::zookeeper_auth(args),
        SquallCommand::Worker(_) | SquallCommand::Drill(_) => unreachable!("dispatched above"),
    };
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            if let Some(reported) = error.downcast_ref::<crate::local::TaskErrorsReported>() {
                for line in &reported.summary {
                    println!("{line}");
                }
                eprintln!("squall: {reported}");
                return ExitCode::from(crate::local::EXIT_TASK_ERRORS);
            }
            eprintln!("squall: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG`: daemons what they do, commands only what
/// goes wrong; daemons in the format their `--log-format` (or `SQUALL_LOG_FORMAT`) names.
fn init_logging(command: &SquallCommand) -> anyhow::Result<()> {
    let (default_filter, format) = match command {
        SquallCommand::Nimbus(args) | SquallCommand::Supervisor(args) => {
            let format = match args.log_format {
                Some(format) => format,
                None => LogFormat::from_env()?,
            };
            ("info", format)
        }
        SquallCommand::Drpc(args) if args.command.is_none() => {
            let format = match args.log_format {
                Some(format) => format,
                None => LogFormat::from_env()?,
            };
            ("info", format)
        }
        // What multi-lang components log at info level is theirs to show, as Storm's
        // ShellBolt does; everything else of the engine only when it goes wrong.
        SquallCommand::Local(_) => ("warn,squall_multilang::log=info", LogFormat::Text),
        _ => ("warn", LogFormat::Text),
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|filter| !filter.is_empty())
        .unwrap_or_else(|| default_filter.to_owned());
    if let Err(error) = squall::cluster::logging::init(&filter, format) {
        eprintln!("squall: RUST_LOG: {error}; logging at {default_filter}");
        squall::cluster::logging::init(default_filter, format)?;
    }
    Ok(())
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
