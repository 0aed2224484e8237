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
//! Transports (RFC 3261 §18): every message in and out names its [`Transport`]. Responses go
//! back to the request's source address over the transport it came by (on the same
//! connection, for TCP and TLS), and in-dialog requests to the address the INVITE came from
//! (symmetric signalling, RFC 3581 style), so peers behind NAT work and a forged Via host can
//! never redirect our traffic. Via and Contact name the transport used; requests over a
//! stream are not retransmitted (Timers A/E). A request over 1,300 bytes bound for a UDP
//! peer known to take TCP goes over TCP (§18.1.1).
//!
//! Transfers (issue 6): [`UserAgent::refer`] sends REFER in an established dialog and
//! follows the implicit `refer` subscription (RFC 3515) through its NOTIFYs to one terminal
//! event, [`UaEvent::ReferSucceeded`] or [`UaEvent::ReferFailed`]; [`UserAgent::send_info_dtmf`]
//! relays keys to the other leg of a bridge; a re-INVITE from the peer (hold, unhold, media
//! move) is answered with our unchanged media and reported as [`UaEvent::SessionUpdated`].
//! See `refer.rs`.
//!
//! What it deliberately does not do: proxying, forking, sockets, DNS (RFC 3263), PRACK,
//! session timers, receiving REFER (we are never the transferee), sending re-INVITEs, and
//! SUBSCRIBE dialogs other than REFER's implicit one. Scenario routing is the TU's
//! business: it rejects with 404.

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
use super::transport::Transport;

/// The magic cookie that marks RFC 3261 branch parameters (§8.1.1.7).
const MAGIC_COOKIE: &str = "z9hG4bK";
/// Methods this UA implements (answers with `Allow`).
/// NOTIFY is accepted only inside the subscription of a REFER we sent; REFER itself is not
/// listed: we send it but refuse to be transferred (405).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY";
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

/// A SIP message to send to `dest` over `transport` (for TCP and TLS: on the connection
/// to that address, opened if there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub payload: Vec<u8>,
    pub transport: Transport,
}

/// Above this size a request goes over TCP when the peer takes it (RFC 3261 §18.1.1).
pub const UDP_MAX_REQUEST: usize = 1300;

/// How a peer address is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    transport: Transport,
    /// Requests over [`UDP_MAX_REQUEST`] may go over TCP (a UDP route known to take TCP).
    tcp_ok: bool,
    /// Set by the owner (a trunk), never forgotten; else learned from a message.
    pinned: bool,
}

/// Learned routes kept at most (the oldest learned ones are dropped beyond it).
const MAX_LEARNED_ROUTES: usize = 16_384;

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
    /// Our outbound INVITE got this final non-2xx status (408 when nobody answered at all,
    /// 487 after we cancelled it).
    Failed(u16),
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
    /// No ACK came for our 2xx within 64·T1 (RFC 3261 §13.3.1.4): the BYE is on its way
    /// now. The session is over for media and dialogue at once; [`UaEvent::Ended`]
    /// follows when the BYE transaction ends.
    AckTimedOut { call: CallHandle },
    /// An in-dialog INFO (e.g. application/dtmf-relay); already answered 200.
    Info {
        call: CallHandle,
        request: Box<Request>,
    },
    /// Outbound call: a provisional response (180 ringing, 183 with early media).
    Progress {
        call: CallHandle,
        status: u16,
        sdp: Option<Vec<u8>>,
    },
    /// Outbound call: answered (2xx); the ACK is sent. Carries the SDP answer.
    Answered { call: CallHandle, sdp: Vec<u8> },
    /// The call leg is over; nothing more will be sent or reported for it.
    Ended { call: CallHandle, reason: EndReason },
    /// The registrar accepted our binding for this long.
    Registered { id: RegId, expires: Duration },
    /// Registration failed (`status` None: no answer); the next try is at `retry_at`.
    RegistrationFailed {
        id: RegId,
        status: Option<u16>,
        retry_at: Instant,
    },
    /// The binding was removed after [`UserAgent::unregister`].
    Unregistered { id: RegId },
    /// The answer to an OPTIONS keep-alive (`None`: no answer within 64·T1).
    PingResult { id: u64, status: Option<u16> },
    /// The peer accepted our REFER (202, or any 2xx): it is now calling the transfer
    /// target. NOTIFYs follow; wait for [`UaEvent::ReferSucceeded`] / [`UaEvent::ReferFailed`].
    ReferAccepted { call: CallHandle },
    /// A NOTIFY of the REFER subscription: `status` is the status line of its
    /// `message/sipfrag` body (100 Trying, 180 Ringing, 200 OK, 486 …); `terminated` when the
    /// peer ended the subscription with it. Informational (traces): a final status is also
    /// reported as exactly one `ReferSucceeded` or `ReferFailed`.
    ReferProgress {
        call: CallHandle,
        status: u16,
        terminated: bool,
    },
    /// The transfer target answered (sipfrag 2xx): the peer is now talking to it. The TU
    /// ends its own leg with [`UserAgent::hangup`] (the peer may also send BYE first).
    ReferSucceeded { call: CallHandle, status: u16 },
    /// The transfer did not happen; the call (if not ended) is still ours. Terminal: no
    /// more REFER events follow for this REFER.
    ReferFailed {
        call: CallHandle,
        reason: ReferFailure,
    },
    /// The peer changed the session with a re-INVITE (hold, unhold, new media address).
    /// We already answered 200 with our media unchanged except the direction, mirrored
    /// as RFC 3264 §6.1 requires (a sendonly offer gets recvonly). `sdp` is the peer's new
    /// description (the re-INVITE's offer, or the answer in the ACK of an offerless
    /// re-INVITE): renegotiate it to learn the new RTP address and whether to send.
    SessionUpdated { call: CallHandle, sdp: Vec<u8> },
    /// An INFO we sent ([`UserAgent::send_info_dtmf`]) was refused (`Some(status)`) or got
    /// no answer (`None`); a TU relaying DTMF may fall back to RFC 4733 events.
    InfoFailed {
        call: CallHandle,
        status: Option<u16>,
    },
}

