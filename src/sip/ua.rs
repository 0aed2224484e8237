//! The SIP user agent core: transactions (RFC 3261 §17, RFC 6026) and dialogs (§12) for a
//! voice robot, as one sans-IO state machine.
//!
//! ```text
//!  datagram ──handle_datagram(now, src, bytes)──▶ ┌───────────┐ ──poll_transmit()──▶ datagrams
//!  TU cmds  ──ring/answer/reject/hangup(now, …)─▶ │ UserAgent │ ──poll_event()─────▶ UaEvent
//!  timers   ──handle_timeout(now)───────────────▶ └───────────┘ ──poll_timeout()───▶ deadline
//! ```
//!
//! INVITE server transaction (RFC 3261 §17.2.1 with RFC 6026's Accepted state):
//! ```text
//!            INVITE                    2xx from TU
//!   ──────▶ Proceeding ────────────────────────────▶ Accepted ──Timer L──▶ gone
//!               │ 300-699 from TU                       (absorbs INVITE retransmissions;
//!               ▼                                        the dialog retransmits the 2xx)
//!           Completed ──ACK──▶ Confirmed ──Timer I──▶ gone
//!               │ Timer G: resend final; Timer H: give up
//! ```
//! Non-INVITE server transactions: Trying/Proceeding → Completed (Timer J) → gone, resending
//! the last response on each retransmitted request. Non-INVITE client transactions (BYE, …):
//! Timer E retransmits, Timer F gives up, Timer K lingers.
//! The UAS dialog retransmits its 2xx (T1 doubling to T2) until the ACK arrives, and gives
//! up after 64·T1, ending the call with a BYE (§13.3.1.4).
//!
//! All timers are absolute deadlines in one heap; stale entries make harmless wake-ups.
//! Transport is UDP. Responses go back to the request's source address, and in-dialog
//! requests to the address the INVITE came from (symmetric signalling, RFC 3581 style), so
//! peers behind NAT work and a forged Via host can never redirect our traffic.
//!
//! What it deliberately does not do: proxying, forking, TCP/TLS, DNS (RFC 3263), PRACK,
//! session timers, and outbound INVITE/REGISTER (the trunk issue adds client INVITE
//! transactions here). Scenario routing is the TU's business: it rejects with 404.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::message::{
    self, Message, Method, Request, Response, parse_cseq, parse_name_addr, parse_uri, parse_via,
    response_skeleton, validate_request, validate_response,
};

/// The magic cookie that marks RFC 3261 branch parameters (§8.1.1.7).
const MAGIC_COOKIE: &str = "z9hG4bK";
/// Methods this UA implements (answers with `Allow`).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO";
/// Option tags we support: none yet (no 100rel, no timer).
const SUPPORTED_EXTENSIONS: &[&str] = &[];

