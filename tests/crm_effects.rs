//! Scenario effects that reach the CRM, end to end over real SIP: a `webhook` node looks the
//! caller up (a real HTTP server answers; the answer fills a variable), an `sms` node and a
//! `notify` node become `sms.requested` and `dnc.requested` in the outbox, in call order;
//! and when the look-up fails the scenario takes its fallback path.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::crm::*;
use common::*;

const SCENARIO: &str = r#"version: 1
name: crm-effects
description: Looks the caller up in the CRM, asks for an SMS, records a do-not-call request.
languages: [en]
variables:
  caller: { type: string, default: "" }
  customer_name: { type: string, default: "" }
  language: { type: string, default: en }
start: lookup
nodes:
  lookup:
    webhook:
      name: customer-lookup
      url: "LOOKUP_URL"
      body: { phone: "${caller}" }
      timeout: 2s
      store: { customer_name: customer.name }
    next: sms
    on: { error: fallback }
  sms:
    sms: { template: order-confirmed, data: { name: "${customer_name}" } }
    next: dnc
  dnc:
    notify: { event: dnc.requested, data: { number: "${caller}", reason: asked } }
    next: bye
  bye:
    hangup: { outcome: done, play: [goodbye] }
  fallback:
    hangup: { outcome: lookup_failed, play: [goodbye] }
"#;

/// One call through the scenario; returns the `want` events the CRM got.
fn run_call(lookup_url: &str, rx: &Receiver, tag: &str, want: usize) -> Vec<Hit> {
    let dir = DataDir::new(tag);
    let scenarios = dir.0.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("crm-effects.yaml"),
        SCENARIO.replace("LOOKUP_URL", lookup_url),
    )
    .unwrap();
    let cfg = dir.config(&fast_config(&rx.url, "2s", "[100ms]", 5));
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_WEBHOOK_SECRET", SECRET);
    let server = Server::start_with(
        cmd,
        sip,
        &[
            "--config",
            &cfg,
            "--data-dir",
            dir.arg(),
            "--scenarios",
            scenarios.to_str().unwrap(),
            "--rtp-ports",
            "35000-35999",
        ],
    );
    let rtp = rtp_sink();
    let out = sipp_calls_to(
        sip,
        "crm-effects",
        "uac_listen.xml",
        1,
        0,
        rtp.local_addr().unwrap().port(),
    );
    assert!(
        out.status.success(),
        "SIPp failed\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        server.log_text()
    );
    let got = rx.wait_accepted(want, Duration::from_secs(10));
    assert_eq!(got.len(), want, "{}", server.log_text());
    got
}

#[test]
fn lookup_fills_variables_and_notifications_reach_the_crm_in_order() {
    let rx = Receiver::start(Mode::Ok);
    let hits = run_call(&rx.lookup_url(), &rx, "effects", 5);
    let by_call = check_order(&hits);
    let kinds: Vec<&Vec<String>> = by_call.values().collect();
    assert_eq!(
        kinds,
        vec![&vec![
            "call.started".to_owned(),
            "call.answered".to_owned(),
            "sms.requested".to_owned(),
            "dnc.requested".to_owned(),
            "call.completed".to_owned(),
        ]]
    );
    let sms = &hits[2].json;
    assert_eq!(sms["data"]["template"], "order-confirmed");
    assert_eq!(sms["data"]["data"]["name"], "Ann Lee", "{sms:#}");
    assert_eq!(sms["from"], "15551230000");
    assert_eq!(sms["scenario"], "crm-effects");
    let dnc = &hits[3].json;
    assert_eq!(dnc["data"]["number"], "15551230000");
    assert_eq!(dnc["data"]["reason"], "asked");
    let done = &hits[4].json;
    assert_eq!(done["outcome"], "done");
    assert_eq!(done["variables"]["customer_name"], "Ann Lee");
    assert_eq!(
        done["path"],
        serde_json::json!(["lookup", "sms", "dnc", "bye"])
    );

    // The look-up itself: one signed POST with the caller's number.
    let lookups = rx.lookups();
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].json["phone"], "15551230000");
    assert!(python_verify(SECRET, &lookups).is_empty());
    assert!(python_verify(SECRET, &rx.hits()).is_empty());
}

#[test]
fn a_failed_lookup_takes_the_fallback_path() {
    let rx = Receiver::start(Mode::Ok);
    // Nothing listens on the discard port: the request fails at once.
    let hits = run_call("http://127.0.0.1:9/lookup", &rx, "fallback", 3);
    let done = hits
        .iter()
        .find(|h| h.json["event"] == "call.completed")
        .unwrap();
    assert_eq!(done.json["outcome"], "lookup_failed");
    assert_eq!(done.json["path"], serde_json::json!(["lookup", "fallback"]));
    assert!(rx.lookups().is_empty());
}
