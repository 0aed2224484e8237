//! Logs as an operator's collector sees them, on the real server: `--log-format json` (and
//! `log.format: json`) gives one JSON object per line with the fields at the top level and
//! values printed for people (no `Some(…)`, no Rust debug lists); text logs carry no colour
//! codes when stderr is not a terminal.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::*;

fn sip() -> SocketAddr {
    format!("127.0.0.1:{}", free_udp_port()).parse().unwrap()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

fn check_json_log(text: &str) {
    let lines = json_lines(text);
    assert!(lines.len() > 3, "{text}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
        assert!(l["message"].is_string(), "{l}");
    }
    let loaded = lines
        .iter()
        .find(|l| l["message"] == "loaded")
        .expect("a `loaded` line");
    let scenarios = loaded["loaded"].as_str().unwrap();
    assert!(
        scenarios.contains("order-confirmation") && !scenarios.contains('['),
        "{scenarios}"
    );
    let listening = lines
        .iter()
        .find(|l| l["message"] == "SIP listening (UDP)")
        .unwrap();
    assert!(
        listening["local_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(!text.contains("Some("), "Debug-printed values in\n{text}");
}

#[test]
fn json_logs_from_the_flag_and_from_the_config() {
    let server = Server::start(sip(), &["--log-format", "json"]);
    check_json_log(&server.log_text());
    drop(server);

    let dir = crm::DataDir::new("logjson");
    let cfg = dir.config("log: { format: json }\n");
    let server = Server::start(sip(), &["--config", &cfg, "--data-dir", dir.arg()]);
    check_json_log(&server.log_text());
}

#[test]
fn text_logs_have_no_colour_codes_off_a_terminal() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env_remove("NO_COLOR");
    let server = Server::start_with(cmd, sip(), &[]);
    let text = server.log_text();
    assert!(text.contains("SIP listening (UDP)"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escapes in\n{text}");
    assert!(!text.contains("Some("), "Debug-printed values in\n{text}");
}
