//! Keys in an `ask`: protected prompts, ambiguous and incomplete key sequences, digit
//! strings with a terminator or the inter-digit timeout (or said aloud), and the `repeat`
//! intent.

use super::*;

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
fn non_digits_in_a_digits_variable_are_skipped() {
    let call = &mut multi("12-3x");
    let (_, prompts) = play(&call.drain());
    assert_eq!(
        prompts,
        ["promo", "digits/1", "digits/2", "digits/3", "question"]
    );
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
    // Asked, never answered: the answer says so.
    assert_eq!(
        call.d.result().answers["q"].reason.as_deref(),
        Some("nomatch")
    );
}

/// A question left by `on.noinput` / `on.nomatch` still leaves its answer: what it listened
/// for, no value, and why.
#[test]
fn an_unanswered_question_is_still_in_the_answers() {
    // Silence: the question, two reprompts, then `on.noinput`.
    let mut call = multi("");
    let mut ms = 0;
    let mut actions = call.drain();
    for _ in 0..3 {
        let (id, _) = play(&actions);
        ms += 1000;
        call.input(ms, Input::PlaybackDone { id });
        assert!(call.d.result().answers.is_empty(), "not over yet");
        ms += 4000;
        actions = call.timeout(ms);
    }
    assert_eq!(actions, [Action::Hangup]);
    let a = &call.d.result().answers["q"];
    assert_eq!(
        (a.input.as_str(), a.reason.as_deref(), a.intent.as_deref()),
        ("dtmf", Some("noinput"), None)
    );
    assert_eq!(
        serde_json::to_value(a).unwrap(),
        serde_json::json!({ "input": "dtmf", "value": null, "intent": null, "reason": "noinput" })
    );

    // Wrong keys: three no-matches, then `on.nomatch`.
    let mut call = multi("");
    let (mut id, _) = play(&call.drain());
    let mut ms = 0;
    for round in 0..3 {
        ms += 1000;
        call.input(ms, Input::PlaybackDone { id });
        ms += 500;
        let actions = call.input(ms, Input::Dtmf('9'));
        if round < 2 {
            id = play(&actions).0;
        } else {
            assert_eq!(actions, [Action::Hangup]);
        }
    }
    let a = &call.d.result().answers["q"];
    assert_eq!(a.reason.as_deref(), Some("nomatch"));
    assert_eq!(
        serde_json::to_value(a).unwrap()["value"],
        serde_json::Value::Null
    );
    // A matched answer has no reason.
    let mut call = multi("");
    let (id, _) = play(&call.drain());
    call.input(1000, Input::PlaybackDone { id });
    call.input(1200, Input::Dtmf('*'));
    call.input(1300, Input::Dtmf('9'));
    assert_eq!(
        serde_json::to_value(&call.d.result().answers["q"]).unwrap(),
        serde_json::json!({ "input": "dtmf", "value": "*9", "intent": "star" })
    );
}
