//! `--tls`: the workers of a run link with TLS, with a certificate authority and a worker
//! certificate made for the run alone and handed to the workers exactly as a supervisor with
//! `tls.worker_links` hands them its files.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use squall::cluster::config::TlsSettings;

/// The name the run's worker certificate carries.
const WORKER_NAME: &str = "squall-bench-worker";

/// Writes a throwaway CA and a worker certificate it signs into `dir`, and returns the
/// environment that makes a worker link with them.
pub fn throwaway_certificates(dir: &Path) -> anyhow::Result<Vec<(&'static str, OsString)>> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)
        .context("making the run's certificate authority")?;
    let key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec![WORKER_NAME.to_owned()])?
        .signed_by(&key, &ca)
        .context("making the run's worker certificate")?;
    let [cert_path, key_path, ca_path] =
        ["worker.crt", "worker.key", "ca.crt"].map(|name| dir.join(name));
    std::fs::write(&cert_path, leaf.pem())?;
    // Workers refuse a key others may read.
    std::fs::write(&key_path, key.serialize_pem())?;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(&ca_path, ca.pem())?;
    let settings = TlsSettings {
        cert_chain: Some(cert_path),
        key: Some(key_path),
        ca: Some(ca_path),
        worker_links: true,
        worker_name: Some(WORKER_NAME.to_owned()),
    };
    Ok(squall::cluster::tls::worker_link_env(&settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificates_make_a_worker_link_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let env = throwaway_certificates(dir.path()).unwrap();
        let value = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("{name} is set"))
        };
        let [cert, key, ca, name] = squall::cluster::tls::WORKER_TLS_ENV.map(value);
        squall::cluster::tls::worker_link_tls(
            Path::new(&cert),
            Path::new(&key),
            Path::new(&ca),
            &name.to_string_lossy(),
        )
        .unwrap();
    }
}
