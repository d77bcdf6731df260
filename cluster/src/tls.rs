//! TLS for the control plane (clients, supervisors and nimbuses talking to nimbus), with
//! rustls. Nimbus presents the certificate chain and key of `[tls]`; clients trust the CA
//! certificates of `tls.ca` and check that nimbus's certificate names the host they dialled.
//! The request protocol inside is unchanged: requests are still authenticated with the
//! cluster secret, TLS adds confidentiality and the server's identity.
//!
//! Files are read again when they change (nimbus) or on every connection (clients), so
//! certificates rotate without restarts.
//!
//! With `tls.worker_links`, the links between workers run in TLS too, mutually
//! authenticated with the same files: every worker presents `tls.cert_chain` and accepts
//! only peers whose certificate `tls.ca` signed, and a dialled worker's certificate must name
//! `tls.worker_name`. The supervisor hands the files to its workers through
//! [`worker_link_env`]; a worker reads them once, at start.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::TlsSettings;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or holds nothing usable.
    #[error("tls.{setting} {path}: {reason}")]
    File {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificates or key.
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
    /// A worker was given some of [`WORKER_TLS_ENV`] but not all.
    #[error("the worker's TLS environment is incomplete: set all of {WORKER_TLS_ENV:?} or none")]
    WorkerEnvironment,
    /// The host dialled cannot be checked against a certificate.
    #[error("cannot check the certificate for {host:?}: not a host name or IP address")]
    ServerName {
        /// The host.
        host: String,
    },
}

/// rustls on *ring*, which builds from its crate alone (no CMake or Go toolchain, unlike
/// aws-lc-rs). rustls marks this constructor deprecated because *ring* offers no
/// post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(setting: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        setting,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(setting, path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(setting, path, error))?;
    if certificates.is_empty() {
        return Err(file_error(setting, path, "holds no PEM certificate"));
    }
    Ok(certificates)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|error| file_error("key", path, error))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(file_error(
            "key",
            path,
            format!(
                "the private key is readable by others (mode {:o}): make it private with \
                 `chmod 600 {}`",
                mode & 0o777,
                path.display()
            ),
        ));
    }
    PrivateKeyDer::from_pem_file(path).map_err(|error| file_error("key", path, error))
}

/// The rustls configuration of a nimbus with `cert_chain` and `key`.
///
/// # Errors
/// When a file is unreadable, holds no certificate or key, or they do not match.
pub fn server_config(cert_chain: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let certificates = certificates("cert_chain", cert_chain)?;
    let key = private_key(key)?;
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)?)
}

/// The rustls configuration of a client trusting the CA certificates in `ca`.
///
/// # Errors
/// When the file is unreadable or holds no usable certificate.
pub fn client_config(ca: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates("ca", ca)? {
        roots
            .add(certificate)
            .map_err(|error| file_error("ca", ca, error))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The name a client checks nimbus's certificate against: the host of `address`
/// (`host:port`, `[v6]:port`).
///
/// # Errors
/// When the host is neither a DNS name nor an IP address.
pub fn server_name(address: &str) -> Result<ServerName<'static>, TlsError> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName {
        host: host.to_owned(),
    })
}

/// The environment variables through which a supervisor gives its workers the files of
/// their TLS links: certificate chain, key, CA certificates, and the name a dialled worker's
/// certificate must carry.
pub const WORKER_TLS_ENV: [&str; 4] = [
    "SQUALL_WORKER_TLS_CERT",
    "SQUALL_WORKER_TLS_KEY",
    "SQUALL_WORKER_TLS_CA",
    "SQUALL_WORKER_TLS_NAME",
];

/// The environment of a worker whose links run in TLS per `settings`; empty when
/// `tls.worker_links` is off.
pub fn worker_link_env(settings: &TlsSettings) -> Vec<(&'static str, OsString)> {
    let (true, Some(cert_chain), Some(key), Some(ca)) = (
        settings.worker_links,
        &settings.cert_chain,
        &settings.key,
        &settings.ca,
    ) else {
        return Vec::new();
    };
    let values: [OsString; 4] = [
        cert_chain.into(),
        key.into(),
        ca.into(),
        settings.worker_name().into(),
    ];
    WORKER_TLS_ENV.into_iter().zip(values).collect()
}

