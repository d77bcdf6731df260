//! `squall drpc`: the DRPC server daemon, and `squall drpc call FUNCTION ARGUMENT`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use squall::cluster::logging::LogFormat;
use squall::cluster::{ClusterConfig, Secret};
use squall::drpc::{DrpcClient, DrpcError};

use crate::args::HumanDuration;

/// Options of `squall drpc`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DrpcArgs {
    /// Call a function instead of running a server.
    #[command(subcommand)]
    pub command: Option<DrpcCommand>,
    /// Configuration file (TOML); the server reads its `[drpc]` section. Default:
    /// $SQUALL_CONF, else /etc/squall/squall.toml if it exists, else the built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: `text` or `json`. Default: $SQUALL_LOG_FORMAT, else text.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Listen on this DRPC port instead of `drpc.port`.
    #[arg(long)]
    pub port: Option<u16>,
    /// Listen on this HTTP port instead of `drpc.http_port` (0 turns HTTP off).
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Requests wait at most this long (e.g. 30s; whole seconds, at least 1) instead of
    /// `drpc.request_timeout_secs`.
    #[arg(long)]
    pub request_timeout: Option<HumanDuration>,
}

/// What `squall drpc` does besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum DrpcCommand {
    /// Call FUNCTION with ARGUMENT on a DRPC server and print the answer.
    Call(CallArgs),
}

/// Options of `squall drpc call`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// Configuration file (TOML): the secret and `drpc.servers`.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ask the server at HOST:PORT instead of the first reachable of `drpc.servers`.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Wait at most this long for the answer (the server may cut it shorter).
    #[arg(long, default_value = "60s")]
    pub timeout: HumanDuration,
    /// The function.
    pub function: String,
    /// Its argument.
    pub argument: String,
}

/// `squall drpc` and its subcommands.
///
/// # Errors
/// When the server cannot start, or the call gets no answer.
pub fn run(args: &DrpcArgs) -> anyhow::Result<Vec<String>> {
    match &args.command {
        Some(DrpcCommand::Call(call_args)) => call(call_args),
        None => {
            let mut config = ClusterConfig::load(args.config.as_deref())?;
            if let Some(port) = args.port {
                config.drpc.port = port;
            }
            if let Some(port) = args.http_port {
                config.drpc.http_port = port;
            }
            if let Some(timeout) = args.request_timeout {
                config.drpc.request_timeout_secs = timeout.get().as_secs().max(1);
            }
            squall::cluster::drpc::run(&config)?;
            Ok(Vec::new())
        }
    }
}

fn call(args: &CallArgs) -> anyhow::Result<Vec<String>> {
    let config = ClusterConfig::load(args.config.as_deref())?;
    let secret = Secret::load(&config.cluster)?.cluster_secret();
    let servers = match &args.server {
        Some(server) => vec![server.clone()],
        None => config.drpc.servers.clone(),
    };
    let mut last_error = None;
    for server in &servers {
        let client = match DrpcClient::connect(server, &secret) {
            Ok(client) => client,
            Err(error) => {
                last_error = Some(error);
                continue;
            }
        };
        let mut client = client.with_timeout(args.timeout.get());
        let answer = client
            .call(&args.function, &args.argument)
            .with_context(|| format!("{}({:?}) on {server}", args.function, args.argument))?;
        return Ok(vec![answer]);
    }
    match last_error {
        Some(error) => Err(anyhow::Error::new(error).context(format!(
            "no DRPC server reachable of {}",
            servers.join(", ")
        ))),
        None => Err(anyhow::Error::new(DrpcError::Refused(
            squall::drpc::CallError::Invalid {
                reason: "no DRPC servers are configured (drpc.servers)".to_owned(),
            },
        ))),
    }
}

/// How long a local DRPC server lets requests wait.
pub(crate) const LOCAL_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
