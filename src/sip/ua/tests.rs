//! UA state-machine tests on a virtual clock: every RFC 3261 timer is exercised by moving
//! `now`, never by sleeping.

use super::*;

const PEER: &str = "127.0.0.1:5061";

pub(super) fn ua() -> UserAgent {
    UserAgent::new(
        UaConfig {
            local_addr: "127.0.0.1:5060".parse().unwrap(),
            advertised: None,
            user_agent: "ivrflow-test".into(),
            timers: TimerValues::default(),
        },
        7,
    )
}

pub(super) fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

pub(super) fn invite(branch: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    format!(
        "INVITE sip:order-confirmation@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@127.0.0.1:5061>;tag=a1\r\n\
         To: <sip:order-confirmation@127.0.0.1:5060>\r\n\
         Call-ID: call-1@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:5061>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn in_dialog(method: &str, branch: &str, to_tag: &str, cseq: u32) -> Vec<u8> {
    format!(
        "{method} sip:ivrflow@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@127.0.0.1:5061>;tag=a1\r\n\
         To: <sip:order-confirmation@127.0.0.1:5060>;tag={to_tag}\r\n\
         Call-ID: call-1@test\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

pub(super) fn drain(ua: &mut UserAgent) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(t) = ua.poll_transmit() {
        match message::parse(&t.payload).expect("we send parseable SIP") {
            Message::Response(r) => out.push(r),
            Message::Request(r) => panic!("unexpected request {:?}", r.method),
        }
    }
    out
}

pub(super) fn drain_requests(ua: &mut UserAgent) -> Vec<Request> {
    let mut out = Vec::new();
    while let Some(t) = ua.poll_transmit() {
        if let Ok(Message::Request(r)) = message::parse(&t.payload) {
            out.push(r);
        }
    }
    out
}

pub(super) fn statuses(rs: &[Response]) -> Vec<u16> {
    rs.iter().map(|r| r.status).collect()
}

pub(super) fn incoming(ua: &mut UserAgent) -> CallHandle {
    match ua.poll_event() {
        Some(UaEvent::IncomingCall { call, .. }) => call,
        other => panic!("expected IncomingCall, got {other:?}"),
    }
}

pub(super) fn to_tag(r: &Response) -> String {
    parse_name_addr(r.headers.get("To").unwrap())
        .unwrap()
        .tag()
        .unwrap()
        .to_owned()
}

#[test]
fn invite_ring_answer_ack_bye() {
    let t0 = Instant::now();
    let mut ua = ua();
    ua.handle_datagram(t0, peer(), &invite("z9hG4bK-1"));
    assert_eq!(statuses(&drain(&mut ua)), vec![100]);
    let call = incoming(&mut ua);
    ua.ring(t0, call);
    ua.answer(t0, call, "v=0\r\n");
    let rs = drain(&mut ua);
    assert_eq!(statuses(&rs), vec![180, 200]);
    let tag = to_tag(&rs[1]);
    assert_eq!(tag, to_tag(&rs[0]), "same tag on 180 and 200");
    // RFC 3581: rport filled in, received added.
    let via = rs[1].headers.get("Via").unwrap();
    assert!(
        via.contains("rport=5061") && via.contains("received=127.0.0.1"),
        "{via}"
    );
    assert!(rs[1].headers.get("Contact").is_some());
    assert_eq!(rs[1].body, b"v=0\r\n");

    ua.handle_datagram(t0, peer(), &in_dialog("ACK", "z9hG4bK-ack", &tag, 1));
    assert!(matches!(ua.poll_event(), Some(UaEvent::Confirmed { .. })));
    // No 200 retransmissions after the ACK.
    ua.handle_timeout(t0 + Duration::from_secs(10));
    assert!(drain(&mut ua).is_empty());

    ua.handle_datagram(t0, peer(), &in_dialog("BYE", "z9hG4bK-bye", &tag, 2));
    assert_eq!(statuses(&drain(&mut ua)), vec![200]);
    assert!(matches!(
        ua.poll_event(),
        Some(UaEvent::Ended {
            reason: EndReason::RemoteBye,
            ..
        })
    ));
    assert_eq!(ua.active_calls(), 0);
    // A retransmitted BYE gets the same 200 from the transaction, not a 481.
    ua.handle_datagram(t0, peer(), &in_dialog("BYE", "z9hG4bK-bye", &tag, 2));
    assert_eq!(statuses(&drain(&mut ua)), vec![200]);
}

/// Behind a proxy (Kamailio's dispatcher): the 180 and 200 carry the INVITE's Record-Route
/// values in order (RFC 3261 §12.1.1), so the caller's ACK and BYE come back through it, and
/// the robot's own BYE follows the route set.
#[test]
fn dialog_responses_copy_record_route_and_our_bye_follows_it() {
    let t0 = Instant::now();
    let mut ua = ua();
    let inv = String::from_utf8(invite("z9hG4bK-rr")).unwrap().replacen(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 69\r\nRecord-Route: <sip:127.0.0.1:5960;lr;r2=on>\r\nRecord-Route: <sip:10.0.0.1;lr>\r\n",
        1,
    );
    ua.handle_datagram(t0, peer(), inv.as_bytes());
    drain(&mut ua);
    let call = incoming(&mut ua);
    ua.ring(t0, call);
    ua.answer(t0, call, "v=0\r\n");
    let rs = drain(&mut ua);
    for r in &rs {
        let rr: Vec<&str> = r.headers.get_all("Record-Route").collect();
        assert_eq!(
            rr,
            ["<sip:127.0.0.1:5960;lr;r2=on>", "<sip:10.0.0.1;lr>"],
            "{}",
            r.status
        );
    }
    let tag = to_tag(&rs[1]);
    ua.handle_datagram(t0, peer(), &in_dialog("ACK", "z9hG4bK-rrack", &tag, 1));
    ua.hangup(t0 + Duration::from_secs(1), call);
    let bye = drain_requests(&mut ua).pop().expect("our BYE");
    let route: Vec<&str> = bye.headers.get_all("Route").collect();
    assert_eq!(
        route,
        ["<sip:127.0.0.1:5960;lr;r2=on>", "<sip:10.0.0.1;lr>"]
    );
}

#[test]
fn ok_is_retransmitted_with_timer_g_backoff_until_ack_then_bye_on_timeout() {
    let t0 = Instant::now();
    let mut ua = ua();
    ua.handle_datagram(t0, peer(), &invite("z9hG4bK-2"));
    drain(&mut ua);
    let call = incoming(&mut ua);
    ua.answer(t0, call, "v=0\r\n");
    drain(&mut ua);
    // Retransmissions at 0.5, 1.5, 3.5, 7.5, 11.5 … (T1 doubling, capped at T2 = 4 s).
    let mut seen = Vec::new();
    let mut ms = 0;
    while ms < 32_000 {
        ua.handle_timeout(t0 + Duration::from_millis(ms));
        for r in drain(&mut ua) {
            assert_eq!(r.status, 200);
            seen.push(ms);
        }
        ms += 100;
    }
    assert_eq!(&seen[..5], &[500, 1500, 3500, 7500, 11500]);
    assert_eq!(seen.len(), 10, "{seen:?}");
    // 64·T1 = 32 s without ACK: the call is ended with a BYE (RFC 3261 §13.3.1.4).
    ua.handle_timeout(t0 + Duration::from_millis(32_000));
    let byes = drain_requests(&mut ua);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].method, Method::Bye);
    let mut ended = None;
    // The BYE is in flight; when it times out (Timer F) the leg ends with AckTimeout.
    ua.handle_timeout(t0 + Duration::from_secs(80));
    while let Some(e) = ua.poll_event() {
        if let UaEvent::Ended { reason, .. } = e {
            ended = Some(reason);
        }
    }
    assert_eq!(ended, Some(EndReason::AckTimeout));
}

