//! The node: one ivrflow process's whole behaviour as one sans-IO state machine.
//!
//! It owns the [`Engine`] (the SIP user agent and every live call), the outbound side (the
//! dialer, the trunks' registration and keep-alives), the call records (`records`: one
//! `call_ref` minted here per call, every CRM event and its message id), where each call's
//! effects go, and the commit gate (`commit`): no SIP that follows an event leaves before
//! the event is stored, and while the store cannot commit the node says no to new work.
//!
//! ```text
//!             ┌──────────────────────────── Node ───────────────────────────────┐
//!  handle_input(now, Input)                                                      │
//!   Sip{source,datagram}  ──►  Engine (UA + calls) ──► Event ──► Outbound/records │
//!   Rtp{call,source,packet}     │     │                             │            │
//!   MediaOpened/Failed          │     └─► Sip ─► commit gate ◄── records          │
//!   Stored/StoreFailed ─────────┼──────────────►  (hold / release / retry)        │
//!   CallInput (HTTP result)     │                                                 │
//!   Recognition, Command        ▼                                                 │
//!  handle_timeout(now) ─► timers, 20 ms pacing tick, dialer, commit retries       │
//!                                                                                 │
//!  poll_output() ◄── Sip · Rtp · OpenMedia · CloseMedia · Commit · AddDnc · Http ·│
//!                    Recognize · CancelRecognition · Status · Timeout(next wake)  │
//!             └──────────────────────────────────────────────────────────────────┘
//! ```
//! The contract is str0m's and quinn-proto's: inputs carry `now`; outputs come out of one
//! queue in order; [`Output::Timeout`] ends a drain and says when to wake the node. Nothing
//! here reads a clock, touches a socket, spawns a thread or sleeps: `crate::rt` executes
//! the outputs with real sockets, the store thread and HTTP, and `crate::sim::world` with a
//! simulated network, store and CRM on a virtual clock.
//!
//! Not here: sockets, SQL, HTTP, Whisper, the control API's own queries (the API talks to
//! the store directly and tells the node what changed with [`Command`]s).

pub mod commit;
pub mod guard;
pub mod ids;
pub mod outbound;
pub mod records;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::call::Effect;
use crate::dialer::Campaign;
use crate::dialogue::{Action, WebhookRequest};
use crate::engine::{Engine, EngineConfig, EngineEvent, EngineOutput};
use crate::media::prompts::PromptCache;
use crate::scenario::Scenario;
use crate::sip::ua::{CallHandle, Transmit};
use crate::store::{CallRecord, Record};

use commit::{Gate, GateOutput};
use ids::Ids;
use outbound::Outbound;
pub use outbound::{DEFAULT_CAMPAIGN, TrunkSetup, TrunkStatus};
use records::Recorder;

/// The RTP packet time: one pacing grid for every call.
pub const PTIME: Duration = Duration::from_millis(20);
/// Ticks over the pacing budget within one second (of 50) that mean "overloaded".
const OVERLOAD_TICKS: u32 = 10;

/// Everything the node needs to start.
#[derive(Clone)]
pub struct NodeConfig {
    /// The engine's settings (its `transfer_route` is filled in from the first trunk).
    pub engine: EngineConfig,
    pub scenarios: std::collections::BTreeMap<String, Arc<Scenario>>,
    pub prompts: Arc<PromptCache>,
    pub trunks: Vec<TrunkSetup>,
    pub campaigns: Vec<Campaign>,
    /// Campaign name → the trunk it dials through.
    pub campaign_trunks: HashMap<String, String>,
    /// A pacing tick whose lateness plus run time reaches this is over budget; a fifth of
    /// a second's ticks over budget refuses new calls until it recovers.
    pub overload_tick: Duration,
    /// Seeds call refs and message ids (tests pass a constant).
    pub seed: u64,
    /// The SIP edge: who may send requests, how fast (see `guard`). Each trunk's proxy and
    /// registrar are added to its trusted sources.
    pub guard: guard::GuardConfig,
    /// Maps the monotonic `now` to wall-clock time (CRM timestamps, calling windows).
    pub anchor: (Instant, SystemTime),
    /// Where the CRM fetches recordings: the API's public base URL (`api.public_url`);
    /// `None` when no API serves them (the answers still name their files).
    pub recordings_url: Option<String>,
}

