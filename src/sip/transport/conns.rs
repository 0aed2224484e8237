//! The connection table for SIP over TCP and TLS, sans-IO.
//!
//! ```text
//!  rt: accept ──accepted(now, remote, transport)──▶ ┌─────────────┐ ──Message{source,..}──▶ node
//!  rt: bytes  ──received(now, conn, bytes)────────▶ │ Connections │ ──Write{conn, bytes}──▶ rt
//!  rt: EOF    ──closed(now, conn)─────────────────▶ │  (framing,  │ ──Connect{conn, ..}───▶ rt
//!  node: SIP  ──send(now, transport, dest, bytes)─▶ │   rustls)   │ ──Close{conn}─────────▶ rt
//!  timers     ──handle_timeout(now)───────────────▶ └─────────────┘ ──poll_timeout()
//! ```
//! A connection is known by its transport and remote address: a response goes back on the
//! connection its request came on, an in-dialog request to the same address reuses it, and
//! a message for an address with no connection opens one (outbound TLS verifies the peer's
//! certificate for the name set with [`Connections::set_server_name`]). Bytes written while
//! a connection is being opened wait in it. A connection with no traffic for the idle
//! timeout is closed, and an accepted one that has not delivered a whole message within
//! [`FIRST_MESSAGE_TIMEOUT`] (a half-done TLS handshake, a trickle of bytes) sooner; so is
//! one whose peer breaks the framing limits or the TLS protocol (the reason is logged with
//! the peer's address).
//!
//! Not here: sockets (the runtime reads and writes them and reports what happened).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use super::Transport;
use super::framing::{Frame, Framer, Limits, PONG};

/// An accepted connection must deliver its first whole message within this long.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection's id, given by the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Settings of the table.
#[derive(Clone)]
pub struct ConnConfig {
    pub limits: Limits,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
    /// For accepted TLS connections (`tls:` listeners).
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// For TLS connections we open (trunks).
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// At most this many connections at once; an accept beyond it is closed at once.
    pub max_connections: usize,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(600),
            tls_server: None,
            tls_client: None,
            max_connections: 4096,
        }
    }
}

/// What the table wants done.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnOutput {
    /// Open a TCP connection to `remote`; answer with [`Connections::connected`] or
    /// [`Connections::closed`].
    Connect { conn: ConnId, remote: SocketAddr },
    /// Write these bytes on the connection, in order.
    Write { conn: ConnId, bytes: Vec<u8> },
    /// Close the socket (after writing what was queued).
    Close { conn: ConnId },
    /// A whole SIP message from `source` over `transport`, for the node.
    Message {
        source: SocketAddr,
        transport: Transport,
        bytes: Vec<u8>,
    },
}

/// Counters for operators.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnStats {
    pub accepted: u64,
    pub opened: u64,
    pub closed_idle: u64,
    pub closed_framing: u64,
    pub closed_tls: u64,
    pub refused_full: u64,
}

struct Conn {
    remote: SocketAddr,
    transport: Transport,
    framer: Framer,
    tls: Option<rustls::Connection>,
    /// TCP connect not yet done (plaintext and TLS records wait in `pending`).
    connecting: bool,
    pending: Vec<u8>,
    last_active: Instant,
    /// Accepted, and no whole message delivered yet: since when.
    unproven_since: Option<Instant>,
}

pub struct Connections {
    cfg: ConnConfig,
    conns: HashMap<ConnId, Conn>,
    by_remote: HashMap<(Transport, SocketAddr), ConnId>,
    server_names: HashMap<SocketAddr, ServerName<'static>>,
    /// Client configurations for particular peers (a trunk with its own CA).
    peer_tls: HashMap<SocketAddr, Arc<rustls::ClientConfig>>,
    next_id: u64,
    out: VecDeque<ConnOutput>,
    next_check: Option<Instant>,
    pub stats: ConnStats,
    scratch: Vec<u8>,
}

impl Connections {
    pub fn new(cfg: ConnConfig) -> Connections {
        Connections {
            cfg,
            conns: HashMap::new(),
            by_remote: HashMap::new(),
            server_names: HashMap::new(),
            peer_tls: HashMap::new(),
            next_id: 1,
            out: VecDeque::new(),
            next_check: None,
            stats: ConnStats::default(),
            scratch: vec![0u8; 16 * 1024],
        }
    }