#[test]
fn duplicate_invite_is_absorbed() {
    let t0 = Instant::now();
    let mut ua = ua();
    ua.handle_datagram(t0, peer(), &invite("z9hG4bK-3"));
    drain(&mut ua);
    let _call = incoming(&mut ua);
    ua.handle_datagram(
        t0 + Duration::from_millis(500),
        peer(),
        &invite("z9hG4bK-3"),
    );
    // The last provisional (100) is resent; no second call.
    assert_eq!(statuses(&drain(&mut ua)), vec![100]);
    assert!(ua.poll_event().is_none());
    assert_eq!(ua.active_calls(), 1);
}

#[test]
fn cancel_before_answer_gets_200_and_487_and_ack_absorbs() {
    let t0 = Instant::now();
    let mut ua = ua();
    ua.handle_datagram(t0, peer(), &invite("z9hG4bK-4"));
    drain(&mut ua);
    let call = incoming(&mut ua);
    ua.ring(t0, call);
    drain(&mut ua);
    let cancel = String::from_utf8(invite("z9hG4bK-4"))
        .unwrap()
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel =
        cancel.split("Content-Type").next().unwrap().to_owned() + "Content-Length: 0\r\n\r\n";
    ua.handle_datagram(t0, peer(), cancel.as_bytes());
    let rs = drain(&mut ua);
    assert_eq!(statuses(&rs), vec![200, 487]);
    assert_eq!(rs[0].headers.get("CSeq"), Some("1 CANCEL"));
    assert_eq!(rs[1].headers.get("CSeq"), Some("1 INVITE"));
    assert!(matches!(
        ua.poll_event(),
        Some(UaEvent::Ended {
            reason: EndReason::Cancelled,
            ..
        })
    ));
    // Timer G retransmits the 487 until the ACK.
    ua.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(statuses(&drain(&mut ua)), vec![487]);
    let tag = to_tag(&rs[1]);
    let ack = String::from_utf8(in_dialog("ACK", "z9hG4bK-4", &tag, 1)).unwrap();
    ua.handle_datagram(t0 + Duration::from_millis(600), peer(), ack.as_bytes());
    ua.handle_timeout(t0 + Duration::from_secs(3));
    assert!(drain(&mut ua).is_empty(), "ACK stops Timer G");
}

