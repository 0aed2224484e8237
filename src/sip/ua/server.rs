//! UAS side of the user agent: incoming requests, server transactions (RFC 3261 §17.2,
//! RFC 6026), and the TU commands that answer an incoming call (ring, answer, reject).

use std::net::SocketAddr;
use std::time::Instant;

use super::*;

impl UserAgent {
    pub(super) fn handle_request(&mut self, now: Instant, source: SocketAddr, req: Request) {
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
                if self.unavailable {
                    // A load balancer probing with OPTIONS moves new calls elsewhere.
                    let extra = [("Retry-After", "10".to_owned())];
                    self.respond_once(now, source, &req, 503, "Service Unavailable", &extra);
                    return;
                }
                let extra = [
                    ("Allow", ALLOW.to_owned()),
                    ("Accept", "application/sdp".to_owned()),
                ];
                self.respond_once(now, source, &req, 200, "OK", &extra);
            }
            // NOTIFY outside a dialog: we hold no subscription that could be its (RFC 6665
            // §4.1.3).
            Method::Bye | Method::Info | Method::Notify => self.respond_once(
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
    pub(super) fn reject_unsupported_require(
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

    pub(super) fn handle_invite(&mut self, now: Instant, source: SocketAddr, req: Request) {
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
        // 100 Trying stops the peer's Timer A retransmissions (§17.2.1). It goes out with
        // `flush_trying`, after the TU has looked at the call: a call answered or refused at
        // once needs none (and a scanner's INVITE gets one datagram back, not two).
        let trying = self.response_to(&req, source, 100, "Trying", None);
        let bytes = trying.to_bytes();
        self.trying.push((key.clone(), source, bytes.clone()));
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
                local_sdp: Vec::new(),
                reinvite: false,
                refer: None,
                uac: None,
            },
        );
        self.events.push_back(UaEvent::IncomingCall {
            call,
            request: Box::new(req),
            source,
        });
    }

