//! The metrics an operator alerts on, from the real server after a real call: SIP requests
//! and responses by method, code and direction; INVITEs by scenario and result; the
//! recogniser's queue wait and decode time (a spoken answer); key → next prompt; trunk
//! state; the dialer's queue by campaign; webhook latency; build and process metrics.
//! And the shipped alert rules and Grafana dashboard: every metric they name exists, and
//! Prometheus's own `promtool` accepts the rules, passes their unit tests and parses every
//! dashboard query.

mod api_spec;
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::crm::{DataDir, Mode, Receiver, TOKEN, fast_config, free_tcp_port};
use common::uac::{Uac, wait_prompt};
use common::*;

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

/// The value of the sample `name{labels}` (exactly as written) in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Metric names (`ivrflow_*`, `process_*`) that have a sample in the exposition.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Metric names a PromQL text refers to.
fn referenced(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &expr[i..];
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_word && (rest.starts_with("ivrflow_") || rest.starts_with("process_")) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            i += name.len();
            out.insert(name);
        } else {
            i += 1;
        }
    }
    out
}

fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("prometheus/ivrflow-alerts.yml")).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("the rules are YAML");
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect()
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/ivrflow-dashboard.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Array(ts)) = m.get("targets") {
                    for t in ts {
                        if let Some(e) = t["expr"].as_str() {
                            out.push(e.to_owned());
                        }
                    }
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&doc, &mut out);
    out
}

