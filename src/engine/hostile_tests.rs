//! Issue 12, on a virtual clock: what one hostile caller could do to the whole node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::test_support::MediaPorts;
use super::*;
use crate::media::Codec;
use crate::media::prompts::{Prompt, PromptCache};
use crate::sip::message::{Message, parse as parse_message};
use crate::sip::ua::{TimerValues, UaConfig};

const SPEECH: &str = r#"version: 1
name: speech
description: One spoken question.
languages: [en]
variables:
  language: { type: string, default: en }
start: ask
nodes:
  ask:
    ask:
      prompt: [hello]
      input: [dtmf, speech]
      timeout: 5s
      barge_in: true
      intents:
        confirm: { dtmf: ["1"], phrases: { en: ["yes"] } }
      noinput: { max: 2 }
      nomatch: { max: 2 }
    on:
      confirm: done
      noinput: done
      nomatch: done
  done:
    hangup: { outcome: done, play: [hello] }
"#;

pub(super) struct CountingPorts {
    next: u16,
    pub open: std::collections::HashSet<CallHandle>,
    pub sent: Vec<(SocketAddr, Vec<u8>)>,
}

impl MediaPorts for CountingPorts {
    fn open(&mut self, call: CallHandle) -> std::io::Result<u16> {
        self.next += 2;
        self.open.insert(call);
        Ok(20000 + self.next)
    }
    fn close(&mut self, call: CallHandle) {
        self.open.remove(&call);
    }
    fn relay(&mut self, _via: CallHandle, dest: SocketAddr, packet: &[u8]) {
        self.sent.push((dest, packet.to_vec()));
    }
}

pub(super) fn ports() -> CountingPorts {
    CountingPorts {
        next: 0,
        open: Default::default(),
        sent: Vec::new(),
    }
}

pub(super) fn engine_with(t0: Instant, name: &str, yaml: &str) -> Engine {
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
    let scenario = crate::scenario::load_str(&format!("{name}.yaml"), yaml).unwrap();
    let mut prompts = PromptCache::new();
    prompts.insert("en", Prompt::from_pcm("hello", vec![0i16; 8000]));
    Engine::new(
        cfg,
        BTreeMap::from([(name.to_owned(), Arc::new(scenario))]),
        Arc::new(prompts),
        (t0, SystemTime::UNIX_EPOCH),
    )
}

pub(super) const CALLER: &str = "127.0.0.1:5090";

