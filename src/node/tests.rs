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
            routes: BTreeMap::new(),
            max_calls: 10,
            seed: 7,
            transfer_route: None,
            max_call_duration: DEFAULT_MAX_CALL_DURATION,
            strict_rtp: Default::default(),
        },
        scenarios: BTreeMap::from([("hello".to_owned(), Arc::new(scenario))]),
        prompts: Arc::new(prompts),
        trunks,
        campaigns: Vec::new(),
        campaign_trunks: HashMap::new(),
        overload_tick: Duration::from_millis(20),
        seed: 1,
        anchor: (
            t0,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ),
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
            Output::Commit { ticket, records } => s.commits.push((ticket, records)),
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
