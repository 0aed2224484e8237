//! Command-line details operators and CI rely on, on the real binary: repeatable simulate
//! flags, `serve --help` naming the secret environment variables, `test --junit`, and
//! `validate --format json`.

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

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ivrflow-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn noise_and_webhook_timeout_repeat_as_documented() {
    let o = ivrflow(&[
        "simulate",
        "scenarios/order-confirmation.yaml",
        "--var",
        "order_id=1",
        "--noise",
        "--noise",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.matches("caller says something unintelligible").count(),
        2,
        "{out}"
    );
    let o = ivrflow(&[
        "simulate",
        "scenarios/inbound-menu.yaml",
        "--webhook-timeout",
        "--webhook-timeout",
        "--dtmf",
        "1",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn serve_help_names_the_secret_variables() {
    let o = ivrflow(&["serve", "--help"]);
    assert!(o.status.success(), "{}", show(&o));
    let help = String::from_utf8_lossy(&o.stdout);
    for v in [
        "IVRFLOW_API_TOKEN",
        "IVRFLOW_WEBHOOK_SECRET",
        "IVRFLOW_TRUNK_PASSWORD",
        "--log-format",
        "/etc/ivrflow/ivrflow.yaml",
    ] {
        assert!(help.contains(v), "{v} missing from serve --help:\n{help}");
    }
}

/// Elements named `tag` in `xml`, with their attribute text.
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    xml.split(&format!("<{tag} "))
        .skip(1)
        .map(|rest| rest.split('>').next().unwrap_or(""))
        .collect()
}

fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = if element.starts_with(&key) {
        key.len()
    } else {
        element.find(&format!(" {key}"))? + key.len() + 1
    };
    element[start..].split('"').next()
}

#[test]
fn test_writes_junit_for_passing_and_failing_calls() {
    let dir = tmp("junit");
    let report = dir.join("report.xml");
    let o = ivrflow(&["test", "scenarios/", "--junit", report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let xml = std::fs::read_to_string(&report).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    let out = String::from_utf8_lossy(&o.stdout);
    // "5 scenario(s), 41 call(s): 41 passed, 0 failed"
    let calls: usize = out
        .lines()
        .find(|l| l.contains(" call(s): "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a summary line");
    assert_eq!(elements(&xml, "testcase").len(), calls);
    assert_eq!(elements(&xml, "testsuite").len(), 5);
    let top = elements(&xml, "testsuites")[0];
    assert_eq!(attr(top, "tests"), Some(calls.to_string().as_str()));
    assert_eq!(attr(top, "failures"), Some("0"));
    assert!(!xml.contains("<failure"));

    // A script whose expectation is wrong: one failure, named, with what differed.
    std::fs::copy(
        root().join("scenarios/order-confirmation.yaml"),
        dir.join("oc.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("oc.test.yaml"),
        "calls:\n  - name: wrong <outcome> & more\n    variables: { order_id: \"1\" }\n    steps:\n      - press: \"1\"\n    expect: { outcome: cancelled }\n",
    )
    .unwrap();
    let report2 = dir.join("failing.xml");
    let o = Command::new(env!("CARGO_BIN_EXE_ivrflow"))
        .args(["test", "oc.yaml", "--junit", "failing.xml", "--audio"])
        .arg(root().join("audio"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let xml = std::fs::read_to_string(&report2).unwrap();
    assert_eq!(elements(&xml, "failure").len(), 1, "{xml}");
    let case = elements(&xml, "testcase")[0];
    assert_eq!(attr(case, "name"), Some("wrong &lt;outcome&gt; &amp; more"));
    assert!(xml.contains("cancelled"), "{xml}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_speaks_json() {
    let o = ivrflow(&["validate", "--format", "json", "scenarios/"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["files"].as_array().unwrap().len(), 5);
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["ok"] == true)
    );

    let broken = "tests/fixtures/scenarios/order-confirmation-broken.yaml";
    let text = ivrflow(&["validate", broken]);
    let o = ivrflow(&["validate", "--format", "json", broken]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let diags = v["files"][0]["diagnostics"].as_array().unwrap();
    assert!(!diags.is_empty());
    assert!(v["errors"].as_u64().unwrap() > 0);
    // The same problems, at the same places, as the text output.
    let text = String::from_utf8_lossy(&text.stdout);
    for d in diags.iter().filter(|d| d["severity"] == "error") {
        let at = format!(
            "{broken}:{}:{}: error: {}",
            d["line"],
            d["column"],
            d["message"].as_str().unwrap()
        );
        assert!(text.contains(&at), "{at} not in\n{text}");
        assert!(
            d["kind"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
        );
    }
    assert!(Path::new(broken).exists() || root().join(broken).exists());
}
