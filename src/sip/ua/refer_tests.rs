//! Transfer support on a virtual clock: REFER and its NOTIFYs (RFC 3515), INFO DTMF sent in a
//! dialog, re-INVITEs from the peer, and a second outbound leg next to an inbound call.

use super::tests::{
    drain, drain_requests, incoming, invite, outbound, peer, reply, statuses, to_tag, trunk, ua,
};
use super::*;

const OUR_SDP: &str = "v=0\r\no=ivrflow 42 1 IN IP4 127.0.0.1\r\ns=ivrflow\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// Every datagram the UA has queued, parsed, with its destination.
fn sent(ua: &mut UserAgent) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(t) = ua.poll_transmit() {
        let m = message::parse(&t.payload).expect("we send parseable SIP");
        out.push((t.dest, m));
    }
    out
}

fn events(ua: &mut UserAgent) -> Vec<UaEvent> {
    std::iter::from_fn(|| ua.poll_event()).collect()
}

/// An answered and ACKed inbound call; returns it and our To tag.
fn established(ua: &mut UserAgent, t0: Instant) -> (CallHandle, String) {
    ua.handle_datagram(t0, peer(), &invite("z9hG4bK-inv"));
    drain(ua);
    let call = incoming(ua);
    ua.answer(t0, call, OUR_SDP);
    let tag = to_tag(&drain(ua)[0]);
    ua.handle_datagram(
        t0,
        peer(),
        &from_caller("ACK", "z9hG4bK-ack", &tag, 1, "", ""),
    );
    assert!(matches!(ua.poll_event(), Some(UaEvent::Confirmed { .. })));
    (call, tag)
}

/// A request from the caller of [`established`] in its dialog.
fn from_caller(
    method: &str,
    branch: &str,
    our_tag: &str,
    cseq: u32,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "{method} sip:ivrflow@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@127.0.0.1:5061>;tag=a1\r\n\
         To: <sip:order-confirmation@127.0.0.1:5060>;tag={our_tag}\r\n\
         Call-ID: call-1@test\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@127.0.0.1:5061>\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn notify(branch: &str, our_tag: &str, cseq: u32, state: &str, frag: &str) -> Vec<u8> {
    notify_for(2, branch, our_tag, cseq, state, frag)
}

/// A NOTIFY of the subscription of the REFER with CSeq `id`.
fn notify_for(id: u32, branch: &str, our_tag: &str, cseq: u32, state: &str, frag: &str) -> Vec<u8> {
    from_caller(
        "NOTIFY",
        branch,
        our_tag,
        cseq,
        &format!(
            "Event: refer;id={id}\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag;version=2.0\r\n"
        ),
        frag,
    )
}

