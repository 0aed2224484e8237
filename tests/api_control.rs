//! The control API on the real binary: bearer-token authentication (401 on a missing or
//! wrong token), 4xx errors that name the field, the POST/GET/DELETE round trip of an
//! outbound call, idempotency keys, event listing, health and metrics, and the refusal to
//! start an API without a token. Every response is checked against docs/openapi.yaml
//! (`api_spec`).

mod api_spec;
mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::crm::*;
use common::*;

/// A trunk nobody answers (a port nothing listens on): queued calls can be accepted; the
/// tests give them a `not_before` in the future where dialling them would add events.
const PARKED_TRUNK: &str = "sip:127.0.0.1:9";

fn start(dir: &DataDir) -> (Server, api_spec::Api) {
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_API_TOKEN", TOKEN);
    let server = Server::start_with(
        cmd,
        sip,
        &[
            "--data-dir",
            dir.arg(),
            "--api-listen",
            &api.to_string(),
            "--trunk",
            PARKED_TRUNK,
        ],
    );
    (server, api_spec::Api::new(api))
}

#[test]
fn missing_or_wrong_token_is_401_and_errors_name_the_field() {
    let dir = DataDir::new("auth");
    let (_server, api) = start(&dir);
    let body = r#"{"to":"100","scenario":"order-confirmation"}"#;
    for (token, what) in [(None, "missing"), (Some("wrong-token-0123456789"), "wrong")] {
        for (method, path, b) in [
            ("POST", "/v1/calls", Some(body)),
            (
                "GET",
                "/v1/calls/00000000-0000-0000-0000-000000000000",
                None,
            ),
            ("DELETE", "/v1/calls/x", None),
            ("GET", "/v1/events?status=dead", None),
            ("POST", "/v1/events/msg_x/replay", None),
        ] {
            let r = api.request(method, path, token, b, &[]);
            assert_eq!(r.status, 401, "{what} token: {method} {path}: {}", r.text);
            assert_eq!(r.json["field"], "Authorization");
            assert!(
                r.json["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("token"))
            );
            assert_eq!(
                r.headers
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer")
            );
        }
    }
    // A token in another scheme is no token.
    let r = api.request(
        "GET",
        "/v1/events",
        None,
        None,
        &[("authorization", &format!("Basic {TOKEN}"))],
    );
    assert_eq!(r.status, 401);

    // Health and metrics are open.
    let r = api.request("GET", "/healthz", None, None, &[]);
    assert_eq!((r.status, r.json["status"].as_str()), (200, Some("ok")));
    let r = api.request("GET", "/metrics", None, None, &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    for needle in [
        "ivrflow_calls_live 0",
        "ivrflow_outbox_events{status=\"pending\"}",
        "ivrflow_rtp_packets_sent_total",
        "ivrflow_store_commit_seconds_bucket",
        "ivrflow_asr_decode_seconds_count",
    ] {
        assert!(r.text.contains(needle), "{needle} missing:\n{}", r.text);
    }

    // Bad requests: 4xx JSON naming the field.
    let cases: [(&str, u16, Option<&str>); 8] = [
        ("not json", 400, None),
        ("[1,2]", 400, None),
        (r#"{"scenario":"order-confirmation"}"#, 422, Some("to")),
        (r#"{"to":"100","scenario":"nope"}"#, 422, Some("scenario")),
        (
            r#"{"to":"100","scenario":"order-confirmation","variables":{"x":[1]}}"#,
            422,
            Some("variables.x"),
        ),
        (
            r#"{"to":"100","scenario":"order-confirmation","not_before":"soon"}"#,
            422,
            Some("not_before"),
        ),
        (
            r#"{"to":"100","scenario":"order-confirmation","priority":1}"#,
            422,
            Some("priority"),
        ),
        (
            r#"{"to":"","scenario":"order-confirmation"}"#,
            422,
            Some("to"),
        ),
    ];
    for (body, status, field) in cases {
        let r = api.post("/v1/calls", body);
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.json["field"].as_str(), field, "{body}: {}", r.text);
        assert!(r.json["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let r = api.get("/v1/events?status=lost");
    assert_eq!((r.status, r.json["field"].as_str()), (422, Some("status")));
    let r = api.get("/v1/events?limit=0");
    assert_eq!((r.status, r.json["field"].as_str()), (422, Some("limit")));
    // (An endpoint that does not exist is not in the contract: the unchecked client.)
    let r = api.inner.get("/v1/nothing");
    assert_eq!(r.status, 404);
    assert!(r.json["error"].is_string());
}

#[test]
fn create_get_cancel_round_trip_with_idempotency() {
    let dir = DataDir::new("roundtrip");
    let (_server, api) = start(&dir);
    let body = r#"{"to":"+15551230000","scenario":"order-confirmation","variables":{"order_id":"4711","total":12.5},"not_before":"2030-01-02T03:04:05Z","idempotency_key":"order-4711"}"#;
    let r = api.post("/v1/calls", body);
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/v1/calls/{id}")
    );
    assert_eq!(r.json["state"], "queued");
    assert_eq!(r.json["direction"], "outbound");

    let g = api.get(&format!("/v1/calls/{id}"));
    assert_eq!(g.status, 200);
    assert_eq!(g.json["to"], "+15551230000");
    assert_eq!(g.json["scenario"], "order-confirmation");
    assert_eq!(g.json["variables"]["order_id"], "4711");
    assert_eq!(g.json["variables"]["total"], "12.5");
    assert_eq!(g.json["not_before"], "2030-01-02T03:04:05.000Z");
    assert_eq!(g.json["idempotency_key"], "order-4711");
    let hooks = g.json["trace"]["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["type"], "call.queued");
    assert_eq!(
        hooks[0]["status"], "pending",
        "no webhook.url: kept, not sent"
    );

    // The same request again: the same call, 200, no second event.
    let again = api.post("/v1/calls", body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["id"], id.as_str());
    assert_eq!(again.headers["idempotent-replayed"], "true");
    // The key with a different request: 409 naming the key.
    let other = api.post(
        "/v1/calls",
        r#"{"to":"+15559999999","scenario":"order-confirmation","idempotency_key":"order-4711"}"#,
    );
    assert_eq!(other.status, 409, "{}", other.text);
    assert_eq!(other.json["field"], "idempotency_key");
    // The Idempotency-Key header works as the field does.
    let later =
        r#"{"to":"100","scenario":"order-confirmation","not_before":"2030-01-01T00:00:00Z"}"#;
    let h1 = api.request(
        "POST",
        "/v1/calls",
        Some(TOKEN),
        Some(later),
        &[("idempotency-key", "hdr-1")],
    );
    let h2 = api.request(
        "POST",
        "/v1/calls",
        Some(TOKEN),
        Some(later),
        &[("idempotency-key", "hdr-1")],
    );
    assert_eq!((h1.status, h2.status), (201, 200));
    assert_eq!(h1.json["id"], h2.json["id"]);

    let evs = api.get(&format!("/v1/events?call={id}"));
    let evs = evs.json["events"].as_array().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["payload"]["event"], "call.queued");
    assert_eq!(evs[0]["payload"]["call_ref"], id.as_str());
    assert_eq!(evs[0]["payload"]["to"], "+15551230000");

    // Cancel: queued → cancelled; a second cancel is a conflict; unknown ids are 404.
    let d = api.request("DELETE", &format!("/v1/calls/{id}"), Some(TOKEN), None, &[]);
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.json["state"], "cancelled");
    let g = api.get(&format!("/v1/calls/{id}"));
    assert_eq!(g.json["state"], "cancelled");
    assert!(g.json["ended_at"].is_string());
    let d2 = api.request("DELETE", &format!("/v1/calls/{id}"), Some(TOKEN), None, &[]);
    assert_eq!((d2.status, d2.json["field"].as_str()), (409, Some("id")));
    let nf = api.get("/v1/calls/11111111-2222-3333-4444-555555555555");
    assert_eq!((nf.status, nf.json["field"].as_str()), (404, Some("id")));
    let nf = api.request("DELETE", "/v1/calls/nope", Some(TOKEN), None, &[]);
    assert_eq!(nf.status, 404);
    // Replaying a pending event is a conflict.
    let ev_id = evs[0]["id"].as_str().unwrap();
    let r = api.post(&format!("/v1/events/{ev_id}/replay"), "");
    assert_eq!((r.status, r.json["field"].as_str()), (409, Some("id")));

    // Paging through events.
    let p1 = api.get("/v1/events?limit=1");
    assert_eq!(p1.json["events"].as_array().unwrap().len(), 1);
    let next = p1.json["next_after"].as_i64().expect("a next page");
    let p2 = api.get(&format!("/v1/events?limit=10&after={next}"));
    assert_eq!(p2.json["events"].as_array().unwrap().len(), 1);
    assert_eq!(p2.json["next_after"], serde_json::Value::Null);
}

#[test]
fn no_api_without_a_token() {
    let dir = DataDir::new("notoken");
    let api = format!("127.0.0.1:{}", free_tcp_port());
    let sip = format!("127.0.0.1:{}", free_udp_port());
    let run = |token: Option<&str>| {
        let mut cmd = Command::new("timeout");
        cmd.args(["10", env!("CARGO_BIN_EXE_ivrflow")])
            .args(["serve", "--sip-listen", &sip, "--data-dir", dir.arg()])
            .args(["--api-listen", &api])
            .env_remove("IVRFLOW_API_TOKEN")
            .env_remove("IVRFLOW_CONFIG");
        if let Some(t) = token {
            cmd.env("IVRFLOW_API_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let out = run(None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("IVRFLOW_API_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(Some("short"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));

    // Without --api-listen and without a token the server runs, API off.
    let sip2: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env_remove("IVRFLOW_API_TOKEN");
    // (Logged before the server answers OPTIONS, which start_with waits for.)
    let server = Server::start_with(cmd, sip2, &[]);
    assert!(server.log_text().contains("control API disabled"));
}

#[test]
fn without_a_trunk_outbound_calls_are_refused() {
    let dir = DataDir::new("notrunk");
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_API_TOKEN", TOKEN);
    let _server = Server::start_with(
        cmd,
        sip,
        &["--data-dir", dir.arg(), "--api-listen", &addr.to_string()],
    );
    let api = api_spec::Api::new(addr);
    let r = api.post(
        "/v1/calls",
        r#"{"to":"100","scenario":"order-confirmation"}"#,
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["field"], serde_json::Value::Null);
    assert!(
        r.json["error"].as_str().unwrap().contains("trunk"),
        "{}",
        r.text
    );
    // Nothing was stored, no event was made.
    assert_eq!(api.get("/v1/events").json["events"], serde_json::json!([]));
    assert_eq!(api.get("/v1/calls").json["calls"], serde_json::json!([]));
    // A bad request still gets its field named first.
    let r = api.post("/v1/calls", r#"{"to":"100","scenario":"nope"}"#);
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (422, Some("scenario"))
    );
}
