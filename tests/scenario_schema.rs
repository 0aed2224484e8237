//! docs/scenario.schema.json, the JSON Schema editors use, accepts every bundled scenario
//! and rejects what the loader rejects for its shape (unknown keys, two actions on a node).

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/scenario.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).expect("valid YAML")
}

fn errors(v: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn every_bundled_scenario_matches_the_schema() {
    let v = validator();
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name.ends_with(".test.yaml") {
            continue;
        }
        let doc = yaml(&std::fs::read_to_string(&path).unwrap());
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{name}: {errs:#?}");
        // The loader agrees.
        ivrflow::scenario::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn the_schema_rejects_what_the_loader_rejects_by_shape() {
    let v = validator();
    let ok = "version: 1\nstart: a\nnodes:\n  a:\n    hangup: {}\n";
    assert!(errors(&v, &yaml(ok)).is_empty());
    assert!(ivrflow::scenario::load_str("t.yaml", ok).is_ok());
    for bad in [
        // Unknown top-level key.
        "version: 1\nstart: a\nstrat: a\nnodes:\n  a:\n    hangup: {}\n",
        // Two actions on one node.
        "version: 1\nstart: a\nnodes:\n  a:\n    hangup: {}\n    goto: a\n",
        // No action.
        "version: 1\nstart: a\nnodes:\n  a:\n    next: a\n",
        // A duration without a unit.
        "version: 1\nstart: a\nnodes:\n  a:\n    ask: { prompt: [x], timeout: \"5\", intents: { y: { dtmf: [\"1\"] } } }\n    on: { y: a, noinput: a, nomatch: a }\n",
        // A prompt item with two kinds.
        "version: 1\nstart: a\nnodes:\n  a:\n    play: [{ prompt: x, digits: \"1\" }]\n    next: a\n",
        // An unknown variable type.
        "version: 1\nvariables: { x: { type: float } }\nstart: a\nnodes:\n  a:\n    hangup: {}\n",
    ] {
        assert!(
            !errors(&v, &yaml(bad)).is_empty(),
            "schema accepted:\n{bad}"
        );
        assert!(
            ivrflow::scenario::load_str("t.yaml", bad).is_err(),
            "loader accepted:\n{bad}"
        );
    }
}
