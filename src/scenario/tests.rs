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
        .map(|i| (i.name.as_str(), i.dtmf.clone(), s.node_name(i.target)))
        .collect();
    assert_eq!(
        intents,
        [
            ("confirm", vec!["1".to_string()], "confirmed"),
            ("cancel", vec!["2".to_string()], "cancelled")
        ]
    );
    assert_eq!(ask.noinput.max, 2);
    assert_eq!(ask.noinput.reprompts.len(), 2);
    assert_eq!(s.node_name(ask.noinput.target), "no_input");
    assert_eq!(s.node_name(ask.nomatch.target), "no_input");
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

#[test]
fn yaml_syntax_error() {
    one_error(
        &OK.replace("    next: b", "      next: b"),
        6,
        7,
        ErrorKind::Yaml,
        "did not find expected key",
    );
    let err = load_str("t.yaml", "").unwrap_err();
    assert_eq!(err.diagnostics()[0].line, 1);
    assert!(err.diagnostics()[0].hint.is_some());
}

#[test]
fn unknown_key() {
    let yaml = OK.replace("    next: b", "    nxt: b");
    one_error(&yaml, 6, 5, ErrorKind::Yaml, "unknown field `nxt`");
    one_error(
        &format!("{OK}colour: red\n"),
        9,
        1,
        ErrorKind::Yaml,
        "unknown field `colour`",
    );
}

#[test]
fn unknown_key_in_prompt_item() {
    let yaml = OK.replace("[hello]", "[hello, { prompt: x, bargein: false }]");
    one_error(&yaml, 5, 32, ErrorKind::Yaml, "unknown field `bargein`");
}

#[test]
fn wrong_types() {
    one_error(
        &OK.replace("version: 1", "version: one"),
        1,
        10,
        ErrorKind::Yaml,
        "u32",
    );
    one_error(
        &OK.replace("play: [hello]", "play: hello"),
        5,
        11,
        ErrorKind::Yaml,
        "sequence",
    );
    one_error(
        &OK.replace("play: [hello]", "play: [[hello]]"),
        5,
        12,
        ErrorKind::Yaml,
        "prompt name",
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
        29,
        ErrorKind::UndeclaredVariable,
        "`${order}`",
    );
    // In a prompt name.
    one_error(
        &VARS.replace("[hello,", "[\"greeting/${tone}\","),
        7,
        12,
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
            (7, 22, ErrorKind::UndeclaredVariable),
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
        29,
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
        "non-digits",
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
fn speech_input_is_not_supported_yet() {
    one_error(
        &ASK.replace("      timeout: 5s\n", "      input: [dtmf, speech]\n"),
        7,
        21,
        ErrorKind::Unsupported,
        "speech",
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
