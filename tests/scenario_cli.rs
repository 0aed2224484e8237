//! The authoring commands as a user runs them: the real `ivrflow` binary on the bundled
//! scenarios, their caller scripts and the broken copies under tests/fixtures/scenarios/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ivrflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ivrflow"))
        .args(args)
        .current_dir(root())
        .env("IVRFLOW_LOG", "error")
        .output()
        .expect("run ivrflow")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SCENARIOS: [&str; 5] = [
    "back-in-stock",
    "cart-reminder",
    "delivery-survey",
    "inbound-menu",
    "order-confirmation",
];

#[test]
fn the_bundled_scenarios_validate_clean() {
    let o = ivrflow(&["validate", "scenarios"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    for s in SCENARIOS {
        assert!(
            out.contains(&format!("scenarios/{s}.yaml: ok")),
            "{s} is not clean:\n{out}"
        );
    }
    assert!(
        out.contains("5 scenario files: 0 errors, 0 warnings"),
        "{out}"
    );
    assert!(!out.contains(": error:"), "{out}");
    // The placeholders they knowingly play are listed, as notes, by name.
    assert!(
        out.contains(
            "scenarios/order-confirmation.yaml:32:7: note: 43 acknowledged placeholder(s) in `ru` still to be recorded: money/eur-cents-few,"
        ),
        "{out}"
    );
    // So CI can gate on warnings.
    let o = ivrflow(&["validate", "--deny-warnings", "scenarios/"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

/// Writes `files` (name, text) into a fresh directory under the system's temp dir.
fn scratch(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ivrflow-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

#[test]
fn placeholders_and_events_are_acknowledged_per_file() {
    let yaml = "\
version: 1
languages: [en, uk]
events: [survey.completed, survey.unused]
acknowledge:
  synthetic_prompts: [\"*/shop/cart-reminder\", \"en/digits/7\"]
start: a
nodes:
  a:
    play: [hello, shop/cart-reminder, shop/on, digits/oh]
    next: n
  n:
    notify: { event: survey.completed }
    next: m
  m:
    notify: { event: survey.complted }
    next: b
  b:
    hangup: { play: [goodbye] }
";
    let dir = scratch("ack", &[("ack.yaml", yaml)]);
    let file = dir.join("ack.yaml");
    let f = file.to_str().unwrap();
    let o = ivrflow(&["validate", f]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o).replace(&format!("{f}:"), "");
    assert_eq!(
        out,
        "\
3:28: warning: event `survey.unused` is declared but no `notify` node sends it
  hint: remove it from `events:`, or send it
5:23: note: 1 acknowledged placeholder(s) in `en` still to be recorded: shop/cart-reminder
5:23: note: 1 acknowledged placeholder(s) in `uk` still to be recorded: shop/cart-reminder
5:47: warning: `en/digits/7` acknowledges no placeholder this scenario plays
  hint: it has been recorded (or is not used any more): remove it from `acknowledge.synthetic_prompts`
9:39: warning: 1 prompt(s) in `en` are synthetic placeholders still to be recorded: shop/on
  hint: record them (listed in audio/en/SYNTHETIC.txt), or acknowledge them: `acknowledge: { synthetic_prompts: [\"en/shop/on\"] }`
9:39: warning: 2 prompt(s) in `uk` are synthetic placeholders still to be recorded: digits/oh, shop/on
  hint: record them (listed in audio/uk/SYNTHETIC.txt), or acknowledge them: `acknowledge: { synthetic_prompts: [\"uk/digits/oh\"] }`
14:3: warning: event `survey.complted` is neither one the CRM integration documents nor declared in `events:`
  hint: did you mean `survey.completed`?
 ok (5 warnings)
1 scenario file: 0 errors, 5 warnings
"
    );
    let o = ivrflow(&["validate", "--deny-warnings", f]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_prompts_say_whether_the_name_or_the_recording_is_wrong() {
    let yaml = "\
version: 1
languages: [en, ru]
start: a
nodes:
  a:
    hangup: { play: [goodby, vm-and] }
";
    let dir = scratch("prompts", &[("p.yaml", yaml)]);
    let file = dir.join("p.yaml");
    let f = file.to_str().unwrap();
    let o = ivrflow(&["validate", "-q", f]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = stdout(&o).replace(&format!("{f}:"), "");
    assert_eq!(
        out,
        "\
6:22: error: prompt `goodby` has no recording for `en` (audio/en/goodby.wav)
  hint: did you mean `goodbye`?
6:22: error: prompt `goodby` has no recording for `ru` (audio/ru/goodby.wav)
  hint: did you mean `goodbye`?
6:30: error: prompt `vm-and` has no recording for `ru` (audio/ru/vm-and.wav)
  hint: it exists in en: record audio/ru/vm-and.wav (or add a placeholder and list it in audio/ru/SYNTHETIC.txt)
1 scenario file: 3 errors, 0 warnings
"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn yaml_mistakes_are_explained_with_file_line_col() {
    let yaml = "\
version: 1
start: a
nodes:
  a:
    ask:
      promt: [hello]
      intents: { yes: { dtmf: [\"1\"], phrase: { en: [yes] } } }
    on: { yes: b, noinput: b, nomatch: b }
  b:
    hangup: { outcom: done }
";
    let dir = scratch("yaml", &[("y.yaml", yaml)]);
    let file = dir.join("y.yaml");
    let f = file.to_str().unwrap();
    let o = ivrflow(&["validate", f]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(
        error_lines(&o),
        [
            format!("{f}:6:7: error: unknown key `promt` in `ask`"),
            format!("{f}:7:38: error: unknown key `phrase` in `yes`"),
            format!("{f}:10:15: error: unknown key `outcom` in `hangup`"),
        ]
    );
    let out = stdout(&o);
    assert_eq!(out.matches("  hint: did you mean `").count(), 3, "{out}");
    assert!(out.contains("  hint: did you mean `phrases`?"), "{out}");
    // Indentation: the plain-words message, the place, the keys it fails to line up with.
    let dir2 = scratch(
        "indent",
        &[(
            "i.yaml",
            "version: 1\nstart: a\nnodes:\n  a:\n    play: [hello]\n   next: b\n  b: { hangup: {} }\n",
        )],
    );
    let i = dir2.join("i.yaml");
    let o = ivrflow(&["validate", "--no-audio", i.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stdout(&o).contains(&format!(
            "{}:6:4: error: line 6 is not indented like the keys around it\n  hint: `next` is indented 3 spaces, the keys above it 4 (`play`, line 5), 2 (`a`, line 4), 0 (`nodes`, line 3): keys of one mapping start in the same column, so line it up with the one it belongs to",
            i.display()
        )),
        "{}",
        show(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

/// The `file:line:col: error: message` lines of a validate run.
fn error_lines(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter(|l| l.contains(": error: "))
        .map(str::to_string)
        .collect()
}

#[track_caller]
fn assert_broken(name: &str, expected: &[&str]) {
    let file = format!("tests/fixtures/scenarios/{name}-broken.yaml");
    let o = ivrflow(&["validate", &file]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let got = error_lines(&o);
    let want: Vec<String> = expected.iter().map(|e| format!("{file}:{e}")).collect();
    assert_eq!(got, want, "{}", show(&o));
}

#[test]
fn broken_order_confirmation_is_reported_at_the_right_places() {
    assert_broken(
        "order-confirmation",
        &[
            "47:20: error: `${order_no}` refers to an undeclared variable",
            "98:7: error: `ask` node `confirm` does not handle `noinput`",
            "98:16: error: `on.confirm` target `folowup` is not a node of this scenario",
            "119:41: error: prompt `good-bye` has no recording for `en` (audio/en/good-bye.wav)",
            "119:41: error: prompt `good-bye` has no recording for `ru` (audio/ru/good-bye.wav)",
            "119:41: error: prompt `good-bye` has no recording for `uk` (audio/uk/good-bye.wav)",
        ],
    );
}

#[test]
fn broken_cart_reminder_is_reported_at_the_right_places() {
    assert_broken(
        "cart-reminder",
        &[
            "48:9: error: prompt `shop/cart-reminders` has no recording for `en` (audio/en/shop/cart-reminders.wav)",
            "48:9: error: prompt `shop/cart-reminders` has no recording for `ru` (audio/ru/shop/cart-reminders.wav)",
            "48:9: error: prompt `shop/cart-reminders` has no recording for `uk` (audio/uk/shop/cart-reminders.wav)",
            "74:7: error: `ask` node `offer` does not handle `noinput`",
            "92:22: error: `${promocode}` refers to an undeclared variable",
            "116:11: error: `next` target `dnc-bye` is not a node of this scenario",
        ],
    );
}

#[test]
fn broken_delivery_survey_is_reported_at_the_right_places() {
    assert_broken(
        "delivery-survey",
        &[
            "56:11: error: `ask` node `yes_no.ask` does not handle `noinput`",
            "67:38: error: prompt `shop/q-delivery` has no recording for `en` (audio/en/shop/q-delivery.wav)",
            "67:38: error: prompt `shop/q-delivery` has no recording for `ru` (audio/ru/shop/q-delivery.wav)",
            "67:38: error: prompt `shop/q-delivery` has no recording for `uk` (audio/uk/shop/q-delivery.wav)",
            "91:35: error: `on.no` target `polite` is not a node of this scenario",
            "124:21: error: `${complaint_txt}` refers to an undeclared variable",
        ],
    );
}

#[test]
fn broken_inbound_menu_is_reported_at_the_right_places() {
    assert_broken(
        "inbound-menu",
        &[
            "73:9: error: `ask` node `language_menu` does not handle `noinput`",
            "127:16: error: `${order_desk}` refers to an undeclared variable",
            "142:11: error: `next` target `take-request` is not a node of this scenario",
            "145:12: error: prompt `shop/no-agents` has no recording for `en` (audio/en/shop/no-agents.wav)",
            "145:12: error: prompt `shop/no-agents` has no recording for `ru` (audio/ru/shop/no-agents.wav)",
            "145:12: error: prompt `shop/no-agents` has no recording for `uk` (audio/uk/shop/no-agents.wav)",
        ],
    );
}

#[test]
fn errors_come_with_hints() {
    let o = ivrflow(&[
        "validate",
        "tests/fixtures/scenarios/order-confirmation-broken.yaml",
    ]);
    let out = stdout(&o);
    for hint in [
        "hint: did you mean `order_id`?",
        "hint: did you mean `followup`?",
        "hint: did you mean `goodbye`?",
        "hint: add `noinput: <node>` under `on:`",
    ] {
        assert!(out.contains(hint), "missing {hint:?}:\n{out}");
    }
}

#[test]
fn caller_scripts_pass_and_cover_every_edge() {
    let o = ivrflow(&["test", "scenarios", "--min-coverage", "100"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    for s in SCENARIOS {
        let line = out
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{s} (")))
            .find(|l| l.trim_start().starts_with("coverage:"))
            .unwrap_or_else(|| panic!("no coverage line for {s}:\n{out}"));
        // "coverage: nodes 11/11 (100%), edges 13/13 (100%)"
        assert_eq!(line.matches("(100%)").count(), 2, "{s}: {line}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
}

#[test]
fn a_failing_expectation_fails_the_run() {
    let dir = std::env::temp_dir().join(format!("ivrflow-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root().join("scenarios/order-confirmation.yaml"),
        dir.join("order-confirmation.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("order-confirmation.test.yaml"),
        "calls:\n  - name: wrong\n    steps: [{ press: \"1\" }]\n    expect: { outcome: cancelled }\n",
    )
    .unwrap();
    let o = ivrflow(&["test", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("FAIL  wrong"), "{out}");
    assert!(
        out.contains("outcome: expected `cancelled`, got `confirmed`"),
        "{out}"
    );
    // Only one of the edges was taken.
    assert!(
        out.contains("edge not taken: confirm [cancel] → cancelled"),
        "{out}"
    );
}

/// `name [ ... ]` node ids declared and used in a DOT file.
fn dot_ids(dot: &str) -> (Vec<String>, Vec<(String, String)>) {
    let mut declared = Vec::new();
    let mut edges = Vec::new();
    for line in dot.lines().map(str::trim) {
        if let Some((from, rest)) = line.split_once(" -> ") {
            let to = rest.split([' ', ';', '[']).next().unwrap_or_default();
            edges.push((from.to_string(), to.to_string()));
        } else if let Some((id, _)) = line.split_once(" [") {
            declared.push(id.to_string());
        }
    }
    (declared, edges)
}

#[test]
fn graph_as_dot_is_well_formed() {
    for s in SCENARIOS {
        let o = ivrflow(&["graph", &format!("scenarios/{s}.yaml"), "--format", "dot"]);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        let dot = stdout(&o);
        assert!(dot.starts_with("digraph \""), "{dot}");
        assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "{dot}");
        assert_eq!(dot.matches('"').count() % 2, 0, "{dot}");
        let (declared, edges) = dot_ids(&dot);
        assert!(!edges.is_empty());
        for (from, to) in &edges {
            assert!(declared.contains(from), "{s}: {from} used but not declared");
            assert!(declared.contains(to), "{s}: {to} used but not declared");
        }
    }
}

#[test]
fn graph_as_mermaid_is_well_formed() {
    let o = ivrflow(&[
        "graph",
        "scenarios/delivery-survey.yaml",
        "--format",
        "mermaid",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let m = stdout(&o);
    assert!(m.starts_with("flowchart TD\n"), "{m}");
    assert_eq!(
        m.lines()
            .filter(|l| l.trim_start().starts_with("subgraph"))
            .count(),
        m.lines().filter(|l| l.trim() == "end").count()
    );
    assert!(m.contains("subgraph sub0[\"sub-dialogue yes_no\"]"), "{m}");
    // Every node used by an edge is declared with a label.
    for line in m
        .lines()
        .filter(|l| l.contains("-->") || l.contains("-.->"))
    {
        for id in line
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| {
                w.starts_with('n') && w[1..].chars().all(|c| c.is_ascii_digit()) && w.len() > 1
            })
        {
            assert!(
                m.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{id}["))
                        || l.trim_start().starts_with(&format!("{id}("))
                        || l.trim_start().starts_with(&format!("{id}{{"))
                        || l.trim_start().starts_with(&format!("{id}>"))),
                "{id} has no declaration:\n{m}"
            );
        }
    }
    assert!(m.contains("-->|\"if complaint or late\"|"), "{m}");
}

#[test]
fn graph_as_svg_and_png_through_graphviz() {
    let o = ivrflow(&["graph", "scenarios/inbound-menu.yaml", "--format", "svg"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let svg = stdout(&o);
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.contains("department_menu"), "{svg}");
    let png = std::env::temp_dir().join(format!("ivrflow-graph-{}.png", std::process::id()));
    let o = ivrflow(&[
        "graph",
        "scenarios/order-confirmation.yaml",
        "--format",
        "png",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let bytes = std::fs::read(&png).unwrap();
    let _ = std::fs::remove_file(&png);
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn simulate_with_keys() {
    let o = ivrflow(&[
        "simulate",
        "scenarios/order-confirmation.yaml",
        "--var",
        "order_id=4711",
        "--var",
        "total=1499.90",
        "--dtmf",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("☎ caller presses 1"), "{out}");
    assert!(out.contains("▶ play en/hello"), "{out}");
    assert!(out.contains("⏱ no-input timer 5.00s"), "{out}");
    assert!(
        out.contains("→ followup (branch)  via confirm [confirm]"),
        "{out}"
    );
    assert!(
        out.contains("outcome: confirmed   path: greet → confirm → followup → confirmed"),
        "{out}"
    );
    assert!(out.contains("\"event\": \"call.completed\""), "{out}");
    assert!(out.contains("en/money/rub-cents-other"), "{out}");
}

#[test]
fn simulate_with_speech() {
    let o = ivrflow(&[
        "simulate",
        "scenarios/order-confirmation.yaml",
        "--var",
        "language=ru",
        "--say",
        "да, всё верно",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("🗣 caller says \"да, всё верно\""), "{out}");
    assert!(
        out.contains("✓ speech \"да, всё верно\" → intent confirm"),
        "{out}"
    );
    assert!(out.contains("\"input\": \"speech\""), "{out}");
}

#[test]
fn simulate_json_and_effects() {
    let o = ivrflow(&[
        "simulate",
        "scenarios/inbound-menu.yaml",
        "--webhook",
        r#"{"open": false}"#,
        "--dtmf",
        "2",
        "--record",
        "please call me about my order",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let record: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON payload");
    assert_eq!(record["outcome"], "callback_requested");
    assert_eq!(record["variables"]["language"], "ru");
    assert_eq!(
        record["answers"]["take_request"]["value"],
        "please call me about my order"
    );

    let o = ivrflow(&[
        "simulate",
        "scenarios/order-confirmation.yaml",
        "--dtmf",
        "3",
        "--transfer",
        "busy",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(
        out.contains("⇆ transfer to sip:orders@pbx.shop.example (bridged)"),
        "{out}"
    );
    assert!(out.contains("✉ CRM event callback.requested"), "{out}");
    assert!(out.contains("\"type\":\"transfer\""), "{out}");
}

#[test]
fn simulate_silence_and_hang_up() {
    let o = ivrflow(&[
        "simulate",
        "scenarios/cart-reminder.yaml",
        "--silence",
        "3s",
        "--hangup-after",
        "12s",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("✆ caller hangs up"), "{out}");
    assert!(
        out.contains("duration: 12.0s   hung up by: caller"),
        "{out}"
    );
}

#[test]
fn unusable_input_is_an_error_not_a_crash() {
    let o = ivrflow(&["validate", "no/such/file.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stdout(&o).contains("no/such/file.yaml: error: cannot read"));
    let o = ivrflow(&[
        "graph",
        "scenarios/order-confirmation.yaml",
        "--format",
        "gif",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let o = ivrflow(&[
        "simulate",
        "scenarios/order-confirmation.yaml",
        "--webhook",
        "{not json",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(Path::new(&root().join("tests/fixtures/scenarios")).is_dir());
}

/// The id of the DOT node whose label starts with `name\n`.
fn dot_node<'a>(dot: &'a str, name: &str) -> &'a str {
    dot.lines()
        .find(|l| l.contains(&format!("label=\"{name}\\n")))
        .and_then(|l| l.trim().split(' ').next())
        .unwrap_or_else(|| panic!("no node {name}:\n{dot}"))
}

#[test]
fn graph_draws_every_way_a_call_ends() {
    // Answering-machine detection: who picks up decides the first edge.
    let o = ivrflow(&["graph", "scenarios/cart-reminder.yaml", "--format", "dot"]);
    let dot = stdout(&o);
    let (greet, message) = (dot_node(&dot, "greet"), dot_node(&dot, "leave_message"));
    assert!(
        dot.contains(&format!("  start -> {greet} [label=\"human\"];")),
        "{dot}"
    );
    assert!(
        dot.contains(&format!(
            "  start -> {message} [style=dashed, label=\"machine\"];"
        )),
        "{dot}"
    );
    // A transfer that connects ends the call, with its outcome.
    let o = ivrflow(&[
        "graph",
        "scenarios/order-confirmation.yaml",
        "--format",
        "dot",
    ]);
    let dot = stdout(&o);
    let to = dot_node(&dot, "to_operator");
    let end = to.replacen('n', "c", 1);
    assert!(
        dot.contains(&format!(
            "  {end} [shape=doubleoctagon, style=dashed, label=\"agent connected\\n(change_requested)\"];"
        )),
        "{dot}"
    );
    assert!(
        dot.contains(&format!("  {to} -> {end} [label=\"connected\"];")),
        "{dot}"
    );
    let o = ivrflow(&[
        "graph",
        "scenarios/inbound-menu.yaml",
        "--format",
        "mermaid",
    ]);
    let m = stdout(&o);
    assert_eq!(m.matches("-->|connected|").count(), 3, "{m}");
    assert!(m.contains("[[\"agent connected<br/>transferred\"]]"), "{m}");
}

#[test]
fn a_caller_script_checks_who_gets_the_text() {
    let scenario = std::fs::read_to_string(root().join("scenarios/back-in-stock.yaml")).unwrap();
    // On an outbound call the robot's own number is `caller`: expecting the opt-out to go
    // there fails, and says where it went.
    let script = "\
direction: outbound
calls:
  - name: opt-out goes to our own number
    variables: { customer: \"+15559876543\" }
    steps: [{ press: \"9\" }]
    expect:
      events: [{ dnc.requested: { phone: \"+15550100\" } }]
  - name: the link goes to the customer
    variables: { customer: \"+15559876543\" }
    steps: [{ press: \"1\" }]
    expect:
      events: [{ sms.requested: { to: \"+15559876543\" } }]
      variables: { caller: \"+15550100\", dialled: \"+15559876543\", direction: outbound }
";
    let dir = scratch(
        "who",
        &[("bis.yaml", scenario.as_str()), ("bis.test.yaml", script)],
    );
    let o = ivrflow(&["test", dir.join("bis.yaml").to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = stdout(&o);
    assert!(
        out.contains("FAIL  opt-out goes to our own number"),
        "{out}"
    );
    assert!(
        out.contains("events.dnc.requested.phone: expected \"+15550100\", got \"+15559876543\""),
        "{out}"
    );
    assert!(out.contains("ok    the link goes to the customer"), "{out}");
}
