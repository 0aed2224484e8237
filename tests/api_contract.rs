//! The API contract as code (issue 17.4): docs/openapi.yaml is sound, the checker every
//! API test goes through (`api_spec`) catches drift, and every documented operation —
//! success and error answers alike — answers as documented on the real server, reached by
//! this test at least once.

mod api_spec;
mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use api_spec::contract;
use common::crm::{DataDir, Mode, Receiver, TOKEN, fast_config, free_tcp_port};
use common::uac::Uac;
use common::*;

#[test]
fn the_document_is_sound() {
    let c = contract();
    let doc = c.doc();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(all.len() > 20);
    for r in all {
        assert!(
            doc.pointer(r.trim_start_matches('#')).is_some(),
            "unresolved {r}"
        );
    }
    // The document the server serves is this file.
    assert_eq!(ivrflow::api::openapi(), doc);
    // Every operation has an id and answers 2xx somehow.
    for (m, p) in c.operations() {
        let op = &doc["paths"][&p][m.to_lowercase()];
        assert!(op["operationId"].is_string(), "{m} {p}: no operationId");
        assert!(
            op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with('2')),
            "{m} {p}: no success response"
        );
    }
}

#[test]
fn the_checker_catches_drift() {
    let c = contract();
    let json_ct = Some("application/json");
    let err = |body: &str| json!({"error": "x", "field": null}).to_string() + body;
    assert!(
        c.check("GET", "/v1/calls/abc", 404, json_ct, &err(""))
            .is_ok()
    );
    // A field the document does not know.
    let extra = json!({"error": "x", "field": null, "hint": "y"}).to_string();
    assert!(
        c.check("GET", "/v1/calls/abc", 404, json_ct, &extra)
            .is_err()
    );
    // A required field missing.
    assert!(
        c.check("GET", "/v1/calls/abc", 404, json_ct, r#"{"error":"x"}"#)
            .is_err()
    );
    // A status the operation does not document.
    assert!(
        c.check("GET", "/v1/trunks", 404, json_ct, &err(""))
            .unwrap_err()
            .contains("not documented")
    );
    // An operation or path the document does not have.
    assert!(
        c.check("PATCH", "/v1/calls/abc", 200, json_ct, "{}")
            .is_err()
    );
    assert!(c.check("GET", "/v1/nothing", 200, json_ct, "{}").is_err());
    // A failure reason outside the enum.
    let summary = |reason: &str| {
        json!({"calls": [{
            "id": "c", "direction": "outbound", "state": "failed", "scenario": "s", "to": "1",
            "from": null, "campaign": null, "outcome": null,
            "failure": {"reason": reason, "sip_code": null}, "dial_attempts": 1,
            "sip_call_id": null, "node": "local", "not_before": null,
            "created_at": "2026-01-01T00:00:00.000Z", "started_at": null, "answered_at": null,
            "ended_at": null, "duration_ms": null
        }], "next_after": null})
        .to_string()
    };
    for ok in ["shutdown", "no_ack", "max_duration", "blocked", "busy"] {
        let r = c.check("GET", "/v1/calls?state=failed", 200, json_ct, &summary(ok));
        assert!(r.is_ok(), "{ok}: {r:?}");
    }
    assert!(
        c.check("GET", "/v1/calls", 200, json_ct, &summary("exploded"))
            .is_err()
    );
    // The wrong media type.
    assert!(
        c.check("GET", "/healthz", 200, Some("text/plain"), "ok")
            .is_err()
    );
}

fn login_cookie(base: &str, token: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = client
            .post(format!("{base}/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
            .await
            .unwrap();
        let cookie = r.headers().get("set-cookie")?.to_str().ok()?.to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains(token), "the cookie is not the token");
        Some(cookie.split(';').next()?.to_owned())
    })
}

