//! Sub-dialogues: parameters in, shadowed variables restored, return values; a global
//! handler leaving the sub-dialogue.

use super::*;

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
