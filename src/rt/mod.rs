//! The runtime: the only place with sockets, the real clock, tasks and HTTP.
//!
//! One tokio task owns the [`Engine`] and drives it: SIP datagrams, RTP datagrams (each
//! call's socket has a small receive task that forwards packets), the engine's timers, and
//! one 20 ms pacing grid for every call's RTP. Completed calls go to the webhook worker.
//!
//! Not here: any protocol or dialogue decision — those are in the sans-IO layers.

pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::config::Config;
use crate::crm::RetryPolicy;
use crate::engine::{Engine, EngineConfig, EngineEvent, MediaPorts};
use crate::media::prompts::PromptCache;
use crate::sip::ua::{CallHandle, TimerValues, UaConfig};

/// RTP packet time: the pacing grid.
pub const PTIME: Duration = Duration::from_millis(20);

struct RtpIn {
    call: CallHandle,
    data: Vec<u8>,
}

/// Real RTP sockets, one per call, bound on the configured range.
struct SocketPorts {
    ip: IpAddr,
    range: (u16, u16),
    next: u16,
    sockets: HashMap<CallHandle, (Arc<UdpSocket>, JoinHandle<()>)>,
    rtp_tx: mpsc::Sender<RtpIn>,
    send_errors: u64,
}

impl SocketPorts {
    fn bind_next(&mut self) -> std::io::Result<std::net::UdpSocket> {
        let (lo, hi) = self.range;
        let span = u32::from(hi - lo) / 2 + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if self.next + 2 > hi {
                lo + (lo % 2)
            } else {
                self.next + 2
            };
            if let Ok(s) = std::net::UdpSocket::bind(SocketAddr::new(self.ip, port)) {
                return Ok(s);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free RTP port in {lo}-{hi}"),
        ))
    }

    fn send(&mut self, call: CallHandle, dest: SocketAddr, packet: &[u8]) {
        if let Some((sock, _)) = self.sockets.get(&call)
            && sock.try_send_to(packet, dest).is_err()
        {
            self.send_errors += 1;
        }
    }
}

impl MediaPorts for SocketPorts {
    fn open(&mut self, call: CallHandle) -> std::io::Result<u16> {
        let std_sock = self.bind_next()?;
        std_sock.set_nonblocking(true)?;
        let port = std_sock.local_addr()?.port();
        let sock = Arc::new(UdpSocket::from_std(std_sock)?);
        let rx_sock = sock.clone();
        let tx = self.rtp_tx.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                match rx_sock.recv_from(&mut buf).await {
                    Ok((n, _src)) => {
                        // Full queue: drop the packet rather than stall the socket.
                        let _ = tx.try_send(RtpIn {
                            call,
                            data: buf[..n].to_vec(),
                        });
                    }
                    Err(e) => {
                        // ICMP port unreachable surfaces here on Linux; keep listening.
                        tracing::trace!(error = %e, "rtp recv error");
                    }
                }
            }
        });
        self.sockets.insert(call, (sock, task));
        Ok(port)
    }

    fn close(&mut self, call: CallHandle) {
        if let Some((_, task)) = self.sockets.remove(&call) {
            task.abort();
        }
    }
}

/// Load scenarios and prompts, bind the SIP socket, and run until Ctrl-C / SIGTERM.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    crate::pii::set_reveal(cfg.log.pii);
    let (scenarios, errors) = crate::scenario::load_dir(&cfg.scenarios);
    for e in &errors {
        tracing::error!("{e}");
    }
    if scenarios.is_empty() {
        anyhow::bail!(
            "no usable scenario in {} ({} failed to load)",
            cfg.scenarios.display(),
            errors.len()
        );
    }
    let prompts = PromptCache::load_dir(&cfg.audio)
        .with_context(|| format!("loading prompts from {}", cfg.audio.display()))?;
    tracing::info!(
        scenarios = ?scenarios.keys().collect::<Vec<_>>(),
        prompts = prompts.len(),
        "loaded"
    );
    let sip = UdpSocket::bind(cfg.sip.listen)
        .await
        .with_context(|| format!("binding SIP UDP socket {}", cfg.sip.listen))?;
    let local_addr = sip.local_addr()?;
    tracing::info!(%local_addr, "SIP listening (UDP)");

    let timeout = cfg.webhook_timeout().map_err(anyhow::Error::msg)?;
    let webhooks = webhook::spawn(
        cfg.webhook.url.clone(),
        timeout,
        RetryPolicy {
            max_attempts: cfg.webhook.max_attempts,
            ..RetryPolicy::default()
        },
    );
    let engine_cfg = EngineConfig {
        ua: UaConfig {
            local_addr,
            advertised: cfg.sip.advertise.clone(),
            user_agent: cfg.sip.user_agent.clone(),
            timers: TimerValues::default(),
        },
        media_ip: cfg.rtp_ip(),
        routes: cfg.routes.clone(),
        max_calls: cfg.max_calls,
        seed: rand::make_rng::<rand::rngs::StdRng>().next_u64(),
    };
    let scenarios: BTreeMap<_, _> = scenarios;
    let engine = Engine::new(
        engine_cfg,
        scenarios,
        Arc::new(prompts),
        (Instant::now(), SystemTime::now()),
    );
    let (rtp_tx, rtp_rx) = mpsc::channel(65536);
    let range = cfg.rtp_port_range().map_err(anyhow::Error::msg)?;
    let ports = SocketPorts {
        ip: cfg.rtp_ip(),
        range,
        next: range.0 + (range.0 % 2),
        sockets: HashMap::new(),
        rtp_tx,
        send_errors: 0,
    };
    tokio::select! {
        r = drive(engine, sip, ports, rtp_rx, webhooks) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn drive(
    mut engine: Engine,
    sip: UdpSocket,
    mut ports: SocketPorts,
    mut rtp_rx: mpsc::Receiver<RtpIn>,
    webhooks: webhook::WebhookSender,
) -> anyhow::Result<()> {
    let mut pacing = tokio::time::interval(PTIME);
    pacing.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 65535];
    loop {
        let deadline = engine
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = pacing.tick() => {
                let now = Instant::now();
                engine.handle_timeout(now, &mut ports);
                engine.tick(now, &mut |call, dest, pkt| ports.send(call, dest, pkt));
                engine.handle_timeout(now, &mut ports);
            }
            r = sip.recv_from(&mut buf) => {
                match r {
                    Ok((n, src)) => engine.handle_sip(Instant::now(), src, &buf[..n], &mut ports),
                    Err(e) => tracing::debug!(error = %e, "SIP recv error"),
                }
            }
            Some(pkt) = rtp_rx.recv() => {
                engine.handle_rtp(Instant::now(), pkt.call, &pkt.data, &mut ports);
            }
            _ = tokio::time::sleep_until(deadline) => {
                engine.handle_timeout(Instant::now(), &mut ports);
            }
        }
        while let Some(t) = engine.poll_transmit() {
            if let Err(e) = sip.send_to(&t.payload, t.dest).await {
                tracing::debug!(dest = %t.dest, error = %e, "SIP send failed");
            }
        }
        while let Some(ev) = engine.poll_event() {
            match ev {
                EngineEvent::CallCompleted(rec) => webhooks.send(rec),
                EngineEvent::Effect {
                    sip_call_id,
                    effect,
                    ..
                } => {
                    // Mid-call effects (webhook nodes, transfers) arrive with their issues;
                    // until then the dialogue's own timeouts and fallbacks apply.
                    tracing::warn!(call_id = %sip_call_id, ?effect, "effect not supported by this runtime yet");
                }
            }
        }
    }
}