/// An INVITE from [`CALLER`] for `user`, with `extra` headers and an SDP naming `c`.
pub(super) fn invite(user: &str, call_id: &str, extra: &str, c: &str) -> Vec<u8> {
    let sdp = format!(
        "v=0\r\no=caller 1 1 IN IP4 {c}\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    format!(
        "INVITE sip:{user}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:15551230000@127.0.0.1>;tag=c1\r\nTo: <sip:{user}@127.0.0.1:5060>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{CALLER}>\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

pub(super) fn options(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:ping@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKopt{n}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=o{n}\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: opt-{n}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Status codes of the responses the engine sent.
pub(super) fn statuses(e: &mut Engine) -> Vec<u16> {
    std::iter::from_fn(|| e.poll_transmit())
        .filter_map(|t| match parse_message(&t.payload) {
            Ok(Message::Response(r)) => Some(r.status),
            _ => None,
        })
        .collect()
}

/// Real speech (the human recordings of the ASR tests) with its silences cut out, so that
/// any 200 ms of it is voice for the VAD.
pub(super) fn voice() -> Vec<i16> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech/human/en");
    let mut out = Vec::new();
    for n in ["1", "2", "3", "4", "5", "6"] {
        let pcm = crate::media::prompts::load_file(&dir.join(format!("{n}.wav"))).unwrap();
        for frame in pcm.chunks(160) {
            if crate::media::prompts::rms_dbfs(frame) > -30.0 {
                out.extend_from_slice(frame);
            }
        }
    }
    assert!(out.len() > 16000, "too little voice in the fixtures");
    out
}

pub(super) fn rtp(seq: u16, pcm: &[i16]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    crate::media::g711::encode(Codec::Pcmu, pcm, &mut p);
    p
}

/// The node's driver, by hand: a tick every 20 ms with timers before and after, received
/// RTP between ticks, and recognition results `decode` after each request.
struct Driver {
    e: Engine,
    ports: CountingPorts,
    now: Instant,
    results: Vec<(Instant, CallHandle, u64)>,
    decode: Duration,
    recognitions: usize,
    completed: Vec<CallCompleted>,
    /// What every recognition returns.
    text: &'static str,
}

impl Driver {
    /// 20 ms of the node's life, as the runtime lives it: the pacing tick at `now`, then
    /// every deadline the engine asks for and every recognition result at its own instant
    /// (the runtime's `sleep_until(poll_timeout())` fires between ticks and packets).
    fn step(&mut self) {
        let now = self.now;
        self.e.handle_timeout_with(now, &mut self.ports);
        self.e.tick_with(now, &mut |_, _, _| {});
        self.e.handle_timeout_with(now, &mut self.ports);
        self.effects();
        let end = now + Duration::from_millis(20);
        loop {
            let timer = self.e.poll_timeout().filter(|t| *t < end);
            let result = self.results.iter().map(|r| r.0).filter(|t| *t < end).min();
            let Some(at) = [timer, result].into_iter().flatten().min() else {
                break;
            };
            let at = at.max(self.now);
            self.now = at;
            self.e.handle_timeout_with(at, &mut self.ports);
            self.effects();
            let due: Vec<_> = self.results.iter().filter(|r| r.0 <= at).copied().collect();
            self.results.retain(|r| r.0 > at);
            for (_, call, id) in due {
                let t = crate::asr::Transcript {
                    text: self.text.into(),
                    confidence: if self.text == "yes" { 0.9 } else { 0.2 },
                    ..Default::default()
                };
                self.e
                    .handle_recognition_with(at, call, id, Ok(t), &mut self.ports);
                self.effects();
            }
        }
        self.now = end;
    }

    fn effects(&mut self) {
        while let Some(ev) = self.e.poll_event() {
            if let EngineEvent::Effect {
                call,
                effect: crate::call::Effect::Recognize { id, .. },
                ..
            } = ev
            {
                self.recognitions += 1;
                self.results.push((self.now + self.decode, call, id));
            } else if let EngineEvent::CallCompleted { record: r, .. } = ev {
                self.completed.push(*r);
            }
        }
    }
}

/// Issue 12.1: 30 bursts of 200 ms of voice with 180 ms pauses, then nothing (the phone
/// stops sending), on a question that takes speech. Before the fix the endpointer asked
/// for a wake-up it did not act on, and the engine's timer loop spun for ever: no SIP was
/// answered again. Now the call goes on to its no-input handling, OPTIONS are answered,
/// and no timer broke the rule.
/// Runs the pattern on one call: `bursts` of `voice_ms` voice and `pause_ms` of silence
/// (RTP keeps coming), the first burst `lead_ms` shorter, then no RTP at all for a minute.
/// Returns the driver afterwards.
fn voice_pattern(
    bursts: usize,
    voice_ms: u64,
    pause_ms: u64,
    lead_ms: u64,
    decode: Duration,
) -> Driver {
    let t0 = Instant::now();
    let mut d = Driver {
        e: engine_with(t0, "speech", SPEECH),
        ports: ports(),
        now: t0,
        results: Vec::new(),
        decode,
        recognitions: 0,
        completed: Vec::new(),
        text: "mm",
    };
    let caller: SocketAddr = CALLER.parse().unwrap();
    d.e.handle_sip_with(
        t0,
        caller,
        &invite("speech", "hang-1", "", "127.0.0.1"),
        &mut d.ports,
    );
    let call = std::iter::from_fn(|| d.e.poll_event())
        .find_map(|ev| match ev {
            EngineEvent::CallAnswered { call, .. } => Some(call),
            _ => None,
        })
        .expect("answered");
    assert_eq!(statuses(&mut d.e).last(), Some(&200));
    // The 1 s prompt plays; then the pattern.
    for _ in 0..60 {
        d.step();
    }
    let voice = voice();
    let mut seq = 0u16;
    let mut at = 0usize;
    for burst in 0..bursts {
        let ms = if burst == 0 {
            voice_ms - lead_ms
        } else {
            voice_ms
        };
        for _ in 0..ms / 20 {
            let pkt = rtp(seq, &voice[at..at + 160]);
            at = (at + 160) % (voice.len() - 160);
            seq = seq.wrapping_add(1);
            d.e.handle_rtp_with(d.now, call, &pkt, &mut d.ports);
            d.effects();
            d.step();
        }
        for _ in 0..pause_ms / 20 {
            seq = seq.wrapping_add(1);
            d.e.handle_rtp_with(d.now, call, &rtp(seq, &[0i16; 160]), &mut d.ports);
            d.step();
        }
    }
    assert!(d.recognitions > 0, "the pattern was heard as speech");
    // Silence with no RTP: every deadline comes and goes.
    for n in 0..3000u32 {
        d.step();
        if n % 100 == 0 {
            d.e.handle_sip_with(
                d.now,
                "127.0.0.1:5099".parse().unwrap(),
                &options(n),
                &mut d.ports,
            );
            assert!(
                statuses(&mut d.e).contains(&200),
                "OPTIONS unanswered after {n} ticks"
            );
        }
    }
    d
}

/// Issue 12.1: 30 bursts of 200 ms of voice with 180 ms pauses, then nothing (the phone
/// stops sending), on a question that takes speech. The max-speech cut (10 s) lands
/// inside a burst and leaves onset-but-not-speech (60–120 ms) before the silence; the
/// endpointer then asked for a wake-up to send a `Pause` it would not send, and the
/// engine's timer loop spun for ever: no SIP was answered again. Swept over where the cut
/// lands (the first burst's lead) and how long recognition takes. Now every call goes on
/// to its end, OPTIONS are answered throughout, and no timer broke the rule.
#[test]
fn the_voice_pattern_that_hung_the_node_leaves_it_answering() {
    let violations = crate::timers::violations();
    for lead_ms in (0..200).step_by(40) {
        for decode in [150, 400, 1200, 2500].map(Duration::from_millis) {
            let d = voice_pattern(30, 200, 180, lead_ms, decode);
            assert_eq!(
                d.completed.len(),
                1,
                "the call reached its end (lead {lead_ms} ms, {decode:?})"
            );
        }
    }
    assert_eq!(crate::timers::violations(), violations);
}

/// An RFC 4733 event packet (PT 101) for `digit`, `end` set on the last of a press.
fn dtmf_event(seq: u16, digit: u8, end: bool) -> Vec<u8> {
    let mut p = vec![0x80, 101];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&9_999u32.wrapping_add(u32::from(seq) * 16).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&[digit, if end { 0x80 | 10 } else { 10 }, 0x03, 0x20]);
    p
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// What the caller does for a while.
    #[derive(Debug, Clone)]
    enum Act {
        /// Voice for this many packets (20 ms each).
        Voice(u8),
        /// Silence: packets sent, or the phone sends nothing.
        Silence { packets: u16, sends: bool },
        /// A key (RFC 4733).
        Key(u8),
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            4 => (1u8..40).prop_map(Act::Voice),
            4 => ((1u16..120), any::<bool>()).prop_map(|(packets, sends)| Act::Silence { packets, sends }),
            1 => (0u8..12).prop_map(Act::Key),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random voice, silence, keys, recognition delays and results against a speech
        /// question on a virtual clock: no handled deadline comes back (`crate::timers`
        /// panics in debug builds if one does), SIP is answered throughout, and the call
        /// reaches its end.
        #[test]
        fn random_callers_never_break_the_timer_rule(
            acts in proptest::collection::vec(act(), 1..80),
            decode_ms in 20u64..2500,
            says_yes in any::<bool>(),
            complete_ms in 150u64..1000,
            max_speech_ms in 600u64..4000,
        ) {
            let t0 = Instant::now();
            let yaml = SPEECH.replace(
                "barge_in: true",
                &format!("barge_in: true\n      complete_timeout: {complete_ms}ms\n      max_speech_timeout: {max_speech_ms}ms"),
            );
            let mut d = Driver {
                e: engine_with(t0, "speech", &yaml),
                ports: ports(),
                now: t0,
                results: Vec::new(),
                decode: Duration::from_millis(decode_ms),
                recognitions: 0,
                completed: Vec::new(),
                text: "mm",
            };
            d.text = if says_yes { "yes" } else { "mm" };
            let caller: SocketAddr = CALLER.parse().unwrap();
            d.e.handle_sip_with(t0, caller, &invite("speech", "prop-1", "", "127.0.0.1"), &mut d.ports);
            let call = std::iter::from_fn(|| d.e.poll_event())
                .find_map(|ev| match ev {
                    EngineEvent::CallAnswered { call, .. } => Some(call),
                    _ => None,
                })
                .expect("answered");
            let voice = voice();
            let (mut seq, mut at) = (0u16, 0usize);
            for a in acts {
                match a {
                    Act::Voice(n) => for _ in 0..n {
                        let pkt = rtp(seq, &voice[at..at + 160]);
                        at = (at + 160) % (voice.len() - 160);
                        seq = seq.wrapping_add(1);
                        d.e.handle_rtp_with(d.now, call, &pkt, &mut d.ports);
                        d.step();
                    },
                    Act::Silence { packets, sends } => for _ in 0..packets {
                        if sends {
                            seq = seq.wrapping_add(1);
                            d.e.handle_rtp_with(d.now, call, &rtp(seq, &[0i16; 160]), &mut d.ports);
                        }
                        d.step();
                    },
                    Act::Key(k) => for i in 0..4 {
                        seq = seq.wrapping_add(1);
                        d.e.handle_rtp_with(d.now, call, &dtmf_event(seq, k, i == 3), &mut d.ports);
                        d.step();
                    },
                }
            }
            for n in 0..3000u32 {
                d.step();
                if n % 500 == 0 {
                    d.e.handle_sip_with(d.now, "127.0.0.1:5099".parse().unwrap(), &options(n), &mut d.ports);
                    prop_assert!(statuses(&mut d.e).contains(&200));
                }
            }
            prop_assert_eq!(d.completed.len(), 1);
        }
    }
}

const LOOP: &str = r#"version: 1
name: loop
description: Asks for ever.
languages: [en]
variables:
  language: { type: string, default: en }
start: ask
nodes:
  ask:
    ask:
      prompt: [hello]
      input: [dtmf]
      timeout: 1s
      intents:
        confirm: { dtmf: ["1"] }
      noinput: { max: 100000 }
    on:
      confirm: done
      noinput: done
      nomatch: done
  done:
    hangup: { outcome: done }
"#;

/// Runs `e` for `secs` of virtual time from `from` in 20 ms ticks; returns the RTP packets
/// sent (instant, destination) and the engine events.
fn run(
    e: &mut Engine,
    ports: &mut CountingPorts,
    from: Instant,
    secs: u64,
) -> (
    Vec<Instant>,
    Vec<EngineEvent>,
    Vec<(Instant, crate::sip::message::Request)>,
) {
    let mut packets = Vec::new();
    let mut events = Vec::new();
    let mut requests = Vec::new();
    let mut now = from;
    while now < from + Duration::from_secs(secs) {
        e.handle_timeout_with(now, ports);
        e.tick_with(now, &mut |_, _, _| packets.push(now));
        e.handle_timeout_with(now, ports);
        packets.extend(ports.sent.drain(..).map(|_| now));
        events.extend(std::iter::from_fn(|| e.poll_event()));
        while let Some(t) = e.poll_transmit() {
            if let Ok(Message::Request(r)) = parse_message(&t.payload) {
                requests.push((now, r));
            }
        }
        now += Duration::from_millis(20);
    }
    (packets, events, requests)
}

fn bye_time(requests: &[(Instant, crate::sip::message::Request)]) -> Instant {
    requests
        .iter()
        .find(|(_, r)| r.method == crate::sip::message::Method::Bye)
        .map(|(at, _)| *at)
        .expect("a BYE")
}

fn failure_of(events: &[EngineEvent]) -> Option<(crate::crm::events::FailReason, Option<String>)> {
    events.iter().find_map(|ev| match ev {
        EngineEvent::CallCompleted { record: r, .. } => {
            Some((r.failure.as_ref().map(|f| f.0)?, r.outcome.clone()))
        }
        _ => None,
    })
}

/// Issue 12.3: an INVITE that is never ACKed. At 32 s (64·T1) the robot sends BYE, and
/// from that instant the call's media and dialogue stop (they used to run to the end of
/// the scenario); the CRM gets `call.failed` reason `no_ack`.
#[test]
fn media_stops_with_the_no_ack_bye() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "loop", LOOP);
    let mut p = ports();
    let caller: SocketAddr = CALLER.parse().unwrap();
    e.handle_sip_with(
        t0,
        caller,
        &invite("loop", "noack-1", "", "127.0.0.1"),
        &mut p,
    );
    let (packets, events, requests) = run(&mut e, &mut p, t0, 60);
    let bye_at = bye_time(&requests);
    assert_eq!(bye_at, t0 + Duration::from_secs(32), "64·T1");
    let last = *packets.last().expect("the prompt played");
    // The tick of that instant runs after the timer that sent the BYE: nothing from then on.
    assert!(
        last < bye_at,
        "RTP {:?} after the no-ACK BYE",
        last - bye_at
    );
    assert!(
        packets.len() > 500,
        "the call was up until then: {}",
        packets.len()
    );
    assert_eq!(
        failure_of(&events).map(|f| f.0),
        Some(crate::crm::events::FailReason::NoAck)
    );
    assert!(p.open.is_empty(), "the media port is closed");
}