#[test]
fn robot_hangup_sends_bye_retransmits_and_completes() {
    let t0 = Instant::now();
    let mut ua = ua();
    ua.handle_datagram(t0, peer(), &invite("z9hG4bK-5"));
    drain(&mut ua);
    let call = incoming(&mut ua);
    ua.answer(t0, call, "v=0\r\n");
    let tag = to_tag(&drain(&mut ua)[0]);
    ua.handle_datagram(t0, peer(), &in_dialog("ACK", "z9hG4bK-a5", &tag, 1));
    let _ = ua.poll_event();
    ua.hangup(t0, call);
    let byes = drain_requests(&mut ua);
    assert_eq!(byes.len(), 1);
    let bye = &byes[0];
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri, "sip:alice@127.0.0.1:5061");
    assert!(
        bye.headers
            .get("From")
            .unwrap()
            .contains(&format!("tag={tag}"))
    );
    assert!(bye.headers.get("To").unwrap().contains("tag=a1"));
    assert_eq!(bye.headers.get("CSeq"), Some("2 BYE"));
    // Timer E: retransmitted at T1.
    ua.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(drain_requests(&mut ua).len(), 1);
    // The 200 completes it.
    let via = bye.headers.get("Via").unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: call-1@test\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        bye.headers.get("From").unwrap(),
        bye.headers.get("To").unwrap()
    );
    ua.handle_datagram(t0 + Duration::from_millis(600), peer(), ok.as_bytes());
    assert!(matches!(
        ua.poll_event(),
        Some(UaEvent::Ended {
            reason: EndReason::LocalBye,
            ..
        })
    ));
}

