//! UAC side of the user agent: client transactions (RFC 3261 §17.1), outbound INVITE with
//! digest authentication, CANCEL, the ACKs, and in-dialog requests we originate (BYE).
//!
//! INVITE client transaction (§17.1.1, RFC 6026 Accepted state):
//! ```text
//!   Calling ──1xx──▶ Proceeding ──2xx──▶ Accepted (Timer M: absorb 2xx retransmits,
//!     │  Timer A: resend             │                 the dialog re-sends its ACK)
//!     │  Timer B: 408                └──300-699──▶ Completed (ACK sent; Timer D)
//! ```
//! Non-INVITE (§17.1.2): Trying → Proceeding → Completed (Timer K); Timer E resends,
//! Timer F gives up. Client transactions are keyed by branch and CSeq method (§17.1.3), so
//! a CANCEL shares its INVITE's branch without colliding with it.

use std::net::SocketAddr;
use std::time::Instant;

use super::*;
use crate::sip::digest::{self, Challenge, Credentials};

/// Branch and CSeq method: what a response is matched on (§17.1.3).
pub(super) type ClientKey = (String, Method);

/// What a client transaction was started for: decides what its outcome means.
#[derive(Debug, Clone)]
pub(super) enum Purpose {
    Invite(CallHandle),
    Cancel(CallHandle),
    Bye(CallHandle),
    /// A REFER with this CSeq (the subscription's `id`).
    Refer(CallHandle, u32),
    Info(CallHandle),
    Register(super::RegId),
    Ping(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientState {
    /// Calling (INVITE) or Trying (non-INVITE).
    Trying,
    Proceeding,
    Completed,
    Accepted,
}

#[derive(Debug)]
pub(super) struct ClientTxn {
    purpose: Purpose,
    request: Request,
    dest: SocketAddr,
    bytes: Vec<u8>,
    state: ClientState,
    /// Timer A / E.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer B / F.
    timeout_at: Option<Instant>,
    /// Timer D / K / M.
    expire_at: Option<Instant>,
    /// The ACK for a non-2xx final response, re-sent when the response is retransmitted.
    ack: Option<Vec<u8>>,
}

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct OutboundInvite {
    /// Request-URI, e.g. `sip:100@192.0.2.10:5060`.
    pub target: String,
    /// Where to send it: the trunk or the outbound proxy.
    pub dest: SocketAddr,
    /// Our identity (From URI), e.g. `sip:shop@trunk.example`.
    pub from_uri: String,
    pub from_display: Option<String>,
    pub sdp_offer: String,
    /// Extra headers (e.g. `P-Asserted-Identity`, custom `X-` headers).
    pub headers: Vec<(String, String)>,
    /// Digest credentials to answer one 401/407 challenge — only from the peer (and
    /// realm) they belong to.
    pub credentials: Option<TrunkCredentials>,
}

/// A trunk's digest credentials and where they may be used: a challenge is answered only
/// when the INVITE went to `peer`, the challenge came from `peer`, and (when set) names
/// `realm`. A call to any other host never gets them, whatever its target says (issue 12:
/// a caller-chosen transfer target made ivrflow answer the attacker's own challenge with
/// the trunk's username and a response computed from its password).
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkCredentials {
    pub username: String,
    pub password: String,
    /// The trunk's address (its proxy): the only peer these answer.
    pub peer: SocketAddr,
    /// The trunk's realm, when configured; any realm from `peer` otherwise.
    pub realm: Option<String>,
}

impl std::fmt::Debug for TrunkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkCredentials")
            .field("username", &self.username)
            .field("peer", &self.peer)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// UAC-only state of a leg.
#[derive(Debug)]
pub(super) struct UacState {
    branch: String,
    credentials: Option<TrunkCredentials>,
    auth_attempts: u8,
    cancel_requested: bool,
    provisional_seen: bool,
    /// The ACK for the 2xx, re-sent on 2xx retransmissions (§13.2.2.4).
    ok_ack: Option<Vec<u8>>,
    /// Targets of the trunk this INVITE already went to (RFC 3263 §4.3 failover).
    tried: Vec<SocketAddr>,
}

/// How long a target that timed out or answered 503 is passed over by new calls.
pub const TARGET_DOWN_FOR: Duration = Duration::from_secs(60);

impl UserAgent {
    fn new_branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{}", self.random_token(10))
    }

    /// Our Via for a request to `dest`, naming the transport that reaches it.
    pub(super) fn via_value(&self, branch: &str, dest: SocketAddr) -> String {
        let t = self.transport_to(dest);
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            t.via_token(),
            self.host_port_for(t)
        )
    }

