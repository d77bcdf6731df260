//! TLS on the TCP links between transports (feature `tls`): records cross a link in order,
//! and a peer whose certificate the cluster's CA did not sign, or that speaks plain TCP, is
//! refused before any of its records is read.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use squall_net::WorkerId;
use squall_net::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use squall_net::transport::{DriverKind, LinkTls, PeerEvent, PeerSpec, Transport};
use support::{CheckingSink, Events, NullSink, config, is_rejected, is_up, send_records};

const SECONDS_10: Duration = Duration::from_secs(10);

/// The name every worker's certificate carries.
const WORKER_NAME: &str = "squall-worker";

/// A certificate authority and the certificates it signs.
struct Authority(CertifiedIssuer<'static, KeyPair>);

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn certificate(&self) -> CertificateDer<'static> {
        self.0.der().clone()
    }

    /// TLS settings trusting `trusted`, with a worker certificate this authority signs.
    fn link_tls(&self, trusted: &Authority) -> LinkTls {
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![WORKER_NAME.to_owned()])
            .unwrap()
            .signed_by(&key, &self.0)
            .unwrap();
        LinkTls::mutual(
            vec![trusted.certificate()],
            vec![leaf.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            ServerName::try_from(WORKER_NAME).unwrap(),
        )
        .unwrap()
    }
}

#[test]
fn records_cross_a_tls_link_in_order() {
    const PER_SOURCE: u64 = 100_000;
    let ca = Authority::new("the cluster's CA");
    let (sink_a, seen_a) = CheckingSink::new();
    let (sink_b, seen_b) = CheckingSink::new();
    let (on_a, events_a) = Events::channel();
    // Asking for io_uring gets mio: TLS runs on the mio driver.
    let a = Transport::start(
        config(1, DriverKind::IoUring).with_tls(ca.link_tls(&ca)),
        sink_a,
        on_a,
    )
    .unwrap();
    let b = Transport::start(
        config(2, DriverKind::Auto).with_tls(ca.link_tls(&ca)),
        sink_b,
        |_| {},
    )
    .unwrap();
    assert_eq!(a.driver(), DriverKind::Mio);
    assert_eq!(b.driver(), DriverKind::Mio);
    a.set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    b.set_peers([PeerSpec::tcp(WorkerId(1), a.local_addr())])
        .unwrap();
    let senders = [
        send_records(a.outbound(WorkerId(2)).unwrap(), 1, PER_SOURCE),
        send_records(a.outbound(WorkerId(2)).unwrap(), 2, PER_SOURCE),
        send_records(b.outbound(WorkerId(1)).unwrap(), 3, PER_SOURCE),
    ];
    events_a.expect(SECONDS_10, "A sees B up", is_up(2));
    for sender in senders {
        sender.join().unwrap();
    }
    let delivered = support::wait_until(SECONDS_10, || {
        seen_b.records.load(Ordering::Relaxed) == 2 * PER_SOURCE
            && seen_a.records.load(Ordering::Relaxed) == PER_SOURCE
    });
    assert!(seen_a.errors().is_empty(), "{:?}", seen_a.errors());
    assert!(seen_b.errors().is_empty(), "{:?}", seen_b.errors());
    assert!(
        delivered,
        "B got {} of {}, A got {} of {PER_SOURCE}",
        seen_b.records.load(Ordering::Relaxed),
        2 * PER_SOURCE,
        seen_a.records.load(Ordering::Relaxed)
    );
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

/// Starts a TLS listener, lets `intruder` dial it, and returns why the listener refused it.
fn refusal(listener: LinkTls, intruder: squall_net::transport::TransportConfig) -> String {
    let (sink, seen) = CheckingSink::new();
    let (on_b, events_b) = Events::channel();
    let b = Transport::start(config(2, DriverKind::Mio).with_tls(listener), sink, on_b).unwrap();
    let intruder = Transport::start(intruder, NullSink, |_| {}).unwrap();
    intruder
        .set_peers([PeerSpec::tcp(WorkerId(2), b.local_addr())])
        .unwrap();
    support::send_one(&mut intruder.outbound(WorkerId(2)).unwrap(), 9, 0);
    let PeerEvent::Rejected { reason, .. } =
        events_b.expect(SECONDS_10, "the intruder rejected", is_rejected)
    else {
        unreachable!()
    };
    assert!(
        !events_b
            .drain()
            .iter()
            .any(|event| matches!(event, PeerEvent::Up { .. })),
        "the intruder never came up"
    );
    assert_eq!(seen.records.load(Ordering::Relaxed), 0);
    intruder.shutdown().unwrap();
    b.shutdown().unwrap();
    reason
}

#[test]
fn a_peer_with_an_untrusted_certificate_is_refused() {
    let ca = Authority::new("the cluster's CA");
    let stranger = Authority::new("a stranger's CA");
    // The intruder knows the secret and trusts the cluster's CA, but its own certificate
    // comes from another authority.
    let reason = refusal(
        ca.link_tls(&ca),
        config(1, DriverKind::Mio).with_tls(stranger.link_tls(&ca)),
    );
    assert_eq!(
        reason,
        "connection failed: TLS refused: invalid peer certificate: UnknownIssuer"
    );
}

#[test]
fn a_plaintext_peer_is_refused_by_a_tls_listener() {
    let ca = Authority::new("the cluster's CA");
    let reason = refusal(ca.link_tls(&ca), config(1, DriverKind::Mio));
    assert_eq!(
        reason,
        "connection failed: TLS refused: received corrupt message of type InvalidContentType"
    );
}