    /// Connections open (or opening) now.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The name a TLS connection to `addr` must present a certificate for (a trunk's host
    /// name); without one, the address itself is verified.
    pub fn set_server_name(&mut self, addr: SocketAddr, name: &str) {
        if let Ok(n) = ServerName::try_from(name.to_owned()) {
            self.server_names.insert(addr, n);
        }
    }

    /// TLS connections to `addr` verify its certificate with `cfg` (a trunk's own CA)
    /// instead of the table's default client configuration.
    pub fn set_peer_tls(&mut self, addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) {
        self.peer_tls.insert(addr, cfg);
    }

    fn id(&mut self) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        id
    }

    fn arm(&mut self, now: Instant) {
        if self.next_check.is_none() {
            self.next_check = Some(now + self.check_every());
        }
    }

    fn check_every(&self) -> Duration {
        (self.cfg.idle_timeout.min(FIRST_MESSAGE_TIMEOUT) / 8).max(Duration::from_millis(100))
    }

    /// A connection the runtime accepted on a `transport` listener. `None`: refused (the
    /// table is full, or TLS has no certificate); the runtime closes the socket.
    pub fn accepted(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        transport: Transport,
    ) -> Option<ConnId> {
        if self.conns.len() >= self.cfg.max_connections {
            self.stats.refused_full += 1;
            tracing::warn!(%remote, max = self.cfg.max_connections, "SIP connection refused: too many connections");
            return None;
        }
        let tls = match transport {
            Transport::Tls => {
                let cfg = self.cfg.tls_server.clone()?;
                Some(rustls::Connection::Server(
                    rustls::ServerConnection::new(cfg).ok()?,
                ))
            }
            _ => None,
        };
        let id = self.id();
        self.stats.accepted += 1;
        self.conns.insert(
            id,
            Conn {
                remote,
                transport,
                framer: Framer::new(self.cfg.limits),
                tls,
                connecting: false,
                pending: Vec::new(),
                last_active: now,
                unproven_since: Some(now),
            },
        );
        // A newer connection from the same address replaces the older one for sending.
        self.by_remote.insert((transport, remote), id);
        self.arm(now);
        Some(id)
    }

    /// Whether `conn` is still in the table (not closed meanwhile).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// A connection we asked for ([`ConnOutput::Connect`]) is up.
    pub fn connected(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.connecting = false;
        c.last_active = now;
        self.flush(conn);
    }

    /// The socket closed or failed: forget the connection.
    pub fn closed(&mut self, _now: Instant, conn: ConnId) {
        self.forget(conn);
    }

    fn forget(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn)
            && self.by_remote.get(&(c.transport, c.remote)) == Some(&conn)
        {
            self.by_remote.remove(&(c.transport, c.remote));
        }
    }

    fn close(&mut self, conn: ConnId) {
        self.forget(conn);
        self.out.push_back(ConnOutput::Close { conn });
    }

    /// Bytes read from the connection's socket.
    pub fn received(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Connections {
            conns,
            scratch,
            out,
            ..
        } = self;
        let Some(c) = conns.get_mut(&conn) else {
            return;
        };
        c.last_active = now;
        let mut failed = None;
        if let Some(tls) = c.tls.as_mut() {
            let mut input = bytes;
            while !input.is_empty() && failed.is_none() {
                if let Err(e) = tls.read_tls(&mut input) {
                    failed = Some(e.to_string());
                    break;
                }
                let state = tls.process_new_packets();
                // Whatever rustls has to say (handshake, an alert) goes out first.
                let mut w = Vec::new();
                while tls.wants_write() {
                    if tls.write_tls(&mut w).is_err() {
                        break;
                    }
                }
                if !w.is_empty() && !c.connecting {
                    out.push_back(ConnOutput::Write { conn, bytes: w });
                } else {
                    c.pending.extend_from_slice(&w);
                }
                match state {
                    Ok(_) => loop {
                        match tls.reader().read(scratch) {
                            Ok(0) => break,
                            Ok(n) => c.framer.push(&scratch[..n]),
                            Err(_) => break,
                        }
                    },
                    Err(e) => failed = Some(e.to_string()),
                }
            }
        } else {
            c.framer.push(bytes);
        }
        if let Some(error) = failed {
            self.stats.closed_tls += 1;
            tracing::info!(remote = %c.remote, %error, "SIP over TLS: protocol error; closing the connection");
            self.close(conn);
            return;
        }
        // The handshake done, anything queued meanwhile can go.
        self.flush(conn);
        self.deliver(conn);
    }

    /// Hands whole messages to the node; answers pings; closes on framing errors.
    fn deliver(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.framer.poll() {
                Ok(Some(Frame::Message(bytes))) => {
                    c.unproven_since = None;
                    self.out.push_back(ConnOutput::Message {
                        source: c.remote,
                        transport: c.transport,
                        bytes,
                    })
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = self.write_plain(conn, PONG);
                }
                Ok(None) => return,
                Err(e) => {
                    self.stats.closed_framing += 1;
                    tracing::info!(remote = %c.remote, transport = %c.transport, error = %e, "SIP stream broken; closing the connection");
                    self.close(conn);
                    return;
                }
            }
        }
    }

    /// Writes `bytes` on `conn` (encrypting for TLS); queued while connecting.
    fn write_plain(&mut self, conn: ConnId, bytes: &[u8]) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        match c.tls.as_mut() {
            Some(tls) => {
                if tls.writer().write_all(bytes).is_err() {
                    return false;
                }
            }
            None => c.pending.extend_from_slice(bytes),
        }
        self.flush(conn);
        true
    }

    /// Moves what is ready to the socket, unless the TCP connection is still opening.
    fn flush(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.connecting {
            return;
        }
        if let Some(tls) = c.tls.as_mut() {
            while tls.wants_write() {
                if tls.write_tls(&mut c.pending).is_err() {
                    break;
                }
            }
        }
        if !c.pending.is_empty() {
            let bytes = std::mem::take(&mut c.pending);
            self.out.push_back(ConnOutput::Write { conn, bytes });
        }
    }

    /// A message from the node for `dest` over a stream `transport`: on the connection to
    /// that address, or on a new one. `false` when it cannot be sent (TLS to a peer without
    /// a client configuration, or an invalid server name); SIP's own timers then act.
    pub fn send(
        &mut self,
        now: Instant,
        transport: Transport,
        dest: SocketAddr,
        payload: &[u8],
    ) -> bool {
        if transport == Transport::Udp {
            return false;
        }
        let conn = match self.by_remote.get(&(transport, dest)) {
            Some(id) => *id,
            None => match self.open(now, transport, dest) {
                Some(id) => id,
                None => return false,
            },
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_active = now;
        }
        self.write_plain(conn, payload)
    }

    fn open(&mut self, now: Instant, transport: Transport, dest: SocketAddr) -> Option<ConnId> {
        if self.conns.len() >= self.cfg.max_connections {
            self.stats.refused_full += 1;
            return None;
        }
        let tls = match transport {
            Transport::Tls => {
                let Some(cfg) = self
                    .peer_tls
                    .get(&dest)
                    .cloned()
                    .or_else(|| self.cfg.tls_client.clone())
                else {
                    tracing::warn!(%dest, "SIP over TLS to a peer, but no TLS client configuration");
                    return None;
                };
                let name = self
                    .server_names
                    .get(&dest)
                    .cloned()
                    .unwrap_or_else(|| ServerName::IpAddress(dest.ip().into()));
                match rustls::ClientConnection::new(cfg, name) {
                    Ok(c) => Some(rustls::Connection::Client(c)),
                    Err(e) => {
                        tracing::warn!(%dest, error = %e, "cannot start TLS");
                        return None;
                    }
                }
            }
            _ => None,
        };
        let id = self.id();
        self.stats.opened += 1;
        self.conns.insert(
            id,
            Conn {
                remote: dest,
                transport,
                framer: Framer::new(self.cfg.limits),
                tls,
                connecting: true,
                pending: Vec::new(),
                last_active: now,
                unproven_since: None,
            },
        );
        self.by_remote.insert((transport, dest), id);
        self.out.push_back(ConnOutput::Connect {
            conn: id,
            remote: dest,
        });
        self.arm(now);
        Some(id)
    }

    /// Closes idle connections.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_check.is_none_or(|t| t > now) {
            return;
        }
        let idle = self.cfg.idle_timeout;
        let stale: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                now.saturating_duration_since(c.last_active) >= idle
                    || c.unproven_since.is_some_and(|t| {
                        now.saturating_duration_since(t) >= FIRST_MESSAGE_TIMEOUT.min(idle)
                    })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(c) = self.conns.get(&id) {
                tracing::debug!(remote = %c.remote, transport = %c.transport, "SIP connection idle; closing");
            }
            self.stats.closed_idle += 1;
            self.close(id);
        }
        self.next_check = (!self.conns.is_empty()).then(|| now + self.check_every());
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_check
    }

    pub fn poll_output(&mut self) -> Option<ConnOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests;