/// Issue 12.3: an ACKed call whose scenario would never end is ended at the maximum call
/// duration with BYE and `call.failed` reason `max_duration`.
#[test]
fn a_call_ends_at_the_maximum_duration() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "loop", LOOP);
    e.cfg.max_call_duration = Duration::from_secs(90);
    let mut p = ports();
    let caller: SocketAddr = CALLER.parse().unwrap();
    let inv = invite("loop", "long-1", "", "127.0.0.1");
    e.handle_sip_with(t0, caller, &inv, &mut p);
    let ok = std::iter::from_fn(|| e.poll_transmit())
        .find_map(|t| match parse_message(&t.payload) {
            Ok(Message::Response(r)) if r.status == 200 => Some(r),
            _ => None,
        })
        .expect("200 OK");
    let to = ok.headers.get("To").unwrap().to_owned();
    let ack = format!(
        "ACK sip:loop@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKack1\r\nMax-Forwards: 70\r\nFrom: <sip:15551230000@127.0.0.1>;tag=c1\r\nTo: {to}\r\nCall-ID: long-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    e.handle_sip_with(
        t0 + Duration::from_millis(10),
        caller,
        ack.as_bytes(),
        &mut p,
    );
    let (packets, events, requests) = run(&mut e, &mut p, t0, 120);
    let bye_at = bye_time(&requests);
    assert_eq!(bye_at, t0 + Duration::from_secs(90));
    assert!(*packets.last().unwrap() < bye_at);
    assert_eq!(
        failure_of(&events).map(|f| f.0),
        Some(crate::crm::events::FailReason::MaxDuration)
    );
}

