//! The runtime side of outbound calling: trunks (registration, OPTIONS keep-alive, where
//! INVITEs go) and the [`Dialer`] fed from the store and the control API.
//!
//! The drive loop owns an [`Outbound`]: at start it loads the queued calls and the
//! do-not-call list from the store (a restart loses no queued call), registers each trunk
//! that has credentials, and then, whenever the dialer says a call is due, places it through
//! [`Engine::place_call`]. Call results come back from the engine's events and go through
//! the campaign's retry policy; the store records each attempt (a retried call goes back to
//! `queued` with its new time).
//!
//! Not here: the rules themselves (`crate::dialer`, sans-IO, tested on a virtual clock) or
//! SIP (`crate::sip::ua`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use serde::Serialize;

use crate::config::{Config, TrunkConfig};
use crate::crm::events::FailReason;
use crate::dialer::{
    Campaign, DialAction, Dialer, Disposition, Next, QueuedCall, Refusal, TrunkLimits,
};
use crate::engine::{CallOrigin, Engine, EngineEvent, MediaPorts, OutboundCall, PlaceError};
use crate::pii::Pii;
use crate::rt::recorder::Recorder;
use crate::sip::ua::{OutboundInvite, RegId, RegisterParams, UaEvent};
use crate::store::UnixMs;
use crate::store::{CallChange, CallRecord, CallUpdate, Record};

/// The campaign of calls that name none: any time, one attempt.
pub const DEFAULT_CAMPAIGN: &str = "default";

/// What the control API tells the dialer, after the change is committed.
#[derive(Debug, Clone)]
pub enum DialerCommand {
    Queued(Box<CallRecord>),
    Cancelled(String),
    Dnc { number: String, listed: bool },
}

/// A trunk's state as `GET /v1/trunks` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrunkStatus {
    pub name: String,
    pub proxy: String,
    /// `unregistered` (no registration configured), `registering`, `registered`, `failed`.
    pub registration: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Seconds the registrar granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_s: Option<u64>,
    /// `up`, `down` (no answer to OPTIONS) or `unknown`.
    pub keepalive: &'static str,
    pub active_calls: usize,
}

/// Trunk states shared between the drive loop and the API.
#[derive(Debug, Clone, Default)]
pub struct TrunkBoard(Arc<Mutex<BTreeMap<String, TrunkStatus>>>);

impl TrunkBoard {
    pub fn snapshot(&self) -> Vec<TrunkStatus> {
        self.0
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut TrunkStatus)) {
        if let Ok(mut m) = self.0.lock()
            && let Some(t) = m.get_mut(name)
        {
            f(t);
        }
    }

    fn insert(&self, t: TrunkStatus) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(t.name.clone(), t);
        }
    }
}

struct Trunk {
    cfg: TrunkConfig,
    proxy: SocketAddr,
    registrar: Option<SocketAddr>,
    reg: Option<RegId>,
    ring_timeout: Duration,
    keepalive: Duration,
    codecs: Vec<crate::media::Codec>,
    next_ping: Option<Instant>,
    ping: Option<u64>,
}

impl Trunk {
    fn credentials(&self) -> Option<(String, String)> {
        Some((
            self.cfg.username.clone()?,
            self.cfg.password.clone().unwrap_or_default(),
        ))
    }

    /// The credentials for INVITEs: usable only with this trunk's proxy (and realm).
    fn invite_credentials(&self) -> Option<crate::sip::ua::TrunkCredentials> {
        let (username, password) = self.credentials()?;
        Some(crate::sip::ua::TrunkCredentials {
            username,
            password,
            peer: self.proxy,
            realm: self.cfg.realm.clone(),
        })
    }

    fn caller_id(&self) -> String {
        self.cfg
            .caller_id
            .clone()
            .or_else(|| self.cfg.username.clone())
            .unwrap_or_else(|| "ivrflow".to_owned())
    }
}

/// A call the dialer placed, by SIP Call-ID.
struct Placed {
    call_ref: String,
    attempt: u32,
}

pub struct Outbound {
    dialer: Dialer,
    trunks: BTreeMap<String, Trunk>,
    default_trunk: Option<String>,
    campaign_trunks: HashMap<String, String>,
    /// Queued or active calls the dialer knows, by call_ref.
    calls: HashMap<String, CallRecord>,
    placed: HashMap<String, Placed>,
    /// Live calls' counterpart numbers by SIP Call-ID (for an in-call opt-out).
    numbers: HashMap<String, String>,
    pub board: TrunkBoard,
}

