//! The node on a virtual clock, driven by hand: what it asks for, in order. (Whole worlds
//! with simulated peers, store and CRM are in `crate::sim::world`.)

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::config::TrunkConfig;
use crate::engine::DEFAULT_MAX_CALL_DURATION;
use crate::media::prompts::{Prompt, PromptCache};
use crate::sip::ua::{TimerValues, UaConfig};
use crate::store::{CallState, DialOptions, Direction};

const HELLO: &str = r#"version: 1
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

pub(crate) fn config(t0: Instant, trunks: Vec<TrunkSetup>) -> NodeConfig {
    let scenario = crate::scenario::load_str("hello.yaml", HELLO).unwrap();
    let mut prompts = PromptCache::new();
    prompts.insert("en", Prompt::from_pcm("hello", vec![0i16; 8000]));
    NodeConfig {
        engine: EngineConfig {
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
        },
        scenarios: BTreeMap::from([("hello".to_owned(), Arc::new(scenario))]),
        prompts: Arc::new(prompts),
        trunks,
        campaigns: Vec::new(),
        campaign_trunks: HashMap::new(),
        overload_tick: Duration::from_millis(20),
        seed: 1,
        guard: Default::default(),
        anchor: (
            t0,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ),
        recordings_url: Some("http://ivr.test:8080".into()),
    }
}

fn trunk() -> TrunkSetup {
    let mut cfg = TrunkConfig::from_uri("main", "sip:127.0.0.1:5070").unwrap();
    cfg.keepalive = "0s".into();
    TrunkSetup {
        cfg,
        proxy: "127.0.0.1:5070".parse().unwrap(),
        registrar: None,
    }
}

fn queued(id: &str, not_before: i64) -> CallRecord {
    CallRecord {
        id: id.into(),
        direction: Direction::Outbound,
        state: CallState::Queued,
        scenario: "hello".into(),
        to: Some("500".into()),
        from: None,
        variables: BTreeMap::new(),
        not_before: Some(not_before),
        idempotency_key: None,
        request_hash: None,
        sip_call_id: None,
        dial: DialOptions::default(),
        dial_attempts: 0,
        node: "local".into(),
        outcome: None,
        failure_reason: None,
        sip_code: None,
        result: None,
        trace: None,
        created_at: 0,
        updated_at: 0,
        started_at: None,
        answered_at: None,
        ended_at: None,
    }
}

/// What the node asked for, by kind.
#[derive(Default, Debug)]
struct Seen {
    sip: Vec<String>,
    open: Vec<CallHandle>,
    commits: Vec<(u64, Vec<Record>)>,
    wake: Option<Instant>,
}

fn drain(n: &mut Node) -> Seen {
    let mut s = Seen::default();
    loop {
        match n.poll_output() {
            Output::Timeout(t) => {
                s.wake = Some(t);
                return s;
            }
            Output::Sip(t) => s.sip.push(String::from_utf8_lossy(&t.payload).into_owned()),
            Output::OpenMedia { call } => s.open.push(call),
            Output::Commit {
                ticket, records, ..
            } => s.commits.push((ticket, records)),
            _ => {}
        }
    }
}

#[test]
fn a_queued_call_is_dialled_when_due_and_its_invite_waits_for_its_started_event() {
    let t0 = Instant::now();
    let mut n = Node::new(config(t0, vec![trunk()]));
    let wall0 = 1_800_000_000_000i64;
    n.handle_input(
        t0,
        Input::Command(Command::Queued(Box::new(queued("c-1", wall0 + 5_000)))),
    );
    let s = drain(&mut n);
    assert!(s.open.is_empty(), "not before its time");
    let wake = s.wake.unwrap();
    assert_eq!(wake, t0 + Duration::from_secs(5), "woken when due");
    n.handle_timeout(wake);
    let s = drain(&mut n);
    assert_eq!(s.open.len(), 1, "{s:?}");
    let call = s.open[0];
    assert_eq!(s.commits.len(), 1, "the dial attempt is recorded");
    n.handle_input(wake, Input::MediaOpened { call, port: 20000 });
    let s = drain(&mut n);
    // call.started is committed before the INVITE leaves.
    assert!(s.sip.is_empty(), "{:?}", s.sip);
    assert!(s.commits.is_empty(), "one commit in flight");
    n.handle_input(wake, Input::Stored { ticket: 1 });
    let s = drain(&mut n);
    assert_eq!(s.commits.len(), 1);
    assert_eq!(
        s.commits[0].1[0].event.as_ref().unwrap().kind,
        "call.started"
    );
    n.handle_input(wake, Input::Stored { ticket: 2 });
    let s = drain(&mut n);
    assert!(
        s.sip.iter().any(|m| m.starts_with("INVITE sip:500@")),
        "{:?}",
        s.sip
    );
}

const CALLER: &str = "127.0.0.1:5090";