/// Issue 12.3: an offer whose connection address would make ivrflow send its RTP to
/// nobody in particular, or to everybody, is refused with 488.
#[test]
fn unusable_connection_addresses_get_488() {
    let t0 = Instant::now();
    let caller: SocketAddr = CALLER.parse().unwrap();
    for (n, c) in [
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "239.1.2.3",
        "0.1.2.3",
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = engine_with(t0, "loop", LOOP);
        let mut p = ports();
        e.handle_sip_with(
            t0,
            caller,
            &invite("loop", &format!("c-{n}"), "", c),
            &mut p,
        );
        assert!(statuses(&mut e).contains(&488), "c={c}");
        assert!(p.open.is_empty(), "c={c}: no media port for a refused call");
        assert_eq!(e.live_calls(), 0);
    }
    let mut e = engine_with(t0, "loop", LOOP);
    let mut p = ports();
    e.handle_sip_with(
        t0,
        caller,
        &invite("loop", "c-ok", "", "192.0.2.10"),
        &mut p,
    );
    assert!(statuses(&mut e).contains(&200));
}

/// The bundled order confirmation, prompts absent (they are skipped), with a trunk as the
/// transfer route (credentials scoped to it).
fn order_engine(t0: Instant) -> Engine {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/order-confirmation.yaml");
    let yaml = std::fs::read_to_string(path).unwrap();
    let mut e = engine_with(t0, "order-confirmation", &yaml);
    let trunk: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    e.cfg.transfer_route = Some(TransferRoute {
        dest: trunk,
        domain: "127.0.0.1:5070".into(),
        from_uri: "sip:shop@127.0.0.1:5070".into(),
        credentials: Some(crate::sip::ua::TrunkCredentials {
            username: "shop".into(),
            password: "secret".into(),
            peer: trunk,
            realm: None,
        }),
    });
    e
}

