//! Simulated calls through the bundled order-confirmation scenario: the real dialogue
//! engine, the real prompts and RTP playout, a scripted caller, a virtual clock. No sockets;
//! each call takes milliseconds and runs the same way every time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ivrflow::media::prompts::PromptCache;
use ivrflow::scenario::{self, Scenario};
use ivrflow::sim::{CallerStep, SimOptions, SimReport, run_call};

fn setup() -> (Arc<Scenario>, Arc<PromptCache>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sc = scenario::load_file(&root.join("scenarios/order-confirmation.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let prompts = PromptCache::load_dir(&root.join("audio")).unwrap_or_else(|e| panic!("{e}"));
    (Arc::new(sc), Arc::new(prompts))
}

fn call(vars: &[(&str, &str)], script: &[CallerStep]) -> SimReport {
    let (sc, prompts) = setup();
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let report = run_call(sc, vars, prompts, script, &SimOptions::default());
    assert!(!report.timed_out, "the call must end by itself");
    report
}

fn en(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("en/{n}")).collect()
}

fn greeting(order: &str) -> Vec<String> {
    let mut v = en(&["hello", "your", "number", "is"]);
    v.extend(order.chars().map(|d| format!("en/digits/{d}")));
    v
}

fn question() -> Vec<String> {
    en(&[
        "if-correct-press",
        "digits/1",
        "vm-press",
        "digits/2",
        "for",
        "cancelled",
        "vm-press",
        "digits/3",
        "shop/to-change-order",
    ])
}

#[test]
fn key_1_confirms_the_order() {
    let r = call(&[("order_id", "4711")], &[CallerStep::key("1")]);
    assert_eq!(r.record.outcome.as_deref(), Some("confirmed"));
    let a = &r.record.answers["confirm"];
    assert_eq!((a.input.as_str(), a.value.as_str()), ("dtmf", "1"));
    assert_eq!(a.intent.as_deref(), Some("confirm"));
    assert_eq!(
        r.plays(),
        vec![
            greeting("4711"),
            question(),
            en(&["auth-thankyou", "goodbye"])
        ]
    );
    assert_eq!(
        r.record.path,
        vec!["greet", "confirm", "followup", "confirmed"]
    );
    assert_eq!(r.record.variables["order_id"], "4711");
    assert_eq!(r.record.hangup_by, ivrflow::dialogue::HangupBy::Robot);
    // Every prompt was played in full: packets = Σ ceil(duration / 20 ms) per play-out.
    assert!(r.packets > 0);
}

#[test]
fn key_2_cancels() {
    let r = call(&[], &[CallerStep::key("2")]);
    assert_eq!(r.record.outcome.as_deref(), Some("cancelled"));
    assert_eq!(
        r.plays(),
        vec![greeting("1234"), question(), en(&["cancelled", "goodbye"])]
    );
}

#[test]
fn silence_reprompts_twice_then_ends_with_no_input() {
    let r = call(&[], &[]);
    assert_eq!(r.record.outcome.as_deref(), Some("no_input"));
    let mut reprompt1 = en(&["im-sorry"]);
    reprompt1.extend(question());
    let mut reprompt2 = en(&["im-sorry", "please-try-again"]);
    reprompt2.extend(question());
    assert_eq!(
        r.plays(),
        vec![
            greeting("1234"),
            question(),
            reprompt1,
            reprompt2,
            en(&["goodbye"])
        ]
    );
    // The question was asked and never answered: the CRM still sees it.
    let json = serde_json::to_value(&r.record).unwrap();
    assert_eq!(
        json["answers"],
        serde_json::json!({ "confirm": { "input": "dtmf+speech", "value": null, "intent": null, "reason": "noinput" } })
    );
    assert_eq!(r.record.path, vec!["greet", "confirm", "no_input"]);
}

#[test]
fn the_no_input_timer_starts_when_the_question_has_finished_playing() {
    use ivrflow::call::TraceEvent;
    let r = call(&[], &[]);
    // Each re-prompt starts exactly `timeout` (5 s) after the previous play-out finished on
    // the wire, never counted from when the prompt was requested.
    let t = &r.record.trace;
    let finished: Vec<u64> = t
        .iter()
        .filter_map(|e| match e {
            TraceEvent::PlayFinished { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .collect();
    let started: Vec<u64> = t
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Play { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .collect();
    // plays: greet(0) question(1) reprompt(2) reprompt(3) goodbye(4)
    assert_eq!(
        started[1], finished[0],
        "the question follows the greeting with no gap"
    );
    for i in 1..=3 {
        assert_eq!(started[i + 1] - finished[i], 5000, "re-prompt {i}: {t:?}");
    }
}

#[test]
fn an_invalid_key_gets_the_nomatch_reprompt_and_a_valid_one_then_counts() {
    let r = call(&[], &[CallerStep::key("9"), CallerStep::key("1")]);
    assert_eq!(r.record.outcome.as_deref(), Some("confirmed"));
    let mut nomatch = en(&["pm-invalid-option", "please-try-again"]);
    nomatch.extend(question());
    assert_eq!(
        r.plays(),
        vec![
            greeting("1234"),
            question(),
            nomatch,
            en(&["auth-thankyou", "goodbye"])
        ]
    );
}

#[test]
fn a_key_during_the_question_cuts_it_short() {
    use ivrflow::call::TraceEvent;
    // The greeting lasts ~5 s; at 7 s the question is playing.
    let r = call(
        &[],
        &[CallerStep::KeyAt {
            digit: '1',
            at: Duration::from_secs(7),
        }],
    );
    assert_eq!(r.record.outcome.as_deref(), Some("confirmed"));
    let stopped = r
        .record
        .trace
        .iter()
        .find_map(|e| match e {
            TraceEvent::PlayStopped { heard_ms, .. } => Some(*heard_ms),
            _ => None,
        })
        .expect("the question was cut by the key");
    assert!(
        stopped > 0 && stopped < 5_500,
        "heard {stopped} ms of the question"
    );
}

#[test]
fn caller_hangup_is_recorded() {
    let r = call(
        &[],
        &[CallerStep::Hangup {
            after: Duration::from_secs(2),
        }],
    );
    assert_eq!(r.record.hangup_by, ivrflow::dialogue::HangupBy::Caller);
    assert_eq!(r.duration, Duration::from_secs(2));
}

#[test]
fn russian_callers_hear_the_russian_prompts() {
    let r = call(&[("language", "ru")], &[CallerStep::key("1")]);
    assert_eq!(r.record.outcome.as_deref(), Some("confirmed"));
    assert!(
        r.plays().iter().flatten().all(|p| p.starts_with("ru/")),
        "{:?}",
        r.plays()
    );
}
