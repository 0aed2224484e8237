//! Load and validation tests: every error is asserted with its exact `line:col`.

use super::*;

const OK: &str = "\
version: 1
start: a
nodes:
  a:
    play: [hello]
    next: b
  b:
    hangup: {}
";

/// The (line, column, kind) of each diagnostic, and the messages.
fn errors(yaml: &str) -> Vec<(u32, u32, ErrorKind, String)> {
    match load_str("t.yaml", yaml) {
        Ok(_) => panic!("loaded without errors:\n{yaml}"),
        Err(e) => e
            .diagnostics()
            .iter()
            .map(|d| (d.line, d.column, d.kind, d.message.clone()))
            .collect(),
    }
}

/// Exactly one diagnostic, at `line:col`, of `kind`, whose message contains `needle`.
#[track_caller]
fn one_error(yaml: &str, line: u32, column: u32, kind: ErrorKind, needle: &str) {
    let errs = errors(yaml);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let (l, c, k, msg) = &errs[0];
    assert_eq!((*l, *c, *k), (line, column, kind), "{msg}");
    assert!(msg.contains(needle), "{msg:?} does not contain {needle:?}");
}

fn example() -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join("order-confirmation.yaml");
    load_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn minimal_scenario_loads() {
    let s = load_str("dir/mini.yaml", OK).unwrap();
    assert_eq!(s.name, "mini");
    assert_eq!(s.languages, ["en"]);
    assert_eq!(s.default_language(), "en");
    assert_eq!(s.variables["language"].default, "en");
    assert_eq!(s.start, NodeId(0));
    assert_eq!(s.nodes.len(), 2);
    assert_eq!(s.node_id("b"), Some(NodeId(1)));
    assert_eq!(s.nodes[0].successors(), [NodeId(1)]);
    assert_eq!(s.nodes[0].pos, SourcePos { line: 4, column: 3 });
}

#[test]
fn order_confirmation_compiles() {
    let s = example();
    assert_eq!(s.name, "order-confirmation");
    assert_eq!(s.languages, ["en", "ru", "uk"]);
    assert_eq!(s.node_name(s.start), "greet");
    let confirm = &s.nodes[s.node_id("confirm").unwrap().index()];
    let NodeKind::Ask(ask) = &confirm.kind else {
        panic!("confirm is not an ask")
    };
    assert_eq!(ask.timeout, Duration::from_secs(5));
    assert_eq!(ask.interdigit_timeout, Duration::from_secs(3));
    assert!(ask.barge_in);
    let intents: Vec<_> = ask
        .intents
        .iter()
        .map(|i| {
            let IntentAction::Goto(j) = &i.action else {
                panic!("not a goto intent")
            };
            (i.name.as_str(), i.dtmf.clone(), s.node_name(j.target))
        })
        .collect();
    assert_eq!(
        intents,
        [
            ("confirm", vec!["1".to_string()], "followup"),
            ("cancel", vec!["2".to_string()], "cancelled"),
            ("change", vec!["3".to_string()], "hold_for_operator"),
            ("operator", vec!["0".to_string()], "hold_for_operator")
        ]
    );
    assert_eq!(ask.noinput.max, 2);
    assert_eq!(ask.noinput.reprompts.len(), 2);
    assert_eq!(s.node_name(ask.noinput.target.target), "no_input");
    assert_eq!(s.node_name(ask.nomatch.target.target), "no_input");
    assert_eq!(s.variables["order_id"].ty, VarType::Digits);
}

#[test]
fn load_error_display_format() {
    let yaml = OK.replace("next: b", "next: c");
    let err = load_str("scenarios/x.yaml", &yaml).unwrap_err();
    assert_eq!(
        err.to_string(),
        "scenarios/x.yaml:6:11: error: `next` target `c` is not a node of this scenario\n  hint: known nodes: `a`, `b`"
    );
    assert_eq!(err.file(), "scenarios/x.yaml");
}

/// Every diagnostic as `line:col: message | hint`.
fn rendered(yaml: &str) -> Vec<String> {
    match load_str("t.yaml", yaml) {
        Ok(_) => panic!("loaded without errors:\n{yaml}"),
        Err(e) => e
            .diagnostics()
            .iter()
            .map(|d| {
                format!(
                    "{}:{}: {} | {}",
                    d.line,
                    d.column,
                    d.message,
                    d.hint.as_deref().unwrap_or("-")
                )
            })
            .collect(),
    }
}

#[test]
fn yaml_syntax_error() {
    // Indentation, in plain words: which keys above the line it fails to line up with.
    assert_eq!(
        rendered(&OK.replace("    next: b", "      next: b")),
        [
            "6:7: line 6 is not indented like the keys around it | `next` is indented 6 spaces, \
          the keys above it 4 (`play`, line 5), 2 (`a`, line 4), 0 (`nodes`, line 3): keys of \
          one mapping start in the same column, so line it up with the one it belongs to"
        ]
    );
    assert_eq!(
        rendered("version: 1\nstart: a\nnodes:\n  a:\n  play: [hello]\n  next: a\n"),
        [
            "4:4: `a` is empty | the keys that belong to `a` must be indented further than `a:` on line 4"
        ]
    );
    assert_eq!(
        rendered("version: 1\nstart: a\nnodes:\n\ta: { hangup: {} }\n"),
        [
            "4:2: line 4 is indented with a tab | YAML indents with spaces only: replace the tab with spaces"
        ]
    );
    assert_eq!(
        rendered(&OK.replace("play: [hello]", "play: [hello")),
        [
            "6:9: a `[` opened on line 5 is not closed | close it with `]` on line 5, or continue \
          the list on the next lines indented"
        ]
    );
    assert_eq!(
        rendered(&OK.replace("start: a", "start: \"a")),
        [
            "3:1: a quoted text that starts on line 2 is not closed | add the closing `\"` (or \
          `'`) at the end of the text"
        ]
    );
    let err = load_str("t.yaml", "").unwrap_err();
    assert_eq!(err.diagnostics()[0].line, 1);
    assert!(err.diagnostics()[0].hint.is_some());
}