    pub(super) fn handle_cancel(&mut self, now: Instant, source: SocketAddr, req: Request) {
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

    pub(super) fn handle_in_dialog(
        &mut self,
        now: Instant,
        source: SocketAddr,
        req: Request,
        to_tag: String,
    ) {
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
            Method::Notify => self.handle_notify(now, source, req, call),
            Method::Invite => self.handle_reinvite(now, source, req, call),
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

    pub(super) fn handle_ack(&mut self, now: Instant, _source: SocketAddr, req: Request) {
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
            if leg.reinvite {
                // The ACK of a re-INVITE's 2xx; with an offerless re-INVITE it carries the
                // peer's answer to the offer we put in the 2xx (RFC 3264 §4).
                leg.reinvite = false;
                if !req.body.is_empty() {
                    self.events.push_back(UaEvent::SessionUpdated {
                        call,
                        sdp: req.body,
                    });
                }
            } else {
                self.events.push_back(UaEvent::Confirmed { call });
            }
        }
    }

    /// The INVITE of `call`, where it came from, our tag and its transaction.
    fn invite_of(&self, call: CallHandle) -> Option<(Request, SocketAddr, String, TxKey)> {
        let leg = self.legs.get(&call)?;
        Some((
            leg.invite.clone(),
            leg.peer,
            leg.local_tag.clone(),
            leg.invite_key.clone(),
        ))
    }

    /// The same, only while the call has no final response yet.
    fn unanswered_invite(&self, call: CallHandle) -> Option<(Request, SocketAddr, String, TxKey)> {
        match self.legs.get(&call) {
            Some(leg) if leg.state == LegState::Early => self.invite_of(call),
            _ => None,
        }
    }

    /// Send 180 Ringing on an incoming call.
    pub fn ring(&mut self, _now: Instant, call: CallHandle) {
        self.provisional(call, 180, "Ringing");
    }

    pub(super) fn provisional(&mut self, call: CallHandle, status: u16, reason: &str) {
        let Some((invite, peer, tag, key)) = self.unanswered_invite(call) else {
            return;
        };
        let mut resp = self.response_to(&invite, peer, status, reason, Some(&tag));
        copy_record_route(&invite, &mut resp);
        resp.headers.push("Contact", self.contact());
        let bytes = resp.to_bytes();
        if let Some(tx) = self.servers.get_mut(&key) {
            tx.last_response = Some(bytes.clone());
        }
        self.send(peer, bytes);
    }

    /// Answer an incoming call with 200 OK carrying `sdp`; retransmitted until ACK.
    pub fn answer(&mut self, now: Instant, call: CallHandle, sdp: &str) {
        let Some((invite, peer, tag, key)) = self.unanswered_invite(call) else {
            return;
        };
        let mut resp = self.response_to(&invite, peer, 200, "OK", Some(&tag));
        copy_record_route(&invite, &mut resp);
        resp.headers.push("Contact", self.contact());
        resp.headers.push("Allow", ALLOW);
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = sdp.as_bytes().to_vec();
        let bytes = resp.to_bytes();
        if let Some(leg) = self.legs.get_mut(&call) {
            leg.local_sdp = sdp.as_bytes().to_vec();
        }
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

    /// Refuse an incoming call with one response and no transaction: no retransmission,
    /// no 100 Trying before it (a stranger's junk INVITE is answered once, never amplified;
    /// if the answer is lost, the INVITE's own retransmission gets another). For refusals
    /// of requests that are not the shop's calls: unknown number (404), bad header (400),
    /// unusable SDP (488).
    pub fn reject_stateless(
        &mut self,
        _now: Instant,
        call: CallHandle,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        if self.legs.get(&call).map(|l| l.state) != Some(LegState::Early) {
            return;
        }
        let Some((invite, peer, tag, key)) = self.invite_of(call) else {
            return;
        };
        let mut resp = self.response_to(&invite, peer, status, reason, Some(&tag));
        for (n, v) in extra {
            resp.headers.push(n, v.clone());
        }
        self.send(peer, resp.to_bytes());
        self.servers.remove(&key);
        self.trying.retain(|(k, _, _)| *k != key);
        self.end_leg(call, EndReason::Rejected(status));
    }

    /// Send the 100 Trying of every INVITE the TU has not answered yet.
    pub fn flush_trying(&mut self) {
        for (key, dest, bytes) in std::mem::take(&mut self.trying) {
            let untouched = self.servers.get(&key).is_some_and(|tx| {
                tx.state == ServerState::Proceeding && tx.last_response.as_ref() == Some(&bytes)
            });
            if untouched {
                self.send(dest, bytes);
            }
        }
    }

    /// Answer a raw request from `source` once, statelessly (`403` to a source outside the
    /// allow-list). ACKs and responses get nothing; junk that does not parse gets nothing.
    pub fn respond_stateless(
        &mut self,
        source: SocketAddr,
        datagram: &[u8],
        status: u16,
        reason: &str,
    ) {
        if let Ok(Message::Request(req)) = message::parse(datagram)
            && req.method != Method::Ack
        {
            let resp = self.response_to(&req, source, status, reason, None);
            self.send(source, resp.to_bytes());
        }
    }

    pub(super) fn server_timer(&mut self, now: Instant, key: TxKey) {
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

    /// Build a response to `req`: Via/From/To/Call-ID/CSeq copied (§8.2.6.2), our tag added to
    /// To (except on 100), rport/received filled in (RFC 3581).
    pub(super) fn response_to(
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
    pub(super) fn respond_once(
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
    pub(super) fn final_invite_response(
        &mut self,
        now: Instant,
        call: CallHandle,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let Some((invite, peer, tag, key)) = self.invite_of(call) else {
            return;
        };
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
}

/// RFC 3261 §12.1.1: a response that establishes a dialog (a 2xx or 18x to INVITE) carries
/// the request's Record-Route values, in order, so the caller's route set goes through the
/// same proxies (Kamailio in front of several nodes).
fn copy_record_route(invite: &Request, resp: &mut Response) {
    for rr in invite.headers.get_all("Record-Route") {
        resp.headers.push("Record-Route", rr);
    }
}