#[test]
fn options_unknown_and_unsupported_methods() {
    let t0 = Instant::now();
    let mut ua = ua();
    let req = |m: &str, b: &str| {
        format!(
            "{m} sip:ivrflow@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch={b}\r\nMax-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:ivrflow@127.0.0.1>\r\nCall-ID: o-{b}\r\nCSeq: 1 {m}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    ua.handle_datagram(t0, peer(), req("OPTIONS", "z9hG4bK-o1").as_bytes());
    let r = drain(&mut ua);
    assert_eq!(statuses(&r), vec![200]);
    let allow: Vec<&str> = r[0].headers.get_all("Allow").collect();
    assert_eq!(allow.join(", "), ALLOW);
    ua.handle_datagram(t0, peer(), req("FOO", "z9hG4bK-o2").as_bytes());
    let r = drain(&mut ua);
    assert_eq!(statuses(&r), vec![501]);
    assert!(r[0].headers.get("Allow").is_some());
    ua.handle_datagram(t0, peer(), req("REGISTER", "z9hG4bK-o3").as_bytes());
    let r = drain(&mut ua);
    assert_eq!(statuses(&r), vec![405]);
    assert!(r[0].headers.get("Allow").is_some());
    // In-dialog request for a dialog we do not have.
    ua.handle_datagram(t0, peer(), &in_dialog("BYE", "z9hG4bK-o4", "nope", 5));
    assert_eq!(statuses(&drain(&mut ua)), vec![481]);
    // Garbage is dropped and counted, never answered.
    ua.handle_datagram(t0, peer(), b"\x00\x01 hello");
    assert!(drain(&mut ua).is_empty());
    assert_eq!(ua.stats().unparseable_dropped, 1);
}

#[test]
fn require_and_content_type_policy() {
    let t0 = Instant::now();
    let mut ua = ua();
    let inv = String::from_utf8(invite("z9hG4bK-6")).unwrap();
    let with_require = inv.replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRequire: 100rel, foo\r\n",
    );
    ua.handle_datagram(t0, peer(), with_require.as_bytes());
    let r = drain(&mut ua);
    assert_eq!(statuses(&r), vec![420]);
    let unsupported: Vec<&str> = r[0].headers.get_all("Unsupported").collect();
    assert_eq!(unsupported, vec!["100rel", "foo"]);
    let inv = String::from_utf8(invite("z9hG4bK-7")).unwrap();
    let wrong_type = inv.replace("application/sdp", "text/plain");
    ua.handle_datagram(t0, peer(), wrong_type.as_bytes());
    let r = drain(&mut ua);
    assert_eq!(statuses(&r), vec![415]);
    assert_eq!(r[0].headers.get("Accept"), Some("application/sdp"));
    assert_eq!(ua.active_calls(), 0);
}

// ───────────────────────────── outbound calls (UAC) ─────────────────────────────

pub(super) fn trunk() -> SocketAddr {
    "127.0.0.1:5080".parse().unwrap()
}

pub(super) fn outbound(
    ua: &mut UserAgent,
    now: Instant,
    creds: Option<(&str, &str)>,
) -> (CallHandle, Request) {
    let call = ua.invite(
        now,
        OutboundInvite {
            target: "sip:100@127.0.0.1:5080".into(),
            dest: trunk(),
            from_uri: "sip:shop@127.0.0.1".into(),
            from_display: Some("Shop".into()),
            sdp_offer: "v=0\r\n".into(),
            headers: vec![("X-Order-Id".into(), "7".into())],
            credentials: creds.map(|(u, p)| crate::sip::ua::TrunkCredentials {
                username: u.to_owned(),
                password: p.to_owned(),
                peer: trunk(),
                realm: None,
            }),
        },
    );
    let reqs = drain_requests(ua);
    assert_eq!(reqs.len(), 1);
    (call, reqs.into_iter().next().unwrap())
}

/// A response from the callee to `req`, with a To tag and optional extra headers.
pub(super) fn reply(req: &Request, status: u16, extra: &str) -> Vec<u8> {
    let h = |n| req.headers.get(n).unwrap();
    let to = if status > 100 {
        format!("{};tag=callee1", h("To"))
    } else {
        h("To").to_owned()
    };
    format!(
        "SIP/2.0 {status} X\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        h("Via"),
        h("From"),
        h("Call-ID"),
        h("CSeq")
    )
    .into_bytes()
}

pub(super) fn ended(ua: &mut UserAgent) -> Option<EndReason> {
    let mut r = None;
    while let Some(e) = ua.poll_event() {
        if let UaEvent::Ended { reason, .. } = e {
            r = Some(reason);
        }
    }
    r
}

#[test]
fn outbound_call_answered_acked_and_hung_up() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (call, inv) = outbound(&mut ua, t0, None);
    assert_eq!(inv.method, Method::Invite);
    assert_eq!(inv.uri, "sip:100@127.0.0.1:5080");
    assert_eq!(inv.headers.get("X-Order-Id"), Some("7"));
    assert!(
        inv.headers
            .get("From")
            .unwrap()
            .starts_with("\"Shop\" <sip:shop@127.0.0.1>;tag=")
    );
    ua.handle_datagram(t0, trunk(), &reply(&inv, 100, ""));
    ua.handle_datagram(t0, trunk(), &reply(&inv, 180, ""));
    assert!(matches!(
        ua.poll_event(),
        Some(UaEvent::Progress { status: 180, .. })
    ));
    // No INVITE retransmission after a provisional (Timer A stopped).
    ua.handle_timeout(t0 + Duration::from_secs(2));
    assert!(drain_requests(&mut ua).is_empty());
    let ok = reply(
        &inv,
        200,
        "Contact: <sip:100@127.0.0.9:5090>\r\nRecord-Route: <sip:p1;lr>\r\nRecord-Route: <sip:p2;lr>\r\n",
    );
    ua.handle_datagram(t0, trunk(), &ok);
    assert!(matches!(ua.poll_event(), Some(UaEvent::Answered { .. })));
    let acks = drain_requests(&mut ua);
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        ack.uri, "sip:100@127.0.0.9:5090",
        "ACK goes to the remote target"
    );
    let routes: Vec<&str> = ack.headers.get_all("Route").collect();
    assert_eq!(
        routes,
        vec!["<sip:p2;lr>", "<sip:p1;lr>"],
        "route set reversed"
    );
    assert_eq!(ack.headers.get("CSeq"), Some("1 ACK"));
    assert_ne!(
        parse_via(ack.headers.get("Via").unwrap()).unwrap().branch(),
        parse_via(inv.headers.get("Via").unwrap()).unwrap().branch(),
        "the 2xx ACK is its own transaction"
    );
    // A retransmitted 200 gets the same ACK again.
    ua.handle_datagram(t0 + Duration::from_millis(500), trunk(), &ok);
    assert_eq!(
        drain_requests(&mut ua)[0].headers.get("CSeq"),
        Some("1 ACK")
    );
    ua.hangup(t0 + Duration::from_secs(5), call);
    let bye = drain_requests(&mut ua).remove(0);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.headers.get("CSeq"), Some("2 BYE"));
    assert!(bye.headers.get("To").unwrap().contains("tag=callee1"));
    ua.handle_datagram(t0 + Duration::from_secs(5), trunk(), &reply(&bye, 200, ""));
    assert_eq!(ended(&mut ua), Some(EndReason::LocalBye));
}

