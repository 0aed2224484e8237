//! UA state-machine tests on a virtual clock: every RFC 3261 timer is exercised by moving
//! `now`, never by sleeping.

use super::*;

const PEER: &str = "127.0.0.1:5061";

fn ua() -> UserAgent {
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

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

fn invite(branch: &str) -> Vec<u8> {
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

fn drain(ua: &mut UserAgent) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(t) = ua.poll_transmit() {
        match message::parse(&t.payload).expect("we send parseable SIP") {
            Message::Response(r) => out.push(r),
            Message::Request(r) => panic!("unexpected request {:?}", r.method),
        }
    }
    out
}

fn drain_requests(ua: &mut UserAgent) -> Vec<Request> {
    let mut out = Vec::new();
    while let Some(t) = ua.poll_transmit() {
        if let Ok(Message::Request(r)) = message::parse(&t.payload) {
            out.push(r);
        }
    }
    out
}

fn statuses(rs: &[Response]) -> Vec<u16> {
    rs.iter().map(|r| r.status).collect()
}

fn incoming(ua: &mut UserAgent) -> CallHandle {
    match ua.poll_event() {
        Some(UaEvent::IncomingCall { call, .. }) => call,
        other => panic!("expected IncomingCall, got {other:?}"),
    }
}

fn to_tag(r: &Response) -> String {
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
