//! What the user agent does for call transfers (issue 6), on top of an established dialog:
//!
//! - **REFER as the transferor** (RFC 3515): [`UserAgent::refer`] sends REFER in the dialog
//!   as a non-INVITE client transaction (Timer E/F) and follows the implicit `refer`
//!   subscription (RFC 3515 §2.4.4, RFC 6665) through its NOTIFYs, each answered 200 with
//!   a server transaction that absorbs retransmissions.
//!   ```text
//!    refer() ──REFER──▶ Pending ──2xx──▶ Accepted ──NOTIFY 2xx frag──▶ ReferSucceeded
//!                          │                 │ NOTIFY 1xx frag: ReferProgress
//!                          │ 3xx-6xx/Timer F │ NOTIFY ≥300 frag, terminated without a
//!                          ▼                 ▼ final frag, or the deadline passes
//!                      ReferFailed ◀─────────┘
//!   ```
//!   A NOTIFY may overtake the 202 (RFC 3515 §2.4.4); it is processed the same. After the
//!   terminal event the subscription's remaining NOTIFYs are still answered 200 until one
//!   says `terminated`; after that, and on dialogs with no REFER, NOTIFY gets 481.
//! - **INFO DTMF** for a bridge's key relay: [`UserAgent::send_info_dtmf`] sends
//!   `application/dtmf-relay` (`Signal=`/`Duration=`), the format the engine already reads.
//! - **re-INVITE from the peer** (hold, unhold, a new media address, session refresh): the
//!   UA answers 200 with its last SDP, changing only the direction attribute so that it
//!   mirrors the offer (RFC 3264 §6.1) and bumping the o= version when it changed (§8),
//!   then reports [`UaEvent::SessionUpdated`]. An offer we cannot take (no audio, none of
//!   our codec) gets 488 and the session stays as it was (RFC 3261 §14.2).
//!
//! What it deliberately does not do: receive REFER (be the transferee), send re-INVITEs
//! (no hold from our side), attended transfer's Replaces logic (the TU may pass a Refer-To
//! that carries `?Replaces=` itself), or refresh the refer subscription (RFC 3515 has none).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::Purpose;
use super::*;
use crate::pii::Pii;
use crate::sip::sdp::{self, Direction};

/// How long a transfer may take from REFER to the final NOTIFY before it counts as failed:
/// the target's ringing time plus signalling. Change it with [`UserAgent::set_refer_timeout`].
pub const DEFAULT_REFER_TIMEOUT: Duration = Duration::from_secs(60);

/// The REFER we sent on a dialog and the state of its implicit subscription.
#[derive(Debug)]
pub(super) struct ReferState {
    /// CSeq of the REFER: the `id` parameter of the subscription's Event header (§2.4.6).
    cseq: u32,
    /// The REFER got its 2xx (or a NOTIFY showed that it did).
    accepted: bool,
    /// `ReferSucceeded` or `ReferFailed` has been reported: later NOTIFYs are only answered.
    reported: bool,
    /// No final NOTIFY by then: `ReferFailed { Timeout }`.
    deadline: Instant,
}

/// What a NOTIFY carries, read leniently.
#[derive(Debug, PartialEq, Eq)]
enum Frag {
    Status(u16),
    Unreadable,
}

impl UserAgent {
    /// How long [`UserAgent::refer`] waits for the final NOTIFY (default 60 s).
    pub fn set_refer_timeout(&mut self, timeout: Duration) {
        self.refer_timeout = timeout;
    }

