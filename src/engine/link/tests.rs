//! SRTP per call, silence while listening, RTCP and the media timeout, on a virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::super::hostile_tests::{CALLER, engine_with, ports};
use super::super::*;
use super::MediaOptions;
use crate::media::srtp::{CryptoAttr, MasterKey, SrtpSession, Suite};
use crate::sip::message::{Message, parse as parse_message};
use crate::sip::sdp::SrtpPolicy;
use crate::sip::transport::Transport;

const ASK: &str = r#"version: 1
name: ask
description: One question, keys only.
languages: [en]
variables:
  language: { type: string, default: en }
start: ask
nodes:
  ask:
    ask:
      prompt: [hello]
      input: [dtmf]
      timeout: 30s
      intents:
        confirm: { dtmf: ["1"] }
      noinput: { max: 1 }
      nomatch: { max: 1 }
    on:
      confirm: done
      noinput: done
      nomatch: done
  done:
    hangup: { outcome: done }
"#;

const KEY: [u8; 30] = [0x42; 30];

fn opts() -> MediaOptions {
    MediaOptions {
        idle_fill: true,
        rtcp: true,
        timeout: Some(Duration::from_secs(3)),
        inbound_srtp: SrtpPolicy::Optional,
    }
}

fn invite(call_id: &str, proto: &str, crypto: bool) -> Vec<u8> {
    let key = CryptoAttr {
        tag: 1,
        suite: Suite::AesCm128HmacSha1_80,
        key: MasterKey::from_bytes(KEY),
    };
    let mut sdp = format!(
        "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    if crypto {
        sdp.push_str(&format!("a=crypto:{}\r\n", key.to_value()));
    }
    format!(
        "INVITE sip:ask@127.0.0.1:5061 SIP/2.0\r\nVia: SIP/2.0/TLS {CALLER};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:15551230000@127.0.0.1>;tag=c1\r\nTo: <sip:ask@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{CALLER};transport=tls>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// Feeds an INVITE over `transport`; returns the final response and the call, if answered.
fn offer(
    e: &mut Engine,
    now: Instant,
    transport: Transport,
    msg: &[u8],
) -> (Message, Option<CallHandle>, Transport) {
    let mut p = ports();
    let caller: SocketAddr = CALLER.parse().unwrap();
    e.handle_sip_over(now, caller, transport, msg);
    e.pump(now, &mut p);
    let call = std::iter::from_fn(|| e.poll_event()).find_map(|ev| match ev {
        EngineEvent::CallAnswered { call, .. } => Some(call),
        _ => None,
    });
    if let Some(c) = call {
        e.release_answer_with(now, c, &mut p);
    }
    let last = std::iter::from_fn(|| e.poll_transmit())
        .filter(|t| t.payload.starts_with(b"SIP/2.0 ") && !t.payload.starts_with(b"SIP/2.0 1"))
        .last()
        .expect("a final response");
    (parse_message(&last.payload).unwrap(), call, last.transport)
}

fn body(m: &Message) -> String {
    match m {
        Message::Response(r) => String::from_utf8_lossy(&r.body).into_owned(),
        Message::Request(r) => String::from_utf8_lossy(&r.body).into_owned(),
    }
}

fn status(m: &Message) -> u16 {
    match m {
        Message::Response(r) => r.status,
        Message::Request(_) => 0,
    }
}

#[test]
fn a_tls_caller_offering_savp_talks_srtp_both_ways() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "ask", ASK);
    e.set_media_options(MediaOptions {
        timeout: None,
        ..opts()
    });
    let (ok, call, transport) = offer(&mut e, t0, Transport::Tls, &invite("s1", "RTP/SAVP", true));
    assert_eq!(status(&ok), 200);
    assert_eq!(transport, Transport::Tls, "the answer goes back over TLS");
    let sdp = body(&ok);
    assert!(sdp.contains("RTP/SAVP 0 101"), "{sdp}");
    let ours = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=crypto:"))
        .map(|v| CryptoAttr::parse(v).unwrap())
        .expect("our key in the answer");
    assert_eq!((ours.tag, ours.suite), (1, Suite::AesCm128HmacSha1_80));
    assert_ne!(ours.key, MasterKey::from_bytes(KEY), "a key of our own");
    let call = call.unwrap();

    // The caller's side of the session: decrypts what the robot sends, encrypts its keys.
    let mut caller = SrtpSession::new(
        Suite::AesCm128HmacSha1_80,
        &MasterKey::from_bytes(KEY),
        &ours.key,
    )
    .unwrap();
    let mut sent = Vec::new();
    let mut now = t0;
    // 5.2 s: the first report is due 2.5–5 s into the call.
    for _ in 0..260 {
        now += Duration::from_millis(20);
        e.tick_with(now, &mut |_, dest, p| sent.push((dest, p.to_vec())));
        e.handle_timeout(now);
    }
    let rtp: Vec<_> = sent.iter().filter(|(d, _)| d.port() == 41000).collect();
    assert!(
        rtp.len() >= 255,
        "{} packets in 5.2 s (prompt, then silence)",
        rtp.len()
    );
    for (_, p) in &rtp {
        let mut p = p.clone();
        let n = caller
            .unprotect_rtp(&mut p)
            .expect("the robot's packets authenticate");
        assert_eq!(n, 172);
    }
    let rtcp: Vec<_> = sent.iter().filter(|(d, _)| d.port() == 41001).collect();
    assert!(!rtcp.is_empty(), "an SRTCP report within 5 s");
    let mut r = rtcp[0].1.clone();
    let n = caller.unprotect_rtcp(&mut r).expect("SRTCP authenticates");
    assert_eq!(r[1], 200, "a sender report");
    assert!(n >= 28);

    // Key 1 as RFC 4733 events inside SRTP: the question is answered.
    let mut p = ports();
    for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
        let mut pkt = vec![0x80, 101];
        pkt.extend_from_slice(&(100 + i as u16).to_be_bytes());
        pkt.extend_from_slice(&5000u32.to_be_bytes());
        pkt.extend_from_slice(&0xCA11_E400u32.to_be_bytes());
        pkt.extend_from_slice(&[1, if end { 0x8A } else { 0x0A }, 0x01, 0x40]);
        let len = pkt.len();
        pkt.resize(len + 16, 0);
        let n = caller.protect_rtp(&mut pkt, len).unwrap();
        pkt.truncate(n);
        e.handle_rtp_with(now, call, &pkt, &mut p);
    }
    // A forged packet is dropped before anything reads it.
    e.handle_rtp_with(
        now,
        call,
        &[
            0x80, 101, 0, 200, 0, 0, 0, 0, 0xCA, 0x11, 0xE4, 0, 1, 0x8A, 1, 0x40, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0,
        ],
        &mut p,
    );
    for _ in 0..10 {
        now += Duration::from_millis(20);
        e.tick_with(now, &mut |_, _, _| {});
        e.handle_timeout_with(now, &mut p);
    }
    let done = std::iter::from_fn(|| e.poll_event())
        .find_map(|ev| match ev {
            EngineEvent::CallCompleted { record, .. } => Some(record),
            _ => None,
        })
        .expect("the call completed on the key");
    assert_eq!(done.outcome.as_deref(), Some("done"));
    assert!(done.failure.is_none());
    // The hang-up's RTCP BYE, protected.
    let bye = p
        .sent
        .iter()
        .rev()
        .find(|(d, _)| d.port() == 41001)
        .expect("an RTCP BYE");
    let mut b = bye.1.clone();
    let n = caller.unprotect_rtcp(&mut b).unwrap();
    assert!(b[..n].windows(2).any(|w| w == [0x81, 203]));
}