fn ms(t: Timestamp) -> UnixMs {
    t.as_millisecond()
}

impl Outbound {
    /// Resolve the trunks' addresses; the dialer starts empty (see [`Outbound::load`]).
    pub async fn new(cfg: &Config) -> anyhow::Result<Outbound> {
        let mut trunks = BTreeMap::new();
        let board = TrunkBoard::default();
        for t in &cfg.trunks {
            let proxy = resolve(&t.proxy).await?;
            let registrar = if t.registers() {
                Some(resolve(t.registrar.as_deref().unwrap_or(&t.proxy)).await?)
            } else {
                None
            };
            board.insert(TrunkStatus {
                name: t.name.clone(),
                proxy: t.proxy.clone(),
                registration: if registrar.is_some() {
                    "registering"
                } else {
                    "unregistered"
                },
                last_status: None,
                expires_s: None,
                keepalive: "unknown",
                active_calls: 0,
            });
            trunks.insert(
                t.name.clone(),
                Trunk {
                    ring_timeout: t.ring_timeout().map_err(anyhow::Error::msg)?,
                    keepalive: t.keepalive().map_err(anyhow::Error::msg)?,
                    codecs: t.codecs().map_err(anyhow::Error::msg)?,
                    cfg: t.clone(),
                    proxy,
                    registrar,
                    reg: None,
                    next_ping: None,
                    ping: None,
                },
            );
        }
        let mut campaigns: Vec<Campaign> = vec![Campaign::immediate(DEFAULT_CAMPAIGN)];
        let mut campaign_trunks = HashMap::new();
        for c in &cfg.campaigns {
            campaigns.push(c.to_campaign().map_err(anyhow::Error::msg)?);
            if let Some(t) = &c.trunk {
                campaign_trunks.insert(c.name.clone(), t.clone());
            }
        }
        let limits = cfg
            .trunks
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    TrunkLimits {
                        max_concurrent: t.max_calls,
                        max_cps: t.max_cps,
                    },
                )
            })
            .collect();
        Ok(Outbound {
            dialer: Dialer::new(campaigns, limits),
            default_trunk: cfg.trunks.first().map(|t| t.name.clone()),
            trunks,
            campaign_trunks,
            calls: HashMap::new(),
            placed: HashMap::new(),
            numbers: HashMap::new(),
            board,
        })
    }

    /// Where bridged transfers to targets without an address go: the first trunk.
    pub fn transfer_route(&self) -> Option<crate::engine::TransferRoute> {
        let t = self.trunks.get(self.default_trunk.as_ref()?)?;
        Some(crate::engine::TransferRoute {
            dest: t.proxy,
            domain: t.cfg.domain().to_owned(),
            from_uri: format!("sip:{}@{}", t.caller_id(), t.cfg.domain()),
            credentials: t.invite_credentials(),
        })
    }

    pub fn has_trunk(&self) -> bool {
        !self.trunks.is_empty()
    }

    /// What the store holds: queued calls and the do-not-call list.
    pub fn load(&mut self, queued: Vec<CallRecord>, dnc: Vec<String>) {
        for n in dnc {
            self.dialer.add_dnc(&n);
        }
        let n = queued.len();
        for c in queued {
            self.enqueue(c);
        }
        if n > 0 {
            tracing::info!(calls = n, "queued calls loaded from the store");
            if !self.has_trunk() {
                tracing::warn!(
                    calls = n,
                    "calls are queued but no trunk is configured (--trunk or trunks:); they wait"
                );
            }
        }
    }

    fn enqueue(&mut self, c: CallRecord) {
        if self.calls.contains_key(&c.id) {
            return;
        }
        let campaign = c
            .dial
            .campaign
            .clone()
            .unwrap_or_else(|| DEFAULT_CAMPAIGN.to_owned());
        let trunk = self
            .campaign_trunks
            .get(&campaign)
            .cloned()
            .or_else(|| self.default_trunk.clone())
            .unwrap_or_default();
        let not_before = c
            .not_before
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        self.dialer.enqueue(QueuedCall {
            id: c.id.clone(),
            to: c.to.clone().unwrap_or_default(),
            campaign,
            trunk,
            tz: c.dial.timezone.clone(),
            not_before,
            attempts: c.dial_attempts,
            consent: c.dial.consent.unwrap_or(false),
        });
        self.calls.insert(c.id.clone(), c);
    }

    /// A change from the control API.
    pub fn command(&mut self, cmd: DialerCommand) {
        match cmd {
            DialerCommand::Queued(c) => self.enqueue(*c),
            DialerCommand::Cancelled(id) => {
                if self.dialer.cancel(&id) {
                    self.calls.remove(&id);
                }
            }
            DialerCommand::Dnc { number, listed } => {
                if listed {
                    self.dialer.add_dnc(&number);
                } else {
                    self.dialer.remove_dnc(&number);
                }
            }
        }
    }

    /// When the drive loop should next call [`Outbound::dial_due`].
    pub fn next_wakeup(&self) -> Option<tokio::time::Instant> {
        if !self.has_trunk() {
            return None;
        }
        let now = Timestamp::now();
        let mut at = self.dialer.next_slot(now).map(|t| {
            // Past due: now.
            let wait = Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO);
            tokio::time::Instant::now() + wait.min(Duration::from_secs(3600))
        });
        for t in self.trunks.values() {
            if let Some(p) = t.next_ping {
                let p = tokio::time::Instant::from_std(p);
                at = Some(at.map_or(p, |a| a.min(p)));
            }
        }
        at
    }

    /// Register every trunk that has credentials and arm the keep-alives.
    pub fn start(&mut self, now: Instant, engine: &mut Engine) {
        for t in self.trunks.values_mut() {
            if let Some(dest) = t.registrar {
                let user = t.cfg.username.clone().unwrap_or_default();
                let domain = t.cfg.domain().to_owned();
                let id = engine.ua_mut().register(
                    now,
                    RegisterParams {
                        registrar: format!("sip:{domain}"),
                        dest,
                        aor: format!("sip:{user}@{domain}"),
                        contact_user: user.clone(),
                        expires: t.cfg.expires().unwrap_or(Duration::from_secs(300)),
                        credentials: t.credentials(),
                    },
                );
                tracing::info!(trunk = %t.cfg.name, registrar = %dest, user = %Pii(&user), "registering");
                t.reg = Some(id);
            }
            if !t.keepalive.is_zero() {
                t.next_ping = Some(now + t.keepalive);
            }
        }
    }

    /// Keep-alives and due calls.
    pub fn dial_due(
        &mut self,
        now: Instant,
        engine: &mut Engine,
        ports: &mut dyn MediaPorts,
        recorder: &mut Recorder,
        records: &mut Vec<Record>,
    ) {
        for t in self.trunks.values_mut() {
            if t.next_ping.is_some_and(|p| p <= now) {
                if t.ping.is_none() {
                    let uri = format!("sip:{}", t.cfg.domain());
                    t.ping = Some(engine.ua_mut().ping(now, t.proxy, &uri));
                }
                t.next_ping = Some(now + t.keepalive);
            }
        }
        if !self.has_trunk() {
            return;
        }
        let wall = Timestamp::now();
        tracing::trace!(
            queued = self.dialer.queued(),
            active = self.dialer.active(),
            "dialer wake-up"
        );
        while let Some(action) = self.dialer.poll_dial(wall) {
            match action {
                DialAction::Dial(q) => self.place(now, wall, q, engine, ports, recorder, records),
                DialAction::Refuse(q, why) => {
                    let why = match why {
                        Refusal::DoNotCall => "the number is on the do-not-call list".to_owned(),
                        Refusal::NoConsent => "the campaign requires consent".to_owned(),
                        Refusal::UnknownCampaign(c) => format!("unknown campaign {c:?}"),
                        Refusal::UnknownTrunk(t) => format!("unknown trunk {t:?}"),
                        Refusal::BadTimeZone(tz) => format!("unknown time zone {tz:?}"),
                    };
                    if let Some(c) = self.calls.remove(&q.id) {
                        tracing::info!(call_ref = %c.id, to = %Pii(&q.to), %why, "queued call will not be dialled");
                        records.push(recorder.refused(&c, &why, ms(wall)));
                    }
                }
            }
        }
        self.publish_active();
    }

    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        now: Instant,
        wall: Timestamp,
        q: QueuedCall,
        engine: &mut Engine,
        ports: &mut dyn MediaPorts,
        recorder: &mut Recorder,
        records: &mut Vec<Record>,
    ) {
        let (Some(c), Some(t)) = (self.calls.get(&q.id), self.trunks.get(&q.trunk)) else {
            self.dialer
                .handle_result(wall, &q.id, Disposition::Failed(0));
            return;
        };
        let domain = t.cfg.domain();
        let from = t.caller_id();
        let out = OutboundCall {
            call_ref: c.id.clone(),
            scenario: c.scenario.clone(),
            to: q.to.clone(),
            from: from.clone(),
            variables: c.variables.clone(),
            invite: OutboundInvite {
                target: format!("sip:{}@{domain}", q.to),
                dest: t.proxy,
                from_uri: format!("sip:{from}@{domain}"),
                from_display: t.cfg.display_name.clone(),
                sdp_offer: String::new(),
                headers: Vec::new(),
                credentials: t.invite_credentials(),
            },
            ring_timeout: t.ring_timeout,
            codecs: t.codecs.clone(),
        };
        let attempt = q.attempts + 1;
        match engine.place_call(now, out, ports) {
            Ok(call) => {
                let sip_call_id = engine.ua().call_id(call).unwrap_or("").to_owned();
                records.push(Record {
                    call_id: q.id.clone(),
                    at: ms(wall),
                    change: CallChange::Update(CallUpdate {
                        dial_attempts: Some(attempt),
                        ..CallUpdate::default()
                    }),
                    event: None,
                });
                self.placed.insert(
                    sip_call_id,
                    Placed {
                        call_ref: q.id,
                        attempt,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(call_ref = %q.id, error = %e, "cannot place the call");
                let (reason, code) = match e {
                    PlaceError::AtCapacity(_) => (FailReason::Rejected, 503),
                    PlaceError::UnknownScenario(_) | PlaceError::NoMediaPort(_) => {
                        (FailReason::Error, 500)
                    }
                };
                let origin = Box::new(CallOrigin {
                    sip_call_id: String::new(),
                    call_ref: Some(c.id.clone()),
                    scenario: c.scenario.clone(),
                    direction: "outbound",
                    from,
                    to: q.to.clone(),
                    variables: c.variables.clone(),
                });
                let ev = EngineEvent::CallFailed {
                    call: crate::sip::ua::CallHandle(u64::MAX),
                    origin,
                    reason,
                    sip_code: Some(code),
                    detail: e.to_string(),
                    at: SystemTime::now(),
                };
                let next = self
                    .dialer
                    .handle_result(wall, &q.id, Disposition::Failed(code));
                self.after_attempt(&q.id, ev, attempt, next, recorder, records);
            }
        }
    }

    /// Record a failed attempt by what the dialer decided.
    fn after_attempt(
        &mut self,
        call_ref: &str,
        ev: EngineEvent,
        attempt: u32,
        next: Next,
        recorder: &mut Recorder,
        records: &mut Vec<Record>,
    ) {
        let retry_at = match next {
            Next::RetryAt(t) => Some(ms(t)),
            Next::Done | Next::GaveUp { .. } => {
                self.calls.remove(call_ref);
                None
            }
        };
        if let (Some(at), Some(c)) = (retry_at, self.calls.get_mut(call_ref)) {
            c.not_before = Some(at);
            c.dial_attempts = attempt;
        }
        tracing::info!(%call_ref, attempt, ?retry_at, "outbound attempt failed");
        records.extend(recorder.failed_attempt(ev, attempt, retry_at));
    }

    /// Every engine event passes here on its way to the recorder: outbound results go
    /// through the dialer's retry policy first.
    pub fn on_event(
        &mut self,
        ev: EngineEvent,
        recorder: &mut Recorder,
        records: &mut Vec<Record>,
    ) {
        match ev {
            EngineEvent::CallStarted { ref origin, .. } => {
                let number = if origin.direction == "outbound" {
                    &origin.to
                } else {
                    &origin.from
                };
                self.numbers
                    .insert(origin.sip_call_id.clone(), number.clone());
                records.extend(recorder.lifecycle(ev));
            }
            EngineEvent::CallFailed {
                ref origin,
                reason,
                sip_code,
                ..
            } => {
                self.numbers.remove(&origin.sip_call_id);
                match self.placed.remove(&origin.sip_call_id) {
                    Some(p) => {
                        let disposition = match reason {
                            FailReason::Busy => Disposition::Busy,
                            FailReason::NoAnswer => Disposition::NoAnswer,
                            FailReason::Rejected => Disposition::Rejected,
                            _ => Disposition::Failed(sip_code.unwrap_or(0)),
                        };
                        let next =
                            self.dialer
                                .handle_result(Timestamp::now(), &p.call_ref, disposition);
                        self.after_attempt(&p.call_ref, ev, p.attempt, next, recorder, records);
                    }
                    None => records.extend(recorder.lifecycle(ev)),
                }
                self.publish_active();
            }
            EngineEvent::CallCompleted(ref rec) => {
                self.numbers.remove(&rec.call_id);
                if let Some(p) = self.placed.remove(&rec.call_id) {
                    self.dialer
                        .handle_result(Timestamp::now(), &p.call_ref, Disposition::Answered);
                    self.calls.remove(&p.call_ref);
                    self.publish_active();
                }
                records.extend(recorder.lifecycle(ev));
            }
            EngineEvent::Trunk(ua) => self.trunk_event(ua),
            other => records.extend(recorder.lifecycle(other)),
        }
    }

    /// The caller asked not to be called again (a scenario's `dnc.requested`): list the
    /// number for the dialer now and in the store. Returns the number to persist.
    pub fn opt_out(&mut self, sip_call_id: &str) -> Option<String> {
        let number = crate::dialer::normalize_number(self.numbers.get(sip_call_id)?);
        if number.is_empty() {
            return None;
        }
        self.dialer.add_dnc(&number);
        Some(number)
    }

    fn trunk_event(&mut self, ev: UaEvent) {
        let by_reg = |trunks: &BTreeMap<String, Trunk>, id: RegId| {
            trunks
                .values()
                .find(|t| t.reg == Some(id))
                .map(|t| t.cfg.name.clone())
        };
        match ev {
            UaEvent::Registered { id, expires } => {
                if let Some(name) = by_reg(&self.trunks, id) {
                    tracing::info!(trunk = %name, expires_s = expires.as_secs(), "registered");
                    self.board.update(&name, |t| {
                        t.registration = "registered";
                        t.last_status = Some(200);
                        t.expires_s = Some(expires.as_secs());
                    });
                }
            }
            UaEvent::RegistrationFailed { id, status, .. } => {
                if let Some(name) = by_reg(&self.trunks, id) {
                    tracing::warn!(trunk = %name, ?status, "registration failed; retrying with backoff");
                    self.board.update(&name, |t| {
                        t.registration = "failed";
                        t.last_status = status;
                    });
                }
            }
            UaEvent::Unregistered { id } => {
                if let Some(name) = by_reg(&self.trunks, id) {
                    self.board
                        .update(&name, |t| t.registration = "unregistered");
                }
            }
            UaEvent::PingResult { id, status } => {
                let Some(t) = self.trunks.values_mut().find(|t| t.ping == Some(id)) else {
                    return;
                };
                t.ping = None;
                let up = status.is_some();
                if !up {
                    tracing::warn!(trunk = %t.cfg.name, "trunk does not answer OPTIONS");
                }
                self.board.update(&t.cfg.name, |b| {
                    b.keepalive = if up { "up" } else { "down" }
                });
            }
            _ => {}
        }
    }

    fn publish_active(&self) {
        let mut per_trunk: HashMap<&str, usize> = HashMap::new();
        for p in self.placed.values() {
            if let Some(c) = self.calls.get(&p.call_ref) {
                let campaign = c.dial.campaign.as_deref().unwrap_or(DEFAULT_CAMPAIGN);
                let trunk = self
                    .campaign_trunks
                    .get(campaign)
                    .or(self.default_trunk.as_ref());
                if let Some(t) = trunk {
                    *per_trunk.entry(t.as_str()).or_default() += 1;
                }
            }
        }
        for name in self.trunks.keys() {
            let n = per_trunk.get(name.as_str()).copied().unwrap_or(0);
            self.board.update(name, |t| t.active_calls = n);
        }
    }
}

/// Resolve `host:port` (a name or an address) to one socket address.
async fn resolve(hostport: &str) -> anyhow::Result<SocketAddr> {
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:5060")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| anyhow::anyhow!("resolving the trunk address {hostport}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("the trunk address {hostport} resolves to nothing"))
}