/// What the runtime (or the simulated world) brings the node.
#[derive(Debug)]
pub enum Input<'a> {
    /// A SIP datagram from `source`.
    Sip {
        source: SocketAddr,
        datagram: &'a [u8],
    },
    /// A SIP message from `source` over a TCP or TLS connection (framed by
    /// `sip::transport`); answers go back over the same connection.
    SipStream {
        source: SocketAddr,
        transport: crate::sip::transport::Transport,
        message: &'a [u8],
    },
    /// An RTP datagram that arrived on `call`'s media port from `source`.
    Rtp {
        call: CallHandle,
        source: SocketAddr,
        packet: &'a [u8],
    },
    /// [`Output::OpenMedia`] done: `call`'s media port is `port`.
    MediaOpened { call: CallHandle, port: u16 },
    /// [`Output::OpenMedia`] failed.
    MediaFailed { call: CallHandle, error: String },
    /// [`Output::Commit`] `ticket` is on disk.
    Stored { ticket: u64 },
    /// [`Output::Commit`] `ticket` could not be committed.
    StoreFailed { ticket: u64, error: String },
    /// The answer to an [`Output::Http`] (or any other input for a live call's dialogue).
    CallInput {
        call: CallHandle,
        input: crate::dialogue::Input,
    },
    /// The answer to an [`Output::Recognize`].
    Recognition {
        call: CallHandle,
        id: u64,
        result: Result<crate::asr::Transcript, String>,
    },
    /// A change made through the control API (already committed by it), or the store's
    /// state at start.
    Command(Command),
    /// How late the last pacing tick started and how long it and its outputs took (the
    /// runtime measures; the node decides whether to refuse new calls).
    TickCost { late: Duration, spent: Duration },
}

/// What the control API (or the start-up) tells the node.
#[derive(Debug, Clone)]
pub enum Command {
    /// An outbound call was queued.
    Queued(Box<CallRecord>),
    /// A queued call was cancelled.
    Cancelled(String),
    /// A number was put on (`listed`) or taken off the do-not-call list.
    Dnc { number: String, listed: bool },
    /// Calls this node had up when it last stopped: each gets its final `call.failed`
    /// (`interrupted`).
    Recovered(Vec<CallRecord>),
    /// Stop taking new work (SIGTERM, `POST /v1/admin/drain`): refuse new calls (503),
    /// say so to OPTIONS, dial nothing; let the calls up finish for `deadline`, then end
    /// the rest (`call.failed`, `shutdown`). A second drain with a shorter deadline
    /// brings the end forward. [`Node::drained`] says when the process may exit.
    Drain { deadline: Duration },
    /// A trunk's name was looked up again in DNS (its TTL ran out): INVITEs for the trunk
    /// known by `primary` now fail over along `targets` (RFC 3263).
    TrunkTargets {
        primary: SocketAddr,
        targets: Vec<crate::sip::dns::Target>,
    },
    /// Serve a reloaded set of scenarios, prompts and routes from now on (calls up keep
    /// theirs).
    Reload(Box<crate::catalog::Catalog>),
}

/// What the node wants done, in order. An [`Output::Rtp`] payload borrows the node: use it
/// before the next call.
#[derive(Debug)]
pub enum Output<'a> {
    Sip(Transmit),
    Rtp {
        call: CallHandle,
        dest: SocketAddr,
        payload: &'a [u8],
    },
    /// Bind a media port for `call`; answer with [`Input::MediaOpened`] / [`Input::MediaFailed`].
    OpenMedia {
        call: CallHandle,
    },
    CloseMedia {
        call: CallHandle,
    },
    /// Write these recordings (durably, `crate::recordings::write`), then store these
    /// records in one transaction; answer with [`Input::Stored`] / [`Input::StoreFailed`]
    /// (a file that cannot be written fails the commit).
    Commit {
        ticket: u64,
        records: Vec<Record>,
        files: Vec<crate::recordings::Attachment>,
    },
    /// Put a number on the do-not-call list in the store (a caller asked; the node's
    /// dialer already skips it).
    AddDnc {
        number: String,
    },
    /// A scenario's mid-call request; answer with [`Input::CallInput`] carrying
    /// `dialogue::Input::WebhookResult`.
    Http {
        call: CallHandle,
        id: u64,
        call_ref: Option<String>,
        request: WebhookRequest,
    },
    /// Recognise speech; answer with [`Input::Recognition`]. Never on the pacing thread.
    Recognize {
        call: CallHandle,
        id: u64,
        audio: Vec<i16>,
        lang: String,
        phrases: Vec<String>,
    },
    CancelRecognition {
        call: CallHandle,
        id: u64,
    },
    /// The node's state changed (health, trunks): for `/healthz`, `/v1/trunks`, metrics.
    Status(Box<NodeStatus>),
    /// Nothing more now; wake the node with [`Node::handle_timeout`] at this instant.
    Timeout(Instant),
}

