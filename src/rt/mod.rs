//! The runtime: the only place with sockets, the real clock, tasks and HTTP.
//!
//! One tokio task owns the [`Engine`] and drives it: SIP datagrams, RTP datagrams (batches
//! from the media receive thread, `rt::media`, which holds every call's RTP socket outside
//! the reactor), the engine's timers, and one 20 ms pacing grid for every call's RTP. The
//! pacing tick also watches its own lateness and duration and, when they say quality is
//! about to suffer, has new calls refused (503 + Retry-After) before it does.
//!
//! Call events (started, answered, completed, failed, notify) go to the store thread as
//! records; the SIP messages the engine produced in the same step, and any after them, are
//! held back until the store acknowledges the commit (`rt::store`), so no SIP message that
//! follows an event leaves before the event is on disk (docs/webhooks.md, "Guarantees").
//! The store thread, the delivery worker, HTTP effects and the control API are started by
//! `rt::services`.
//!
//! Not here: any protocol or dialogue decision — those are in the sans-IO layers.

pub mod dialer;
pub mod http;
pub mod media;
pub mod recorder;
pub mod services;
pub mod speech;
pub mod store;
pub mod webhook;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::config::Config;
use crate::engine::{Engine, EngineConfig, EngineEvent};
use crate::media::prompts::PromptCache;
use crate::sip::ua::{TimerValues, Transmit, UaConfig};
use media::{MediaSockets, RtpBatch};
use services::Services;

