//! Whole dialogues on a virtual clock: `t0` once, then `t0 + ms`; nothing sleeps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::scenario::{load_file, load_str};

fn order_confirmation() -> Arc<Scenario> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join("order-confirmation.yaml");
    Arc::new(load_file(&path).unwrap_or_else(|e| panic!("{e}")))
}

const QUESTION: [&str; 6] = [
    "if-correct-press",
    "digits/1",
    "vm-press",
    "digits/2",
    "for",
    "cancelled",
];
const GREETING: [&str; 8] = [
    "hello", "your", "number", "is", "digits/1", "digits/2", "digits/3", "digits/4",
];

/// A dialogue plus a virtual clock and the actions it produced.
struct Call {
    d: Dialogue,
    t0: Instant,
}

impl Call {
    fn new(scenario: Arc<Scenario>, vars: &[(&str, &str)]) -> Call {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>();
        let mut call = Call {
            d: Dialogue::new(scenario, vars),
            t0: Instant::now(),
        };
        call.d.start(call.t0);
        call
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn input(&mut self, ms: u64, input: Input) -> Vec<Action> {
        self.d.handle_input(self.at(ms), input);
        self.drain()
    }

    fn timeout(&mut self, ms: u64) -> Vec<Action> {
        self.d.handle_timeout(self.at(ms));
        self.drain()
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.d.poll_action()).collect()
    }

    /// Fires the next timer at the instant the dialogue asked for.
    fn wait_timer(&mut self) -> (u64, Vec<Action>) {
        let at = self.d.poll_timeout().expect("a timer is armed");
        let ms = at.duration_since(self.t0).as_millis() as u64;
        (ms, self.timeout(ms))
    }
}

/// The single Play in `actions`: (id, prompt names).
#[track_caller]
fn play(actions: &[Action]) -> (u64, Vec<String>) {
    match actions {
        [Action::Play { id, prompts }] => (*id, prompts.iter().map(|p| p.name.clone()).collect()),
        other => panic!("expected one Play, got {other:?}"),
    }
}

fn names(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|s| s.to_string())
        .collect()
}

/// Starts the order confirmation and lets the greeting finish at 3 s; returns the
/// question's play id (played from 3 s).
fn to_question(call: &mut Call) -> u64 {
    let actions = call.drain();
    let (greet, prompts) = play(&actions);
    assert_eq!(prompts, names(&[&GREETING]));
    let (question, prompts) = play(&call.input(3000, Input::PlaybackDone { id: greet }));
    assert_eq!(prompts, names(&[&QUESTION]));
    assert!(question > greet);
    question
}

#[test]
fn key_1_after_the_question_confirms() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    assert!(call.input(6000, Input::PlaybackDone { id: q }).is_empty());
    let (bye, prompts) = play(&call.input(7000, Input::Dtmf('1')));
    assert_eq!(prompts, ["auth-thankyou", "goodbye"]);
    assert!(!call.d.is_finished());
    assert_eq!(
        call.input(9000, Input::PlaybackDone { id: bye }),
        [Action::Hangup]
    );
    assert!(call.d.is_finished());
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("confirmed"));
    assert_eq!(
        r.answers["confirm"],
        Answer {
            input: "dtmf".into(),
            value: "1".into(),
            intent: Some("confirm".into())
        }
    );
    assert_eq!(r.path, ["greet", "confirm", "confirmed"]);
    assert_eq!(r.hangup_by, Some(HangupBy::Robot));
    assert_eq!(r.variables["order_id"], "1234");
    assert_eq!(call.d.poll_timeout(), None);
}

