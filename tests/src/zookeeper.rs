//! A real Apache ZooKeeper server for the control-plane tests: a standalone server with a
//! private data directory, address and port, started in well under two seconds, stopped (and
//! restarted on the same data, for outage tests) at will, and killed when dropped.
//!
//! The server comes from Debian's `zookeeper` package; when it is missing,
//! `scripts/zookeeper.sh install` installs it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use squall::cluster::config::ZooKeeperSettings;

use crate::workers::free_port;

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_JAR: &str = "/usr/share/java/slf4j-simple.jar";

/// Installs ZooKeeper with the project's script if it is missing.
///
/// # Panics
/// When it is missing and cannot be installed.
pub fn ensure_installed() {
    if Path::new(ZOOKEEPER_JAR).is_file() && Path::new(SLF4J_JAR).is_file() {
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

/// Sends a four-letter command and returns the answer ("" when the server does not answer).
pub fn four_letters(host: &str, port: u16, command: &str) -> String {
    let Ok(address) = format!("{host}:{port}").parse() else {
        return String::new();
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(command.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// A standalone ZooKeeper server on one local address (127.0.0.1 unless told otherwise).
#[derive(Debug)]
pub struct ZooKeeper {
    dir: tempfile::TempDir,
    host: String,
    port: u16,
    child: Option<Child>,
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
        let mut server = Self {
            dir,
            host: host.to_owned(),
            port: free_port(host),
            child: None,
        };
        server.resume();
        server
    }

    /// The server's `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
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

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Whether the server serves (`srvr` reports a mode; `ruok` answers even when it
    /// cannot serve).
    pub fn serving(&self) -> bool {
        four_letters(&self.host, self.port, "srvr").contains("Mode:")
    }

    /// Starts the server again on the same data and port, and waits until it serves.
    ///
    /// # Panics
    /// When it does not serve within 20 s.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "ZooKeeper runs already");
        std::fs::create_dir_all(self.data_dir()).expect("data directory");
        let config = self.dir.path().join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime=200\nminSessionTimeout=400\nmaxSessionTimeout=60000\n\
                 dataDir={}\nclientPort={}\nclientPortAddress={}\n\
                 admin.enableServer=false\n4lw.commands.whitelist=*\n",
                self.data_dir().display(),
                self.port,
                self.host
            ),
        )
        .expect("zoo.cfg");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("zookeeper.log"))
            .expect("log file");
        let child = Command::new("java")
            .args([
                "-Xshare:auto",
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                "-Xmx256m",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                &format!("{ZOOKEEPER_JAR}:{SLF4J_JAR}"),
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("java runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.serving() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("ZooKeeper exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper does not serve on port {} after 20 s: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Kills the server (its data stays, for [`resume`](Self::resume)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("zookeeper.log")).unwrap_or_default()
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}
