//! The runtime: the only place with sockets, the real clock, tasks and HTTP. It executes
//! what the node asks and feeds it what happens; it makes no product decision.
//!
//! One tokio task owns the [`Node`] and drives it:
//! - inputs: SIP datagrams (one UDP socket), RTP datagrams (batches from the media receive
//!   thread, `rt::media`, which holds every call's RTP socket outside the reactor), store
//!   acknowledgements (`rt::store`), mid-call HTTP results (`rt::http`), recognition results
//!   (`rt::speech`), control API commands, and the node's own wake-up time;
//! - outputs, executed in the order the node gives them: SIP and RTP sends, media ports
//!   opened and closed, commits to the store thread, HTTP requests, recognition jobs, the
//!   node's status for the API.
//!
//! After each pacing wake-up the task tells the node how late it woke and how long the
//! tick and its sends took ([`Input::TickCost`]); the node decides whether to refuse new
//! calls. The store thread, the delivery worker, HTTP effects and the control API are
//! started by `rt::services`.
//!
//! Not here: any protocol, dialogue or product rule — those are in the sans-IO layers
//! (`crate::node` and below).

pub mod cluster;
pub mod dns;
pub mod http;
pub mod media;
pub mod reload;
pub mod services;
pub mod sip_net;
pub mod speech;
pub mod store;
pub mod systemd;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rand::Rng;
use tokio::sync::mpsc;

use crate::api::metrics::SipDirection;
use crate::config::Config;
use crate::engine::EngineConfig;
use crate::node::{Command, Input, Node, NodeConfig, Output};
use crate::sip::ua::{TimerValues, UaConfig};
use media::{MediaSockets, RtpBatch};
use services::Services;
use sip_net::SipNet;