/// The TLS of a worker's links: it presents `cert_chain` (with `key`) and trusts the CA
/// certificates of `ca`; a worker it dials must present a certificate naming `name`.
///
/// # Errors
/// When a file is unreadable or unusable, or `name` is not a host name.
pub fn worker_link_tls(
    cert_chain: &Path,
    key: &Path,
    ca: &Path,
    name: &str,
) -> Result<squall_net::transport::LinkTls, TlsError> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName {
        host: name.to_owned(),
    })?;
    Ok(squall_net::transport::LinkTls::mutual(
        certificates("ca", ca)?,
        certificates("cert_chain", cert_chain)?,
        private_key(key)?,
        server_name,
    )?)
}

/// The TLS of this worker's links, if its supervisor set [`WORKER_TLS_ENV`].
///
/// # Errors
/// When only some of the variables are set, or the files are unusable.
pub fn worker_link_tls_from_env() -> Result<Option<squall_net::transport::LinkTls>, TlsError> {
    let values = WORKER_TLS_ENV.map(std::env::var_os);
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let [Some(cert_chain), Some(key), Some(ca), Some(name)] = values else {
        return Err(TlsError::WorkerEnvironment);
    };
    worker_link_tls(
        Path::new(&cert_chain),
        Path::new(&key),
        Path::new(&ca),
        &name.to_string_lossy(),
    )
    .map(Some)
}

/// When a file was last changed, to notice replaced certificates.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

type Stamps = [Option<(SystemTime, u64)>; 2];

/// Nimbus's side: its server configuration, built again when the certificate or key file
/// changes.
#[derive(Debug)]
pub struct ServerTls {
    cert_chain: PathBuf,
    key: PathBuf,
    current: Mutex<(Stamps, Arc<rustls::ServerConfig>)>,
}

impl ServerTls {
    /// The configured server side, if `[tls]` names a certificate chain and key.
    ///
    /// # Errors
    /// When they are unusable.
    pub fn from_settings(settings: &TlsSettings) -> Result<Option<Self>, TlsError> {
        let (Some(cert_chain), Some(key)) = (&settings.cert_chain, &settings.key) else {
            return Ok(None);
        };
        let stamps = [stamp(cert_chain), stamp(key)];
        let config = server_config(cert_chain, key)?;
        Ok(Some(Self {
            cert_chain: cert_chain.clone(),
            key: key.clone(),
            current: Mutex::new((stamps, Arc::new(config))),
        }))
    }

    /// The configuration for a new connection: the files' current one, or the last good one
    /// while the files are being replaced or are unusable (which is logged).
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        let stamps = [stamp(&self.cert_chain), stamp(&self.key)];
        let mut current = self.current.lock().expect("TLS configuration lock");
        if current.0 != stamps {
            match server_config(&self.cert_chain, &self.key) {
                Ok(config) => {
                    tracing::info!(cert_chain = %self.cert_chain.display(), "TLS certificate reloaded");
                    *current = (stamps, Arc::new(config));
                }
                Err(error) => {
                    tracing::warn!(%error, "keeping the previous TLS certificate");
                    current.0 = stamps;
                }
            }
        }
        current.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A CA, and a certificate it signs for `names` with its key, written to `dir` as
    /// `<prefix>.crt`, `<prefix>.key` (mode 0600) and `<prefix>-ca.crt`.
    fn certificate(dir: &Path, prefix: &str, names: &[&str]) -> [PathBuf; 3] {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let paths = [
            dir.join(format!("{prefix}.crt")),
            dir.join(format!("{prefix}.key")),
            dir.join(format!("{prefix}-ca.crt")),
        ];
        std::fs::write(&paths[0], leaf.pem()).unwrap();
        std::fs::write(&paths[1], key.serialize_pem()).unwrap();
        std::fs::set_permissions(&paths[1], std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&paths[2], ca.pem()).unwrap();
        paths
    }

