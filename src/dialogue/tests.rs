//! Whole dialogues on a virtual clock: `t0` once, then `t0 + ms`; nothing sleeps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::scenario::{TransferMode, load_file, load_str};

fn order_confirmation() -> Arc<Scenario> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join("order-confirmation.yaml");
    Arc::new(load_file(&path).unwrap_or_else(|e| panic!("{e}")))
}

const QUESTION: [&str; 9] = [
    "if-correct-press",
    "digits/1",
    "vm-press",
    "digits/2",
    "for",
    "cancelled",
    "vm-press",
    "digits/3",
    "shop/to-change-order",
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
            intent: Some("confirm".into()),
            confidence: None,
            file: None,
        }
    );
    assert_eq!(r.path, ["greet", "confirm", "followup", "confirmed"]);
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
    let (id, prompts) = play(&call.input(20500, Input::Dtmf('8'))); // nomatch 2
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

// ---------------------------------------------------------------------------------------
// Speech, digit strings, effects, sub-dialogues, globals, expressions.

fn scenario(yaml: &str) -> Arc<Scenario> {
    Arc::new(load_str("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}")))
}

/// The ids and names of the actions, for compact assertions.
fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Play { prompts, .. } => format!(
                "play {}",
                prompts
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join("+")
            ),
            Action::StopPlayback => "stop".to_string(),
            Action::Hangup => "hangup".to_string(),
            Action::Webhook { request, .. } => format!("webhook {}", request.body),
            Action::Transfer { target, .. } => format!("transfer {target}"),
            Action::Notify { event, .. } => format!("notify {event}"),
            Action::Record { .. } => "record".to_string(),
        })
        .collect()
}

