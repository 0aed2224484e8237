//! A simulated world around the real node core, on a virtual clock (Firezone's connlib
//! tests and quinn-proto's `Pair` are the models).
//!
//! ```text
//!   scripted callers ──┐                         ┌── trunk callees (answer, busy, ring)
//!        (UserAgent)    └── Network (latency, loss, duplicates, reordering) ──┘
//!                                      │
//!                                   Node (the real one: engine, dialer, records, gate)
//!                                      │ Commit / Stored / StoreFailed
//!                                  SQLite in memory (down windows, latency)
//!                                      │ outbox
//!                           Deliverer (the real decisions) ──► CRM (down windows)
//! ```
//! The world executes the node's outputs as the runtime would, with its own clock: the next
//! thing to happen (a datagram arriving, a node or peer timer, a store answer, a delivery,
//! a scripted call, a crash) is always the next instant. A node can be killed (its state
//! lost, its store kept) and started again from the store, as after `kill -9`.
//!
//! While it runs and at the end it checks the promises (see [`World::run`]): every started
//! call gets exactly one final event; per call the events are in order, committed and
//! delivered in order; no RTP after a call's BYE; no success in SIP before the event it
//! follows is committed; nobody on the do-not-call list is dialled, nobody outside the
//! calling window, and no attempt twice.
//!
//! Not here: media content (peers do not listen to the robot's audio; they press keys with
//! RFC 4733 events), speech, HTTP effects of scenarios (the world's scenarios have none).

pub mod net;
pub mod peer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::crm::events::{self, unix_ms};
use crate::crm::outbox::{AttemptResult, RetrySchedule};
use crate::delivery::{self, Deliverer, Policy};
use crate::dialer::{CallingWindow, Campaign, RetryRule};
use crate::engine::EngineConfig;
use crate::media::prompts::{Prompt, PromptCache};
use crate::node::{Command, Input, Node, NodeConfig, Output, TrunkSetup};
use crate::sip::ua::{CallHandle, TimerValues, UaConfig};
use crate::store::sqlite::SqliteStore;
use crate::store::{
    CallChange, CallState, Created, DialOptions, Direction, EventRecord, NewCall, NewEvent, Record,
    Store,
};
use net::{Faults, Network};
use peer::{Callee, Caller, Peer, Role};

/// The world's scenario: a greeting, one question by key (1 confirms), a goodbye.
pub const SCENARIO: &str = r#"version: 1
name: sim
description: The simulated world's call.
languages: [en]
variables:
  language: { type: string, default: en }
start: greet
nodes:
  greet:
    play: [hello]
    next: ask
  ask:
    ask:
      prompt: [question]
      input: [dtmf]
      timeout: 1s
      intents:
        confirm: { dtmf: ["1"] }
      noinput: { max: 1 }
      nomatch: { max: 1 }
    on:
      confirm: yes
      noinput: silent
      nomatch: silent
  yes:
    hangup: { outcome: confirmed, play: [bye] }
  silent:
    hangup: { outcome: no_input, play: [bye] }
"#;

/// An outbound call queued through the API at `at`.
#[derive(Debug, Clone)]
pub struct Queued {
    pub at: Duration,
    pub to: String,
    pub callee: Callee,
    /// `window` (10:00–13:00 UTC, retries) or the default (any time, once).
    pub campaign: Option<String>,
}