/// Send REFER on `call` and return the request as sent (checked to go to the caller).
fn send_refer(ua: &mut UserAgent, now: Instant, call: CallHandle) -> Request {
    ua.refer(now, call, "sip:agent@10.0.0.5", None).unwrap();
    let mut out = drain_requests(ua);
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn refer_events(ua: &mut UserAgent) -> Vec<String> {
    events(ua)
        .into_iter()
        .map(|e| match e {
            UaEvent::ReferAccepted { .. } => "accepted".to_owned(),
            UaEvent::ReferProgress {
                status, terminated, ..
            } => format!(
                "progress {status}{}",
                if terminated { " terminated" } else { "" }
            ),
            UaEvent::ReferSucceeded { status, .. } => format!("succeeded {status}"),
            UaEvent::ReferFailed { reason, .. } => format!("failed {reason:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn refer_in_an_inbound_call_carries_the_dialog_and_follows_the_notifies() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (call, tag) = established(&mut ua, t0);
    ua.refer(
        t0,
        call,
        "sip:agent@10.0.0.5",
        Some("<sip:robot@127.0.0.1>"),
    )
    .unwrap();
    let out = sent(&mut ua);
    assert_eq!(out.len(), 1);
    let (dest, Message::Request(refer)) = &out[0] else {
        panic!("expected a request");
    };
    assert_eq!(
        *dest,
        peer(),
        "in-dialog requests go where the INVITE came from"
    );
    assert_eq!(refer.method, Method::Refer);
    assert_eq!(
        refer.uri, "sip:alice@127.0.0.1:5061",
        "remote target from Contact"
    );
    assert_eq!(refer.headers.get("CSeq"), Some("2 REFER"));
    assert_eq!(refer.headers.get("Call-ID"), Some("call-1@test"));
    assert_eq!(
        parse_name_addr(refer.headers.get("From").unwrap())
            .unwrap()
            .tag(),
        Some(tag.as_str()),
        "From is our side of the dialog"
    );
    assert_eq!(
        parse_name_addr(refer.headers.get("To").unwrap())
            .unwrap()
            .tag(),
        Some("a1")
    );
    assert_eq!(refer.headers.get("Refer-To"), Some("<sip:agent@10.0.0.5>"));
    assert_eq!(
        refer.headers.get("Referred-By"),
        Some("<sip:robot@127.0.0.1>")
    );
    assert_eq!(
        refer.headers.get("Contact"),
        Some("<sip:ivrflow@127.0.0.1:5060>")
    );
    assert!(
        refer.headers.get("Route").is_none(),
        "no Record-Route, no Route"
    );

    // Timer E: retransmissions at 0.5, 1.5, 3.5 s until a response arrives.
    let mut at = Vec::new();
    for ms in (0..=4000).step_by(100) {
        ua.handle_timeout(t0 + Duration::from_millis(ms));
        for r in drain_requests(&mut ua) {
            assert_eq!(r.headers.get("CSeq"), Some("2 REFER"));
            at.push(ms);
        }
    }
    assert_eq!(at, vec![500, 1500, 3500]);
    let t1 = t0 + Duration::from_millis(4000);
    ua.handle_datagram(t1, peer(), &reply(refer, 202, ""));
    assert_eq!(refer_events(&mut ua), vec!["accepted"]);
    ua.handle_timeout(t1 + Duration::from_secs(10));
    assert!(drain_requests(&mut ua).is_empty(), "no REFER after the 202");

    let t2 = t1 + Duration::from_secs(1);
    ua.handle_datagram(
        t2,
        peer(),
        &notify(
            "z9hG4bK-n1",
            &tag,
            2,
            "active;expires=60",
            "SIP/2.0 100 Trying\r\n",
        ),
    );
    ua.handle_datagram(
        t2,
        peer(),
        &notify(
            "z9hG4bK-n2",
            &tag,
            3,
            "active;expires=60",
            "SIP/2.0 180 Ringing\r\n",
        ),
    );
    // A retransmitted NOTIFY gets the same 200 and no second event.
    ua.handle_datagram(
        t2,
        peer(),
        &notify(
            "z9hG4bK-n2",
            &tag,
            3,
            "active;expires=60",
            "SIP/2.0 180 Ringing\r\n",
        ),
    );
    ua.handle_datagram(
        t2,
        peer(),
        &notify(
            "z9hG4bK-n3",
            &tag,
            4,
            "terminated;reason=noresource",
            "SIP/2.0 200 OK\r\n",
        ),
    );
    let rs = drain(&mut ua);
    assert_eq!(statuses(&rs), vec![200, 200, 200, 200]);
    assert!(
        rs.iter()
            .all(|r| r.headers.get("CSeq").unwrap().ends_with("NOTIFY"))
    );
    assert_eq!(
        refer_events(&mut ua),
        vec![
            "progress 100",
            "progress 180",
            "progress 200 terminated",
            "succeeded 200"
        ]
    );
    // The subscription is over: another NOTIFY is for nothing we know.
    ua.handle_datagram(
        t2,
        peer(),
        &notify("z9hG4bK-n4", &tag, 5, "active", "SIP/2.0 200 OK\r\n"),
    );
    assert_eq!(statuses(&drain(&mut ua)), vec![481]);
    // The deadline passing later reports nothing more.
    ua.handle_timeout(t0 + Duration::from_secs(120));
    assert!(events(&mut ua).is_empty());
    // The TU hangs up after the transfer: BYE with the next CSeq.
    ua.hangup(t2, call);
    let bye = drain_requests(&mut ua).remove(0);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.headers.get("CSeq"), Some("3 BYE"));
}

#[test]
fn refer_in_an_outbound_call_uses_the_callee_contact_and_route_set() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (call, inv) = outbound(&mut ua, t0, None);
    let ok = reply(
        &inv,
        200,
        "Contact: <sip:100@127.0.0.9:5090>\r\nRecord-Route: <sip:p1;lr>\r\nRecord-Route: <sip:p2;lr>\r\n",
    );
    ua.handle_datagram(t0, trunk(), &ok);
    assert!(matches!(ua.poll_event(), Some(UaEvent::Answered { .. })));
    drain_requests(&mut ua); // the ACK
    let refer = send_refer(&mut ua, t0, call);
    assert_eq!(refer.uri, "sip:100@127.0.0.9:5090");
    let routes: Vec<&str> = refer.headers.get_all("Route").collect();
    assert_eq!(routes, vec!["<sip:p2;lr>", "<sip:p1;lr>"]);
    assert_eq!(refer.headers.get("CSeq"), Some("2 REFER"));
    assert!(refer.headers.get("To").unwrap().contains("tag=callee1"));
    ua.handle_datagram(t0, trunk(), &reply(&refer, 202, ""));
    // The callee's NOTIFY: From is the callee (tag callee1), To is us.
    let our_from = refer.headers.get("From").unwrap();
    let callee = refer.headers.get("To").unwrap();
    let frag = "SIP/2.0 486 Busy Here\r\n";
    let notify = format!(
        "NOTIFY sip:ivrflow@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5090;branch=z9hG4bK-cn1\r\nMax-Forwards: 70\r\nFrom: {callee}\r\nTo: {our_from}\r\nCall-ID: {}\r\nCSeq: 1 NOTIFY\r\nEvent: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{frag}",
        refer.headers.get("Call-ID").unwrap(),
        frag.len()
    );
    ua.handle_datagram(t0, trunk(), notify.as_bytes());
    assert_eq!(statuses(&drain(&mut ua)), vec![200]);
    assert_eq!(
        refer_events(&mut ua),
        vec![
            "accepted",
            "progress 486 terminated",
            "failed TargetFailed(486)"
        ]
    );
    assert_eq!(ua.active_calls(), 1, "a failed transfer leaves the call up");
}

#[test]
fn refused_refer_fails_and_later_notifies_get_481() {
    for status in [403u16, 405] {
        let t0 = Instant::now();
        let mut ua = ua();
        let (call, tag) = established(&mut ua, t0);
        let refer = send_refer(&mut ua, t0, call);
        ua.handle_datagram(t0, peer(), &reply(&refer, status, ""));
        assert_eq!(
            refer_events(&mut ua),
            vec![format!("failed Rejected({status})")]
        );
        ua.handle_datagram(
            t0,
            peer(),
            &notify("z9hG4bK-x", &tag, 2, "active", "SIP/2.0 100 Trying\r\n"),
        );
        assert_eq!(statuses(&drain(&mut ua)), vec![481]);
        // A new attempt is allowed, with the next CSeq.
        let again = send_refer(&mut ua, t0, call);
        assert_eq!(again.headers.get("CSeq"), Some("3 REFER"));
    }
}

#[test]
fn unanswered_refer_fails_on_timer_f_and_silent_subscription_on_the_deadline() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (call, tag) = established(&mut ua, t0);
    send_refer(&mut ua, t0, call);
    ua.handle_timeout(t0 + Duration::from_millis(31_999));
    assert!(refer_events(&mut ua).is_empty());
    ua.handle_timeout(t0 + Duration::from_secs(32));
    assert_eq!(refer_events(&mut ua), vec!["failed NoResponse"]);
    drain_requests(&mut ua);

    // Accepted, ringing, then nothing: the deadline ends the wait.
    ua.set_refer_timeout(Duration::from_secs(20));
    let t1 = t0 + Duration::from_secs(40);
    let refer = send_refer(&mut ua, t1, call);
    ua.handle_datagram(t1, peer(), &reply(&refer, 202, ""));
    ua.handle_datagram(
        t1,
        peer(),
        &notify_for(
            3,
            "z9hG4bK-r1",
            &tag,
            2,
            "active",
            "SIP/2.0 180 Ringing\r\n",
        ),
    );
    drain(&mut ua);
    ua.handle_timeout(t1 + Duration::from_millis(19_999));
    assert_eq!(refer_events(&mut ua), vec!["accepted", "progress 180"]);
    ua.handle_timeout(t1 + Duration::from_secs(20));
    assert_eq!(refer_events(&mut ua), vec!["failed Timeout"]);
    // A late final NOTIFY is still answered, but the outcome was already reported.
    ua.handle_datagram(
        t1 + Duration::from_secs(25),
        peer(),
        &notify_for(3, "z9hG4bK-r2", &tag, 3, "terminated", "SIP/2.0 200 OK\r\n"),
    );
    assert_eq!(statuses(&drain(&mut ua)), vec![200]);
    assert!(refer_events(&mut ua).is_empty());
}

#[test]
fn notify_overtaking_the_202_still_reports_accepted_first() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (call, tag) = established(&mut ua, t0);
    let refer = send_refer(&mut ua, t0, call);
    ua.handle_datagram(
        t0,
        peer(),
        &notify("z9hG4bK-o1", &tag, 2, "active", "SIP/2.0 100 Trying\r\n"),
    );
    ua.handle_datagram(t0, peer(), &reply(&refer, 202, ""));
    assert_eq!(statuses(&drain(&mut ua)), vec![200]);
    assert_eq!(refer_events(&mut ua), vec!["accepted", "progress 100"]);
}