fn play_id(actions: &[Action]) -> u64 {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Play { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Play in {actions:?}"))
}

const SPEECH: &str = r##"
version: 1
languages: [en, ru]
start: q
nodes:
  q:
    ask:
      prompt: [intro, { prompt: code, barge_in: false }, question]
      input: [dtmf, speech]
      confidence: 0.6
      intents:
        "yes": { dtmf: ["1"], phrases: { en: ["yes", sure], ru: [да] }, say: [say-yes] }
        "no": { dtmf: ["2"], phrases: { en: ["no"], ru: [нет] } }
      confirm: { prompt: [did-you-say], question: [press-1-or-2] }
      noinput: { max: 1, reprompt: [[sorry]] }
      nomatch: { max: 1, reprompt: [[invalid]] }
    on: { "yes": ok, "no": ok, noinput: ok, nomatch: ok }
  ok:
    hangup: { outcome: done }
"##;

#[test]
fn speech_barges_in_and_is_classified() {
    let mut call = Call::new(scenario(SPEECH), &[]);
    let q = play_id(&call.drain());
    // During the first item: listening, and speech may interrupt.
    let spec = call
        .d
        .listen_spec()
        .expect("listening during a bargeable item");
    assert!(spec.barge_in);
    assert_eq!(spec.lang, "en");
    assert_eq!(spec.phrases, ["yes", "sure", "no"]);
    assert_eq!(
        call.input(100, Input::SpeechStarted),
        [Action::StopPlayback]
    );
    assert!(call.d.listen_spec().is_some_and(|s| !s.barge_in));
    assert!(call.input(150, Input::PlaybackStopped { id: q }).is_empty());
    // The no-input timer is suspended while the caller speaks.
    assert!(call.d.poll_timeout().is_some_and(|t| t > call.at(5150)));
    let actions = call.input(
        1200,
        Input::Utterance {
            text: "Sure!".into(),
            confidence: 0.9,
        },
    );
    assert_eq!(kinds(&actions), ["hangup"]);
    let a = &call.d.result().answers["q"];
    assert_eq!((a.input.as_str(), a.value.as_str()), ("speech", "Sure!"));
    assert_eq!(a.intent.as_deref(), Some("yes"));
    assert_eq!(a.confidence, Some(0.9));
}

#[test]
fn a_protected_item_cannot_be_interrupted() {
    let mut call = Call::new(scenario(SPEECH), &[]);
    let q = play_id(&call.drain());
    call.input(500, Input::PromptStarted { id: q, index: 1 });
    assert_eq!(call.d.listen_spec(), None, "not listening during the code");
    assert!(call.input(600, Input::SpeechStarted).is_empty());
    assert!(
        call.input(700, Input::Dtmf('1')).is_empty(),
        "the key is not kept"
    );
    call.input(800, Input::PromptStarted { id: q, index: 2 });
    assert!(call.d.listen_spec().is_some());
    assert_eq!(
        kinds(&call.input(900, Input::Dtmf('2'))),
        ["stop", "hangup"]
    );
    assert_eq!(call.d.result().answers["q"].intent.as_deref(), Some("no"));
}

#[test]
fn a_key_cancels_pending_speech_and_a_late_utterance_is_ignored() {
    let mut call = Call::new(scenario(SPEECH), &[]);
    let q = play_id(&call.drain());
    call.input(3000, Input::PlaybackDone { id: q });
    call.input(3500, Input::SpeechStarted);
    assert_eq!(kinds(&call.input(3600, Input::Dtmf('2'))), ["hangup"]);
    assert!(
        call.input(
            4000,
            Input::Utterance {
                text: "yes".into(),
                confidence: 1.0
            }
        )
        .is_empty()
    );
    let a = &call.d.result().answers["q"];
    assert_eq!(
        (a.input.as_str(), a.intent.as_deref()),
        ("dtmf", Some("no"))
    );
}

#[test]
fn low_confidence_speech_is_confirmed() {
    let mut call = Call::new(scenario(SPEECH), &[]);
    let q = play_id(&call.drain());
    call.input(3000, Input::PlaybackDone { id: q });
    let said = |c: f32, t: &str| Input::Utterance {
        text: t.into(),
        confidence: c,
    };
    // 0.4 < 0.6: "Did you say yes? Press 1 or 2."
    let actions = call.input(4000, said(0.4, "yes"));
    assert_eq!(kinds(&actions), ["play did-you-say+say-yes+press-1-or-2"]);
    let c = play_id(&actions);
    call.input(6000, Input::PlaybackDone { id: c });
    let spec = call.d.listen_spec().unwrap();
    assert!(spec.phrases.contains(&"yes".to_string()) && spec.phrases.contains(&"no".to_string()));
    // "No": a no-match of the question (reprompt 1 of 1).
    let actions = call.input(7000, said(1.0, "no"));
    assert_eq!(kinds(&actions), ["play invalid+intro+code+question"]);
    let r = play_id(&actions);
    call.input(9000, Input::PlaybackDone { id: r });
    let c = play_id(&call.input(9500, said(0.3, "sure")));
    call.input(11000, Input::PlaybackDone { id: c });
    // Yes by key.
    assert_eq!(kinds(&call.input(11500, Input::Dtmf('1'))), ["hangup"]);
    let a = &call.d.result().answers["q"];
    assert_eq!((a.input.as_str(), a.value.as_str()), ("speech", "sure"));
    assert_eq!(a.confidence, Some(0.3));
}

#[test]
fn unrecognised_speech_and_the_speech_watchdog_count_as_nomatch() {
    let mut call = Call::new(scenario(SPEECH), &[]);
    let q = play_id(&call.drain());
    call.input(3000, Input::PlaybackDone { id: q });
    let r = play_id(&call.input(3500, Input::SpeechUnrecognised));
    call.input(5000, Input::PlaybackDone { id: r });
    call.input(5500, Input::SpeechStarted);
    // No verdict ever comes: max_speech + incomplete + grace later, no-match 2 → leave.
    let (ms, actions) = call.wait_timer();
    assert_eq!(ms, 5500 + 10_000 + 1_500 + 5_000);
    assert_eq!(kinds(&actions), ["hangup"]);
    assert!(call.d.journal().iter().any(|e| matches!(
        &e.event,
        JournalEvent::NoMatch { reason, .. } if reason == "no recognition result"
    )));
}

const DIGITS: &str = r##"
version: 1
variables: { account: { type: digits } }
start: q
nodes:
  q:
    ask:
      prompt: [enter-account]
      digits: { min: 3, max: 5, terminator: "#" }
      store: account
      interdigit_timeout: 2s
      term_timeout: 1s
      intents:
        repeat: { dtmf: ["*"], repeat: true }
      noinput: { max: 0 }
      nomatch: { max: 0 }
    on: { digits: ok, noinput: bad, nomatch: bad }
  ok: { hangup: { outcome: ok } }
  bad: { hangup: { outcome: bad } }
"##;

fn digits_call() -> Call {
    let mut call = Call::new(scenario(DIGITS), &[]);
    let q = play_id(&call.drain());
    call.input(1000, Input::PlaybackDone { id: q });
    call
}

#[test]
fn digit_strings_end_with_the_terminator_or_the_interdigit_timeout() {
    // Terminator after a complete string: at once, without the terminator.
    let mut call = digits_call();
    for (i, k) in "1234#".chars().enumerate() {
        call.input(2000 + i as u64 * 100, Input::Dtmf(k));
    }
    assert!(call.d.is_finished());
    assert_eq!(call.d.result().variables["account"], "1234");
    assert_eq!(call.d.result().outcome.as_deref(), Some("ok"));

    // Complete but could go on: the inter-digit timeout accepts it.
    let mut call = digits_call();
    for (i, k) in "123".chars().enumerate() {
        call.input(2000 + i as u64 * 100, Input::Dtmf(k));
    }
    let (ms, _) = call.wait_timer();
    assert_eq!(ms, 2200 + 2000);
    assert_eq!(call.d.result().answers["q"].value, "123");

    // Full: waits term_timeout for the terminator, then accepts.
    let mut call = digits_call();
    for (i, k) in "12345".chars().enumerate() {
        call.input(2000 + i as u64 * 100, Input::Dtmf(k));
    }
    let (ms, _) = call.wait_timer();
    assert_eq!(ms, 2400 + 1000);
    assert_eq!(call.d.result().outcome.as_deref(), Some("ok"));

    // Too short: the inter-digit timeout is a no-match; so is a terminator.
    let mut call = digits_call();
    call.input(2000, Input::Dtmf('1'));
    call.input(2100, Input::Dtmf('2'));
    let (ms, _) = call.wait_timer();
    assert_eq!(ms, 4100);
    assert_eq!(call.d.result().outcome.as_deref(), Some("bad"));
    let mut call = digits_call();
    call.input(2000, Input::Dtmf('1'));
    call.input(2100, Input::Dtmf('#'));
    assert_eq!(call.d.result().outcome.as_deref(), Some("bad"));

    // `*` is the repeat intent, not a digit.
    let mut call = digits_call();
    let actions = call.input(2000, Input::Dtmf('*'));
    assert_eq!(kinds(&actions), ["play enter-account"]);
}

const EFFECTS: &str = r##"
version: 1
variables:
  phone: { default: "+100" }
  status: {}
  transcript: {}
start: hook
nodes:
  hook:
    webhook:
      name: lookup
      url: "https://crm.example/${phone}"
      body: { phone: "${phone}", n: 1 }
      timeout: 2s
      store: { status: order.status }
    next: rec
    on: { error: failed }
  rec:
    record: { prompt: [beep], max_length: 10s, final_silence: 2s, transcribe: true, store: transcript }
    next: xfer
    on: { empty: failed }
  xfer:
    transfer: { target: "sip:desk@pbx", announcement: [caller-en], outcome: handed_over }
    next: failed
  failed:
    notify: { event: callback.requested, data: { phone: "${phone}" } }
    next: bye
  bye: { hangup: { outcome: fallback } }
"##;

#[test]
fn webhook_results_are_stored_and_its_timeout_is_enforced() {
    let mut call = Call::new(scenario(EFFECTS), &[]);
    let actions = call.drain();
    let Action::Webhook { id, request } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(request.url.as_deref(), Some("https://crm.example/+100"));
    assert_eq!(request.body, serde_json::json!({ "phone": "+100", "n": 1 }));
    assert_eq!(request.method, "POST");
    assert_eq!(request.timeout, Duration::from_secs(2));
    let id = *id;
    assert_eq!(call.d.poll_timeout(), Some(call.at(2000)));
    let actions = call.input(
        500,
        Input::WebhookResult {
            id,
            result: Ok(serde_json::json!({ "order": { "status": "shipped" } })),
        },
    );
    assert_eq!(call.d.result().variables["status"], "shipped");
    assert_eq!(kinds(&actions), ["play beep"]);

    // Timeout: the error path; the late answer is ignored.
    let mut call = Call::new(scenario(EFFECTS), &[]);
    let Action::Webhook { id, .. } = call.drain()[0].clone() else {
        panic!()
    };
    let (ms, actions) = call.wait_timer();
    assert_eq!(ms, 2000);
    assert_eq!(kinds(&actions), ["notify callback.requested", "hangup"]);
    assert!(
        call.input(
            2500,
            Input::WebhookResult {
                id,
                result: Ok(serde_json::json!({}))
            }
        )
        .is_empty()
    );
    assert_eq!(call.d.result().path, ["hook", "failed", "bye"]);
}

#[test]
fn recordings_and_transfers() {
    let mut call = Call::new(scenario(EFFECTS), &[]);
    let Action::Webhook { id, .. } = call.drain()[0].clone() else {
        panic!()
    };
    let beep = play_id(&call.input(
        100,
        Input::WebhookResult {
            id,
            result: Ok(serde_json::json!({})),
        },
    ));
    let actions = call.input(600, Input::PlaybackDone { id: beep });
    let [
        Action::Record {
            id: rec,
            max_length,
            final_silence,
            transcribe,
        },
    ] = actions[..]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (max_length, final_silence, transcribe),
        (Duration::from_secs(10), Duration::from_secs(2), true)
    );
    let actions = call.input(
        5000,
        Input::RecordingDone {
            id: rec,
            duration: Duration::from_secs(3),
            transcript: Some("call me tomorrow".into()),
            file: Some("rec/1.wav".into()),
        },
    );
    assert_eq!(call.d.result().variables["transcript"], "call me tomorrow");
    let a = &call.d.result().answers["rec"];
    assert_eq!(
        (a.input.as_str(), a.file.as_deref()),
        ("recording", Some("rec/1.wav"))
    );
    let Action::Transfer {
        id: x,
        target,
        mode,
        announcement,
    } = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (target.as_str(), *mode),
        ("sip:desk@pbx", TransferMode::Bridged)
    );
    assert_eq!(announcement[0].name, "caller-en");
    let x = *x;
    // Busy: the fallback.
    let actions = call.input(
        9000,
        Input::TransferResult {
            id: x,
            outcome: TransferOutcome::Busy,
        },
    );
    assert_eq!(kinds(&actions), ["notify callback.requested", "hangup"]);
    assert_eq!(call.d.result().outcome.as_deref(), Some("fallback"));
}