/// What happens in a world.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub seed: u64,
    pub latency: Duration,
    pub faults: Faults,
    /// Windows (from the start) during which every commit fails.
    pub store_down: Vec<(Duration, Duration)>,
    pub store_latency: Duration,
    /// Windows during which the CRM refuses connections.
    pub crm_down: Vec<(Duration, Duration)>,
    /// Instants at which the node is killed and started again from the store.
    pub restarts: Vec<Duration>,
    /// Inbound calls: when, and what the caller does.
    pub inbound: Vec<(Duration, Caller)>,
    pub outbound: Vec<Queued>,
    /// Numbers on the do-not-call list from the start.
    pub dnc: Vec<String>,
    /// How long the world runs (the calls, then time for retries and deliveries).
    pub run_for: Duration,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            seed: 1,
            latency: Duration::from_millis(5),
            faults: Faults::default(),
            store_down: Vec::new(),
            store_latency: Duration::from_millis(2),
            crm_down: Vec::new(),
            restarts: Vec::new(),
            inbound: Vec::new(),
            outbound: Vec::new(),
            dnc: Vec::new(),
            run_for: Duration::from_secs(600),
        }
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Broken promises, each with the call and the instant.
    pub violations: Vec<String>,
    /// Calls the store knows.
    pub calls: usize,
    pub events: usize,
    /// Events the CRM accepted (distinct ids).
    pub delivered: usize,
    /// Outcomes of answered calls, counted.
    pub outcomes: BTreeMap<String, usize>,
    /// Final failures, by reason.
    pub failures: BTreeMap<String, usize>,
    pub datagrams: u64,
    pub lost: u64,
    pub restarts: usize,
    /// INVITEs the trunk received.
    pub dialled: usize,
}

const NODE_NAME: &str = "sim-node";

fn node_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 5060)
}

fn trunk_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)), 5060)
}

/// The wall-clock instant of the world's start: Monday 2026-12-07 09:59:00 UTC, a minute
/// before the `window` campaign's calling window opens.
fn wall0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_637_540)
}

/// The simulated node and what the world keeps about it.
struct SimNode {
    node: Node,
    wake: Instant,
    /// Media ports it asked for, by port and by call.
    ports: HashMap<u16, CallHandle>,
    by_call: HashMap<CallHandle, u16>,
    next_port: u16,
    /// Store answers on their way back: (when, ticket, error).
    acks: Vec<(Instant, u64, Option<String>)>,
}

pub struct World {
    cfg: WorldConfig,
    t0: Instant,
    now: Instant,
    net: Network,
    node: SimNode,
    store: SqliteStore,
    deliverer: Deliverer,
    deliverer_wake: Instant,
    /// Deliveries under way: (when the CRM answers, the event).
    posts: Vec<(Instant, EventRecord)>,
    peers: Vec<Peer>,
    /// A peer by its SIP and RTP addresses.
    by_sip: HashMap<SocketAddr, usize>,
    /// Calls whose BYE the node sent (or whose BYE it answered): no RTP from then on.
    bye_at: HashMap<String, Instant>,
    /// Event kinds committed per call_ref, in commit order.
    committed: HashMap<String, Vec<(i64, String, bool)>>,
    sip_to_ref: HashMap<String, String>,
    /// Events the CRM accepted: (id, call_ref, seq), first delivery order.
    crm: Vec<(String, String, i64)>,
    crm_seen: BTreeSet<String>,
    /// Trunk peers by the number they answer.
    callees: HashMap<String, usize>,
    violations: Vec<String>,
    restarts_done: usize,
    inbound_next: usize,
    outbound_next: usize,
    /// Queued calls: call_ref → (number, campaign).
    queued_refs: HashMap<String, (String, Option<String>)>,
}

fn prompts() -> Arc<PromptCache> {
    let mut p = PromptCache::new();
    for (name, ms) in [("hello", 300), ("question", 600), ("bye", 300)] {
        p.insert("en", Prompt::from_pcm(name, vec![100i16; ms * 8]));
    }
    Arc::new(p)
}

fn campaigns() -> Vec<Campaign> {
    use jiff::civil::{Time, Weekday};
    vec![Campaign {
        name: "window".into(),
        windows: vec![CallingWindow {
            days: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ],
            start: Time::constant(10, 0, 0, 0),
            end: Time::constant(13, 0, 0, 0),
        }],
        default_tz: "UTC".into(),
        require_consent: false,
        busy: RetryRule {
            every: Duration::from_secs(20),
            max_attempts: 3,
        },
        no_answer: RetryRule {
            every: Duration::from_secs(30),
            max_attempts: 2,
        },
        failed: RetryRule {
            every: Duration::from_secs(30),
            max_attempts: 2,
        },
    }]
}

