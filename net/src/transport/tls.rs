//! TLS on the TCP links between workers (feature `tls`): the rustls configurations both
//! ends of a link use, and the per-connection session the mio driver runs.
//!
//! A worker dials with its [`ClientConfig`](rustls::ClientConfig) and checks that the peer's
//! certificate names [`LinkTls::server_name`]; it accepts with its
//! [`ServerConfig`](rustls::ServerConfig). The wire protocol inside is unchanged: the
//! HELLO/AUTH handshake still proves the cluster secret, TLS adds confidentiality and the
//! certificates' identities. Shared-memory and in-process links are host-local and stay as
//! they are.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::buf::{MAX_CHUNKS, RecvBuf, SendQueue};

/// The TLS settings of a transport's TCP links: how it dials, how it accepts, and the name
/// a peer's certificate must carry.
#[derive(Debug, Clone)]
pub struct LinkTls {
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    server_name: ServerName<'static>,
}

impl LinkTls {
    /// Links dialled with `client`, checking that the peer's certificate names
    /// `server_name`, and accepted with `server`.
    pub fn new(
        client: Arc<rustls::ClientConfig>,
        server: Arc<rustls::ServerConfig>,
        server_name: ServerName<'static>,
    ) -> Self {
        Self {
            client,
            server,
            server_name,
        }
    }

    /// Mutually authenticated links on rustls' *ring* provider: every worker presents
    /// `cert_chain` (with `key`) both when dialling and when accepting, and accepts only
    /// peers whose certificate chains to one of `ca` — the dialled one must also name
    /// `server_name`.
    ///
    /// # Errors
    /// When rustls refuses the CA certificates, the chain or the key.
    pub fn mutual(
        ca: Vec<CertificateDer<'static>>,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        server_name: ServerName<'static>,
    ) -> Result<Self, rustls::Error> {
        let provider = provider();
        let mut roots = rustls::RootCertStore::empty();
        for certificate in ca {
            roots.add(certificate)?;
        }
        let roots = Arc::new(roots);
        let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::clone(&roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|error| rustls::Error::General(error.to_string()))?;
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(cert_chain.clone(), key.clone_key())?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(cert_chain, key)?;
        Ok(Self::new(Arc::new(client), Arc::new(server), server_name))
    }

    /// The configuration of dialled links.
    pub fn client(&self) -> &Arc<rustls::ClientConfig> {
        &self.client
    }

    /// The configuration of accepted links.
    pub fn server(&self) -> &Arc<rustls::ServerConfig> {
        &self.server
    }

    /// The name a dialled peer's certificate must carry.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }
}

/// rustls on *ring*, as the control plane uses it; it builds from its crate alone. rustls
/// marks this constructor deprecated because *ring* offers no post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a [`TlsSession::read`] stopped.
#[derive(Debug)]
pub(crate) enum ReadStop {
    /// The receive buffer is full; more may wait in the socket or in rustls.
    Full,
    /// The socket has nothing more for now.
    WouldBlock,
    /// The stream ended and every byte of it is in the receive buffer.
    Eof,
    /// The socket failed, or the peer broke TLS (a refused certificate, garbage).
    Failed(io::Error),
}

/// Why a [`TlsSession::write`] stopped.
#[derive(Debug)]
pub(crate) enum WriteStop {
    /// Everything that can go out now went out.
    Drained,
    /// The socket takes no more for now.
    WouldBlock,
    /// The socket failed.
    Failed(io::Error),
}

/// One connection's TLS state: ciphertext goes between the socket and rustls, plaintext
/// between rustls and the connection's buffers.
#[derive(Debug)]
pub(crate) struct TlsSession {
    conn: rustls::Connection,
}

impl TlsSession {
    /// The dialling side of a link.
    pub(crate) fn client(tls: &LinkTls) -> io::Result<Self> {
        let conn = rustls::ClientConnection::new(Arc::clone(&tls.client), tls.server_name.clone())
            .map_err(|error| tls_error("cannot start a TLS session", error))?;
        Ok(Self { conn: conn.into() })
    }

    /// The accepting side of a link.
    pub(crate) fn server(tls: &LinkTls) -> io::Result<Self> {
        let conn = rustls::ServerConnection::new(Arc::clone(&tls.server))
            .map_err(|error| tls_error("cannot start a TLS session", error))?;
        Ok(Self { conn: conn.into() })
    }

    /// Whether [`write`](Self::write) has something to do with `queued` plaintext bytes
    /// waiting: TLS records to send, or plaintext rustls can take. Plaintext queued during
    /// the handshake waits in rustls until it completes, so it does not count then.
    pub(crate) fn has_output(&self, queued: usize) -> bool {
        self.conn.wants_write() || (queued > 0 && !self.conn.is_handshaking())
    }