/// Load scenarios and prompts, bind the SIP socket, and run until Ctrl-C / SIGTERM (a
/// drain); SIGHUP reloads the scenarios and prompts.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    crate::pii::set_reveal(cfg.log.pii);
    let mut paths = reload::Paths {
        scenarios: cfg.scenarios.clone(),
        audio: cfg.audio.clone(),
        inbound: cfg.inbound(),
        // Checked below: the model loads when a scenario needs it, or serve stops.
        speech: true,
        config: cfg.source.clone(),
    };
    let (catalog, report) = crate::catalog::load(&paths.sources(), None)
        .map_err(anyhow::Error::msg)
        .context("loading the scenarios")?;
    reload::log_report("loaded", &report);
    let blocking = report.blocking(&catalog.inbound);
    if !blocking.is_empty() && !cfg.allow_broken_scenarios {
        anyhow::bail!(
            "{} problem(s) in scenarios that inbound calls can reach (above); fix them, or start with --allow-broken-scenarios to leave those scenarios out",
            blocking.len()
        );
    }
    if catalog.scenarios.is_empty() {
        anyhow::bail!(
            "no usable scenario in {} ({} failed to load)",
            cfg.scenarios.display(),
            report.problems.len()
        );
    }
    if !catalog.inbound.by_name && catalog.inbound.routes.is_empty() {
        tracing::warn!(
            "no inbound route (routes:) and inbound_by_name is off: every inbound call gets 404"
        );
    }
    // Before the SIP socket opens: a scenario that accepts speech needs a working model.
    let metrics = Arc::new(crate::api::metrics::Metrics::new());
    let speech = speech::Speech::start(&cfg.asr, &catalog.scenarios, metrics.clone())?;
    paths.speech = speech.is_some();
    let sip = SipNet::bind(&cfg).await?;
    let local_addr = sip.local_addr()?;
    tracing::info!(%local_addr, "SIP listening (UDP)");

    let (trunks, trunk_dns) = dns::resolve_trunks(&cfg).await?;
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    dns::refresh(
        &cfg,
        trunk_dns.clone(),
        commands_tx.clone(),
        sip.peers(&cfg)?,
    );
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let claim_now = Arc::new(tokio::sync::Notify::new());
    let view = crate::api::ScenarioView::new(catalog.scenarios.clone());
    let mut svc = Services::start(
        &cfg,
        view.clone(),
        reload_tx.clone(),
        commands_tx.clone(),
        claim_now.clone(),
        metrics,
    )
    .await?;
    // Queued calls are not loaded: the cluster loop claims them when due (rt::cluster).
    let (dnc, lost) = svc
        .store
        .run({
            let node = cfg.store.node.clone();
            move |s| Ok::<_, crate::store::StoreError>((s.dnc_numbers()?, s.live_calls(&node)?))
        })
        .await
        .context("the store thread stopped")??;
    let mut campaigns = Vec::new();
    let mut campaign_trunks = HashMap::new();
    for c in &cfg.campaigns {
        campaigns.push(c.to_campaign().map_err(anyhow::Error::msg)?);
        if let Some(t) = &c.trunk {
            campaign_trunks.insert(c.name.clone(), t.clone());
        }
    }
    let seed = rand::make_rng::<rand::rngs::StdRng>().next_u64();
    let now = Instant::now();
    let mut node = Node::new(NodeConfig {
        engine: EngineConfig {
            ua: UaConfig {
                local_addr,
                advertised: cfg.sip.advertise.clone(),
                user_agent: cfg.sip.user_agent.clone(),
                timers: TimerValues::default(),
            },
            media_ip: cfg.sdp_ip(),
            inbound: catalog.inbound.clone(),
            max_calls: cfg.max_calls,
            seed,
            transfer_route: None,
            max_call_duration: cfg.max_call_duration().map_err(anyhow::Error::msg)?,
            strict_rtp: cfg.media.strict_rtp,
            max_calls_per_source: cfg.max_calls_per_source(),
            trusted: cfg.sip.guard().map_err(anyhow::Error::msg)?.trusted,
        },
        scenarios: catalog.scenarios.clone(),
        prompts: catalog.prompts.clone(),
        trunks,
        campaigns,
        campaign_trunks,
        overload_tick: Duration::from_secs_f64(cfg.media.overload_tick_ms.max(1.0) / 1000.0),
        seed: seed.rotate_left(17),
        guard: cfg.sip.guard().map_err(anyhow::Error::msg)?,
        anchor: (now, SystemTime::now()),
        recordings_url: svc.api_addr.map(|a| cfg.recordings_url(a)),
    });
    sip_net::setup(&cfg, &sip, &mut node, &trunk_dns)?;
    node.use_claims();
    node.handle_input(now, Input::Command(Command::Recovered(lost)));
    for number in dnc {
        node.handle_input(
            now,
            Input::Command(Command::Dnc {
                number,
                listed: true,
            }),
        );
    }
    let range = cfg.rtp_port_range().map_err(anyhow::Error::msg)?;
    let (ports, rtp_rx) =
        MediaSockets::start(cfg.rtp_ip(), range).context("starting the RTP receive thread")?;
    let drain = cfg.drain_timeout().map_err(anyhow::Error::msg)?;
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cluster = cluster::spawn(
        cluster::Cluster::from_config(&cfg),
        svc.store.clone(),
        commands_tx.clone(),
        claim_now,
        draining.clone(),
    );
    let reloader = reload::spawn(
        paths,
        catalog,
        view,
        commands_tx,
        svc.metrics.clone(),
        reload_rx,
    );
    systemd::notify("READY=1");
    let r = drive(
        node,
        sip,
        ports,
        rtp_rx,
        &mut svc,
        speech,
        commands_rx,
        reload_tx,
        drain,
        draining,
    )
    .await;
    reloader.abort();
    cluster.abort();
    if r.is_ok() {
        cluster::leave(&svc.store, &cfg.store.node).await;
    }
    if r.is_ok() {
        flush_outbox(&svc, Duration::from_secs(5)).await;
    }
    svc.shutdown().await;
    r
}

/// After a drain, give the delivery worker a bounded moment to send what is pending (the
/// events are stored either way: what is not delivered now is delivered at the next start).
async fn flush_outbox(svc: &Services, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let pending = svc
            .store
            .run(|s| s.stats())
            .await
            .and_then(|r| r.ok())
            .map(|s| s.events_by_status.get("pending").copied().unwrap_or(0))
            .unwrap_or(0);
        if pending == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::info!(
                pending,
                "events still pending at exit; they are delivered at the next start"
            );
            return;
        }
        svc.store.new_events.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM and SIGINT (Ctrl-C), as one stream of "please stop" requests.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

/// What the process was asked by a signal.
enum Signal {
    Stop,
    Reload,
}