/// Why a transfer by REFER failed ([`UaEvent::ReferFailed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferFailure {
    /// The peer refused the REFER with this final status (403, 405, 481, 501, 603 …).
    Rejected(u16),
    /// No final response to the REFER (Timer F).
    NoResponse,
    /// The peer's call to the target failed with this status (sipfrag 3xx–6xx).
    TargetFailed(u16),
    /// The peer ended the subscription without reporting a final status.
    SubscriptionTerminated,
    /// No final NOTIFY before the deadline ([`UserAgent::set_refer_timeout`]).
    Timeout,
}

/// Why an in-dialog request ([`UserAgent::refer`], [`UserAgent::send_info_dtmf`]) could
/// not be sent. Nothing was sent when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("no such call")]
    NoSuchCall,
    #[error("the call is not established (no 2xx/ACK yet, or it is ending)")]
    NotEstablished,
    #[error("a REFER is already in progress on this call")]
    ReferInProgress,
    #[error("{header} is not a valid SIP, SIPS or tel URI")]
    InvalidUri { header: &'static str },
    #[error("not a DTMF key (0-9, *, #, A-D)")]
    InvalidDigit,
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
    /// Our current session description (the answer we sent, or the offer of a call we
    /// placed): re-INVITEs are answered with it.
    local_sdp: Vec<u8>,
    /// The 2xx in `ok_bytes` answers a re-INVITE, not the initial INVITE: its ACK must not
    /// report `Confirmed` again.
    reinvite: bool,
    /// The REFER we sent on this dialog and its subscription.
    refer: Option<Box<refer::ReferState>>,
    /// Present on calls we placed (UAC).
    uac: Option<Box<client::UacState>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerRef {
    Server(TxKey),
    Client(ClientKey),
    Register(RegId),
    Leg(CallHandle),
    Refer(CallHandle),
}

/// The user agent. One per SIP socket.
pub struct UserAgent {
    cfg: UaConfig,
    rng: StdRng,
    servers: HashMap<TxKey, ServerTxn>,
    clients: HashMap<ClientKey, ClientTxn>,
    registrations: HashMap<RegId, register::Registration>,
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
    refer_timeout: Duration,
    /// Out-of-dialog OPTIONS are answered 503 (the node takes no new calls).
    unavailable: bool,
    /// 100 Trying of INVITEs not yet answered (see [`UserAgent::flush_trying`]).
    trying: Vec<(TxKey, SocketAddr, Vec<u8>)>,
    /// Listening addresses by transport (Via and Contact); UDP is `cfg.local_addr`.
    listeners: Vec<(Transport, SocketAddr)>,
    /// How each peer address is reached: set for trunks, learned from what arrives.
    routes: HashMap<SocketAddr, Route>,
    /// A trunk's targets by its primary address (RFC 3263 failover; `client.rs`).
    failover: HashMap<SocketAddr, Vec<SocketAddr>>,
    /// Targets that recently timed out or answered 503, and until when they are skipped.
    down: HashMap<SocketAddr, Instant>,
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
            registrations: HashMap::new(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            next_call: 1,
            timers: BinaryHeap::new(),
            timer_refs: HashMap::new(),
            next_timer: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: UaStats::default(),
            refer_timeout: refer::DEFAULT_REFER_TIMEOUT,
            unavailable: false,
            trying: Vec::new(),
            listeners: Vec::new(),
            routes: HashMap::new(),
            failover: HashMap::new(),
            down: HashMap::new(),
        }
    }

    /// The addresses we listen on besides UDP's `local_addr` (Via sent-by and Contact of
    /// messages over those transports).
    pub fn set_listeners(&mut self, listeners: Vec<(Transport, SocketAddr)>) {
        self.listeners = listeners;
    }

    /// Reach `dest` over `transport` (a trunk's proxy or registrar). `tcp_ok`: a UDP peer
    /// known to take TCP, so requests over 1,300 bytes go over TCP.
    pub fn set_route(&mut self, dest: SocketAddr, transport: Transport, tcp_ok: bool) {
        self.routes.insert(
            dest,
            Route {
                transport,
                tcp_ok,
                pinned: true,
            },
        );
    }

    /// The transport that reaches `dest` (UDP unless set or learned otherwise).
    pub fn transport_to(&self, dest: SocketAddr) -> Transport {
        self.routes
            .get(&dest)
            .map_or(Transport::Udp, |r| r.transport)
    }

    /// Our `host:port` for messages over `t`: the advertised host if any, with the port of
    /// that transport's listener.
    pub(crate) fn host_port_for(&self, t: Transport) -> String {
        let listener = self
            .listeners
            .iter()
            .find(|(lt, _)| *lt == t)
            .map(|(_, a)| *a);
        match (t, listener) {
            (Transport::Udp, _) | (_, None) => self.cfg.host_port(),
            (_, Some(addr)) => match &self.cfg.advertised {
                Some(adv) => {
                    let host = match adv.rsplit_once(':') {
                        Some((h, p)) if p.parse::<u16>().is_ok() && !h.ends_with(':') => h,
                        _ => adv.as_str(),
                    };
                    format!("{host}:{}", addr.port())
                }
                None => addr.to_string(),
            },
        }
    }

    /// Our Contact for messages to `dest` (`;transport=` for TCP and TLS).
    pub(crate) fn contact_for(&self, dest: SocketAddr) -> String {
        match self.transport_to(dest) {
            Transport::Udp => format!("<sip:ivrflow@{}>", self.cfg.host_port()),
            t => format!(
                "<sip:ivrflow@{};transport={}>",
                self.host_port_for(t),
                t.param()
            ),
        }
    }

    /// Remembers that `source` reached us over `transport`.
    fn learn_route(&mut self, source: SocketAddr, transport: Transport) {
        if let Some(r) = self.routes.get_mut(&source) {
            if !r.pinned {
                r.transport = transport;
            }
            return;
        }
        if transport == Transport::Udp {
            return;
        }
        if self.routes.len() >= MAX_LEARNED_ROUTES {
            let peers: std::collections::HashSet<SocketAddr> =
                self.legs.values().map(|l| l.peer).collect();
            self.routes.retain(|a, r| r.pinned || peers.contains(a));
        }
        self.routes.insert(
            source,
            Route {
                transport,
                tcp_ok: false,
                pinned: false,
            },
        );
    }

    pub fn stats(&self) -> UaStats {
        self.stats
    }

    /// While set, out-of-dialog OPTIONS get 503 with Retry-After (the node is failing or
    /// draining, and a load balancer's probe should move new calls elsewhere).
    pub fn set_unavailable(&mut self, unavailable: bool) {
        self.unavailable = unavailable;
    }

    /// Number of call legs alive (any state).
    pub fn active_calls(&self) -> usize {
        self.legs.len()
    }

    /// The SIP Call-ID of a call, for logs and CRM records.
    pub fn call_id(&self, call: CallHandle) -> Option<&str> {
        self.legs.get(&call).map(|l| l.call_id.as_str())
    }

    /// The next datagram to send. A pending 100 Trying goes out here, once the TU has
    /// had the INVITE (its event) and has not answered or refused it in the same step.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.trying.is_empty() {
            self.flush_trying();
        }
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

    /// Queues `payload` for `dest` over the transport that reaches it; returns that transport.
    fn send(&mut self, dest: SocketAddr, mut payload: Vec<u8>) -> Transport {
        let route = self.routes.get(&dest).copied();
        let mut transport = route.map_or(Transport::Udp, |r| r.transport);
        if transport == Transport::Udp
            && route.is_some_and(|r| r.tcp_ok)
            && payload.len() > UDP_MAX_REQUEST
            && !payload.starts_with(b"SIP/2.0 ")
        {
            // §18.1.1: too big for UDP; our own top Via names the transport used.
            transport = Transport::Tcp;
            let from = b"Via: SIP/2.0/UDP ";
            if let Some(i) = payload.windows(from.len()).position(|w| w == from) {
                payload[i + 13..i + 16].copy_from_slice(b"TCP");
            }
        }
        self.transmits.push_back(Transmit {
            dest,
            payload,
            transport,
        });
        transport
    }

    // ───────────────────────────── input: datagrams ─────────────────────────────

    /// Feed one received UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.handle_message(now, source, Transport::Udp, datagram);
    }

    /// Feed one whole message that arrived from `source` over `transport` (a datagram, or a
    /// message framed off a TCP/TLS connection).
    pub fn handle_message(
        &mut self,
        now: Instant,
        source: SocketAddr,
        transport: Transport,
        datagram: &[u8],
    ) {
        self.learn_route(source, transport);
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
                    TimerRef::Client(key) => self.client_timer(now, key),
                    TimerRef::Register(id) => self.register_timer(now, id),
                    TimerRef::Leg(call) => self.leg_timer(now, call),
                    TimerRef::Refer(call) => self.refer_timer(now, call),
                }
            }
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
            self.events.push_back(UaEvent::AckTimedOut { call });
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

mod client;
mod refer;
mod register;
mod server;

use client::{ClientKey, ClientTxn};
pub use client::{OutboundInvite, TrunkCredentials};
pub use register::{RegId, RegisterParams};

#[cfg(test)]
mod refer_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transport_tests;