/// Send `pcm` as paced 20 ms RTP packets.
fn speak(uac: &mut Uac, pcm: &[i16]) {
    let start = Instant::now();
    for (n, frame) in pcm.chunks(160).enumerate() {
        if frame.len() < 160 {
            break;
        }
        uac.send_audio(frame, None);
        let due = start + Duration::from_millis(20 * (n as u64 + 1));
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

#[test]
fn a_real_call_shows_in_the_metrics() {
    let crm = Receiver::start(Mode::Ok);
    let dir = DataDir::new("metrics");
    let cfg = dir.config(&format!(
        "{}trunks:\n  - {{ name: main, proxy: \"127.0.0.1:9\", keepalive: 0s }}\ncampaigns:\n  - {{ name: cart, trunk: main }}\n",
        fast_config(&crm.url, "2s", "[100ms]", 3)
    ));
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_API_TOKEN", TOKEN);
    let server = Server::start_with(
        cmd,
        sip,
        &[
            "--config",
            &cfg,
            "--data-dir",
            dir.arg(),
            "--api-listen",
            &addr.to_string(),
        ],
    );
    let api = api_spec::Api::new(addr);
    let scrape = || {
        let r = api.request("GET", "/metrics", None, None, &[]);
        assert_eq!(r.status, 200);
        assert!(r.text.ends_with("# EOF\n"), "an OpenMetrics exposition");
        r.text
    };

    // Before any call: the series operators alert on exist, at 0.
    let text = scrape();
    for series in [
        r#"ivrflow_invites_total{direction="outbound",scenario="cart-reminder",result="busy"}"#,
        r#"ivrflow_sip_responses_total{direction="in",method="REGISTER",code="401"}"#,
        r#"ivrflow_dialer_queue{campaign="cart",state="due"}"#,
        r#"ivrflow_trunk_keepalive_down{trunk="main"}"#,
        r#"ivrflow_calls_failed_total{reason="no_answer"}"#,
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series} in\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            r#"ivrflow_trunk_registration{trunk="main",state="unregistered"}"#
        ),
        Some(1.0)
    );

    // A queued campaign call (tomorrow: it stays in the queue).
    let r = api.post(
        "/v1/calls",
        r#"{"to":"15550000001","scenario":"order-confirmation","campaign":"cart","not_before":"2099-01-01T00:00:00Z"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text);

    // A call: the caller speaks into the question (recognised, not understood), then
    // presses 1; the robot thanks and hangs up.
    let mut uac = Uac::new(server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite("order-confirmation", "X-Order-Id: 4711\r\n", &offer);
    assert_eq!(
        uac.final_response(Duration::from_secs(10))
            .unwrap()
            .status(),
        Some(200)
    );
    uac.ack("order-confirmation");
    assert!(
        wait_prompt(&uac.rtp, 1, Duration::from_secs(20)),
        "the greeting never started"
    );
    // Speak once the call is in the question (the greeting before it does not listen).
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get("/v1/status").json["calls"][0]["node"] != "confirm" {
        assert!(
            Instant::now() < deadline,
            "the question never started\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The question's prompt may not take barge-in: speak, pause, and speak again until the
    // robot listens and a recognition is timed (bounded).
    let words = ivrflow::media::prompts::load_file(
        &repo().join("tests/fixtures/speech/human/en/hello.wav"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    while sample(&scrape(), "ivrflow_asr_decode_seconds_count").unwrap_or(0.0) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no recognition was timed\n{}",
            server.log_text()
        );
        speak(&mut uac, &words);
        speak(&mut uac, &[0i16; 12000]);
    }
    uac.send_key(1, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no BYE\n{}", server.log_text()));
        if let Some(m) = uac.recv(left)
            && m.method() == Some("BYE")
        {
            uac.ok_to(&m);
            break;
        }
    }
    assert!(
        crm.wait_until(Duration::from_secs(10), |h| {
            h.iter().any(|x| x.json["event"] == "call.completed")
        }),
        "call.completed never reached the CRM"
    );

    let text = scrape();
    let at_least = |series: &str, n: f64| {
        let v = sample(&text, series).unwrap_or_else(|| panic!("{series} missing in\n{text}"));
        assert!(v >= n, "{series} = {v}, expected at least {n}");
    };
    at_least(
        r#"ivrflow_sip_requests_total{direction="in",method="INVITE"}"#,
        1.0,
    );
    at_least(
        r#"ivrflow_sip_requests_total{direction="in",method="ACK"}"#,
        1.0,
    );
    at_least(
        r#"ivrflow_sip_requests_total{direction="out",method="BYE"}"#,
        1.0,
    );
    at_least(
        r#"ivrflow_sip_responses_total{direction="out",method="INVITE",code="200"}"#,
        1.0,
    );
    at_least(
        r#"ivrflow_sip_responses_total{direction="in",method="BYE",code="200"}"#,
        1.0,
    );
    assert_eq!(
        sample(
            &text,
            r#"ivrflow_invites_total{direction="inbound",scenario="order-confirmation",result="answered"}"#
        ),
        Some(1.0)
    );
    at_least("ivrflow_asr_decode_seconds_count", 1.0);
    at_least("ivrflow_asr_queue_wait_seconds_count", 1.0);
    at_least("ivrflow_dtmf_to_prompt_seconds_count", 1.0);
    at_least("ivrflow_webhook_event_latency_seconds_count", 1.0);
    assert_eq!(
        sample(
            &text,
            r#"ivrflow_dialer_queue{campaign="cart",state="waiting"}"#
        ),
        Some(1.0)
    );
    at_least("process_resident_memory_bytes", 1e6);
    at_least("process_open_fds", 3.0);
    at_least("process_threads", 2.0);
    let started = sample(&text, "process_start_time_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - started).abs() < 600.0, "start {started}, now {now}");
    assert!(
        text.contains(&format!(
            "ivrflow_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    // No personal data in label values.
    assert!(!text.contains("15551230000") && !text.contains("15550000001"));

    // Every metric the alerts and the dashboard use is exposed.
    let have = exposed(&text);
    for expr in alert_exprs().iter().chain(dashboard_exprs().iter()) {
        for name in referenced(expr) {
            let found = have.contains(&name)
                || ["_bucket", "_sum", "_count", "_total"]
                    .iter()
                    .any(|s| have.contains(&format!("{name}{s}")));
            assert!(found, "{name} (in `{expr}`) is not exposed");
        }
    }
}

#[test]
fn promtool_accepts_the_rules_and_the_dashboard_queries() {
    require_tool("promtool", "prometheus");
    let run = |args: &[&str], dir: &std::path::Path| {
        let o = Command::new("promtool")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run promtool");
        assert!(
            o.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let rules = deploy("prometheus");
    run(&["check", "rules", "ivrflow-alerts.yml"], &rules);
    run(&["test", "rules", "ivrflow-alerts.test.yml"], &rules);

    // The dashboard's queries, with Grafana's variables filled in, as recording rules:
    // promtool parses each one.
    let exprs = dashboard_exprs();
    assert!(exprs.len() > 30);
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*")
            .replace("$scenario", ".*")
            .replace("$job", "ivrflow");
        yaml.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = DataDir::new("promtool");
    std::fs::write(dir.path().join("dashboard.yml"), yaml).unwrap();
    run(&["check", "rules", "dashboard.yml"], dir.path());
}
