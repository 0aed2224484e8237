//! The engine: the SIP user agent plus every live call, as one sans-IO state machine.
//!
//! It routes incoming INVITEs to scenarios (Request-URI user part, or the route table),
//! negotiates SDP, answers, runs each call's [`CallCore`], hangs up when the dialogue says
//! so, and emits a [`CallCompleted`] record for the CRM when a call ends — and, for the
//! outbox, [`EngineEvent::CallStarted`] / [`EngineEvent::CallAnswered`] when a call is
//! accepted and answered, [`EngineEvent::CallFailed`] when a call that named a scenario is
//! refused (503 at capacity, 488, no RTP port). A 404 (no scenario) emits nothing.
//!
//! Its owner (the node, `crate::node`) feeds it datagrams, timeouts and the results of what
//! it asked for, and calls [`Engine::tick`] on one 20 ms pacing grid for all calls. Everything
//! the engine wants done leaves through one ordered queue, [`Engine::poll_output`]: SIP
//! datagrams, RTP packets (built in one reused arena, [`Engine::rtp_payload`]), requests to
//! open or close a call's media port, and events. Order is kept: a call's BYE never
//! overtakes the call's last packets, nor its events their SIP.
//!
//! A media port is opened in two steps: [`EngineOutput::OpenMedia`] asks, and the answer
//! comes back as [`Engine::handle_media_opened`] (with the port, which goes into SDP) or
//! [`Engine::handle_media_failed`]. An inbound call is answered, and an outbound INVITE
//! sent, only then.
//!
//! Outbound calls: [`Engine::place_call`] asks for the media port, sends the INVITE with an
//! SDP offer through the trunk, and keeps the leg pending until it is answered (the
//! scenario starts on the 2xx, like an inbound call after our 200 OK), fails (the SIP
//! status becomes a [`Disposition`]), or rings past its ring timeout (CANCEL; no answer).
//!
//! Where: `inbound.rs` (routing and answering an INVITE, the variables its headers may
//! set), `outbound.rs` (placing, answered, failed), `transfer.rs` (blind and bridged
//! transfers), `link/` (SRTP, RTCP, media timeout); this file holds the calls, the timers,
//! the pacing tick and how a call ends.
//!
//! What it does not do: sockets, clocks, HTTP, threads, persistence, or decide when to
//! dial (the node and [`crate::dialer`] do).

#[cfg(test)]
mod hostile_tests;
mod inbound;
mod link;
mod outbound;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod transfer;

pub use inbound::{asserted_identity, sip_variables};
pub use link::MediaOptions;
pub use transfer::TransferRoute;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::call::{CallCore, CallInfo, Effect, MediaParams};
use crate::crm::CallCompleted;
use crate::crm::events::FailReason;
use crate::dialer::Disposition;
use crate::dialogue::{HangupBy, Input};
use crate::media::prompts::PromptCache;
use crate::pii::Pii;
use crate::scenario::Scenario;
use crate::scenario::builtins::{CallDirection, party_variables};
use crate::sip::message::{Request, parse_name_addr, parse_uri};
use crate::sip::sdp::{self, LocalMedia, Origin};
use crate::sip::ua::{
    CallHandle, EndReason, OutboundInvite, Transmit, UaConfig, UaEvent, UserAgent,
};

/// Room for one RTP packet in the output arena.
const MAX_RTP: usize = 1500;

/// How often one call may be handled in one [`Engine::handle_timeout`].
const MAX_PASSES: u8 = 2;

/// What the engine wants done, in the order it happened. RTP payloads live in the
/// engine's arena: read them with [`Engine::rtp_payload`] before the next input.
#[derive(Debug)]
pub enum EngineOutput {
    /// A SIP datagram.
    Sip(Transmit),
    /// One RTP packet for `dest`, sent from `call`'s media port.
    Rtp {
        call: CallHandle,
        dest: SocketAddr,
        off: u32,
        len: u32,
    },
    /// Bind a local RTP port for `call`; answer with [`Engine::handle_media_opened`] or
    /// [`Engine::handle_media_failed`].
    OpenMedia {
        call: CallHandle,
    },
    /// `call`'s media port is not needed any more.
    CloseMedia {
        call: CallHandle,
    },
    Event(EngineEvent),
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub ua: UaConfig,
    /// Address advertised in SDP for RTP.
    pub media_ip: IpAddr,
    /// Which scenarios inbound calls reach (routes; by name only when allowed).
    pub inbound: crate::catalog::Inbound,
    /// Above this many live calls new INVITEs get 503 with Retry-After.
    pub max_calls: usize,
    /// Seed for tags, branches, SSRCs (tests pass a constant).
    pub seed: u64,
    /// Where bridged transfers to targets without an address of their own go.
    pub transfer_route: Option<TransferRoute>,
    /// Any answered call is ended (BYE, `call.failed` reason `max_duration`) this long
    /// after it was answered, whatever its scenario is doing.
    pub max_call_duration: Duration,
    /// Whose RTP a call accepts (see `media::latch`).
    pub strict_rtp: crate::media::latch::StrictRtp,
    /// At most this many calls up at once from one source address (`None`: no limit);
    /// beyond, new INVITEs get 503 with Retry-After. Trusted sources are exempt.
    pub max_calls_per_source: Option<usize>,
    /// Sources exempt from the per-source limit (the local host, trunks, a proxy in front).
    pub trusted: Vec<crate::sip::acl::Net>,
}

/// Default [`EngineConfig::max_call_duration`].
pub const DEFAULT_MAX_CALL_DURATION: Duration = Duration::from_secs(30 * 60);

