//! TLS on nimbus's port, with certificates made here: a cluster of two nimbuses and a
//! supervisor whose every connection to nimbus — the client's submit and list, the standby
//! nimbus replicating the artifact, the supervisor downloading it — goes over TLS, and a
//! client without TLS is refused with a message saying so. Real ZooKeeper, real daemons.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use squall::cluster::config::TlsSettings;
use squall::cluster::{ClientError, NimbusClient, Secret};
use squall_tests::cluster::{Cluster, Timings};
use squall_tests::workers::TEST_SECRET;

fn squall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-cli"))
}

fn contract_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_squall-test-contract-worker"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .unwrap();
}

/// A CA, written to `<prefix>-ca.crt`, and, when `names` are given, a certificate it signs
/// for them (`<prefix>.crt`, key `<prefix>.key`, mode 0600).
fn certificates(dir: &Path, prefix: &str, names: &[&str]) -> TlsSettings {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{prefix} CA"));
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let settings = TlsSettings {
        cert_chain: Some(dir.join(format!("{prefix}.crt"))),
        key: Some(dir.join(format!("{prefix}.key"))),
        ca: Some(dir.join(format!("{prefix}-ca.crt"))),
        ..TlsSettings::default()
    };
    write_file(settings.cert_chain.as_ref().unwrap(), &leaf.pem(), 0o644);
    write_file(settings.key.as_ref().unwrap(), &key.serialize_pem(), 0o600);
    write_file(settings.ca.as_ref().unwrap(), &ca.pem(), 0o644);
    settings
}

fn client_with(cluster: &Cluster, tls: TlsSettings) -> NimbusClient {
    let mut config = cluster.client_config();
    config.tls = tls;
    NimbusClient::new(config, Secret::new(TEST_SECRET, "test").unwrap())
}

#[test]
fn a_tls_cluster_submits_replicates_and_downloads_over_tls_and_refuses_plain_tcp() {
    let mut cluster = Cluster::new(&squall(), 2, 1, 2, Timings::default(), &[]);
    let tls = certificates(cluster.dir.path(), "nimbus", &["127.0.0.1", "localhost"]);
    for nimbus in &mut cluster.nimbuses {
        nimbus.config.tls = tls.clone();
        std::fs::write(&nimbus.config_path, nimbus.config.to_toml()).unwrap();
    }
    for supervisor in &mut cluster.supervisors {
        supervisor.config.tls.ca = tls.ca.clone();
        std::fs::write(&supervisor.config_path, supervisor.config.to_toml()).unwrap();
    }
    cluster.base.tls.ca = tls.ca.clone();
    // Registering the supervisor and answering the client's listing need TLS already.
    cluster.start_and_settle();

    let client = cluster.client();
    let submitted = client
        .submit_program(
            &contract_worker(),
            &strings(&["--name", "contract", "--workers", "1", "--executors", "1"]),
        )
        .expect("submits over TLS");
    assert_eq!(
        submitted.replicas,
        2,
        "the standby fetched the artifact over TLS{}",
        cluster.logs()
    );
    cluster.wait_for(
        "the worker, after its supervisor downloaded the artifact over TLS",
        Duration::from_secs(30),
        || {
            cluster
                .workers_of(0)
                .iter()
                .any(|worker| worker.topology_id == submitted.topology_id)
                .then_some(())
        },
    );
    let (topologies, supervisors) = client.list().expect("lists over TLS");
    assert_eq!(topologies.len(), 1);
    assert_eq!(supervisors.len(), 1);

    // Without TLS: refused, and told why.
    let error = client_with(&cluster, TlsSettings::default())
        .list()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "request refused: this nimbus accepts TLS connections only (set tls.ca in the client's \
         configuration)"
    );
    assert!(
        cluster.logs().contains("refused a connection without TLS"),
        "{}",
        cluster.logs()
    );

    // Trusting another CA: nimbus's certificate is not accepted.
    let stranger = certificates(cluster.dir.path(), "stranger", &["127.0.0.1"]);
    let error = client_with(
        &cluster,
        TlsSettings {
            ca: stranger.ca,
            ..TlsSettings::default()
        },
    )
    .list()
    .unwrap_err();
    assert!(
        matches!(&error, ClientError::Tls { reason, .. } if reason.contains("UnknownIssuer")),
        "{error}"
    );

    client.kill("contract", Some(0)).expect("kills over TLS");
}

#[test]
fn a_tls_client_refuses_a_nimbus_without_tls() {
    let mut cluster = Cluster::new(&squall(), 1, 0, 1, Timings::default(), &[]);
    cluster.start_and_settle();
    let tls = certificates(cluster.dir.path(), "nimbus", &["127.0.0.1"]);
    let error = client_with(
        &cluster,
        TlsSettings {
            ca: tls.ca,
            ..TlsSettings::default()
        },
    )
    .list()
    .unwrap_err();
    assert!(matches!(error, ClientError::Tls { .. }), "{error}");
    assert!(
        error.to_string().starts_with(&format!(
            "TLS with nimbus at {} failed: ",
            cluster.leader().expect("a leader").address()
        )),
        "{error}"
    );
}
