//! Trunk names in DNS (RFC 3263): runs `sip::dns::Lookup`s over UDP against one server,
//! at start and again whenever the records' TTL runs out.
//!
//! The server is `sip.dns`, else the first `nameserver` of /etc/resolv.conf. A query gets
//! [`TRIES`] tries of [`TRY_TIMEOUT`] each; a name that DNS cannot place (no server, no
//! records) falls back to the system resolver (`/etc/hosts` included) on the default port.
//! The targets found go to the node: the trunk's first target is its address (proxy,
//! registrar, trusted source), the rest are where its INVITEs fail over to (the UA), each
//! reached over the transport its NAPTR/SRV record named. When a TTL expires the lookup
//! runs again and the node gets the new list ([`crate::node::Command::TrunkTargets`]).
//!
//! Not here: the protocol logic (`sip::dns`), caching beyond the trunks' own records.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use rand::RngExt as _;
use tokio::net::UdpSocket;

use crate::config::{Config, TrunkConfig};
use crate::node::TrunkSetup;
use crate::sip::dns::{Lookup, Resolved, Target, split_host_port};
use crate::sip::transport::Transport;

/// Tries per query.
const TRIES: u32 = 3;
/// How long one try waits for its answer.
const TRY_TIMEOUT: Duration = Duration::from_secs(1);
/// Bounds on how often a trunk's name is looked up again.
const MIN_REFRESH: Duration = Duration::from_secs(10);
const MAX_REFRESH: Duration = Duration::from_secs(3600);

/// A trunk address that came from DNS, to look up again when its TTL runs out.
#[derive(Debug, Clone)]
pub struct TrunkDns {
    /// The `host[:port]` as configured.
    pub hostport: String,
    pub transport: Option<Transport>,
    /// The trunk's address in the node (its first target at start).
    pub primary: SocketAddr,
    pub targets: Vec<Target>,
    pub ttl: Option<Duration>,
}

/// The DNS server to ask.
pub fn nameserver(cfg: &Config) -> Option<SocketAddr> {
    if let Some(s) = cfg.sip.dns {
        return Some(s);
    }
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_ascii_whitespace();
        (w.next()? == "nameserver")
            .then(|| w.next()?.parse().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// Runs one lookup against `server`.
pub async fn lookup(
    server: SocketAddr,
    host: &str,
    port: Option<u16>,
    transport: Option<Transport>,
) -> Result<Resolved, String> {
    let mut l = Lookup::new(host, port, transport, rand::rng().random());
    if let Some(r) = l.result() {
        return r.clone().map_err(|e| e.to_string());
    }
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("DNS socket: {e}"))?;
    let mut sent: std::collections::HashMap<u16, (Vec<u8>, u32)> = Default::default();
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some((id, q)) = l.poll_query() {
            let _ = sock.send_to(&q, server).await;
            sent.insert(id, (q, 1));
        }
        if let Some(r) = l.result() {
            return r.clone().map_err(|e| e.to_string());
        }
        match tokio::time::timeout(TRY_TIMEOUT, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) if from == server => l.handle_response(&buf[..n]),
            Ok(_) => {}
            Err(_) => {
                // Nothing for a whole try: resend what is unanswered, or give it up.
                let open: Vec<u16> = l.outstanding().collect();
                for id in open {
                    match sent.get_mut(&id) {
                        Some((q, tries)) if *tries < TRIES => {
                            *tries += 1;
                            let _ = sock.send_to(q, server).await;
                        }
                        _ => l.handle_failed(id),
                    }
                }
            }
        }
    }
}