    /// Transfer the peer of `call` to `refer_to` (blind transfer, RFC 3515): send REFER in
    /// the dialog. `refer_to` is a URI (`sip:agent@pbx.example`, `tel:+15551230000`) or a
    /// name-addr (`<sip:agent@pbx.example?Replaces=…>`); `referred_by` likewise, for the
    /// optional Referred-By header (RFC 3892). The outcome arrives as events:
    /// [`UaEvent::ReferAccepted`], [`UaEvent::ReferProgress`]…, then exactly one
    /// [`UaEvent::ReferSucceeded`] or [`UaEvent::ReferFailed`] — unless the call ends first
    /// ([`UaEvent::Ended`] says so and no REFER event follows). The call stays up in any
    /// case: after success the TU hangs up.
    pub fn refer(
        &mut self,
        now: Instant,
        call: CallHandle,
        refer_to: &str,
        referred_by: Option<&str>,
    ) -> Result<(), RequestError> {
        let leg = self.legs.get(&call).ok_or(RequestError::NoSuchCall)?;
        if leg.state != LegState::Confirmed {
            return Err(RequestError::NotEstablished);
        }
        if leg.refer.as_ref().is_some_and(|r| !r.reported) {
            return Err(RequestError::ReferInProgress);
        }
        let refer_to =
            header_uri(refer_to).ok_or(RequestError::InvalidUri { header: "Refer-To" })?;
        let referred_by = match referred_by {
            Some(r) => Some(header_uri(r).ok_or(RequestError::InvalidUri {
                header: "Referred-By",
            })?),
            None => None,
        };
        let (mut req, branch, dest) = self
            .dialog_request(call, Method::Refer)
            .ok_or(RequestError::NoSuchCall)?;
        req.headers.push("Contact", self.contact_for(dest));
        req.headers.push("Refer-To", refer_to.clone());
        if let Some(by) = referred_by {
            req.headers.push("Referred-By", by);
        }
        req.headers.push("Allow", ALLOW);
        let cseq = parse_cseq(req.headers.get("CSeq").unwrap_or_default())
            .map(|c| c.seq)
            .unwrap_or(0);
        let deadline = now + self.refer_timeout;
        if let Some(leg) = self.legs.get_mut(&call) {
            tracing::info!(call_id = %leg.call_id, refer_to = %Pii(&refer_to), "transferring the call with REFER");
            leg.refer = Some(Box::new(ReferState {
                cseq,
                accepted: false,
                reported: false,
                deadline,
            }));
        }
        self.schedule(deadline, TimerRef::Refer(call));
        self.start_client(now, dest, req, branch, Purpose::Refer(call, cseq));
        Ok(())
    }

