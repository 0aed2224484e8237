//! The CRM outbox against a real HTTP receiver that misbehaves: it fails the first attempts,
//! is down for a while, answers too slowly, answers 410, or never accepts. Events come from
//! real SIP calls (SIPp → `ivrflow serve`) and from `POST /v1/calls`. Every test checks that
//! each event arrives exactly once per webhook-id after de-duplication, in order per call,
//! and (in the first test) that every signature verifies with an independent implementation.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::crm::*;
use common::*;

struct Rig {
    server: Server,
    api: Api,
    sip: SocketAddr,
    _rtp: std::net::UdpSocket,
    rtp_port: u16,
}

impl Rig {
    fn start(dir: &DataDir, yaml: &str) -> Rig {
        let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let cfg = dir.config(yaml);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
        cmd.env("IVRFLOW_API_TOKEN", TOKEN)
            .env("IVRFLOW_WEBHOOK_SECRET", SECRET);
        let server = Server::start_with(
            cmd,
            sip,
            &[
                "--config",
                &cfg,
                "--data-dir",
                dir.arg(),
                "--api-listen",
                &api.to_string(),
                "--rtp-ports",
                "33000-33999",
                "--trunk",
                "sip:127.0.0.1:9",
            ],
        );
        let rtp = rtp_sink();
        let rtp_port = rtp.local_addr().unwrap().port();
        Rig {
            server,
            api: Api::new(api),
            sip,
            _rtp: rtp,
            rtp_port,
        }
    }

    fn calls(&self, scenario: &str, n: u32) {
        let out = sipp_calls(self.sip, scenario, n, 300, self.rtp_port);
        assert!(
            out.status.success(),
            "SIPp {scenario} failed ({:?})\n{}\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.log_text()
        );
    }