/// The node's state as operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    /// `None` when the store takes commits; else why not.
    pub store_error: Option<String>,
    pub trunks: Vec<TrunkStatus>,
    /// New calls are refused because the pacing falls behind.
    pub overloaded: bool,
    /// The node is shutting down: new calls go elsewhere.
    pub draining: bool,
    /// The calls up (refreshed every [`LIVE_VIEW_EVERY`]).
    pub calls: Vec<crate::engine::LiveCallInfo>,
}

/// How often the live-calls view in [`NodeStatus`] is refreshed.
pub const LIVE_VIEW_EVERY: Duration = Duration::from_secs(2);

/// Owned outputs waiting in the node's own queue.
#[derive(Debug)]
enum Queued {
    OpenMedia(CallHandle),
    CloseMedia(CallHandle),
    AddDnc(String),
    Http(CallHandle, u64, Option<String>, WebhookRequest),
    Recognize(CallHandle, u64, Vec<i16>, String, Vec<String>),
    CancelRecognition(CallHandle, u64),
    Status(Box<NodeStatus>),
}

/// Back-pressure from the pacing tick.
#[derive(Default)]
struct Overload {
    /// Ticks over budget in the current and the previous second.
    over: (u32, u32),
    ticks: u64,
    active: bool,
}

pub struct Node {
    engine: Engine,
    guard: guard::Guard,
    outbound: Outbound,
    recorder: Recorder,
    ids: Ids,
    gate: Gate,
    out: VecDeque<Queued>,
    anchor: (Instant, SystemTime),
    /// The next 20 ms pacing slot, while any call may need one.
    next_tick: Option<Instant>,
    overload: Overload,
    overload_tick: Duration,
    /// SIP Call-IDs of calls with records, by call (to hold their SIP).
    sip_ids: HashMap<CallHandle, String>,
    status: NodeStatus,
    started: bool,
    /// The last [`Node::handle_timeout`] ran a pacing tick (its cost is reported next).
    ticked: bool,
    /// The `now` of the last input or timeout (the node has no clock of its own).
    now: Instant,
    /// Draining: when the calls still up are ended.
    drain: Option<Instant>,
    /// The drain's deadline has passed and every call was ended.
    ended_all: bool,
    /// When the live-calls view is next refreshed.
    next_view: Instant,
}

impl Node {
    pub fn new(cfg: NodeConfig) -> Node {
        let outbound = Outbound::new(&cfg.trunks, &cfg.campaigns, cfg.campaign_trunks.clone());
        let mut engine_cfg = cfg.engine.clone();
        if engine_cfg.transfer_route.is_none() {
            engine_cfg.transfer_route = outbound.transfer_route();
        }
        let mut guard_cfg = cfg.guard.clone();
        for t in &cfg.trunks {
            for ip in std::iter::once(t.proxy.ip()).chain(t.registrar.map(|r| r.ip())) {
                let net = crate::sip::acl::Net::parse(&ip.to_string()).expect("an address");
                guard_cfg.trusted.push(net);
                engine_cfg.trusted.push(net);
            }
        }
        let mut engine = Engine::new(engine_cfg, cfg.scenarios, cfg.prompts, cfg.anchor);
        for t in &cfg.trunks {
            // How each trunk is reached (RFC 3261 §18): its transport, and for UDP trunks
            // TCP for requests too big for a datagram; the SRTP its calls offer.
            let transport = t.cfg.transport().unwrap_or_default();
            let tcp_ok = transport == crate::sip::transport::Transport::Udp;
            for addr in std::iter::once(t.proxy).chain(t.registrar) {
                engine.ua_mut().set_route(addr, transport, tcp_ok);
            }
            engine.set_trunk_srtp(t.proxy, t.cfg.srtp().unwrap_or_default());
        }
        Node {
            engine,
            outbound,
            recorder: Recorder::new(cfg.recordings_url.clone()),
            ids: Ids::new(cfg.seed),
            guard: guard::Guard::new(guard_cfg),
            gate: Gate::new(),
            out: VecDeque::new(),
            anchor: cfg.anchor,
            next_tick: None,
            overload: Overload::default(),
            overload_tick: cfg.overload_tick,
            sip_ids: HashMap::new(),
            status: NodeStatus {
                store_error: None,
                trunks: Vec::new(),
                overloaded: false,
                draining: false,
                calls: Vec::new(),
            },
            started: false,
            ticked: false,
            now: cfg.anchor.0,
            drain: None,
            ended_all: false,
            next_view: cfg.anchor.0,
        }
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.anchor.1 + now.saturating_duration_since(self.anchor.0)
    }

