//! A real Apache ZooKeeper server for the control-plane tests: a standalone server with a
//! private data directory, address and port, started in well under two seconds, stopped (and
//! restarted on the same data, for outage tests) at will, and killed when dropped. The
//! server is `squall drill`'s ([`squall_tools::drill::zookeeper`]).
//!
//! The server comes from Debian's `zookeeper` package; when it is missing,
//! `scripts/zookeeper.sh install` installs it.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use squall::cluster::Secret;
use squall::cluster::config::ZooKeeperSettings;
use squall::cluster::store::ZkIdentity;
pub use squall_tools::drill::zookeeper::four_letters;
use squall_tools::drill::zookeeper::{ZooKeeperServer, installed};

use crate::workers::{TEST_SECRET, free_port};

/// The ZooKeeper identity of test clusters: the one derived from [`TEST_SECRET`].
pub fn test_identity() -> ZkIdentity {
    ZkIdentity::from_secret(&Secret::new(TEST_SECRET, "the test secret").expect("a usable secret"))
}

/// Installs ZooKeeper with the project's script if it is missing.
///
/// # Panics
/// When it is missing and cannot be installed.
pub fn ensure_installed() {
    if installed() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zookeeper.sh");
    let status = Command::new(&script)
        .arg("install")
        .status()
        .expect("scripts/zookeeper.sh runs");
    assert!(
        status.success(),
        "ZooKeeper is not installed and `{} install` failed",
        script.display()
    );
}

/// A standalone ZooKeeper server on one local address (127.0.0.1 unless told otherwise).
#[derive(Debug)]
pub struct ZooKeeper {
    // Declared first so that the server stops before its directory goes.
    server: ZooKeeperServer,
    dir: tempfile::TempDir,
}

impl ZooKeeper {
    /// Starts a server with a fresh data directory and waits until it serves.
    ///
    /// # Panics
    /// When it cannot be installed or does not serve within 20 s.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1")
    }

    /// Starts a server listening on `host` (an address of this machine) only.
    ///
    /// # Panics
    /// When it cannot be installed or does not serve within 20 s.
    pub fn start_on(host: &str) -> Self {
        ensure_installed();
        let dir = tempfile::Builder::new()
            .prefix("squall-zookeeper-")
            .tempdir()
            .expect("a temporary directory");
        let server = ZooKeeperServer::start(dir.path(), host, free_port(host))
            .unwrap_or_else(|error| panic!("{error}"));
        Self { server, dir }
    }

    /// The server's `host:port`.
    pub fn address(&self) -> String {
        self.server.address()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Client settings for a cluster rooted at `root`, with `session_timeout`.
    pub fn settings(&self, root: &str, session_timeout: Duration) -> ZooKeeperSettings {
        ZooKeeperSettings {
            servers: vec![self.address()],
            root: root.to_owned(),
            session_timeout_ms: session_timeout.as_millis() as u64,
            connect_timeout_ms: 2_000,
        }
    }

    /// A root (chroot) no other test uses.
    pub fn fresh_root(&self, name: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!(
            "/test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Whether the server serves (`srvr` reports a mode; `ruok` answers even when it
    /// cannot serve).
    pub fn serving(&self) -> bool {
        self.server.serving()
    }

    /// Starts the server again on the same data and port, and waits until it serves.
    ///
    /// # Panics
    /// When it runs already or does not serve within 20 s.
    pub fn resume(&mut self) {
        assert!(!self.server.running(), "ZooKeeper runs already");
        self.server
            .resume()
            .unwrap_or_else(|error| panic!("{error}: {}", self.log()));
    }

    /// Kills the server (its data stays, for [`resume`](Self::resume)).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.server.log_path()).unwrap_or_default()
    }

    /// The directory of its files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
