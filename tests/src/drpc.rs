//! DRPC servers and local topologies as processes of the `squall` command line, killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::workers::{TEST_SECRET, free_port};

/// A `squall` process; killed when dropped.
#[derive(Debug)]
pub struct SquallProcess {
    child: Option<Child>,
    /// The DRPC port it serves.
    pub port: u16,
    /// The DRPC HTTP port it serves (0: none).
    pub http_port: u16,
}

impl SquallProcess {
    /// `squall drpc` on a free loopback port, HTTP off, requests waiting up to
    /// `request_timeout`; returns once the port accepts connections.
    pub fn drpc_server(squall: &Path, request_timeout: &str) -> Self {
        let port = free_port("127.0.0.1");
        let child = Command::new(squall)
            .args(["drpc", "--port", &port.to_string(), "--http-port", "0"])
            .args(["--request-timeout", request_timeout])
            .env("SQUALL_CLUSTER_SECRET", TEST_SECRET)
            .env_remove("SQUALL_CONF")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squall drpc starts");
        let mut process = Self {
            child: Some(child),
            port,
            http_port: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline && process.running(),
                "squall drpc did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    /// `squall local FILE --drpc 127.0.0.1:0 --drpc-http 127.0.0.1:0` for `duration`;
    /// returns once it prints the DRPC server's ports.
    pub fn local_with_drpc(squall: &Path, file: &Path, duration: &str) -> Self {
        let mut child = Command::new(squall)
            .arg("local")
            .arg(file)
            .args(["--drpc", "127.0.0.1:0", "--drpc-http", "127.0.0.1:0"])
            .args(["--quiet", "--duration", duration])
            .env("SQUALL_CLUSTER_SECRET", TEST_SECRET)
            .env_remove("SQUALL_CONF")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("squall local starts");
        let stdout = child.stdout.take().expect("piped");
        let mut process = Self {
            child: Some(child),
            port: 0,
            http_port: 0,
        };
        let port_of = |address: &str| -> u16 {
            address
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse().ok())
                .expect("a port")
        };
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("squall local's output");
            if let Some(address) = line.strip_prefix("squall: DRPC server listening on ") {
                process.port = port_of(address);
            }
            if let Some(address) = line.strip_prefix("squall: DRPC HTTP port listening on ") {
                process.http_port = port_of(address);
                break;
            }
        }
        assert!(
            process.port != 0 && process.http_port != 0,
            "squall local printed no DRPC ports"
        );
        process
    }

    /// `127.0.0.1:HTTP_PORT`.
    pub fn http_address(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SquallProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