#[test]
fn a_connected_transfer_ends_the_dialogue_with_the_transfer_outcome() {
    let mut call = Call::new(scenario(EFFECTS), &[]);
    let Action::Webhook { id, .. } = call.drain()[0].clone() else {
        panic!()
    };
    let beep = play_id(&call.input(
        100,
        Input::WebhookResult {
            id,
            result: Ok(serde_json::json!({})),
        },
    ));
    let Action::Record { id: rec, .. } =
        call.input(600, Input::PlaybackDone { id: beep })[0].clone()
    else {
        panic!()
    };
    // An empty recording takes `on.empty`.
    let actions = call.input(
        3000,
        Input::RecordingDone {
            id: rec,
            duration: Duration::ZERO,
            transcript: None,
            file: None,
        },
    );
    assert_eq!(kinds(&actions), ["notify callback.requested", "hangup"]);

    let mut call = Call::new(scenario(EFFECTS), &[]);
    let Action::Webhook { id, .. } = call.drain()[0].clone() else {
        panic!()
    };
    let beep = play_id(&call.input(
        100,
        Input::WebhookResult {
            id,
            result: Ok(serde_json::json!({})),
        },
    ));
    let Action::Record { id: rec, .. } =
        call.input(600, Input::PlaybackDone { id: beep })[0].clone()
    else {
        panic!()
    };
    let Action::Transfer { id: x, .. } = call.input(
        3000,
        Input::RecordingDone {
            id: rec,
            duration: Duration::from_secs(1),
            transcript: Some("hi".into()),
            file: None,
        },
    )[0]
    .clone() else {
        panic!()
    };
    assert_eq!(
        kinds(&call.input(
            5000,
            Input::TransferResult {
                id: x,
                outcome: TransferOutcome::Connected
            }
        )),
        ["hangup"]
    );
    assert_eq!(call.d.result().outcome.as_deref(), Some("handed_over"));
    assert_eq!(call.d.result().hangup_by, Some(HangupBy::Robot));
}