/// RFC 3261 timer base values (§17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy)]
pub struct TimerValues {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerValues {
    fn default() -> Self {
        TimerValues {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Address the SIP socket is bound to.
    pub local_addr: SocketAddr,
    /// Host (and port) to advertise in Via and Contact when it differs from `local_addr`
    /// (a public address behind NAT).
    pub advertised: Option<String>,
    pub user_agent: String,
    pub timers: TimerValues,
}

impl UaConfig {
    fn host_port(&self) -> String {
        self.advertised
            .clone()
            .unwrap_or_else(|| self.local_addr.to_string())
    }
}

/// Our handle for one call leg; stable for the life of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

impl fmt::Display for CallHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub payload: Vec<u8>,
}

/// Why a call leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// Our BYE completed (or timed out).
    LocalBye,
    /// The peer cancelled before we answered.
    Cancelled,
    /// We answered, but the ACK never came (§13.3.1.4).
    AckTimeout,
    /// We rejected the INVITE with a final non-2xx response.
    Rejected(u16),
}

/// What the UA tells the layer above.
#[derive(Debug, Clone)]
pub enum UaEvent {
    /// A new INVITE passed validation; answer with [`UserAgent::answer`] or
    /// [`UserAgent::reject`]. A 100 Trying has already been sent.
    IncomingCall {
        call: CallHandle,
        request: Box<Request>,
        source: SocketAddr,
    },
    /// The ACK for our 2xx arrived.
    Confirmed { call: CallHandle },
    /// An in-dialog INFO (e.g. application/dtmf-relay); already answered 200.
    Info {
        call: CallHandle,
        request: Box<Request>,
    },
    /// The call leg is over; nothing more will be sent or reported for it.
    Ended { call: CallHandle, reason: EndReason },
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UaStats {
    pub unparseable_dropped: u64,
    pub invalid_rejected: u64,
    pub responses_dropped: u64,
    pub retransmissions_absorbed: u64,
}

/// Transaction key (§17.2.3): the RFC 3261 branch form, or the RFC 2543 fallback.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TxKey {
    Branch {
        branch: String,
        sent_by: String,
        method: Method,
    },
    Legacy {
        call_id: String,
        from_tag: String,
        cseq: u32,
        sent_by: String,
        method: Method,
    },
}

impl TxKey {
    /// The key of `req` as a member of the transaction with `method` (ACK matches INVITE).
    fn of(req: &Request, method: Method) -> Option<TxKey> {
        let via = parse_via(req.headers.get("Via")?).ok()?;
        let sent_by = via.sent_by().to_ascii_lowercase();
        match via.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) => Some(TxKey::Branch {
                branch: b.to_owned(),
                sent_by,
                method,
            }),
            _ => {
                let from_tag = req
                    .headers
                    .get("From")
                    .and_then(|f| parse_name_addr(f).ok())
                    .and_then(|n| n.tag().map(str::to_owned))
                    .unwrap_or_default();
                let cseq = parse_cseq(req.headers.get("CSeq")?).ok()?.seq;
                Some(TxKey::Legacy {
                    call_id: req.headers.get("Call-ID")?.to_owned(),
                    from_tag,
                    cseq,
                    sent_by,
                    method,
                })
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug)]
struct ServerTxn {
    is_invite: bool,
    /// Call-ID and CSeq of the request: a peer that reuses a branch for a different request
    /// (RFC 4475's messages do) gets a new transaction, not the old response.
    fingerprint: (String, String),
    dest: SocketAddr,
    state: ServerState,
    last_response: Option<Vec<u8>>,
    /// Timer G (INVITE, non-2xx final): next retransmission and current interval.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer H: give up waiting for the ACK.
    give_up_at: Option<Instant>,
    /// Timers I, J, L: forget the transaction.
    expire_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Trying,
    Completed,
}

#[derive(Debug)]
struct ClientTxn {
    call: Option<CallHandle>,
    method: Method,
    dest: SocketAddr,
    request: Vec<u8>,
    state: ClientState,
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer F.
    timeout_at: Option<Instant>,
    /// Timer K.
    expire_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// INVITE received, no final response yet.
    Early,
    /// 2xx sent, waiting for the ACK.
    Answered,
    Confirmed,
    /// Our BYE is in flight.
    Terminating,
}

#[derive(Debug)]
struct Leg {
    call_id: String,
    local_tag: String,
    invite: Request,
    invite_key: TxKey,
    peer: SocketAddr,
    /// The remote target from the INVITE's Contact (§12.1.1), used as BYE Request-URI.
    remote_target: String,
    /// Record-Route values in order (§12.1.1: the UAS keeps them as they are).
    route_set: Vec<String>,
    /// Our To header value, with our tag: the From of requests we send.
    local_party: String,
    /// The peer's From header value: the To of requests we send.
    remote_party: String,
    local_cseq: u32,
    remote_cseq: u32,
    state: LegState,
    /// 2xx retransmission until ACK (§13.3.1.4).
    ok_bytes: Option<Vec<u8>>,
    ok_retransmit_at: Option<Instant>,
    ok_interval: Duration,
    ok_give_up_at: Option<Instant>,
    /// Why our BYE was sent, reported when it completes.
    bye_reason: EndReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerRef {
    Server(TxKey),
    Client(String),
    Leg(CallHandle),
}

/// The user agent. One per SIP socket.
pub struct UserAgent {
    cfg: UaConfig,
    rng: StdRng,
    servers: HashMap<TxKey, ServerTxn>,
    clients: HashMap<String, ClientTxn>,
    legs: HashMap<CallHandle, Leg>,
    /// (Call-ID, our tag) → call. Our tags are unique, so this identifies the dialog.
    dialogs: HashMap<(String, String), CallHandle>,
    next_call: u64,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_refs: HashMap<u64, TimerRef>,
    next_timer: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<UaEvent>,
    stats: UaStats,
}

impl UserAgent {
    /// `seed` makes tags, branches and Call-IDs reproducible in tests; production passes a
    /// seed from the OS.
    pub fn new(cfg: UaConfig, seed: u64) -> UserAgent {
        UserAgent {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            servers: HashMap::new(),
            clients: HashMap::new(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            next_call: 1,
            timers: BinaryHeap::new(),
            timer_refs: HashMap::new(),
            next_timer: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: UaStats::default(),
        }
    }

    pub fn stats(&self) -> UaStats {
        self.stats
    }

    /// Number of call legs alive (any state).
    pub fn active_calls(&self) -> usize {
        self.legs.len()
    }

    /// The SIP Call-ID of a call, for logs and CRM records.
    pub fn call_id(&self, call: CallHandle) -> Option<&str> {
        self.legs.get(&call).map(|l| l.call_id.as_str())
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`UserAgent::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    fn random_token(&mut self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes * 2);
        for _ in 0..bytes.div_ceil(8) {
            s.push_str(&format!("{:016x}", self.rng.next_u64()));
        }
        s.truncate(bytes * 2);
        s
    }

    fn schedule(&mut self, at: Instant, what: TimerRef) {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timer_refs.insert(id, what);
        self.timers.push(Reverse((at, id)));
    }

    fn send(&mut self, dest: SocketAddr, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { dest, payload });
    }

    // ───────────────────────────── input: datagrams ─────────────────────────────

    /// Feed one received UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        // Keep-alive pings (RFC 5626 §3.5.1 CRLF) are not messages.
        if datagram.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            return;
        }
        match message::parse(datagram) {
            Ok(Message::Request(req)) => self.handle_request(now, source, req),
            Ok(Message::Response(resp)) => self.handle_response(now, source, resp),
            Err(e) => {
                self.stats.unparseable_dropped += 1;
                tracing::debug!(%source, error = %e, "dropped unparseable SIP datagram");
            }
        }
    }

    fn handle_request(&mut self, now: Instant, source: SocketAddr, req: Request) {
        if let Err(rej) = validate_request(&req) {
            self.stats.invalid_rejected += 1;
            tracing::debug!(%source, status = rej.status, reason = %rej.reason, call_id = req.headers.get("Call-ID").unwrap_or("-"), "rejected invalid request");
            if req.method != Method::Ack {
                let mut resp = self.response_to(&req, source, rej.status, &rej.reason, None);
                for (n, v) in rej.headers {
                    resp.headers.push(&n, v);
                }
                self.send(source, resp.to_bytes());
            }
            return;
        }
        if req.method == Method::Ack {
            self.handle_ack(now, source, req);
            return;
        }
        // Retransmission of a request we already have a transaction for?
        let key = TxKey::of(&req, req.method.clone());
        if let Some(key) = &key
            && self
                .servers
                .get(key)
                .is_some_and(|tx| tx.fingerprint != fingerprint(&req))
        {
            tracing::debug!(%source, "branch reused for a different request; new transaction");
            self.servers.remove(key);
        }
        if let Some(key) = key
            && let Some(tx) = self.servers.get(&key)
        {
            self.stats.retransmissions_absorbed += 1;
            let resend = match tx.state {
                ServerState::Accepted | ServerState::Confirmed => None,
                _ => tx.last_response.clone(),
            };
            if let Some(bytes) = resend {
                let dest = tx.dest;
                self.send(dest, bytes);
            }
            return;
        }
        if req.method == Method::Cancel {
            self.handle_cancel(now, source, req);
            return;
        }
        let to_tag = req
            .headers
            .get("To")
            .and_then(|t| parse_name_addr(t).ok())
            .and_then(|n| n.tag().map(str::to_owned));
        if let Some(tag) = to_tag {
            self.handle_in_dialog(now, source, req, tag);
            return;
        }
        // Out of dialog. The Request-URI must be a scheme we can serve (§8.2.2.1).
        let scheme_ok = parse_uri(&req.uri)
            .map(|u| matches!(u.scheme.as_str(), "sip" | "sips" | "tel"))
            .unwrap_or(false);
        if !scheme_ok {
            self.respond_once(now, source, &req, 416, "Unsupported URI Scheme", &[]);
            return;
        }
        match req.method {
            Method::Invite => self.handle_invite(now, source, req),
            Method::Options => {
                if self.reject_unsupported_require(now, source, &req) {
                    return;
                }
                let extra = [
                    ("Allow", ALLOW.to_owned()),
                    ("Accept", "application/sdp".to_owned()),
                ];
                self.respond_once(now, source, &req, 200, "OK", &extra);
            }
            Method::Bye | Method::Info => self.respond_once(
                now,
                source,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                &[],
            ),
            Method::Other(_) => {
                let extra = [("Allow", ALLOW.to_owned())];
                self.respond_once(now, source, &req, 501, "Not Implemented", &extra);
            }
            _ => {
                let extra = [("Allow", ALLOW.to_owned())];
                self.respond_once(now, source, &req, 405, "Method Not Allowed", &extra);
            }
        }
    }

    /// §8.2.2.3: a Require naming an extension we lack gets 420 with Unsupported.
    fn reject_unsupported_require(
        &mut self,
        now: Instant,
        source: SocketAddr,
        req: &Request,
    ) -> bool {
        let unsupported: Vec<String> = req
            .headers
            .get_all("Require")
            .map(str::trim)
            .filter(|t| {
                !t.is_empty()
                    && !SUPPORTED_EXTENSIONS
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(t))
            })
            .map(str::to_owned)
            .collect();
        if unsupported.is_empty() {
            return false;
        }
        let extra = [("Unsupported", unsupported.join(", "))];
        self.respond_once(now, source, req, 420, "Bad Extension", &extra);
        true
    }

    fn handle_invite(&mut self, now: Instant, source: SocketAddr, req: Request) {
        if self.reject_unsupported_require(now, source, &req) {
            return;
        }
        // §8.2.3: a body we cannot read gets 415 with Accept.
        let ctype = req.headers.get("Content-Type").map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if !req.body.is_empty() && ctype.as_deref() != Some("application/sdp") {
            let extra = [("Accept", "application/sdp".to_owned())];
            self.respond_once(now, source, &req, 415, "Unsupported Media Type", &extra);
            return;
        }
        // §8.2.2.2 / RFC 4475 §3.3.15: if the peer accepts no body type we can send, 406.
        let accepts: Vec<String> = req
            .headers
            .get_all("Accept")
            .map(|a| {
                a.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|a| !a.is_empty())
            .collect();
        if !accepts.is_empty()
            && !accepts
                .iter()
                .any(|a| a == "application/sdp" || a == "application/*" || a == "*/*")
        {
            let extra = [(
                "Warning",
                "399 ivrflow \"only application/sdp is supported\"".to_owned(),
            )];
            self.respond_once(now, source, &req, 406, "Not Acceptable", &extra);
            return;
        }
        let Some(key) = TxKey::of(&req, Method::Invite) else {
            return;
        };
        let call = CallHandle(self.next_call);
        self.next_call += 1;
        let local_tag = self.random_token(8);
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_owned();
        let remote_party = req.headers.get("From").unwrap_or_default().to_owned();
        let to = req.headers.get("To").unwrap_or_default().to_owned();
        let local_party = format!("{to};tag={local_tag}");
        let remote_target = req
            .headers
            .get("Contact")
            .and_then(|c| parse_name_addr(c).ok())
            .map(|n| n.uri)
            .unwrap_or_else(|| {
                parse_name_addr(&remote_party)
                    .map(|n| n.uri)
                    .unwrap_or_default()
            });
        let route_set: Vec<String> = req
            .headers
            .get_all("Record-Route")
            .map(str::to_owned)
            .collect();
        let remote_cseq = req
            .headers
            .get("CSeq")
            .and_then(|c| parse_cseq(c).ok())
            .map(|c| c.seq)
            .unwrap_or(0);
        // 100 Trying at once: stops the peer's Timer A retransmissions (§17.2.1).
        let trying = self.response_to(&req, source, 100, "Trying", None);
        let bytes = trying.to_bytes();
        self.send(source, bytes.clone());
        self.servers.insert(
            key.clone(),
            ServerTxn {
                is_invite: true,
                fingerprint: fingerprint(&req),
                dest: source,
                state: ServerState::Proceeding,
                last_response: Some(bytes),
                retransmit_at: None,
                interval: self.cfg.timers.t1,
                give_up_at: None,
                expire_at: None,
            },
        );
        self.dialogs
            .insert((call_id.clone(), local_tag.clone()), call);
        self.legs.insert(
            call,
            Leg {
                call_id,
                local_tag,
                invite: req.clone(),
                invite_key: key,
                peer: source,
                remote_target,
                route_set,
                local_party,
                remote_party,
                local_cseq: 1,
                remote_cseq,
                state: LegState::Early,
                ok_bytes: None,
                ok_retransmit_at: None,
                ok_interval: self.cfg.timers.t1,
                ok_give_up_at: None,
                bye_reason: EndReason::LocalBye,
            },
        );
        self.events.push_back(UaEvent::IncomingCall {
            call,
            request: Box::new(req),
            source,
        });
    }

    fn handle_cancel(&mut self, now: Instant, source: SocketAddr, req: Request) {
        // §9.2: the CANCEL matches the INVITE transaction with the same branch.
        let invite_key = TxKey::of(&req, Method::Invite);
        let call = invite_key.as_ref().and_then(|k| {
            self.legs
                .iter()
                .find(|(_, l)| &l.invite_key == k)
                .map(|(c, _)| *c)
        });
        let Some(call) = call else {
            self.respond_once(
                now,
                source,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                &[],
            );
            return;
        };
        self.respond_once(now, source, &req, 200, "OK", &[]);
        let early = self.legs.get(&call).map(|l| l.state) == Some(LegState::Early);
        if early {
            self.final_invite_response(now, call, 487, "Request Terminated", &[]);
            self.end_leg(call, EndReason::Cancelled);
        }
    }

    fn handle_in_dialog(&mut self, now: Instant, source: SocketAddr, req: Request, to_tag: String) {
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_owned();
        let Some(&call) = self.dialogs.get(&(call_id, to_tag)) else {
            self.respond_once(
                now,
                source,
                &req,
                481,
                "Call/Transaction Does Not Exist",
                &[],
            );
            return;
        };
        let cseq = req
            .headers
            .get("CSeq")
            .and_then(|c| parse_cseq(c).ok())
            .map(|c| c.seq)
            .unwrap_or(0);
        if let Some(leg) = self.legs.get_mut(&call) {
            // §12.2.2: a lower CSeq than the last one is out of order.
            if cseq < leg.remote_cseq {
                self.respond_once(
                    now,
                    source,
                    &req,
                    500,
                    "Server Internal Error",
                    &[("Retry-After", "1".to_owned())],
                );
                return;
            }
            leg.remote_cseq = cseq;
        }
        match req.method {
            Method::Bye => {
                self.respond_once(now, source, &req, 200, "OK", &[]);
                self.end_leg(call, EndReason::RemoteBye);
            }
            Method::Info => {
                self.respond_once(now, source, &req, 200, "OK", &[]);
                self.events.push_back(UaEvent::Info {
                    call,
                    request: Box::new(req),
                });
            }
            Method::Options => {
                let extra = [("Allow", ALLOW.to_owned())];
                self.respond_once(now, source, &req, 200, "OK", &extra);
            }
            Method::Invite => {
                // Re-INVITE (session refresh, hold): we keep our media as it is. Offer
                // changes are not applied yet; refuse rather than pretend (RFC 3261 §14.2).
                self.respond_once(now, source, &req, 488, "Not Acceptable Here", &[]);
            }
            Method::Other(_) => {
                let extra = [("Allow", ALLOW.to_owned())];
                self.respond_once(now, source, &req, 501, "Not Implemented", &extra);
            }
            _ => {
                let extra = [("Allow", ALLOW.to_owned())];
                self.respond_once(now, source, &req, 405, "Method Not Allowed", &extra);
            }
        }
    }

    fn handle_ack(&mut self, now: Instant, _source: SocketAddr, req: Request) {
        // ACK for a non-2xx final: belongs to the INVITE server transaction (§17.2.1).
        if let Some(key) = TxKey::of(&req, Method::Invite)
            && let Some(tx) = self.servers.get_mut(&key)
            && tx.state == ServerState::Completed
        {
            tx.state = ServerState::Confirmed;
            tx.retransmit_at = None;
            tx.give_up_at = None;
            let at = now + self.cfg.timers.t4;
            tx.expire_at = Some(at);
            self.schedule(at, TimerRef::Server(key));
            return;
        }
        // ACK for a 2xx: belongs to the dialog (§13.3.1.4).
        let call_id = req.headers.get("Call-ID").unwrap_or_default().to_owned();
        let to_tag = req
            .headers
            .get("To")
            .and_then(|t| parse_name_addr(t).ok())
            .and_then(|n| n.tag().map(str::to_owned))
            .unwrap_or_default();
        if let Some(&call) = self.dialogs.get(&(call_id, to_tag))
            && let Some(leg) = self.legs.get_mut(&call)
            && leg.state == LegState::Answered
        {
            leg.state = LegState::Confirmed;
            leg.ok_bytes = None;
            leg.ok_retransmit_at = None;
            leg.ok_give_up_at = None;
            self.events.push_back(UaEvent::Confirmed { call });
        }
    }

    fn handle_response(&mut self, now: Instant, source: SocketAddr, resp: Response) {
        if let Err(why) = validate_response(&resp) {
            self.stats.responses_dropped += 1;
            tracing::debug!(%source, %why, "dropped invalid response");
            return;
        }
        let branch = resp
            .headers
            .get("Via")
            .and_then(|v| parse_via(v).ok())
            .and_then(|v| v.branch().map(str::to_owned));
        let Some(branch) = branch else {
            self.stats.responses_dropped += 1;
            return;
        };
        let Some(tx) = self.clients.get_mut(&branch) else {
            self.stats.responses_dropped += 1;
            tracing::debug!(%source, status = resp.status, "response matches no transaction");
            return;
        };
        if resp.status < 200 || tx.state == ClientState::Completed {
            // Provisional: Timer E continues at T2 (§17.1.2.2); late finals are absorbed.
            return;
        }
        tx.state = ClientState::Completed;
        tx.retransmit_at = None;
        tx.timeout_at = None;
        let at = now + self.cfg.timers.t4;
        tx.expire_at = Some(at);
        let (call, method) = (tx.call, tx.method.clone());
        self.schedule(at, TimerRef::Client(branch));
        if let (Some(call), Method::Bye) = (call, method) {
            self.end_leg(call, EndReason::LocalBye);
        }
    }

    // ───────────────────────────── input: commands from the TU ─────────────────────────────

    /// Send 180 Ringing on an incoming call.
    pub fn ring(&mut self, _now: Instant, call: CallHandle) {
        self.provisional(call, 180, "Ringing");
    }

    fn provisional(&mut self, call: CallHandle, status: u16, reason: &str) {
        let Some(leg) = self.legs.get(&call) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        let (invite, peer, tag, key) = (
            leg.invite.clone(),
            leg.peer,
            leg.local_tag.clone(),
            leg.invite_key.clone(),
        );
        let mut resp = self.response_to(&invite, peer, status, reason, Some(&tag));
        resp.headers.push("Contact", self.contact());
        let bytes = resp.to_bytes();
        if let Some(tx) = self.servers.get_mut(&key) {
            tx.last_response = Some(bytes.clone());
        }
        self.send(peer, bytes);
    }

    /// Answer an incoming call with 200 OK carrying `sdp`; retransmitted until ACK.
    pub fn answer(&mut self, now: Instant, call: CallHandle, sdp: &str) {
        let Some(leg) = self.legs.get(&call) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        let (invite, peer, tag, key) = (
            leg.invite.clone(),
            leg.peer,
            leg.local_tag.clone(),
            leg.invite_key.clone(),
        );
        let mut resp = self.response_to(&invite, peer, 200, "OK", Some(&tag));
        resp.headers.push("Contact", self.contact());
        resp.headers.push("Allow", ALLOW);
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = sdp.as_bytes().to_vec();
        let bytes = resp.to_bytes();
        self.send(peer, bytes.clone());
        // The transaction moves to Accepted (RFC 6026 §7.1) and only absorbs retransmissions.
        let t1 = self.cfg.timers.t1;
        if let Some(tx) = self.servers.get_mut(&key) {
            tx.state = ServerState::Accepted;
            tx.last_response = None;
            let at = now + 64 * t1;
            tx.expire_at = Some(at);
            self.schedule(at, TimerRef::Server(key));
        }
        let retransmit_at = now + t1;
        let give_up_at = now + 64 * t1;
        if let Some(leg) = self.legs.get_mut(&call) {
            leg.state = LegState::Answered;
            leg.ok_bytes = Some(bytes);
            leg.ok_interval = t1;
            leg.ok_retransmit_at = Some(retransmit_at);
            leg.ok_give_up_at = Some(give_up_at);
        }
        self.schedule(retransmit_at, TimerRef::Leg(call));
        self.schedule(give_up_at, TimerRef::Leg(call));
    }

    /// Refuse an incoming call that has not been answered yet (404, 486, 488, 503 …).
    pub fn reject(
        &mut self,
        now: Instant,
        call: CallHandle,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        if self.legs.get(&call).map(|l| l.state) != Some(LegState::Early) {
            return;
        }
        self.final_invite_response(now, call, status, reason, extra);
        self.end_leg(call, EndReason::Rejected(status));
    }

    /// The robot ends the call: BYE when answered, 480 before that.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(state) = self.legs.get(&call).map(|l| l.state) else {
            return;
        };
        match state {
            LegState::Early => {
                self.reject(now, call, 480, "Temporarily Unavailable", &[]);
            }
            // §15: the callee may send BYE once the 2xx is sent, ACK or not.
            LegState::Answered | LegState::Confirmed => self.send_bye(now, call),
            LegState::Terminating => {}
        }
    }

    fn send_bye(&mut self, now: Instant, call: CallHandle) {
        let branch = format!("{MAGIC_COOKIE}{}", self.random_token(10));
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.cfg.host_port());
        let ua = self.cfg.user_agent.clone();
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        leg.state = LegState::Terminating;
        leg.ok_bytes = None;
        leg.ok_retransmit_at = None;
        leg.ok_give_up_at = None;
        leg.local_cseq += 1;
        let mut req = Request {
            method: Method::Bye,
            uri: leg.remote_target.clone(),
            version: "SIP/2.0".to_owned(),
            headers: Default::default(),
            body: Vec::new(),
        };
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers.push("From", leg.local_party.clone());
        req.headers.push("To", leg.remote_party.clone());
        req.headers.push("Call-ID", leg.call_id.clone());
        req.headers.push("CSeq", format!("{} BYE", leg.local_cseq));
        for r in &leg.route_set {
            req.headers.push("Route", r.clone());
        }
        req.headers.push("User-Agent", ua);
        let dest = leg.peer;
        let bytes = req.to_bytes();
        self.send(dest, bytes.clone());
        let t1 = self.cfg.timers.t1;
        let (retransmit_at, timeout_at) = (now + t1, now + 64 * t1);
        self.clients.insert(
            branch.clone(),
            ClientTxn {
                call: Some(call),
                method: Method::Bye,
                dest,
                request: bytes,
                state: ClientState::Trying,
                retransmit_at: Some(retransmit_at),
                interval: t1,
                timeout_at: Some(timeout_at),
                expire_at: None,
            },
        );
        self.schedule(retransmit_at, TimerRef::Client(branch.clone()));
        self.schedule(timeout_at, TimerRef::Client(branch));
    }

    // ───────────────────────────── timers ─────────────────────────────

    /// Fire every timer due at or before `now`. Extra calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(what) = self.timer_refs.remove(&id) {
                match what {
                    TimerRef::Server(key) => self.server_timer(now, key),
                    TimerRef::Client(branch) => self.client_timer(now, branch),
                    TimerRef::Leg(call) => self.leg_timer(now, call),
                }
            }
        }
    }

    fn server_timer(&mut self, now: Instant, key: TxKey) {
        let t2 = self.cfg.timers.t2;
        let Some(tx) = self.servers.get_mut(&key) else {
            return;
        };
        if tx.expire_at.is_some_and(|t| t <= now) {
            self.servers.remove(&key);
            return;
        }
        if tx.give_up_at.is_some_and(|t| t <= now) {
            // Timer H: the ACK never came; the transaction ends (§17.2.1).
            tracing::debug!("INVITE server transaction: no ACK for final response (Timer H)");
            self.servers.remove(&key);
            return;
        }
        if let Some(at) = tx.retransmit_at
            && at <= now
            && tx.state == ServerState::Completed
        {
            // Timer G: resend the final response, doubling up to T2.
            tx.interval = (tx.interval * 2).min(t2);
            let next = now + tx.interval;
            tx.retransmit_at = Some(next);
            if let Some(bytes) = tx.last_response.clone() {
                let dest = tx.dest;
                self.send(dest, bytes);
            }
            self.schedule(next, TimerRef::Server(key));
        }
    }

    fn client_timer(&mut self, now: Instant, branch: String) {
        let t2 = self.cfg.timers.t2;
        let Some(tx) = self.clients.get_mut(&branch) else {
            return;
        };
        if tx.expire_at.is_some_and(|t| t <= now) {
            self.clients.remove(&branch);
            return;
        }
        if tx.timeout_at.is_some_and(|t| t <= now) {
            // Timer F: no final response. For BYE the call is over anyway (§15.1.1).
            let (call, method) = (tx.call, tx.method.clone());
            self.clients.remove(&branch);
            tracing::info!(?method, "request timed out (Timer F)");
            if let (Some(call), Method::Bye) = (call, method) {
                self.end_leg(call, EndReason::LocalBye);
            }
            return;
        }
        if let Some(at) = tx.retransmit_at
            && at <= now
        {
            tx.interval = (tx.interval * 2).min(t2);
            let next = now + tx.interval;
            tx.retransmit_at = Some(next);
            let (dest, bytes) = (tx.dest, tx.request.clone());
            self.send(dest, bytes);
            self.schedule(next, TimerRef::Client(branch));
        }
    }

    fn leg_timer(&mut self, now: Instant, call: CallHandle) {
        let t2 = self.cfg.timers.t2;
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        if leg.state != LegState::Answered {
            return;
        }
        if leg.ok_give_up_at.is_some_and(|t| t <= now) {
            // §13.3.1.4: no ACK within 64·T1 — confirm and immediately end the session.
            tracing::info!(call_id = %leg.call_id, "no ACK for 200 OK; ending the call with BYE");
            leg.bye_reason = EndReason::AckTimeout;
            self.send_bye(now, call);
            return;
        }
        if let Some(at) = leg.ok_retransmit_at
            && at <= now
        {
            leg.ok_interval = (leg.ok_interval * 2).min(t2);
            let next = now + leg.ok_interval;
            leg.ok_retransmit_at = Some(next);
            if let Some(bytes) = leg.ok_bytes.clone() {
                let dest = leg.peer;
                self.send(dest, bytes);
            }
            self.schedule(next, TimerRef::Leg(call));
        }
    }

    // ───────────────────────────── helpers ─────────────────────────────

    fn contact(&self) -> String {
        format!("<sip:ivrflow@{}>", self.cfg.host_port())
    }

    /// Build a response to `req`: Via/From/To/Call-ID/CSeq copied (§8.2.6.2), our tag added to
    /// To (except on 100), rport/received filled in (RFC 3581).
    fn response_to(
        &self,
        req: &Request,
        source: SocketAddr,
        status: u16,
        reason: &str,
        tag: Option<&str>,
    ) -> Response {
        let mut resp = response_skeleton(req, status, reason);
        // RFC 3581 §4: fill in rport and received on the top Via.
        let vias: Vec<String> = resp.headers.get_all("Via").map(str::to_owned).collect();
        if let Some(top) = vias.first() {
            let mut top = top.clone();
            if let Some(pos) = find_bare_param(&top, "rport") {
                top.insert_str(pos + ";rport".len(), &format!("={}", source.port()));
                top.push_str(&format!(";received={}", source.ip()));
            }
            resp.headers.remove("Via");
            resp.headers.push("Via", top);
            for v in &vias[1..] {
                resp.headers.push("Via", v.clone());
            }
        }
        if status > 100
            && let Some(to) = resp.headers.get("To").map(str::to_owned)
        {
            let has_tag = parse_name_addr(&to)
                .map(|n| n.tag().is_some())
                .unwrap_or(true);
            if !has_tag {
                let tag = tag.map(str::to_owned).unwrap_or_else(|| {
                    // Stateless responses still need a To tag (§8.2.6.2); derive one from the
                    // request so retransmissions get the same tag.
                    format!(
                        "{:08x}",
                        fnv1a(req.headers.get("Call-ID").unwrap_or("").as_bytes())
                    )
                });
                resp.headers.set("To", format!("{to};tag={tag}"));
            }
        }
        resp.headers.push("Server", self.cfg.user_agent.clone());
        resp
    }

    /// Send a final response through a new non-INVITE server transaction, so
    /// retransmitted requests get the same answer (Timer J).
    fn respond_once(
        &mut self,
        now: Instant,
        source: SocketAddr,
        req: &Request,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let mut resp = self.response_to(req, source, status, reason, None);
        for (n, v) in extra {
            resp.headers.push(n, v.clone());
        }
        let bytes = resp.to_bytes();
        self.send(source, bytes.clone());
        if let Some(key) = TxKey::of(req, req.method.clone()) {
            let at = now + 64 * self.cfg.timers.t1;
            self.servers.insert(
                key.clone(),
                ServerTxn {
                    is_invite: req.method == Method::Invite,
                    fingerprint: fingerprint(req),
                    dest: source,
                    state: ServerState::Completed,
                    last_response: Some(bytes),
                    retransmit_at: None,
                    interval: self.cfg.timers.t1,
                    give_up_at: None,
                    expire_at: Some(at),
                },
            );
            self.schedule(at, TimerRef::Server(key));
        }
    }

    /// A non-2xx final response on the INVITE server transaction of `call` (Timers G/H).
    fn final_invite_response(
        &mut self,
        now: Instant,
        call: CallHandle,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let Some(leg) = self.legs.get(&call) else {
            return;
        };
        let (invite, peer, tag, key) = (
            leg.invite.clone(),
            leg.peer,
            leg.local_tag.clone(),
            leg.invite_key.clone(),
        );
        let mut resp = self.response_to(&invite, peer, status, reason, Some(&tag));
        for (n, v) in extra {
            resp.headers.push(n, v.clone());
        }
        let bytes = resp.to_bytes();
        self.send(peer, bytes.clone());
        let t1 = self.cfg.timers.t1;
        if let Some(tx) = self.servers.get_mut(&key) {
            tx.state = ServerState::Completed;
            tx.last_response = Some(bytes);
            tx.interval = t1;
            tx.retransmit_at = Some(now + t1);
            tx.give_up_at = Some(now + 64 * t1);
            debug_assert!(tx.is_invite);
            self.schedule(now + t1, TimerRef::Server(key.clone()));
            self.schedule(now + 64 * t1, TimerRef::Server(key));
        }
    }

    fn end_leg(&mut self, call: CallHandle, reason: EndReason) {
        if let Some(leg) = self.legs.remove(&call) {
            let reason = match reason {
                EndReason::LocalBye => leg.bye_reason,
                other => other,
            };
            self.dialogs.remove(&(leg.call_id, leg.local_tag));
            self.events.push_back(UaEvent::Ended { call, reason });
        }
    }
}

fn fingerprint(req: &Request) -> (String, String) {
    (
        req.headers.get("Call-ID").unwrap_or("").to_owned(),
        req.headers.get("CSeq").unwrap_or("").to_owned(),
    )
}

/// Position of `;name` when it appears as a parameter without a value.
fn find_bare_param(via: &str, name: &str) -> Option<usize> {
    let lower = via.to_ascii_lowercase();
    let pat = format!(";{name}");
    let mut from = 0;
    while let Some(i) = lower[from..].find(&pat) {
        let pos = from + i;
        let after = lower.as_bytes().get(pos + pat.len()).copied();
        match after {
            None | Some(b';') | Some(b' ') | Some(b'\t') | Some(b',') => return Some(pos),
            _ => from = pos + pat.len(),
        }
    }
    None
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests;