/// Where `hostport` (a trunk's proxy or registrar) is: DNS per RFC 3263 for names, the
/// system resolver when DNS has nothing.
async fn locate(
    cfg: &Config,
    hostport: &str,
    transport: Option<Transport>,
) -> anyhow::Result<TrunkDns> {
    let (host, port) = split_host_port(hostport);
    let dns = match nameserver(cfg) {
        Some(server) => lookup(server, &host, port, transport).await,
        None => Err("no DNS server (sip.dns, /etc/resolv.conf)".to_owned()),
    };
    let (targets, ttl) = match dns {
        Ok(r) => (r.targets, r.ttl),
        Err(why) => {
            let t = transport.unwrap_or_default();
            let with_port = match port {
                Some(p) => format!("{host}:{p}"),
                None => format!("{host}:{}", t.default_port()),
            };
            let addr = tokio::net::lookup_host(&with_port)
                .await
                .map_err(|e| anyhow::anyhow!("resolving the trunk address {hostport}: {why}; {e}"))?
                .next()
                .ok_or_else(|| {
                    anyhow::anyhow!("the trunk address {hostport} resolves to nothing ({why})")
                })?;
            (vec![Target { transport: t, addr }], None)
        }
    };
    let primary = targets
        .first()
        .map(|t| t.addr)
        .with_context(|| format!("the trunk address {hostport} resolves to nothing"))?;
    if targets.len() > 1 || ttl.is_some() {
        tracing::info!(trunk = hostport, targets = ?targets.iter().map(|t| format!("{}:{}", t.transport, t.addr)).collect::<Vec<_>>(), ttl_s = ttl.map(|t| t.as_secs()), "trunk located in DNS (RFC 3263)");
    }
    Ok(TrunkDns {
        hostport: hostport.to_owned(),
        transport,
        primary,
        targets,
        ttl,
    })
}

fn configured_transport(t: &TrunkConfig) -> anyhow::Result<Option<Transport>> {
    Ok(match &t.transport {
        None => None,
        Some(_) => Some(t.transport().map_err(anyhow::Error::msg)?),
    })
}

/// Every trunk's proxy and registrar, located; with what DNS said about them.
pub async fn resolve_trunks(cfg: &Config) -> anyhow::Result<(Vec<TrunkSetup>, Vec<TrunkDns>)> {
    let mut out = Vec::new();
    let mut dns = Vec::new();
    for t in &cfg.trunks {
        let transport = configured_transport(t)?;
        let proxy = locate(cfg, &t.proxy, transport).await?;
        let registrar = if t.registers() {
            let r = locate(cfg, t.registrar.as_deref().unwrap_or(&t.proxy), transport).await?;
            let addr = r.primary;
            dns.push(r);
            Some(addr)
        } else {
            None
        };
        out.push(TrunkSetup {
            cfg: t.clone(),
            proxy: proxy.primary,
            registrar,
        });
        dns.push(proxy);
    }
    Ok((out, dns))
}

/// The node's side of what DNS found: each trunk's targets and how to reach them.
pub fn apply(node: &mut crate::node::Node, found: &TrunkDns) {
    let ua = node.engine_mut().ua_mut();
    for t in &found.targets {
        ua.set_route(t.addr, t.transport, t.transport == Transport::Udp);
    }
    ua.set_failover(
        found.primary,
        found.targets.iter().map(|t| t.addr).collect(),
    );
}

/// Looks each DNS-located trunk up again when its TTL runs out, for as long as the
/// process runs; changes go to the node as commands.
pub fn refresh(
    cfg: &Config,
    found: Vec<TrunkDns>,
    commands: tokio::sync::mpsc::UnboundedSender<crate::node::Command>,
    peers: super::sip_net::Peers,
) {
    let Some(server) = nameserver(cfg) else {
        return;
    };
    for mut d in found {
        let Some(mut ttl) = d.ttl else { continue };
        let commands = commands.clone();
        let peers = peers.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl.clamp(MIN_REFRESH, MAX_REFRESH)).await;
                let (host, port) = split_host_port(&d.hostport);
                match lookup(server, &host, port, d.transport).await {
                    Ok(r) => {
                        ttl = r.ttl.unwrap_or(MAX_REFRESH);
                        if r.targets != d.targets {
                            tracing::info!(trunk = %d.hostport, "trunk targets changed in DNS");
                            d.targets = r.targets.clone();
                            peers.announce(&d);
                            let cmd = crate::node::Command::TrunkTargets {
                                primary: d.primary,
                                targets: r.targets,
                            };
                            if commands.send(cmd).is_err() {
                                return;
                            }
                        }
                    }
                    Err(why) => {
                        // Keep what we have; try again soon.
                        tracing::warn!(trunk = %d.hostport, %why, "trunk DNS lookup failed; keeping the last targets");
                        ttl = MIN_REFRESH * 3;
                    }
                }
            }
        });
    }
}
