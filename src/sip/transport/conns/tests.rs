//! Two connection tables talking to each other through byte pipes, on virtual time.

use super::*;
use crate::sip::transport::tls;

const CLIENT: &str = "127.0.0.1:40000";
const SERVER: &str = "127.0.0.1:5061";
const MSG: &[u8] = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A CA, and a server certificate it signed for `localhost` and 127.0.0.1.
pub(crate) fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

struct Pair {
    client: Connections,
    server: Connections,
    /// client conn → server conn and back.
    links: Vec<(ConnId, ConnId)>,
    at_client: Vec<Vec<u8>>,
    at_server: Vec<Vec<u8>>,
    closed: Vec<ConnId>,
}

impl Pair {
    fn new(transport_tls: bool, ca_for_client: Option<&str>) -> Pair {
        let (ca, cert, key) = test_pki();
        let mut server_cfg = ConnConfig::default();
        let mut client_cfg = ConnConfig::default();
        if transport_tls {
            server_cfg.tls_server =
                Some(tls::server_config(cert.as_bytes(), key.as_bytes(), "test").unwrap());
            client_cfg.tls_client =
                Some(tls::client_config(ca_for_client.unwrap_or(&ca).as_bytes(), "test").unwrap());
        }
        Pair {
            client: Connections::new(client_cfg),
            server: Connections::new(server_cfg),
            links: Vec::new(),
            at_client: Vec::new(),
            at_server: Vec::new(),
            closed: Vec::new(),
        }
    }