/// A call up now, as operators see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LiveCallInfo {
    #[serde(skip)]
    pub call: CallHandle,
    /// ivrflow's id of the call (filled in by the node).
    pub call_ref: Option<String>,
    pub sip_call_id: String,
    pub scenario: String,
    pub direction: &'static str,
    #[serde(serialize_with = "crate::engine::rfc3339")]
    pub answered_at: SystemTime,
    pub duration_ms: u64,
    /// The node of the scenario's graph the call is in.
    pub node: String,
    /// Bridged to an agent (the scenario is over, the call is not).
    pub bridged: bool,
}

/// RFC 3339 for serde.
pub fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
}

/// Who called whom for which scenario: the identity of a call in its CRM events.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOrigin {
    pub sip_call_id: String,
    /// ivrflow's id of the call when it existed before the SIP leg (an outbound call
    /// queued by the API); `None` for inbound calls, which get one when they start.
    pub call_ref: Option<String>,
    pub scenario: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// Caller number (personal data).
    pub from: String,
    /// Dialled number (personal data).
    pub to: String,
    /// The call's variables as the scenario starts (`X-…` headers, `caller`, `dialled`).
    pub variables: BTreeMap<String, String>,
}

/// What the engine reports to the runtime.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EngineEvent {
    /// A call was accepted for a scenario (inbound: the INVITE was routed). Always the
    /// first event of a call; [`EngineEvent::CallAnswered`] follows.
    CallStarted {
        call: CallHandle,
        origin: Box<CallOrigin>,
        at: SystemTime,
    },
    /// The call was answered (inbound: ivrflow sent 200 OK) and its scenario starts.
    CallAnswered {
        call: CallHandle,
        sip_call_id: String,
        at: SystemTime,
    },
    /// A call that named a scenario was refused or failed before it was answered.
    CallFailed {
        call: CallHandle,
        origin: Box<CallOrigin>,
        reason: FailReason,
        sip_code: Option<u16>,
        detail: String,
        at: SystemTime,
    },
    /// An answered call ended (or was ended by ivrflow: `record.failure`).
    CallCompleted {
        call: CallHandle,
        record: Box<CallCompleted>,
    },
    /// A trunk's registration or keep-alive changed (`Registered`, `RegistrationFailed`,
    /// `Unregistered`, `PingResult`), for the runtime's trunk status.
    Trunk(UaEvent),
    /// Work for the runtime on behalf of a live call; results come back through
    /// [`Engine::handle_call_input`].
    Effect {
        call: CallHandle,
        sip_call_id: String,
        effect: Effect,
    },
}

struct LiveCall {
    core: CallCore,
    sip_call_id: String,
    scenario: String,
    direction: &'static str,
    remote_rtp: SocketAddr,
    media: MediaParams,
    /// The agent leg of a bridged transfer (ringing, announced, or bridged).
    bridge: Option<CallHandle>,
    /// Reads the caller's keys for an agent that takes them only by SIP INFO.
    relay_dtmf: Option<crate::media::dtmf::DtmfReceiver>,
    started_wall: SystemTime,
    /// The record was emitted (the robot hung up, or the caller did); only cleanup remains.
    completed: bool,
    /// The caller hung up during a recording: no SIP leg, no media; the call stays until its
    /// core has the recording's transcript, then completes (`Engine::keep_for_recording`).
    gone: bool,
    /// The deadline last pushed to the timer heap, to avoid pushing it again.
    scheduled: Option<Instant>,
    /// Inbound: our 200 OK was produced but may still be held by the runtime (it leaves
    /// once the store has the call's events), so the first prompt waits for it.
    answer_in_flight: bool,
    /// The call is ended here, whatever the scenario does (`max_call_duration`).
    hard_deadline: Instant,
    /// Whose RTP this call accepts.
    latch: crate::media::latch::SourceLatch,
    /// Where its INVITE came from (inbound), for the per-source limit.
    source: Option<IpAddr>,
    /// SRTP, RTCP and the media timeout of this call.
    link: link::MediaLink,
    /// The `call` span (its SIP Call-ID, and its `call_ref` once the node has minted it):
    /// entered while the engine works on this call, so every log line about it says which.
    span: tracing::Span,
}

impl LiveCall {
    /// The next instant the call needs the engine: its core's timers, or its hard end.
    fn deadline(&self) -> Option<Instant> {
        if self.completed {
            return None;
        }
        Some(match self.core.poll_timeout() {
            Some(t) => t.min(self.hard_deadline),
            None => self.hard_deadline,
        })
    }
}

/// An outbound call placed and not yet answered.
struct PendingCall {
    origin: Box<CallOrigin>,
    scenario: Arc<Scenario>,
    port: u16,
    ring_deadline: Instant,
    /// We sent CANCEL at the ring timeout: the 487 that follows means "no answer".
    cancelled_on_timeout: bool,
    /// We sent CANCEL because the node shuts down.
    cancelled_for_shutdown: bool,
    /// The SDP of an early-media (183) response, used if the 2xx carries none.
    early_sdp: Option<Vec<u8>>,
    /// The call's log span (see [`LiveCall`]'s).
    span: tracing::Span,
}

/// An outbound call to place through a trunk.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// ivrflow's id of the call (the queued call's `call_ref`).
    pub call_ref: String,
    pub scenario: String,
    /// The number dialled (personal data), as the API gave it.
    pub to: String,
    /// Our caller ID (the From user).
    pub from: String,
    pub variables: BTreeMap<String, String>,
    /// The INVITE: Request-URI, destination, identity, credentials. Its `sdp_offer` is
    /// filled in by the engine.
    pub invite: OutboundInvite,
    pub ring_timeout: Duration,
    /// Codecs to offer, in order of preference (empty: PCMU, PCMA).
    pub codecs: Vec<crate::media::Codec>,
}

/// Why [`Engine::place_call`] placed nothing; the call was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("at capacity ({0} live calls)")]
    AtCapacity(usize),
    #[error("no scenario named {0:?}")]
    UnknownScenario(String),
    #[error("cannot open an RTP port: {0}")]
    NoMediaPort(String),
}