#[test]
fn bad_notifies_are_answered_and_never_panic() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (call, tag) = established(&mut ua, t0);
    let refer = send_refer(&mut ua, t0, call);
    ua.handle_datagram(t0, peer(), &reply(&refer, 202, ""));
    assert_eq!(refer_events(&mut ua), vec!["accepted"]);
    // Garbage sipfrag: 400 with a Warning, no progress, the subscription goes on.
    ua.handle_datagram(
        t0,
        peer(),
        &notify("z9hG4bK-b1", &tag, 2, "active", "<html>oops</html>"),
    );
    let rs = drain(&mut ua);
    assert_eq!(statuses(&rs), vec![400]);
    assert!(rs[0].headers.get("Warning").is_some());
    // Wrong event package: 489 Bad Event.
    let wrong_event = from_caller(
        "NOTIFY",
        "z9hG4bK-b2",
        &tag,
        3,
        "Event: presence\r\nSubscription-State: active\r\nContent-Type: message/sipfrag\r\n",
        "SIP/2.0 100 Trying\r\n",
    );
    ua.handle_datagram(t0, peer(), &wrong_event);
    assert_eq!(statuses(&drain(&mut ua)), vec![489]);
    // Another REFER's subscription id: 481.
    let other_id = from_caller(
        "NOTIFY",
        "z9hG4bK-b3",
        &tag,
        4,
        "Event: refer;id=99\r\nSubscription-State: active\r\nContent-Type: message/sipfrag\r\n",
        "SIP/2.0 100 Trying\r\n",
    );
    ua.handle_datagram(t0, peer(), &other_id);
    assert_eq!(statuses(&drain(&mut ua)), vec![481]);
    // A body type we do not read: 415 with Accept.
    let html = from_caller(
        "NOTIFY",
        "z9hG4bK-b4",
        &tag,
        5,
        "Event: refer\r\nSubscription-State: active\r\nContent-Type: text/html\r\n",
        "SIP/2.0 200 OK\r\n",
    );
    ua.handle_datagram(t0, peer(), &html);
    let rs = drain(&mut ua);
    assert_eq!(statuses(&rs), vec![415]);
    assert_eq!(rs[0].headers.get("Accept"), Some("message/sipfrag"));
    assert!(
        refer_events(&mut ua).is_empty(),
        "nothing above reports progress"
    );
    // Terminated with an unreadable body: the transfer failed.
    ua.handle_datagram(
        t0,
        peer(),
        &notify(
            "z9hG4bK-b5",
            &tag,
            6,
            "terminated;reason=timeout",
            "SIP/2.0 ringing",
        ),
    );
    assert_eq!(statuses(&drain(&mut ua)), vec![400]);
    assert_eq!(refer_events(&mut ua), vec!["failed SubscriptionTerminated"]);
    assert_eq!(ua.active_calls(), 1);
}