fn node_config(t0: Instant, now: Instant, seed: u64) -> NodeConfig {
    let scenario = crate::scenario::load_str("sim.yaml", SCENARIO).expect("the sim scenario");
    let mut trunk = crate::config::TrunkConfig::from_uri("main", &format!("sip:{}", trunk_addr()))
        .expect("trunk");
    trunk.keepalive = "0s".into();
    trunk.ring_timeout = "8s".into();
    trunk.max_calls = 20;
    trunk.max_cps = 20.0;
    NodeConfig {
        engine: EngineConfig {
            ua: UaConfig {
                local_addr: node_addr(),
                advertised: None,
                user_agent: "sim-node".into(),
                timers: TimerValues::default(),
            },
            media_ip: node_addr().ip(),
            inbound: crate::catalog::Inbound {
                routes: BTreeMap::new(),
                by_name: true,
            },
            max_calls: 500,
            seed,
            transfer_route: None,
            max_call_duration: Duration::from_secs(300),
            strict_rtp: Default::default(),
            max_calls_per_source: None,
            trusted: Vec::new(),
        },
        scenarios: BTreeMap::from([("sim".to_owned(), Arc::new(scenario))]),
        prompts: prompts(),
        trunks: vec![TrunkSetup {
            cfg: trunk,
            proxy: trunk_addr(),
            registrar: None,
        }],
        campaigns: campaigns(),
        campaign_trunks: HashMap::new(),
        overload_tick: Duration::from_secs(1),
        seed: seed ^ 0xa5a5,
        guard: crate::node::guard::GuardConfig {
            // The world's peers each have an address of their own; the world's one-source
            // flood is the only thing the edge should stop.
            requests: 1_000,
            ..Default::default()
        },
        anchor: (now, wall0() + now.saturating_duration_since(t0)),
        recordings_url: Some("http://api.sim".into()),
    }
}

impl World {
    pub fn new(cfg: WorldConfig) -> World {
        let t0 = Instant::now();
        let mut store = SqliteStore::open(std::path::Path::new(":memory:"), NODE_NAME)
            .expect("an in-memory store");
        let wall = unix_ms(wall0());
        for n in &cfg.dnc {
            let _ = store.add_dnc(&crate::dialer::normalize_number(n), "api", wall);
        }
        let node = Node::new({
            let mut c = node_config(t0, t0, cfg.seed);
            c.anchor = (t0, wall0());
            c
        });
        let deliverer = Deliverer::new(
            Policy {
                timeout: Duration::from_secs(2),
                schedule: RetrySchedule {
                    delays: vec![
                        Duration::from_secs(1),
                        Duration::from_secs(5),
                        Duration::from_secs(20),
                    ],
                    max_attempts: 50,
                    jitter: 0.1,
                },
                max_in_flight: 16,
            },
            cfg.seed,
        );
        let mut w = World {
            net: Network::new(cfg.seed, cfg.latency, cfg.faults.clone()),
            node: SimNode {
                node,
                wake: t0,
                ports: HashMap::new(),
                by_call: HashMap::new(),
                next_port: 20000,
                acks: Vec::new(),
            },
            store,
            deliverer,
            deliverer_wake: t0,
            posts: Vec::new(),
            peers: Vec::new(),
            by_sip: HashMap::new(),
            bye_at: HashMap::new(),
            committed: HashMap::new(),
            sip_to_ref: HashMap::new(),
            crm: Vec::new(),
            crm_seen: BTreeSet::new(),
            callees: HashMap::new(),
            violations: Vec::new(),
            restarts_done: 0,
            inbound_next: 0,
            outbound_next: 0,
            queued_refs: HashMap::new(),
            t0,
            now: t0,
            cfg,
        };
        let dnc = w.store.dnc_numbers().unwrap_or_default();
        for number in dnc {
            w.node.node.handle_input(
                t0,
                Input::Command(Command::Dnc {
                    number,
                    listed: true,
                }),
            );
        }
        w.cfg.inbound.sort_by_key(|(t, _)| *t);
        w.cfg.outbound.sort_by_key(|q| q.at);
        w.pump_node();
        w
    }