const SUBS: &str = r##"
version: 1
languages: [en, ru]
variables:
  n: { type: integer, default: "0" }
  kind: { default: "" }
global:
  intents:
    operator: { dtmf: ["0"] }
  on: { operator: op }
subdialogs:
  yn:
    params:
      question: {}
    start: ask
    nodes:
      ask:
        ask:
          prompt: ["${question}"]
          intents:
            "yes": { dtmf: ["1"] }
            "no": { dtmf: ["2"] }
        on: { "yes": y, "no": n, noinput: n, nomatch: n }
      y: { return: "yes" }
      n: { return: "no" }
start: first
nodes:
  first:
    call: yn
    with: { question: q1 }
    on: { "yes": count, "no": second }
  count:
    set: { n: { expr: "n + 1" }, language: ru }
    next: second
  second:
    call: yn
    with: { question: "q-${language}" }
    next: route
  route:
    switch: { value: n, cases: { "1": one }, default: other }
  one:
    branch:
      - { if: "n >= 1 and language == 'ru'", goto: done }
    else: other
  other: { hangup: { outcome: other } }
  done: { hangup: { outcome: done } }
  op: { hangup: { outcome: operator } }
"##;

#[test]
fn sub_dialogues_take_parameters_and_restore_what_they_shadow() {
    let sc = scenario(SUBS);
    let (first, _) = {
        let mut call = Call::new(Arc::clone(&sc), &[]);
        let actions = call.drain();
        assert_eq!(kinds(&actions), ["play q1"]);
        let q = play_id(&actions);
        call.input(1000, Input::PlaybackDone { id: q });
        assert_eq!(call.d.result().variables["question"], "q1");
        let actions = call.input(1500, Input::Dtmf('1'));
        // n = 0 + 1; language switches to ru for the second question.
        assert_eq!(kinds(&actions), ["play q-ru"]);
        assert_eq!(actions_lang(&actions), "ru");
        let q = play_id(&actions);
        call.input(3000, Input::PlaybackDone { id: q });
        call.input(3500, Input::Dtmf('2'));
        let r = call.d.result();
        assert_eq!(r.outcome.as_deref(), Some("done"));
        assert_eq!(
            r.path,
            [
                "first",
                "first/ask",
                "first/y",
                "count",
                "second",
                "second/ask",
                "second/n",
                "route",
                "one",
                "done"
            ]
        );
        assert_eq!(r.answers["first/ask"].intent.as_deref(), Some("yes"));
        assert_eq!(r.answers["second/ask"].intent.as_deref(), Some("no"));
        assert_eq!(r.variables["n"], "1");
        assert!(
            !r.variables.contains_key("question"),
            "parameters do not leak"
        );
        (r.clone(), ())
    };
    assert_eq!(first.variables["language"], "ru");
}

