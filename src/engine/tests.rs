//! The engine's outbound path on a virtual clock: INVITE with our offer, the callee's
//! answer starting the scenario, the ring timeout's CANCEL, and SIP outcomes becoming
//! dispositions. The peer is played by hand-written responses to what the engine sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::test_support::MediaPorts;
use super::*;
use crate::media::prompts::{Prompt, PromptCache};
use crate::sip::message::{Message, parse as parse_message};
use crate::sip::ua::{TimerValues, UaConfig};

const SCENARIO: &str = r#"version: 1
name: hello
description: Says hello and hangs up.
languages: [en]
variables:
  language: { type: string, default: en }
start: bye
nodes:
  bye:
    hangup: { outcome: greeted, play: [hello] }
"#;

struct Ports(u16);

impl MediaPorts for Ports {
    fn open(&mut self, _call: CallHandle) -> std::io::Result<u16> {
        self.0 += 2;
        Ok(self.0)
    }
    fn close(&mut self, _call: CallHandle) {}
}

fn engine(t0: Instant) -> Engine {
    let cfg = EngineConfig {
        ua: UaConfig {
            local_addr: "127.0.0.1:5060".parse().unwrap(),
            advertised: None,
            user_agent: "test".into(),
            timers: TimerValues::default(),
        },
        media_ip: "127.0.0.1".parse().unwrap(),
        inbound: crate::catalog::Inbound {
            routes: BTreeMap::new(),
            by_name: true,
        },
        max_calls: 10,
        seed: 7,
        transfer_route: None,
        max_call_duration: DEFAULT_MAX_CALL_DURATION,
        strict_rtp: Default::default(),
        max_calls_per_source: None,
        trusted: Vec::new(),
    };
    let scenario = crate::scenario::load_str("hello.yaml", SCENARIO).unwrap();
    let mut prompts = PromptCache::new();
    prompts.insert("en", Prompt::from_pcm("hello", vec![0i16; 8000]));
    Engine::new(
        cfg,
        BTreeMap::from([("hello".to_owned(), Arc::new(scenario))]),
        Arc::new(prompts),
        (t0, SystemTime::UNIX_EPOCH),
    )
}

const TRUNK: &str = "127.0.0.1:5070";

fn call(to: &str) -> OutboundCall {
    OutboundCall {
        call_ref: format!("ref-{to}"),
        scenario: "hello".into(),
        to: to.into(),
        from: "shop".into(),
        variables: BTreeMap::from([("order_id".to_owned(), "4711".to_owned())]),
        invite: OutboundInvite {
            target: format!("sip:{to}@{TRUNK}"),
            dest: TRUNK.parse().unwrap(),
            from_uri: format!("sip:shop@{TRUNK}"),
            from_display: None,
            sdp_offer: String::new(),
            headers: Vec::new(),
            credentials: None,
        },
        ring_timeout: Duration::from_secs(20),
        codecs: Vec::new(),
    }
}

/// The requests the engine sent, parsed.
fn sent(e: &mut Engine) -> Vec<crate::sip::message::Request> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        if let Ok(Message::Request(r)) = parse_message(&t.payload) {
            out.push(r);
        }
    }
    out
}

/// The INVITE among what the engine sent.
fn invite_of(e: &mut Engine) -> crate::sip::message::Request {
    sent(e)
        .into_iter()
        .find(|r| r.method == crate::sip::message::Method::Invite)
        .expect("an INVITE")
}

/// A response to `req` from the callee, with a To tag.
fn respond(req: &crate::sip::message::Request, status: u16, reason: &str, sdp: &str) -> Vec<u8> {
    let h = |n: &str| req.headers.get(n).unwrap_or("").to_owned();
    let mut msg = format!(
        "SIP/2.0 {status} {reason}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=callee\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:callee@{TRUNK}>\r\n",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq")
    );
    if sdp.is_empty() {
        msg.push_str("Content-Length: 0\r\n\r\n");
    } else {
        msg.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ));
    }
    msg.into_bytes()
}

const ANSWER: &str = "v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn events(e: &mut Engine) -> Vec<EngineEvent> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