    /// Calls answered and up, plus outbound calls ringing or being set up.
    pub fn live_calls(&self) -> usize {
        self.engine.live_calls()
    }

    /// The engine, read-only (SIP counters, call counts).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, for settings the runtime applies at start (media options).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Outbound calls waiting for the dialer.
    pub fn queued_calls(&self) -> usize {
        self.outbound.queued()
    }

    /// The SIP edge's counters (bans, denials) and sources banned now.
    pub fn guard_stats(&self) -> (guard::GuardStats, usize) {
        (self.guard.stats, self.guard.banned(self.now))
    }

    /// Whether the store is failing (new calls refused, SIP held).
    pub fn store_failing(&self) -> bool {
        self.gate.failing().is_some()
    }

    // ───────────────────────────── input ─────────────────────────────

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        self.start(now);
        match input {
            Input::Sip { source, datagram } => match self.guard.check(now, source.ip(), datagram) {
                guard::Verdict::Pass => self.engine.handle_sip(now, source, datagram),
                guard::Verdict::Drop => {}
                guard::Verdict::Forbid => {
                    self.engine
                        .ua_mut()
                        .respond_stateless(source, datagram, 403, "Forbidden")
                }
            },
            Input::SipStream {
                source,
                transport,
                message,
            } => match self.guard.check(now, source.ip(), message) {
                guard::Verdict::Pass => {
                    self.engine.handle_sip_over(now, source, transport, message)
                }
                guard::Verdict::Drop => {}
                guard::Verdict::Forbid => self.engine.ua_mut().respond_stateless_over(
                    source,
                    transport,
                    message,
                    403,
                    "Forbidden",
                ),
            },
            Input::Rtp {
                call,
                source,
                packet,
            } => self.engine.handle_rtp(now, call, source, packet),
            Input::MediaOpened { call, port } => self.engine.handle_media_opened(now, call, port),
            Input::MediaFailed { call, error } => {
                self.engine.handle_media_failed(now, call, &error)
            }
            Input::Stored { ticket } => {
                self.gate.handle_stored(now, ticket);
                self.refresh_status();
            }
            Input::StoreFailed { ticket, error } => {
                self.gate.handle_failed(now, ticket, &error);
                self.refresh_status();
            }
            Input::CallInput { call, input } => self.engine.handle_call_input(now, call, input),
            Input::Recognition { call, id, result } => {
                self.engine.handle_recognition(now, call, id, result)
            }
            Input::Command(cmd) => self.command(now, cmd),
            Input::TickCost { late, spent } => self.tick_cost(late, spent),
        }
        self.arm_ticks(now);
    }

    fn command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Queued(c) => self.outbound.enqueue(*c),
            Command::Reload(c) => self.engine.set_catalog(*c),
            Command::Cancelled(id) => self.outbound.cancel(&id),
            Command::Dnc { number, listed } => self.outbound.set_dnc(&number, listed),
            Command::Recovered(calls) => {
                let at = crate::crm::events::unix_ms(self.wall(now));
                if !calls.is_empty() {
                    tracing::warn!(
                        calls = calls.len(),
                        "calls that were up when ivrflow last stopped are reported as call.failed (interrupted)"
                    );
                }
                let recs: Vec<Record> = calls
                    .iter()
                    .map(|c| records::interrupted(&mut self.ids, c, at))
                    .collect();
                self.gate.record("", recs);
            }
            Command::TrunkTargets { primary, targets } => {
                let ua = self.engine.ua_mut();
                for t in &targets {
                    let tcp_ok = t.transport == crate::sip::transport::Transport::Udp;
                    ua.set_route(t.addr, t.transport, tcp_ok);
                }
                ua.set_failover(primary, targets.iter().map(|t| t.addr).collect());
            }
            Command::Drain { deadline } => {
                let at = now + deadline;
                if self.drain.is_none_or(|d| at < d) {
                    if self.drain.is_none() {
                        tracing::info!(
                            live = self.engine.live_calls(),
                            deadline_s = deadline.as_secs(),
                            "draining: new calls are refused, calls up may finish"
                        );
                    }
                    self.drain = Some(at);
                }
                self.engine.set_draining(true);
                self.refresh_status();
                self.end_if_due(now);
            }
        }
    }

    /// The drain's deadline: end whatever is still up.
    fn end_if_due(&mut self, now: Instant) {
        if !self.ended_all && self.drain.is_some_and(|d| d <= now) {
            self.ended_all = true;
            let live = self.engine.live_calls();
            if live > 0 {
                tracing::warn!(live, "drain deadline: ending the calls still up");
            }
            self.engine
                .end_all(now, "ivrflow shut down before the call ended");
        }
    }

    /// Queued calls come claimed from the store (`rt` claims them): a call that has to
    /// wait goes back to the store instead of being held here.
    pub fn use_claims(&mut self) {
        self.outbound.use_claims();
    }

    /// Draining is over: no call is up, and everything recorded is committed and every
    /// held message sent. The process may exit.
    pub fn drained(&self) -> bool {
        self.drain.is_some()
            && self.engine.unfinished_calls() == 0
            && self.gate.backlog() == (0, 0)
            && self.gate.failing().is_none()
            && self.out.is_empty()
    }

    /// The first input or timeout: register the trunks, arm the keep-alives.
    fn start(&mut self, now: Instant) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        self.outbound.start(now, &mut self.engine);
        self.refresh_status();
    }

    /// Everything due at `now`: the engine's timers, the pacing tick, the dialer, retries
    /// of a failed commit.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.start(now);
        self.engine.handle_timeout(now);
        if self.next_tick.is_some_and(|t| t <= now) {
            self.ticked = true;
            self.engine.tick(now);
            self.engine.handle_timeout(now);
            self.next_tick = Some(next_slot(self.anchor.0, now));
        }
        self.gate.handle_timeout(now);
        self.end_if_due(now);
        if now >= self.next_view {
            self.next_view = now + LIVE_VIEW_EVERY;
            let mut calls = self.engine.live_call_info(now);
            for c in &mut calls {
                c.call_ref = self.recorder.call_ref(c.call).map(str::to_owned);
            }
            if calls != self.status.calls {
                self.status.calls = calls;
                self.out
                    .push_back(Queued::Status(Box::new(self.status.clone())));
            }
        }
        let wall = self.wall(now);
        // While the store fails, nothing new is dialled: its INVITE could not be recorded;
        // nor while draining.
        if self.gate.failing().is_none() && self.drain.is_none() && self.outbound.is_due(now, wall)
        {
            let mut recs = Vec::new();
            self.outbound.handle_timeout(
                now,
                wall,
                &mut self.engine,
                &mut self.recorder,
                &mut self.ids,
                &mut recs,
            );
            self.gate.record("", recs);
        }
        self.arm_ticks(now);
    }

    /// The pacing grid runs while there is a call to pace.
    fn arm_ticks(&mut self, now: Instant) {
        if self.engine.has_media() {
            if self.next_tick.is_none() {
                self.next_tick = Some(next_slot(self.anchor.0, now));
            }
        } else {
            self.next_tick = None;
        }
    }

    fn tick_cost(&mut self, late: Duration, spent: Duration) {
        if !std::mem::take(&mut self.ticked) {
            return;
        }
        let o = &mut self.overload;
        if late + spent >= self.overload_tick {
            o.over.0 += 1;
        }
        o.ticks += 1;
        if o.ticks.is_multiple_of(50) {
            o.over = (0, o.over.0);
        }
        let recent = o.over.0.max(o.over.1);
        if !o.active && recent >= OVERLOAD_TICKS {
            o.active = true;
            tracing::warn!(
                ?spent,
                ?late,
                live = self.engine.live_calls(),
                "RTP pacing overloaded: refusing new calls"
            );
        } else if o.active && recent < OVERLOAD_TICKS / 2 {
            o.active = false;
            tracing::info!(
                live = self.engine.live_calls(),
                "RTP pacing recovered: accepting calls"
            );
        }
        self.refresh_status();
    }

    /// The node's health and trunks, queued as [`Output::Status`] when they changed.
    fn refresh_status(&mut self) {
        let store_error = self.gate.failing().map(|f| f.error.clone());
        let overloaded = self.overload.active;
        self.engine.set_media_overloaded(overloaded);
        self.engine.set_store_failing(store_error.is_some());
        let trunks = self.outbound.take_status();
        let draining = self.drain.is_some();
        let changed = trunks.is_some()
            || store_error != self.status.store_error
            || overloaded != self.status.overloaded
            || draining != self.status.draining;
        if let Some(t) = trunks {
            self.status.trunks = t;
        }
        self.status.draining = draining;
        self.status.store_error = store_error;
        self.status.overloaded = overloaded;
        if changed {
            self.out
                .push_back(Queued::Status(Box::new(self.status.clone())));
        }
    }

    // ───────────────────────────── output ─────────────────────────────

    /// The next thing to do. Ends with [`Output::Timeout`] when there is nothing else.
    pub fn poll_output(&mut self) -> Output<'_> {
        loop {
            if let Some(q) = self.out.pop_front() {
                return q.into_output();
            }
            if let Some(g) = self.gate.poll() {
                match g {
                    GateOutput::Commit {
                        ticket,
                        records,
                        files,
                    } => {
                        return Output::Commit {
                            ticket,
                            records,
                            files,
                        };
                    }
                    GateOutput::Sip(t) => return Output::Sip(t),
                    GateOutput::Start(call) => {
                        self.engine.release_answer(self.now, call);
                        continue;
                    }
                }
            }
            match self.engine.poll_output() {
                Some(EngineOutput::Rtp {
                    call,
                    dest,
                    off,
                    len,
                }) => {
                    return Output::Rtp {
                        call,
                        dest,
                        payload: self.engine.rtp_payload(off, len),
                    };
                }
                Some(EngineOutput::Sip(t)) => self.gate.sip(t),
                Some(EngineOutput::OpenMedia { call }) => {
                    self.out.push_back(Queued::OpenMedia(call))
                }
                Some(EngineOutput::CloseMedia { call }) => {
                    self.out.push_back(Queued::CloseMedia(call))
                }
                Some(EngineOutput::Event(ev)) => self.on_event(ev),
                None => {
                    let now = self.now;
                    self.gate.flush(now);
                    self.refresh_status();
                    if self.out.is_empty() && self.gate.is_empty() {
                        return Output::Timeout(self.poll_timeout());
                    }
                }
            }
        }
    }

    /// When the node next needs [`Node::handle_timeout`]; far in the future when idle.
    pub fn poll_timeout(&self) -> Instant {
        let now = self.now;
        let wall = self.wall(now);
        let dial = if self.gate.failing().is_none() && self.drain.is_none() {
            self.outbound.poll_timeout(now, wall)
        } else {
            None
        };
        let drain = self.drain.filter(|_| !self.ended_all);
        [
            self.engine.poll_timeout(),
            self.next_tick,
            self.gate.poll_timeout(),
            dial,
            drain,
            (!self.status.calls.is_empty() || self.engine.unfinished_calls() > 0)
                .then_some(self.next_view),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + Duration::from_secs(3600))
    }

    fn on_event(&mut self, ev: EngineEvent) {
        let now = self.now;
        let wall = self.wall(now);
        match ev {
            EngineEvent::Effect { call, effect, .. } => {
                let _span = self.engine.call_span(call).entered();
                self.effect(now, call, effect)
            }
            ev => {
                let (call, sip_call_id) = match &ev {
                    EngineEvent::CallStarted { call, origin, .. }
                    | EngineEvent::CallFailed { call, origin, .. } => {
                        (Some(*call), origin.sip_call_id.clone())
                    }
                    EngineEvent::CallAnswered {
                        call, sip_call_id, ..
                    } => (Some(*call), sip_call_id.clone()),
                    EngineEvent::CallCompleted { call, record } => {
                        (Some(*call), record.call_id.clone())
                    }
                    _ => (None, String::new()),
                };
                let answered = matches!(ev, EngineEvent::CallAnswered { .. });
                let ended = matches!(
                    ev,
                    EngineEvent::CallFailed { .. } | EngineEvent::CallCompleted { .. }
                );
                let span = call.map_or_else(tracing::Span::none, |c| self.engine.call_span(c));
                let _span = span.enter();
                let mut recs = Vec::new();
                self.outbound
                    .on_event(ev, wall, &mut self.recorder, &mut self.ids, &mut recs);
                // The call's log lines name its `call_ref` from the moment it has one.
                if let Some(r) = call.and_then(|c| self.recorder.call_ref(c)) {
                    span.record("call_ref", r);
                }
                if let Some(c) = call {
                    if !sip_call_id.is_empty() {
                        self.sip_ids.insert(c, sip_call_id.clone());
                    }
                    if ended {
                        self.sip_ids.remove(&c);
                    }
                }
                self.gate.record(&sip_call_id, recs);
                if answered && let Some(c) = call {
                    self.gate.start_after(c, &sip_call_id);
                }
                self.refresh_status();
            }
        }
    }

    /// Where a live call's effect goes.
    fn effect(&mut self, now: Instant, call: CallHandle, effect: Effect) {
        match effect {
            Effect::Recognize {
                id,
                audio,
                lang,
                phrases,
            } => self
                .out
                .push_back(Queued::Recognize(call, id, audio, lang, phrases)),
            Effect::CancelRecognition { id } => {
                self.out.push_back(Queued::CancelRecognition(call, id))
            }
            Effect::SaveRecording { file, audio } => match self.recorder.call_ref(call) {
                Some(call_ref) => self.gate.attach(crate::recordings::Attachment {
                    call_ref: call_ref.to_owned(),
                    file,
                    audio: Arc::new(audio),
                }),
                None => tracing::error!(%call, "a recording of a call with no record; not kept"),
            },
            Effect::Dialogue(Action::Notify { event, data }) => {
                if event == crate::crm::events::DNC_REQUESTED
                    && let Some(number) = self.outbound.opt_out(call)
                {
                    self.out.push_back(Queued::AddDnc(number));
                }
                let wall = self.wall(now);
                let rec = self
                    .recorder
                    .notify(&mut self.ids, call, &event, &data, wall);
                let sip_call_id = self.sip_ids.get(&call).cloned().unwrap_or_default();
                self.gate.record(&sip_call_id, rec.into_iter().collect());
            }
            Effect::Dialogue(Action::Webhook { id, request }) => {
                let call_ref = self.recorder.call_ref(call).map(str::to_owned);
                self.out
                    .push_back(Queued::Http(call, id, call_ref, request));
            }
            #[allow(unreachable_patterns)]
            other => {
                // Only the kind: a transfer target or a recording may be personal data.
                let kind = match &other {
                    Effect::Dialogue(Action::Transfer { .. }) => "transfer",
                    Effect::Dialogue(Action::Record { .. }) => "record",
                    _ => "other",
                };
                tracing::warn!(%call, effect = kind, "effect not supported by this node yet");
            }
        }
    }
}

impl Queued {
    fn into_output<'a>(self) -> Output<'a> {
        match self {
            Queued::OpenMedia(call) => Output::OpenMedia { call },
            Queued::CloseMedia(call) => Output::CloseMedia { call },
            Queued::AddDnc(number) => Output::AddDnc { number },
            Queued::Http(call, id, call_ref, request) => Output::Http {
                call,
                id,
                call_ref,
                request,
            },
            Queued::Recognize(call, id, audio, lang, phrases) => Output::Recognize {
                call,
                id,
                audio,
                lang,
                phrases,
            },
            Queued::CancelRecognition(call, id) => Output::CancelRecognition { call, id },
            Queued::Status(s) => Output::Status(s),
        }
    }
}

/// The first 20 ms slot of the grid anchored at `anchor` that is later than `now`.
fn next_slot(anchor: Instant, now: Instant) -> Instant {
    let since = now.saturating_duration_since(anchor).as_micros();
    let step = PTIME.as_micros();
    let k = since / step + 1;
    anchor + Duration::from_micros((k * step) as u64)
}
