//! Callers understood the way they talk (issue 16), as simulated calls on a virtual clock:
//! the real dialogue and call core, a scripted caller, no sockets.
//!
//! - spoken keys: "one", «один», «одна», "number two" select the key's choice; `spoken_keys:
//!   false` turns it off; "one two" is not key 1;
//! - negation: "I haven't paid yet" is not `paid`, "it isn't correct" is not `confirm`;
//! - ordinals: «двадцать первого», "the fifteenth", «п'ятнадцятого» answer a day-of-month
//!   question (`answer: day_of_month`), keys `15#` too; a date by "tomorrow";
//! - unsure speech for a value (a digit string, a day) is read back, never taken silently;
//! - type-ahead: a key pressed during the greeting answers the question after it;
//! - every recognition is in the call trace, transcript redacted.
//!
//! The same answers over real SIP (G.711, the endpointer, Whisper) are in
//! `tests/speech_sipp.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ivrflow::call::TraceEvent;
use ivrflow::media::prompts::PromptCache;
use ivrflow::scenario::{self, Scenario};
use ivrflow::sim::{CallerStep, SimOptions, SimReport, run_call};

const SCENARIO: &str = r#"
version: 1
name: speech-answers
languages: [en, ru, uk]
variables:
  language: { type: string, default: en }
  today: { type: date, default: "" }
  day: { type: string, default: "" }
  date: { type: string, default: "" }
  code: { type: string, default: "" }
start: greet
nodes:
  greet:
    play: [hello, your, number]
    next: confirm
  confirm:
    ask:
      prompt: [if-correct-press, digits/1, vm-press, digits/2, for, cancelled]
      input: [dtmf, speech]
      SPOKEN_KEYS
      TYPEAHEAD
      intents:
        confirm: { dtmf: ["1"], phrases: { en: [correct], ru: [верно], uk: [вірно] } }
        cancel: { dtmf: ["2"], phrases: { en: [cancel], ru: [отмена], uk: [скасувати] } }
      nomatch: { max: 0 }
      noinput: { max: 0 }
    on: { confirm: paid, cancel: cancelled, noinput: failed, nomatch: failed }
  paid:
    ask:
      prompt: [number]
      input: [speech]
      intents:
        paid: { phrases: { en: [paid, "i paid"], ru: [оплатил], uk: [сплатив] } }
        not_paid: { phrases: { en: ["not yet", "haven't paid"], ru: ["ещё не"], uk: ["ще ні"] } }
      nomatch: { max: 0 }
      noinput: { max: 0 }
    on: { paid: day, not_paid: cancelled, noinput: failed, nomatch: failed }
  day:
    ask:
      prompt: [number]
      input: [dtmf, speech]
      answer: day_of_month
      store: day
      confirm: { prompt: [you-entered], question: [if-correct-press, digits/1] }
      nomatch: { max: 0 }
      noinput: { max: 0 }
    on: { day_of_month: when, noinput: failed, nomatch: failed }
  when:
    ask:
      prompt: [number]
      input: [speech]
      answer: date
      store: date
      nomatch: { max: 0 }
      noinput: { max: 0 }
    on: { date: code, noinput: failed, nomatch: failed }
  code:
    ask:
      prompt: [number]
      input: [dtmf, speech]
      digits: { min: 4, max: 4 }
      store: code
      confirm: { prompt: [you-entered], question: [if-correct-press, digits/1] }
      nomatch: { max: 0 }
      noinput: { max: 0 }
    on: { digits: done, noinput: failed, nomatch: failed }
  done:
    hangup: { outcome: done, play: [goodbye] }
  cancelled:
    hangup: { outcome: cancelled, play: [goodbye] }
  failed:
    hangup: { outcome: failed, play: [goodbye] }
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scenario(spoken_keys: bool, typeahead: bool) -> Arc<Scenario> {
    let text = SCENARIO
        .replace(
            "SPOKEN_KEYS",
            if spoken_keys {
                ""
            } else {
                "spoken_keys: false"
            },
        )
        .replace("TYPEAHEAD", if typeahead { "" } else { "typeahead: false" });
    Arc::new(scenario::load_str("speech-answers.yaml", &text).unwrap_or_else(|e| panic!("{e}")))
}

