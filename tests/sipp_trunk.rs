//! Outbound calls over a SIP trunk, end to end against SIPp on loopback as the trunk:
//! API request in → REGISTER (challenged) → INVITE (challenged) → the callee answers and
//! presses a key → the scenario runs → webhook out. Also: a busy callee retried by the
//! campaign's policy, a callee that never answers (CANCEL at the ring timeout), the
//! do-not-call list checked at dial time, and an in-call opt-out that blocks the next call.
//!
//! SIPp verifies our digest answers itself (`verifyauth`), so a wrong digest would be a 403
//! and the call would fail. Every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::str::FromStr;

use serde_json::Value;

use common::crm::*;
use common::*;

/// SIPp playing the trunk; killed on drop.
struct Trunk {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Trunk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Trunk {
    /// Start SIPp with a tests/sipp scenario, `{{name}}` placeholders filled in.
    fn start(scenario: &str, subs: &[(&str, &str)]) -> Trunk {
        require_tool("sipp", "sip-tester");
        let port = free_udp_port();
        let dir = std::env::temp_dir().join(format!("ivrflow-trunk-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut xml = std::fs::read_to_string(fixture(&format!("sipp/{scenario}"))).unwrap();
        for (k, v) in subs {
            xml = xml.replace(&format!("{{{{{k}}}}}"), v);
        }
        assert!(!xml.contains("{{"), "unfilled placeholder in {scenario}");
        let file = dir.join(scenario);
        std::fs::write(&file, xml).unwrap();
        // SIPp itself is the child (killed on drop); `-timeout` bounds it if this process
        // dies without dropping it.
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(&file)
            .args(["-timeout", "150"])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &free_udp_port().to_string()])
            .args(["-nostdin", "-trace_err", "-trace_msg"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
            .spawn()
            .expect("start sipp");
        let mut trunk = Trunk {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            dir,
        };
        trunk.wait_bound(port);
        trunk
    }

    /// Wait (≤ 15 s) until SIPp has bound its UDP port.
    fn wait_bound(&mut self, port: u16) {
        let hex = format!(":{port:04X} ");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
            if table.lines().any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| format!("{local} ").ends_with(&hex))
            }) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "SIPp exited ({status}) before binding 127.0.0.1:{port}: {}",
                    std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "SIPp did not bind 127.0.0.1:{port} within 15 s: {}",
            std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
        );
    }

    /// SIPp's message trace so far (every message it sent and received).
    fn messages(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with("_messages.log") || name.ends_with("_errors.log") {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    /// How many times SIPp received a request starting with `method`.
    fn received(&self, method: &str) -> usize {
        let log = self.messages();
        log.split("message received")
            .skip(1)
            .filter(|m| {
                m.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('['))
                    .is_some_and(|l| l.starts_with(&format!("{method} ")))
            })
            .count()
    }
}

fn serve(dir: &DataDir, rx: &Receiver, yaml: &str, trunk_flag: Option<&str>) -> (Server, Api) {
    let cfg = dir.config(&format!(
        "{}{yaml}",
        fast_config(&rx.url, "2s", "[200ms]", 5)
    ));
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_API_TOKEN", TOKEN);
    let api_s = api.to_string();
    let mut args = vec![
        "--config",
        &cfg,
        "--data-dir",
        dir.arg(),
        "--api-listen",
        &api_s,
    ];
    if let Some(t) = trunk_flag {
        args.extend(["--trunk", t]);
    }
    let server = Server::start_with(cmd, sip, &args);
    (server, Api::new(api))
}

/// Events of `kind` for `call_ref` that the CRM accepted.
fn events_of(rx: &Receiver, call_ref: &str, kind: &str) -> Vec<Value> {
    rx.accepted_once()
        .into_iter()
        .filter(|h| h.json["call_ref"] == call_ref && h.json["event"] == kind)
        .map(|h| h.json)
        .collect()
}