/// Issue 12.2 from the wire: `X-Operator` (and any other header the scenario does not name)
/// sets nothing; pressing 3 calls the operator written in the file, through the trunk,
/// and nothing goes to the caller's address. `X-Order-Id` is read, within its type and
/// length, or the call is refused with 400.
#[test]
fn a_caller_header_cannot_choose_the_transfer_target() {
    let t0 = Instant::now();
    let caller: SocketAddr = CALLER.parse().unwrap();
    let mut e = order_engine(t0);
    let mut p = ports();
    let headers =
        "X-Order-Id: 4711\r\nX-Operator: sip:+447700900123@203.0.113.9\r\nX-Caller: 0000\r\n";
    e.handle_sip_with(
        t0,
        caller,
        &invite("order-confirmation", "fraud-1", headers, "127.0.0.1"),
        &mut p,
    );
    let (call, vars) = std::iter::from_fn(|| e.poll_event())
        .find_map(|ev| match ev {
            EngineEvent::CallStarted { call, origin, .. } => Some((call, origin.variables)),
            _ => None,
        })
        .expect("started");
    assert_eq!(vars.get("order_id").map(String::as_str), Some("4711"));
    assert_eq!(vars.get("operator"), None);
    assert_eq!(vars["caller"], "15551230000");
    let mut requests = Vec::new();
    let mut now = t0;
    for i in 0..400u32 {
        e.handle_timeout_with(now, &mut p);
        e.tick_with(now, &mut |_, _, _| {});
        e.handle_timeout_with(now, &mut p);
        if i == 50 {
            for (n, end) in [(0u16, false), (1, false), (2, true)] {
                e.handle_rtp_with(now, call, &dtmf_event(n, 3, end), &mut p);
            }
        }
        while let Some(t) = e.poll_transmit() {
            if let Ok(Message::Request(r)) = parse_message(&t.payload) {
                requests.push((t.dest, r));
            }
        }
        while e.poll_event().is_some() {}
        now += Duration::from_millis(20);
    }
    let invites: Vec<_> = requests
        .iter()
        .filter(|(_, r)| r.method == crate::sip::message::Method::Invite)
        .collect();
    let calls: std::collections::BTreeSet<_> = invites
        .iter()
        .map(|(_, r)| r.headers.get("Call-ID"))
        .collect();
    assert_eq!(calls.len(), 1, "one agent call (retransmitted)");
    let (dest, inv) = invites[0];
    assert_eq!(*dest, "127.0.0.1:5070".parse::<SocketAddr>().unwrap());
    assert_eq!(inv.uri, "sip:orders@pbx.shop.example");
    assert!(requests.iter().all(|(d, r)| d.ip()
        != "203.0.113.9".parse::<std::net::IpAddr>().unwrap()
        && !r.uri.contains("447700900123")));

    // X-Order-Id that does not fit: 400, no call.
    for (n, bad) in ["12345678901234567890123", "47a1", "4711\u{7}"]
        .into_iter()
        .enumerate()
    {
        let mut e = order_engine(t0);
        let mut p = ports();
        let headers = format!("X-Order-Id: {bad}\r\n");
        e.handle_sip_with(
            t0,
            caller,
            &invite(
                "order-confirmation",
                &format!("bad-{n}"),
                &headers,
                "127.0.0.1",
            ),
            &mut p,
        );
        assert_eq!(
            statuses(&mut e),
            [400],
            "{bad:?}: one datagram, no 100 Trying"
        );
        assert!(p.open.is_empty());
        assert!(
            std::iter::from_fn(|| e.poll_event()).next().is_none(),
            "no event for a refused stranger"
        );
    }
}