#[test]
fn an_answered_outbound_call_runs_its_scenario_and_hangs_up() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut ports = SendingPorts::default();
    let c = e.place_call_with(t0, call("100"), &mut ports).unwrap();
    let invite = invite_of(&mut e);
    assert_eq!(invite.uri, format!("sip:100@{TRUNK}"));
    let offer = String::from_utf8(invite.body.clone()).unwrap();
    assert!(offer.contains("m=audio 20002 RTP/AVP 0 8 101"), "{offer}");
    let evs = events(&mut e);
    assert!(matches!(&evs[0], EngineEvent::CallStarted { origin, .. }
        if origin.call_ref.as_deref() == Some("ref-100") && origin.direction == "outbound"
            && origin.variables["dialled"] == "100"));
    assert_eq!(e.live_calls(), 1);

    let trunk: SocketAddr = TRUNK.parse().unwrap();
    let t1 = t0 + Duration::from_millis(300);
    e.handle_sip_with(t1, trunk, &respond(&invite, 180, "Ringing", ""), &mut ports);
    let t2 = t0 + Duration::from_secs(2);
    e.handle_sip_with(t2, trunk, &respond(&invite, 200, "OK", ANSWER), &mut ports);
    let acks = sent(&mut e);
    assert!(
        acks.iter()
            .any(|r| r.method == crate::sip::message::Method::Ack)
    );
    assert!(
        events(&mut e)
            .iter()
            .any(|ev| matches!(ev, EngineEvent::CallAnswered { call, .. } if *call == c))
    );

    // The prompt goes out in the callee's codec (PCMA, PT 8), from the answer on: its
    // first packet at once, the rest on the ticks.
    let mut packets: Vec<(SocketAddr, u8)> = ports
        .sent
        .drain(..)
        .map(|(dest, p)| (dest, p[1] & 0x7f))
        .collect();
    assert_eq!(packets.len(), 1);
    let mut now = t2;
    for _ in 0..60 {
        e.tick_with(now, &mut |_, dest, pkt| packets.push((dest, pkt[1] & 0x7f)));
        e.handle_timeout_with(now, &mut ports);
        now += Duration::from_millis(20);
    }
    assert_eq!(packets.len(), 50, "one second of prompt");
    assert!(
        packets
            .iter()
            .all(|(d, pt)| *d == "127.0.0.1:40000".parse().unwrap() && *pt == 8)
    );
    // The scenario hung up: BYE, and the record says outbound.
    assert!(
        sent(&mut e)
            .iter()
            .any(|r| r.method == crate::sip::message::Method::Bye)
    );
    let done = events(&mut e)
        .into_iter()
        .find_map(|ev| match ev {
            EngineEvent::CallCompleted { record: r, .. } => Some(r),
            _ => None,
        })
        .expect("call.completed");
    assert_eq!(done.direction, "outbound");
    assert_eq!(done.outcome.as_deref(), Some("greeted"));
}

#[test]
fn ring_timeout_cancels_and_statuses_become_dispositions() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut ports = Ports(20000);
    let trunk: SocketAddr = TRUNK.parse().unwrap();

    // Rings past the timeout: CANCEL, then the 487 means no answer (no SIP code).
    let c = e.place_call_with(t0, call("200"), &mut ports).unwrap();
    let invite = invite_of(&mut e);
    e.handle_sip_with(t0, trunk, &respond(&invite, 180, "Ringing", ""), &mut ports);
    let t1 = t0 + Duration::from_secs(20);
    e.handle_timeout_with(t1, &mut ports);
    let cancel = sent(&mut e)
        .into_iter()
        .find(|r| r.method == crate::sip::message::Method::Cancel)
        .expect("CANCEL at the ring timeout");
    e.handle_sip_with(t1, trunk, &respond(&cancel, 200, "OK", ""), &mut ports);
    e.handle_sip_with(
        t1,
        trunk,
        &respond(&invite, 487, "Request Terminated", ""),
        &mut ports,
    );
    let failed = events(&mut e)
        .into_iter()
        .find_map(|ev| match ev {
            EngineEvent::CallFailed {
                call,
                reason,
                sip_code,
                ..
            } if call == c => Some((reason, sip_code)),
            _ => None,
        })
        .expect("call.failed");
    assert_eq!(failed, (FailReason::NoAnswer, None));

    // Busy, declined, and any other failure.
    for (status, reason, want) in [
        (486, "Busy Here", FailReason::Busy),
        (603, "Decline", FailReason::Rejected),
        (404, "Not Found", FailReason::Error),
    ] {
        let c = e
            .place_call_with(t1, call(&status.to_string()), &mut ports)
            .unwrap();
        let invite = invite_of(&mut e);
        e.handle_sip_with(t1, trunk, &respond(&invite, status, reason, ""), &mut ports);
        let got = events(&mut e).into_iter().find_map(|ev| match ev {
            EngineEvent::CallFailed {
                call,
                reason,
                sip_code,
                ..
            } if call == c => Some((reason, sip_code)),
            _ => None,
        });
        assert_eq!(got, Some((want, Some(status))), "{status}");
    }
    assert_eq!(e.live_calls(), 0);
}

