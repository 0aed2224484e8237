//! Outbound calling inside the node: the trunks (registration, OPTIONS keep-alive, where
//! INVITEs go and with which credentials) and the glue between the [`Dialer`] (which calls
//! are due, under which rules) and the engine (placing them).
//!
//! The node feeds it the queued calls and the do-not-call list (from the store at start,
//! from the API afterwards), asks it for due calls at [`Outbound::poll_timeout`], and passes
//! every engine event through [`Outbound::on_event`]: an outbound call's result goes
//! through its campaign's retry policy before the recorder turns it into store records (a
//! retried call goes back to `queued` with its new time).
//!
//! Sans-IO: addresses come resolved, time comes in as `now` (monotonic) and `wall`
//! (for calling windows), nothing here touches a socket or the clock.
//!
//! Not here: the rules themselves (`crate::dialer`, tested on a virtual clock) or SIP
//! (`crate::sip::ua`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use serde::Serialize;

use super::ids::Ids;
use super::records::Recorder;
use crate::config::TrunkConfig;
use crate::crm::events::FailReason;
use crate::dialer::{
    Campaign, DialAction, Dialer, Disposition, Next, QueuedCall, Refusal, TrunkLimits,
};
use crate::engine::{CallOrigin, Engine, EngineEvent, OutboundCall, PlaceError};
use crate::pii::Pii;
use crate::sip::ua::{CallHandle, OutboundInvite, RegId, RegisterParams, UaEvent};
use crate::store::UnixMs;
use crate::store::{CallChange, CallRecord, CallUpdate, Record};

/// The campaign of calls that name none: any time, one attempt.
pub const DEFAULT_CAMPAIGN: &str = "default";

/// A trunk with its addresses resolved (the runtime resolves names before the node starts).
#[derive(Debug, Clone)]
pub struct TrunkSetup {
    pub cfg: TrunkConfig,
    pub proxy: SocketAddr,
    /// Where to REGISTER, when the trunk registers.
    pub registrar: Option<SocketAddr>,
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

/// A call the dialer placed.
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
    placed: HashMap<CallHandle, Placed>,
    /// Live calls' counterpart numbers (for an in-call opt-out).
    numbers: HashMap<CallHandle, String>,
    status: BTreeMap<String, TrunkStatus>,
    /// The trunk status changed since [`Outbound::take_status`] was last called.
    status_changed: bool,
    /// Calls come claimed from a shared store: one that waits (a retry, its calling
    /// window) goes back to the store with its time instead of staying here.
    claims: bool,
}

fn ms(t: Timestamp) -> UnixMs {
    t.as_millisecond()
}

