//! Real database servers for the connector tests: PostgreSQL and Redis, each in a
//! temporary directory of its own on a free loopback port, started by the project's
//! scripts (`scripts/postgres.sh`, `scripts/redis.sh`, which install Debian's packages when
//! they are missing) and stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workers::free_port;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs `scripts/NAME args…` with `env`, panicking with its output when it fails.
fn run_script(name: &str, args: &[&str], env: &[(&str, &str)]) {
    let output = Command::new(script(name))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|error| panic!("scripts/{name} does not run: {error}"));
    assert!(
        output.status.success(),
        "scripts/{name} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL server with role and database `squall`, password [`Postgres::PASSWORD`].
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// The role's password.
    pub const PASSWORD: &'static str = "squall-test";

    /// Installs PostgreSQL if needed and starts a server.
    ///
    /// # Panics
    /// When it cannot be installed or started.
    pub fn start() -> Self {
        run_script("postgres.sh", &["install"], &[]);
        let dir = tempfile::Builder::new()
            .prefix("squall-postgres-")
            .tempdir()
            .expect("a temporary directory");
        let port = free_port("127.0.0.1");
        let path = dir.path().to_str().expect("a UTF-8 path").to_owned();
        run_script(
            "postgres.sh",
            &["start", &path, &port.to_string()],
            &[("SQUALL_POSTGRES_PASSWORD", Self::PASSWORD)],
        );
        Self { port, dir }
    }

    /// libpq settings for the `squall` database.
    pub fn connection(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=squall password={} dbname=squall",
            self.port,
            Self::PASSWORD
        )
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let path = self.dir.path().to_string_lossy().into_owned();
        let _ = Command::new(script("postgres.sh"))
            .args(["stop", &path])
            .status();
    }
}

/// A Redis server, asking for a password when started with one.
#[derive(Debug)]
pub struct Redis {
    host: String,
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Installs Redis if needed and starts a server; with `password`, clients must give it.
    ///
    /// # Panics
    /// When it cannot be installed or started.
    pub fn start(password: Option<&str>) -> Self {
        Self::start_on("127.0.0.1", password)
    }

    /// Like [`start`](Self::start), listening on `host` (an address of this namespace).
    ///
    /// # Panics
    /// When it cannot be installed or started.
    pub fn start_on(host: &str, password: Option<&str>) -> Self {
        run_script("redis.sh", &["install"], &[]);
        let dir = tempfile::Builder::new()
            .prefix("squall-redis-")
            .tempdir()
            .expect("a temporary directory");
        let port = free_port(host);
        let path = dir.path().to_str().expect("a UTF-8 path").to_owned();
        let env: Vec<(&str, &str)> = password
            .map(|password| ("SQUALL_REDIS_PASSWORD", password))
            .into_iter()
            .collect();
        run_script("redis.sh", &["start", &path, &port.to_string(), host], &env);
        Self {
            host: host.to_owned(),
            port,
            password: password.map(str::to_owned),
            dir,
        }
    }

    /// `redis://` address with the server's password.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@{}:{}", self.host, self.port),
            None => format!("redis://{}:{}", self.host, self.port),
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let path = self.dir.path().to_string_lossy().into_owned();
        let _ = Command::new(script("redis.sh"))
            .args(["stop", &path])
            .status();
    }
}