fn call_with(sc: Arc<Scenario>, lang: &str, script: &[CallerStep]) -> SimReport {
    let prompts =
        Arc::new(PromptCache::load_dir(&root().join("audio")).unwrap_or_else(|e| panic!("{e}")));
    let vars: BTreeMap<String, String> = [
        ("language".to_owned(), lang.to_owned()),
        ("today".to_owned(), "2027-03-10".to_owned()),
    ]
    .into();
    let r = run_call(sc, vars, prompts, script, &SimOptions::default());
    assert!(!r.timed_out, "the call must end by itself");
    r
}

fn call(lang: &str, script: &[CallerStep]) -> SimReport {
    call_with(scenario(true, true), lang, script)
}

fn say(text: &str) -> CallerStep {
    CallerStep::say(text)
}

fn unsure(text: &str, confidence: f32) -> CallerStep {
    CallerStep::Say {
        text: text.to_owned(),
        confidence,
        after_silence: ivrflow::sim::DEFAULT_REACTION,
    }
}

fn answer(r: &SimReport, node: &str) -> (String, String, Option<String>) {
    let a = r
        .record
        .answers
        .get(node)
        .unwrap_or_else(|| panic!("no answer for {node}: {:?}", r.record.answers));
    (a.input.clone(), a.value.clone(), a.intent.clone())
}

/// The rest of a call that got past the first question: paid, day 15, tomorrow, 4711.
fn rest() -> Vec<CallerStep> {
    vec![
        say("yes I paid"),
        CallerStep::key("15#"),
        say("tomorrow"),
        CallerStep::key("4711"),
    ]
}

#[test]
fn a_spoken_key_selects_its_choice_in_three_languages() {
    for (lang, words, intent) in [
        ("en", "one", "confirm"),
        ("en", "number one please", "confirm"),
        ("en", "two", "cancel"),
        ("ru", "один", "confirm"),
        ("ru", "одна", "confirm"),
        ("ru", "два", "cancel"),
        ("uk", "один", "confirm"),
        ("uk", "перший", "confirm"),
        ("uk", "дві", "cancel"),
    ] {
        let mut script = vec![say(words)];
        script.extend(rest());
        let r = call(lang, &script);
        let (input, _, got) = answer(&r, "confirm");
        assert_eq!(got.as_deref(), Some(intent), "{lang} {words:?}");
        assert_eq!(input, "speech", "{lang} {words:?}");
    }
}

#[test]
fn spoken_keys_can_be_turned_off_and_need_one_number() {
    let r = call_with(scenario(false, true), "en", &[say("one")]);
    assert_eq!(r.record.outcome.as_deref(), Some("failed"));
    assert_eq!(
        r.record.answers["confirm"].reason.as_deref(),
        Some("nomatch")
    );
    // Two numbers: not a key (the caller may be reading something out).
    let r = call("en", &[say("one two")]);
    assert_eq!(r.record.outcome.as_deref(), Some("failed"));
    // A negated key is not that key.
    let r = call("en", &[say("not one")]);
    assert_eq!(r.record.outcome.as_deref(), Some("failed"));
    // The question's own words still work, and keys.
    let mut script = vec![say("that's correct")];
    script.extend(rest());
    let r = call("en", &script);
    assert_eq!(answer(&r, "confirm").2.as_deref(), Some("confirm"));
}

#[test]
fn negation_with_contractions_never_matches_the_phrase_it_negates() {
    for (lang, words) in [
        ("en", "I haven't paid yet"),
        ("en", "no I have not paid"),
        ("en", "not yet"),
        ("ru", "ещё не оплатил"),
        ("uk", "ще ні"),
    ] {
        let r = call(lang, &[CallerStep::key("1"), say(words)]);
        assert_eq!(
            r.record.outcome.as_deref(),
            Some("cancelled"),
            "{lang} {words:?}: {:?}",
            r.record.answers.get("paid")
        );
        assert_eq!(
            answer(&r, "paid").2.as_deref(),
            Some("not_paid"),
            "{lang} {words:?}"
        );
    }
    // "it isn't correct" is not a yes.
    let r = call("en", &[say("it isn't correct")]);
    assert_eq!(r.record.outcome.as_deref(), Some("failed"));
}