/// `SystemTime` → jiff's timestamp (the epoch before 1970).
pub fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from_millisecond(crate::crm::events::unix_ms(t)).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Outbound {
    /// The trunks and campaigns; the dialer starts empty (queued calls come as commands).
    pub fn new(
        trunks: &[TrunkSetup],
        campaigns: &[Campaign],
        campaign_trunks: HashMap<String, String>,
    ) -> Outbound {
        let mut by_name = BTreeMap::new();
        let mut status = BTreeMap::new();
        for t in trunks {
            status.insert(
                t.cfg.name.clone(),
                TrunkStatus {
                    name: t.cfg.name.clone(),
                    proxy: t.cfg.proxy.clone(),
                    registration: if t.registrar.is_some() {
                        "registering"
                    } else {
                        "unregistered"
                    },
                    last_status: None,
                    expires_s: None,
                    keepalive: "unknown",
                    active_calls: 0,
                },
            );
            by_name.insert(
                t.cfg.name.clone(),
                Trunk {
                    ring_timeout: t.cfg.ring_timeout().unwrap_or(Duration::from_secs(30)),
                    keepalive: t.cfg.keepalive().unwrap_or(Duration::from_secs(30)),
                    codecs: t.cfg.codecs().unwrap_or_default(),
                    cfg: t.cfg.clone(),
                    proxy: t.proxy,
                    registrar: t.registrar,
                    reg: None,
                    next_ping: None,
                    ping: None,
                },
            );
        }
        let mut all = vec![Campaign::immediate(DEFAULT_CAMPAIGN)];
        all.extend(campaigns.iter().cloned());
        let limits = trunks
            .iter()
            .map(|t| {
                (
                    t.cfg.name.clone(),
                    TrunkLimits {
                        max_concurrent: t.cfg.max_calls,
                        max_cps: t.cfg.max_cps,
                    },
                )
            })
            .collect();
        Outbound {
            dialer: Dialer::new(all, limits),
            default_trunk: trunks.first().map(|t| t.cfg.name.clone()),
            trunks: by_name,
            campaign_trunks,
            calls: HashMap::new(),
            placed: HashMap::new(),
            numbers: HashMap::new(),
            status,
            status_changed: true,
            claims: false,
        }
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

    /// The trunks' state, when it changed since the last call.
    pub fn take_status(&mut self) -> Option<Vec<TrunkStatus>> {
        std::mem::take(&mut self.status_changed).then(|| self.status.values().cloned().collect())
    }

    fn update_status(&mut self, name: &str, f: impl FnOnce(&mut TrunkStatus)) {
        if let Some(t) = self.status.get_mut(name) {
            let before = t.clone();
            f(t);
            self.status_changed |= *t != before;
        }
    }

    /// Claimed calls (see [`Outbound::claims`]): whatever is not dialled now is handed
    /// back to the store, so no claim is held longer than it takes to dial.
    pub fn use_claims(&mut self) {
        self.claims = true;
        self.dialer.release_deferred(true);
    }

    /// Queue a call for the dialer (claimed from the store, or — without claims — loaded at
    /// start and told by the API).
    pub fn enqueue(&mut self, c: CallRecord) {
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

    /// A queued call was cancelled through the API.
    pub fn cancel(&mut self, call_ref: &str) {
        if self.dialer.cancel(call_ref) {
            self.calls.remove(call_ref);
        }
    }

    /// A number was put on or taken off the do-not-call list.
    pub fn set_dnc(&mut self, number: &str, listed: bool) {
        if listed {
            self.dialer.add_dnc(number);
        } else {
            self.dialer.remove_dnc(number);
        }
    }

    /// Queued calls the dialer knows.
    pub fn queued(&self) -> usize {
        self.dialer.queued()
    }

    /// When [`Outbound::handle_timeout`] is next needed: a due call or a keep-alive.
    pub fn poll_timeout(&self, now: Instant, wall: SystemTime) -> Option<Instant> {
        let mut at = None;
        if self.has_trunk() {
            let w = timestamp(wall);
            at = self.dialer.next_slot(w).map(|t| {
                let wait = Duration::try_from(t.duration_since(w)).unwrap_or(Duration::ZERO);
                now + wait.min(Duration::from_secs(3600))
            });
        }
        for t in self.trunks.values() {
            if let Some(p) = t.next_ping {
                at = Some(at.map_or(p, |a: Instant| a.min(p)));
            }
        }
        at
    }

    /// Whether [`Outbound::handle_timeout`] has work at `now`: a queued call due (it may
    /// still wait for a trunk's limits) or a keep-alive.
    pub fn is_due(&self, now: Instant, wall: SystemTime) -> bool {
        let w = timestamp(wall);
        (self.has_trunk() && self.dialer.poll_timeout().is_some_and(|t| t <= w))
            || self
                .trunks
                .values()
                .any(|t| t.next_ping.is_some_and(|p| p <= now))
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

    /// Keep-alives and due calls; records for what happened go to `records`.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        wall: SystemTime,
        engine: &mut Engine,
        recorder: &mut Recorder,
        ids: &mut Ids,
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
        let w = timestamp(wall);
        while let Some(action) = self.dialer.poll_dial(w) {
            match action {
                DialAction::Dial(q) => self.place(now, w, q, engine, recorder, ids, records),
                DialAction::Defer(q, at) => {
                    if let Some(c) = self.calls.remove(&q.id) {
                        tracing::debug!(call_ref = %c.id, not_before = %at, "outside its calling window; handed back to the store");
                        records.push(recorder.deferred(&c, ms(at), ms(w)));
                    }
                }
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
                        records.push(recorder.refused(ids, &c, &why, ms(w)));
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
        recorder: &mut Recorder,
        ids: &mut Ids,
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
        match engine.place_call(now, out) {
            Ok(call) => {
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
                    call,
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
                    call: CallHandle(u64::MAX),
                    origin,
                    reason,
                    sip_code: Some(code),
                    detail: e.to_string(),
                    at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms(wall).max(0) as u64),
                };
                let next = self
                    .dialer
                    .handle_result(wall, &q.id, Disposition::Failed(code));
                self.after_attempt(&q.id, ev, attempt, next, recorder, ids, records);
            }
        }
    }

    /// Record a failed attempt by what the dialer decided.
    #[allow(clippy::too_many_arguments)]
    fn after_attempt(
        &mut self,
        call_ref: &str,
        ev: EngineEvent,
        attempt: u32,
        next: Next,
        recorder: &mut Recorder,
        ids: &mut Ids,
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
        if self.claims && retry_at.is_some() {
            // The retry's record ends the claim: whichever node claims it at that time
            // dials it; this one forgets it.
            self.dialer.cancel(call_ref);
            self.calls.remove(call_ref);
        }
        tracing::info!(%call_ref, attempt, ?retry_at, "outbound attempt failed");
        records.extend(recorder.failed_attempt(ids, ev, attempt, retry_at));
    }

    /// Every engine event passes here on its way to the recorder: outbound results go
    /// through the dialer's retry policy first.
    pub fn on_event(
        &mut self,
        ev: EngineEvent,
        wall: SystemTime,
        recorder: &mut Recorder,
        ids: &mut Ids,
        records: &mut Vec<Record>,
    ) {
        let w = timestamp(wall);
        match ev {
            EngineEvent::CallStarted {
                call, ref origin, ..
            } => {
                let number = if origin.direction == "outbound" {
                    &origin.to
                } else {
                    &origin.from
                };
                self.numbers.insert(call, number.clone());
                records.extend(recorder.lifecycle(ids, ev));
            }
            EngineEvent::CallFailed {
                call,
                reason,
                sip_code,
                ..
            } => {
                self.numbers.remove(&call);
                match self.placed.remove(&call) {
                    Some(p) => {
                        let disposition = match reason {
                            FailReason::Busy => Disposition::Busy,
                            FailReason::NoAnswer => Disposition::NoAnswer,
                            FailReason::Rejected => Disposition::Rejected,
                            _ => Disposition::Failed(sip_code.unwrap_or(0)),
                        };
                        let next = self.dialer.handle_result(w, &p.call_ref, disposition);
                        self.after_attempt(
                            &p.call_ref,
                            ev,
                            p.attempt,
                            next,
                            recorder,
                            ids,
                            records,
                        );
                    }
                    None => records.extend(recorder.lifecycle(ids, ev)),
                }
                self.publish_active();
            }
            EngineEvent::CallCompleted { call, .. } => {
                self.numbers.remove(&call);
                if let Some(p) = self.placed.remove(&call) {
                    self.dialer
                        .handle_result(w, &p.call_ref, Disposition::Answered);
                    self.calls.remove(&p.call_ref);
                    self.publish_active();
                }
                records.extend(recorder.lifecycle(ids, ev));
            }
            EngineEvent::Trunk(ua) => self.trunk_event(ua),
            other => records.extend(recorder.lifecycle(ids, other)),
        }
    }

    /// The caller asked not to be called again (a scenario's `dnc.requested`): list the
    /// number for the dialer now. Returns the number to persist.
    pub fn opt_out(&mut self, call: CallHandle) -> Option<String> {
        let number = crate::dialer::normalize_number(self.numbers.get(&call)?);
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
                    self.update_status(&name, |t| {
                        t.registration = "registered";
                        t.last_status = Some(200);
                        t.expires_s = Some(expires.as_secs());
                    });
                }
            }
            UaEvent::RegistrationFailed { id, status, .. } => {
                if let Some(name) = by_reg(&self.trunks, id) {
                    tracing::warn!(trunk = %name, ?status, "registration failed; retrying with backoff");
                    self.update_status(&name, |t| {
                        t.registration = "failed";
                        t.last_status = status;
                    });
                }
            }
            UaEvent::Unregistered { id } => {
                if let Some(name) = by_reg(&self.trunks, id) {
                    self.update_status(&name, |t| t.registration = "unregistered");
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
                let name = t.cfg.name.clone();
                self.update_status(&name, |b| b.keepalive = if up { "up" } else { "down" });
            }
            _ => {}
        }
    }

    fn publish_active(&mut self) {
        let mut per_trunk: HashMap<String, usize> = HashMap::new();
        for p in self.placed.values() {
            if let Some(c) = self.calls.get(&p.call_ref) {
                let campaign = c.dial.campaign.as_deref().unwrap_or(DEFAULT_CAMPAIGN);
                let trunk = self
                    .campaign_trunks
                    .get(campaign)
                    .or(self.default_trunk.as_ref());
                if let Some(t) = trunk {
                    *per_trunk.entry(t.clone()).or_default() += 1;
                }
            }
        }
        let names: Vec<String> = self.trunks.keys().cloned().collect();
        for name in names {
            let n = per_trunk.get(&name).copied().unwrap_or(0);
            self.update_status(&name, |t| t.active_calls = n);
        }
    }
}