#[test]
fn capacity_and_unknown_scenarios_place_nothing() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut ports = Ports(20000);
    let mut bad = call("1");
    bad.scenario = "nope".into();
    assert_eq!(
        e.place_call_with(t0, bad, &mut ports),
        Err(PlaceError::UnknownScenario("nope".into()))
    );
    for i in 0..10 {
        e.place_call_with(t0, call(&i.to_string()), &mut ports)
            .unwrap();
    }
    assert_eq!(
        e.place_call_with(t0, call("11"), &mut ports),
        Err(PlaceError::AtCapacity(10))
    );
}

const KEY_SCENARIO: &str = r#"version: 1
name: key
description: Asks until 1 is pressed, then thanks.
languages: [en]
variables:
  language: { type: string, default: en }
start: ask
nodes:
  ask:
    ask:
      prompt: [hello]
      input: [dtmf]
      timeout: 100ms
      barge_in: true
      intents:
        confirm: { dtmf: ["1"] }
      noinput: { max: 1000 }
      nomatch: { max: 1000 }
    on:
      confirm: done
      noinput: done
      nomatch: done
  done:
    hangup: { outcome: confirmed, play: [thanks] }
"#;

/// RFC 4733 key `1` as a burst of six packets (start, updates, three ends), as a
/// carrier that sends the whole event at once would.
fn key_burst() -> Vec<Vec<u8>> {
    [
        (false, 160u16),
        (false, 320),
        (false, 480),
        (true, 640),
        (true, 640),
        (true, 640),
    ]
    .into_iter()
    .enumerate()
    .map(|(k, (end, dur))| {
        let mut p = vec![0x80u8, 101 | if k == 0 { 0x80 } else { 0 }];
        p.extend_from_slice(&(1000 + k as u16).to_be_bytes());
        p.extend_from_slice(&12345u32.to_be_bytes());
        p.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
        p.extend_from_slice(&[1, if end { 0x8a } else { 0x0a }]);
        p.extend_from_slice(&dur.to_be_bytes());
        p
    })
    .collect()
}

/// Ports that keep what is sent between ticks.
#[derive(Default)]
struct SendingPorts {
    next: u16,
    sent: Vec<(SocketAddr, Vec<u8>)>,
}

impl MediaPorts for SendingPorts {
    fn open(&mut self, _call: CallHandle) -> std::io::Result<u16> {
        self.next += 2;
        Ok(20000 + self.next)
    }
    fn close(&mut self, _call: CallHandle) {}
    fn relay(&mut self, _via: CallHandle, dest: SocketAddr, packet: &[u8]) {
        self.sent.push((dest, packet.to_vec()));
    }
}

/// The key scenario's call, answered at `t0 + 500 ms`; the key burst arrives `key_ms`
/// after the 21st tick. Returns when the key came and every packet sent (instant, marker).
fn key_call(t0: Instant, key_ms: u64) -> (Instant, Vec<(Instant, bool)>) {
    let mut e = engine(t0);
    let scenario = crate::scenario::load_str("key.yaml", KEY_SCENARIO).unwrap();
    e.scenarios.insert("key".to_owned(), Arc::new(scenario));
    let mut prompts = PromptCache::new();
    prompts.insert("en", Prompt::from_pcm("hello", vec![1000i16; 8000]));
    prompts.insert("en", Prompt::from_pcm("thanks", vec![2000i16; 8000]));
    e.prompts = Arc::new(prompts);
    let mut ports = SendingPorts::default();
    let c = e
        .place_call_with(
            t0,
            OutboundCall {
                scenario: "key".into(),
                ..call("100")
            },
            &mut ports,
        )
        .unwrap();
    let invite = invite_of(&mut e);
    let trunk: SocketAddr = TRUNK.parse().unwrap();
    let answered = t0 + Duration::from_millis(500);
    let mut packets: Vec<(Instant, bool)> = Vec::new();
    let sent_between = |ports: &mut SendingPorts, at: Instant, packets: &mut Vec<_>| {
        packets.extend(ports.sent.drain(..).map(|(_, p)| (at, p[1] & 0x80 != 0)));
    };
    e.handle_sip_with(
        answered,
        trunk,
        &respond(&invite, 200, "OK", ANSWER),
        &mut ports,
    );
    sent_between(&mut ports, answered, &mut packets);
    // The runtime's order: each 20 ms tick runs timers, sends, runs timers; received RTP is
    // handled between ticks as it comes.
    let mut now = answered;
    let mut key_at = now;
    for i in 0..40 {
        e.handle_timeout_with(now, &mut ports);
        sent_between(&mut ports, now, &mut packets);
        e.tick_with(now, &mut |_, _, pkt| {
            packets.push((now, pkt[1] & 0x80 != 0))
        });
        e.handle_timeout_with(now, &mut ports);
        sent_between(&mut ports, now, &mut packets);
        if i == 20 {
            key_at = now + Duration::from_millis(key_ms);
            for p in key_burst() {
                e.handle_rtp_with(key_at, c, &p, &mut ports);
            }
            sent_between(&mut ports, key_at, &mut packets);
        }
        now += Duration::from_millis(20);
    }
    (key_at, packets)
}

