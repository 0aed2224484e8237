//! The SIP sockets: one UDP socket, and TCP and TLS (RFC 3261 §18) through the sans-IO
//! connection table `sip::transport::conns`.
//!
//! The drive loop (`rt::mod`) keeps its shape: it reads UDP datagrams from [`SipNet`] as it
//! read them from its socket, hands every [`Transmit`] to [`SipNet::send`], and gets whole
//! messages framed off connections from [`SipNet::recv_stream`]. The stream side runs in
//! a task of its own that owns the connection table and the TCP sockets:
//!
//! ```text
//!  drive loop ──Transmit (tcp/tls)──▶ ┌──────────── stream task ────────────┐ ◀── accept (listeners)
//!             ◀──StreamMessage──────  │ Connections (framing, rustls, idle)  │ ◀─▶ reader/writer task
//!                                     └──────────────────────────────────────┘     per connection
//! ```
//! Each connection has a reader task (bytes in) and a writer task (bytes out, in order);
//! connecting has a time limit. Whatever the table decides (close on a framing or TLS
//! error, on idleness) is carried out here; nothing here decides.
//!
//! Not here: any SIP logic (the node's UA), DNS (`rt::dns`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::api::metrics::{Metrics, SipDirection};
use crate::config::Config;
use crate::sip::transport::conns::{ConnConfig, ConnId, ConnOutput, Connections};
use crate::sip::transport::{Transport, tls};
use crate::sip::ua::Transmit;

/// How long opening a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages framed off connections waiting for the drive loop before readers pause.
const INBOX: usize = 1024;

/// A whole SIP message that came over a TCP or TLS connection.
#[derive(Debug)]
pub struct StreamMessage {
    pub source: SocketAddr,
    pub transport: Transport,
    pub bytes: Vec<u8>,
}

/// A trunk reached over TLS: the name its certificate must carry, and its own CA.
#[derive(Clone)]
pub struct TlsPeer {
    pub addr: SocketAddr,
    pub name: Option<String>,
    pub ca: Option<Arc<rustls::ClientConfig>>,
}

enum Cmd {
    Send(Transmit),
    Peer(TlsPeer),
}

enum Ev {
    Accepted(TcpStream, SocketAddr, Transport),
    Connected(ConnId, TcpStream),
    ConnectFailed(ConnId),
    Data(ConnId, Vec<u8>),
    Eof(ConnId),
}

/// The SIP sockets of one process.
pub struct SipNet {
    udp: UdpSocket,
    cmds: mpsc::UnboundedSender<Cmd>,
    /// Only the drive loop reads it; the lock lets it do so beside `recv_from` in one
    /// `select!` (both borrow the `SipNet`).
    inbox: tokio::sync::Mutex<mpsc::Receiver<StreamMessage>>,
    listeners: Vec<(Transport, SocketAddr)>,
}