#[test]
fn unknown_key() {
    assert_eq!(
        rendered(&OK.replace("    next: b", "    nxt: b")),
        ["6:5: unknown key `nxt` in node `a` | did you mean `next`?"]
    );
    assert_eq!(
        rendered(&format!("{OK}colour: red\n")),
        [
            "9:1: unknown key `colour` at the top level | the keys here are: version, name, \
          description, languages, variables, global, amd, allow, events, acknowledge, \
          subdialogs, start, nodes"
        ]
    );
    // Keys of the node written inside its action, and the other way round.
    let ask = "version: 1\nstart: a\nnodes:\n  a:\n    ask:\n      prompt: [hello]\n      on: { noinput: a, nomatch: a }\n";
    assert_eq!(
        rendered(ask),
        [
            "7:7: unknown key `on` in `ask` | `on` is a key of the node, beside `ask:`, not \
          inside it: move it left, to the column of `ask:`"
        ]
    );
    let ask = "version: 1\nstart: a\nnodes:\n  a:\n    ask:\n      prompt: [hello]\n    intents: { x: { dtmf: [\"1\"] } }\n    on: { x: a, noinput: a, nomatch: a }\n";
    assert_eq!(
        rendered(ask),
        [
            "7:5: unknown key `intents` in node `a` | `intents` is a key of `ask:`: indent it under `ask:`"
        ]
    );
    assert_eq!(
        rendered(&format!("{OK}play: [x]\n")),
        [
            "9:1: unknown key `play` at the top level | `play` is a key of a node: nodes go under \
          `nodes:`, each node's keys indented under its name"
        ]
    );
}