/// Issue 12.2: a bridged transfer to an address that is not the trunk's proxy carries no
/// credentials, and the UA would not answer a challenge from there anyway.
#[test]
fn an_agent_elsewhere_never_gets_the_trunks_credentials() {
    let t0 = Instant::now();
    let yaml = r#"version: 1
name: xfer
description: Transfers at once.
languages: [en]
variables:
  language: { type: string, default: en }
  agent: { type: string, default: "sip:agent@203.0.113.9:5060" }
start: go
nodes:
  go:
    transfer: { target: "${agent}" }
    next: bye
  bye:
    hangup: { outcome: not_connected }
"#;
    let mut e = engine_with(t0, "xfer", yaml);
    let trunk: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    e.cfg.transfer_route = Some(TransferRoute {
        dest: trunk,
        domain: "127.0.0.1:5070".into(),
        from_uri: "sip:shop@127.0.0.1:5070".into(),
        credentials: Some(crate::sip::ua::TrunkCredentials {
            username: "shop".into(),
            password: "secret".into(),
            peer: trunk,
            realm: None,
        }),
    });
    let mut p = ports();
    let caller: SocketAddr = CALLER.parse().unwrap();
    e.handle_sip_with(t0, caller, &invite("xfer", "x-1", "", "127.0.0.1"), &mut p);
    let agent: SocketAddr = "203.0.113.9:5060".parse().unwrap();
    let inv = std::iter::from_fn(|| e.poll_transmit())
        .filter(|t| t.dest == agent)
        .find_map(|t| match parse_message(&t.payload) {
            Ok(Message::Request(r)) => Some(r),
            _ => None,
        })
        .expect("the agent is called (the target is in the file)");
    let h = |n: &str| inv.headers.get(n).unwrap_or("").to_owned();
    let challenge = format!(
        "SIP/2.0 407 Proxy Authentication Required\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=a\r\nCall-ID: {}\r\nCSeq: {}\r\nProxy-Authenticate: Digest realm=\"evil\", nonce=\"n\", qop=\"auth\"\r\nContent-Length: 0\r\n\r\n",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq")
    );
    e.handle_sip_with(t0, agent, challenge.as_bytes(), &mut p);
    let again: Vec<_> = std::iter::from_fn(|| e.poll_transmit())
        .filter_map(|t| match parse_message(&t.payload) {
            Ok(Message::Request(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        again
            .iter()
            .all(|r| r.headers.get("Proxy-Authorization").is_none()
                && r.headers.get("Authorization").is_none()),
        "{again:?}"
    );
}

/// Issue 14: RFC 4733 events sent to a call's media port from a foreign source are
/// ignored, while the caller's own key works.
#[test]
fn keys_from_a_foreign_source_are_ignored() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "speech", SPEECH);
    let mut p = ports();
    let caller: SocketAddr = CALLER.parse().unwrap();
    e.handle_sip_with(
        t0,
        caller,
        &invite("speech", "strict-1", "", "127.0.0.1"),
        &mut p,
    );
    let call = std::iter::from_fn(|| e.poll_event())
        .find_map(|ev| match ev {
            EngineEvent::CallAnswered { call, .. } => Some(call),
            _ => None,
        })
        .expect("answered");
    let own: SocketAddr = "127.0.0.1:41000".parse().unwrap();
    let stranger: SocketAddr = "127.0.0.1:41002".parse().unwrap();
    let mut now = t0;
    let step = |e: &mut Engine, p: &mut CountingPorts, now: &mut Instant| {
        e.handle_timeout_with(*now, p);
        e.tick_with(*now, &mut |_, _, _| {});
        e.handle_timeout_with(*now, p);
        *now += Duration::from_millis(20);
    };
    // The caller's phone sends audio: its source is latched.
    for n in 0..5u16 {
        e.handle_rtp_from_with(now, call, own, &rtp(n, &[0i16; 160]), &mut p);
        step(&mut e, &mut p, &mut now);
    }
    for _ in 0..60 {
        step(&mut e, &mut p, &mut now);
    }
    // A stranger presses 2 from another port (and a stream of its own).
    for (n, end) in [(10u16, false), (11, false), (12, true)] {
        let mut pkt = dtmf_event(n, 2, end);
        pkt[8..12].copy_from_slice(&0xbad0_0bad_u32.to_be_bytes());
        e.handle_rtp_from_with(now, call, stranger, &pkt, &mut p);
    }
    for _ in 0..10 {
        step(&mut e, &mut p, &mut now);
    }
    assert!(e.rtp_foreign() >= 3, "{}", e.rtp_foreign());
    // The caller presses 1 (one event: the same timestamp on every packet).
    for (n, end) in [(6u16, false), (7, false), (8, true)] {
        let mut pkt = dtmf_event(n, 1, end);
        pkt[4..8].copy_from_slice(&77_000u32.to_be_bytes());
        e.handle_rtp_from_with(now, call, own, &pkt, &mut p);
    }
    let mut done = None;
    for _ in 0..200 {
        step(&mut e, &mut p, &mut now);
        if let Some(r) = std::iter::from_fn(|| e.poll_event()).find_map(|ev| match ev {
            EngineEvent::CallCompleted { record, .. } => Some(record),
            _ => None,
        }) {
            done = Some(r);
            break;
        }
    }
    let done = done.expect("the call completed");
    assert_eq!(done.outcome.as_deref(), Some("done"));
    let keys: Vec<char> = done
        .trace
        .iter()
        .filter_map(|t| match t {
            crate::call::TraceEvent::Dtmf { digit, .. } => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(keys, ['1'], "only the caller's own key");
}

/// Issue 14.3: an INVITE to a number that names no scenario gets one datagram back (404),
/// not a 100 Trying and a 404 retransmitted until 32 s (12 datagrams, 7× the bytes, to a
/// source anyone can spoof).
#[test]
fn junk_invites_are_answered_once() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "loop", LOOP);
    let mut p = ports();
    let caller: SocketAddr = CALLER.parse().unwrap();
    e.handle_sip_with(
        t0,
        caller,
        &invite("nobody", "junk-1", "", "127.0.0.1"),
        &mut p,
    );
    let (_, _, _) = run(&mut e, &mut p, t0, 40);
    let mut sent = statuses(&mut e);
    // `run` drains transmits itself; count what it saw through the UA's counters instead.
    sent.retain(|_| true);
    let mut e = engine_with(t0, "loop", LOOP);
    e.handle_sip_with(
        t0,
        caller,
        &invite("nobody", "junk-2", "", "127.0.0.1"),
        &mut p,
    );
    let mut all = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(40) {
        e.handle_timeout_with(now, &mut p);
        all.extend(statuses(&mut e));
        now += Duration::from_millis(100);
    }
    assert_eq!(all, [404], "one response, no retransmission");
    assert!(sent.is_empty());
}

/// Issue 14.3: one source cannot take every call slot.
#[test]
fn one_source_gets_its_share_of_calls() {
    let t0 = Instant::now();
    let mut e = engine_with(t0, "loop", LOOP);
    e.cfg.max_calls_per_source = Some(3);
    let mut p = ports();
    let greedy: SocketAddr = "198.51.100.7:5060".parse().unwrap();
    for i in 0..5 {
        e.handle_sip_with(
            t0,
            greedy,
            &invite("loop", &format!("g-{i}"), "", "127.0.0.1"),
            &mut p,
        );
    }
    let codes = statuses(&mut e);
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 3, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 503).count(), 2, "{codes:?}");
    // Another caller still gets in.
    let other: SocketAddr = "203.0.113.5:5060".parse().unwrap();
    e.handle_sip_with(t0, other, &invite("loop", "o-1", "", "127.0.0.1"), &mut p);
    assert!(statuses(&mut e).contains(&200));
    // A trusted proxy carrying everybody's calls is not limited.
    let mut e = engine_with(t0, "loop", LOOP);
    e.cfg.max_calls_per_source = Some(3);
    e.cfg.trusted = vec![crate::sip::acl::Net::parse("198.51.100.7").unwrap()];
    for i in 0..5 {
        e.handle_sip_with(
            t0,
            greedy,
            &invite("loop", &format!("t-{i}"), "", "127.0.0.1"),
            &mut p,
        );
    }
    assert_eq!(statuses(&mut e).iter().filter(|c| **c == 200).count(), 5);
}