#[test]
fn key_during_the_question_barges_in() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    let actions = call.input(4000, Input::Dtmf('1'));
    assert_eq!(actions[0], Action::StopPlayback);
    let (bye, prompts) = play(&actions[1..]);
    assert_eq!(prompts, ["auth-thankyou", "goodbye"]);
    // The engine confirms the stop of the old play: nothing happens.
    assert!(
        call.input(4020, Input::PlaybackStopped { id: q })
            .is_empty()
    );
    assert_eq!(
        call.input(6000, Input::PlaybackDone { id: bye }),
        [Action::Hangup]
    );
    assert_eq!(call.d.result().outcome.as_deref(), Some("confirmed"));
    assert_eq!(call.d.result().answers["confirm"].value, "1");
}

#[test]
fn key_2_cancels() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let (bye, prompts) = play(&call.input(6500, Input::Dtmf('2')));
    assert_eq!(prompts, ["cancelled", "goodbye"]);
    assert_eq!(
        call.input(8000, Input::PlaybackDone { id: bye }),
        [Action::Hangup]
    );
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("cancelled"));
    assert_eq!(r.answers["confirm"].intent.as_deref(), Some("cancel"));
    assert_eq!(r.path, ["greet", "confirm", "cancelled"]);
}

#[test]
fn silence_reprompts_then_ends_with_no_input() {
    let mut call = Call::new(order_confirmation(), &[]);
    let mut plays = Vec::new();
    let (greet, prompts) = play(&call.drain());
    plays.push(prompts);
    let (mut id, prompts) = play(&call.input(3000, Input::PlaybackDone { id: greet }));
    plays.push(prompts);
    let mut now = 3000;
    loop {
        // Each prompt takes 2.5 s; then the caller stays silent.
        now += 2500;
        let actions = call.input(now, Input::PlaybackDone { id });
        if actions == [Action::Hangup] {
            break;
        }
        assert!(actions.is_empty(), "{actions:?}");
        let (fired_at, actions) = call.wait_timer();
        assert_eq!(
            fired_at,
            now + 5000,
            "no-input timer counts from PlaybackDone"
        );
        now = fired_at;
        let (next, prompts) = play(&actions);
        plays.push(prompts);
        id = next;
    }
    assert_eq!(
        plays,
        [
            names(&[&GREETING]),
            names(&[&QUESTION]),
            names(&[&["im-sorry"], &QUESTION]),
            names(&[&["im-sorry", "please-try-again"], &QUESTION]),
            names(&[&["goodbye"]]),
        ]
    );
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("no_input"));
    assert_eq!(r.path, ["greet", "confirm", "no_input"]);
    assert!(r.answers.is_empty());
    assert_eq!(r.hangup_by, Some(HangupBy::Robot));
    assert!(call.d.is_finished());
}

#[test]
fn invalid_key_reprompts_then_ends() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let (first, prompts) = play(&call.input(7000, Input::Dtmf('9')));
    assert_eq!(
        prompts,
        names(&[&["pm-invalid-option", "please-try-again"], &QUESTION])
    );
    // The only nomatch reprompt is reused for the second event.
    call.input(9000, Input::PlaybackDone { id: first });
    let (_, prompts) = play(&call.input(9500, Input::Dtmf('9')));
    assert_eq!(
        prompts,
        names(&[&["pm-invalid-option", "please-try-again"], &QUESTION])
    );
    // A barge-in with an invalid key counts too: third no-match → on.nomatch.
    let actions = call.input(10000, Input::Dtmf('7'));
    assert_eq!(actions[0], Action::StopPlayback);
    let (_, prompts) = play(&actions[1..]);
    assert_eq!(prompts, ["goodbye"]);
    assert_eq!(call.d.result().outcome.as_deref(), Some("no_input"));
    assert!(call.d.result().answers.is_empty());
}

