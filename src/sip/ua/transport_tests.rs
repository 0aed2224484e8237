//! Transports and trunk failover in the UA, on a virtual clock (RFC 3261 §18, RFC 3263
//! §4.3): what goes out names the transport it takes, answers reuse the way a request came,
//! streams get no retransmissions, big requests move to TCP, and an INVITE that times out
//! or meets 503 moves on to the trunk's next target.

use std::time::{Duration, Instant};

use super::tests::{invite, ua};
use super::*;

fn out(ua: &mut UserAgent) -> Vec<Transmit> {
    std::iter::from_fn(|| ua.poll_transmit()).collect()
}

fn text(t: &Transmit) -> String {
    String::from_utf8_lossy(&t.payload).into_owned()
}

fn outbound(dest: SocketAddr, body_len: usize) -> OutboundInvite {
    OutboundInvite {
        target: "sip:100@trunk.example".into(),
        dest,
        from_uri: "sip:shop@trunk.example".into(),
        from_display: None,
        sdp_offer: "v".repeat(body_len),
        headers: Vec::new(),
        credentials: None,
    }
}

#[test]
fn answers_go_back_over_the_connection_a_request_came_on() {
    let t0 = Instant::now();
    let mut u = ua();
    u.set_listeners(vec![
        (Transport::Tcp, "127.0.0.1:5060".parse().unwrap()),
        (Transport::Tls, "127.0.0.1:5061".parse().unwrap()),
    ]);
    let caller: SocketAddr = "127.0.0.1:40123".parse().unwrap();
    u.handle_message(t0, caller, Transport::Tls, &invite("z9hG4bKtls1"));
    let call = match u.poll_event() {
        Some(UaEvent::IncomingCall { call, .. }) => call,
        other => panic!("{other:?}"),
    };
    u.answer(t0, call, "v=0\r\n");
    let sent = out(&mut u);
    assert!(!sent.is_empty());
    assert!(
        sent.iter()
            .all(|t| t.transport == Transport::Tls && t.dest == caller)
    );
    let ok = sent
        .iter()
        .find(|t| text(t).starts_with("SIP/2.0 200"))
        .unwrap();
    assert!(
        text(ok).contains("Contact: <sip:ivrflow@127.0.0.1:5061;transport=tls>"),
        "{}",
        text(ok)
    );
    // Our BYE later reuses the same way, with our TLS Via.
    u.hangup(t0, call);
    let bye = out(&mut u)
        .into_iter()
        .find(|t| text(t).starts_with("BYE "))
        .unwrap();
    assert_eq!((bye.transport, bye.dest), (Transport::Tls, caller));
    assert!(
        text(&bye).contains("Via: SIP/2.0/TLS 127.0.0.1:5061;"),
        "{}",
        text(&bye)
    );
}

#[test]
fn a_tcp_trunk_gets_no_retransmissions_and_a_udp_one_gets_tcp_for_big_requests() {
    let t0 = Instant::now();
    let mut u = ua();
    u.set_listeners(vec![(Transport::Tcp, "127.0.0.1:5060".parse().unwrap())]);
    let tcp_trunk: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    u.set_route(tcp_trunk, Transport::Tcp, false);
    u.invite(t0, outbound(tcp_trunk, 100));
    let first = out(&mut u);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].transport, Transport::Tcp);
    assert!(text(&first[0]).contains("Via: SIP/2.0/TCP 127.0.0.1:5060;"));
    assert!(text(&first[0]).contains(";transport=tcp>"));
    // Timer A would have fired at 0.5, 1.5, 3.5 s: nothing over a stream.
    for ms in [600, 1600, 3600, 7600] {
        u.handle_timeout(t0 + Duration::from_millis(ms));
        assert!(out(&mut u).is_empty(), "retransmitted over TCP at {ms} ms");
    }
    // Timer B still ends it.
    u.handle_timeout(t0 + Duration::from_secs(33));
    assert!(std::iter::from_fn(|| u.poll_event()).any(|e| matches!(
        e,
        UaEvent::Ended {
            reason: EndReason::Failed(408),
            ..
        }
    )));

    // A UDP trunk known to take TCP: a small INVITE stays UDP, a big one goes over TCP.
    let udp_trunk: SocketAddr = "192.0.2.11:5060".parse().unwrap();
    u.set_route(udp_trunk, Transport::Udp, true);
    u.invite(t0, outbound(udp_trunk, 100));
    let small = out(&mut u);
    assert_eq!(small[0].transport, Transport::Udp);
    u.invite(t0, outbound(udp_trunk, UDP_MAX_REQUEST));
    let big = out(&mut u);
    assert_eq!(big[0].transport, Transport::Tcp);
    assert!(
        text(&big[0]).contains("Via: SIP/2.0/TCP "),
        "{}",
        text(&big[0])
    );
}