/// Issue 14.3, caller identity: a From header is whatever the caller typed; only a
/// `P-Asserted-Identity` from a trusted proxy makes the number the customer's
/// (`customer_verified`), and it is the number the scenario and the CRM get.
#[test]
fn only_a_trusted_proxy_can_assert_who_is_calling() {
    let t0 = Instant::now();
    let caller: SocketAddr = CALLER.parse().unwrap();
    let pai = "P-Asserted-Identity: \"Ann\" <sip:+15557654321@trunk.example;user=phone>, <tel:+15557654321>\r\n";
    let started = |e: &mut Engine| {
        std::iter::from_fn(|| e.poll_event())
            .find_map(|ev| match ev {
                EngineEvent::CallStarted { origin, .. } => Some(origin.variables),
                _ => None,
            })
            .expect("started")
    };
    // From a source that is not trusted: the header is ignored.
    let mut e = engine_with(t0, "hello", SPEECH);
    let mut p = ports();
    e.handle_sip_with(
        t0,
        caller,
        &invite("hello", "pai-1", pai, "127.0.0.1"),
        &mut p,
    );
    let vars = started(&mut e);
    assert_eq!(vars["caller"], "15551230000");
    assert_eq!(vars["customer"], "15551230000");
    assert_eq!(vars["customer_verified"], "false");

    // From a trusted proxy: the asserted number, verified.
    let mut e = engine_with(t0, "hello", SPEECH);
    e.cfg.trusted = vec![crate::sip::acl::Net::parse("127.0.0.1").unwrap()];
    e.handle_sip_with(
        t0,
        caller,
        &invite("hello", "pai-2", pai, "127.0.0.1"),
        &mut p,
    );
    let vars = started(&mut e);
    assert_eq!(vars["customer"], "+15557654321");
    assert_eq!(vars["customer_verified"], "true");

    // A trusted proxy that asserts nothing: the From, unverified; junk is not a number.
    let mut e = engine_with(t0, "hello", SPEECH);
    e.cfg.trusted = vec![crate::sip::acl::Net::parse("127.0.0.1").unwrap()];
    let junk = "P-Asserted-Identity: <sip:evil\"@x>, garbage\r\n";
    e.handle_sip_with(
        t0,
        caller,
        &invite("hello", "pai-3", junk, "127.0.0.1"),
        &mut p,
    );
    let vars = started(&mut e);
    assert_eq!(vars["customer"], "15551230000");
    assert_eq!(vars["customer_verified"], "false");

    let tel = crate::sip::message::parse(&invite(
        "hello",
        "pai-4",
        "P-Asserted-Identity: <tel:+44-20-7946-0000;phone-context=x>\r\n",
        "127.0.0.1",
    ));
    let Ok(Message::Request(r)) = tel else {
        panic!()
    };
    assert_eq!(asserted_identity(&r).as_deref(), Some("+44-20-7946-0000"));
}