#[test]
fn savp_over_udp_and_plain_rtp_where_srtp_is_required_get_488() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "ask", ASK);
    e.set_media_options(opts());
    let (r, call, _) = offer(&mut e, t0, Transport::Udp, &invite("u1", "RTP/SAVP", true));
    assert_eq!(
        (status(&r), call),
        (488, None),
        "SDES keys in clear text are refused"
    );
    let (r, _, _) = offer(&mut e, t0, Transport::Tcp, &invite("u2", "RTP/SAVP", true));
    assert_eq!(status(&r), 488);
    // Over TLS, a plain offer is fine while SRTP is optional, and refused when required.
    let (r, _, _) = offer(&mut e, t0, Transport::Tls, &invite("u3", "RTP/AVP", false));
    assert_eq!(status(&r), 200);
    assert!(body(&r).contains("RTP/AVP") && !body(&r).contains("crypto"));
    e.set_media_options(MediaOptions {
        inbound_srtp: SrtpPolicy::Required,
        ..opts()
    });
    let (r, call, _) = offer(&mut e, t0, Transport::Tls, &invite("u4", "RTP/AVP", false));
    assert_eq!((status(&r), call), (488, None));
}

#[test]
fn silence_keeps_the_stream_going_and_a_silent_peer_is_hung_up() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "ask", ASK);
    e.set_media_options(opts());
    let (ok, call, _) = offer(&mut e, t0, Transport::Udp, &invite("m1", "RTP/AVP", false));
    assert_eq!(status(&ok), 200);
    let call = call.unwrap();
    let mut p = ports();
    let mut now = t0;
    let mut ticks_with_rtp = 0;
    let mut ticks = 0;
    let mut ended = None;
    let mut last_rx = t0;
    while now < t0 + Duration::from_secs(5) && ended.is_none() {
        now += Duration::from_millis(20);
        let mut n = 0;
        e.tick_with(now, &mut |_, d, _| n += usize::from(d.port() == 41000));
        e.handle_timeout_with(now, &mut p);
        ticks += 1;
        ticks_with_rtp += usize::from(n > 0);
        ended = std::iter::from_fn(|| e.poll_event()).find_map(|ev| match ev {
            EngineEvent::CallCompleted { record, .. } => Some((now, record)),
            _ => None,
        });
        // The caller sends RTP for its first second only.
        if now < t0 + Duration::from_secs(1) {
            let mut pkt = vec![0x80, 0];
            pkt.extend_from_slice(&(ticks as u16).to_be_bytes());
            pkt.extend_from_slice(&(160 * ticks as u32).to_be_bytes());
            pkt.extend_from_slice(&7u32.to_be_bytes());
            pkt.extend_from_slice(&[0xFF; 160]);
            e.handle_rtp_with(now, call, &pkt, &mut p);
            last_rx = now;
        }
    }
    let (at, record) = ended.expect("the silent call was ended");
    assert_eq!(
        record.failure.as_ref().map(|f| f.0),
        Some(crate::crm::events::FailReason::MediaTimeout)
    );
    let silent_for = at - last_rx;
    assert!(
        (Duration::from_secs(3)..Duration::from_millis(3100)).contains(&silent_for),
        "ended {silent_for:?} after the last packet"
    );
    // Every tick sent a packet: the prompt, then silence while the robot listened.
    assert!(
        ticks_with_rtp + 1 >= ticks,
        "{ticks_with_rtp} of {ticks} ticks sent RTP"
    );
    assert!(
        std::iter::from_fn(|| e.poll_transmit()).any(|t| t.payload.starts_with(b"BYE ")),
        "BYE"
    );
}

