//! Locating a SIP server (RFC 3263 §4) from a trunk's host name, sans-IO.
//!
//! ```text
//!  IP literal ───────────────────────────────────────────────▶ done (no DNS)
//!  name:port ──────────────────────────────▶ A + AAAA ───────▶ targets (transport as set)
//!  name, transport set ──▶ SRV _sip._udp / _sip._tcp / _sips._tcp ─┐
//!  name ──▶ NAPTR ─(SIP+D2U, SIP+D2T, SIPS+D2T, flag "s")─▶ SRV ──┤
//!             └─(none)─▶ SRV for UDP, TCP and TLS ────────────────┤
//!                                        SRV targets ─▶ A + AAAA ─┴▶ targets, in order
//!                                        (no SRV) ────▶ A + AAAA of the name, port 5060/5061
//! ```
//! A [`Lookup`] hands out DNS queries ([`Lookup::poll_query`]: an id and the wire bytes,
//! built with `hickory-proto`) and takes the answers ([`Lookup::handle_response`]) or the
//! runtime's word that one got none ([`Lookup::handle_failed`]: an empty answer); the
//! [`Resolved`] targets come out in RFC 3263 order — NAPTR order and preference, then SRV
//! priority and, within one priority, the higher weight first (deterministic, so tests and
//! operators see one order; RFC 2782's weighted random choice matters for load sharing
//! among many clients, not for one trunk's failover) — with the smallest TTL of every
//! record used, after which the runtime resolves again.
//!
//! What it deliberately does not do: sockets, retries and timers (the runtime's, `rt::dns`),
//! caching across lookups, regexp NAPTR rewriting (SIP uses replacements only), DNSSEC,
//! TCP fallback for truncated answers (SRV sets for a trunk fit in 512 bytes).
//! Whatever a server answers, nothing panics: an unusable answer is an empty one.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::transport::Transport;

/// At most this many SRV targets are looked up for one name.
const MAX_TARGETS: usize = 16;

/// One place to send requests to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// In the order to try them.
    pub targets: Vec<Target>,
    /// Resolve again after this long (the smallest TTL used); `None` for an address.
    pub ttl: Option<Duration>,
}

/// Why a name gave no target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("{0:?} is not a valid host name")]
    BadName(String),
    #[error("{0}: no NAPTR, SRV, A or AAAA record gives an address")]
    NoTarget(String),
}

/// What an outstanding query is for.
#[derive(Debug, Clone)]
enum Pending {
    Naptr,
    Srv(usize),
    Addr,
}

#[derive(Debug, Clone)]
struct Srv {
    transport: Transport,
    priority: u16,
    weight: u16,
    port: u16,
    target: Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Naptr,
    Srv,
    Addr,
    Done,
}

/// One RFC 3263 lookup in progress.
#[derive(Debug)]
pub struct Lookup {
    host: String,
    name: Option<Name>,
    port: Option<u16>,
    transport: Option<Transport>,
    step: Step,
    next_id: u16,
    queue: VecDeque<(u16, Vec<u8>)>,
    pending: HashMap<u16, Pending>,
    /// SRV names to query, with their transport, in preference order.
    srv_names: Vec<(Transport, Name)>,
    srv: Vec<Vec<Srv>>,
    /// Addresses by owner name (answers and additional records).
    addrs: HashMap<Name, Vec<IpAddr>>,
    ttl: Option<u32>,
    result: Option<Result<Resolved, DnsError>>,
}

impl Lookup {
    /// Locates `host` (a name or an address) with an optional explicit `port` and
    /// `transport`; query ids start at `id_seed` (random in the runtime, fixed in tests).
    pub fn new(
        host: &str,
        port: Option<u16>,
        transport: Option<Transport>,
        id_seed: u16,
    ) -> Lookup {
        let mut l = Lookup {
            host: host.to_owned(),
            name: None,
            port,
            transport,
            step: Step::Done,
            next_id: id_seed,
            queue: VecDeque::new(),
            pending: HashMap::new(),
            srv_names: Vec::new(),
            srv: Vec::new(),
            addrs: HashMap::new(),
            ttl: None,
            result: None,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let t = transport.unwrap_or_default();
            l.result = Some(Ok(Resolved {
                targets: vec![Target {
                    transport: t,
                    addr: SocketAddr::new(ip, port.unwrap_or(t.default_port())),
                }],
                ttl: None,
            }));
            return l;
        }
        let name = match Name::from_ascii(host) {
            Ok(mut n) if !host.is_empty() && host.len() <= 253 => {
                n.set_fqdn(true);
                n
            }
            _ => {
                l.result = Some(Err(DnsError::BadName(host.chars().take(64).collect())));
                return l;
            }
        };
        l.name = Some(name.clone());
        match (port, transport) {
            (Some(_), _) => l.query_addrs(&[name]),
            (None, Some(t)) => {
                l.srv_names = vec![(t, srv_name(t, &name))];
                l.query_srv();
            }
            (None, None) => {
                l.step = Step::Naptr;
                l.query(name, RecordType::NAPTR, Pending::Naptr);
            }
        }
        l
    }

