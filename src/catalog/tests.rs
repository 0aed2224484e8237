use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const HELLO: &str = "version: 1
name: hello
languages: [en]
start: bye
nodes:
  bye:
    hangup: { outcome: greeted, play: [hello] }
";

const GOODBYE: &str = "version: 1
name: hello
languages: [en]
start: bye
nodes:
  bye:
    hangup: { outcome: done, play: [goodbye] }
";

const LISTENS: &str = r#"version: 1
name: listens
languages: [en]
start: q
nodes:
  q:
    ask:
      prompt: [hello]
      input: [speech]
      intents:
        "yes":
          phrases: { en: ["yes"] }
    on:
      "yes": end
      noinput: end
      nomatch: end
  end:
    hangup: { outcome: heard, play: [goodbye] }
"#;

/// A scratch directory with `scenarios/` and `audio/en/` holding two bundled prompts.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "ivrflow-catalog-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("scenarios")).unwrap();
        std::fs::create_dir_all(root.join("audio/en")).unwrap();
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/en");
        for p in ["hello.wav", "goodbye.wav"] {
            std::fs::copy(bundled.join(p), root.join("audio/en").join(p)).unwrap();
        }
        Dir(root)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join("scenarios").join(name), text).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.0.join("scenarios").join(name)).unwrap();
    }

    fn load(&self, inbound: Inbound, speech: bool, prev: Option<&Catalog>) -> (Catalog, Report) {
        let scenarios = self.0.join("scenarios");
        let audio = self.0.join("audio");
        load(
            &Sources {
                scenarios: &scenarios,
                audio: &audio,
                inbound,
                speech,
            },
            prev,
        )
        .unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn by_name() -> Inbound {
    Inbound {
        routes: BTreeMap::new(),
        by_name: true,
    }
}

#[test]
fn a_broken_file_is_reported_with_its_position_and_the_rest_load() {
    let d = Dir::new();
    d.write("hello.yaml", HELLO);
    d.write("broken.yaml", "version: 1\nname: broken\nstart: nowhere\nnodes:\n  a:\n    hangup: { outcome: x, play: [hello] }\n");
    let (cat, report) = d.load(by_name(), true, None);
    assert_eq!(report.loaded, ["hello"]);
    assert_eq!(report.updated, ["hello"]);
    assert_eq!(report.problems.len(), 1);
    let p = &report.problems[0];
    assert_eq!(p.scenario, "broken");
    assert!(!p.kept_previous);
    assert!(
        p.errors.iter().all(|e| e.contains("broken.yaml:")),
        "{:?}",
        p.errors
    );
    assert!(cat.scenarios.contains_key("hello"));
    assert!(!cat.scenarios.contains_key("broken"));
    // Reachable by name inbound: serve refuses to start on it.
    assert_eq!(report.blocking(&cat.inbound).len(), p.errors.len());
    assert!(!report.ok());
}

#[test]
fn a_missing_prompt_is_an_error_not_a_silent_call() {
    let d = Dir::new();
    d.write(
        "hello.yaml",
        &HELLO.replace("play: [hello]", "play: [not-recorded]"),
    );
    let (cat, report) = d.load(by_name(), true, None);
    assert!(cat.scenarios.is_empty());
    let errors = &report.problems[0].errors;
    assert!(
        errors.iter().any(|e| e.contains("not-recorded")),
        "{errors:?}"
    );
}

#[test]
fn a_scenario_that_listens_needs_the_speech_model() {
    let d = Dir::new();
    d.write("listens.yaml", LISTENS);
    let (cat, report) = d.load(by_name(), true, None);
    assert_eq!(report.problems, [], "{report:?}");
    assert!(accepts_speech(&cat.scenarios["listens"]));
    let (cat, report) = d.load(by_name(), false, None);
    assert!(cat.scenarios.is_empty());
    assert!(report.problems[0].errors[0].contains("no speech model"));
}

#[test]
fn a_reload_replaces_what_changed_keeps_what_broke_and_drops_what_went() {
    let d = Dir::new();
    d.write("hello.yaml", HELLO);
    d.write("other.yaml", &HELLO.replace("name: hello", "name: other"));
    let (v1, _) = d.load(by_name(), true, None);

    // Nothing changed: nothing updated, the same graphs stay in service.
    let (v2, report) = d.load(by_name(), true, Some(&v1));
    assert!(report.updated.is_empty(), "{report:?}");
    assert!(Arc::ptr_eq(&v1.scenarios["hello"], &v2.scenarios["hello"]));

    // An edit: the next call gets the new graph; a call up keeps its Arc to the old one.
    d.write("hello.yaml", GOODBYE);
    let (v3, report) = d.load(by_name(), true, Some(&v2));
    assert_eq!(report.updated, ["hello"]);
    assert!(report.ok());
    let held_by_a_live_call = v2.scenarios["hello"].clone();
    assert!(!Arc::ptr_eq(&held_by_a_live_call, &v3.scenarios["hello"]));

    // A broken edit: the previous version stays in service, reported as kept.
    d.write("hello.yaml", "version: 1\nname: hello\nnodes: [\n");
    let (v4, report) = d.load(by_name(), true, Some(&v3));
    assert!(Arc::ptr_eq(&v3.scenarios["hello"], &v4.scenarios["hello"]));
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].kept_previous);
    assert!(
        report.problems[0].errors[0]
            .starts_with(&format!("{}", d.0.join("scenarios/hello.yaml").display()))
    );
    assert!(report.updated.is_empty());

    // Fixed again: updated; a file removed: no new call reaches it.
    d.write("hello.yaml", HELLO);
    d.remove("other.yaml");
    let (v5, report) = d.load(by_name(), true, Some(&v4));
    assert_eq!(report.updated, ["hello"]);
    assert_eq!(report.removed, ["other"]);
    assert_eq!(v5.scenarios.keys().collect::<Vec<_>>(), ["hello"]);
}