#[test]
fn busy_callee_gets_acked_and_the_call_fails_with_486() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (_call, inv) = outbound(&mut ua, t0, None);
    let busy = reply(&inv, 486, "");
    ua.handle_datagram(t0, trunk(), &busy);
    let acks = drain_requests(&mut ua);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method, Method::Ack);
    assert_eq!(
        acks[0].headers.get("Via"),
        inv.headers.get("Via"),
        "a non-2xx ACK reuses the INVITE's branch"
    );
    assert!(acks[0].headers.get("To").unwrap().contains("tag=callee1"));
    assert_eq!(ended(&mut ua), Some(EndReason::Failed(486)));
    ua.handle_datagram(t0 + Duration::from_millis(500), trunk(), &busy);
    assert_eq!(
        drain_requests(&mut ua).len(),
        1,
        "retransmitted 486 is ACKed again"
    );
}

#[test]
fn challenge_is_answered_once_with_digest() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (_call, inv) = outbound(&mut ua, t0, Some(("shop", "secret")));
    let challenge = "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256\r\n";
    ua.handle_datagram(t0, trunk(), &reply(&inv, 401, challenge));
    let reqs = drain_requests(&mut ua);
    assert_eq!(
        reqs.len(),
        2,
        "ACK for the 401, then the authenticated INVITE"
    );
    assert_eq!(reqs[0].method, Method::Ack);
    let inv2 = &reqs[1];
    assert_eq!(inv2.method, Method::Invite);
    assert_eq!(inv2.headers.get("CSeq"), Some("2 INVITE"));
    assert_eq!(inv2.headers.get("Call-ID"), inv.headers.get("Call-ID"));
    assert_eq!(inv2.headers.get("From"), inv.headers.get("From"));
    let auth = inv2.headers.get("Authorization").unwrap();
    assert!(
        auth.contains("username=\"shop\"")
            && auth.contains("algorithm=SHA-256")
            && auth.contains("qop=auth"),
        "{auth}"
    );
    // Refused again: the call fails rather than looping.
    ua.handle_datagram(t0, trunk(), &reply(inv2, 401, challenge));
    let _ = drain_requests(&mut ua);
    assert_eq!(ended(&mut ua), Some(EndReason::Failed(401)));
}