fn respond(u: &mut UserAgent, now: Instant, from: SocketAddr, req: &Transmit, status: u16) {
    let Ok(Message::Request(r)) = message::parse(&req.payload) else {
        panic!("not a request")
    };
    let resp = format!(
        "SIP/2.0 {status} X\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=t\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        r.headers.get("Via").unwrap(),
        r.headers.get("From").unwrap(),
        r.headers.get("To").unwrap(),
        r.headers.get("Call-ID").unwrap(),
        r.headers.get("CSeq").unwrap(),
    );
    u.handle_datagram(now, from, resp.as_bytes());
}

#[test]
fn an_invite_fails_over_on_503_and_on_timeout_and_skips_a_dead_target_later() {
    let t0 = Instant::now();
    let mut u = ua();
    let a: SocketAddr = "127.0.0.1:5071".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:5072".parse().unwrap();
    let c: SocketAddr = "127.0.0.1:5073".parse().unwrap();
    u.set_failover(a, vec![a, b, c]);
    let call = u.invite(t0, outbound(a, 10));
    let to_a = out(&mut u);
    assert_eq!(to_a[0].dest, a);
    respond(&mut u, t0, a, &to_a[0], 503);
    let sent = out(&mut u);
    assert!(
        sent.iter()
            .any(|t| t.dest == a && text(t).starts_with("ACK ")),
        "the 503 is ACKed"
    );
    let to_b = sent
        .iter()
        .find(|t| text(t).starts_with("INVITE "))
        .expect("INVITE to b");
    assert_eq!(to_b.dest, b);
    assert!(text(to_b).contains("CSeq: 2 INVITE"));
    assert!(u.poll_event().is_none(), "the call goes on");
    // b never answers: Timer B, then c.
    u.handle_timeout(t0 + Duration::from_secs(33));
    let to_c = out(&mut u)
        .into_iter()
        .rfind(|t| text(t).starts_with("INVITE "))
        .expect("INVITE to c");
    assert_eq!(to_c.dest, c);
    assert!(text(&to_c).contains("CSeq: 3 INVITE"));
    // c answers 503 too: no target left; the call fails with it.
    respond(&mut u, t0 + Duration::from_secs(33), c, &to_c, 503);
    let ended = std::iter::from_fn(|| u.poll_event()).find_map(|e| match e {
        UaEvent::Ended { call: x, reason } if x == call => Some(reason),
        _ => None,
    });
    assert_eq!(ended, Some(EndReason::Failed(503)));
    assert!(out(&mut u).iter().all(|t| text(t).starts_with("ACK ")));
    // A new call within a minute goes to the first target that did not fail... all did:
    // the first one then. After the hold-down, a again.
    let later = t0 + Duration::from_secs(40);
    u.invite(later, outbound(a, 10));
    assert_eq!(out(&mut u)[0].dest, a);
    u.set_failover(a, vec![a, b]);
    u.down.remove(&b);
    u.invite(later, outbound(a, 10));
    assert_eq!(out(&mut u)[0].dest, b, "a is down for a minute");
    u.invite(t0 + Duration::from_secs(100), outbound(a, 10));
    assert_eq!(out(&mut u)[0].dest, a);
}

#[test]
fn a_sips_request_uri_is_served_over_tls_only() {
    let t0 = Instant::now();
    let sips = String::from_utf8(invite("z9hG4bKs1"))
        .unwrap()
        .replace("INVITE sip:", "INVITE sips:");
    let caller: SocketAddr = "127.0.0.1:40200".parse().unwrap();
    for (transport, answered) in [
        (Transport::Udp, false),
        (Transport::Tcp, false),
        (Transport::Tls, true),
    ] {
        let mut u = ua();
        u.handle_message(t0, caller, transport, sips.as_bytes());
        let incoming = matches!(u.poll_event(), Some(UaEvent::IncomingCall { .. }));
        assert_eq!(incoming, answered, "{transport}");
        if !answered {
            assert!(
                out(&mut u)
                    .iter()
                    .any(|t| text(t).starts_with("SIP/2.0 416 "))
            );
        }
    }
}