fn actions_lang(actions: &[Action]) -> String {
    match &actions[0] {
        Action::Play { prompts, .. } => prompts[0].lang.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_global_handler_leaves_the_sub_dialogue() {
    let mut call = Call::new(scenario(SUBS), &[]);
    let q = play_id(&call.drain());
    call.input(1000, Input::PlaybackDone { id: q });
    assert_eq!(kinds(&call.input(1500, Input::Dtmf('0'))), ["hangup"]);
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("operator"));
    assert_eq!(r.path, ["first", "first/ask", "op"]);
    assert!(!r.variables.contains_key("question"));
    let edges: Vec<&EdgeId> = call
        .d
        .journal()
        .iter()
        .filter_map(|e| match &e.event {
            JournalEvent::Enter {
                edge: Some(edge), ..
            } => Some(edge),
            _ => None,
        })
        .collect();
    assert_eq!(
        edges.last().map(|e| (e.from, e.key.as_str())),
        Some((None, "global.operator")),
        "global edges have no source node"
    );
}

#[test]
fn repeat_replays_the_question_a_few_times_then_counts_as_nomatch() {
    let yaml = r##"
version: 1
global:
  intents:
    again: { dtmf: ["*"], repeat: true }
start: q
nodes:
  q:
    ask:
      prompt: [question]
      intents: { ok: { dtmf: ["1"] } }
      nomatch: { max: 0 }
    on: { ok: end, noinput: end, nomatch: end }
  end: { hangup: { outcome: end } }
"##;
    let mut call = Call::new(scenario(yaml), &[]);
    let mut id = play_id(&call.drain());
    for i in 0..crate::scenario::MAX_REPEATS as u64 {
        call.input(1000 + i * 1000, Input::PlaybackDone { id });
        let actions = call.input(1500 + i * 1000, Input::Dtmf('*'));
        assert_eq!(kinds(&actions), ["play question"], "repeat {i}");
        id = play_id(&actions);
    }
    call.input(9000, Input::PlaybackDone { id });
    assert_eq!(kinds(&call.input(9500, Input::Dtmf('*'))), ["hangup"]);
    assert!(call.d.result().answers.is_empty());
}

#[test]
fn typed_say_as_items_speak_with_the_call_language() {
    let yaml = r##"
version: 1
languages: [en, ru]
variables:
  total: { type: money, default: "21.05" }
  items: { type: integer, default: "2" }
  when: { type: date, default: "2026-11-23" }
  at: { type: time, default: "09:05" }
start: p
nodes:
  p:
    play:
      - { money: "${total}", currency: USD }
      - number: "${items}"
        plural: { one: item, few: items-few, many: items-many, other: items }
      - { date: "${when}" }
      - { time: "${at}" }
      - { prompt: never, when: "items > 5" }
    next: end
  end: { hangup: {} }
"##;
    let sc = scenario(yaml);
    let names_of = |lang: &str| {
        let mut call = Call::new(Arc::clone(&sc), &[("language", lang)]);
        match &call.drain()[0] {
            Action::Play { prompts, .. } => prompts
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
                .join(" "),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        names_of("en"),
        "digits/20 digits/1 digits/dollars vm-and digits/5 money/usd-cents-other \
         digits/2 items digits/mon-10 digits/20 digits/h-3 digits/9 digits/oh digits/5 digits/a-m"
    );
    assert_eq!(
        names_of("ru"),
        "digits/20 digits/1 money/usd-one digits/5 money/usd-cents-many \
         digits/2 items-few digits/20 ordinal/3 date/month-11 digits/9 time/hour-many digits/5 time/minute-many"
    );
    // Call data that does not fit its type is read digit by digit, not fatal.
    let mut call = Call::new(Arc::clone(&sc), &[("total", "12,50"), ("items", "")]);
    let Action::Play { prompts, .. } = &call.drain()[0] else {
        panic!()
    };
    assert_eq!(prompts[0].name, "digits/1");
    assert_eq!(prompts[1].name, "digits/2");
}

#[test]
fn a_digit_string_can_be_said() {
    let mut call = digits_call();
    call.input(2000, Input::SpeechStarted);
    assert!(
        call.d.listen_spec().is_none(),
        "the digit-string question takes keys only"
    );
    // With speech allowed, number words count.
    let yaml = DIGITS.replace(
        "      digits: {",
        "      input: [dtmf, speech]\n      digits: {",
    );
    let mut call = Call::new(scenario(&yaml), &[]);
    let q = play_id(&call.drain());
    call.input(1000, Input::PlaybackDone { id: q });
    call.input(
        3000,
        Input::Utterance {
            text: "four seven one one".into(),
            confidence: 0.8,
        },
    );
    let a = &call.d.result().answers["q"];
    assert_eq!((a.input.as_str(), a.value.as_str()), ("speech", "4711"));
    assert_eq!(call.d.result().variables["account"], "4711");
}

/// Issue 12.2: the transfer target `${operator}` reaches the agent written in the file; a
/// value from outside the file (an API or CRM variable) that the scenario's allow-list
/// does not name is not dialled, and the node's `failed` route runs instead.
#[test]
fn a_transfer_goes_only_where_the_scenario_allows() {
    let transfer_of = |actions: &[Action]| {
        actions.iter().find_map(|a| match a {
            Action::Transfer { target, .. } => Some(target.clone()),
            _ => None,
        })
    };
    let press_3 = |vars: &[(&str, &str)]| {
        let mut call = Call::new(order_confirmation(), vars);
        let q = to_question(&mut call);
        call.input(6000, Input::PlaybackDone { id: q });
        let hold = play(&call.input(7000, Input::Dtmf('3'))).0;
        (call.input(9000, Input::PlaybackDone { id: hold }), call)
    };
    let (actions, _) = press_3(&[]);
    assert_eq!(
        transfer_of(&actions).as_deref(),
        Some("sip:orders@pbx.shop.example")
    );
    for evil in [
        "+447700900123",
        "sip:+447700900123@203.0.113.9",
        "sip:orders@pbx.shop.example.evil.example",
    ] {
        let (actions, call) = press_3(&[("operator", evil)]);
        assert_eq!(transfer_of(&actions), None, "{evil}");
        // `failed` → operator_unavailable: the CRM is asked to call back.
        assert!(
            actions.iter().any(
                |a| matches!(a, Action::Notify { event, .. } if event == "callback.requested")
            ),
            "{evil}: {actions:?}"
        );
        assert!(
            call.d
                .result()
                .path
                .contains(&"operator_unavailable".to_owned())
        );
    }
    // The same scenario with an allow-list takes a CRM-chosen agent at the shop's PBX.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/order-confirmation.yaml");
    let text = std::fs::read_to_string(path).unwrap().replace(
        "\nstart: greet",
        "\nallow:\n  transfer: [\"sip:*@pbx.shop.example\"]\n\nstart: greet",
    );
    let scenario = Arc::new(load_str("order-confirmation.yaml", &text).unwrap());
    let mut call = Call::new(scenario, &[("operator", "sip:anna@pbx.shop.example")]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let hold = play(&call.input(7000, Input::Dtmf('3'))).0;
    let actions = call.input(9000, Input::PlaybackDone { id: hold });
    assert_eq!(
        transfer_of(&actions).as_deref(),
        Some("sip:anna@pbx.shop.example")
    );
}