    fn wall(&self, at: Instant) -> i64 {
        unix_ms(wall0() + at.saturating_duration_since(self.t0))
    }

    fn in_window(windows: &[(Duration, Duration)], t: Duration) -> bool {
        windows.iter().any(|(a, b)| *a <= t && t < *b)
    }

    fn violation(&mut self, what: String) {
        let at = self.now.saturating_duration_since(self.t0);
        self.violations
            .push(format!("[{:.3}s] {what}", at.as_secs_f64()));
    }

    /// Execute everything the node wants done now.
    fn pump_node(&mut self) {
        loop {
            let now = self.now;
            let out = self.node.node.poll_output();
            match out {
                Output::Timeout(t) => {
                    self.node.wake = t;
                    return;
                }
                Output::Sip(t) => {
                    let payload = t.payload;
                    let dest = t.dest;
                    self.check_sip(&payload);
                    self.net.send(now, node_addr(), dest, payload);
                }
                Output::Rtp { dest, .. } => {
                    // Peers ignore the robot's audio; the world checks when it is sent.
                    let dest_peer = self
                        .peers
                        .iter()
                        .find(|p| p.rtp == dest)
                        .and_then(|p| p.call_id.clone());
                    if let Some(cid) = dest_peer
                        && let Some(bye) = self.bye_at.get(&cid)
                        && now > *bye
                    {
                        let late = now - *bye;
                        self.violation(format!("RTP to {dest} {late:?} after the BYE of {cid}"));
                    }
                }
                Output::OpenMedia { call } => {
                    let port = self.node.next_port;
                    self.node.next_port = self.node.next_port.wrapping_add(2).max(20000);
                    self.node.ports.insert(port, call);
                    self.node.by_call.insert(call, port);
                    self.node
                        .node
                        .handle_input(now, Input::MediaOpened { call, port });
                }
                Output::CloseMedia { call } => {
                    if let Some(p) = self.node.by_call.remove(&call) {
                        self.node.ports.remove(&p);
                    }
                }
                Output::Commit {
                    ticket, records, ..
                } => {
                    let at = now + self.cfg.store_latency;
                    let down = World::in_window(
                        &self.cfg.store_down,
                        at.saturating_duration_since(self.t0),
                    );
                    let error = if down {
                        Some("disk full (simulated)".to_owned())
                    } else {
                        self.commit(at, &records);
                        None
                    };
                    self.node.acks.push((at, ticket, error));
                }
                Output::AddDnc { number } => {
                    let w = self.wall(now);
                    let _ = self.store.add_dnc(&number, "call", w);
                }
                Output::Http { call, id, .. } => self.node.node.handle_input(
                    now,
                    Input::CallInput {
                        call,
                        input: crate::dialogue::Input::WebhookResult {
                            id,
                            result: Ok(serde_json::json!({})),
                        },
                    },
                ),
                Output::Recognize { call, id, .. } => self.node.node.handle_input(
                    now,
                    Input::Recognition {
                        call,
                        id,
                        result: Err("no speech in the simulated world".into()),
                    },
                ),
                Output::CancelRecognition { .. } | Output::Status(_) => {}
            }
        }
    }

    /// Apply a commit to the store and remember what it holds.
    fn commit(&mut self, at: Instant, records: &[Record]) {
        let w = self.wall(at);
        let results = match self.store.record(records, w) {
            Ok(r) => r,
            Err(e) => {
                self.violation(format!("the store refused a whole commit: {e}"));
                return;
            }
        };
        for (rec, r) in records.iter().zip(results) {
            if let Err(e) = r {
                self.violation(format!("record of {} refused: {e}", rec.call_id));
                continue;
            }
            let sip = match &rec.change {
                CallChange::Insert(c) => c.sip_call_id.clone(),
                CallChange::Update(u) => u.sip_call_id.clone(),
            };
            if let Some(sip) = sip
                && !sip.is_empty()
            {
                self.sip_to_ref.insert(sip, rec.call_id.clone());
            }
            if let Some(ev) = &rec.event {
                let is_final = ev.kind == events::CALL_COMPLETED
                    || (ev.kind == events::CALL_FAILED && ev.data["final"] != false);
                let list = self.committed.entry(rec.call_id.clone()).or_default();
                list.push((w, ev.kind.clone(), is_final));
            }
        }
        self.deliverer.handle_new_events(w);
    }