    /// Send one DTMF key in the dialog of `call` as SIP INFO, `application/dtmf-relay`
    /// (`Signal=5`, `Duration=160`), for a bridge relaying keys to a peer that does not take
    /// RFC 4733 events. A refusal or no answer comes back as [`UaEvent::InfoFailed`].
    pub fn send_info_dtmf(
        &mut self,
        now: Instant,
        call: CallHandle,
        digit: char,
        duration_ms: u32,
    ) -> Result<(), RequestError> {
        let digit = digit.to_ascii_uppercase();
        if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D') {
            return Err(RequestError::InvalidDigit);
        }
        let leg = self.legs.get(&call).ok_or(RequestError::NoSuchCall)?;
        if !matches!(leg.state, LegState::Answered | LegState::Confirmed) {
            return Err(RequestError::NotEstablished);
        }
        let (mut req, branch, dest) = self
            .dialog_request(call, Method::Info)
            .ok_or(RequestError::NoSuchCall)?;
        req.headers.push("Content-Type", "application/dtmf-relay");
        req.body = format!("Signal={digit}\r\nDuration={duration_ms}\r\n").into_bytes();
        self.start_client(now, dest, req, branch, Purpose::Info(call));
        Ok(())
    }

    /// The REFER transaction's outcome (`None`: Timer F).
    pub(super) fn refer_final(&mut self, call: CallHandle, cseq: u32, status: Option<u16>) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let Some(refer) = leg.refer.as_mut().filter(|r| r.cseq == cseq) else {
            return;
        };
        match status {
            Some(s) if s < 300 => {
                let first = !refer.accepted;
                refer.accepted = true;
                if first && !refer.reported {
                    self.events.push_back(UaEvent::ReferAccepted { call });
                }
            }
            _ if refer.reported => leg.refer = None,
            status => {
                tracing::info!(call_id = %leg.call_id, ?status, "REFER refused or unanswered");
                leg.refer = None;
                let reason = match status {
                    Some(s) => ReferFailure::Rejected(s),
                    None => ReferFailure::NoResponse,
                };
                self.events.push_back(UaEvent::ReferFailed { call, reason });
            }
        }
    }

    pub(super) fn refer_timer(&mut self, now: Instant, call: CallHandle) {
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let Some(refer) = leg.refer.as_mut() else {
            return;
        };
        if refer.reported || refer.deadline > now {
            return;
        }
        refer.reported = true;
        tracing::info!(call_id = %leg.call_id, "no final NOTIFY for REFER before the deadline");
        self.events.push_back(UaEvent::ReferFailed {
            call,
            reason: ReferFailure::Timeout,
        });
    }

    /// An in-dialog NOTIFY: the refer subscription's, or 481 (RFC 6665 §4.1.3).
    pub(super) fn handle_notify(
        &mut self,
        now: Instant,
        source: SocketAddr,
        req: Request,
        call: CallHandle,
    ) {
        let Some(sub_cseq) = self
            .legs
            .get(&call)
            .and_then(|l| l.refer.as_ref())
            .map(|r| r.cseq)
        else {
            self.respond_once(now, source, &req, 481, "Subscription Does Not Exist", &[]);
            return;
        };
        // Event: refer[;id=<REFER CSeq>] (RFC 3515 §2.4.6; no id means the first REFER).
        let event = req.headers.get("Event").unwrap_or_default();
        let mut parts = event.split(';');
        let package = parts.next().unwrap_or_default().trim();
        if !package.eq_ignore_ascii_case("refer") {
            let extra = [("Allow-Events", "refer".to_owned())];
            self.respond_once(now, source, &req, 489, "Bad Event", &extra);
            return;
        }
        let id = parts.find_map(|p| {
            let (n, v) = p.split_once('=')?;
            n.trim()
                .eq_ignore_ascii_case("id")
                .then(|| v.trim().parse::<u32>().ok())
        });
        if let Some(id) = id
            && id != Some(sub_cseq)
        {
            self.respond_once(now, source, &req, 481, "Subscription Does Not Exist", &[]);
            return;
        }
        let terminated = req
            .headers
            .get("Subscription-State")
            .map(|s| {
                s.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("terminated")
            })
            .unwrap_or(false);
        let ctype = req.headers.get("Content-Type").map(|c| {
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        if !req.body.is_empty() && ctype.as_deref().is_some_and(|c| c != "message/sipfrag") {
            let extra = [("Accept", "message/sipfrag".to_owned())];
            self.respond_once(now, source, &req, 415, "Unsupported Media Type", &extra);
            if terminated {
                self.refer_subscription_over(call, None);
            }
            return;
        }
        let frag = sipfrag_status(&req.body);
        match frag {
            Frag::Status(_) => self.respond_once(now, source, &req, 200, "OK", &[]),
            Frag::Unreadable => {
                // RFC 3515 §2.4.5: the body MUST begin with a status line. Tell the
                // notifier; its subscription state still counts.
                let extra = [(
                    "Warning",
                    "399 ivrflow \"NOTIFY body is not a message/sipfrag status line\"".to_owned(),
                )];
                self.respond_once(now, source, &req, 400, "Bad Request", &extra);
            }
        }
        let status = match frag {
            Frag::Status(s) => Some(s),
            Frag::Unreadable => None,
        };
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        let Some(refer) = leg.refer.as_mut() else {
            return;
        };
        // A NOTIFY means the REFER was accepted, even if its 202 is still on the way
        // (RFC 3515 §2.4.4): report it first so the TU always sees Accepted, Progress….
        if !refer.accepted && !refer.reported {
            self.events.push_back(UaEvent::ReferAccepted { call });
        }
        refer.accepted = true;
        if !refer.reported
            && let Some(status) = status
        {
            self.events.push_back(UaEvent::ReferProgress {
                call,
                status,
                terminated,
            });
        }
        if terminated {
            self.refer_subscription_over(call, status);
        } else if let Some(s) = status.filter(|s| *s >= 200) {
            self.refer_report(call, s);
        }
    }

    /// Report the final sipfrag status `s` once.
    fn refer_report(&mut self, call: CallHandle, s: u16) {
        let Some(refer) = self.legs.get_mut(&call).and_then(|l| l.refer.as_mut()) else {
            return;
        };
        if refer.reported {
            return;
        }
        refer.reported = true;
        self.events.push_back(if s < 300 {
            UaEvent::ReferSucceeded { call, status: s }
        } else {
            UaEvent::ReferFailed {
                call,
                reason: ReferFailure::TargetFailed(s),
            }
        });
    }

    /// The notifier ended the subscription; `last` is the status its last NOTIFY carried.
    fn refer_subscription_over(&mut self, call: CallHandle, last: Option<u16>) {
        match last {
            Some(s) if s >= 200 => self.refer_report(call, s),
            _ => {
                if let Some(refer) = self.legs.get_mut(&call).and_then(|l| l.refer.as_mut())
                    && !refer.reported
                {
                    refer.reported = true;
                    self.events.push_back(UaEvent::ReferFailed {
                        call,
                        reason: ReferFailure::SubscriptionTerminated,
                    });
                }
            }
        }
        if let Some(leg) = self.legs.get_mut(&call) {
            leg.refer = None;
        }
    }

    /// A re-INVITE in an established dialog (RFC 3261 §14.2): answered at once with our
    /// unchanged media, direction mirrored; see the module comment.
    pub(super) fn handle_reinvite(
        &mut self,
        now: Instant,
        source: SocketAddr,
        req: Request,
        call: CallHandle,
    ) {
        if self.reject_unsupported_require(now, source, &req) {
            return;
        }
        let Some(leg) = self.legs.get(&call) else {
            return;
        };
        if leg.state != LegState::Confirmed {
            // §14.2: an INVITE while one is still in progress (our 2xx not yet ACKed).
            let extra = [("Retry-After", "1".to_owned())];
            self.respond_once(now, source, &req, 500, "Server Internal Error", &extra);
            return;
        }
        let ctype = req.headers.get("Content-Type").map(|c| {
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        if !req.body.is_empty() && ctype.as_deref() != Some("application/sdp") {
            let extra = [("Accept", "application/sdp".to_owned())];
            self.respond_once(now, source, &req, 415, "Unsupported Media Type", &extra);
            return;
        }
        let ours = String::from_utf8_lossy(&leg.local_sdp).into_owned();
        let new_local = if req.body.is_empty() {
            // Offerless re-INVITE: our 2xx carries the offer, the ACK the answer (§14.2).
            ours
        } else {
            let usable = sdp::negotiate(&req.body)
                .ok()
                .filter(|n| audio_formats(&ours).contains(&n.codec_pt));
            let Some(neg) = usable else {
                tracing::info!(call_id = %leg.call_id, "re-INVITE offer not acceptable; session unchanged");
                self.respond_once(now, source, &req, 488, "Not Acceptable Here", &[]);
                return;
            };
            let updated = with_direction(&ours, neg.direction);
            if updated == ours {
                ours
            } else {
                bump_origin_version(&updated)
            }
        };
        let Some(key) = TxKey::of(&req, Method::Invite) else {
            return;
        };
        let mut resp = self.response_to(&req, source, 200, "OK", None);
        resp.headers.push("Contact", self.contact_for(source));
        resp.headers.push("Allow", ALLOW);
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = new_local.clone().into_bytes();
        let bytes = resp.to_bytes();
        self.send(source, bytes.clone());
        let t1 = self.cfg.timers.t1;
        // RFC 6026 Accepted: the transaction only absorbs retransmitted re-INVITEs; the
        // dialog retransmits the 2xx until the ACK (§13.3.1.4), as for the first INVITE.
        let expire = now + 64 * t1;
        self.servers.insert(
            key.clone(),
            ServerTxn {
                is_invite: true,
                fingerprint: fingerprint(&req),
                dest: source,
                state: ServerState::Accepted,
                last_response: None,
                retransmit_at: None,
                interval: t1,
                give_up_at: None,
                expire_at: Some(expire),
            },
        );
        self.schedule(expire, TimerRef::Server(key));
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        leg.local_sdp = new_local.into_bytes();
        leg.state = LegState::Answered;
        leg.reinvite = true;
        leg.ok_bytes = Some(bytes);
        leg.ok_interval = t1;
        leg.ok_retransmit_at = Some(now + t1);
        leg.ok_give_up_at = Some(now + 64 * t1);
        if let Some(t) = req.headers.get("Contact")
            && let Ok(n) = parse_name_addr(t)
        {
            // A re-INVITE is a target refresh request (§12.2.2).
            leg.remote_target = n.uri;
        }
        if !req.body.is_empty() {
            self.events.push_back(UaEvent::SessionUpdated {
                call,
                sdp: req.body,
            });
        }
        self.schedule(now + t1, TimerRef::Leg(call));
        self.schedule(now + 64 * t1, TimerRef::Leg(call));
    }
}

/// A header value for Refer-To / Referred-By from a URI or name-addr, or `None` when it is
/// not one (or would smuggle a line break into the message).
fn header_uri(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
    let ok_scheme = |scheme: &str| matches!(scheme, "sip" | "sips" | "tel");
    if s.starts_with('<') || s.starts_with('"') {
        let n = parse_name_addr(s).ok()?;
        let u = parse_uri(&n.uri).ok()?;
        return ok_scheme(&u.scheme).then(|| s.to_owned());
    }
    let u = parse_uri(s).ok()?;
    ok_scheme(&u.scheme).then(|| format!("<{s}>"))
}

/// The status code of a `message/sipfrag` body's first line (`SIP/2.0 180 Ringing`),
/// tolerant of a missing reason phrase, extra spaces, a lower-case protocol name and
/// header lines after it (RFC 3420).
fn sipfrag_status(body: &[u8]) -> Frag {
    let text = String::from_utf8_lossy(body);
    let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Frag::Unreadable;
    };
    let mut words = line.split_ascii_whitespace();
    let proto = words.next().unwrap_or_default();
    if !proto.eq_ignore_ascii_case("SIP/2.0") {
        return Frag::Unreadable;
    }
    match words.next() {
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
            match code.parse::<u16>() {
                Ok(s) if (100..700).contains(&s) => Frag::Status(s),
                _ => Frag::Unreadable,
            }
        }
        _ => Frag::Unreadable,
    }
}

/// Payload type numbers on the first audio m-line of one of our SDPs.
fn audio_formats(sdp: &str) -> Vec<u8> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("m=audio "))
        .map(|rest| {
            rest.split_ascii_whitespace()
                .skip(2)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn direction_attr(d: Direction) -> &'static str {
    match d {
        Direction::SendRecv => "a=sendrecv",
        Direction::SendOnly => "a=sendonly",
        Direction::RecvOnly => "a=recvonly",
        Direction::Inactive => "a=inactive",
    }
}

/// Our SDP with its direction attribute set to `d` (added at the end when it has none).
fn with_direction(sdp: &str, d: Direction) -> String {
    let attr = direction_attr(d);
    let mut found = false;
    let mut out = String::with_capacity(sdp.len() + 16);
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if matches!(
            line,
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
        ) {
            found = true;
            out.push_str(attr);
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    if !found {
        out.push_str(attr);
        out.push_str("\r\n");
    }
    out
}

/// The same SDP with the o= line's session version incremented (RFC 3264 §8).
fn bump_origin_version(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 2);
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        match line.strip_prefix("o=") {
            Some(rest) => {
                let mut f: Vec<String> = rest.split_ascii_whitespace().map(str::to_owned).collect();
                if let Some(v) = f.get(2).and_then(|v| v.parse::<u64>().ok()) {
                    f[2] = v.wrapping_add(1).to_string();
                }
                out.push_str("o=");
                out.push_str(&f.join(" "));
            }
            None => out.push_str(line),
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_status_lines_are_read_leniently() {
        assert_eq!(
            sipfrag_status(b"SIP/2.0 180 Ringing\r\n"),
            Frag::Status(180)
        );
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Frag::Status(200));
        assert_eq!(
            sipfrag_status(b"\r\n  sip/2.0   503\r\n"),
            Frag::Status(503)
        );
        assert_eq!(
            sipfrag_status(b"SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n"),
            Frag::Status(100)
        );
        for bad in [
            &b""[..],
            b"hello",
            b"SIP/2.0",
            b"SIP/2.0 99 Low",
            b"SIP/2.0 1800 Long",
            b"SIP/2.0 abc",
            b"SIP/2.0 700 High",
            b"INVITE sip:x SIP/2.0",
            b"\xff\xfe\x00",
        ] {
            assert_eq!(sipfrag_status(bad), Frag::Unreadable, "{bad:?}");
        }
    }

    #[test]
    fn refer_to_values_are_wrapped_or_refused() {
        assert_eq!(
            header_uri("sip:agent@10.0.0.5").as_deref(),
            Some("<sip:agent@10.0.0.5>")
        );
        assert_eq!(
            header_uri("tel:+15551230000").as_deref(),
            Some("<tel:+15551230000>")
        );
        assert_eq!(
            header_uri("\"Desk\" <sip:desk@pbx>").as_deref(),
            Some("\"Desk\" <sip:desk@pbx>")
        );
        for bad in [
            "",
            "agent",
            "http://x",
            "sip:a@b\r\nX-Evil: 1",
            "<sip:a@b",
            "mailto:a@b",
        ] {
            assert_eq!(header_uri(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn direction_is_replaced_and_version_bumped() {
        let ours = "v=0\r\no=ivrflow 42 1 IN IP4 127.0.0.1\r\ns=ivrflow\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
        assert_eq!(audio_formats(ours), vec![0, 101]);
        let held = with_direction(ours, Direction::RecvOnly);
        assert!(held.contains("a=recvonly\r\n") && !held.contains("sendrecv"));
        assert_eq!(with_direction(ours, Direction::SendRecv), ours);
        let bumped = bump_origin_version(&held);
        assert!(
            bumped.contains("o=ivrflow 42 2 IN IP4 127.0.0.1\r\n"),
            "{bumped}"
        );
        let bare = with_direction("v=0\r\nm=audio 1 RTP/AVP 0\r\n", Direction::Inactive);
        assert!(bare.ends_with("a=inactive\r\n"));
    }
}
