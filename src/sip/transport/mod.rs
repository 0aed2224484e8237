//! SIP transports (RFC 3261 §18): UDP, TCP and TLS, as data and sans-IO state machines.
//!
//! - [`Transport`] names how a message travels; the UA writes it into Via (`SIP/2.0/TCP`) and
//!   Contact (`;transport=tcp`), and every message in or out carries it, so a response goes
//!   back the way its request came and in-dialog requests reuse the connection.
//! - [`framing`]: Content-Length framing of a byte stream with limits (§18.3).
//! - [`conns`]: the connection table — TCP and TLS connections keyed by (transport, remote
//!   address), TLS through rustls driven over buffers (no socket), idle timeouts, writes
//!   queued while a connection is being opened. `crate::rt` owns the sockets and feeds it.
//! - [`tls`]: building rustls configurations from PEM files' contents.
//!
//! `sips:` (RFC 5630): ivrflow does not route `sips:` URIs. A TLS listener accepts requests
//! for `sip:` URIs over TLS (hop-by-hop TLS, the way carriers and PBXs use port 5061), and
//! an INVITE whose Request-URI is `sips:` is answered like any other on a TLS connection;
//! over UDP or TCP it is refused with 416 (RFC 5630 §3.1.3). We never promise end-to-end
//! TLS: our Contact stays `sip:` with `;transport=tls`.
//!
//! Not here: sockets, DNS (see `crate::dns`), connection reuse across nodes (RFC 5923
//! aliases), WebSocket, SCTP.

pub mod conns;
pub mod framing;
pub mod tls;

use std::fmt;
use std::net::SocketAddr;

/// How a SIP message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// The token in a Via header (`SIP/2.0/TCP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The value of a URI's `transport=` parameter.
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Stream transports deliver in order without loss: no retransmission timers.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    pub fn parse(s: &str) -> Option<Transport> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }

    /// The default port (5060, or 5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.param())
    }
}

/// One listening socket: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:0.0.0.0:5061`; a bare
/// address is UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listen {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl Listen {
    pub fn parse(s: &str) -> Result<Listen, String> {
        let s = s.trim();
        let (transport, rest) = match s.split_once(':') {
            Some((t, rest)) if Transport::parse(t).is_some() => (Transport::parse(t), rest),
            _ => (None, s),
        };
        let transport = transport.unwrap_or(Transport::Udp);
        let addr: SocketAddr = rest.parse().map_err(|_| {
            format!("{s:?} is not a listen address (udp:IP:PORT, tcp:IP:PORT, tls:IP:PORT, or IP:PORT for UDP; IPv6 as [::1]:5060)")
        })?;
        Ok(Listen { transport, addr })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// The transport named by a URI's `transport=` parameter (`sips:` means TLS).
pub fn transport_of_uri(uri: &str) -> Option<Transport> {
    let lower = uri.to_ascii_lowercase();
    let lower = lower.trim_start_matches('<');
    if lower.starts_with("sips:") {
        return Some(Transport::Tls);
    }
    let params = lower.split_once(';')?.1;
    params
        .split(';')
        .find_map(|p| p.strip_prefix("transport="))
        .and_then(|v| Transport::parse(v.split(['>', '?']).next().unwrap_or(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_specs() {
        let l = Listen::parse("127.0.0.1:5060").unwrap();
        assert_eq!((l.transport, l.addr.port()), (Transport::Udp, 5060));
        let l = Listen::parse("tcp:[::1]:5070").unwrap();
        assert_eq!(l.transport, Transport::Tcp);
        assert!(l.addr.is_ipv6());
        assert_eq!(
            Listen::parse("TLS:0.0.0.0:5061").unwrap().transport,
            Transport::Tls
        );
        assert_eq!(l.to_string(), "tcp:[::1]:5070");
        for bad in ["", "sctp:1.2.3.4:5060", "tcp:host:5060", "udp:1.2.3.4"] {
            assert!(Listen::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transport_from_uris() {
        assert_eq!(
            transport_of_uri("sip:a@b;transport=TCP"),
            Some(Transport::Tcp)
        );
        assert_eq!(
            transport_of_uri("<sip:a@b:5061;lr;transport=tls>"),
            Some(Transport::Tls)
        );
        assert_eq!(transport_of_uri("sips:a@b"), Some(Transport::Tls));
        assert_eq!(transport_of_uri("sip:a@b"), None);
        assert_eq!(transport_of_uri("sip:a@b;transport=sctp"), None);
    }
}