    /// Start a client transaction for `req` (its top Via carries `branch`).
    pub(super) fn start_client(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        req: Request,
        branch: String,
        purpose: Purpose,
    ) {
        let bytes = req.to_bytes();
        let transport = self.send(dest, bytes.clone());
        let t1 = self.cfg.timers.t1;
        let key: ClientKey = (branch, req.method.clone());
        // Timers A and E retransmit over UDP only (§17.1.1.2, §17.1.2.2); B and F still
        // give up on a stream.
        let (retransmit_at, timeout_at) = (now + t1, now + 64 * t1);
        let retransmit_at = (!transport.is_reliable()).then_some(retransmit_at);
        self.clients.insert(
            key.clone(),
            ClientTxn {
                purpose,
                request: req,
                dest,
                bytes,
                state: ClientState::Trying,
                retransmit_at,
                interval: t1,
                timeout_at: Some(timeout_at),
                expire_at: None,
                ack: None,
            },
        );
        self.schedule(
            retransmit_at.unwrap_or(timeout_at),
            TimerRef::Client(key.clone()),
        );
        self.schedule(timeout_at, TimerRef::Client(key));
    }

    // ───────────────────────────── responses ─────────────────────────────

    pub(super) fn handle_response(&mut self, now: Instant, source: SocketAddr, resp: Response) {
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
        let method = resp
            .headers
            .get("CSeq")
            .and_then(|c| parse_cseq(c).ok())
            .map(|c| c.method);
        let (Some(branch), Some(method)) = (branch, method) else {
            self.stats.responses_dropped += 1;
            return;
        };
        let key: ClientKey = (branch, method);
        let Some(tx) = self.clients.get_mut(&key) else {
            self.stats.responses_dropped += 1;
            tracing::debug!(%source, status = resp.status, "response matches no transaction");
            return;
        };
        let is_invite = key.1 == Method::Invite;
        let t2 = self.cfg.timers.t2;
        match (tx.state, resp.status) {
            (ClientState::Completed, s) if s >= 300 && is_invite => {
                // A retransmitted final response: ACK it again (§17.1.1.2).
                if let Some(ack) = tx.ack.clone() {
                    let dest = tx.dest;
                    self.send(dest, ack);
                }
                return;
            }
            (ClientState::Completed, _) => return,
            (ClientState::Accepted, s) if (200..300).contains(&s) => {
                if let Purpose::Invite(call) = tx.purpose.clone() {
                    self.resend_ok_ack(call);
                }
                return;
            }
            (ClientState::Accepted, _) => return,
            (_, s) if s < 200 => {
                tx.state = ClientState::Proceeding;
                if is_invite {
                    // Timer A stops once a provisional arrives (§17.1.1.2).
                    tx.retransmit_at = None;
                } else {
                    tx.interval = t2;
                }
                if let Purpose::Invite(call) = tx.purpose.clone() {
                    self.invite_provisional(now, call, &resp);
                }
                return;
            }
            _ => {}
        }
        // A final response in Trying/Proceeding.
        tx.retransmit_at = None;
        tx.timeout_at = None;
        let purpose = tx.purpose.clone();
        let request = tx.request.clone();
        if is_invite && resp.status < 300 {
            tx.state = ClientState::Accepted;
            let at = now + 64 * self.cfg.timers.t1; // Timer M
            tx.expire_at = Some(at);
            self.schedule(at, TimerRef::Client(key));
        } else if is_invite {
            // §17.1.1.3: ACK a non-2xx final in the same transaction; Timer D (32 s).
            let ack = non_2xx_ack(&tx.request, &resp).to_bytes();
            tx.ack = Some(ack.clone());
            tx.state = ClientState::Completed;
            let dest = tx.dest;
            let at = now + Duration::from_secs(32);
            tx.expire_at = Some(at);
            self.send(dest, ack);
            self.schedule(at, TimerRef::Client(key));
        } else {
            tx.state = ClientState::Completed;
            let at = now + self.cfg.timers.t4; // Timer K
            tx.expire_at = Some(at);
            self.schedule(at, TimerRef::Client(key));
        }
        self.client_final(now, purpose, &request, Some((&resp, source)));
    }