#[test]
fn every_misspelt_key_is_reported_at_once() {
    // Three typos, two on one line: each at its own column in the file as written, even
    // after the fix of the first shifted the rest of the line.
    let yaml = "\
version: 1
langauges: [en]
start: a
nodes:
  a:
    ask:
      promt: [hello]
      intents: { x: { dtmf: [\"1\"], phrase: { en: [yes] }, sya: [hello] } }
    on: { x: b, noinput: b, nomatch: b }
  b: { hangup: { outcom: x, play: [{ prompt: hello, bargein: false }] } }
";
    assert_eq!(
        rendered(yaml),
        [
            "2:1: unknown key `langauges` at the top level | did you mean `languages`?",
            "7:7: unknown key `promt` in `ask` | did you mean `prompt`?",
            "8:36: unknown key `phrase` in `x` | did you mean `phrases`?",
            "8:59: unknown key `sya` in `x` | did you mean `say`?",
            "10:18: unknown key `outcom` in `hangup` | did you mean `outcome`?",
            "10:53: unknown key `bargein` in a `play` item | did you mean `barge_in`?",
        ]
    );
    // A typo next to the key it was meant to be: only the typo (the fix would duplicate it).
    assert_eq!(
        rendered(&OK.replace("    hangup: {}", "    hangup: { outcome: x, outcom: y }")),
        ["8:27: unknown key `outcom` in `hangup` | did you mean `outcome`?"]
    );
    // A typo and then another kind of error: both, the typo first.
    assert_eq!(
        rendered(&OK.replace("    next: b", "    nxt: [b]")),
        [
            "6:5: unknown key `nxt` in node `a` | did you mean `next`?",
            "6:10: `next` takes one value (a name or a text), not a list or a mapping | e.g. \
             `next: confirm`; quote texts with special characters",
        ]
    );
}

#[test]
fn unknown_key_in_prompt_item() {
    let yaml = OK.replace("[hello]", "[hello, { prompt: x, bargein: false }]");
    one_error(
        &yaml,
        5,
        32,
        ErrorKind::Yaml,
        "unknown key `bargein` in a `play` item",
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        rendered(&OK.replace("version: 1", "version: one")),
        ["1:10: `version` takes a whole number, like `2`, not `one` | -"]
    );
    assert_eq!(
        rendered(&OK.replace("play: [hello]", "play: hello")),
        [
            "5:11: `play` takes a list | write a list: `[hello, goodbye]`, or one `- item` per line under it"
        ]
    );
    one_error(
        &OK.replace("play: [hello]", "play: [[hello]]"),
        5,
        12,
        ErrorKind::Yaml,
        "prompt name",
    );
    let ask = |body: &str| {
        format!(
            "version: 1\nstart: a\nnodes:\n  a:\n    ask:\n      prompt: [hello]\n{body}\n    on: {{ x: a, noinput: a, nomatch: a }}\n"
        )
    };
    assert_eq!(
        rendered(&ask(
            "      barge_in: maybe\n      intents: { x: { dtmf: [\"1\"] } }"
        )),
        ["7:17: `barge_in` takes `true` or `false`, not `maybe` | -"]
    );
    assert_eq!(
        rendered(&ask("      intents: { x: { dtmf: 1 } }")),
        ["7:29: `dtmf` takes a list | write a list of keys, quoted: `[\"1\"]`"]
    );
    assert_eq!(
        rendered(&ask(
            "      input: [keys]\n      intents: { x: { dtmf: [\"1\"] } }"
        )),
        ["7:15: `input` cannot be `keys` | one of: dtmf, speech"]
    );
    assert_eq!(
        rendered(&ask(
            "      noinput: { max: 1, reprompt: [hello] }\n      intents: { x: { dtmf: [\"1\"] } }"
        )),
        [
            "7:37: `reprompt` takes a list | write a list of prompt lists, one per retry: \
          `[[im-sorry], [im-sorry, please-try-again]]`"
        ]
    );
    assert_eq!(
        rendered(
            "version: 1\nstart: a\nnodes:\n  a:\n    ask:\n      input: [dtmf]\n    on: { noinput: a, nomatch: a }\n"
        ),
        ["6:7: `ask` needs `prompt` | add `prompt:` to it"]
    );
    assert_eq!(
        rendered("version: 1\nnodes:\n  a: { hangup: {} }\n"),
        ["2:1: the scenario needs `start` | add `start:` to it"]
    );
    assert_eq!(
        rendered(&format!("{OK}variables:\n  x: {{ type: strin }}\n")),
        ["10:14: `type` cannot be `strin` | did you mean `string`?"]
    );
}

#[test]
fn duplicate_key() {
    let yaml = format!("{OK}  a:\n    goto: b\n");
    one_error(&yaml, 9, 3, ErrorKind::Yaml, "duplicate key `a`");
}

#[test]
fn unsupported_version() {
    one_error(
        &OK.replace("version: 1", "version: 2"),
        1,
        10,
        ErrorKind::UnsupportedVersion,
        "version 2",
    );
}

#[test]
fn dangling_targets() {
    one_error(
        &OK.replace("next: b", "next: nowhere"),
        6,
        11,
        ErrorKind::UnknownTarget,
        "`nowhere`",
    );
    let yaml = format!("{OK}  c:\n    goto: d\n");
    one_error(&yaml, 10, 11, ErrorKind::UnknownTarget, "goto target `d`");
}

#[test]
fn unknown_start_node() {
    let errs = errors(&OK.replace("start: a", "start: aa"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].0, errs[0].1), (2, 8));
    assert_eq!(errs[0].2, ErrorKind::UnknownTarget);
    let err = load_str("t.yaml", &OK.replace("start: a", "start: aa")).unwrap_err();
    assert_eq!(
        err.diagnostics()[0].hint.as_deref(),
        Some("did you mean `a`?")
    );
}

#[test]
fn node_without_action() {
    let yaml = OK.replace("    play: [hello]\n", "");
    one_error(&yaml, 4, 3, ErrorKind::NodeAction, "node `a` has no action");
    let yaml = OK.replace("    hangup: {}\n", "    outcome: done\n");
    one_error(&yaml, 7, 3, ErrorKind::NodeAction, "node `b` has no action");
}

#[test]
fn node_with_two_actions() {
    let yaml = OK.replace("    next: b\n", "    goto: b\n");
    one_error(&yaml, 4, 3, ErrorKind::NodeAction, "2 actions (play, goto)");
}

#[test]
fn misplaced_keys() {
    let yaml = OK.replace("    hangup: {}\n", "    hangup: {}\n    next: a\n");
    one_error(&yaml, 9, 11, ErrorKind::Misplaced, "`next` is not allowed");
    let yaml = OK.replace("    next: b\n", "    next: b\n    on: { x: b }\n");
    one_error(&yaml, 7, 9, ErrorKind::Misplaced, "`on` is not allowed");
}

#[test]
fn play_without_next() {
    let yaml = OK.replace("    next: b\n", "");
    one_error(&yaml, 4, 3, ErrorKind::MissingHandler, "has no `next`");
}

const VARS: &str = "\
version: 1
variables:
  order_id: { type: digits, default: \"12\" }
start: a
nodes:
  a:
    play: [hello, { digits: \"${order_id}\" }]
    next: b
  b:
    hangup: {}
";

#[test]
fn undeclared_variables() {
    assert!(load_str("t.yaml", VARS).is_ok());
    one_error(
        &VARS.replace("${order_id}", "${order}"),
        7,
        30,
        ErrorKind::UndeclaredVariable,
        "`${order}`",
    );
    // In a prompt name.
    one_error(
        &VARS.replace("[hello,", "[\"greeting/${tone}\","),
        7,
        22,
        ErrorKind::UndeclaredVariable,
        "`${tone}`",
    );
    // Assigned and used by `set`.
    let yaml = VARS.replace(
        "    play: [hello, { digits: \"${order_id}\" }]\n",
        "    set: { order_id: \"${x}\", total: \"1\" }\n",
    );
    let errs = errors(&yaml);
    assert_eq!(
        errs.iter().map(|e| (e.0, e.1, e.2)).collect::<Vec<_>>(),
        [
            (7, 23, ErrorKind::UndeclaredVariable),
            (7, 30, ErrorKind::UndeclaredVariable)
        ],
        "{errs:#?}"
    );
}

#[test]
fn malformed_template() {
    one_error(
        &VARS.replace("${order_id}", "${order_id"),
        7,
        30,
        ErrorKind::Template,
        "not closed",
    );
}

#[test]
fn literal_digits_must_be_digits() {
    one_error(
        &VARS.replace("${order_id}", "12a4"),
        7,
        29,
        ErrorKind::InvalidDigits,
        "`12a4`",
    );
    one_error(
        &VARS.replace("default: \"12\"", "default: \"12-3\""),
        3,
        38,
        ErrorKind::InvalidDigits,
        "is not digits",
    );
}

#[test]
fn bad_prompt_names() {
    one_error(
        &OK.replace("[hello]", "[../etc/passwd]"),
        5,
        12,
        ErrorKind::InvalidName,
        "`..`",
    );
    one_error(
        &OK.replace("[hello]", "[hello.wav]"),
        5,
        12,
        ErrorKind::InvalidName,
        "extension",
    );
}

const ASK: &str = "\
version: 1
start: q
nodes:
  q:
    ask:
      prompt: [question]
      timeout: 5s
      interdigit_timeout: 1.5s
      intents:
        yes: { dtmf: [\"1\"] }
        no: { dtmf: [\"2\", \"22\"] }
    on:
      yes: end
      no: end
      noinput: end
      nomatch: end
  end:
    hangup: {}
";

#[test]
fn ask_loads_with_defaults() {
    let s = load_str("t.yaml", ASK).unwrap();
    let NodeKind::Ask(ask) = &s.nodes[0].kind else {
        panic!()
    };
    assert_eq!(ask.interdigit_timeout, Duration::from_millis(1500));
    assert_eq!(ask.noinput.max, DEFAULT_MAX_RETRIES);
    assert!(ask.noinput.reprompts.is_empty());
    assert_eq!(ask.inputs, [InputMode::Dtmf]);
}

#[test]
fn ask_without_noinput_or_nomatch_handling() {
    one_error(
        &ASK.replace("      noinput: end\n", ""),
        13,
        7,
        ErrorKind::MissingHandler,
        "does not handle `noinput`",
    );
    one_error(
        &ASK.replace("      nomatch: end\n", ""),
        13,
        7,
        ErrorKind::MissingHandler,
        "does not handle `nomatch`",
    );
}

#[test]
fn intent_without_target() {
    one_error(
        &ASK.replace("      yes: end\n", ""),
        10,
        9,
        ErrorKind::MissingHandler,
        "intent `yes` has no target",
    );
    // A node-level `next` is the default target of every intent.
    let yaml = ASK
        .replace("      yes: end\n", "")
        .replace("    on:\n", "    next: end\n    on:\n");
    assert!(load_str("t.yaml", &yaml).is_ok());
}

#[test]
fn on_key_that_is_no_intent() {
    one_error(
        &ASK.replace("      yes: end\n", "      yes: end\n      yse: end\n"),
        14,
        7,
        ErrorKind::Misplaced,
        "`on.yse`",
    );
}

#[test]
fn dangling_on_target() {
    one_error(
        &ASK.replace("      no: end\n", "      no: ned\n"),
        14,
        11,
        ErrorKind::UnknownTarget,
        "`on.no` target `ned`",
    );
}

#[test]
fn bad_durations() {
    one_error(
        &ASK.replace("timeout: 5s", "timeout: 5"),
        7,
        16,
        ErrorKind::InvalidDuration,
        "no unit",
    );
    one_error(
        &ASK.replace("interdigit_timeout: 1.5s", "interdigit_timeout: soon"),
        8,
        27,
        ErrorKind::InvalidDuration,
        "`soon`",
    );
    one_error(
        &ASK.replace("timeout: 5s", "timeout: 0ms"),
        7,
        16,
        ErrorKind::InvalidDuration,
        "zero",
    );
}

#[test]
fn bad_intent_keys() {
    one_error(
        &ASK.replace("[\"2\", \"22\"]", "[\"2\", \"x\"]"),
        11,
        27,
        ErrorKind::InvalidDigits,
        "`x`",
    );
    one_error(
        &ASK.replace("[\"2\", \"22\"]", "[\"1\"]"),
        11,
        22,
        ErrorKind::InvalidValue,
        "already used by intent `yes`",
    );
}

#[test]
fn speech_only_intents_need_phrases() {
    assert!(
        load_str(
            "t.yaml",
            &ASK.replace("      timeout: 5s\n", "      input: [dtmf, speech]\n")
        )
        .is_ok()
    );
    let errs = errors(&ASK.replace("      timeout: 5s\n", "      input: [speech]\n"));
    assert!(
        errs.iter()
            .all(|e| e.2 == ErrorKind::InvalidValue && e.3.contains("has no `phrases`")),
        "{errs:#?}"
    );
}

#[test]
fn zero_time_loop() {
    let yaml = format!("{OK}  c:\n    goto: d\n  d:\n    goto: c\n");
    one_error(&yaml, 9, 3, ErrorKind::ZeroTimeLoop, "`c` → `d` → `c`");
}

#[test]
fn several_errors_are_reported_together() {
    let yaml = ASK
        .replace("timeout: 5s", "timeout: 5")
        .replace("      no: end\n", "      no: ned\n")
        .replace("start: q", "start: qq");
    let errs = errors(&yaml);
    assert_eq!(
        errs.iter().map(|e| (e.0, e.1, e.2)).collect::<Vec<_>>(),
        [
            (2, 8, ErrorKind::UnknownTarget),
            (7, 16, ErrorKind::InvalidDuration),
            (14, 11, ErrorKind::UnknownTarget),
        ]
    );
    let text = load_str("f.yaml", &yaml).unwrap_err().to_string();
    assert_eq!(text.lines().filter(|l| l.starts_with("f.yaml:")).count(), 3);
}

#[test]
fn language_default_must_be_listed() {
    let yaml = OK.replace(
        "start: a",
        "languages: [ru, uk]\nvariables:\n  language: { default: en }\nstart: a",
    );
    one_error(
        &yaml,
        4,
        24,
        ErrorKind::InvalidValue,
        "`en` is not in `languages`",
    );
    let yaml = OK.replace("start: a", "languages: [ru, uk]\nstart: a");
    let s = load_str("t.yaml", &yaml).unwrap();
    assert_eq!(s.default_language(), "ru");
}

#[test]
fn load_dir_reports_bad_files_and_keeps_good_ones() {
    let dir = std::env::temp_dir().join(format!("ivrflow-scenario-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("good.yaml"), OK).unwrap();
    std::fs::write(dir.join("bad.yml"), OK.replace("next: b", "next: z")).unwrap();
    std::fs::write(dir.join("good.test.yaml"), "not a scenario").unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let (scenarios, errs) = load_dir(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(scenarios.keys().collect::<Vec<_>>(), ["good"]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].to_string().contains("bad.yml:6:11: error:"),
        "{}",
        errs[0]
    );

    let (scenarios, errs) = load_dir(&dir);
    assert!(scenarios.is_empty());
    assert!(matches!(errs[..], [LoadError::Io { .. }]));
}

// ---------------------------------------------------------------------------------------
// The language beyond v1: expressions, sub-dialogues, globals, effects, typed variables.

#[test]
fn expression_errors_point_into_the_string() {
    let yaml = "\
version: 1
variables: { total: { type: money } }
start: b
nodes:
  b:
    branch:
      - { if: 'total >= 1000 and totl < 5', goto: e }
    else: e
  e:
    hangup: {}
";
    // `totl` is at offset 18 inside the single-quoted scalar whose text starts at 7:16.
    one_error(
        yaml,
        7,
        34,
        ErrorKind::UndeclaredVariable,
        "`totl` is not a declared variable",
    );
    one_error(
        &yaml.replace("totl < 5", "total = 5"),
        7,
        40,
        ErrorKind::Expression,
        "`=` is not an operator",
    );
    one_error(
        &yaml.replace("total >= 1000 and totl < 5", "total < \"abc\""),
        7,
        22,
        ErrorKind::Expression,
        "compares a number with a text",
    );
    let ok = yaml.replace("totl < 5", "total < 5");
    assert!(load_str("t.yaml", &ok).is_ok());
}

#[test]
fn typed_defaults_and_set_literals_are_checked() {
    let yaml = "\
version: 1
variables:
  n: { type: integer, default: x }
  d: { type: date, default: 2026-13-01 }
  ok: { type: boolean, default: true }
start: s
nodes:
  s:
    set: { n: 1.5, ok: maybe }
    next: e
  e:
    hangup: {}
";
    let errs = errors(yaml);
    let got: Vec<(u32, u32)> = errs.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(got, [(3, 32), (4, 29), (9, 15), (9, 24)], "{errs:#?}");
    assert!(errs[0].3.contains("is not an integer"));
    assert!(errs[1].3.contains("is not a date"));
}

const SUB: &str = "\
version: 1
subdialogs:
  yn:
    params: { question: {} }
    start: ask
    nodes:
      ask:
        ask:
          prompt: ['${question}']
          intents: { y: { dtmf: ['1'] }, n: { dtmf: ['2'] } }
        on: { y: r_yes, n: r_no, noinput: r_no, nomatch: r_no }
      r_yes: { return: 'yes' }
      r_no: { return: 'no' }
start: c
nodes:
  c:
    call: yn
    with: { question: hello }
    on: { 'yes': e, 'no': e }
  e:
    hangup: {}
";

#[test]
fn sub_dialogue_calls_are_checked() {
    let s = load_str("t.yaml", SUB).unwrap();
    assert_eq!(s.subdialogs[0].returns, ["yes", "no"]);
    assert_eq!(s.node_name(s.subdialogs[0].start), "yn.ask");
    one_error(
        &SUB.replace("    with: { question: hello }\n", ""),
        17,
        11,
        ErrorKind::MissingHandler,
        "does not pass parameter `question`",
    );
    one_error(
        &SUB.replace("on: { 'yes': e, 'no': e }", "on: { 'yes': e }"),
        16,
        3,
        ErrorKind::MissingHandler,
        "does not handle return value `no`",
    );
    one_error(
        &SUB.replace("call: yn", "call: ny"),
        17,
        11,
        ErrorKind::UnknownTarget,
        "`ny` is not a sub-dialogue",
    );
    let errs = errors(&SUB.replace("r_yes: { return: 'yes' }", "r_yes: { goto: e }"));
    assert_eq!(
        (errs[0].0, errs[0].1, errs[0].2, errs[0].3.as_str()),
        (
            12,
            22,
            ErrorKind::UnknownTarget,
            "goto target `e` is not a node of sub-dialogue `yn`"
        ),
        "targets resolve inside the sub-dialogue"
    );
    one_error(
        &SUB.replace("  e:\n    hangup: {}\n", "  e:\n    return: done\n"),
        21,
        13,
        ErrorKind::Misplaced,
        "`return` outside a sub-dialogue",
    );
    // A sub-dialogue that calls itself.
    let rec = SUB.replace(
        "r_yes: { return: 'yes' }",
        "r_yes: { call: yn, on: { 'yes': r_no, 'no': r_no } }",
    );
    let errs = errors(&rec);
    assert!(
        errs.iter().any(|e| e.2 == ErrorKind::Recursion),
        "{errs:#?}"
    );
}

#[test]
fn global_intents_apply_unless_overridden() {
    let yaml = "\
version: 1
global:
  intents:
    operator: { dtmf: ['0'] }
  on: { operator: op, noinput: op, nomatch: op }
start: q
nodes:
  q:
    ask:
      prompt: [x]
      intents: { ok: { dtmf: ['1'] } }
    on: { ok: op }
  op:
    hangup: {}
";
    let s = load_str("t.yaml", yaml).unwrap();
    let NodeKind::Ask(ask) = &s.nodes[0].kind else {
        panic!()
    };
    assert_eq!(
        ask.intents
            .iter()
            .map(|i| (i.name.as_str(), i.global))
            .collect::<Vec<_>>(),
        [("ok", false), ("operator", true)]
    );
    assert!(
        ask.noinput.target.global,
        "the global no-input handler applies"
    );
    // A local key that collides with a global one.
    one_error(
        &yaml.replace("ok: { dtmf: ['1'] }", "ok: { dtmf: ['0'] }"),
        11,
        18,
        ErrorKind::InvalidValue,
        "also the key of global intent `operator`",
    );
    // Overridden by name, or switched off.
    assert!(
        load_str(
            "t.yaml",
            &yaml
                .replace("ok: { dtmf: ['1'] }", "operator: { dtmf: ['0'] }")
                .replace("on: { ok: op }", "on: { operator: op }")
        )
        .is_ok()
    );
    let off = yaml.replace(
        "      intents: { ok",
        "      globals: false\n      intents: { ok",
    );
    let s = load_str("t.yaml", &off).unwrap();
    let NodeKind::Ask(ask) = &s.nodes[0].kind else {
        panic!()
    };
    assert_eq!(ask.intents.len(), 1);
}

const GLOBAL_AND_LOCAL: &str = "\
version: 1
global:
  intents:
    operator: { dtmf: ['0'] }
  on: { operator: op, noinput: op, nomatch: op }
start: q
nodes:
  q:
    ask:
      prompt: [x]
      intents: { ok: { dtmf: ['1'] } }
    on: { ok: op }
  op:
    hangup: {}
";

/// Local and global intents are compiled by one function; what differs between the two
/// scopes (the `on:` map a target comes from, what the input modes require) is reported
/// as before, with the same hints, at the same places.
#[test]
fn intent_problems_are_reported_in_either_scope() {
    let all = |from: &str, to: &str| -> Vec<(u32, u32, ErrorKind, String, Option<String>)> {
        let yaml = GLOBAL_AND_LOCAL.replace(from, to);
        assert_ne!(yaml, GLOBAL_AND_LOCAL, "{from:?} is not in the scenario");
        match load_str("t.yaml", &yaml) {
            Ok(_) => panic!("loaded without errors:\n{yaml}"),
            Err(e) => e
                .diagnostics()
                .iter()
                .map(|d| (d.line, d.column, d.kind, d.message.clone(), d.hint.clone()))
                .collect(),
        }
    };
    let cases: &[(&str, &str)] = &[
        // `repeat` with a target, under `global:` and in an `ask`.
        (
            "operator: { dtmf: ['0'] }",
            "operator: { dtmf: ['0'], repeat: true }",
        ),
        ("ok: { dtmf: ['1'] }", "ok: { dtmf: ['1'], repeat: true }"),
        // Nothing selects the intent.
        ("operator: { dtmf: ['0'] }", "operator: {}"),
        (
            "prompt: [x]\n      intents: { ok: { dtmf: ['1'] } }",
            "prompt: [x]\n      input: [dtmf, speech]\n      intents: { ok: {} }",
        ),
        ("ok: { dtmf: ['1'] }", "ok: { phrases: { en: [fine] } }"),
        (
            "prompt: [x]\n      intents: { ok: { dtmf: ['1'] } }",
            "prompt: [x]\n      input: [speech]\n      intents: { ok: { dtmf: ['1'] } }",
        ),
        // Reserved names.
        ("operator: { dtmf: ['0'] }", "nomatch: { dtmf: ['0'] }"),
        ("ok: { dtmf: ['1'] }", "digits: { dtmf: ['1'] }"),
        // A digit key next to a digit string.
        (
            "prompt: [x]\n      intents: { ok: { dtmf: ['1'] } }",
            "prompt: [x]\n      digits: { min: 4 }\n      intents: { ok: { dtmf: ['1'] } }",
        ),
        // No target.
        ("on: { operator: op, noinput", "on: { noinput"),
        ("    on: { ok: op }\n", ""),
        // Unknown global intents listed, and keys taken twice.
        ("prompt: [x]\n", "prompt: [x]\n      globals: [operatr]\n"),
        (
            "operator: { dtmf: ['0'] }",
            "operator: { dtmf: ['0', '0'] }",
        ),
        (
            "ok: { dtmf: ['1'] }",
            "ok: { dtmf: ['1'] }, fine: { dtmf: ['1'] }",
        ),
    ];
    /// (line, column, kind, message, hint)
    type Reported = (u32, u32, ErrorKind, &'static str, Option<&'static str>);
    let expected: &[&[Reported]] = &[
        &[(
            4,
            5,
            ErrorKind::Misplaced,
            "`operator` repeats the question; it has no target",
            Some("remove `global.on.operator`"),
        )],
        &[(
            11,
            18,
            ErrorKind::Misplaced,
            "`ok` repeats the question; it has no target",
            Some("remove `on.ok`"),
        )],
        &[(
            4,
            5,
            ErrorKind::InvalidValue,
            "global intent `operator` has neither `dtmf` nor `phrases`",
            None,
        )],
        &[(
            12,
            18,
            ErrorKind::InvalidValue,
            "intent `ok` has neither `dtmf` nor `phrases`",
            None,
        )],
        &[(
            11,
            18,
            ErrorKind::InvalidValue,
            "intent `ok` has no `dtmf` keys",
            Some("e.g. `{ dtmf: [\"1\"] }`"),
        )],
        &[(
            12,
            18,
            ErrorKind::InvalidValue,
            "intent `ok` has no `phrases`",
            Some("e.g. `{ phrases: { en: [yes], ru: [да] } }`"),
        )],
        &[
            (
                4,
                5,
                ErrorKind::InvalidName,
                "`nomatch` cannot be an intent name",
                Some(
                    "use letters, digits, `_` and `-`; `noinput`, `nomatch` and `digits` are reserved",
                ),
            ),
            (
                5,
                9,
                ErrorKind::Misplaced,
                "`global.on.operator` names no global intent",
                Some("known `on` keys: `noinput`, `nomatch`, `nomatch`"),
            ),
        ],
        &[
            (
                11,
                18,
                ErrorKind::InvalidName,
                "`digits` cannot be an intent name",
                Some(
                    "use letters, digits, `_` and `-`; `noinput`, `nomatch` and `digits` are reserved",
                ),
            ),
            (
                12,
                11,
                ErrorKind::Misplaced,
                "`on.ok` names no intent of this `ask`",
                Some("known `on` keys: `digits`, `noinput`, `nomatch`"),
            ),
        ],
        &[
            (
                8,
                3,
                ErrorKind::MissingHandler,
                "the digit string of `ask` node `q` has no target",
                Some("add `digits: <node>` under `on:` (or a `next:`)"),
            ),
            (
                12,
                18,
                ErrorKind::InvalidValue,
                "intent `ok` uses key `1`, but this `ask` collects digits",
                Some("next to `digits`, intent keys must start with `*` or `#`"),
            ),
        ],
        &[(
            4,
            5,
            ErrorKind::MissingHandler,
            "global intent `operator` has no target",
            Some("add `operator: <node>` under `global.on:`, or `repeat: true`"),
        )],
        &[(
            11,
            18,
            ErrorKind::MissingHandler,
            "intent `ok` has no target",
            Some("add `ok: <node>` under the node's `on:` (or a `next:` for all intents)"),
        )],
        &[(
            11,
            16,
            ErrorKind::UnknownTarget,
            "`operatr` is not a global intent",
            Some("did you mean `operator`?"),
        )],
        &[(
            4,
            29,
            ErrorKind::InvalidValue,
            "key `0` is already used by intent `operator`",
            None,
        )],
        &[(
            11,
            54,
            ErrorKind::InvalidValue,
            "key `1` is already used by intent `ok`",
            None,
        )],
    ];
    assert_eq!(cases.len(), expected.len());
    for ((from, to), want) in cases.iter().zip(expected) {
        let want: Vec<_> = want
            .iter()
            .map(|(l, c, k, m, h)| (*l, *c, *k, m.to_string(), h.map(str::to_string)))
            .collect();
        assert_eq!(all(from, to), want, "{from:?} -> {to:?}");
    }
}

#[test]
fn effect_nodes_need_their_fallbacks() {
    let yaml = "\
version: 1
variables: { t: {} }
start: w
nodes:
  w:
    webhook: { timeout: 2s, store: { t: a.b } }
    next: r
  r:
    record: { transcribe: true, store: t }
    next: x
  x:
    transfer: { target: 'sip:a@b' }
    on: { busy: e }
  e:
    hangup: {}
";
    let errs = errors(yaml);
    let msgs: Vec<&str> = errs.iter().map(|e| e.3.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "`webhook` node `w` does not handle `error`",
            "`transfer` node `x` does not handle `noanswer`",
            "`transfer` node `x` does not handle `failed`",
        ],
        "{errs:#?}"
    );
    let fixed = yaml
        .replace("    next: r\n", "    next: r\n    on: { error: e }\n")
        .replace("    on: { busy: e }\n", "    next: e\n");
    let s = load_str("t.yaml", &fixed).unwrap();
    let edges: Vec<(String, String)> = s
        .all_edges()
        .into_iter()
        .map(|(f, j)| (f.map_or("*".into(), |f| s.node_name(f).to_string()), j.key))
        .collect();
    assert!(edges.contains(&("w".into(), "error".into())));
    assert!(edges.contains(&("x".into(), "next".into())));
}

#[test]
fn digit_strings_and_language_stores_are_checked() {
    let yaml = "\
version: 1
languages: [en, ru]
start: q
nodes:
  q:
    ask:
      prompt: [x]
      store: language
      intents: { en: { dtmf: ['1'] }, de: { dtmf: ['2'] } }
    next: e
    on: { noinput: e, nomatch: e }
  e:
    hangup: {}
";
    one_error(yaml, 9, 39, ErrorKind::InvalidValue, "not in `languages`");
    let digits = "\
version: 1
start: q
nodes:
  q:
    ask:
      prompt: [x]
      digits: { min: 4, max: 2, terminator: '5' }
    next: e
    on: { noinput: e, nomatch: e }
  e:
    hangup: {}
";
    let errs = errors(digits);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].3.contains("`max` must be between"));
    assert!(errs[1].3.contains("is not a terminator key"));
}

mod lints {
    use super::super::lint::{Audio, lint};
    use super::*;
    use crate::media::prompts::{Prompt, PromptCache};

    fn cache(names: &[&str]) -> PromptCache {
        let mut c = PromptCache::new();
        for n in names {
            // A tone at about -20 dBFS RMS.
            let pcm: Vec<i16> = (0..800)
                .map(|i| if i % 2 == 0 { 3000 } else { -3000 })
                .collect();
            c.insert("en", Prompt::from_pcm(*n, pcm));
        }
        c
    }

    fn found(
        s: &Scenario,
        c: Option<&PromptCache>,
    ) -> Vec<(u32, u32, ErrorKind, Severity, String)> {
        let audio = c.map(|c| Audio {
            cache: c,
            dir: None,
        });
        lint(s, audio.as_ref())
            .into_iter()
            .map(|d| (d.line, d.column, d.kind, d.severity, d.message))
            .collect()
    }

    #[test]
    fn speech_questions_spoken_keys_and_values_without_confirmation() {
        let yaml = |spoken: &str| {
            format!(
                "\
version: 1
languages: [en, ru]
variables:
  day: {{ type: string, default: \"\" }}
start: q
nodes:
  q:
    ask:
      prompt: [x]
      input: [dtmf, speech]
      {spoken}
      intents:
        a: {{ dtmf: [\"1\"], phrases: {{ en: [yes] }} }}
    on: {{ a: d, noinput: d, nomatch: d }}
  d:
    ask:
      prompt: [x]
      input: [dtmf, speech]
      answer: day_of_month
      store: day
    on: {{ day_of_month: end, noinput: end, nomatch: end }}
  end:
    hangup: {{}}
"
            )
        };
        // Key 1 said aloud ("один") reaches `a` in Russian: no missing-phrases warning;
        // the day question without `confirm:` is suspicious.
        let s = load_str("t.yaml", &yaml("")).unwrap();
        let got = found(&s, None);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(
            (got[0].2, got[0].3),
            (ErrorKind::Suspicious, Severity::Warning)
        );
        assert!(got[0].4.contains("no `confirm:`"), "{got:#?}");
        // Without spoken keys a Russian caller can only press it.
        let s = load_str("t.yaml", &yaml("spoken_keys: false")).unwrap();
        let got = found(&s, None);
        assert!(
            got.iter()
                .any(|d| d.2 == ErrorKind::MissingPhrases && d.4.contains("in ru")),
            "{got:#?}"
        );
    }

    #[test]
    fn unreachable_nodes_and_loops_without_exit() {
        let yaml = "\
version: 1
start: a
nodes:
  a:
    play: [x]
    next: b
  b:
    play: [x]
    next: a
  lonely:
    hangup: {}
";
        let s = load_str("t.yaml", yaml).unwrap();
        let got = found(&s, None);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(
            (got[0].0, got[0].2, got[0].3),
            (4, ErrorKind::NoExit, Severity::Error)
        );
        assert!(got[0].4.contains("loop without exit: `a`, `b`"), "{got:#?}");
        assert_eq!(
            (got[1].0, got[1].2, got[1].3),
            (10, ErrorKind::Unreachable, Severity::Warning)
        );
    }

    #[test]
    fn missing_prompts_and_fragments() {
        let yaml = "\
version: 1
variables: { n: { type: integer } }
start: a
nodes:
  a:
    play: [hello, { number: '${n}' }]
    next: e
  e:
    hangup: { play: [goodbye] }
";
        let s = load_str("t.yaml", yaml).unwrap();
        let c = cache(&["hello", "goodbye"]);
        let got = found(&s, Some(&c));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!(
            (got[0].0, got[0].1, got[0].2),
            (6, 19, ErrorKind::MissingPrompt)
        );
        assert!(
            got[0]
                .4
                .contains("`number` item needs 32 fragment(s) missing in `en`"),
            "{got:#?}"
        );
        let mut c = cache(&["hello"]);
        let mut names: Vec<String> =
            crate::sayas::fragments(crate::sayas::SayKind::Number, "en", None);
        names.push("goodbye".into());
        for n in &names {
            c.insert(
                "en",
                Prompt::from_pcm(n.clone(), vec![3000, -3000, 3000, -3000]),
            );
        }
        assert!(found(&s, Some(&c)).is_empty());
    }

    #[test]
    fn levels_are_checked() {
        let yaml =
            "version: 1\nstart: a\nnodes:\n  a:\n    hangup: { play: [loud, peak, quiet] }\n";
        let s = load_str("t.yaml", yaml).unwrap();
        let mut c = PromptCache::new();
        // Flattened at full scale for a while: clipped. A single full-scale peak is not.
        c.insert(
            "en",
            Prompt::from_pcm("loud", vec![i16::MAX, i16::MAX, i16::MAX, i16::MAX, 0]),
        );
        c.insert(
            "en",
            Prompt::from_pcm(
                "peak",
                vec![3000, -3000, i16::MAX, 3000, -3000, 0, 0, 0, 0, 0],
            ),
        );
        c.insert("en", Prompt::from_pcm("quiet", vec![3, -3, 3, -3]));
        let got = found(&s, Some(&c));
        let msgs: Vec<&str> = got.iter().map(|g| g.4.as_str()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("`en/loud` is clipped (4 samples in a row at full scale")),
            "{msgs:#?}"
        );
        assert!(!msgs.iter().any(|m| m.contains("en/peak")), "{msgs:#?}");
        assert!(
            msgs.iter().any(|m| m.contains("`en/quiet` is too quiet")),
            "{msgs:#?}"
        );
        assert!(got.iter().all(|g| g.3 == Severity::Warning));
    }
}

#[test]
fn the_call_parties_are_built_in_and_read_only() {
    // Declared implicitly: usable without a declaration, in templates and expressions.
    let yaml = "\
version: 1
start: a
nodes:
  a:
    branch: [{ if: \"direction == 'outbound'\", goto: b }]
    else: b
  b:
    sms: { template: link }
    next: c
  c:
    notify: { event: dnc.requested, data: { phone: \"${customer}\", via: \"${caller}>${dialled}\" } }
    next: d
  d:
    hangup: {}
";
    let s = load_str("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    for name in ["caller", "dialled", "customer", "direction"] {
        let v = &s.variables[name];
        assert_eq!(v.ty, VarType::String, "{name}");
        assert!(v.pos.is_none(), "{name} is implicit");
        assert!(v.description.as_deref().unwrap().contains("built-in"));
    }
    // An SMS without `to` goes to the customer.
    let NodeKind::Notify { data, .. } = &s.nodes[1].kind else {
        panic!("b is not an sms node")
    };
    let vars = BTreeMap::from([("customer".to_string(), "+15551230000".to_string())]);
    assert_eq!(data.render(&vars)["to"], "+15551230000");

    // Not assignable, by `set` or by any `store`.
    one_error(
        &OK.replace(
            "    play: [hello]\n    next: b",
            "    set: { customer: \"+15550000\" }\n    next: b",
        ),
        5,
        12,
        ErrorKind::UndeclaredVariable,
        "`set` assigns `customer`, a built-in variable the runtime sets; it cannot be assigned",
    );
    one_error(
        &OK.replace(
            "    play: [hello]\n    next: b",
            "    webhook: { store: { caller: x } }\n    next: b\n    on: { error: b }",
        ),
        5,
        25,
        ErrorKind::UndeclaredVariable,
        "`store` names `caller`, a built-in variable",
    );
    // Redeclared only as a string, and never from SIP.
    let declared = |decl: &str| format!("{OK}variables:\n  customer: {decl}\n");
    assert!(load_str("t.yaml", &declared("{ type: string, description: who }")).is_ok());
    one_error(
        &declared("{ type: integer }"),
        10,
        3,
        ErrorKind::InvalidValue,
        "`customer` is a built-in variable, set by the runtime to a number; it cannot be declared `integer`",
    );
    one_error(
        &declared("{ from: sip_header X-Customer }"),
        10,
        21,
        ErrorKind::InvalidValue,
        "`customer` is set by the runtime; nothing in the INVITE may set it",
    );
}