#[test]
fn ordinals_answer_a_day_of_the_month_by_voice_and_keys() {
    for (lang, words, day) in [
        ("en", "the fifteenth", "15"),
        ("en", "on the twenty-first", "21"),
        ("ru", "двадцать первого", "21"),
        ("ru", "пятнадцатого числа", "15"),
        ("uk", "п'ятнадцятого", "15"),
        ("uk", "двадцять другого", "22"),
    ] {
        let (paid, tomorrow) = match lang {
            "ru" => ("оплатил", "завтра"),
            "uk" => ("сплатив", "завтра"),
            _ => ("paid", "tomorrow"),
        };
        let r = call(
            lang,
            &[
                CallerStep::key("1"),
                say(paid),
                say(words),
                say(tomorrow),
                CallerStep::key("4711"),
            ],
        );
        assert_eq!(answer(&r, "when").1, "2027-03-11", "{lang}");
        assert_eq!(
            r.record.outcome.as_deref(),
            Some("done"),
            "{lang} {words:?}"
        );
        let (input, value, _) = answer(&r, "day");
        assert_eq!(
            (input.as_str(), value.as_str()),
            ("speech", day),
            "{lang} {words:?}"
        );
        assert_eq!(r.record.variables["day"], day);
    }
    // A number next to a word the reading does not explain — «5 нацяти», how Whisper base
    // garbles «п'ятнадцятий» — is read back even when the recogniser is sure, never taken:
    // "you entered … the fifth?" "no" → asked again (here: `max: 0`, so it fails).
    let r = call(
        "uk",
        &[
            CallerStep::key("1"),
            say("сплатив"),
            unsure("5 нацяти", 0.9),
            say("ні"),
        ],
    );
    assert_eq!(r.record.outcome.as_deref(), Some("failed"));
    assert!(
        r.plays()
            .iter()
            .any(|p| p.contains(&"uk/ordinal/5".to_owned())),
        "read back: {:?}",
        r.plays()
    );
    // Keys: 1-2 digits and `#`; 45 is no day.
    let mut script = vec![CallerStep::key("1")];
    script.extend(rest());
    let r = call("en", &script);
    assert_eq!(answer(&r, "day").1, "15");
    assert_eq!(answer(&r, "when").1, "2027-03-11");
    assert_eq!(answer(&r, "code").1, "4711");
    let r = call(
        "en",
        &[CallerStep::key("1"), say("paid"), CallerStep::key("45#")],
    );
    assert_eq!(r.record.outcome.as_deref(), Some("failed"));
}

#[test]
fn unsure_values_are_read_back_before_they_are_taken() {
    // A day heard at 0.4: "you entered … the fifteenth … if correct press 1", then yes.
    let r = call(
        "en",
        &[
            CallerStep::key("1"),
            say("paid"),
            unsure("the fifteenth", 0.4),
            say("one"),
            say("tomorrow"),
            unsure("four seven one one", 0.45),
            say("yes"),
        ],
    );
    assert_eq!(r.record.outcome.as_deref(), Some("done"));
    assert_eq!(answer(&r, "day").1, "15");
    assert_eq!(answer(&r, "code").1, "4711");
    let plays = r.plays();
    assert!(
        plays.contains(&vec![
            "en/you-entered".to_owned(),
            "en/digits/h-15".to_owned(),
            "en/if-correct-press".to_owned(),
            "en/digits/1".to_owned()
        ]),
        "the day is read back as an ordinal: {plays:?}"
    );
    assert!(
        plays.iter().any(|p| p.starts_with(&[
            "en/you-entered".to_owned(),
            "en/digits/4".to_owned(),
            "en/digits/7".to_owned(),
            "en/digits/1".to_owned(),
            "en/digits/1".to_owned()
        ])),
        "the digits are read back: {plays:?}"
    );
    // A digit string below the node's confidence without `confirm:` is asked again
    // (here: `max: 0`, so it fails), never taken.
    let r = call(
        "en",
        &[
            CallerStep::key("1"),
            say("paid"),
            CallerStep::key("15#"),
            unsure("tomorrow", 0.3),
        ],
    );
    assert_eq!(r.record.outcome.as_deref(), Some("failed"));
    assert!(!r.record.answers["when"].value.contains('-'));
}