    /// Poll the API until `pred` holds for the JSON at `path` (bounded).
    fn wait_api(
        &self,
        path: &str,
        limit: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let r = self.api.get(path);
            if pred(&r.json) {
                return r.json;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "GET {path} never satisfied the condition; last: {:#}\nserver log:\n{}",
                r.json,
                self.server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn counts_by_id(hits: &[Hit]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for h in hits {
        *m.entry(h.id.clone()).or_insert(0) += 1;
    }
    m
}

fn types_of(by_call: &std::collections::BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = by_call.values().cloned().collect();
    v.sort();
    v
}

#[test]
fn retries_then_delivers_every_event_once_in_order_and_signed() {
    let rx = Receiver::start(Mode::FailFirst(2));
    let dir = DataDir::new("retry");
    let rig = Rig::start(
        &dir,
        &fast_config(&rx.url, "2s", "[100ms, 200ms, 300ms]", 5),
    );
    let queued: Vec<String> = (0..3)
        .map(|i| rig.api.queue_call(&format!("1555000000{i}"), None))
        .collect();
    rig.calls("uac_hangup.xml", 4);
    rig.calls("uac_488.xml", 1);
    let want = 3 + 4 * 3 + 1;

    let accepted = rx.wait_accepted(want, Duration::from_secs(30));
    assert_eq!(
        accepted.len(),
        want,
        "every event arrives\nserver log:\n{}",
        rig.server.log_text()
    );
    let by_call = check_order(&accepted);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut expected = vec![
        s(&["call.queued"]),
        s(&["call.queued"]),
        s(&["call.queued"]),
        s(&["call.started", "call.answered", "call.completed"]),
        s(&["call.started", "call.answered", "call.completed"]),
        s(&["call.started", "call.answered", "call.completed"]),
        s(&["call.started", "call.answered", "call.completed"]),
        s(&["call.failed"]),
    ];
    expected.sort();
    assert_eq!(types_of(&by_call), expected);
    for id in &queued {
        assert!(by_call.contains_key(id), "call.queued of {id}");
    }

    // Two refusals and one success per message, no more: exactly the schedule.
    let hits = rx.hits();
    for (id, n) in counts_by_id(&hits) {
        assert_eq!(n, 3, "{id}: 2 × 500 then 200");
    }
    // Signatures, checked by Python's hmac (every attempt, including refused ones).
    assert!(hits.iter().all(|h| h.signature.is_some()));
    let bad = python_verify(SECRET, &hits);
    assert!(bad.is_empty(), "signatures that do not verify: {bad:?}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for h in &hits {
        let ts: i64 = h
            .timestamp
            .parse()
            .expect("webhook-timestamp is Unix seconds");
        assert!((now - ts).abs() < 300, "timestamp {ts} is not now ({now})");
    }

    // Payloads.
    let completed: Vec<&Hit> = accepted
        .iter()
        .filter(|h| h.json["event"] == "call.completed")
        .collect();
    for c in &completed {
        assert_eq!(c.json["outcome"], "caller_hangup", "{:#}", c.json);
        assert_eq!(c.json["hangup_by"], "caller");
        assert_eq!(c.json["variables"]["order_id"], "4711");
        assert_eq!(c.json["direction"], "inbound");
        assert!(c.json["trace"].as_array().is_some_and(|t| !t.is_empty()));
    }
    let failed = accepted
        .iter()
        .find(|h| h.json["event"] == "call.failed")
        .unwrap();
    assert_eq!(failed.json["reason"], "rejected");
    assert_eq!(failed.json["sip_code"], 488);
    let started = accepted
        .iter()
        .find(|h| h.json["event"] == "call.started")
        .unwrap();
    assert_eq!(started.json["from"], "15551230000");
    assert_eq!(started.json["to"], "order-confirmation");

    // The inbound call is in the store, with its trace and delivery history.
    let call_ref = completed[0].json["call_ref"].as_str().unwrap();
    let call = rig.wait_api(
        &format!("/v1/calls/{call_ref}"),
        Duration::from_secs(5),
        |j| {
            j["trace"]["webhooks"]
                .as_array()
                .is_some_and(|w| w.len() == 3 && w.iter().all(|e| e["status"] == "delivered"))
        },
    );
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["state"], "completed");
    assert_eq!(call["outcome"], "caller_hangup");
    assert_eq!(call["sip_call_id"], completed[0].json["call_id"]);
    let codes: Vec<Vec<u64>> = call["trace"]["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["status_code"].as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(codes, vec![vec![500, 500, 200]; 3]);
    let sip: Vec<&str> = call["trace"]["sip"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(sip, vec!["invite", "answered", "bye"]);
    assert!(
        call["trace"]["prompts"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "the greeting was playing: {call:#}"
    );

    // Nothing left to deliver; the metrics saw it all.
    rig.wait_api("/v1/events?status=pending", Duration::from_secs(5), |j| {
        j["events"].as_array().is_some_and(|e| e.is_empty())
    });
    let m = rig.api.request("GET", "/metrics", None, None, &[]);
    assert_eq!(m.status, 200);
    assert!(
        m.text.contains(&format!(
            "ivrflow_webhook_deliveries_total{{result=\"delivered\"}} {want}"
        )),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("ivrflow_calls{state=\"completed\"} 4"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("ivrflow_outbox_events{status=\"pending\"} 0")
    );
}

#[test]
fn receiver_down_for_a_while_gets_everything_when_it_comes_back() {
    let rx = Receiver::down(Mode::Ok);
    let dir = DataDir::new("down");
    let rig = Rig::start(&dir, &fast_config(&rx.url, "1s", "[200ms]", 100));
    rig.api.queue_call("15550000009", None);
    rig.calls("uac_hangup.xml", 2);
    let want = 1 + 2 * 3;
    // Down: the heads of each call are retried, nothing gets through.
    rig.wait_api("/v1/events?status=pending", Duration::from_secs(10), |j| {
        j["events"].as_array().is_some_and(|e| {
            e.len() == want
                && e.iter()
                    .filter(|x| x["attempts"].as_u64() >= Some(2))
                    .count()
                    == 3
                && e.iter()
                    .filter(|x| x["attempts"].as_u64() >= Some(1))
                    .all(|x| x["last_error"].as_str().is_some_and(|s| !s.is_empty()))
        })
    });
    assert!(rx.hits().is_empty());
    rx.up();
    let accepted = rx.wait_accepted(want, Duration::from_secs(15));
    assert_eq!(accepted.len(), want, "{}", rig.server.log_text());
    check_order(&accepted);
    assert!(
        counts_by_id(&rx.hits()).values().all(|n| *n == 1),
        "a receiver that answers 200 gets each message once"
    );
}

#[test]
fn slow_answers_time_out_and_are_retried() {
    let rx = Receiver::start(Mode::SlowFirst(1, Duration::from_millis(1500)));
    let dir = DataDir::new("slow");
    let rig = Rig::start(&dir, &fast_config(&rx.url, "500ms", "[100ms]", 5));
    rig.calls("uac_hangup.xml", 1);
    let accepted = rx.wait_accepted(3, Duration::from_secs(20));
    assert_eq!(accepted.len(), 3, "{}", rig.server.log_text());
    check_order(&accepted);
    let call_ref = accepted[0].json["call_ref"].as_str().unwrap();
    let call = rig.wait_api(
        &format!("/v1/calls/{call_ref}"),
        Duration::from_secs(10),
        |j| {
            j["trace"]["webhooks"]
                .as_array()
                .is_some_and(|w| w.len() == 3 && w.iter().all(|e| e["status"] == "delivered"))
        },
    );
    // Each message arrived twice: the slow one (processed, answered too late) and the retry.
    let counts = counts_by_id(&rx.hits());
    assert!(counts.values().all(|n| *n == 2), "{counts:?}");
    for w in call["trace"]["webhooks"].as_array().unwrap() {
        let results: Vec<&str> = w["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["result"].as_str().unwrap())
            .collect();
        assert_eq!(results, vec!["timeout", "delivered"], "{w:#}");
    }
}

#[test]
fn gone_dead_letters_at_once_then_replay_by_api_and_cli() {
    let rx = Receiver::start(Mode::Gone);
    let dir = DataDir::new("gone");
    let rig = Rig::start(&dir, &fast_config(&rx.url, "1s", "[100ms]", 5));
    let queued = rig.api.queue_call("15550000001", None);
    rig.calls("uac_hangup.xml", 1);
    let dead = rig.wait_api("/v1/events?status=dead", Duration::from_secs(10), |j| {
        j["events"].as_array().is_some_and(|e| e.len() == 4)
    });
    assert_eq!(rx.hits().len(), 4, "410 stops retrying at once");
    let events = dead["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .all(|e| e["attempts"] == 1 && e["last_error"] == "410 Gone")
    );

    rx.set_mode(Mode::Ok);
    // Replay by API…
    let queued_event = events
        .iter()
        .find(|e| e["call_ref"] == queued.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = rig
        .api
        .post(&format!("/v1/events/{queued_event}/replay"), "");
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["status"], "pending");
    // …and by the CLI, on the live server's database.
    let started = events.iter().find(|e| e["type"] == "call.started").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_ivrflow"))
        .args(["events", "replay", &started, "--data-dir", dir.arg()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits_ok = rx.wait_until(Duration::from_secs(10), |h| {
        h.iter().filter(|x| x.accepted()).count() == 2
    });
    assert!(hits_ok, "{}", rig.server.log_text());
    let ok: Vec<String> = rx.accepted_once().into_iter().map(|h| h.id).collect();
    assert!(ok.contains(&queued_event) && ok.contains(&started));
    // The same webhook-id as the first time: a receiver that de-duplicates can tell.
    let first_ids: Vec<String> = rx.hits().iter().take(4).map(|h| h.id.clone()).collect();
    assert!(first_ids.contains(&queued_event));

    // Two are still dead; the CLI lists them.
    rig.wait_api("/v1/events?status=dead", Duration::from_secs(5), |j| {
        j["events"].as_array().is_some_and(|e| e.len() == 2)
    });
    let out = Command::new(env!("CARGO_BIN_EXE_ivrflow"))
        .args([
            "events",
            "list",
            "--status",
            "dead",
            "--json",
            "--data-dir",
            dir.arg(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut kinds: Vec<&str> = listed.iter().map(|e| e["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, vec!["call.answered", "call.completed"]);

    // Replaying what is not dead, or does not exist.
    let r = rig.api.post("/v1/events/msg_nope/replay", "");
    assert_eq!(r.status, 404);
    assert_eq!(r.json["field"], "id");
    let out = Command::new(env!("CARGO_BIN_EXE_ivrflow"))
        .args(["events", "replay", "msg_nope", "--data-dir", dir.arg()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn attempts_run_out_into_the_dead_letter_state() {
    let rx = Receiver::start(Mode::Status(503));
    let dir = DataDir::new("exhaust");
    let rig = Rig::start(&dir, &fast_config(&rx.url, "1s", "[100ms, 100ms]", 3));
    let id = rig.api.queue_call("15550000002", Some("exhaust-1"));
    let call = rig.wait_api(&format!("/v1/calls/{id}"), Duration::from_secs(10), |j| {
        j["trace"]["webhooks"][0]["status"] == "dead"
    });
    let w = &call["trace"]["webhooks"][0];
    assert_eq!(w["attempts"].as_array().unwrap().len(), 3);
    assert!(
        w["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 503") && e.contains("attempt 3 of 3")),
        "{w:#}"
    );
    assert_eq!(rx.hits().len(), 3);
    let m = rig.api.request("GET", "/metrics", None, None, &[]);
    assert!(
        m.text.contains("ivrflow_webhook_dead_letters_total 1"),
        "{}",
        m.text
    );
}