/// Issue 12: a trunk's credentials answer only the trunk. An INVITE to another host
/// (whatever made ivrflow send it there), a challenge from another source, or one naming
/// another realm than the configured one, is not answered: the call fails with the 401.
#[test]
fn credentials_answer_only_their_own_trunk() {
    let t0 = Instant::now();
    let challenge = "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"abc\", qop=\"auth\"\r\n";
    let creds = |peer: SocketAddr, realm: Option<&str>| crate::sip::ua::TrunkCredentials {
        username: "shop".into(),
        password: "secret".into(),
        peer,
        realm: realm.map(str::to_owned),
    };
    let attacker: SocketAddr = "203.0.113.9:5060".parse().unwrap();
    // (where the INVITE goes, where the 401 comes from, the credentials' scope)
    let cases = [
        (attacker, attacker, creds(trunk(), None)),
        (trunk(), attacker, creds(trunk(), None)),
        (trunk(), trunk(), creds(trunk(), Some("other-realm"))),
    ];
    for (dest, source, c) in cases {
        let mut ua = ua();
        let call = ua.invite(
            t0,
            OutboundInvite {
                target: format!("sip:+447700900123@{dest}"),
                dest,
                from_uri: "sip:shop@127.0.0.1".into(),
                from_display: None,
                sdp_offer: "v=0\r\n".into(),
                headers: Vec::new(),
                credentials: Some(c),
            },
        );
        let inv = drain_requests(&mut ua).remove(0);
        ua.handle_datagram(t0, source, &reply(&inv, 401, challenge));
        let reqs = drain_requests(&mut ua);
        assert!(
            reqs.iter()
                .all(|r| r.method != Method::Invite && r.headers.get("Authorization").is_none()),
            "{dest} / {source}: {reqs:?}"
        );
        assert_eq!(ended(&mut ua), Some(EndReason::Failed(401)), "{call}");
    }
    // The configured realm, from the trunk: answered.
    let mut ua = ua();
    let (_call, inv) = outbound(&mut ua, t0, None);
    drop(inv);
    let call = ua.invite(
        t0,
        OutboundInvite {
            target: "sip:100@127.0.0.1:5080".into(),
            dest: trunk(),
            from_uri: "sip:shop@127.0.0.1".into(),
            from_display: None,
            sdp_offer: "v=0\r\n".into(),
            headers: Vec::new(),
            credentials: Some(creds(trunk(), Some("trunk"))),
        },
    );
    let inv = drain_requests(&mut ua).remove(0);
    ua.handle_datagram(t0, trunk(), &reply(&inv, 401, challenge));
    let reqs = drain_requests(&mut ua);
    assert!(
        reqs.iter()
            .any(|r| r.headers.get("Authorization").is_some()),
        "{call}: {reqs:?}"
    );
}

