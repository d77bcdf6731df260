//! Shutdown requests shared by a daemon's tasks.

use std::future::Future;

use tokio::sync::watch;

/// Resolves once `shutdown` is true (or its sender is gone).
pub(crate) async fn requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A watch that turns true at SIGTERM or SIGINT. Must be called inside a runtime.
pub(crate) fn on_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        sender.send_replace(true);
    });
    receiver
}

/// Runs a daemon on a single-threaded runtime until it returns; `daemon` gets the watch
/// that turns true at SIGTERM or SIGINT.
///
/// # Errors
/// When the runtime cannot start.
pub(crate) fn run_daemon<F, T>(
    daemon: impl FnOnce(watch::Receiver<bool>) -> F,
) -> std::io::Result<T>
where
    F: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async { daemon(on_signal()).await }))
}