#[test]
fn noinput_and_nomatch_count_separately() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let (id, _) = play(&call.input(6500, Input::Dtmf('9'))); // nomatch 1
    call.input(8000, Input::PlaybackDone { id });
    let (_, actions) = call.wait_timer(); // noinput 1
    let (id, prompts) = play(&actions);
    assert_eq!(prompts, names(&[&["im-sorry"], &QUESTION]));
    call.input(20000, Input::PlaybackDone { id });
    let (id, prompts) = play(&call.input(20500, Input::Dtmf('0'))); // nomatch 2
    assert_eq!(prompts[0], "pm-invalid-option");
    call.input(22000, Input::PlaybackDone { id });
    let (_, actions) = call.wait_timer(); // noinput 2
    let (id, prompts) = play(&actions);
    assert_eq!(prompts[..2], ["im-sorry", "please-try-again"]);
    call.input(30000, Input::PlaybackDone { id });
    let (_, prompts) = play(&call.input(30100, Input::Dtmf('1')));
    assert_eq!(prompts, ["auth-thankyou", "goodbye"]);
}

#[test]
fn caller_hangup_mid_call() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    assert!(call.input(4000, Input::Hangup).is_empty());
    assert!(call.d.is_finished());
    let r = call.d.result();
    assert_eq!(r.hangup_by, Some(HangupBy::Caller));
    assert_eq!(r.outcome.as_deref(), Some("caller_hangup"));
    assert_eq!(call.d.poll_timeout(), None);
    // Late inputs change nothing.
    assert!(
        call.input(4100, Input::PlaybackStopped { id: q })
            .is_empty()
    );
    assert!(call.input(4200, Input::Dtmf('1')).is_empty());
    assert!(call.d.result().answers.is_empty());
    let json = serde_json::to_value(call.d.result()).unwrap();
    assert_eq!(json["hangup_by"], "caller");
    assert_eq!(json["outcome"], "caller_hangup");
}

#[test]
fn caller_hangup_during_goodbye_keeps_the_outcome() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let (bye, _) = play(&call.input(6100, Input::Dtmf('1')));
    assert!(call.input(6500, Input::Hangup).is_empty());
    assert!(call.input(8000, Input::PlaybackDone { id: bye }).is_empty());
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("confirmed"));
    assert_eq!(r.hangup_by, Some(HangupBy::Caller));
}

#[test]
fn language_selects_the_prompt_set() {
    let mut call = Call::new(
        order_confirmation(),
        &[("language", "ru"), ("order_id", "77")],
    );
    let actions = call.drain();
    let Action::Play { prompts, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert!(prompts.iter().all(|p| p.lang == "ru"), "{prompts:?}");
    assert_eq!(prompts.last().unwrap().name, "digits/7");
    assert_eq!(prompts.len(), 6);
    assert_eq!(call.d.language(), "ru");

    // An unsupported language falls back to the scenario's default.
    let mut call = Call::new(order_confirmation(), &[("language", "de")]);
    let actions = call.drain();
    let Action::Play { prompts, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert!(prompts.iter().all(|p| p.lang == "en"));
    assert_eq!(call.d.result().variables["language"], "de");
}

#[test]
fn no_input_timer_starts_when_the_prompt_finished_playing() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call); // Play requested at 3 s
    // No timer while the prompt plays, however long it takes.
    assert_eq!(call.d.poll_timeout(), None);
    assert!(call.timeout(9000).is_empty());
    call.input(10_000, Input::PlaybackDone { id: q });
    assert_eq!(call.d.poll_timeout(), Some(call.at(15_000)));
    assert!(call.timeout(14_900).is_empty(), "4.9 s after PlaybackDone");
    let (_, prompts) = play(&call.timeout(15_000));
    assert_eq!(prompts[0], "im-sorry");
}

#[test]
fn spurious_and_stale_events_are_no_ops() {
    let mut call = Call::new(order_confirmation(), &[]);
    let greet = play(&call.drain()).0;
    assert!(call.timeout(100).is_empty());
    assert!(
        call.input(200, Input::PlaybackDone { id: greet + 7 })
            .is_empty()
    );
    assert!(
        call.input(300, Input::Dtmf('1')).is_empty(),
        "keys ignored in play"
    );
    assert!(call.input(400, Input::Dtmf('x')).is_empty());
    let q = play(&call.input(500, Input::PlaybackDone { id: greet })).0;
    assert!(
        call.input(600, Input::PlaybackDone { id: greet })
            .is_empty()
    );
    call.input(700, Input::PlaybackDone { id: q });
    assert!(call.timeout(701).is_empty());
    assert_eq!(call.d.result().path, ["greet", "confirm"]);
    assert_eq!(call.d.current_node(), Some("confirm"));
}