/// RTP packet time: the pacing grid.
pub const PTIME: Duration = Duration::from_millis(20);
/// Ticks over the pacing budget within one second (of 50) that mean "overloaded".
const OVERLOAD_TICKS: u32 = 10;

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
    // Before the SIP socket opens: a scenario that accepts speech needs a working model.
    let speech = speech::Speech::start(&cfg.asr, &scenarios)?;
    let sip = UdpSocket::bind(cfg.sip.listen)
        .await
        .with_context(|| format!("binding SIP UDP socket {}", cfg.sip.listen))?;
    let local_addr = sip.local_addr()?;
    tracing::info!(%local_addr, "SIP listening (UDP)");

    let mut outbound = dialer::Outbound::new(&cfg).await?;
    let (dialer_tx, dialer_rx) = mpsc::unbounded_channel();
    let mut svc = Services::start(
        &cfg,
        scenarios.keys().cloned().collect(),
        dialer_tx,
        outbound.board.clone(),
    )
    .await?;
    let (queued, dnc) = svc
        .store
        .run(|s| Ok::<_, crate::store::StoreError>((s.queued_calls()?, s.dnc_numbers()?)))
        .await
        .context("the store thread stopped")??;
    outbound.load(queued, dnc);
    let engine_cfg = EngineConfig {
        ua: UaConfig {
            local_addr,
            advertised: cfg.sip.advertise.clone(),
            user_agent: cfg.sip.user_agent.clone(),
            timers: TimerValues::default(),
        },
        media_ip: cfg.sdp_ip(),
        routes: cfg.routes.clone(),
        max_calls: cfg.max_calls,
        seed: rand::make_rng::<rand::rngs::StdRng>().next_u64(),
        transfer_route: outbound.transfer_route(),
        max_call_duration: cfg.max_call_duration().map_err(anyhow::Error::msg)?,
    };
    let scenarios: BTreeMap<_, _> = scenarios;
    let engine = Engine::new(
        engine_cfg,
        scenarios,
        Arc::new(prompts),
        (Instant::now(), SystemTime::now()),
    );
    let range = cfg.rtp_port_range().map_err(anyhow::Error::msg)?;
    let (ports, rtp_rx) =
        MediaSockets::start(cfg.rtp_ip(), range).context("starting the RTP receive thread")?;
    let overload = Duration::from_secs_f64(cfg.media.overload_tick_ms.max(1.0) / 1000.0);
    let mut engine = engine;
    outbound.start(Instant::now(), &mut engine);
    let r = tokio::select! {
        r = drive(engine, sip, ports, rtp_rx, &mut svc, speech, outbound, dialer_rx, overload) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    svc.shutdown().await;
    r
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

/// SIP messages waiting for the commit of a batch of call records.
struct Held {
    ticket: u64,
    since: Instant,
    transmits: Vec<Transmit>,
    /// Inbound calls answered by these transmits: their greetings start once they leave.
    starts: Vec<crate::sip::ua::CallHandle>,
}

async fn send_sip(sip: &UdpSocket, t: Transmit) {
    if let Err(e) = sip.send_to(&t.payload, t.dest).await {
        tracing::debug!(dest = %t.dest, error = %e, "SIP send failed");
    }
}

/// Counters the engine and the sockets keep, copied into the metrics about once a second.
fn publish_counters(engine: &Engine, ports: &MediaSockets, svc: &Services) {
    let m = &svc.metrics;
    m.live_calls.set(engine.live_calls() as i64);
    let sent = m.rtp_packets_sent.get();
    if ports.packets_sent > sent {
        m.rtp_packets_sent.inc_by(ports.packets_sent - sent);
    }
    let errs = m.rtp_send_errors.get();
    if ports.send_errors > errs {
        m.rtp_send_errors.inc_by(ports.send_errors - errs);
    }
    let v = crate::timers::violations();
    let seen = m.timer_violations.get();
    if v > seen {
        m.timer_violations.inc_by(v - seen);
    }
    let ua = engine.ua().stats();
    m.sip_counter_to("unparseable_dropped", ua.unparseable_dropped);
    m.sip_counter_to("invalid_rejected", ua.invalid_rejected);
    m.sip_counter_to("responses_dropped", ua.responses_dropped);
    m.sip_counter_to("retransmissions_absorbed", ua.retransmissions_absorbed);
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut engine: Engine,
    sip: UdpSocket,
    mut ports: MediaSockets,
    mut rtp_rx: mpsc::Receiver<RtpBatch>,
    svc: &mut Services,
    mut speech: Option<speech::Speech>,
    mut outbound: dialer::Outbound,
    mut dialer_rx: mpsc::UnboundedReceiver<dialer::DialerCommand>,
    overload: Duration,
) -> anyhow::Result<()> {
    let mut pacing = tokio::time::interval(PTIME);
    // A late tick is not made up with a burst (Playout restarts its schedule after a
    // stall); the next one stays on the grid.
    pacing.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // Ticks whose lateness + duration reached the budget, in the current and the previous
    // second (50 ticks each). A single late tick is the box's noise (another process got
    // the CPU); a fifth of a second's ticks over budget is the pacing falling behind.
    let mut over = (0u32, 0u32);
    let mut buf = vec![0u8; 65535];
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut ticket = 0u64;
    let mut ticks = 0u64;
    let mut store_gone = false;
    loop {
        let deadline = engine
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let dial_at = outbound.next_wakeup();
        let mut records = Vec::new();
        tokio::select! {
            biased;
            scheduled = pacing.tick() => {
                let now = Instant::now();
                let late = now.saturating_duration_since(scheduled.into_std());
                svc.metrics.rtp_tick_lateness_seconds.observe(late.as_secs_f64());
                engine.handle_timeout(now, &mut ports);
                engine.tick(now, &mut |call, dest, pkt| ports.send(call, dest, pkt));
                engine.handle_timeout(now, &mut ports);
                // Back-pressure: a tick that starts late and takes long is what turns into
                // send-interval jitter; refuse new calls before it reaches the period.
                let spent = late + now.elapsed();
                if spent >= overload {
                    over.0 += 1;
                }
                let recent = over.0.max(over.1);
                if !ports.overloaded && recent >= OVERLOAD_TICKS {
                    ports.overloaded = true;
                    tracing::warn!(?spent, live = engine.live_calls(), "RTP pacing overloaded: refusing new calls");
                } else if ports.overloaded && recent < OVERLOAD_TICKS / 2 {
                    ports.overloaded = false;
                    tracing::info!(live = engine.live_calls(), "RTP pacing recovered: accepting calls");
                }
                ticks += 1;
                if ticks.is_multiple_of(50) {
                    over = (0, over.0);
                    publish_counters(&engine, &ports, svc);
                    if let Some(s) = &speech {
                        for (result, n) in s.dropped() {
                            let c = svc.metrics.asr_jobs.get_or_create(&crate::api::metrics::ResultLabel { result: result.to_owned() });
                            let seen = c.get();
                            if n as u64 > seen {
                                c.inc_by(n as u64 - seen);
                            }
                        }
                    }
                }
                // The tick comes first (`biased`), so when every wake-up finds it due (a
                // starved or overloaded box) the other branches would never run: take what
                // SIP has queued and any due dial here too, bounded, so calls keep moving.
                for _ in 0..64 {
                    match sip.try_recv_from(&mut buf) {
                        Ok((n, src)) => engine.handle_sip(Instant::now(), src, &buf[..n], &mut ports),
                        Err(_) => break,
                    }
                }
                if dial_at.is_some_and(|t| t <= tokio::time::Instant::now()) {
                    outbound.dial_due(Instant::now(), &mut engine, &mut ports, &mut svc.recorder, &mut records);
                }
            }
            ack = svc.acks.recv(), if !held.is_empty() => {
                // Acks arrive in ticket order; a closed channel (store thread gone)
                // releases everything.
                let upto = ack.map(|a| a.ticket).unwrap_or(u64::MAX);
                while held.front().is_some_and(|h| h.ticket <= upto) {
                    if let Some(h) = held.pop_front() {
                        svc.metrics.sip_hold_seconds.observe(h.since.elapsed().as_secs_f64());
                        for t in h.transmits {
                            send_sip(&sip, t).await;
                        }
                        engine.start_prompts(Instant::now(), &h.starts, &mut ports);
                    }
                }
            }
            r = sip.recv_from(&mut buf) => {
                match r {
                    Ok((n, src)) => engine.handle_sip(Instant::now(), src, &buf[..n], &mut ports),
                    Err(e) => tracing::debug!(error = %e, "SIP recv error"),
                }
            }
            Some(batch) = rtp_rx.recv() => {
                let now = Instant::now();
                for (call, data) in batch.iter() {
                    engine.handle_rtp(now, call, data, &mut ports);
                }
                ports.recycle(batch);
            }
            Some(res) = svc.http_results.recv() => {
                engine.handle_call_input(Instant::now(), res.call, res.input, &mut ports);
            }
            Some(res) = async {
                match speech.as_mut() {
                    Some(s) => s.results.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                engine.handle_recognition(Instant::now(), res.call, res.id, res.result, &mut ports);
            }
            _ = tokio::time::sleep_until(deadline) => {
                engine.handle_timeout(Instant::now(), &mut ports);
            }
            Some(cmd) = dialer_rx.recv() => {
                outbound.command(cmd);
                outbound.dial_due(Instant::now(), &mut engine, &mut ports, &mut svc.recorder, &mut records);
            }
            _ = async {
                match dial_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                outbound.dial_due(Instant::now(), &mut engine, &mut ports, &mut svc.recorder, &mut records);
            }
        }
        // Events first: if there are any, this step's SIP messages wait for their commit.
        while let Some(ev) = engine.poll_event() {
            match ev {
                // Speech goes to the recognition threads, never run here (this task paces RTP).
                EngineEvent::Effect {
                    call,
                    effect:
                        crate::call::Effect::Recognize {
                            id,
                            audio,
                            lang,
                            phrases,
                        },
                    ..
                } => match &speech {
                    Some(s) => s.submit(call, id, audio, lang, phrases),
                    None => engine.handle_recognition(
                        Instant::now(),
                        call,
                        id,
                        Err("no speech model is loaded".to_owned()),
                        &mut ports,
                    ),
                },
                EngineEvent::Effect {
                    call,
                    effect: crate::call::Effect::CancelRecognition { id },
                    ..
                } => {
                    if let Some(s) = &speech {
                        s.cancel(call, id);
                    }
                }
                EngineEvent::Effect {
                    call,
                    sip_call_id,
                    effect,
                } => {
                    if let crate::call::Effect::Dialogue(crate::dialogue::Action::Notify {
                        event,
                        ..
                    }) = &effect
                        && event == crate::crm::events::DNC_REQUESTED
                        && let Some(number) = outbound.opt_out(&sip_call_id)
                    {
                        let store = svc.store.clone();
                        tokio::spawn(async move {
                            let now = crate::crm::events::unix_ms(SystemTime::now());
                            match store.run(move |s| s.add_dnc(&number, "call", now)).await {
                                Some(Ok(_)) => {}
                                other => {
                                    tracing::error!(?other, "could not store a do-not-call request")
                                }
                            }
                        });
                    }
                    svc.effect(call, &sip_call_id, effect, &mut records)
                }
                other => outbound.on_event(other, &mut svc.recorder, &mut records),
            }
        }
        if !records.is_empty() {
            ticket += 1;
            if svc.store.record(records, ticket) {
                held.push_back(Held {
                    ticket,
                    since: Instant::now(),
                    transmits: Vec::new(),
                    starts: Vec::new(),
                });
            } else if !store_gone {
                store_gone = true;
                tracing::error!("the store thread is gone: call events are no longer recorded");
            }
        }
        while let Some(t) = engine.poll_transmit() {
            match held.back_mut() {
                Some(h) => h.transmits.push(t),
                None => send_sip(&sip, t).await,
            }
        }
        // A greeting's first packet follows its call's 200 OK onto the wire, at once.
        let starts = engine.take_deferred_starts();
        if !starts.is_empty() {
            match held.back_mut() {
                Some(h) => h.starts.extend(starts),
                None => engine.start_prompts(Instant::now(), &starts, &mut ports),
            }
        }
    }
}
