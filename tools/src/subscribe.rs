//! `squall subscribe TOPOLOGY STREAM`: prints the tuples a topology publishes on a stream, as
//! they come, one JSON array a line.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use squall::cluster::{ClusterConfig, Secret};
use squall::drpc::subscribe::{Event, Subscription};

/// How long connecting and the server's first answer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `squall subscribe`.
#[derive(Debug, Clone, Args)]
pub struct SubscribeArgs {
    /// Configuration file (TOML): the secret, and `drpc.servers` with `drpc.http_port` for
    /// the default server.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The DRPC server's HTTP port, HOST:PORT. Default: the host of the first of
    /// `drpc.servers`, at `drpc.http_port`.
    #[arg(long, value_name = "HOST:HTTP_PORT")]
    pub server: Option<String>,
    /// Stop after this many tuples (default: run until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// The topology's name.
    pub topology: String,
    /// The stream it publishes.
    pub stream: String,
}

/// The HTTP address of the first configured DRPC server.
fn default_server(config: &ClusterConfig) -> anyhow::Result<String> {
    let first = config
        .drpc
        .servers
        .first()
        .context("no DRPC servers are configured (drpc.servers); name one with --server")?;
    let host = first
        .rsplit_once(':')
        .map_or(first.as_str(), |(host, _)| host);
    anyhow::ensure!(
        config.drpc.http_port != 0,
        "the DRPC HTTP port is off (drpc.http_port = 0); name a server with --server"
    );
    Ok(format!("{host}:{}", config.drpc.http_port))
}

/// Prints the stream's tuples to standard output until `--count` of them, or the server
/// ends the subscription.
///
/// # Errors
/// When the server is unreachable, refuses the subscription, drops it or ends it.
pub fn run(args: &SubscribeArgs) -> anyhow::Result<Vec<String>> {
    let config = ClusterConfig::load(args.config.as_deref())?;
    let secret = Secret::load(&config.cluster)?.cluster_secret();
    let server = match &args.server {
        Some(server) => server.clone(),
        None => default_server(&config)?,
    };
    let name = format!("{}/{}", args.topology, args.stream);
    let mut subscription = Subscription::open(
        &server,
        &secret,
        &args.topology,
        &args.stream,
        CONNECT_TIMEOUT,
    )
    .with_context(|| format!("cannot subscribe to {name}"))?;
    // Keep-alives come every 15 s; a minute of silence means the server is gone.
    subscription.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut stdout = std::io::stdout().lock();
    let mut printed = 0;
    while args.count.is_none_or(|count| printed < count) {
        match subscription
            .next_event()
            .with_context(|| format!("subscription to {name}"))?
        {
            Some(Event::Tuple { values, .. }) => {
                writeln!(stdout, "{values}")?;
                stdout.flush()?;
                printed += 1;
            }
            Some(Event::Dropped(reason)) => {
                anyhow::bail!(
                    "the DRPC server {server} dropped the subscription to {name}: {reason}"
                )
            }
            None => anyhow::bail!("the DRPC server {server} ended the subscription to {name}"),
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_server_is_the_first_at_the_http_port() {
        let mut config = ClusterConfig::default();
        config.drpc.servers = vec!["drpc1:3772".into(), "drpc2:3772".into()];
        assert_eq!(default_server(&config).unwrap(), "drpc1:3774");
        config.drpc.http_port = 0;
        assert!(
            default_server(&config)
                .unwrap_err()
                .to_string()
                .contains("--server")
        );
    }

    #[test]
    fn the_command_line_parses() {
        use clap::Parser;
        let cli = crate::cli::SquallCli::try_parse_from([
            "squall",
            "subscribe",
            "trending",
            "top",
            "--count",
            "3",
            "--server",
            "h:1",
        ])
        .expect("parses");
        let crate::cli::SquallCommand::Subscribe(args) = cli.command else {
            panic!("not subscribe: {:?}", cli.command);
        };
        assert_eq!(
            (args.topology.as_str(), args.stream.as_str()),
            ("trending", "top")
        );
        assert_eq!(args.count, Some(3));
        assert_eq!(args.server.as_deref(), Some("h:1"));
    }
}
