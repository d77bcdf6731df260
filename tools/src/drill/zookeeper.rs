//! A standalone Apache ZooKeeper server for a drill cluster, started the way
//! `scripts/zookeeper.sh start` starts one (Debian's `zookeeper` package, `tickTime` 200 ms
//! so that short session timeouts are allowed, no admin server), stopped and restarted on
//! the same data for outage drills, and killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server's jar, from Debian's `zookeeper` package.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// The logging backend it needs, from Debian's `libslf4j-java`.
pub const SLF4J_JAR: &str = "/usr/share/java/slf4j-simple.jar";

/// How long a server may take to serve after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ZooKeeperError {
    /// The package is missing.
    #[error(
        "ZooKeeper is not installed ({ZOOKEEPER_JAR} or {SLF4J_JAR} is missing): run \
         `scripts/zookeeper.sh install` (Debian packages zookeeper and libslf4j-java)"
    )]
    NotInstalled,
    /// Its files could not be written.
    #[error("cannot write ZooKeeper's files in {dir}: {source}")]
    Files {
        /// The server's directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `java` did not start.
    #[error("cannot run java for ZooKeeper: {0}")]
    Java(std::io::Error),
    /// The server exited while starting.
    #[error("ZooKeeper exited while starting ({status}); see {log}")]
    Exited {
        /// How it exited.
        status: std::process::ExitStatus,
        /// Its log.
        log: PathBuf,
    },
    /// It did not serve in time.
    #[error("ZooKeeper does not serve on {address} after {START_TIMEOUT:?}; see {log}")]
    NotServing {
        /// Where it should listen.
        address: String,
        /// Its log.
        log: PathBuf,
    },
}

/// Whether the server package is installed.
pub fn installed() -> bool {
    Path::new(ZOOKEEPER_JAR).is_file() && Path::new(SLF4J_JAR).is_file()
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

/// A standalone server with its data and log in one directory.
#[derive(Debug)]
pub struct ZooKeeperServer {
    dir: PathBuf,
    host: String,
    port: u16,
    child: Option<Child>,
}

impl ZooKeeperServer {
    /// Starts a server on `host:port` with its files in `dir`, and waits until it serves.
    ///
    /// # Errors
    /// When it is not installed, cannot start or does not serve within 20 s.
    pub fn start(dir: &Path, host: &str, port: u16) -> Result<Self, ZooKeeperError> {
        if !installed() {
            return Err(ZooKeeperError::NotInstalled);
        }
        let mut server = Self {
            dir: dir.to_owned(),
            host: host.to_owned(),
            port,
            child: None,
        };
        server.resume()?;
        Ok(server)
    }

    /// The server's `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("zookeeper.log")
    }

    /// Whether it serves (`srvr` reports a mode; `ruok` answers even when it cannot serve).
    pub fn serving(&self) -> bool {
        four_letters(&self.host, self.port, "srvr").contains("Mode:")
    }

    /// Whether its process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server (again) on the same data and port, and waits until it serves.
    ///
    /// # Errors
    /// When it cannot start or does not serve within 20 s.
    pub fn resume(&mut self) -> Result<(), ZooKeeperError> {
        if self.child.is_some() {
            return Ok(());
        }
        let files = |source| ZooKeeperError::Files {
            dir: self.dir.clone(),
            source,
        };
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).map_err(files)?;
        let config = self.dir.join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime=200\nminSessionTimeout=400\nmaxSessionTimeout=60000\n\
                 dataDir={}\nclientPort={}\nclientPortAddress={}\n\
                 admin.enableServer=false\n4lw.commands.whitelist=*\n",
                data.display(),
                self.port,
                self.host
            ),
        )
        .map_err(files)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(files)?;
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
            .stdout(log.try_clone().map_err(files)?)
            .stderr(log)
            .spawn()
            .map_err(ZooKeeperError::Java)?;
        let child = self.child.insert(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if four_letters(&self.host, self.port, "srvr").contains("Mode:") {
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(ZooKeeperError::Exited {
                    status,
                    log: self.log_path(),
                });
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(ZooKeeperError::NotServing {
                    address: self.address(),
                    log: self.log_path(),
                });
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Kills the server; its data stays for [`resume`](Self::resume).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        self.stop();
    }
}