pub struct Engine {
    cfg: EngineConfig,
    ua: UserAgent,
    rng: StdRng,
    scenarios: BTreeMap<String, Arc<Scenario>>,
    prompts: Arc<PromptCache>,
    calls: HashMap<CallHandle, LiveCall>,
    /// Outbound calls ringing.
    pending: HashMap<CallHandle, PendingCall>,
    /// Agent legs of bridged transfers.
    agents: HashMap<CallHandle, transfer::AgentLeg>,
    /// Blind transfers waiting for their REFER's outcome: call → transfer id.
    refers: HashMap<CallHandle, u64>,
    /// Calls whose media port was asked for and not yet given.
    awaiting_media: HashMap<CallHandle, MediaWait>,
    /// Per-call wake-ups (dialogue timers); stale entries are harmless.
    call_timers: BinaryHeap<Reverse<(Instant, CallHandle)>>,
    /// Everything for the owner, in order (see [`EngineOutput`]).
    outputs: VecDeque<EngineOutput>,
    /// RTP payloads of the queued [`EngineOutput::Rtp`]s.
    arena: Vec<u8>,
    /// Maps the monotonic `now` to wall-clock time for CRM timestamps.
    anchor: (Instant, SystemTime),
    packet_buf: Vec<u8>,
    /// Calls the last tick touched, to re-examine (timers, hang-up) outside the tick.
    attention: Vec<CallHandle>,
    /// Set by the owner when the media side cannot take another call (the pacing tick
    /// falls behind): new INVITEs get 503 + Retry-After, like `max_calls`.
    media_overloaded: bool,
    /// Set by the owner while the store cannot commit (see [`Engine::set_store_failing`]).
    store_failing: bool,
    /// Set by the owner while the node drains (see [`Engine::set_draining`]).
    draining: bool,
    /// RTP packets dropped for their source (strict RTP).
    rtp_foreign: u64,
    /// INVITEs refused by the per-source limit.
    per_source_refused: u64,
    /// SRTP, RTCP, silence while listening, media timeout (issue 19; `link`).
    interop: link::Interop,
}

/// A call set up to the point where it needs its media port.
enum MediaWait {
    /// An inbound INVITE, accepted: answered once the port is open.
    Inbound(Box<InboundSetup>),
    /// An outbound call: its INVITE (with the port in its offer) goes out once open.
    Outbound(Box<(OutboundCall, Arc<Scenario>)>),
    /// The agent leg of a bridged transfer.
    Agent(Box<transfer::AgentSetup>),
}

struct InboundSetup {
    source: IpAddr,
    scenario: Arc<Scenario>,
    neg: sdp::Negotiated,
    origin: Box<CallOrigin>,
}