    /// Moves bytes until both sides are quiet.
    fn pump(&mut self, now: Instant, transport: Transport) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(o) = self.client.poll_output() {
                moved = true;
                match o {
                    ConnOutput::Connect { conn, remote } => {
                        assert_eq!(remote, addr(SERVER));
                        let s = self.server.accepted(now, addr(CLIENT), transport).unwrap();
                        self.links.push((conn, s));
                        self.client.connected(now, conn);
                    }
                    ConnOutput::Write { conn, bytes } => {
                        let s = self.links.iter().find(|l| l.0 == conn).unwrap().1;
                        self.server.received(now, s, &bytes);
                    }
                    ConnOutput::Close { conn } => self.closed.push(conn),
                    ConnOutput::Message { bytes, .. } => self.at_client.push(bytes),
                }
            }
            while let Some(o) = self.server.poll_output() {
                moved = true;
                match o {
                    ConnOutput::Write { conn, bytes } => {
                        let c = self.links.iter().find(|l| l.1 == conn).unwrap().0;
                        self.client.received(now, c, &bytes);
                    }
                    ConnOutput::Close { conn } => self.closed.push(conn),
                    ConnOutput::Message {
                        source,
                        transport: t,
                        bytes,
                    } => {
                        assert_eq!((source, t), (addr(CLIENT), transport));
                        self.at_server.push(bytes)
                    }
                    ConnOutput::Connect { .. } => panic!("the server side opened a connection"),
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the two sides never went quiet");
    }
}

#[test]
fn tls_handshake_verifies_the_server_and_carries_messages_both_ways() {
    let now = Instant::now();
    let mut p = Pair::new(true, None);
    p.client.set_server_name(addr(SERVER), "localhost");
    assert!(p.client.send(now, Transport::Tls, addr(SERVER), MSG));
    p.pump(now, Transport::Tls);
    assert_eq!(p.at_server, vec![MSG.to_vec()]);
    // The response goes back on the same connection: the server knows the client by address.
    assert!(p.server.send(
        now,
        Transport::Tls,
        addr(CLIENT),
        b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    ));
    p.pump(now, Transport::Tls);
    assert_eq!(p.at_client.len(), 1);
    assert_eq!(
        (p.client.len(), p.server.len(), p.client.stats.opened),
        (1, 1, 1)
    );
    // A second request reuses the connection.
    assert!(p.client.send(now, Transport::Tls, addr(SERVER), MSG));
    p.pump(now, Transport::Tls);
    assert_eq!((p.at_server.len(), p.client.stats.opened), (2, 1));
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let now = Instant::now();
    let (other_ca, _, _) = test_pki();
    let mut p = Pair::new(true, Some(&other_ca));
    p.client.set_server_name(addr(SERVER), "localhost");
    p.client.send(now, Transport::Tls, addr(SERVER), MSG);
    p.pump(now, Transport::Tls);
    assert!(p.at_server.is_empty());
    assert_eq!(p.client.stats.closed_tls, 1);
    assert!(p.client.is_empty());
}

#[test]
fn a_wrong_name_is_refused() {
    let now = Instant::now();
    let mut p = Pair::new(true, None);
    p.client.set_server_name(addr(SERVER), "sip.example.net");
    p.client.send(now, Transport::Tls, addr(SERVER), MSG);
    p.pump(now, Transport::Tls);
    assert!(p.at_server.is_empty());
    assert_eq!(p.client.stats.closed_tls, 1);
}

#[test]
fn tls_garbage_closes_the_connection_without_panic() {
    let now = Instant::now();
    let (_, cert, key) = test_pki();
    let cfg = ConnConfig {
        tls_server: Some(tls::server_config(cert.as_bytes(), key.as_bytes(), "t").unwrap()),
        ..ConnConfig::default()
    };
    for junk in [
        &b"INVITE sip:x SIP/2.0\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xFF, 0xFF, 0, 0, 0][..],
        &[0u8; 4096][..],
    ] {
        let mut t = Connections::new(cfg.clone());
        let c = t.accepted(now, addr(CLIENT), Transport::Tls).unwrap();
        t.received(now, c, junk);
        let outs: Vec<_> = std::iter::from_fn(|| t.poll_output()).collect();
        assert!(outs.contains(&ConnOutput::Close { conn: c }), "{outs:?}");
        assert!(t.is_empty());
        assert_eq!(t.stats.closed_tls, 1);
    }
}

#[test]
fn tcp_framing_limits_and_idle_timeout() {
    let t0 = Instant::now();
    let mut p = Pair::new(false, None);
    p.client.send(t0, Transport::Tcp, addr(SERVER), MSG);
    p.pump(t0, Transport::Tcp);
    assert_eq!(p.at_server, vec![MSG.to_vec()]);
    // Keep-alive ping gets a pong.
    let (c, s) = p.links[0];
    p.server.received(t0, s, b"\r\n\r\n");
    assert_eq!(
        p.server.poll_output(),
        Some(ConnOutput::Write {
            conn: s,
            bytes: b"\r\n".to_vec()
        })
    );
    // A peer over the header limit is cut off.
    let big = vec![b'X'; 20_000];
    p.server.received(t0, s, &big);
    assert_eq!(p.server.poll_output(), Some(ConnOutput::Close { conn: s }));
    assert_eq!(p.server.stats.closed_framing, 1);
    assert!(p.server.is_empty());
    // The client's connection goes idle and is closed after the timeout, not before.
    let idle = ConnConfig::default().idle_timeout;
    let mut t = t0;
    while p.client.poll_timeout().is_some_and(|d| d < t0 + idle) {
        t = p.client.poll_timeout().unwrap();
        p.client.handle_timeout(t);
        assert!(
            p.client.poll_timeout().is_none_or(|d| d > t),
            "a deadline handed back is not due"
        );
        assert!(p.client.poll_output().is_none());
    }
    let end = t0 + idle + idle / 4;
    while let Some(d) = p.client.poll_timeout().filter(|d| *d <= end) {
        p.client.handle_timeout(d);
    }
    assert_eq!(p.client.poll_output(), Some(ConnOutput::Close { conn: c }));
    assert_eq!(p.client.stats.closed_idle, 1);
    assert_eq!(p.client.poll_timeout(), None);
    let _ = t;
}

#[test]
fn udp_and_tls_without_config_are_not_sent() {
    let now = Instant::now();
    let mut t = Connections::new(ConnConfig::default());
    assert!(!t.send(now, Transport::Udp, addr(SERVER), MSG));
    assert!(!t.send(now, Transport::Tls, addr(SERVER), MSG));
    assert!(t.accepted(now, addr(CLIENT), Transport::Tls).is_none());
    assert!(t.is_empty());
}

#[test]
fn an_accepted_connection_that_never_sends_a_message_is_closed_early() {
    let t0 = Instant::now();
    let mut t = Connections::new(ConnConfig::default());
    let quiet = t.accepted(t0, addr(CLIENT), Transport::Tcp).unwrap();
    let busy = t
        .accepted(t0, "127.0.0.1:40001".parse().unwrap(), Transport::Tcp)
        .unwrap();
    // A trickle keeps `quiet` active but never completes a message.
    let mut now = t0;
    while now < t0 + FIRST_MESSAGE_TIMEOUT + Duration::from_secs(5) {
        now += Duration::from_secs(1);
        t.received(now, quiet, b"I");
        if now == t0 + Duration::from_secs(2) {
            t.received(now, busy, MSG);
        }
        while let Some(d) = t.poll_timeout().filter(|d| *d <= now) {
            t.handle_timeout(d);
        }
    }
    let outs: Vec<_> = std::iter::from_fn(|| t.poll_output()).collect();
    assert!(
        outs.contains(&ConnOutput::Close { conn: quiet }),
        "{outs:?}"
    );
    assert!(!outs.contains(&ConnOutput::Close { conn: busy }));
    assert_eq!(t.len(), 1);
}