    #[test]
    fn server_names_are_the_host_dialled() {
        assert!(matches!(
            server_name("127.0.0.1:6627").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:6627").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert_eq!(
            server_name("nimbus-1.example.com:6627").unwrap(),
            ServerName::try_from("nimbus-1.example.com").unwrap()
        );
        assert_eq!(
            server_name("no such host!:6627").unwrap_err().to_string(),
            "cannot check the certificate for \"no such host!\": not a host name or IP address"
        );
    }

    #[test]
    fn workers_get_the_files_only_with_worker_links() {
        let dir = tempfile::tempdir().unwrap();
        let [cert, key, ca] = certificate(dir.path(), "worker", &["squall-worker"]);
        let mut settings = TlsSettings {
            cert_chain: Some(cert.clone()),
            key: Some(key.clone()),
            ca: Some(ca.clone()),
            ..TlsSettings::default()
        };
        assert!(worker_link_env(&settings).is_empty());
        settings.worker_links = true;
        let env = worker_link_env(&settings);
        let names: Vec<&str> = env.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, WORKER_TLS_ENV);
        assert_eq!(env[3].1, "squall-worker");
        let tls = worker_link_tls(&cert, &key, &ca, settings.worker_name()).unwrap();
        assert_eq!(
            tls.server_name(),
            &ServerName::try_from("squall-worker").unwrap()
        );
        assert_eq!(
            worker_link_tls(&cert, &key, &ca, "no such name!")
                .unwrap_err()
                .to_string(),
            "cannot check the certificate for \"no such name!\": not a host name or IP address"
        );
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let [cert, key, ca] = certificate(dir.path(), "nimbus", &["127.0.0.1"]);
        server_config(&cert, &key).unwrap();
        client_config(&ca).unwrap();

        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            server_config(&cert, &key).unwrap_err().to_string(),
            format!(
                "tls.key {0}: the private key is readable by others (mode 644): make it \
                 private with `chmod 600 {0}`",
                key.display()
            )
        );
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert_eq!(
            client_config(&empty).unwrap_err().to_string(),
            format!("tls.ca {}: holds no PEM certificate", empty.display())
        );
        let missing = dir.path().join("missing.crt");
        let error = client_config(&missing).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("tls.ca {}: ", missing.display())),
            "{error}"
        );
        // A key that is not the certificate's.
        let [_, other_key, _] = certificate(dir.path(), "other", &["127.0.0.1"]);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(server_config(&cert, &other_key).is_err());
    }

    #[test]
    fn a_replaced_certificate_is_used_for_new_connections() {
        let dir = tempfile::tempdir().unwrap();
        let [cert, key, _] = certificate(dir.path(), "nimbus", &["127.0.0.1"]);
        let settings = TlsSettings {
            cert_chain: Some(cert.clone()),
            key: Some(key.clone()),
            ..TlsSettings::default()
        };
        let tls = ServerTls::from_settings(&settings).unwrap().unwrap();
        let first = tls.config();
        assert!(
            Arc::ptr_eq(&first, &tls.config()),
            "unchanged files are not read again"
        );

        // Replaced by rename, as a rotation does.
        let [new_cert, new_key, _] = certificate(dir.path(), "next", &["127.0.0.1", "localhost"]);
        std::fs::rename(&new_cert, &cert).unwrap();
        std::fs::rename(&new_key, &key).unwrap();
        let second = tls.config();
        assert!(!Arc::ptr_eq(&first, &second));

        // A half-written key keeps the last good configuration.
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        assert!(Arc::ptr_eq(&second, &tls.config()));
        assert!(
            ServerTls::from_settings(&TlsSettings::default())
                .unwrap()
                .is_none()
        );
    }
}