    /// The next query to send (to the configured DNS server, over UDP).
    pub fn poll_query(&mut self) -> Option<(u16, Vec<u8>)> {
        self.queue.pop_front()
    }

    /// Ids of the queries sent and not yet answered.
    pub fn outstanding(&self) -> impl Iterator<Item = u16> + '_ {
        self.pending.keys().copied()
    }

    /// The result, once there is one.
    pub fn result(&self) -> Option<&Result<Resolved, DnsError>> {
        self.result.as_ref()
    }

    fn query(&mut self, name: Name, rtype: RecordType, what: Pending) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name, rtype));
        match m.to_vec() {
            Ok(bytes) => {
                self.queue.push_back((id, bytes));
                self.pending.insert(id, what);
            }
            Err(e) => tracing::debug!(error = %e, "DNS query not encodable"),
        }
    }

    fn query_srv(&mut self) {
        self.step = Step::Srv;
        self.srv = vec![Vec::new(); self.srv_names.len()];
        for (i, (_, n)) in self.srv_names.clone().into_iter().enumerate() {
            self.query(n, RecordType::SRV, Pending::Srv(i));
        }
        self.advance();
    }

    fn query_addrs(&mut self, names: &[Name]) {
        self.step = Step::Addr;
        for n in names {
            if self.addrs.contains_key(n) {
                continue;
            }
            self.query(n.clone(), RecordType::A, Pending::Addr);
            self.query(n.clone(), RecordType::AAAA, Pending::Addr);
        }
        self.advance();
    }

    fn ttl(&mut self, t: u32) {
        self.ttl = Some(self.ttl.map_or(t, |x| x.min(t)));
    }

    /// The runtime got no answer to `id` (timeouts, retries spent): as if it were empty.
    pub fn handle_failed(&mut self, id: u16) {
        if self.pending.remove(&id).is_some() {
            self.advance();
        }
    }

    /// A datagram from the DNS server. Anything that is not the answer to an outstanding
    /// query is ignored.
    pub fn handle_response(&mut self, packet: &[u8]) {
        let Ok(m) = Message::from_vec(packet) else {
            return;
        };
        if m.metadata.message_type != MessageType::Response {
            return;
        }
        let Some(what) = self.pending.remove(&m.metadata.id) else {
            return;
        };
        let ok = m.metadata.response_code == ResponseCode::NoError;
        let records: Vec<&Record> = if ok {
            m.answers.iter().chain(m.additionals.iter()).collect()
        } else {
            Vec::new()
        };
        // Addresses anywhere in the answer are kept (SRV answers carry them as additionals).
        for r in &records {
            let ip = match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => continue,
            };
            let v = self.addrs.entry(r.name.clone()).or_default();
            if !v.contains(&ip) && v.len() < MAX_TARGETS {
                v.push(ip);
            }
            let t = r.ttl;
            self.ttl(t);
        }
        match what {
            Pending::Naptr => self.on_naptr(&m),
            Pending::Srv(i) => {
                let transport = self.srv_names.get(i).map(|(t, _)| *t).unwrap_or_default();
                let mut ttls = Vec::new();
                for r in &m.answers {
                    if let RData::SRV(s) = &r.data
                        && ok
                        && s.port != 0
                        && !s.target.is_root()
                        && self.srv.get(i).is_some_and(|v| v.len() < MAX_TARGETS)
                    {
                        ttls.push(r.ttl);
                        self.srv[i].push(Srv {
                            transport,
                            priority: s.priority,
                            weight: s.weight,
                            port: s.port,
                            target: s.target.clone(),
                        });
                    }
                }
                for t in ttls {
                    self.ttl(t);
                }
            }
            Pending::Addr => {}
        }
        self.advance();
    }

    fn on_naptr(&mut self, m: &Message) {
        let mut found: Vec<(u16, u16, Transport, Name, u32)> = Vec::new();
        if m.metadata.response_code == ResponseCode::NoError {
            for r in &m.answers {
                let RData::NAPTR(n) = &r.data else { continue };
                if !n.flags.eq_ignore_ascii_case(b"s") || n.replacement.is_root() {
                    continue;
                }
                let t = match n.services.to_ascii_uppercase().as_slice() {
                    b"SIP+D2U" => Transport::Udp,
                    b"SIP+D2T" => Transport::Tcp,
                    b"SIPS+D2T" => Transport::Tls,
                    _ => continue,
                };
                found.push((n.order, n.preference, t, n.replacement.clone(), r.ttl));
            }
        }
        found.sort_by_key(|f| (f.0, f.1));
        found.truncate(MAX_TARGETS);
        if found.is_empty() {
            // §4.1: no NAPTR — SRV for each transport we support, in our preference order.
            if let Some(name) = self.name.clone() {
                self.srv_names = [Transport::Udp, Transport::Tcp, Transport::Tls]
                    .into_iter()
                    .map(|t| (t, srv_name(t, &name)))
                    .collect();
            }
        } else {
            for f in &found {
                self.ttl(f.4);
            }
            self.srv_names = found.into_iter().map(|f| (f.2, f.3)).collect();
        }
        self.query_srv();
    }

    /// Moves to the next step once every query of this one is answered.
    fn advance(&mut self) {
        if !self.pending.is_empty() || self.result.is_some() {
            return;
        }
        match self.step {
            Step::Naptr | Step::Done => {}
            Step::Srv => {
                let any = self.srv.iter().any(|v| !v.is_empty());
                if any {
                    let names: Vec<Name> =
                        self.ordered_srv().into_iter().map(|s| s.target).collect();
                    self.query_addrs(&names);
                } else if let Some(name) = self.name.clone() {
                    // §4.2: no SRV — the name's own addresses on the default port.
                    self.srv_names.clear();
                    self.query_addrs(&[name]);
                }
            }
            Step::Addr => {
                self.step = Step::Done;
                let targets = self.targets();
                self.result = Some(if targets.is_empty() {
                    Err(DnsError::NoTarget(self.host.clone()))
                } else {
                    Ok(Resolved {
                        targets,
                        ttl: Some(Duration::from_secs(u64::from(self.ttl.unwrap_or(300)))),
                    })
                });
            }
        }
    }

    /// SRV records in the order to try them: by the query's preference, then priority,
    /// then weight (higher first).
    fn ordered_srv(&self) -> Vec<Srv> {
        let mut out = Vec::new();
        for v in &self.srv {
            let mut v = v.clone();
            v.sort_by_key(|s| (s.priority, std::cmp::Reverse(s.weight)));
            out.extend(v);
        }
        out.truncate(MAX_TARGETS);
        out
    }

    fn targets(&self) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        let mut push = |t: Target| {
            if !out.contains(&t) {
                out.push(t);
            }
        };
        let srv = self.ordered_srv();
        if srv.is_empty() {
            let Some(name) = &self.name else {
                return out;
            };
            let t = self.transport.unwrap_or_default();
            let port = self.port.unwrap_or(t.default_port());
            for ip in self.addrs.get(name).into_iter().flatten() {
                push(Target {
                    transport: t,
                    addr: SocketAddr::new(*ip, port),
                });
            }
            return out;
        }
        for s in srv {
            for ip in self.addrs.get(&s.target).into_iter().flatten() {
                push(Target {
                    transport: s.transport,
                    addr: SocketAddr::new(*ip, s.port),
                });
            }
        }
        out
    }
}

/// `_sip._udp.NAME`, `_sip._tcp.NAME`, `_sips._tcp.NAME`.
fn srv_name(t: Transport, name: &Name) -> Name {
    let prefix = match t {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    };
    Name::from_ascii(prefix)
        .and_then(|p| p.append_domain(name))
        .unwrap_or_else(|_| name.clone())
}

/// Splits a trunk's `host[:port]` (`[v6]:port` for IPv6).
pub fn split_host_port(s: &str) -> (String, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((h, tail)) = rest.split_once(']')
    {
        return (
            h.to_owned(),
            tail.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(p) => (h.to_owned(), Some(p)),
            Err(_) => (s.to_owned(), None),
        },
        _ => (s.to_owned(), None),
    }
}

#[cfg(test)]
mod tests;