impl StopSignals {
    fn new() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let term = async {
                match self.term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let hup = async {
                match self.hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = term => Signal::Stop,
                _ = hup => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

/// Counters the node and the sockets keep, copied into the metrics about once a second.
fn publish_counters(
    node: &Node,
    ports: &MediaSockets,
    svc: &Services,
    speech: Option<&speech::Speech>,
) {
    let m = &svc.metrics;
    m.live_calls.set(node.live_calls() as i64);
    let sent = m.rtp_packets_sent.get();
    if ports.packets_sent > sent {
        m.rtp_packets_sent.inc_by(ports.packets_sent - sent);
    }
    let errs = m.rtp_send_errors.get();
    if ports.send_errors > errs {
        m.rtp_send_errors.inc_by(ports.send_errors - errs);
    }
    let foreign = node.engine().rtp_foreign();
    let seen = m.rtp_foreign_dropped.get();
    if foreign > seen {
        m.rtp_foreign_dropped.inc_by(foreign - seen);
    }
    let v = crate::timers::violations();
    let seen = m.timer_violations.get();
    if v > seen {
        m.timer_violations.inc_by(v - seen);
    }
    let ua = node.engine().ua().stats();
    m.sip_counter_to("unparseable_dropped", ua.unparseable_dropped);
    m.sip_counter_to("invalid_rejected", ua.invalid_rejected);
    m.sip_counter_to("responses_dropped", ua.responses_dropped);
    m.sip_counter_to("retransmissions_absorbed", ua.retransmissions_absorbed);
    let (guard, banned) = node.guard_stats();
    m.sip_counter_to("flood_dropped", guard.dropped_banned);
    m.sip_counter_to("denied", guard.denied);
    m.sip_counter_to("sources_banned", guard.bans);
    m.sip_banned_sources.set(banned as i64);
    if let Some(s) = speech {
        for (result, n) in s.dropped() {
            let c = m.asr_jobs.get_or_create(&crate::api::metrics::ResultLabel {
                result: result.to_owned(),
            });
            let seen = c.get();
            if n as u64 > seen {
                c.inc_by(n as u64 - seen);
            }
        }
    }
}

/// An API or reload command for the node; a drain also stops the claims.
fn command(node: &mut Node, cmd: Command, draining: &std::sync::atomic::AtomicBool) {
    if matches!(cmd, Command::Drain { .. }) {
        systemd::notify("STOPPING=1");
        draining.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    node.handle_input(Instant::now(), Input::Command(cmd));
}

/// Executes everything the node wants done now; returns when it asks to be woken.
fn execute(
    node: &mut Node,
    sip: &SipNet,
    ports: &mut MediaSockets,
    svc: &mut Services,
    speech: &Option<speech::Speech>,
) -> Instant {
    let mut store_gone = false;
    loop {
        match node.poll_output() {
            Output::Timeout(at) => return at,
            Output::Sip(t) => sip.send(t, &svc.metrics),
            Output::Rtp {
                call,
                dest,
                payload,
            } => ports.send(call, dest, payload),
            Output::OpenMedia { call } => {
                let input = match ports.open(call) {
                    Ok(port) => Input::MediaOpened { call, port },
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open an RTP port");
                        Input::MediaFailed {
                            call,
                            error: e.to_string(),
                        }
                    }
                };
                node.handle_input(Instant::now(), input);
            }
            Output::CloseMedia { call } => ports.close(call),
            Output::Commit {
                ticket,
                records,
                files,
            } => {
                if !svc.store.record(records, files, ticket) && !store_gone {
                    store_gone = true;
                    node.handle_input(
                        Instant::now(),
                        Input::StoreFailed {
                            ticket,
                            error: "the store thread is gone".to_owned(),
                        },
                    );
                }
            }
            Output::AddDnc { number } => {
                let store = svc.store.clone();
                tokio::spawn(async move {
                    let now = crate::crm::events::unix_ms(SystemTime::now());
                    match store.run(move |s| s.add_dnc(&number, "call", now)).await {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "could not store a do-not-call request")
                        }
                        None => tracing::error!(
                            "could not store a do-not-call request: the store thread is gone"
                        ),
                    }
                });
            }
            Output::Http {
                call,
                id,
                call_ref,
                request,
            } => svc.http.webhook(call, call_ref.as_deref(), id, request),
            Output::Recognize {
                call,
                id,
                audio,
                lang,
                phrases,
            } => match speech {
                Some(s) => s.submit(call, id, audio, lang, phrases),
                None => node.handle_input(
                    Instant::now(),
                    Input::Recognition {
                        call,
                        id,
                        result: Err("no speech model is loaded".to_owned()),
                    },
                ),
            },
            Output::CancelRecognition { call, id } => {
                if let Some(s) = speech {
                    s.cancel(call, id);
                }
            }
            Output::Status(s) => {
                svc.metrics.node_status(&s);
                svc.status.set(*s);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut node: Node,
    sip: SipNet,
    mut ports: MediaSockets,
    mut rtp_rx: mpsc::Receiver<RtpBatch>,
    svc: &mut Services,
    mut speech: Option<speech::Speech>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    reload: mpsc::UnboundedSender<crate::api::ReloadRequest>,
    drain: Duration,
    draining: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 65535];
    let mut wake = execute(&mut node, &sip, &mut ports, svc, &speech);
    let mut last_publish = Instant::now();
    let mut signals = StopSignals::new();
    let mut stops = 0u32;
    loop {
        if node.drained() {
            tracing::info!("drained: every call ended and every event stored; exiting");
            return Ok(());
        }
        let deadline = tokio::time::Instant::from_std(wake);
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                let late = now.saturating_duration_since(wake);
                svc.metrics.rtp_tick_lateness_seconds.observe(late.as_secs_f64());
                node.handle_timeout(now);
                execute(&mut node, &sip, &mut ports, svc, &speech);
                // How late the wake-up came and how long the tick and its sends took:
                // the node refuses new calls before that turns into send jitter.
                node.handle_input(Instant::now(), Input::TickCost { late, spent: now.elapsed() });
                // When every wake-up finds a tick due (a starved box), the other branches
                // would never run: take what SIP (and the commands before it) has queued
                // here too, bounded.
                while let Ok(cmd) = commands.try_recv() {
                    command(&mut node, cmd, &draining);
                }
                for _ in 0..64 {
                    match sip.try_recv_from(&mut buf) {
                        Ok((n, source)) => {
                            svc.metrics.sip_datagram(SipDirection::In, &buf[..n]);
                            node.handle_input(Instant::now(), Input::Sip { source, datagram: &buf[..n] })
                        }
                        Err(_) => break,
                    }
                }
                if last_publish.elapsed() >= Duration::from_secs(1) {
                    last_publish = Instant::now();
                    publish_counters(&node, &ports, svc, speech.as_ref());
                }
            }
            ack = svc.acks.recv() => {
                let Some(ack) = ack else {
                    anyhow::bail!("the store thread stopped");
                };
                let input = match ack.error {
                    None => Input::Stored { ticket: ack.ticket },
                    Some(error) => Input::StoreFailed { ticket: ack.ticket, error },
                };
                node.handle_input(Instant::now(), input);
            }
            r = sip.recv_from(&mut buf) => {
                // A command sent before this datagram (a reload the API already answered)
                // applies first.
                while let Ok(cmd) = commands.try_recv() {
                    command(&mut node, cmd, &draining);
                }
                match r {
                    Ok((n, source)) => {
                        svc.metrics.sip_datagram(SipDirection::In, &buf[..n]);
                        node.handle_input(Instant::now(), Input::Sip { source, datagram: &buf[..n] })
                    }
                    Err(e) => tracing::debug!(error = %e, "SIP recv error"),
                }
            }
            Some(m) = sip.recv_stream() => {
                while let Ok(cmd) = commands.try_recv() {
                    command(&mut node, cmd, &draining);
                }
                svc.metrics.sip_datagram(SipDirection::In, &m.bytes);
                node.handle_input(Instant::now(), Input::SipStream { source: m.source, transport: m.transport, message: &m.bytes });
            }
            Some(batch) = rtp_rx.recv() => {
                let now = Instant::now();
                for (call, source, packet) in batch.iter() {
                    node.handle_input(now, Input::Rtp { call, source, packet });
                }
                ports.recycle(batch);
            }
            Some(res) = svc.http_results.recv() => {
                node.handle_input(Instant::now(), Input::CallInput { call: res.call, input: res.input });
            }
            Some(res) = async {
                match speech.as_mut() {
                    Some(s) => s.results.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                node.handle_input(Instant::now(), Input::Recognition { call: res.call, id: res.id, result: res.result });
            }
            Some(cmd) = commands.recv() => {
                command(&mut node, cmd, &draining);
            }
            sig = signals.next() => match sig {
                Signal::Stop => {
                    stops += 1;
                    // The first asks for a drain; a second ends the calls at once.
                    let deadline = if stops == 1 { drain } else { Duration::ZERO };
                    tracing::info!(deadline_s = deadline.as_secs(), "stop requested");
                    systemd::notify("STOPPING=1");
                    draining.store(true, std::sync::atomic::Ordering::Relaxed);
                    node.handle_input(Instant::now(), Input::Command(Command::Drain { deadline }));
                }
                Signal::Reload => {
                    tracing::info!("SIGHUP: reloading the scenarios and prompts");
                    // The report is logged by the reloader; no one waits for it here.
                    let (reply, _) = tokio::sync::oneshot::channel();
                    let _ = reload.send(reply);
                }
            },
        }
        wake = execute(&mut node, &sip, &mut ports, svc, &speech);
    }
}