#[test]
fn unanswered_invite_retransmits_on_timer_a_and_fails_on_timer_b() {
    let t0 = Instant::now();
    let mut ua = ua();
    let _ = outbound(&mut ua, t0, None);
    let mut seen = Vec::new();
    let mut ms = 0;
    while ms < 32_000 {
        ua.handle_timeout(t0 + Duration::from_millis(ms));
        seen.extend(drain_requests(&mut ua).into_iter().map(|_| ms));
        ms += 100;
    }
    assert_eq!(seen, vec![500, 1500, 3500, 7500, 15500, 31500]);
    ua.handle_timeout(t0 + Duration::from_millis(32_000));
    assert_eq!(ended(&mut ua), Some(EndReason::Failed(408)));
}

#[test]
fn cancel_waits_for_a_provisional_then_ends_with_487() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (call, inv) = outbound(&mut ua, t0, None);
    ua.cancel(t0, call);
    assert!(
        drain_requests(&mut ua).is_empty(),
        "no CANCEL before a provisional (§9.1)"
    );
    ua.handle_datagram(t0, trunk(), &reply(&inv, 180, ""));
    let cancel = drain_requests(&mut ua).remove(0);
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.headers.get("Via"), inv.headers.get("Via"));
    assert_eq!(cancel.headers.get("CSeq"), Some("1 CANCEL"));
    assert_eq!(cancel.headers.get("To"), inv.headers.get("To"));
    ua.handle_datagram(t0, trunk(), &reply(&cancel, 200, ""));
    ua.handle_datagram(t0, trunk(), &reply(&inv, 487, ""));
    assert_eq!(drain_requests(&mut ua)[0].method, Method::Ack);
    assert_eq!(ended(&mut ua), Some(EndReason::Failed(487)));
}

#[test]
fn callee_hangs_up_an_outbound_call() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (_call, inv) = outbound(&mut ua, t0, None);
    ua.handle_datagram(
        t0,
        trunk(),
        &reply(&inv, 200, "Contact: <sip:100@127.0.0.1:5080>\r\n"),
    );
    let _ = drain_requests(&mut ua);
    let from = inv.headers.get("From").unwrap();
    let our_tag = parse_name_addr(from).unwrap().tag().unwrap().to_owned();
    let bye = format!(
        "BYE sip:ivrflow@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKcb\r\nMax-Forwards: 70\r\nFrom: <sip:100@127.0.0.1:5080>;tag=callee1\r\nTo: {from}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        inv.headers.get("Call-ID").unwrap()
    );
    assert!(bye.contains(&our_tag));
    ua.handle_datagram(t0 + Duration::from_secs(3), trunk(), bye.as_bytes());
    assert_eq!(statuses(&drain(&mut ua)), vec![200]);
    assert_eq!(ended(&mut ua), Some(EndReason::RemoteBye));
}

// ───────────────────────────── registration and keep-alives ─────────────────────────────

fn reg_params(expires: u64) -> RegisterParams {
    RegisterParams {
        registrar: "sip:127.0.0.1:5080".into(),
        dest: trunk(),
        aor: "sip:shop@127.0.0.1".into(),
        contact_user: "shop".into(),
        expires: Duration::from_secs(expires),
        credentials: Some(("shop".into(), "secret".into())),
    }
}