impl SipNet {
    /// Binds the UDP socket and the `sip.tcp` / `sip.tls` listeners, and starts the stream
    /// task (also without listeners: trunks may be reached over TCP or TLS).
    pub async fn bind(cfg: &Config) -> anyhow::Result<SipNet> {
        let udp = UdpSocket::bind(cfg.sip.listen)
            .await
            .with_context(|| format!("binding SIP UDP socket {}", cfg.sip.listen))?;
        let mut conn_cfg = ConnConfig {
            idle_timeout: cfg.connection_idle().map_err(anyhow::Error::msg)?,
            ..ConnConfig::default()
        };
        if let Some(addr) = cfg.sip.tls {
            let (cert, key) = match (&cfg.sip.tls_cert, &cfg.sip.tls_key) {
                (Some(c), Some(k)) => (c, k),
                _ => anyhow::bail!(
                    "sip.tls {addr} needs sip.tls_cert and sip.tls_key (--tls-cert, --tls-key)"
                ),
            };
            let cert_pem = std::fs::read(cert)
                .with_context(|| format!("reading sip.tls_cert {}", cert.display()))?;
            let key_pem = std::fs::read(key)
                .with_context(|| format!("reading sip.tls_key {}", key.display()))?;
            let what = format!(
                "sip.tls_cert {} / sip.tls_key {}",
                cert.display(),
                key.display()
            );
            conn_cfg.tls_server = Some(tls::server_config(&cert_pem, &key_pem, &what)?);
        }
        // Outbound TLS without a trunk CA of its own trusts the system's; a machine without
        // any only matters once a trunk uses TLS (it is refused then, and logged).
        conn_cfg.tls_client = match tls::system_client_config() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "no system CA certificates for outbound SIP over TLS");
                None
            }
        };
        let mut listeners = Vec::new();
        let mut sockets = Vec::new();
        for (t, addr) in [(Transport::Tcp, cfg.sip.tcp), (Transport::Tls, cfg.sip.tls)] {
            let Some(addr) = addr else { continue };
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding SIP {} listener {addr}", t.via_token()))?;
            let local = l.local_addr()?;
            tracing::info!(local_addr = %local, transport = %t, "SIP listening");
            listeners.push((t, local));
            sockets.push((t, l));
        }
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox) = mpsc::channel(INBOX);
        tokio::spawn(run(Connections::new(conn_cfg), cmd_rx, inbox_tx, sockets));
        Ok(SipNet {
            udp,
            cmds,
            inbox: tokio::sync::Mutex::new(inbox),
            listeners,
        })
    }

    /// The UDP socket's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The TCP and TLS listeners' addresses (for Via and Contact).
    pub fn listeners(&self) -> Vec<(Transport, SocketAddr)> {
        self.listeners.clone()
    }

    /// Outbound TLS to `peer.addr` verifies this name (and CA).
    pub fn tls_peer(&self, peer: TlsPeer) {
        let _ = self.cmds.send(Cmd::Peer(peer));
    }

    pub fn try_recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.udp.try_recv_from(buf)
    }

    pub async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.udp.recv_from(buf).await
    }

    /// The next message framed off a connection.
    pub async fn recv_stream(&self) -> Option<StreamMessage> {
        self.inbox.lock().await.recv().await
    }

    /// Sends a message the node produced, over the transport it names.
    pub fn send(&self, t: Transmit, metrics: &Metrics) {
        metrics.sip_datagram(SipDirection::Out, &t.payload);
        match t.transport {
            // Non-blocking: a full socket buffer drops the datagram (SIP retransmits).
            Transport::Udp => {
                if let Err(e) = self.udp.try_send_to(&t.payload, t.dest) {
                    tracing::debug!(dest = %t.dest, error = %e, "SIP send failed");
                }
            }
            _ => {
                let _ = self.cmds.send(Cmd::Send(t));
            }
        }
    }
}