    /// A transaction's outcome: a final response and where it came from, or `None` when
    /// Timer B/F fired.
    fn client_final(
        &mut self,
        now: Instant,
        purpose: Purpose,
        request: &Request,
        resp: Option<(&Response, SocketAddr)>,
    ) {
        let source = resp.map(|(_, s)| s);
        let resp = resp.map(|(r, _)| r);
        match purpose {
            Purpose::Register(id) => self.register_final(now, id, request, resp),
            Purpose::Ping(id) => self.events.push_back(UaEvent::PingResult {
                id,
                status: resp.map(|r| r.status),
            }),
            Purpose::Bye(call) => self.end_leg(call, EndReason::LocalBye),
            Purpose::Refer(call, cseq) => self.refer_final(call, cseq, resp.map(|r| r.status)),
            Purpose::Info(call) => match resp.map(|r| r.status) {
                Some(s) if s < 300 => {}
                status => {
                    if self.legs.contains_key(&call) {
                        self.events.push_back(UaEvent::InfoFailed { call, status });
                    }
                }
            },
            Purpose::Cancel(call) => tracing::debug!(%call, "CANCEL transaction completed"),
            Purpose::Invite(call) => match resp {
                Some(r) if r.status < 300 => self.invite_answered(now, call, r),
                Some(r) if r.status == 503 && self.fail_over(now, call) => {}
                None if self.fail_over(now, call) => {}
                Some(r) => self.invite_failed(now, source.unwrap_or(self.cfg.local_addr), call, r),
                None => self.end_leg(call, EndReason::Failed(408)),
            },
        }
    }