#[test]
fn notify_outside_a_refer_subscription_gets_481() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (_call, tag) = established(&mut ua, t0);
    // In the dialog, but we sent no REFER.
    ua.handle_datagram(
        t0,
        peer(),
        &notify("z9hG4bK-u1", &tag, 2, "active", "SIP/2.0 100 Trying\r\n"),
    );
    // A dialog we do not have.
    ua.handle_datagram(
        t0,
        peer(),
        &notify(
            "z9hG4bK-u2",
            "nosuchtag",
            2,
            "active",
            "SIP/2.0 100 Trying\r\n",
        ),
    );
    // No dialog at all (no To tag).
    let out_of_dialog = String::from_utf8(notify(
        "z9hG4bK-u3",
        "x",
        2,
        "active",
        "SIP/2.0 100 Trying\r\n",
    ))
    .unwrap()
    .replace(";tag=x", "");
    ua.handle_datagram(t0, peer(), out_of_dialog.as_bytes());
    assert_eq!(statuses(&drain(&mut ua)), vec![481, 481, 481]);
    assert!(events(&mut ua).is_empty());
}

#[test]
fn refer_is_refused_locally_when_it_cannot_be_sent() {
    let t0 = Instant::now();
    let mut ua = ua();
    assert_eq!(
        ua.refer(t0, CallHandle(99), "sip:a@b", None),
        Err(RequestError::NoSuchCall)
    );
    ua.handle_datagram(t0, peer(), &invite("z9hG4bK-early"));
    drain(&mut ua);
    let early = incoming(&mut ua);
    assert_eq!(
        ua.refer(t0, early, "sip:a@b", None),
        Err(RequestError::NotEstablished)
    );
    let mut ua = super::tests::ua();
    let (call, _) = established(&mut ua, t0);
    for bad in ["agent", "sip:a@b\r\nX: y", "http://x"] {
        assert_eq!(
            ua.refer(t0, call, bad, None),
            Err(RequestError::InvalidUri { header: "Refer-To" })
        );
    }
    assert_eq!(
        ua.refer(t0, call, "sip:a@b", Some("robot")),
        Err(RequestError::InvalidUri {
            header: "Referred-By"
        })
    );
    assert!(drain_requests(&mut ua).is_empty(), "nothing sent on errors");
    send_refer(&mut ua, t0, call);
    assert_eq!(
        ua.refer(t0, call, "sip:a@b", None),
        Err(RequestError::ReferInProgress)
    );
}