#[test]
fn input_before_start_is_ignored() {
    let mut d = Dialogue::new(order_confirmation(), BTreeMap::new());
    let t0 = Instant::now();
    d.handle_input(t0, Input::Dtmf('1'));
    d.handle_timeout(t0);
    assert_eq!(d.poll_action(), None);
    assert!(!d.is_finished());
    d.start(t0);
    assert!(matches!(d.poll_action(), Some(Action::Play { id: 1, .. })));
    d.start(t0);
    assert_eq!(d.poll_action(), None);
}

const MULTI: &str = "\
version: 1
variables:
  code: { type: digits }
start: q
nodes:
  q:
    ask:
      prompt: [{ prompt: promo, barge_in: false }, { digits: \"${code}\" }, question]
      timeout: 4s
      interdigit_timeout: 2s
      intents:
        two: { dtmf: [\"2\"] }
        twenty_two: { dtmf: [\"22\"] }
        star: { dtmf: [\"*9\"] }
    on:
      two: done
      twenty_two: done
      star: done
      noinput: done
      nomatch: done
  done:
    outcome: finished
    hangup: {}
";

fn multi(code: &str) -> Call {
    let scenario = Arc::new(load_str("multi.yaml", MULTI).unwrap());
    Call::new(scenario, &[("code", code)])
}

#[test]
fn protected_prompt_ignores_keys() {
    let mut call = multi("5");
    let actions = call.drain();
    let Action::Play { id, prompts } = &actions[0] else {
        panic!()
    };
    let flags: Vec<bool> = prompts.iter().map(|p| p.barge_in).collect();
    assert_eq!(flags, [false, true, true]);
    let id = *id;
    // Key during the protected promo: ignored, not buffered.
    assert!(call.input(500, Input::Dtmf('2')).is_empty());
    assert!(call.input(600, Input::Dtmf('2')).is_empty());
    assert_eq!(call.d.poll_timeout(), None);
    // The engine reports the next prompt on the wire: barge-in allowed.
    assert!(
        call.input(2000, Input::PromptStarted { id, index: 1 })
            .is_empty()
    );
    assert_eq!(call.input(2100, Input::Dtmf('2')), [Action::StopPlayback]);
    assert_eq!(call.d.poll_timeout(), Some(call.at(4100)));
    // Second key completes "22" at once.
    assert_eq!(call.input(2500, Input::Dtmf('2')), [Action::Hangup]);
    let r = call.d.result();
    assert_eq!(r.answers["q"].value, "22");
    assert_eq!(r.answers["q"].intent.as_deref(), Some("twenty_two"));
    assert_eq!(r.outcome.as_deref(), Some("finished"));
}

#[test]
fn interdigit_timeout_decides_ambiguous_keys() {
    let mut call = multi("");
    let (id, prompts) = play(&call.drain());
    assert_eq!(
        prompts,
        ["promo", "question"],
        "empty digits value speaks nothing"
    );
    call.input(1000, Input::PlaybackDone { id });
    assert_eq!(call.d.poll_timeout(), Some(call.at(5000)));
    assert!(call.input(1500, Input::Dtmf('2')).is_empty());
    // The no-input timer is gone; the inter-digit timer runs.
    assert_eq!(call.d.poll_timeout(), Some(call.at(3500)));
    assert!(call.timeout(3499).is_empty());
    assert_eq!(call.timeout(3500), [Action::Hangup]);
    assert_eq!(call.d.result().answers["q"].intent.as_deref(), Some("two"));
}

#[test]
fn incomplete_key_sequence_is_a_nomatch() {
    let mut call = multi("1");
    let (id, _) = play(&call.drain());
    call.input(1000, Input::PlaybackDone { id });
    assert!(call.input(1200, Input::Dtmf('*')).is_empty());
    // "*" alone is no intent: when the inter-digit timer expires it is a no-match.
    let (id, prompts) = play(&call.timeout(3200));
    assert_eq!(
        prompts,
        ["promo", "digits/1", "question"],
        "nomatch replays the question"
    );
    call.input(5000, Input::PlaybackDone { id });
    // "*" then "1": no key starts with "*1" → no-match at once, without waiting.
    assert!(call.input(5100, Input::Dtmf('*')).is_empty());
    let (_, prompts) = play(&call.input(5200, Input::Dtmf('1')));
    assert_eq!(prompts[0], "promo");
    assert_eq!(call.d.poll_timeout(), None, "question playing again");
}

#[test]
fn dialogue_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Dialogue>();
    check::<Scenario>();
}

#[test]
fn non_digits_in_a_digits_variable_are_skipped() {
    let call = &mut multi("12-3x");
    let (_, prompts) = play(&call.drain());
    assert_eq!(
        prompts,
        ["promo", "digits/1", "digits/2", "digits/3", "question"]
    );
}

const LOOPY: &str = "\
version: 1
variables:
  x: {}
start: a
nodes:
  a:
    play: [{ digits: \"${x}\" }]
    next: b
  b:
    goto: a
";

#[test]
fn endless_zero_time_loop_ends_with_error() {
    let scenario = Arc::new(load_str("loopy.yaml", LOOPY).unwrap());
    let mut call = Call::new(scenario.clone(), &[]);
    assert_eq!(call.drain(), [Action::Hangup]);
    assert!(call.d.is_finished());
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("error"));
    assert_eq!(r.hangup_by, Some(HangupBy::Robot));
    assert!(r.path.len() <= MAX_TRANSITIONS_PER_INPUT as usize);

    // With a value the same graph plays and waits, so it is not an error.
    let mut call = Call::new(scenario, &[("x", "4")]);
    let (id, prompts) = play(&call.drain());
    assert_eq!(prompts, ["digits/4"]);
    let (_, prompts) = play(&call.input(500, Input::PlaybackDone { id }));
    assert_eq!(prompts, ["digits/4"]);
    assert_eq!(call.d.result().path, ["a", "b", "a"]);
}

const SETTER: &str = "\
version: 1
languages: [en, uk]
variables:
  code: { type: digits, default: \"1\" }
start: s
nodes:
  s:
    set: { code: \"9${code}\", language: uk }
    outcome: started
    next: p
  p:
    play: [{ digits: \"${code}\" }, { prompt: \"lang/${language}\" }]
    next: end
  end:
    hangup: { play: [goodbye] }
";

#[test]
fn set_changes_variables_and_language() {
    let scenario = Arc::new(load_str("setter.yaml", SETTER).unwrap());
    let mut call = Call::new(scenario, &[]);
    let actions = call.drain();
    let Action::Play { id, prompts } = &actions[0] else {
        panic!("{actions:?}")
    };
    let got: Vec<(&str, &str, bool)> = prompts
        .iter()
        .map(|p| (p.lang.as_str(), p.name.as_str(), p.barge_in))
        .collect();
    assert_eq!(
        got,
        [
            ("uk", "digits/9", false),
            ("uk", "digits/1", false),
            ("uk", "lang/uk", false)
        ]
    );
    let id = *id;
    let (bye, _) = play(&call.input(1000, Input::PlaybackDone { id }));
    assert_eq!(
        call.input(2000, Input::PlaybackStopped { id: bye }),
        [Action::Hangup],
        "an unrequested stop ends the prompt like Done"
    );
    let r = call.d.result();
    assert_eq!(r.variables["code"], "91");
    assert_eq!(r.outcome.as_deref(), Some("started"));
    assert_eq!(r.path, ["s", "p", "end"]);
}