    fn invite_provisional(&mut self, now: Instant, call: CallHandle, resp: &Response) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        if resp.status == 100 {
            return;
        }
        uac.provisional_seen = true;
        let cancel_now = uac.cancel_requested;
        let sdp = (!resp.body.is_empty()).then(|| resp.body.clone());
        self.events.push_back(UaEvent::Progress {
            call,
            status: resp.status,
            sdp,
        });
        if cancel_now {
            self.send_cancel(now, call);
        }
    }

    fn invite_answered(&mut self, now: Instant, call: CallHandle, resp: &Response) {
        let branch = self.new_branch();
        let Some(peer) = self.legs.get(&call).map(|l| l.peer) else {
            return;
        };
        let via = self.via_value(&branch, peer);
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        // §12.1.2: the dialog takes the remote tag from To, the remote target from Contact,
        // and the route set from Record-Route in reverse order.
        if let Some(to) = resp.headers.get("To") {
            leg.remote_party = to.to_owned();
        }
        if let Some(target) = resp
            .headers
            .get("Contact")
            .and_then(|c| parse_name_addr(c).ok())
        {
            leg.remote_target = target.uri;
        }
        let mut routes: Vec<String> = resp
            .headers
            .get_all("Record-Route")
            .map(str::to_owned)
            .collect();
        routes.reverse();
        leg.route_set = routes;
        leg.state = LegState::Confirmed;
        let cseq = leg.local_cseq;
        let mut ack = Request {
            method: Method::Ack,
            uri: leg.remote_target.clone(),
            version: "SIP/2.0".to_owned(),
            headers: Default::default(),
            body: Vec::new(),
        };
        ack.headers.push("Via", via);
        ack.headers.push("Max-Forwards", "70");
        ack.headers.push("From", leg.local_party.clone());
        ack.headers.push("To", leg.remote_party.clone());
        ack.headers.push("Call-ID", leg.call_id.clone());
        ack.headers.push("CSeq", format!("{cseq} ACK"));
        for r in &leg.route_set {
            ack.headers.push("Route", r.clone());
        }
        let bytes = ack.to_bytes();
        let dest = leg.peer;
        let cancelled = leg.uac.as_ref().is_some_and(|u| u.cancel_requested);
        if let Some(uac) = leg.uac.as_mut() {
            uac.ok_ack = Some(bytes.clone());
        }
        self.send(dest, bytes);
        if cancelled {
            // The callee answered while our CANCEL was in flight (§9.1): end it at once.
            if let Some(leg) = self.legs.get_mut(&call) {
                leg.bye_reason = EndReason::Failed(487);
            }
            self.send_bye(now, call);
            return;
        }
        self.events.push_back(UaEvent::Answered {
            call,
            sdp: resp.body.clone(),
        });
    }

    fn resend_ok_ack(&mut self, call: CallHandle) {
        if let Some(leg) = self.legs.get(&call)
            && let Some(ack) = leg.uac.as_ref().and_then(|u| u.ok_ack.clone())
        {
            let dest = leg.peer;
            self.send(dest, ack);
        }
    }

    fn invite_failed(
        &mut self,
        now: Instant,
        source: SocketAddr,
        call: CallHandle,
        resp: &Response,
    ) {
        let status = resp.status;
        if matches!(status, 401 | 407) && self.retry_with_credentials(now, source, call, resp) {
            return;
        }
        self.end_leg(call, EndReason::Failed(status));
    }

    /// Answer a 401/407 once (again only when the server says the nonce was stale).
    fn retry_with_credentials(
        &mut self,
        now: Instant,
        source: SocketAddr,
        call: CallHandle,
        resp: &Response,
    ) -> bool {
        let header = if resp.status == 401 {
            "WWW-Authenticate"
        } else {
            "Proxy-Authenticate"
        };
        let challenge = resp
            .headers
            .lines(header)
            .find_map(|v| Challenge::parse(v).ok());
        let cnonce = self.random_token(8);
        let branch = self.new_branch();
        let Some(peer) = self.legs.get(&call).map(|l| l.peer) else {
            return false;
        };
        let via = self.via_value(&branch, peer);
        let Some(leg) = self.legs.get_mut(&call) else {
            return false;
        };
        let Some(uac) = leg.uac.as_mut() else {
            return false;
        };
        let (Some(challenge), Some(creds)) = (challenge, uac.credentials.clone()) else {
            return false;
        };
        let realm_ok = creds.realm.as_deref().is_none_or(|r| r == challenge.realm);
        let trunk = |a: SocketAddr| {
            a == creds.peer
                || self
                    .failover
                    .get(&creds.peer)
                    .is_some_and(|g| g.contains(&a))
        };
        if !trunk(leg.peer) || source != leg.peer || !realm_ok {
            tracing::warn!(
                call_id = %leg.call_id,
                %source,
                realm = %challenge.realm,
                "a challenge from outside the trunk the credentials belong to; not answered"
            );
            return false;
        }
        let (user, pass) = (creds.username, creds.password);
        if uac.auth_attempts >= 1 && !challenge.stale {
            tracing::warn!(call_id = %leg.call_id, status = resp.status, "credentials refused");
            return false;
        }
        uac.auth_attempts += 1;
        uac.branch = branch.clone();
        leg.local_cseq += 1;
        let mut req = leg.invite.clone();
        let value = digest::authorization(
            &challenge,
            &Credentials {
                username: &user,
                password: &pass,
                method: "INVITE",
                uri: &req.uri,
                body: &req.body,
            },
            &cnonce,
        );
        let auth_header = if resp.status == 401 {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        req.headers.set("Via", via);
        req.headers
            .set("CSeq", format!("{} INVITE", leg.local_cseq));
        req.headers.remove("Authorization");
        req.headers.remove("Proxy-Authorization");
        req.headers.push(auth_header, value);
        leg.invite = req.clone();
        if let Some(k) = TxKey::of(&req, Method::Invite) {
            leg.invite_key = k;
        }
        let dest = leg.peer;
        self.start_client(now, dest, req, branch, Purpose::Invite(call));
        true
    }

    // ───────────────────────────── failover (RFC 3263 §4.3) ─────────────────────────────

    /// The targets a trunk known by `primary` resolved to, in order (RFC 3263: NAPTR, SRV
    /// priority and weight). An INVITE for `primary` goes to the first target not recently
    /// failed; one that times out or gets 503 is sent again to the next.
    pub fn set_failover(&mut self, primary: SocketAddr, targets: Vec<SocketAddr>) {
        if targets.len() > 1 || targets.first().is_some_and(|t| *t != primary) {
            self.failover.insert(primary, targets);
        } else {
            self.failover.remove(&primary);
        }
    }

    /// Where a new INVITE for `dest` goes: `dest`, or the first live target of its trunk.
    fn pick_target(&self, now: Instant, dest: SocketAddr) -> SocketAddr {
        let Some(targets) = self.failover.get(&dest) else {
            return dest;
        };
        targets
            .iter()
            .copied()
            .find(|t| self.down.get(t).is_none_or(|until| *until <= now))
            .or_else(|| targets.first().copied())
            .unwrap_or(dest)
    }

    /// The INVITE of `call` timed out or got 503: send it to the trunk's next target, if
    /// there is one it has not been to. `false`: no other target, the call fails.
    fn fail_over(&mut self, now: Instant, call: CallHandle) -> bool {
        let Some(leg) = self.legs.get(&call) else {
            return false;
        };
        let failed = leg.peer;
        let Some(targets) = self
            .failover
            .values()
            .find(|g| g.contains(&failed))
            .cloned()
        else {
            return false;
        };
        self.down.insert(failed, now + TARGET_DOWN_FOR);
        if self.down.len() > 4096 {
            self.down.retain(|_, until| *until > now);
        }
        let Some(uac) = self.legs.get_mut(&call).and_then(|l| l.uac.as_mut()) else {
            return false;
        };
        if uac.cancel_requested {
            return false;
        }
        uac.tried.push(failed);
        let tried = uac.tried.clone();
        let Some(next) = targets.iter().copied().find(|t| !tried.contains(t)) else {
            return false;
        };
        let branch = self.new_branch();
        let via = self.via_value(&branch, next);
        let contact = self.contact_for(next);
        let Some(leg) = self.legs.get_mut(&call) else {
            return false;
        };
        tracing::info!(call_id = %leg.call_id, %failed, %next, "no answer from the trunk's target; trying the next (RFC 3263)");
        leg.local_cseq += 1;
        let mut req = leg.invite.clone();
        req.headers.set("Via", via);
        req.headers
            .set("CSeq", format!("{} INVITE", leg.local_cseq));
        req.headers.set("Contact", contact);
        leg.invite = req.clone();
        if let Some(k) = TxKey::of(&req, Method::Invite) {
            leg.invite_key = k;
        }
        leg.peer = next;
        if let Some(uac) = leg.uac.as_mut() {
            uac.branch = branch.clone();
            uac.provisional_seen = false;
        }
        self.start_client(now, next, req, branch, Purpose::Invite(call));
        true
    }

    // ───────────────────────────── commands from the TU ─────────────────────────────

    /// A handle for an outbound call to be placed later with [`UserAgent::invite_as`], so
    /// the TU can open the call's media port (whose number goes into the SDP offer) first.
    pub fn reserve_call(&mut self) -> CallHandle {
        let call = CallHandle(self.next_call);
        self.next_call += 1;
        call
    }

    /// Place an outbound call. Progress, answer and failure come back as events.
    pub fn invite(&mut self, now: Instant, out: OutboundInvite) -> CallHandle {
        let call = self.reserve_call();
        self.invite_as(now, call, out);
        call
    }

    /// Place an outbound call under a handle from [`UserAgent::reserve_call`].
    pub fn invite_as(&mut self, now: Instant, call: CallHandle, mut out: OutboundInvite) {
        out.dest = self.pick_target(now, out.dest);
        let local_tag = self.random_token(8);
        let call_id = format!("{}@ivrflow", self.random_token(12));
        let branch = self.new_branch();
        let via = self.via_value(&branch, out.dest);
        let from = match &out.from_display {
            Some(d) => format!(
                "\"{}\" <{}>;tag={local_tag}",
                d.replace('"', ""),
                out.from_uri
            ),
            None => format!("<{}>;tag={local_tag}", out.from_uri),
        };
        let to = format!("<{}>", out.target);
        let mut req = Request {
            method: Method::Invite,
            uri: out.target.clone(),
            version: "SIP/2.0".to_owned(),
            headers: Default::default(),
            body: out.sdp_offer.clone().into_bytes(),
        };
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers.push("From", from.clone());
        req.headers.push("To", to.clone());
        req.headers.push("Call-ID", call_id.clone());
        req.headers.push("CSeq", "1 INVITE");
        req.headers.push("Contact", self.contact_for(out.dest));
        req.headers.push("Allow", ALLOW);
        req.headers.push("User-Agent", self.cfg.user_agent.clone());
        for (n, v) in &out.headers {
            req.headers.push(n, v.clone());
        }
        req.headers.push("Content-Type", "application/sdp");
        let invite_key = TxKey::of(&req, Method::Invite).unwrap_or(TxKey::Branch {
            branch: branch.clone(),
            sent_by: String::new(),
            method: Method::Invite,
        });
        self.dialogs
            .insert((call_id.clone(), local_tag.clone()), call);
        self.legs.insert(
            call,
            Leg {
                call_id,
                local_tag,
                invite: req.clone(),
                invite_key,
                peer: out.dest,
                remote_target: out.target.clone(),
                route_set: Vec::new(),
                local_party: from,
                remote_party: to,
                local_cseq: 1,
                remote_cseq: 0,
                state: LegState::Early,
                ok_bytes: None,
                ok_retransmit_at: None,
                ok_interval: self.cfg.timers.t1,
                ok_give_up_at: None,
                bye_reason: EndReason::LocalBye,
                local_sdp: out.sdp_offer.clone().into_bytes(),
                reinvite: false,
                refer: None,
                uac: Some(Box::new(UacState {
                    branch: branch.clone(),
                    credentials: out.credentials,
                    auth_attempts: 0,
                    cancel_requested: false,
                    provisional_seen: false,
                    ok_ack: None,
                    tried: Vec::new(),
                })),
            },
        );
        self.start_client(now, out.dest, req, branch, Purpose::Invite(call));
    }

    /// Give up on an outbound call that has not been answered (ring timeout). The CANCEL
    /// goes out once a provisional response has arrived (§9.1); the leg ends with 487.
    pub fn cancel(&mut self, now: Instant, call: CallHandle) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        if uac.cancel_requested {
            return;
        }
        uac.cancel_requested = true;
        if uac.provisional_seen {
            self.send_cancel(now, call);
        }
    }

    fn send_cancel(&mut self, now: Instant, call: CallHandle) {
        let Some(leg) = self.legs.get(&call) else {
            return;
        };
        let Some(uac) = leg.uac.as_ref() else {
            return;
        };
        // §9.1: same Request-URI, Call-ID, From, To (no tag), top Via and CSeq number.
        let inv = &leg.invite;
        let mut req = Request {
            method: Method::Cancel,
            uri: inv.uri.clone(),
            version: "SIP/2.0".to_owned(),
            headers: Default::default(),
            body: Vec::new(),
        };
        for h in ["Via", "Max-Forwards", "From", "To", "Call-ID"] {
            if let Some(v) = inv.headers.get(h) {
                req.headers.push(h, v.to_owned());
            }
        }
        req.headers
            .push("CSeq", format!("{} CANCEL", leg.local_cseq));
        for r in inv.headers.get_all("Route") {
            req.headers.push("Route", r.to_owned());
        }
        let (dest, branch) = (leg.peer, uac.branch.clone());
        self.start_client(now, dest, req, branch, Purpose::Cancel(call));
    }

    /// The robot ends the call: BYE when answered; before that, 480 for a call we
    /// received and CANCEL for one we placed.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(leg) = self.legs.get(&call) else {
            return;
        };
        match (leg.state, leg.uac.is_some()) {
            (LegState::Early, false) => {
                self.reject(now, call, 480, "Temporarily Unavailable", &[]);
            }
            (LegState::Early, true) => self.cancel(now, call),
            // §15: the callee may send BYE once the 2xx is sent, ACK or not.
            (LegState::Answered | LegState::Confirmed, _) => self.send_bye(now, call),
            (LegState::Terminating, _) => {}
        }
    }

    pub(super) fn send_bye(&mut self, now: Instant, call: CallHandle) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        leg.state = LegState::Terminating;
        leg.ok_bytes = None;
        leg.ok_retransmit_at = None;
        leg.ok_give_up_at = None;
        if let Some((req, branch, dest)) = self.dialog_request(call, Method::Bye) {
            self.start_client(now, dest, req, branch, Purpose::Bye(call));
        }
    }

    /// A new request within the dialog of `call` (§12.2.1.1): next local CSeq, Request-URI
    /// the remote target, Route the route set, From/To/Call-ID of the dialog. Returns it
    /// with its branch and where to send it (the peer the dialog talks to).
    pub(super) fn dialog_request(
        &mut self,
        call: CallHandle,
        method: Method,
    ) -> Option<(Request, String, SocketAddr)> {
        let branch = self.new_branch();
        let peer = self.legs.get(&call)?.peer;
        let via = self.via_value(&branch, peer);
        let ua = self.cfg.user_agent.clone();
        let leg = self.legs.get_mut(&call)?;
        leg.local_cseq += 1;
        let mut req = Request {
            method: method.clone(),
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
        req.headers
            .push("CSeq", format!("{} {method}", leg.local_cseq));
        for r in &leg.route_set {
            req.headers.push("Route", r.clone());
        }
        req.headers.push("User-Agent", ua);
        Some((req, branch, leg.peer))
    }

    // ───────────────────────────── timers ─────────────────────────────

    pub(super) fn client_timer(&mut self, now: Instant, key: ClientKey) {
        let t2 = self.cfg.timers.t2;
        let Some(tx) = self.clients.get_mut(&key) else {
            return;
        };
        if tx.expire_at.is_some_and(|t| t <= now) {
            self.clients.remove(&key);
            return;
        }
        if tx.timeout_at.is_some_and(|t| t <= now) {
            // Timer B / F: no final response.
            let purpose = tx.purpose.clone();
            let request = tx.request.clone();
            self.clients.remove(&key);
            tracing::info!(method = %key.1, "request timed out (Timer B/F)");
            self.client_final(now, purpose, &request, None);
            return;
        }
        if let Some(at) = tx.retransmit_at
            && at <= now
        {
            // Timer A doubles without a cap (§17.1.1.2); Timer E is capped at T2.
            tx.interval = if key.1 == Method::Invite {
                tx.interval * 2
            } else {
                (tx.interval * 2).min(t2)
            };
            let next = now + tx.interval;
            tx.retransmit_at = Some(next);
            let (dest, bytes) = (tx.dest, tx.bytes.clone());
            self.send(dest, bytes);
            self.schedule(next, TimerRef::Client(key));
        }
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): same Request-URI, top Via, Call-ID,
/// From and CSeq number; To from the response (with its tag); Route from the request.
fn non_2xx_ack(invite: &Request, resp: &Response) -> Request {
    let mut ack = Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: "SIP/2.0".to_owned(),
        headers: Default::default(),
        body: Vec::new(),
    };
    if let Some(v) = invite.headers.get("Via") {
        ack.headers.push("Via", v.to_owned());
    }
    ack.headers.push("Max-Forwards", "70");
    for h in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(h) {
            ack.headers.push(h, v.to_owned());
        }
    }
    if let Some(v) = resp.headers.get("To").or(invite.headers.get("To")) {
        ack.headers.push("To", v.to_owned());
    }
    let seq = invite
        .headers
        .get("CSeq")
        .and_then(|c| parse_cseq(c).ok())
        .map(|c| c.seq)
        .unwrap_or(1);
    ack.headers.push("CSeq", format!("{seq} ACK"));
    for r in invite.headers.get_all("Route") {
        ack.headers.push("Route", r.to_owned());
    }
    ack
}