    /// Moves plaintext into `recv` — what rustls holds first, then what it decrypts from
    /// `socket` — until the buffer is full or the socket would block; returns whether
    /// plaintext arrived, and why it stopped.
    pub(crate) fn read(&mut self, socket: &mut impl Read, recv: &mut RecvBuf) -> (bool, ReadStop) {
        let mut got = false;
        loop {
            let spare = recv.spare_mut();
            if spare.is_empty() {
                return (got, ReadStop::Full);
            }
            match self.conn.reader().read(spare) {
                // The peer's close_notify.
                Ok(0) => return (got, ReadStop::Eof),
                Ok(n) => {
                    recv.filled(n);
                    got = true;
                    continue;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without close_notify: the wire protocol's CLOSE frame,
                // not TLS, tells an orderly end from a cut one, as on plain TCP.
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return (got, ReadStop::Eof);
                }
                Err(error) => return (got, ReadStop::Failed(error)),
            }
            match self.conn.read_tls(socket) {
                // rustls remembers the end; its reader reports it once the plaintext is out.
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return (got, ReadStop::WouldBlock);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return (got, ReadStop::Failed(error)),
            }
            if let Err(error) = self.conn.process_new_packets() {
                return (got, ReadStop::Failed(tls_error("TLS refused", error)));
            }
        }
    }

    /// Hands plaintext from `send` to rustls and writes TLS records to `socket`, vectored,
    /// until nothing is left to write or the socket would block; returns whether bytes left
    /// the queue, and why it stopped.
    pub(crate) fn write(
        &mut self,
        socket: &mut impl Write,
        send: &mut SendQueue,
    ) -> (bool, WriteStop) {
        let mut moved = false;
        loop {
            while send.queued() > 0 {
                let mut slices = [IoSlice::new(&[]); MAX_CHUNKS];
                let mut count = 0;
                for (slot, segment) in slices.iter_mut().zip(send.segments()) {
                    *slot = IoSlice::new(segment);
                    count += 1;
                }
                match self.conn.writer().write_vectored(&slices[..count]) {
                    // rustls' buffer is full: write records out first.
                    Ok(0) => break,
                    Ok(n) => {
                        send.advance(n);
                        moved = true;
                    }
                    Err(error) => return (moved, WriteStop::Failed(error)),
                }
            }
            if !self.conn.wants_write() {
                return (moved, WriteStop::Drained);
            }
            match self.conn.write_tls(socket) {
                Ok(0) => return (moved, WriteStop::Failed(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return (moved, WriteStop::WouldBlock);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return (moved, WriteStop::Failed(error)),
            }
        }
    }
}

fn tls_error(what: &str, error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    /// A CA and a certificate it signs for `name`.
    fn link_tls(name: &str) -> LinkTls {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        LinkTls::mutual(
            vec![ca.der().clone()],
            vec![leaf.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            ServerName::try_from(name.to_owned()).unwrap(),
        )
        .unwrap()
    }

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// Runs both sessions until neither makes progress, or one fails.
    fn pump(
        sessions: [&mut TlsSession; 2],
        sockets: [&mut UnixStream; 2],
        bufs: [&mut (RecvBuf, SendQueue); 2],
    ) -> Result<(), io::Error> {
        let [client, server] = sessions;
        let [client_socket, server_socket] = sockets;
        let [client_bufs, server_bufs] = bufs;
        for _ in 0..1000 {
            let mut progress = false;
            for (session, socket, (recv, send)) in [
                (&mut *client, &mut *client_socket, &mut *client_bufs),
                (&mut *server, &mut *server_socket, &mut *server_bufs),
            ] {
                let had_output = session.has_output(send.queued());
                if let (_, WriteStop::Failed(error)) = session.write(socket, send) {
                    return Err(error);
                }
                progress |= had_output;
                match session.read(socket, recv) {
                    (_, ReadStop::Failed(error)) => return Err(error),
                    (got, _) => progress |= got,
                }
            }
            if !progress {
                return Ok(());
            }
        }
        Ok(())
    }

    fn bufs() -> (RecvBuf, SendQueue) {
        (RecvBuf::new(1 << 10, 1 << 20), SendQueue::new(4 << 10))
    }

    #[test]
    fn plaintext_crosses_in_order_through_small_buffers() {
        let tls = link_tls("worker.test");
        let mut client = TlsSession::client(&tls).unwrap();
        let mut server = TlsSession::server(&tls).unwrap();
        let (mut a, mut b) = pair();
        let (mut client_bufs, mut server_bufs) = (bufs(), bufs());
        let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut received = Vec::new();
        let mut offset = 0;
        while received.len() < message.len() {
            while offset < message.len()
                && let Some(room) = client_bufs.1.space(1)
            {
                let n = room.len().min(3000).min(message.len() - offset);
                room[..n].copy_from_slice(&message[offset..offset + n]);
                client_bufs.1.commit(n);
                offset += n;
            }
            pump(
                [&mut client, &mut server],
                [&mut a, &mut b],
                [&mut client_bufs, &mut server_bufs],
            )
            .unwrap();
            let recv = &mut server_bufs.0;
            received.extend_from_slice(recv.data());
            let len = recv.data().len();
            recv.consume(len);
        }
        assert!(received == message, "the bytes arrive whole and in order");
    }

    #[test]
    fn an_untrusted_peer_is_refused() {
        let ours = link_tls("worker.test");
        let theirs = link_tls("worker.test");
        let mut client = TlsSession::client(&theirs).unwrap();
        let mut server = TlsSession::server(&ours).unwrap();
        let (mut a, mut b) = pair();
        let error = pump(
            [&mut client, &mut server],
            [&mut a, &mut b],
            [&mut bufs(), &mut bufs()],
        )
        .unwrap_err();
        // Both authorities carry rcgen's default name: the signature gives the stranger away.
        assert_eq!(
            error.to_string(),
            "TLS refused: invalid peer certificate: BadSignature"
        );
    }
}