#[test]
fn unreadable_prompts_on_reload_keep_the_previous_prompts() {
    let d = Dir::new();
    d.write("hello.yaml", HELLO);
    let (v1, _) = d.load(by_name(), true, None);
    std::fs::remove_dir_all(d.0.join("audio")).unwrap();
    let (v2, report) = d.load(by_name(), true, Some(&v1));
    assert!(report.prompts_error.is_some());
    assert!(Arc::ptr_eq(&v1.prompts, &v2.prompts));
    // At start there is nothing to fall back on.
    let scenarios = d.0.join("scenarios");
    let audio = d.0.join("audio");
    let first = load(
        &Sources {
            scenarios: &scenarios,
            audio: &audio,
            inbound: by_name(),
            speech: true,
        },
        None,
    );
    assert!(first.is_err());
}

#[test]
fn inbound_calls_reach_routed_scenarios_and_by_name_only_when_allowed() {
    let routed = Inbound {
        routes: BTreeMap::from([("100".to_owned(), "hello".to_owned())]),
        by_name: false,
    };
    assert_eq!(routed.route("100"), Some("hello"));
    assert_eq!(routed.route("hello"), None);
    assert_eq!(routed.route("cart-reminder"), None);
    let open = Inbound {
        by_name: true,
        ..routed.clone()
    };
    assert_eq!(open.route("100"), Some("hello"));
    assert_eq!(open.route("hello"), Some("hello"));

    // A route to a scenario that is not loaded is a blocking error; a broken scenario no
    // route reaches is not (it is outbound-only).
    let d = Dir::new();
    d.write("hello.yaml", HELLO);
    d.write("outbound-only.yaml", "version: 1\nname: x\nstart: a\nnodes:\n  a:\n    hangup: { outcome: x, play: [missing] }\n");
    let inbound = Inbound {
        routes: BTreeMap::from([
            ("100".to_owned(), "hello".to_owned()),
            ("200".to_owned(), "gone".to_owned()),
        ]),
        by_name: false,
    };
    let (cat, report) = d.load(inbound, true, None);
    assert_eq!(report.route_errors.len(), 1);
    assert!(report.route_errors[0].contains("`gone`"));
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.blocking(&cat.inbound), report.route_errors);
}

#[test]
fn two_files_for_one_name_are_refused() {
    let d = Dir::new();
    d.write("hello.yaml", HELLO);
    d.write("hello.yml", HELLO);
    let (cat, report) = d.load(by_name(), true, None);
    assert!(cat.scenarios.contains_key("hello"));
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].errors[0].contains("also defined by"));
}