#[test]
fn a_key_is_answered_by_the_next_prompt_at_once() {
    let t0 = Instant::now();
    let ms = |d: Duration| d.as_millis() as u64;
    // Whenever the key comes between two ticks, the new prompt's first packet goes at
    // once; the next one on the next tick (or the one after, when that is under 2 ms
    // away), and the stream stays on the tick's 20 ms slots.
    for phase in [1, 7, 15, 19] {
        let (key_at, packets) = key_call(t0, phase);
        let i = packets
            .iter()
            .position(|(at, marker)| *at >= key_at && *marker)
            .expect("a new prompt after the key");
        assert_eq!(packets[i].0, key_at, "{packets:?}");
        let gaps: Vec<u64> = packets[i..]
            .windows(2)
            .take(4)
            .map(|w| ms(w[1].0 - w[0].0))
            .collect();
        // A tick less than 2 ms away is not worth a second packet: that one waits a slot.
        let first = if 20 - phase > 2 {
            20 - phase
        } else {
            40 - phase
        };
        assert_eq!(gaps, [first, 20, 20, 20], "key {phase} ms after a tick");
        assert_eq!(packets[i + 1..].iter().filter(|(_, m)| *m).count(), 0);
        // The first prompt itself started at the 200 OK, not at the first tick after it.
        assert!(packets[0].1, "{packets:?}");
    }
}

#[test]
fn an_inbound_greeting_waits_for_its_200_ok_to_leave() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut ports = SendingPorts::default();
    let sdp = "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let invite = format!(
        "INVITE sip:hello@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKin1\r\nMax-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1:5090>;tag=c1\r\nTo: <sip:hello@127.0.0.1:5060>\r\nCall-ID: in-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:5090>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let caller: SocketAddr = "127.0.0.1:5090".parse().unwrap();
    e.handle_sip_holding_answers(t0, caller, invite.as_bytes(), &mut ports);
    let call = events(&mut e)
        .into_iter()
        .find_map(|ev| match ev {
            EngineEvent::CallAnswered { call, .. } => Some(call),
            _ => None,
        })
        .expect("answered");
    // The 200 OK is produced, but the runtime may hold it (until the store has the call's
    // events): no RTP yet.
    assert!(ports.sent.is_empty(), "{:?}", ports.sent.len());
    // Nor does a tick send any while the 200 OK is held.
    let mut ticked = 0;
    e.tick_with(t0 + Duration::from_millis(1), &mut |_, _, _| ticked += 1);
    assert_eq!(ticked, 0);
    // Once it has left, the greeting starts at once, marker bit set, to the caller's port.
    let later = t0 + Duration::from_millis(2);
    e.release_answer_with(later, call, &mut ports);
    assert_eq!(ports.sent.len(), 1);
    let (dest, pkt) = &ports.sent[0];
    assert_eq!(*dest, "127.0.0.1:41000".parse::<SocketAddr>().unwrap());
    assert!(pkt[1] & 0x80 != 0);
    // … and not twice: the next packet waits for the tick's slot.
    e.release_answer_with(later, call, &mut ports);
    assert_eq!(ports.sent.len(), 1);
}