#[test]
fn a_key_typed_during_the_greeting_answers_the_question_after_it() {
    // The greeting plays hello, your, number (~3 s); "1" at 0.4 s stops it and answers.
    let mut script = vec![CallerStep::KeyAt {
        digit: '1',
        at: Duration::from_millis(400),
    }];
    script.extend(rest());
    let r = call("en", &script);
    assert_eq!(r.record.outcome.as_deref(), Some("done"));
    let (input, value, intent) = answer(&r, "confirm");
    assert_eq!(
        (input.as_str(), value.as_str(), intent.as_deref()),
        ("dtmf", "1", Some("confirm"))
    );
    let plays = r.plays();
    assert_eq!(plays[0][0], "en/hello");
    assert!(
        !plays.iter().any(|p| p.contains(&"en/cancelled".to_owned())),
        "the question answered by type-ahead is not asked: {plays:?}"
    );
    assert!(
        r.record.trace.iter().any(|e| matches!(
            e,
            TraceEvent::PlayStopped { id: 1, heard_ms, .. } if *heard_ms < 1000
        )),
        "the greeting stops at the key: {:?}",
        r.record.trace
    );

    // `typeahead: false`: the key is discarded, the question is asked, and answered.
    let mut script = vec![
        CallerStep::KeyAt {
            digit: '2',
            at: Duration::from_millis(400),
        },
        CallerStep::key("1"),
    ];
    script.extend(rest());
    let r = call_with(scenario(true, false), "en", &script);
    assert_eq!(r.record.outcome.as_deref(), Some("done"));
    assert_eq!(answer(&r, "confirm").2.as_deref(), Some("confirm"));
    assert!(
        r.plays()
            .iter()
            .any(|p| p.contains(&"en/cancelled".to_owned())),
        "the question is asked: {:?}",
        r.plays()
    );
}

#[test]
fn every_recognition_is_in_the_trace_with_the_transcript_redacted() {
    let mut script = vec![say("one")];
    script.extend(rest());
    let r = call("en", &script);
    let speech: Vec<&TraceEvent> = r
        .record
        .trace
        .iter()
        .filter(|e| matches!(e, TraceEvent::Speech { .. }))
        .collect();
    assert_eq!(speech.len(), 3, "{speech:?}");
    for e in &speech {
        let TraceEvent::Speech {
            at_ms,
            started_ms,
            transcript,
            confidence,
            ..
        } = e
        else {
            unreachable!()
        };
        assert_eq!(transcript, "<redacted>");
        assert!(started_ms.is_some_and(|s| s < *at_ms));
        assert!((*confidence - 1.0).abs() < 1e-6);
    }
    let json = serde_json::to_value(&r.record).unwrap();
    let first = json["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "speech")
        .unwrap();
    assert_eq!(first["transcript"], "<redacted>");
    assert!(first["decode_ms"].is_u64());
}

#[test]
fn the_speech_metrics_move_with_the_trace() {
    let mut script = vec![say("one")];
    script.extend(rest());
    let r = call("en", &script);
    let metrics = ivrflow::api::metrics::Metrics::new();
    let before = metrics.encode();
    assert!(
        before.contains("ivrflow_speech_to_prompt_seconds_count 0"),
        "{before}"
    );
    metrics.recorded(&ivrflow::store::Record {
        call_id: "c1".into(),
        at: 0,
        change: ivrflow::store::CallChange::Update(ivrflow::store::CallUpdate::default()),
        event: Some(ivrflow::store::NewEvent {
            id: "m1".into(),
            kind: "call.completed".into(),
            occurred_at: 0,
            data: serde_json::to_value(&r.record).unwrap(),
        }),
    });
    let after = metrics.encode();
    // Three spoken answers, each followed by a prompt.
    assert!(
        after.contains("ivrflow_speech_to_prompt_seconds_count 3"),
        "{after}"
    );
}