#[test]
fn dtmf_is_sent_as_info_and_a_refusal_is_reported() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (call, _) = established(&mut ua, t0);
    ua.send_info_dtmf(t0, call, '5', 160).unwrap();
    ua.send_info_dtmf(t0, call, '#', 100).unwrap();
    let infos = drain_requests(&mut ua);
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].method, Method::Info);
    assert_eq!(infos[0].uri, "sip:alice@127.0.0.1:5061");
    assert_eq!(infos[0].headers.get("CSeq"), Some("2 INFO"));
    assert_eq!(infos[1].headers.get("CSeq"), Some("3 INFO"));
    assert_eq!(
        infos[0].headers.get("Content-Type"),
        Some("application/dtmf-relay")
    );
    assert_eq!(infos[0].body, b"Signal=5\r\nDuration=160\r\n");
    assert_eq!(infos[1].body, b"Signal=#\r\nDuration=100\r\n");
    ua.handle_datagram(t0, peer(), &reply(&infos[0], 200, ""));
    ua.handle_datagram(t0, peer(), &reply(&infos[1], 415, ""));
    let ev = events(&mut ua);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(matches!(
        ev[0],
        UaEvent::InfoFailed {
            status: Some(415),
            ..
        }
    ));
    assert_eq!(
        ua.send_info_dtmf(t0, call, 'x', 100),
        Err(RequestError::InvalidDigit)
    );
    // Unanswered INFO: Timer F.
    ua.send_info_dtmf(t0, call, 'a', 100).unwrap();
    assert_eq!(
        drain_requests(&mut ua)[0].body,
        b"Signal=A\r\nDuration=100\r\n"
    );
    ua.handle_timeout(t0 + Duration::from_secs(32));
    assert!(matches!(
        events(&mut ua)[..],
        [UaEvent::InfoFailed { status: None, .. }]
    ));
}

