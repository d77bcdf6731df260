//! Structured logging set-up shared by Squall's programs.

/// Installs a `tracing` subscriber writing to standard error, filtered by `filter` (the
/// `RUST_LOG` syntax, e.g. `info` or `squall=debug`). Does nothing if one is installed.
///
/// # Errors
/// When `filter` is not a valid filter.
pub fn init(filter: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)?;
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}