#[test]
fn registration_answers_the_challenge_and_refreshes_before_expiry() {
    let t0 = Instant::now();
    let mut ua = ua();
    let id = ua.register(t0, reg_params(3600));
    let r1 = drain_requests(&mut ua).remove(0);
    assert_eq!(r1.method, Method::Register);
    assert_eq!(r1.headers.get("Expires"), Some("3600"));
    assert_eq!(r1.headers.get("CSeq"), Some("1 REGISTER"));
    ua.handle_datagram(
        t0,
        trunk(),
        &reply(
            &r1,
            401,
            "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"n1\", qop=\"auth\"\r\n",
        ),
    );
    let r2 = drain_requests(&mut ua).remove(0);
    assert_eq!(r2.headers.get("CSeq"), Some("2 REGISTER"));
    assert_eq!(r2.headers.get("Call-ID"), r1.headers.get("Call-ID"));
    assert!(
        r2.headers
            .get("Authorization")
            .unwrap()
            .contains("uri=\"sip:127.0.0.1:5080\"")
    );
    ua.handle_datagram(
        t0,
        trunk(),
        &reply(
            &r2,
            200,
            "Contact: <sip:shop@127.0.0.1:5060>;expires=120\r\n",
        ),
    );
    match ua.poll_event() {
        Some(UaEvent::Registered { id: got, expires }) => {
            assert_eq!(got, id);
            assert_eq!(
                expires,
                Duration::from_secs(120),
                "the registrar's expiry wins"
            );
        }
        other => panic!("{other:?}"),
    }
    ua.handle_timeout(t0 + Duration::from_secs(101));
    assert!(drain_requests(&mut ua).is_empty());
    ua.handle_timeout(t0 + Duration::from_secs(102));
    let r3 = drain_requests(&mut ua).remove(0);
    assert_eq!(
        r3.headers.get("CSeq"),
        Some("3 REGISTER"),
        "refresh at 85 % of 120 s"
    );
}

#[test]
fn registration_failure_backs_off_and_423_raises_the_expiry() {
    let t0 = Instant::now();
    let mut ua = ua();
    let _id = ua.register(t0, reg_params(60));
    let r1 = drain_requests(&mut ua).remove(0);
    ua.handle_datagram(t0, trunk(), &reply(&r1, 423, "Min-Expires: 600\r\n"));
    let r2 = drain_requests(&mut ua).remove(0);
    assert_eq!(r2.headers.get("Expires"), Some("600"));
    ua.handle_datagram(t0, trunk(), &reply(&r2, 503, ""));
    let retry_at = match ua.poll_event() {
        Some(UaEvent::RegistrationFailed {
            status: Some(503),
            retry_at,
            ..
        }) => retry_at,
        other => panic!("{other:?}"),
    };
    let wait = retry_at - t0;
    assert!(
        wait >= Duration::from_secs(30) && wait <= Duration::from_secs(33),
        "{wait:?}"
    );
    ua.handle_timeout(retry_at);
    let r3 = drain_requests(&mut ua).remove(0);
    assert_eq!(r3.method, Method::Register);
}

#[test]
fn options_keepalive_reports_answer_or_silence() {
    let t0 = Instant::now();
    let mut ua = ua();
    let id = ua.ping(t0, trunk(), "sip:127.0.0.1:5080");
    let opt = drain_requests(&mut ua).remove(0);
    assert_eq!(opt.method, Method::Options);
    ua.handle_datagram(t0, trunk(), &reply(&opt, 200, ""));
    assert!(
        matches!(ua.poll_event(), Some(UaEvent::PingResult { id: i, status: Some(200) }) if i == id)
    );
    let id2 = ua.ping(t0, trunk(), "sip:127.0.0.1:5080");
    let _ = drain_requests(&mut ua);
    ua.handle_timeout(t0 + Duration::from_secs(32));
    let mut got = None;
    while let Some(e) = ua.poll_event() {
        if let UaEvent::PingResult { id, status } = e {
            got = Some((id, status));
        }
    }
    assert_eq!(got, Some((id2, None)));
}