fn offer(version: u32, direction: &str, pt: u8) -> String {
    format!(
        "v=0\r\no=alice 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP {pt} 101\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

fn sdp_extra() -> &'static str {
    "Content-Type: application/sdp\r\n"
}

#[test]
fn reinvite_for_hold_and_unhold_is_answered_with_our_media_mirrored() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (_call, tag) = established(&mut ua, t0);
    let hold = from_caller(
        "INVITE",
        "z9hG4bK-h1",
        &tag,
        2,
        sdp_extra(),
        &offer(2, "sendonly", 0),
    );
    ua.handle_datagram(t0, peer(), &hold);
    let rs = drain(&mut ua);
    assert_eq!(statuses(&rs), vec![200]);
    let body = String::from_utf8(rs[0].body.clone()).unwrap();
    assert!(
        body.contains("a=recvonly\r\n") && !body.contains("a=sendrecv"),
        "{body}"
    );
    assert!(body.contains("o=ivrflow 42 2 "), "version bumped: {body}");
    assert!(
        body.contains("m=audio 20000 RTP/AVP 0 101\r\n"),
        "same media: {body}"
    );
    match events(&mut ua).as_slice() {
        [UaEvent::SessionUpdated { sdp, .. }] => {
            assert!(String::from_utf8_lossy(sdp).contains("a=sendonly"))
        }
        other => panic!("{other:?}"),
    }
    // The 2xx is retransmitted until the ACK; a retransmitted re-INVITE is absorbed.
    ua.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(statuses(&drain(&mut ua)), vec![200]);
    ua.handle_datagram(t0 + Duration::from_millis(600), peer(), &hold);
    assert!(drain(&mut ua).is_empty());
    ua.handle_datagram(
        t0,
        peer(),
        &from_caller("ACK", "z9hG4bK-h1a", &tag, 2, "", ""),
    );
    assert!(events(&mut ua).is_empty(), "no second Confirmed");
    ua.handle_timeout(t0 + Duration::from_secs(40));
    assert!(
        drain(&mut ua).is_empty(),
        "no retransmission after the ACK, no BYE"
    );
    assert_eq!(ua.active_calls(), 1);

    // Unhold: sendrecv again, next version.
    let t1 = t0 + Duration::from_secs(41);
    let unhold = from_caller(
        "INVITE",
        "z9hG4bK-h2",
        &tag,
        3,
        sdp_extra(),
        &offer(3, "sendrecv", 0),
    );
    ua.handle_datagram(t1, peer(), &unhold);
    let rs = drain(&mut ua);
    let body = String::from_utf8(rs[0].body.clone()).unwrap();
    assert!(
        body.contains("a=sendrecv\r\n") && body.contains("o=ivrflow 42 3 "),
        "{body}"
    );
    ua.handle_datagram(
        t1,
        peer(),
        &from_caller("ACK", "z9hG4bK-h2a", &tag, 3, "", ""),
    );
    // A session refresh with nothing changed keeps the version (RFC 3264 §8).
    let refresh = from_caller(
        "INVITE",
        "z9hG4bK-h3",
        &tag,
        4,
        sdp_extra(),
        &offer(3, "sendrecv", 0),
    );
    ua.handle_datagram(t1, peer(), &refresh);
    let body = String::from_utf8(drain(&mut ua)[0].body.clone()).unwrap();
    assert!(body.contains("o=ivrflow 42 3 "), "{body}");
}

