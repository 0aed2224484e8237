//! Speech in an `ask`: barge-in and classification, protected items, a key cancelling
//! speech, "did you say …?" for low confidence, unrecognised speech and the speech
//! watchdog.

use super::*;

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
    // One entry per intent: its phrases and its key said aloud (spoken keys).
    assert_eq!(spec.phrases, ["yes|sure|1", "no|2"]);
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
    // Two answers: yes (its words and key 1 said aloud) and no.
    assert_eq!(spec.phrases.len(), 2);
    assert!(spec.phrases[0].starts_with("yes|") && spec.phrases[0].ends_with("|1"));
    assert!(spec.phrases[1].starts_with("no|") && spec.phrases[1].ends_with("|2"));
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