#[test]
fn a_trunk_with_srtp_offers_both_suites_and_follows_the_answer() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "ask", ASK);
    e.set_media_options(opts());
    let trunk: SocketAddr = "127.0.0.1:5071".parse().unwrap();
    e.set_trunk_srtp(trunk, SrtpPolicy::Required);
    e.ua_mut().set_route(trunk, Transport::Tls, false);
    let mut p = ports();
    let out = OutboundCall {
        call_ref: "r1".into(),
        scenario: "ask".into(),
        to: "100".into(),
        from: "shop".into(),
        variables: Default::default(),
        invite: crate::sip::ua::OutboundInvite {
            target: "sip:100@trunk.example".into(),
            dest: trunk,
            from_uri: "sip:shop@trunk.example".into(),
            from_display: None,
            sdp_offer: String::new(),
            headers: Vec::new(),
            credentials: None,
        },
        ring_timeout: Duration::from_secs(30),
        codecs: Vec::new(),
    };
    e.place_call_with(t0, out, &mut p).unwrap();
    let inv = e.poll_transmit().expect("INVITE");
    assert_eq!(inv.transport, Transport::Tls);
    let text = String::from_utf8_lossy(&inv.payload).into_owned();
    assert!(text.contains("Via: SIP/2.0/TLS "), "{text}");
    assert!(text.contains("m=audio 20002 RTP/SAVP 0 8 101"), "{text}");
    assert!(text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
    assert!(text.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"));
    let Ok(Message::Request(req)) = parse_message(&inv.payload) else {
        panic!("not a request")
    };
    // The callee answers with plain RTP: SRTP was required, so the call ends at once.
    let answer = "v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let via = req.headers.get("Via").unwrap();
    let from = req.headers.get("From").unwrap();
    let to = req.headers.get("To").unwrap();
    let cid = req.headers.get("Call-ID").unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to};tag=callee\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:callee@127.0.0.1:5071;transport=tls>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
        answer.len()
    );
    e.handle_sip_over(t0, trunk, Transport::Tls, ok.as_bytes());
    e.pump(t0, &mut p);
    let failed = std::iter::from_fn(|| e.poll_event()).find_map(|ev| match ev {
        EngineEvent::CallFailed { detail, .. } => Some(detail),
        _ => None,
    });
    assert!(
        failed
            .as_deref()
            .is_some_and(|d| d.contains("SRTP is required")),
        "{failed:?}"
    );
}