fn wait_event(rx: &Receiver, server: &Server, call_ref: &str, kind: &str, n: usize) -> Vec<Value> {
    let ok = rx.wait_until(Duration::from_secs(45), |hits| {
        hits.iter()
            .filter(|h| h.accepted() && h.json["call_ref"] == call_ref && h.json["event"] == kind)
            .count()
            >= n
    });
    assert!(
        ok,
        "no {kind} (×{n}) for {call_ref}; got {:?}\nserver log tail:\n{}",
        rx.accepted_once()
            .iter()
            .map(|h| (h.json["event"].clone(), h.json["call_ref"].clone()))
            .collect::<Vec<_>>(),
        tail(&server.log_text())
    );
    events_of(rx, call_ref, kind)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn queue(api: &Api, body: &str) -> String {
    let r = api.post("/v1/calls", body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_owned()
}

#[test]
fn order_confirmation_and_cart_reminder_run_outbound_through_a_challenging_trunk() {
    let trunk = Trunk::start(
        "uas_trunk.xml",
        &[
            ("user", "shop"),
            ("password", "s3cret-pass"),
            ("pause_ms", "12000"),
            ("dtmf_pcap", "/usr/share/sip-tester/dtmf_2833_1.pcap"),
        ],
    );
    let rx = Receiver::start(Mode::Ok);
    let dir = DataDir::new("trunk-flows");
    let flag = format!("sip:shop:s3cret-pass@{}", trunk.addr);
    let (server, api) = serve(&dir, &rx, "", Some(&flag));

    // The registrar challenged and then accepted our digest.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut trunks = Value::Null;
    while Instant::now() < deadline {
        trunks = api.get("/v1/trunks").json;
        if trunks["trunks"][0]["registration"] == "registered" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        trunks["trunks"][0]["registration"],
        "registered",
        "{trunks}\n{}",
        trunk.messages()
    );
    assert_eq!(trunks["trunks"][0]["last_status"], 200);
    assert_eq!(
        trunks["trunks"][0]["expires_s"], 120,
        "the registrar's grant"
    );

    // The order confirmation: the callee presses 1, the order is confirmed.
    let order = queue(
        &api,
        r#"{"to":"100","scenario":"order-confirmation","variables":{"order_id":"4711"}}"#,
    );
    let done = wait_event(&rx, &server, &order, "call.completed", 1);
    assert_eq!(done[0]["outcome"], "confirmed", "{}", done[0]);
    assert_eq!(done[0]["direction"], "outbound");
    assert_eq!(done[0]["variables"]["order_id"], "4711");
    let kinds: Vec<Value> = rx
        .accepted_once()
        .iter()
        .filter(|h| h.json["call_ref"] == order)
        .map(|h| h.json["event"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "call.queued",
            "call.started",
            "call.answered",
            "call.completed"
        ],
        "one event of each, in order"
    );

    // The cart reminder: the callee presses 1 (yes) and gets the link by SMS.
    let cart = queue(
        &api,
        r#"{"to":"101","scenario":"cart-reminder","variables":{"discount":15,"caller":"101"}}"#,
    );
    let done = wait_event(&rx, &server, &cart, "call.completed", 1);
    assert_eq!(done[0]["outcome"], "ordering", "{}", done[0]);
    let sms = events_of(&rx, &cart, "sms.requested");
    assert_eq!(sms.len(), 1, "the SMS with the cart link");

    // The call resources say how they went.
    let c = api.get(&format!("/v1/calls/{order}")).json;
    assert_eq!(c["state"], "completed");
    assert_eq!(c["dial_attempts"], 1);
    assert!(c["sip_call_id"].as_str().is_some_and(|s| !s.is_empty()));

    // On the wire: one challenged and one authorised INVITE per call, each To the dialled
    // number at the trunk.
    let log = trunk.messages();
    assert_eq!(trunk.received("INVITE"), 4, "{log}");
    assert!(
        log.contains(&format!("INVITE sip:100@{}", trunk.addr)),
        "{log}"
    );
    assert!(log.contains("Authorization: Digest"), "{log}");
    assert!(log.contains("qop=auth"), "{log}");
    assert!(
        !log.contains("403 Forbidden"),
        "a digest was refused:\n{log}"
    );
}

#[test]
fn busy_is_retried_by_policy_no_answer_is_cancelled_and_dnc_blocks_dialling() {
    let busy = Trunk::start("uas_trunk_busy.xml", &[]);
    let silent = Trunk::start("uas_trunk_noanswer.xml", &[]);
    let optout = Trunk::start(
        "uas_trunk.xml",
        &[
            ("user", "shop"),
            ("password", "pw-optout-123"),
            ("pause_ms", "12000"),
            ("dtmf_pcap", "/usr/share/sip-tester/dtmf_2833_9.pcap"),
        ],
    );
    let rx = Receiver::start(Mode::Ok);
    let dir = DataDir::new("trunk-rules");
    let yaml = format!(
        "trunks:\n\
         \x20 - {{ name: busy, proxy: \"{b}\", keepalive: 0s }}\n\
         \x20 - {{ name: silent, proxy: \"{s}\", ring_timeout: 2s, keepalive: 0s }}\n\
         \x20 - {{ name: optout, proxy: \"{o}\", username: shop, password: pw-optout-123 }}\n\
         campaigns:\n\
         \x20 - {{ name: busy-retry, trunk: busy, retry: {{ busy: {{ every: 1s, max_attempts: 2 }} }} }}\n\
         \x20 - {{ name: ring, trunk: silent }}\n\
         \x20 - {{ name: cart, trunk: optout }}\n\
         \x20 - {{ name: consent-only, trunk: busy, require_consent: true }}\n",
        b = busy.addr,
        s = silent.addr,
        o = optout.addr
    );
    let (server, api) = serve(&dir, &rx, &yaml, None);

    // Busy twice: the first failure says when the retry is, the second is final.
    let id = queue(
        &api,
        r#"{"to":"200","scenario":"order-confirmation","campaign":"busy-retry"}"#,
    );
    let failed = wait_event(&rx, &server, &id, "call.failed", 2);
    assert_eq!(failed[0]["reason"], "busy");
    assert_eq!(failed[0]["sip_code"], 486);
    assert_eq!(failed[0]["attempt"], 1);
    assert_eq!(failed[0]["final"], false);
    assert!(failed[0]["retry_at"].is_string(), "{}", failed[0]);
    assert_eq!(failed[1]["attempt"], 2);
    assert_eq!(failed[1]["final"], true);
    assert_eq!(busy.received("INVITE"), 2);
    let c = api.get(&format!("/v1/calls/{id}")).json;
    assert_eq!(
        (c["state"].as_str(), c["dial_attempts"].as_u64()),
        (Some("failed"), Some(2))
    );

    // Nobody answers: CANCEL at the 2 s ring timeout, no answer, no retry by default.
    let id = queue(
        &api,
        r#"{"to":"300","scenario":"order-confirmation","campaign":"ring"}"#,
    );
    let failed = wait_event(&rx, &server, &id, "call.failed", 1);
    assert_eq!(failed[0]["reason"], "no_answer", "{}", failed[0]);
    assert_eq!(failed[0]["sip_code"], Value::Null);
    assert_eq!(silent.received("CANCEL"), 1, "{}", silent.messages());

    // Consent required and missing: never dialled.
    let id = queue(
        &api,
        r#"{"to":"201","scenario":"order-confirmation","campaign":"consent-only"}"#,
    );
    let failed = wait_event(&rx, &server, &id, "call.failed", 1);
    assert_eq!(failed[0]["reason"], "blocked");

    // The do-not-call list, set by the API, is checked at dial time.
    let r = api.request("PUT", "/v1/dnc/+1%20555-0100", Some(TOKEN), None, &[]);
    assert_eq!(r.status, 201, "{}", r.text);
    let id = queue(
        &api,
        r#"{"to":"+15550100","scenario":"order-confirmation","campaign":"busy-retry"}"#,
    );
    let failed = wait_event(&rx, &server, &id, "call.failed", 1);
    assert_eq!(failed[0]["reason"], "blocked");
    assert_eq!(
        busy.received("INVITE"),
        2,
        "a listed number is never dialled"
    );

    // In-call opt-out: the callee presses 9 in the cart reminder; the number is listed and
    // the next call to it is not placed.
    let id = queue(
        &api,
        r#"{"to":"400","scenario":"cart-reminder","campaign":"cart","variables":{"caller":"400"}}"#,
    );
    let done = wait_event(&rx, &server, &id, "call.completed", 1);
    assert_eq!(done[0]["outcome"], "do_not_call", "{}", done[0]);
    assert_eq!(events_of(&rx, &id, "dnc.requested").len(), 1);
    let listed = api.get("/v1/dnc").json;
    assert!(
        listed["numbers"]
            .as_array()
            .is_some_and(|n| n.iter().any(|x| x == "400")),
        "{listed}"
    );
    let again = queue(
        &api,
        r#"{"to":"400","scenario":"cart-reminder","campaign":"cart"}"#,
    );
    let failed = wait_event(&rx, &server, &again, "call.failed", 1);
    assert_eq!(failed[0]["reason"], "blocked");
    assert_eq!(
        optout.received("INVITE"),
        2,
        "only the first call was placed"
    );
}

#[test]
fn a_restart_loses_no_queued_call() {
    let busy = Trunk::start("uas_trunk_busy.xml", &[]);
    let rx = Receiver::start(Mode::Ok);
    let dir = DataDir::new("trunk-restart");
    let yaml = format!(
        "trunks:\n  - {{ name: main, proxy: \"{}\", keepalive: 0s }}\n",
        busy.addr
    );
    // Whole milliseconds: the store keeps not_before to the millisecond.
    let due_ms = jiff::Timestamp::now().as_millisecond() + 5_000;
    let not_before = jiff::Timestamp::from_millisecond(due_ms)
        .unwrap()
        .to_string();
    let id = {
        let (server, api) = serve(&dir, &rx, &yaml, None);
        let id = queue(
            &api,
            &format!(
                r#"{{"to":"500","scenario":"order-confirmation","not_before":"{not_before}"}}"#
            ),
        );
        // SIGKILL before the call is due.
        drop(server);
        id
    };
    assert_eq!(busy.received("INVITE"), 0, "dialled before its time");
    let (server, _api) = serve(&dir, &rx, &yaml, None);
    let failed = wait_event(&rx, &server, &id, "call.failed", 1);
    assert_eq!(failed[0]["reason"], "busy", "{}", failed[0]);
    assert_eq!(
        busy.received("INVITE"),
        1,
        "placed once, by the restarted server"
    );
    let started = events_of(&rx, &id, "call.started");
    assert_eq!(started.len(), 1);
    let at = jiff::Timestamp::from_str(started[0]["occurred_at"].as_str().unwrap()).unwrap();
    let due = jiff::Timestamp::from_str(&not_before).unwrap();
    assert!(at >= due, "started at {at}, due at {due}");
}