#[test]
fn reinvite_we_cannot_take_is_refused_and_overlapping_one_gets_500() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (_call, tag) = established(&mut ua, t0);
    // PCMA only, but our session is PCMU: 488, the session stays.
    let pcma = from_caller(
        "INVITE",
        "z9hG4bK-p1",
        &tag,
        2,
        sdp_extra(),
        &offer(2, "sendrecv", 8),
    );
    ua.handle_datagram(t0, peer(), &pcma);
    assert_eq!(statuses(&drain(&mut ua)), vec![488]);
    let garbage = from_caller(
        "INVITE",
        "z9hG4bK-p2",
        &tag,
        3,
        sdp_extra(),
        "not sdp at all",
    );
    ua.handle_datagram(t0, peer(), &garbage);
    assert_eq!(statuses(&drain(&mut ua)), vec![488]);
    assert!(events(&mut ua).is_empty());
    // Offerless re-INVITE: our SDP goes out as the offer, the ACK carries the answer.
    let offerless = from_caller("INVITE", "z9hG4bK-p3", &tag, 4, "", "");
    ua.handle_datagram(t0, peer(), &offerless);
    let rs = drain(&mut ua);
    assert_eq!(rs[0].body, OUR_SDP.as_bytes());
    // A second re-INVITE before the ACK: 500 with Retry-After (RFC 3261 §14.2).
    let overlap = from_caller(
        "INVITE",
        "z9hG4bK-p4",
        &tag,
        5,
        sdp_extra(),
        &offer(2, "sendrecv", 0),
    );
    ua.handle_datagram(t0, peer(), &overlap);
    let rs = drain(&mut ua);
    assert_eq!(statuses(&rs), vec![500]);
    assert!(rs[0].headers.get("Retry-After").is_some());
    let answer = offer(5, "sendrecv", 0);
    ua.handle_datagram(
        t0,
        peer(),
        &from_caller("ACK", "z9hG4bK-p3a", &tag, 4, sdp_extra(), &answer),
    );
    match events(&mut ua).as_slice() {
        [UaEvent::SessionUpdated { sdp, .. }] => assert_eq!(sdp, answer.as_bytes()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn second_outbound_leg_runs_beside_an_inbound_call() {
    let t0 = Instant::now();
    let mut ua = ua();
    let (caller, tag) = established(&mut ua, t0);
    let (agent, inv) = outbound(&mut ua, t0, None);
    assert_ne!(caller, agent);
    assert_eq!(ua.active_calls(), 2);
    assert_ne!(ua.call_id(agent), ua.call_id(caller));
    ua.handle_datagram(t0, trunk(), &reply(&inv, 180, ""));
    ua.handle_datagram(
        t0,
        trunk(),
        &reply(&inv, 200, "Contact: <sip:agent@127.0.0.1:5080>\r\n"),
    );
    let ev = events(&mut ua);
    assert!(matches!(ev[0], UaEvent::Progress { call, status: 180, .. } if call == agent));
    assert!(matches!(ev[1], UaEvent::Answered { call, .. } if call == agent));
    drain_requests(&mut ua);
    // DTMF from the caller's INFO can be relayed to the agent leg.
    ua.handle_datagram(
        t0,
        peer(),
        &from_caller(
            "INFO",
            "z9hG4bK-i1",
            &tag,
            2,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=7\r\nDuration=160\r\n",
        ),
    );
    assert!(matches!(ua.poll_event(), Some(UaEvent::Info { call, .. }) if call == caller));
    ua.send_info_dtmf(t0, agent, '7', 160).unwrap();
    let out = sent(&mut ua);
    assert_eq!(
        out.len(),
        2,
        "200 for the caller's INFO, our INFO to the agent"
    );
    assert!(matches!(&out[0], (d, Message::Response(r)) if *d == peer() && r.status == 200));
    assert!(
        matches!(&out[1], (d, Message::Request(r)) if *d == trunk() && r.uri == "sip:agent@127.0.0.1:5080")
    );
    // The agent hangs up: only that leg ends.
    let bye = format!(
        "BYE sip:ivrflow@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-ab\r\nFrom: {};tag=callee1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n",
        inv.headers.get("To").unwrap(),
        inv.headers.get("From").unwrap(),
        inv.headers.get("Call-ID").unwrap()
    );
    ua.handle_datagram(t0, trunk(), bye.as_bytes());
    assert_eq!(statuses(&drain(&mut ua)), vec![200]);
    assert!(matches!(
        events(&mut ua)[..],
        [UaEvent::Ended { call, reason: EndReason::RemoteBye }] if call == agent
    ));
    assert_eq!(ua.active_calls(), 1);
    assert_eq!(ua.call_id(caller), Some("call-1@test"));
}