/// Poll `path` until `pred` holds (bounded).
fn wait(api: &api_spec::Api, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = api.get(path);
        if pred(&r.json) {
            return r.json;
        }
        assert!(Instant::now() < deadline, "{path}: {}", r.text);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_operation_answers_as_documented() {
    let crm = Receiver::start(Mode::Status(500));
    let dir = DataDir::new("contract");
    let cfg = dir.config(&format!(
        "{}trunks:\n  - {{ name: main, proxy: \"127.0.0.1:9\", keepalive: 0s }}\ncampaigns:\n  - {{ name: cart, trunk: main }}\n",
        fast_config(&crm.url, "2s", "[100ms]", 1)
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
    let base = format!("http://{addr}");

    // Open endpoints.
    assert_eq!(api.request("GET", "/healthz", None, None, &[]).status, 200);
    let m = api.request("GET", "/metrics", None, None, &[]);
    assert_eq!(m.status, 200);
    let spec = api.request("GET", "/openapi.json", None, None, &[]);
    assert_eq!(&spec.json, contract().doc());

    // Queued outbound calls (in the future: the parked trunk is never tried).
    let later = "2099-01-01T00:00:00Z";
    let mut queued = Vec::new();
    for (i, campaign) in [None, Some("cart"), Some("cart")].into_iter().enumerate() {
        let mut body = json!({"to": format!("1555000000{i}"), "scenario": "order-confirmation",
            "not_before": later, "variables": {"order_id": "1"}});
        if let Some(c) = campaign {
            body["campaign"] = json!(c);
        }
        let r = api.post("/v1/calls", &body.to_string());
        assert_eq!(r.status, 201, "{}", r.text);
        queued.push(r.json["id"].as_str().unwrap().to_owned());
    }
    for (body, status) in [
        ("nope", 400),
        (
            r#"{"to":"1","scenario":"order-confirmation","campaign":"x"}"#,
            422,
        ),
    ] {
        assert_eq!(api.post("/v1/calls", body).status, status);
    }

    // An inbound call, live: the node's view shows it with its graph node.
    let mut uac = Uac::new(server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite("order-confirmation", "X-Order-Id: 4711\r\n", &offer);
    let ok = uac.final_response(Duration::from_secs(10)).unwrap();
    assert_eq!(ok.status(), Some(200));
    uac.ack("order-confirmation");
    let status = wait(&api, "/v1/status", |j| {
        j["calls"].as_array().is_some_and(|c| !c.is_empty())
    });
    let live = &status["calls"][0];
    assert_eq!(live["scenario"], "order-confirmation");
    assert_eq!(live["direction"], "inbound");
    assert!(
        live["node"] == "greet" || live["node"] == "confirm",
        "{live}"
    );
    let inbound = live["call_ref"].as_str().unwrap().to_owned();
    assert_eq!(status["trunks"][0]["name"], "main");
    uac.bye("order-confirmation");
    let call = wait(&api, &format!("/v1/calls/{inbound}"), |j| {
        j["state"] == "completed"
    });
    assert_eq!(call["trace"]["nodes"][0], "greet");
    wait(&api, "/v1/status", |j| j["calls"] == json!([]));

    // Listing: newest first, filters, pages.
    let all = api.get("/v1/calls?limit=1000").json;
    let ids: Vec<&str> = all["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], inbound);
    assert_eq!(ids.len(), 4);
    assert_eq!(
        api.get("/v1/calls?campaign=cart").json["calls"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let default = api.get("/v1/calls?campaign=default").json;
    assert_eq!(default["calls"][0]["id"], queued[0].as_str());
    assert_eq!(default["calls"].as_array().unwrap().len(), 1);
    let inb = api.get("/v1/calls?direction=inbound&state=completed&scenario=order-confirmation");
    assert_eq!(inb.json["calls"][0]["id"], inbound.as_str());
    assert!(inb.json["calls"][0]["duration_ms"].as_i64().unwrap() >= 0);
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(a) => format!("/v1/calls?limit=3&after={a}"),
            None => "/v1/calls?limit=3".to_owned(),
        };
        let page = api.get(&path).json;
        seen.extend(
            page["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        match page["next_after"].as_str() {
            Some(a) => next = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    for bad in [
        "state=lost",
        "limit=0",
        "after=x",
        "direction=up",
        "colour=red",
    ] {
        assert_eq!(api.get(&format!("/v1/calls?{bad}")).status, 422, "{bad}");
    }

    // Cancel, events, replay.
    let cancelled = api.request(
        "DELETE",
        &format!("/v1/calls/{}", queued[2]),
        Some(TOKEN),
        None,
        &[],
    );
    assert_eq!(cancelled.json["state"], "cancelled");
    assert_eq!(api.get("/v1/calls/nope").status, 404);
    assert_eq!(api.get("/v1/calls/nope/recordings/say.wav").status, 404);
    let evs = api.get("/v1/events?limit=2").json;
    assert!(evs["next_after"].is_i64());
    assert_eq!(api.get("/v1/events?status=lost").status, 422);
    // The CRM answers 500 and one attempt is allowed: events die; replay one.
    let dead = wait(&api, "/v1/events?status=dead", |j| {
        j["events"].as_array().is_some_and(|e| !e.is_empty())
    });
    let ev = dead["events"][0]["id"].as_str().unwrap().to_owned();
    let r = api.post(&format!("/v1/events/{ev}/replay"), "");
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (202, Some("pending"))
    );
    assert_eq!(api.post("/v1/events/msg_nope/replay", "").status, 404);

    // Do-not-call.
    let put = |n: &str| api.request("PUT", &format!("/v1/dnc/{n}"), Some(TOKEN), None, &[]);
    assert_eq!(put("+1 555-0100").status, 201);
    assert_eq!(put("+15550100").status, 200);
    assert_eq!(put("call-me").status, 422);
    assert_eq!(api.get("/v1/dnc").json["numbers"], json!(["+15550100"]));
    let del = |n: &str| api.request("DELETE", &format!("/v1/dnc/{n}"), Some(TOKEN), None, &[]);
    assert_eq!(del("+15550100").json["listed"], false);
    assert_eq!(del("+15550100").status, 404);
    assert_eq!(del("x").status, 422);

    // Trunks, scenarios and their graphs.
    assert_eq!(
        api.get("/v1/trunks").json["trunks"][0]["registration"],
        "unregistered"
    );
    let scen = api.get("/v1/scenarios").json;
    let oc = scen["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "order-confirmation")
        .unwrap();
    assert_eq!(oc["start"], "greet");
    let svg = api.get("/v1/scenarios/order-confirmation/graph.svg?path=greet,confirm");
    assert_eq!(svg.status, 200);
    assert!(svg.text.contains("<svg"));
    assert_eq!(svg.headers["x-content-type-options"], "nosniff");
    assert_eq!(api.get("/v1/scenarios/nope/graph.svg").status, 404);
    assert_eq!(
        api.get("/v1/scenarios/order-confirmation/graph.svg?x=1")
            .status,
        422
    );

    // Campaigns: listed with their queue; paused and resumed; an unknown one is 404.
    let list = api.get("/v1/campaigns");
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(
        list.json["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "default")
    );
    let r = api.post("/v1/campaigns/default/pause", "");
    assert_eq!(
        (r.status, &r.json["paused"]),
        (200, &json!(true)),
        "{}",
        r.text
    );
    let r = api.post("/v1/campaigns/default/resume", "");
    assert_eq!(
        (r.status, &r.json["paused"]),
        (200, &json!(false)),
        "{}",
        r.text
    );
    assert_eq!(api.post("/v1/campaigns/nope/pause", "").status, 404);

    // Bulk import: CSV with a good row, a bad number and a short row; the good ones queue.
    let csv = "to,order_id,not_before\r\n+15550000101,4711,2099-01-01T00:00:00Z\r\n\"call me\",1,2099-01-01T00:00:00Z\r\n+15550000102\r\n\"+15550000103\",\"47,12\",2099-01-01T00:00:00Z\r\n";
    let r = api.request(
        "POST",
        "/v1/campaigns/default/calls?scenario=order-confirmation",
        Some(TOKEN),
        Some(csv),
        &[("content-type", "text/csv")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json["queued"].as_u64(), r.json["failed"].as_u64()),
        (Some(2), Some(2)),
        "{}",
        r.text
    );
    let rows = r.json["rows"].as_array().unwrap();
    assert_eq!(rows[0]["status"], "queued");
    assert_eq!(
        (rows[1]["row"].as_u64(), &rows[1]["field"]),
        (Some(2), &json!("to"))
    );
    assert!(rows[2]["error"].as_str().unwrap().contains("fields"));
    let id = rows[3]["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/v1/calls/{id}")).json["variables"]["order_id"],
        "47,12"
    );
    // The same as JSON; CSV without a scenario is 422 naming it.
    let r = api.post(
        "/v1/campaigns/default/calls",
        r#"{"scenario":"order-confirmation","calls":[{"to":"+15550000104","not_before":"2099-01-01T00:00:00Z"}]}"#,
    );
    assert_eq!(
        (r.status, r.json["queued"].as_u64()),
        (200, Some(1)),
        "{}",
        r.text
    );
    let r = api.request(
        "POST",
        "/v1/campaigns/default/calls",
        Some(TOKEN),
        Some("to\n1\n"),
        &[("content-type", "text/csv")],
    );
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (422, Some("scenario")),
        "{}",
        r.text
    );

    // A reload with nothing changed: everything loaded, nothing updated.
    let r = api.post("/v1/scenarios/reload", "");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["updated"], json!([]));
    assert!(
        r.json["loaded"]
            .as_array()
            .unwrap()
            .contains(&json!("order-confirmation"))
    );

    // A console session: reads with the cookie alone; changes need the console header.
    let cookie = login_cookie(&base, TOKEN).expect("a session cookie");
    assert!(login_cookie(&base, "wrong-token-000000000").is_none());
    let r = api.request("GET", "/v1/status", None, None, &[("cookie", &cookie)]);
    assert_eq!(r.status, 200);
    let r = api.request("PUT", "/v1/dnc/5550101", None, None, &[("cookie", &cookie)]);
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (403, Some("x-ivrflow-console"))
    );
    let r = api.request(
        "PUT",
        "/v1/dnc/5550101",
        None,
        None,
        &[("cookie", &cookie), ("x-ivrflow-console", "1")],
    );
    assert_eq!(r.status, 201);
    let r = api.request(
        "GET",
        "/v1/status",
        None,
        None,
        &[("cookie", "ivrflow_console=v1.9999999999.forged")],
    );
    assert_eq!(r.status, 401);

    // Last: drain, with a call up (so the node stays until the deadline). Health says so.
    let mut uac = Uac::new(server.sip);
    uac.invite(
        "order-confirmation",
        "X-Order-Id: 4711\r\n",
        &uac.offer("127.0.0.1"),
    );
    assert_eq!(
        uac.final_response(Duration::from_secs(10))
            .unwrap()
            .status(),
        Some(200)
    );
    uac.ack("order-confirmation");
    assert_eq!(api.post("/v1/admin/drain", "[").status, 400);
    assert_eq!(
        api.post("/v1/admin/drain", r#"{"deadline":"soon"}"#).status,
        422
    );
    let r = api.post("/v1/admin/drain", r#"{"deadline":"3s"}"#);
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (202, Some("draining"))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = api.inner.request("GET", "/healthz", None, None, &[]);
        if h.status == 503 {
            api_spec::contract()
                .check("GET", "/healthz", 503, Some("application/json"), &h.text)
                .unwrap();
            assert_eq!(h.json["status"], "draining");
            break;
        }
        assert!(Instant::now() < deadline, "healthz never said draining");
        std::thread::sleep(Duration::from_millis(50));
    }

    let missing: Vec<_> = contract()
        .operations()
        .difference(&contract().seen())
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "documented operations no test reached: {missing:?}"
    );
}