impl Engine {
    pub fn new(
        cfg: EngineConfig,
        scenarios: BTreeMap<String, Arc<Scenario>>,
        prompts: Arc<PromptCache>,
        anchor: (Instant, SystemTime),
    ) -> Engine {
        let ua = UserAgent::new(cfg.ua.clone(), cfg.seed);
        let rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed_cafe);
        Engine {
            cfg,
            ua,
            rng,
            scenarios,
            prompts,
            calls: HashMap::new(),
            pending: HashMap::new(),
            agents: HashMap::new(),
            refers: HashMap::new(),
            awaiting_media: HashMap::new(),
            call_timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
            arena: Vec::new(),
            anchor,
            packet_buf: vec![0u8; 1500],
            attention: Vec::new(),
            media_overloaded: false,
            store_failing: false,
            draining: false,
            rtp_foreign: 0,
            per_source_refused: 0,
            interop: link::Interop::default(),
        }
    }

    // ───────────────────────────── output ─────────────────────────────

    /// The next thing to do, in order; `None` when there is nothing.
    pub fn poll_output(&mut self) -> Option<EngineOutput> {
        self.flush_ua();
        self.outputs.pop_front()
    }

    /// The bytes of an [`EngineOutput::Rtp`] just polled.
    pub fn rtp_payload(&self, off: u32, len: u32) -> &[u8] {
        &self.arena[off as usize..(off + len) as usize]
    }

    /// Moves the UA's datagrams into the output queue, so that they keep their place
    /// relative to what the engine queues next.
    fn flush_ua(&mut self) {
        while let Some(t) = self.ua.poll_transmit() {
            self.outputs.push_back(EngineOutput::Sip(t));
        }
    }

    /// An event goes ahead of the SIP datagrams the UA has produced in the same step
    /// and not yet handed over (a `call.completed` before its BYE, a `call.failed`
    /// before its 503): the owner stores the event before that SIP leaves.
    fn emit(&mut self, ev: EngineEvent) {
        self.outputs.push_back(EngineOutput::Event(ev));
    }

    /// Queues an RTP packet of `call` (protected here when the call is SRTP).
    fn push_rtp(&mut self, call: CallHandle, dest: SocketAddr, packet: &[u8]) {
        let off = self.push_raw(call, dest, packet);
        if let Some(c) = self.calls.get_mut(&call)
            && c.link.is_secure()
        {
            let end = self.arena.len();
            self.arena.resize(end + crate::media::srtp::MAX_TRAILER, 0);
            let n = c.link.protect_rtp(&mut self.arena[off..], end - off);
            self.arena.truncate(off + n.unwrap_or(0));
            if let Some(EngineOutput::Rtp { len, .. }) = self.outputs.back_mut() {
                *len = n.unwrap_or(0) as u32;
            }
        }
    }

    /// Queues a datagram for `call`'s media port as it is; returns where it lies in the arena.
    fn push_raw(&mut self, call: CallHandle, dest: SocketAddr, packet: &[u8]) -> usize {
        self.flush_ua();
        if self.outputs.is_empty() {
            self.arena.clear();
        }
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(packet);
        self.outputs.push_back(EngineOutput::Rtp {
            call,
            dest,
            off,
            len: packet.len() as u32,
        });
        off as usize
    }

    fn open_media(&mut self, call: CallHandle) {
        self.flush_ua();
        self.outputs.push_back(EngineOutput::OpenMedia { call });
    }

    fn close_media(&mut self, call: CallHandle) {
        self.flush_ua();
        self.outputs.push_back(EngineOutput::CloseMedia { call });
    }

    /// Whether new calls are refused because the media side is behind (see
    /// [`EngineOutput`]'s owner); calls already up are not touched.
    pub fn set_media_overloaded(&mut self, overloaded: bool) {
        self.media_overloaded = overloaded;
    }

    /// Whether the store cannot commit: new INVITEs get 503 with Retry-After and no event
    /// (none could be stored), OPTIONS 503 (a load balancer moves away); calls up go on.
    pub fn set_store_failing(&mut self, failing: bool) {
        self.store_failing = failing;
        self.ua.set_unavailable(self.store_failing || self.draining);
    }

    /// Serve a new set of scenarios, prompts and routes (a reload). Calls up now keep the
    /// scenario and prompts they started with; the next call gets the new ones.
    pub fn set_catalog(&mut self, catalog: crate::catalog::Catalog) {
        self.scenarios = catalog.scenarios;
        self.prompts = catalog.prompts;
        self.cfg.inbound = catalog.inbound;
    }

    /// Whether the node drains (it is shutting down): new INVITEs get 503 with Retry-After
    /// and no event (the caller is expected to try another node), OPTIONS 503 so a load
    /// balancer moves away; calls already up go on.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
        self.ua.set_unavailable(self.store_failing || self.draining);
    }

    /// The drain's deadline has come: every call still up is ended now (BYE, and
    /// `call.failed` reason `shutdown` with what it had so far); outbound calls ringing are
    /// cancelled (their `call.failed` says `shutdown`), agent legs hung up with their
    /// callers, ports not yet open given up.
    pub fn end_all(&mut self, now: Instant, detail: &str) {
        let calls: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.completed)
            .map(|(h, _)| *h)
            .collect();
        for call in calls {
            if self.calls.get(&call).is_some_and(|c| c.gone) {
                // The caller already hung up; the transcript is given up on.
                self.end_gone(now, call);
                continue;
            }
            self.abort_call(now, call, FailReason::Shutdown, detail.to_owned());
        }
        let pending: Vec<CallHandle> = self.pending.keys().copied().collect();
        for call in pending {
            if let Some(p) = self.pending.get_mut(&call)
                && !p.cancelled_for_shutdown
            {
                p.cancelled_for_shutdown = true;
                self.ua.cancel(now, call);
            }
        }
        let waiting: Vec<CallHandle> = self.awaiting_media.keys().copied().collect();
        for call in waiting {
            self.handle_media_failed(now, call, "ivrflow shut down");
        }
        self.flush_ua();
    }

    /// Calls up (or being set up) whose INVITE came from `ip`.
    fn calls_from(&self, ip: IpAddr) -> usize {
        self.calls
            .values()
            .filter(|c| !c.completed && c.source == Some(ip))
            .count()
            + self
                .awaiting_media
                .values()
                .filter(|w| matches!(w, MediaWait::Inbound(s) if s.source == ip))
                .count()
    }

    /// INVITEs refused since the start because their source had too many calls up.
    pub fn per_source_refused(&self) -> u64 {
        self.per_source_refused
    }

    /// RTP packets dropped since the start because of their source.
    pub fn rtp_foreign(&self) -> u64 {
        self.rtp_foreign
    }

    /// Whether any call or agent leg may have media to pace.
    pub fn has_media(&self) -> bool {
        !self.calls.is_empty() || !self.agents.is_empty()
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.anchor.1 + now.saturating_duration_since(self.anchor.0)
    }

    /// Calls answered and up, plus outbound calls ringing or being set up.
    pub fn live_calls(&self) -> usize {
        self.calls.len()
            + self.pending.len()
            + self
                .awaiting_media
                .values()
                .filter(|w| !matches!(w, MediaWait::Agent(_)))
                .count()
    }

    /// The calls up now, for operators (the console's live view).
    pub fn live_call_info(&self, now: Instant) -> Vec<LiveCallInfo> {
        let mut v: Vec<LiveCallInfo> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.completed)
            .map(|(h, c)| LiveCallInfo {
                call: *h,
                call_ref: None,
                sip_call_id: c.sip_call_id.clone(),
                scenario: c.scenario.clone(),
                direction: c.direction,
                answered_at: c.started_wall,
                duration_ms: now
                    .saturating_duration_since(c.core.started_at())
                    .as_millis() as u64,
                node: c.core.dialogue().current_node().unwrap_or("-").to_owned(),
                bridged: c.bridge.is_some(),
            })
            .collect();
        v.sort_by_key(|c| c.call);
        v
    }

    /// Calls whose final record is not out yet: up, ringing or being set up (a call that
    /// ended and only waits for its BYE transaction is not counted).
    pub fn unfinished_calls(&self) -> usize {
        self.calls.values().filter(|c| !c.completed).count()
            + self.pending.len()
            + self
                .awaiting_media
                .values()
                .filter(|w| !matches!(w, MediaWait::Agent(_)))
                .count()
    }

    /// `ua` as mutable, for the runtime's trunk commands (REGISTER, OPTIONS keep-alive).
    /// `call`'s log span (none for an unknown call): the node enters it while it handles
    /// the call's events and effects, and records the `call_ref` it mints in it.
    pub fn call_span(&self, call: CallHandle) -> tracing::Span {
        match (self.calls.get(&call), self.pending.get(&call)) {
            (Some(c), _) => c.span.clone(),
            (None, Some(p)) => p.span.clone(),
            (None, None) => tracing::Span::none(),
        }
    }

    pub fn ua_mut(&mut self) -> &mut UserAgent {
        &mut self.ua
    }

    /// The media port asked for by [`EngineOutput::OpenMedia`] is open on `port`: answer
    /// the inbound call, send the outbound INVITE, or call the agent.
    pub fn handle_media_opened(&mut self, now: Instant, call: CallHandle, port: u16) {
        match self.awaiting_media.remove(&call) {
            Some(MediaWait::Inbound(setup)) => self.answer_inbound(now, call, *setup, port),
            Some(MediaWait::Outbound(b)) => {
                let (out, scenario) = *b;
                self.send_outbound(now, call, out, scenario, port);
            }
            Some(MediaWait::Agent(setup)) => self.call_agent(now, call, *setup, port),
            // The call ended meanwhile (a CANCEL): the port is not wanted.
            None => self.close_media(call),
        }
        self.flush_ua();
    }

    /// No media port could be opened for `call`: refuse it (inbound: 503), fail it
    /// (outbound), or fail the transfer.
    pub fn handle_media_failed(&mut self, now: Instant, call: CallHandle, error: &str) {
        let at = self.wall(now);
        match self.awaiting_media.remove(&call) {
            Some(MediaWait::Inbound(setup)) => {
                tracing::error!(call_id = %setup.origin.sip_call_id, %error, "cannot open an RTP port");
                self.ua.reject(
                    now,
                    call,
                    503,
                    "Service Unavailable",
                    &[("Retry-After", "5".to_owned())],
                );
                self.emit(EngineEvent::CallFailed {
                    call,
                    origin: setup.origin,
                    reason: FailReason::Error,
                    sip_code: Some(503),
                    detail: format!("cannot open an RTP port: {error}"),
                    at,
                });
            }
            Some(MediaWait::Outbound(b)) => {
                let (out, _) = *b;
                tracing::warn!(call_ref = %out.call_ref, %error, "cannot open an RTP port for an outbound call");
                let mut variables = out.variables;
                variables.extend(party_variables(
                    CallDirection::Outbound,
                    &out.from,
                    &out.to,
                    true,
                ));
                self.emit(EngineEvent::CallFailed {
                    call,
                    origin: Box::new(CallOrigin {
                        sip_call_id: String::new(),
                        call_ref: Some(out.call_ref),
                        scenario: out.scenario,
                        direction: "outbound",
                        from: out.from,
                        to: out.to,
                        variables,
                    }),
                    reason: FailReason::Error,
                    sip_code: None,
                    detail: format!("cannot open an RTP port: {error}"),
                    at,
                });
            }
            Some(MediaWait::Agent(setup)) => {
                let (caller, id) = (setup.caller, setup.transfer_id);
                if let Some(c) = self.calls.get_mut(&caller) {
                    c.bridge = None;
                }
                self.transfer_result(
                    now,
                    caller,
                    id,
                    crate::dialogue::TransferOutcome::Failed(format!(
                        "no RTP port for the agent leg: {error}"
                    )),
                );
                self.attend(now);
            }
            None => {}
        }
        self.flush_ua();
    }

    pub fn ua(&self) -> &UserAgent {
        &self.ua
    }

    /// Tests: the first SIP datagram in the output queue, taken out of it.
    #[cfg(test)]
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.flush_ua();
        let i = self
            .outputs
            .iter()
            .position(|o| matches!(o, EngineOutput::Sip(_)))?;
        match self.outputs.remove(i) {
            Some(EngineOutput::Sip(t)) => Some(t),
            _ => None,
        }
    }

    /// Tests: the first event in the output queue, taken out of it.
    #[cfg(test)]
    pub(crate) fn poll_event(&mut self) -> Option<EngineEvent> {
        self.flush_ua();
        let i = self
            .outputs
            .iter()
            .position(|o| matches!(o, EngineOutput::Event(_)))?;
        match self.outputs.remove(i) {
            Some(EngineOutput::Event(e)) => Some(e),
            _ => None,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = self.call_timers.peek().map(|Reverse((t, _))| *t);
        match (self.ua.poll_timeout(), c) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One SIP datagram from the network.
    pub fn handle_sip(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.ua.handle_datagram(now, source, datagram);
        self.process_ua_events(now);
    }

    /// One SIP message from `source` over `transport` (a TCP or TLS connection's).
    pub fn handle_sip_over(
        &mut self,
        now: Instant,
        source: SocketAddr,
        transport: crate::sip::transport::Transport,
        message: &[u8],
    ) {
        self.ua.handle_message(now, source, transport, message);
        self.process_ua_events(now);
    }

    /// One RTP datagram that arrived on `call`'s media port from `source`. Packets from a
    /// source the call does not accept (see `media::latch`) are dropped and counted.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        call: CallHandle,
        source: SocketAddr,
        packet: &[u8],
    ) {
        match self.media_in(now, call, packet) {
            link::In::Plain => self.handle_plain_rtp(now, call, source, packet),
            link::In::Decrypted(n) => {
                let buf = self.take_scratch();
                self.handle_plain_rtp(now, call, source, &buf[..n]);
                self.put_scratch(buf);
            }
            link::In::Consumed => {}
        }
    }

    /// [`Engine::handle_rtp`] once SRTP and RTCP are out of the way.
    fn handle_plain_rtp(
        &mut self,
        now: Instant,
        call: CallHandle,
        source: SocketAddr,
        packet: &[u8],
    ) {
        let Some(view) = crate::media::rtp::parse_rtp(packet) else {
            return;
        };
        let accepted = if let Some(c) = self.calls.get_mut(&call) {
            c.latch.accept(now, source, &view)
        } else if let Some(a) = self.agents.get_mut(&call) {
            a.latch
                .as_mut()
                .is_none_or(|l| l.accept(now, source, &view))
        } else {
            true
        };
        if !accepted {
            self.rtp_foreign += 1;
            if self.rtp_foreign.is_power_of_two() {
                tracing::warn!(%call, %source, dropped = self.rtp_foreign, "RTP from a source the call does not accept; dropped");
            }
            return;
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.link.handle_rtp(now, &view);
        }
        if self.relay_rtp(now, call, packet) {
            return;
        }
        if let Some(c) = self.calls.get_mut(&call) {
            // The call's span without cloning it: this runs for every packet.
            let LiveCall { core, span, .. } = c;
            let _span = span.enter();
            core.handle_rtp(now, packet);
        }
        self.after_call_activity(now, call);
    }

    /// Everything due at `now`. Each call is handled at most [`MAX_PASSES`] times per
    /// call of this function (its own timer, then once more if what that set off is due
    /// at once); a call whose deadline still comes back is deferred by a tick and counted
    /// (`crate::timers`), so one call can never make the node spin.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.ua.handle_timeout(now);
        crate::timers::checked("sip", now, self.ua.poll_timeout());
        // SIP first: a call the UA has given up on (no ACK) stops before its own timers
        // could start another prompt at this instant.
        self.process_ua_events(now);
        self.end_silent_calls(now);
        self.attend(now);
        let mut passes: Vec<(CallHandle, u8)> = Vec::new();
        while let Some(Reverse((at, call))) = self.call_timers.peek().copied() {
            if at > now {
                break;
            }
            self.call_timers.pop();
            if self.agent_timer(now, at, call) {
                continue;
            }
            if let Some(p) = self.pending.get_mut(&call) {
                if at >= p.ring_deadline && !p.cancelled_on_timeout {
                    p.cancelled_on_timeout = true;
                    tracing::info!(call_id = %p.origin.sip_call_id, "no answer before the ring timeout; cancelling");
                    self.ua.cancel(now, call);
                }
                continue;
            }
            let Some(c) = self.calls.get_mut(&call) else {
                continue;
            };
            if c.scheduled == Some(at) {
                c.scheduled = None;
            }
            if c.deadline().is_none_or(|t| t > now) {
                // A stale entry (the call's deadline moved since it was pushed).
                if c.scheduled.is_none() {
                    self.after_call_activity(now, call);
                }
                continue;
            }
            if c.gone && now >= c.hard_deadline {
                self.end_gone(now, call);
                continue;
            }
            if now >= c.hard_deadline {
                let limit = self.cfg.max_call_duration;
                tracing::warn!(call_id = %c.sip_call_id, ?limit, "maximum call duration reached; hanging up");
                self.abort_call(
                    now,
                    call,
                    FailReason::MaxDuration,
                    format!(
                        "ended at the maximum call duration ({})",
                        humantime::format_duration(limit)
                    ),
                );
                continue;
            }
            let pass = match passes.iter_mut().find(|(c, _)| *c == call) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    passes.push((call, 1));
                    1
                }
            };
            if pass > MAX_PASSES {
                // Not handled again in this pass: woken a tick later instead.
                let next = crate::timers::checked("engine call", now, Some(at));
                c.scheduled = next;
                if let Some(t) = next {
                    self.call_timers.push(Reverse((t, call)));
                }
                continue;
            }
            let _span = c.span.clone().entered();
            c.core.handle_timeout(now);
            self.after_call_activity(now, call);
        }
        self.process_ua_events(now);
    }

    /// The pacing tick: every call with audio due writes one packet, in place, into the
    /// output arena ([`EngineOutput::Rtp`]). Calls that want to end are handled by the next
    /// [`Engine::handle_timeout`], which the owner calls right after the tick. An inbound
    /// call whose 200 OK has not left yet ([`Engine::release_answer`]) sends nothing.
    pub fn tick(&mut self, now: Instant) {
        self.flush_ua();
        if self.outputs.is_empty() {
            self.arena.clear();
        }
        let wall = self.wall(now);
        let rtcp_next = self.rtcp_interval();
        let fill = self.interop.opts.idle_fill;
        let (calls, arena, outputs, attention, timed_out) = (
            &mut self.calls,
            &mut self.arena,
            &mut self.outputs,
            &mut self.attention,
            &mut self.interop.timed_out,
        );
        for (&call, c) in calls.iter_mut() {
            if c.completed || c.answer_in_flight || c.gone {
                continue;
            }
            c.core.set_idle_fill(fill && c.bridge.is_none());
            let off = arena.len();
            arena.resize(off + MAX_RTP, 0);
            match c
                .core
                .poll_packet(now, &mut arena[off..])
                .and_then(|n| c.link.protect_rtp(&mut arena[off..], n))
            {
                Some(n) => {
                    arena.truncate(off + n);
                    outputs.push_back(EngineOutput::Rtp {
                        call,
                        dest: c.remote_rtp,
                        off: off as u32,
                        len: n as u32,
                    });
                }
                None => arena.truncate(off),
            }
            Self::push_rtcp_due(call, c, now, wall, rtcp_next, arena, outputs);
            if c.link.timed_out(now) {
                timed_out.push(call);
            }
            // Playback events may have moved the dialogue: look at the call again.
            if c.core.take_changed() {
                attention.push(call);
            }
        }
        self.tick_agents(now);
    }

    /// Feed the result of an [`EngineEvent::Effect`] (or any input) to a live call.
    pub fn handle_call_input(&mut self, now: Instant, call: CallHandle, input: Input) {
        let _span = self.call_span(call).entered();
        if let Some(c) = self.calls.get_mut(&call)
            && !c.completed
        {
            c.core.handle_input(now, input);
        }
        self.after_call_activity(now, call);
    }

    /// The result of an [`Effect::Recognize`](crate::call::Effect::Recognize) of `call`
    /// (from the runtime's recognition workers).
    pub fn handle_recognition(
        &mut self,
        now: Instant,
        call: CallHandle,
        id: u64,
        result: Result<crate::asr::Transcript, String>,
    ) {
        let _span = self.call_span(call).entered();
        if let Some(c) = self.calls.get_mut(&call)
            && !c.completed
        {
            c.core.handle_recognition(now, id, result);
        }
        self.after_call_activity(now, call);
    }

    /// Look again at the calls something marked for attention (timers, hang-up).
    fn attend(&mut self, now: Instant) {
        let mut attention = std::mem::take(&mut self.attention);
        for call in &attention {
            let _span = self.call_span(*call).entered();
            self.after_call_activity(now, *call);
        }
        attention.clear();
        // Keep the allocation unless a call added to the list meanwhile.
        if self.attention.is_empty() {
            self.attention = attention;
        }
    }

    /// Our side of a new media session on local `port`.
    fn local_media(&mut self, port: u16) -> LocalMedia {
        LocalMedia {
            addr: SocketAddr::new(self.cfg.media_ip, port),
            origin: Origin {
                session_id: self.rng.next_u64() >> 1,
                version: 1,
            },
        }
    }

    /// A leg's RTP parameters from its negotiation, with fresh SSRC, sequence and timestamp.
    fn media_params(&mut self, neg: &sdp::Negotiated) -> MediaParams {
        MediaParams {
            codec: neg.codec,
            payload_type: neg.codec_pt,
            telephone_event_pt: neg.telephone_event_pt,
            ssrc: self.rng.next_u32(),
            initial_seq: self.rng.next_u32() as u16,
            initial_ts: self.rng.next_u32(),
        }
    }

    /// After anything touched a call: pass its effects on, reschedule its timer, hang up if
    /// it asked to.
    fn after_call_activity(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.completed {
            return;
        }
        let mut transfers = Vec::new();
        let mut effects = Vec::new();
        while let Some(effect) = c.core.poll_effect() {
            if let Effect::Dialogue(action @ crate::dialogue::Action::Transfer { .. }) = effect {
                transfers.push(action);
                continue;
            }
            effects.push(EngineEvent::Effect {
                call,
                sip_call_id: c.sip_call_id.clone(),
                effect,
            });
        }
        for ev in effects {
            self.emit(ev);
        }
        for action in transfers {
            self.start_transfer(now, call, action);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.gone && c.core.is_finished() {
            self.end_gone(now, call);
            return;
        }
        if c.core.wants_hangup() && !c.gone {
            if c.bridge.is_some() {
                // Bridged to an agent: the dialogue is over, the call is not.
                return;
            }
            self.ua.hangup(now, call);
            self.complete(now, call, HangupBy::Robot);
            return;
        }
        // A prompt that starts between ticks (after a key, a recognised answer, a CRM
        // reply, a timer) sends its first packet now rather than at the next tick: up to
        // 20 ms sooner. The stream's later packets stay on the tick's slots. The greeting
        // of an inbound call waits for its 200 OK to leave (`release_answer`).
        if !c.answer_in_flight && c.core.starts_talkspurt(now) {
            self.start_prompt(now, call);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let next = c.deadline();
        if let Some(c) = self.calls.get_mut(&call)
            && next != c.scheduled
        {
            c.scheduled = next;
            if let Some(t) = next {
                self.call_timers.push(Reverse((t, call)));
            }
        }
    }

    /// Sends the first packet of `call`'s prompt now, if one is ready to start.
    fn start_prompt(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.completed || c.answer_in_flight || c.bridge.is_some() || !c.core.starts_talkspurt(now)
        {
            return;
        }
        let mut buf = std::mem::take(&mut self.packet_buf);
        let sent = c.core.poll_packet(now, &mut buf).map(|n| (c.remote_rtp, n));
        if c.core.take_changed() {
            self.attention.push(call);
        }
        if let Some((dest, n)) = sent {
            self.push_rtp(call, dest, &buf[..n]);
        }
        self.packet_buf = buf;
    }

    /// The 200 OK that answered inbound `call` has left (its events are stored): media
    /// may flow, and the greeting starts now rather than at the next tick.
    pub fn release_answer(&mut self, now: Instant, call: CallHandle) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.answer_in_flight = false;
        }
        self.start_prompt(now, call);
        self.flush_ua();
    }

    fn process_ua_events(&mut self, now: Instant) {
        while let Some(ev) = self.ua.poll_event() {
            match ev {
                UaEvent::IncomingCall {
                    call,
                    request,
                    source,
                } => self.incoming_call(now, call, &request, source),
                UaEvent::Progress { call, status, sdp } => {
                    if let Some(p) = self.pending.get_mut(&call) {
                        tracing::debug!(call_id = %p.origin.sip_call_id, status, early_media = sdp.is_some(), "outbound call progress");
                        if sdp.is_some() {
                            p.early_sdp = sdp;
                        }
                    }
                }
                UaEvent::Answered { call, sdp } if self.agents.contains_key(&call) => {
                    self.agent_answered(now, call, &sdp);
                    self.attend(now);
                }
                UaEvent::Answered { call, sdp } => {
                    let _span = self.call_span(call).entered();
                    self.outbound_answered(now, call, sdp)
                }
                ev @ (UaEvent::ReferSucceeded { .. } | UaEvent::ReferFailed { .. }) => {
                    self.refer_event(now, ev);
                    self.attend(now);
                }
                ev @ (UaEvent::Registered { .. }
                | UaEvent::RegistrationFailed { .. }
                | UaEvent::Unregistered { .. }
                | UaEvent::PingResult { .. }) => self.emit(EngineEvent::Trunk(ev)),
                UaEvent::ReferAccepted { .. }
                | UaEvent::ReferProgress { .. }
                | UaEvent::SessionUpdated { .. }
                | UaEvent::InfoFailed { .. } => {}
                UaEvent::AckTimedOut { call } => {
                    let _span = self.call_span(call).entered();
                    if let Some(agent) = self.calls.get_mut(&call).and_then(|c| c.bridge.take()) {
                        self.caller_gone(now, agent);
                    }
                    // The UA's BYE is on its way: media and dialogue stop now, not when
                    // that BYE's transaction ends 32 s later.
                    self.finish(
                        now,
                        call,
                        HangupBy::Robot,
                        Some((
                            FailReason::NoAck,
                            "no ACK for our 200 OK within 32 s".to_owned(),
                        )),
                    );
                }
                UaEvent::Confirmed { call } => {
                    tracing::debug!(
                        call_id = self.ua.call_id(call).unwrap_or("-"),
                        "call confirmed by ACK"
                    );
                }
                UaEvent::Info { call, request } => {
                    if let Some(d) = dtmf_from_info(&request)
                        && let Some(c) = self.calls.get_mut(&call)
                    {
                        c.core
                            .handle_dtmf_from(now, d, crate::media::dtmf_dedup::DtmfSource::Info);
                    }
                    self.after_call_activity(now, call);
                }
                UaEvent::Ended { call, reason } if self.agents.contains_key(&call) => {
                    self.agent_ended(now, call, reason);
                    self.attend(now);
                }
                UaEvent::Ended { call, reason } => {
                    let _span = self.call_span(call).entered();
                    self.refers.remove(&call);
                    if let Some(agent) = self.calls.get(&call).and_then(|c| c.bridge) {
                        self.caller_gone(now, agent);
                    }
                    if let Some(p) = self.pending.remove(&call) {
                        self.outbound_failed(now, call, p, reason);
                        self.close_media(call);
                    }
                    if self.calls.contains_key(&call) {
                        let by = match reason {
                            EndReason::LocalBye | EndReason::AckTimeout => HangupBy::Robot,
                            _ => HangupBy::Caller,
                        };
                        if by == HangupBy::Caller && self.keep_for_recording(now, call) {
                            continue;
                        }
                        self.complete(now, call, by);
                        if let Some(c) = self.calls.remove(&call) {
                            tracing::info!(call_id = %c.sip_call_id, ?reason, "call leg ended");
                        }
                        self.close_media(call);
                    }
                }
            }
        }
    }

    /// ivrflow ends an answered call itself (its maximum duration): the agent leg of a
    /// bridge too, BYE, media stops now, and the CRM gets `call.failed` with `reason`.
    fn abort_call(&mut self, now: Instant, call: CallHandle, reason: FailReason, detail: String) {
        if let Some(agent) = self.calls.get_mut(&call).and_then(|c| c.bridge.take()) {
            self.caller_gone(now, agent);
        }
        self.ua.hangup(now, call);
        self.finish(now, call, HangupBy::Robot, Some((reason, detail)));
    }

    /// The caller hung up during a recording (issue 20): rather than ending the call now,
    /// keep it — without media — until its core has filed the recording's answer with its
    /// transcript; then it completes as hung up by the caller. False when no recording was
    /// under way.
    fn keep_for_recording(&mut self, now: Instant, call: CallHandle) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if c.completed || c.bridge.is_some() || !c.core.hang_up_keeping_recording(now) {
            return false;
        }
        c.gone = true;
        tracing::info!(call_id = %c.sip_call_id, "caller hung up during a recording; keeping it for its transcript");
        self.close_media(call);
        self.after_call_activity(now, call);
        true
    }

    /// A call kept for its recording is over (its transcript is in, or it was given up at
    /// its hard deadline or the drain's): its record, then it goes.
    fn end_gone(&mut self, now: Instant, call: CallHandle) {
        self.complete(now, call, HangupBy::Caller);
        if let Some(c) = self.calls.remove(&call) {
            tracing::info!(call_id = %c.sip_call_id, "call leg ended after its recording");
        }
    }

    /// Emit the call's record once; the leg may linger until the BYE transaction ends.
    fn complete(&mut self, now: Instant, call: CallHandle, by: HangupBy) {
        self.finish(now, call, by, None);
    }

    /// [`Engine::complete`], or a failure of an answered call.
    fn finish(
        &mut self,
        now: Instant,
        call: CallHandle,
        by: HangupBy,
        failure: Option<(FailReason, String)>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.completed {
            return;
        }
        c.completed = true;
        if by == HangupBy::Caller {
            c.core.handle_hangup(now);
        }
        let mut record = c.core.completed_record(
            CallInfo {
                call_id: &c.sip_call_id,
                scenario: &c.scenario,
                direction: c.direction,
                started_wall: c.started_wall,
            },
            now,
            by,
        );
        record.failure = failure;
        tracing::info!(call_id = %record.call_id, outcome = record.outcome.as_deref().unwrap_or("-"), hangup_by = ?by, "call completed");
        self.emit(EngineEvent::CallCompleted {
            call,
            record: Box::new(record),
        });
        // The robot's BYE is in flight: media stops now.
        if by == HangupBy::Robot {
            self.send_rtcp_bye(now, call);
            self.close_media(call);
        }
    }
}

/// The log span of one call: its SIP Call-ID and, when known, its `call_ref`.
fn call_span(sip_call_id: &str, call_ref: Option<&str>) -> tracing::Span {
    let span =
        tracing::info_span!("call", call_id = %sip_call_id, call_ref = tracing::field::Empty);
    if let Some(r) = call_ref {
        span.record("call_ref", r);
    }
    span
}

/// A key from SIP INFO: `application/dtmf-relay` (`Signal=5`) or `application/dtmf` (`5`).
pub fn dtmf_from_info(req: &Request) -> Option<char> {
    let ctype = req.headers.get("Content-Type")?.to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let signal = if ctype.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if ctype.starts_with("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    let mut chars = signal.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
}
