//! Logs as an operator's collector sees them, on the real server: `--log-format json` (and
//! `log.format: json`) gives one JSON object per line with the fields at the top level and
//! values printed for people (no `Some(…)`, no Rust debug lists); text logs carry no colour
//! codes when stderr is not a terminal; every line the engine writes about a call carries
//! the call's span (its SIP Call-ID and `call_ref`).

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

/// Issue 17.3: a real call (SIPp presses 1) in JSON logs — the lines the engine writes while
/// it works on the call carry the `call` span with the SIP Call-ID, and once the call has
/// its `call_ref`, that too; the completed line names both.
#[test]
fn lines_about_a_call_carry_its_call_id_and_call_ref() {
    require_tool("sipp", "sip-tester");
    let server = Server::start(sip(), &["--log-format", "json"]);
    let sink = crm::rtp_sink();
    let out = crm::sipp_calls(
        server.sip,
        "uac_dtmf.xml",
        1,
        300,
        sink.local_addr().unwrap().port(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let lines = json_lines(&server.log_text());
        if lines.iter().any(|l| l["message"] == "call completed")
            || std::time::Instant::now() > deadline
        {
            break lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let completed = lines
        .iter()
        .find(|l| l["message"] == "call completed")
        .unwrap_or_else(|| panic!("no `call completed` line"));
    let span = &completed["span"];
    assert_eq!(span["name"], "call", "{completed}");
    let call_id = span["call_id"]
        .as_str()
        .expect("the span names the Call-ID");
    assert_eq!(completed["call_id"].as_str(), Some(call_id));
    let call_ref = span["call_ref"]
        .as_str()
        .expect("the span names the call_ref");
    assert_eq!(call_ref.len(), 36, "a UUID: {call_ref}");
    // The answer line is in the span too (before the call_ref is minted).
    let answered = lines
        .iter()
        .find(|l| l["message"] == "answered")
        .expect("an `answered` line");
    assert_eq!(answered["span"]["call_id"].as_str(), Some(call_id));
}
