//! The interpreter itself: a zero-time loop ends the call, `set` changes variables and the
//! language, say-as items speak in the call's language, and a dialogue can move between
//! threads.

use super::*;

#[test]
fn dialogue_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Dialogue>();
    check::<Scenario>();
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