    /// No success in SIP before its event is committed; note BYEs (no RTP after them).
    fn check_sip(&mut self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let first = text.lines().next().unwrap_or("");
        let cseq = text
            .split("\r\n")
            .find_map(|l| l.strip_prefix("CSeq: "))
            .unwrap_or("")
            .to_owned();
        let Some(call_id) = crate::node::commit::call_id_of(payload).map(str::to_owned) else {
            return;
        };
        let kinds: Vec<String> = self
            .sip_to_ref
            .get(&call_id)
            .and_then(|r| self.committed.get(r))
            .map(|v| v.iter().map(|(_, k, _)| k.clone()).collect())
            .unwrap_or_default();
        let has = |k: &str| kinds.iter().any(|x| x == k);
        if first.starts_with("SIP/2.0 200")
            && cseq.ends_with("INVITE")
            && !has(events::CALL_ANSWERED)
        {
            self.violation(format!(
                "200 OK to the INVITE of {call_id} before call.answered was committed"
            ));
        }
        let ends = first.starts_with("BYE ")
            || (first.starts_with("SIP/2.0 200") && cseq.ends_with("BYE"));
        if ends {
            if !has(events::CALL_COMPLETED) && !has(events::CALL_FAILED) {
                self.violation(format!(
                    "{first:?} of {call_id} before its final event was committed"
                ));
            }
            self.bye_at.entry(call_id).or_insert(self.now);
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let mut times = vec![self.node.wake, self.deliverer_wake];
        times.extend(self.net.next_arrival());
        times.extend(self.node.acks.iter().map(|a| a.0));
        times.extend(self.posts.iter().map(|p| p.0));
        times.extend(self.peers.iter().filter_map(|p| p.poll_timeout()));
        if let Some((t, _)) = self.cfg.inbound.get(self.inbound_next) {
            times.push(self.t0 + *t);
        }
        if let Some(q) = self.cfg.outbound.get(self.outbound_next) {
            times.push(self.t0 + q.at);
        }
        if let Some(r) = self.cfg.restarts.get(self.restarts_done) {
            times.push(self.t0 + *r);
        }
        times.into_iter().min()
    }

    /// Run to the end and check every promise; returns what was found.
    pub fn run(mut self) -> Report {
        let end = self.t0 + self.cfg.run_for;
        let mut steps = 0u64;
        while let Some(t) = self.next_event() {
            if t > end {
                break;
            }
            steps += 1;
            if steps > 50_000_000 {
                self.violation("the world does not settle (too many steps)".into());
                break;
            }
            self.now = self.now.max(t);
            self.step();
        }
        self.now = end;
        self.finish()
    }

    fn step(&mut self) {
        let now = self.now;
        let since = now.saturating_duration_since(self.t0);
        // A crash and restart.
        if self
            .cfg
            .restarts
            .get(self.restarts_done)
            .is_some_and(|r| *r <= since)
        {
            self.restarts_done += 1;
            self.restart();
        }
        // New inbound calls.
        while let Some((t, caller)) = self.cfg.inbound.get(self.inbound_next).cloned() {
            if t > since {
                break;
            }
            self.inbound_next += 1;
            let i = self.peers.len();
            let ip = Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1);
            let mut p = Peer::new(
                SocketAddr::new(IpAddr::V4(ip), 5060),
                SocketAddr::new(IpAddr::V4(ip), 40000),
                Role::Caller(caller),
                self.cfg.seed ^ (i as u64) << 8,
            );
            p.dial(now, node_addr(), "sim", &mut self.net);
            self.by_sip.insert(p.sip, i);
            self.peers.push(p);
        }
        // Outbound calls queued through "the API".
        while let Some(q) = self.cfg.outbound.get(self.outbound_next).cloned() {
            if q.at > since {
                break;
            }
            self.outbound_next += 1;
            self.queue(now, &q);
        }
        // Store answers.
        let due: Vec<_> = self
            .node
            .acks
            .iter()
            .filter(|a| a.0 <= now)
            .cloned()
            .collect();
        self.node.acks.retain(|a| a.0 > now);
        for (_, ticket, error) in due {
            let input = match error {
                None => Input::Stored { ticket },
                Some(error) => Input::StoreFailed { ticket, error },
            };
            self.node.node.handle_input(now, input);
        }
        // Datagrams.
        while let Some(d) = self.net.pop_due(now) {
            if d.to.ip() == node_addr().ip() {
                if d.to.port() == 5060 {
                    self.node.node.handle_input(
                        now,
                        Input::Sip {
                            source: d.from,
                            datagram: &d.payload,
                        },
                    );
                } else if let Some(&call) = self.node.ports.get(&d.to.port()) {
                    self.node.node.handle_input(
                        now,
                        Input::Rtp {
                            call,
                            source: d.from,
                            packet: &d.payload,
                        },
                    );
                }
                self.pump_node();
            } else if d.to == trunk_addr() {
                self.trunk_datagram(now, d.from, &d.payload);
            } else if let Some(&i) = self.by_sip.get(&d.to) {
                self.peers[i].handle_datagram(now, d.from, &d.payload, &mut self.net);
            }
        }
        // Timers.
        if self.node.wake <= now {
            self.node.node.handle_timeout(now);
        }
        self.pump_node();
        for p in self.peers.iter_mut() {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now, &mut self.net);
            }
        }
        self.deliver(now);
    }

    /// Queue an outbound call as `POST /v1/calls` does: the call and its `call.queued`
    /// committed, then the node told.
    fn queue(&mut self, now: Instant, q: &Queued) {
        let w = self.wall(now);
        let id = format!("q-{}-{}", self.outbound_next, q.to);
        let call = NewCall {
            id: id.clone(),
            direction: Direction::Outbound,
            state: CallState::Queued,
            scenario: "sim".into(),
            to: Some(q.to.clone()),
            from: None,
            variables: BTreeMap::new(),
            not_before: None,
            idempotency_key: None,
            request_hash: None,
            sip_call_id: None,
            dial: DialOptions {
                campaign: q.campaign.clone(),
                timezone: None,
                consent: None,
            },
        };
        let event = NewEvent {
            id: format!("msg_q{}", self.outbound_next),
            kind: events::CALL_QUEUED.into(),
            occurred_at: w,
            data: events::queued_data("sim", &q.to, &BTreeMap::new(), None),
        };
        match self.store.create_call(&call, &event, w) {
            Ok(Created::New(rec)) => {
                self.committed.entry(id.clone()).or_default().push((
                    w,
                    events::CALL_QUEUED.into(),
                    false,
                ));
                self.queued_refs
                    .insert(id, (q.to.clone(), q.campaign.clone()));
                // A callee for this number, on the trunk.
                let i = self.peers.len();
                let ip = Ipv4Addr::new(10, 2, (i / 250) as u8, (i % 250) as u8 + 1);
                let p = Peer::new(
                    SocketAddr::new(IpAddr::V4(ip), 5060),
                    SocketAddr::new(IpAddr::V4(ip), 40000),
                    Role::Callee(q.callee.clone()),
                    self.cfg.seed ^ (i as u64) << 8,
                );
                self.by_sip.insert(p.sip, i);
                self.callees.insert(q.to.clone(), i);
                self.peers.push(p);
                self.node
                    .node
                    .handle_input(now, Input::Command(Command::Queued(Box::new(rec))));
                self.deliverer.handle_new_events(w);
                self.pump_node();
            }
            other => self.violation(format!("queueing {}: {other:?}", q.to)),
        }
    }

    /// The trunk proxy: an INVITE (and everything after it) goes to the callee peer of
    /// the dialled number, which answers as the trunk would.
    fn trunk_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let call_id = crate::node::commit::call_id_of(data).map(str::to_owned);
        let idx = if let Some(rest) = text.strip_prefix("INVITE sip:") {
            let number = rest.split('@').next().unwrap_or("").to_owned();
            let i = self.callees.get(&number).copied();
            if let (Some(_), Some(cid)) = (i, call_id.clone()) {
                self.check_dial(now, &number, &cid);
            }
            i
        } else {
            call_id.and_then(|cid| {
                self.peers.iter().position(|p| {
                    matches!(p.role, Role::Callee(_)) && p.invites.iter().any(|(_, c)| *c == cid)
                })
            })
        };
        if let Some(i) = idx {
            self.peers[i].handle_datagram(now, from, data, &mut self.net);
        }
    }

    /// Nobody on the do-not-call list, nobody outside the calling window.
    fn check_dial(&mut self, now: Instant, number: &str, call_id: &str) {
        let w = self.wall(now);
        let dnc = self.store.dnc_numbers().unwrap_or_default();
        if dnc.contains(&crate::dialer::normalize_number(number)) {
            self.violation(format!(
                "dialled {number}, on the do-not-call list ({call_id})"
            ));
        }
        let in_window = |ms: i64| {
            let secs = ms / 1000;
            let day = (secs / 86_400 + 4) % 7; // 0 = Monday (1970-01-01 was a Thursday)
            let tod = secs % 86_400;
            day < 5 && (10 * 3600..13 * 3600).contains(&tod)
        };
        let windowed = self
            .queued_refs
            .values()
            .any(|(n, c)| n == number && c.as_deref() == Some("window"));
        if windowed && !in_window(w) {
            self.violation(format!("dialled {number} outside its calling window"));
        }
    }

    fn deliver(&mut self, now: Instant) {
        let w = self.wall(now);
        let crm_down = World::in_window(&self.cfg.crm_down, now.saturating_duration_since(self.t0));
        let due: Vec<_> = self.posts.iter().filter(|p| p.0 <= now).cloned().collect();
        self.posts.retain(|p| p.0 > now);
        for (_, ev) in due {
            let result = if crm_down {
                AttemptResult::Network("connection refused (simulated)".into())
            } else {
                if self.crm_seen.insert(ev.id.clone()) {
                    self.crm.push((ev.id.clone(), ev.call_id.clone(), ev.seq));
                }
                AttemptResult::Delivered { status: 200 }
            };
            self.deliverer
                .handle_result(w, &ev, result, w, Duration::from_millis(3));
        }
        if w >= self.wall(self.deliverer_wake) {
            self.deliverer.handle_timeout(w);
        }
        loop {
            match self.deliverer.poll_output() {
                delivery::Output::Timeout(at) => {
                    let after = Duration::from_millis(u64::try_from(at - w).unwrap_or(0).max(1));
                    self.deliverer_wake = now + after;
                    break;
                }
                delivery::Output::Lease { free, lease_until } => {
                    let leased = self
                        .store
                        .lease_due(w, lease_until, free)
                        .unwrap_or_default();
                    let next = self.store.next_due().ok().flatten();
                    self.deliverer.handle_leased(w, leased, next);
                }
                delivery::Output::Post(ev) => self.posts.push((now + Duration::from_millis(3), ev)),
                delivery::Output::Finish(done) => {
                    if let Err(e) = self.store.finish_attempts(&done, w) {
                        self.violation(format!("finishing attempts: {e}"));
                    }
                }
            }
        }
    }

    /// `kill -9` and start again: the node's state is gone, the store stays.
    fn restart(&mut self) {
        let now = self.now;
        // Answers the dead node was waiting for are lost; what was applied stays applied.
        self.node.acks.clear();
        self.node.ports.clear();
        self.node.by_call.clear();
        let seed = self.cfg.seed.wrapping_add(self.restarts_done as u64 * 7919);
        let mut node = Node::new(node_config(self.t0, now, seed));
        let lost = self.store.live_calls(NODE_NAME).unwrap_or_default();
        let queued = self.store.queued_calls().unwrap_or_default();
        let dnc = self.store.dnc_numbers().unwrap_or_default();
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
        for c in queued {
            node.handle_input(now, Input::Command(Command::Queued(Box::new(c))));
        }
        self.node.node = node;
        self.node.wake = now;
        self.pump_node();
    }

    fn finish(mut self) -> Report {
        let mut r = Report::default();
        let calls = self.committed.clone();
        for (call_ref, evs) in &calls {
            let finals = evs.iter().filter(|e| e.2).count();
            let started = evs.iter().any(|e| e.1 == events::CALL_STARTED);
            let queued = evs.iter().any(|e| e.1 == events::CALL_QUEUED);
            if (started || queued) && finals != 1 {
                self.violation(format!(
                    "{call_ref}: {finals} final events ({:?})",
                    evs.iter().map(|e| &e.1).collect::<Vec<_>>()
                ));
            }
            // Order: nothing after the final event; answered after started.
            if let Some(i) = evs.iter().position(|e| e.2)
                && i + 1 != evs.len()
            {
                self.violation(format!(
                    "{call_ref}: events after the final one: {:?}",
                    evs.iter().map(|e| &e.1).collect::<Vec<_>>()
                ));
            }
            let pos = |k: &str| evs.iter().position(|e| e.1 == k);
            if let (Some(a), Some(s)) = (pos(events::CALL_ANSWERED), pos(events::CALL_STARTED))
                && a < s
            {
                self.violation(format!("{call_ref}: answered before started"));
            }
        }
        // The outbox agrees, every event was delivered, and in order per call.
        let stats = self.store.stats().unwrap_or_default();
        r.events = stats.events_by_status.values().sum::<u64>() as usize;
        r.calls = stats.calls_by_state.values().sum::<u64>() as usize;
        let pending = stats.events_by_status.get("pending").copied().unwrap_or(0);
        if pending > 0 {
            self.violation(format!("{pending} events still pending at the end"));
        }
        let mut last_seq: HashMap<&str, i64> = HashMap::new();
        for (id, call_ref, seq) in &self.crm {
            let prev = last_seq.insert(call_ref, *seq).unwrap_or(0);
            if *seq != prev + 1 {
                self.violations.push(format!(
                    "{call_ref}: event seq {seq} ({id}) delivered after seq {prev}"
                ));
            }
        }
        r.delivered = self.crm_seen.len();
        if r.delivered != r.events {
            self.violations.push(format!(
                "{} events stored, {} delivered",
                r.events, r.delivered
            ));
        }
        // No attempt dialled twice: INVITEs per number ≤ attempts the store recorded.
        let mut dialled = 0;
        for (number, &i) in &self.callees {
            let invites: BTreeSet<&String> = self.peers[i].invites.iter().map(|(_, c)| c).collect();
            dialled += invites.len();
            let attempts: u32 = self
                .queued_refs
                .iter()
                .filter(|(_, (n, _))| n == number)
                .filter_map(|(id, _)| self.store.get_call(id).ok().flatten())
                .map(|c| c.dial_attempts)
                .sum();
            if invites.len() as u32 > attempts {
                self.violations.push(format!(
                    "{number}: {} INVITEs for {attempts} attempts",
                    invites.len()
                ));
            }
        }
        r.dialled = dialled;
        for evs in calls.values() {
            for (_, kind, fin) in evs {
                if *fin && kind == events::CALL_COMPLETED {
                    *r.outcomes.entry("completed".into()).or_default() += 1;
                } else if *fin {
                    *r.failures.entry(kind.clone()).or_default() += 1;
                }
            }
        }
        r.datagrams = self.net.sent;
        r.lost = self.net.lost;
        r.restarts = self.restarts_done;
        r.violations = self.violations;
        r
    }
}