/// The stream task: the connection table and what it asks for.
async fn run(
    mut conns: Connections,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    inbox: mpsc::Sender<StreamMessage>,
    listeners: Vec<(Transport, TcpListener)>,
) {
    let (ev_tx, mut ev_rx) = mpsc::channel::<Ev>(INBOX);
    for (transport, l) in listeners {
        let ev_tx = ev_tx.clone();
        tokio::spawn(async move {
            loop {
                match l.accept().await {
                    Ok((stream, remote)) => {
                        let _ = stream.set_nodelay(true);
                        if ev_tx
                            .send(Ev::Accepted(stream, remote, transport))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of descriptors and the like: do not spin.
                        tracing::warn!(error = %e, %transport, "SIP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    let mut writers: HashMap<ConnId, Io> = HashMap::new();
    loop {
        let wake = conns
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(Cmd::Send(t)) => {
                    if !conns.send(Instant::now(), t.transport, t.dest, &t.payload) {
                        tracing::debug!(dest = %t.dest, transport = %t.transport, "SIP message not sent: no connection possible");
                    }
                }
                Some(Cmd::Peer(p)) => {
                    if let Some(name) = &p.name {
                        conns.set_server_name(p.addr, name);
                    }
                    if let Some(ca) = p.ca {
                        conns.set_peer_tls(p.addr, ca);
                    }
                }
            },
            Some(ev) = ev_rx.recv() => {
                let now = Instant::now();
                match ev {
                    Ev::Accepted(stream, remote, transport) => {
                        if let Some(id) = conns.accepted(now, remote, transport) {
                            writers.insert(id, Io::start(id, stream, ev_tx.clone()));
                        }
                    }
                    // A connection closed while it was being opened is dropped here.
                    Ev::Connected(id, stream) if conns.is_open(id) => {
                        writers.insert(id, Io::start(id, stream, ev_tx.clone()));
                        conns.connected(now, id);
                    }
                    Ev::Connected(..) => {}
                    Ev::ConnectFailed(id) => conns.closed(now, id),
                    Ev::Data(id, bytes) => conns.received(now, id, &bytes),
                    Ev::Eof(id) => {
                        writers.remove(&id);
                        conns.closed(now, id);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => conns.handle_timeout(Instant::now()),
        }
        while let Some(out) = conns.poll_output() {
            match out {
                ConnOutput::Connect { conn, remote } => {
                    let ev_tx = ev_tx.clone();
                    tokio::spawn(async move {
                        let ev =
                            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote))
                                .await
                            {
                                Ok(Ok(s)) => {
                                    let _ = s.set_nodelay(true);
                                    Ev::Connected(conn, s)
                                }
                                Ok(Err(e)) => {
                                    tracing::info!(%remote, error = %e, "SIP connection failed");
                                    Ev::ConnectFailed(conn)
                                }
                                Err(_) => {
                                    tracing::info!(%remote, "SIP connection timed out");
                                    Ev::ConnectFailed(conn)
                                }
                            };
                        let _ = ev_tx.send(ev).await;
                    });
                }
                ConnOutput::Write { conn, bytes } => {
                    if let Some(io) = writers.get(&conn) {
                        let _ = io.tx.send(bytes);
                    }
                }
                ConnOutput::Close { conn } => {
                    // Dropping the writer's queue flushes what is in it, then shuts down.
                    if let Some(io) = writers.remove(&conn) {
                        io.reader.abort();
                    }
                }
                ConnOutput::Message {
                    source,
                    transport,
                    bytes,
                } => {
                    if inbox
                        .send(StreamMessage {
                            source,
                            transport,
                            bytes,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    }
}

/// One connection's reader and writer tasks.
struct Io {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    reader: tokio::task::AbortHandle,
}

impl Io {
    fn start(id: ConnId, stream: TcpStream, ev_tx: mpsc::Sender<Ev>) -> Io {
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let events = ev_tx.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = events.send(Ev::Eof(id)).await;
                        return;
                    }
                    Ok(n) => {
                        if events.send(Ev::Data(id, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .abort_handle();
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    let _ = ev_tx.send(Ev::Eof(id)).await;
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        Io { tx, reader }
    }
}

/// Tells the node what it needs to know about the sockets, the media settings and where
/// its trunks are (`rt::dns`), and the stream task which names the trunks reached over TLS
/// must present (and with which CA).
pub fn setup(
    cfg: &Config,
    sip: &SipNet,
    node: &mut crate::node::Node,
    trunks: &[super::dns::TrunkDns],
) -> anyhow::Result<()> {
    node.engine_mut().ua_mut().set_listeners(sip.listeners());
    node.engine_mut()
        .set_media_options(cfg.media_options().map_err(anyhow::Error::msg)?);
    let peers = sip.peers(cfg)?;
    for d in trunks {
        super::dns::apply(node, d);
        peers.announce(d);
    }
    Ok(())
}

/// What the stream task must know to verify trunks over TLS, by the trunk's configured
/// `host[:port]`: the name their certificates carry (RFC 5922: the configured domain,
/// also for targets found through SRV) and their own CA.
#[derive(Clone)]
pub struct Peers {
    cmds: mpsc::UnboundedSender<Cmd>,
    by_host: HashMap<String, (Option<String>, Option<Arc<rustls::ClientConfig>>)>,
}

impl Peers {
    /// Tells the stream task about the TLS targets of one located trunk address.
    pub fn announce(&self, d: &super::dns::TrunkDns) {
        let Some((name, ca)) = self.by_host.get(&d.hostport) else {
            return;
        };
        for t in d.targets.iter().filter(|t| t.transport == Transport::Tls) {
            let _ = self.cmds.send(Cmd::Peer(TlsPeer {
                addr: t.addr,
                name: name.clone(),
                ca: ca.clone(),
            }));
        }
    }
}

impl SipNet {
    /// The trunks' TLS names and CAs (each `ca_file` read and checked here).
    pub fn peers(&self, cfg: &Config) -> anyhow::Result<Peers> {
        let mut by_host = HashMap::new();
        for t in &cfg.trunks {
            let ca = match &t.ca_file {
                None => None,
                Some(f) => {
                    let what = format!("trunks[{}].ca_file {}", t.name, f.display());
                    let pem = std::fs::read(f).with_context(|| format!("reading {what}"))?;
                    Some(tls::client_config(&pem, &what)?)
                }
            };
            let registrar = t.registrar.as_deref().unwrap_or(&t.proxy);
            for hostport in [t.proxy.as_str(), registrar] {
                by_host.insert(hostport.to_owned(), (tls_name(hostport), ca.clone()));
            }
        }
        Ok(Peers {
            cmds: self.cmds.clone(),
            by_host,
        })
    }
}

/// The name a TLS peer configured as `host[:port]` must present: the host when it is a
/// name; `None` for an address (the address itself is verified then).
fn tls_name(hostport: &str) -> Option<String> {
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && !h.is_empty() => h,
        _ => hostport,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_ok() || hostport.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(host.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tls_names_of_trunk_hosts() {
        assert_eq!(
            super::tls_name("sip.example.net:5061").as_deref(),
            Some("sip.example.net")
        );
        assert_eq!(
            super::tls_name("sip.example.net").as_deref(),
            Some("sip.example.net")
        );
        assert_eq!(super::tls_name("192.0.2.1:5061"), None);
        assert_eq!(super::tls_name("[::1]:5061"), None);
        assert_eq!(super::tls_name("::1"), None);
    }
}