fn inbound_invite(call_id: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:hello@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:1555@127.0.0.1>;tag=t{call_id}\r\nTo: <sip:hello@127.0.0.1:5060>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{CALLER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn options() -> Vec<u8> {
    format!("OPTIONS sip:ping@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKopt\r\nMax-Forwards: 70\r\nFrom: <sip:p@127.0.0.1>;tag=o\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: opt@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// Runs the node as the runtime would, with a store that commits at once and media ports
/// opened at once, until `until`; returns the SIP it sent and the records it committed.
fn run_until(n: &mut Node, from: Instant, until: Instant) -> (Vec<String>, Vec<Record>) {
    let mut sip = Vec::new();
    let mut recs = Vec::new();
    let mut now = from;
    let mut port = 20000;
    loop {
        let wake = loop {
            match n.poll_output() {
                Output::Timeout(t) => break t,
                Output::Sip(t) => sip.push(String::from_utf8_lossy(&t.payload).into_owned()),
                Output::OpenMedia { call } => {
                    port += 2;
                    n.handle_input(now, Input::MediaOpened { call, port });
                }
                Output::Commit {
                    ticket, records, ..
                } => {
                    recs.extend(records);
                    n.handle_input(now, Input::Stored { ticket });
                }
                _ => {}
            }
        };
        if wake > until {
            return (sip, recs);
        }
        now = wake.max(now);
        n.handle_timeout(now);
    }
}

fn final_reason(recs: &[Record]) -> Option<String> {
    recs.iter().rev().find_map(|r| {
        let e = r.event.as_ref()?;
        (e.kind == "call.completed" || e.kind == "call.failed").then(|| {
            e.data["reason"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.kind.clone())
        })
    })
}

/// Issue 14.4: a drain refuses new calls (503, OPTIONS 503, no event), lets the call up
/// reach its end, and then says the node may exit.
#[test]
fn a_drain_lets_calls_finish_and_refuses_new_ones() {
    let t0 = Instant::now();
    let mut n = Node::new(config(t0, Vec::new()));
    let caller: std::net::SocketAddr = CALLER.parse().unwrap();
    n.handle_input(
        t0,
        Input::Sip {
            source: caller,
            datagram: &inbound_invite("up-1"),
        },
    );
    let (sip, _) = run_until(&mut n, t0, t0 + Duration::from_millis(100));
    assert!(sip.iter().any(|m| m.starts_with("SIP/2.0 200")), "answered");
    let t1 = t0 + Duration::from_millis(100);
    n.handle_input(
        t1,
        Input::Command(Command::Drain {
            deadline: Duration::from_secs(60),
        }),
    );
    assert!(!n.drained(), "a call is up");
    n.handle_input(
        t1,
        Input::Sip {
            source: caller,
            datagram: &inbound_invite("new-1"),
        },
    );
    n.handle_input(
        t1,
        Input::Sip {
            source: caller,
            datagram: &options(),
        },
    );
    let (sip, recs) = run_until(&mut n, t1, t0 + Duration::from_secs(5));
    let statuses: Vec<&str> = sip.iter().filter_map(|m| m.lines().next()).collect();
    assert!(
        statuses.contains(&"SIP/2.0 503 Service Unavailable"),
        "{statuses:?}"
    );
    let refused: std::collections::BTreeSet<&str> = sip
        .iter()
        .filter(|m| m.starts_with("SIP/2.0 503"))
        .filter_map(|m| m.lines().find(|l| l.starts_with("CSeq:")))
        .collect();
    assert_eq!(refused.len(), 2, "INVITE and OPTIONS: {refused:?}");
    // The hello scenario says hello (1 s) and hangs up by itself: completed, not shut down.
    assert!(sip.iter().any(|m| m.starts_with("BYE ")));
    assert_eq!(final_reason(&recs).as_deref(), Some("call.completed"));
    assert!(
        recs.iter().all(|r| r.call_id != "new-1"),
        "no event for a refused call"
    );
    assert!(n.drained());
}

/// Issue 14.4: at the drain's deadline the calls still up are ended with BYE and
/// `call.failed` reason `shutdown`.
#[test]
fn the_drain_deadline_ends_the_calls_still_up() {
    const LONG: &str = r#"version: 1
name: hello
description: Waits for a key for ever.
languages: [en]
variables:
  language: { type: string, default: en }
start: ask
nodes:
  ask:
    ask:
      prompt: [hello]
      input: [dtmf]
      timeout: 10s
      intents:
        yes: { dtmf: ["1"] }
      noinput: { max: 100 }
    on: { yes: bye, noinput: bye, nomatch: bye }
  bye:
    hangup: { outcome: done }
"#;
    let t0 = Instant::now();
    let mut cfg = config(t0, Vec::new());
    cfg.scenarios.insert(
        "hello".into(),
        Arc::new(crate::scenario::load_str("hello.yaml", LONG).unwrap()),
    );
    let mut n = Node::new(cfg);
    let caller: std::net::SocketAddr = CALLER.parse().unwrap();
    n.handle_input(
        t0,
        Input::Sip {
            source: caller,
            datagram: &inbound_invite("long-1"),
        },
    );
    run_until(&mut n, t0, t0 + Duration::from_millis(100));
    let t1 = t0 + Duration::from_millis(100);
    n.handle_input(
        t1,
        Input::Command(Command::Drain {
            deadline: Duration::from_secs(3),
        }),
    );
    let (sip, recs) = run_until(&mut n, t1, t1 + Duration::from_millis(2_900));
    assert!(
        !sip.iter().any(|m| m.starts_with("BYE ")),
        "not before the deadline"
    );
    assert!(!n.drained());
    let (sip, more) = run_until(
        &mut n,
        t1 + Duration::from_millis(2_900),
        t1 + Duration::from_secs(4),
    );
    assert!(sip.iter().any(|m| m.starts_with("BYE ")), "{sip:?}");
    let all: Vec<Record> = recs.into_iter().chain(more).collect();
    assert_eq!(final_reason(&all).as_deref(), Some("shutdown"));
    assert!(n.drained());
}
