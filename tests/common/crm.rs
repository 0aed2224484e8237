//! A real HTTP receiver standing in for a CRM that misbehaves on purpose, an API client,
//! and an independent Standard Webhooks verifier (Python's hmac/hashlib, not our code).
//!
//! The receiver records every request (headers, body, what it answered) and can: fail the
//! first N attempts of each message (500), answer slowly (beyond ivrflow's per-attempt
//! timeout), answer 410, or be down (not listening at all) and come back on the same port.
//! It answers with `Connection: close`, so "down" really means connection refused.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 200 to everything.
    Ok,
    /// 500 to the first `n` attempts of each webhook-id, then 200.
    FailFirst(u32),
    /// The first `n` attempts of each webhook-id wait `delay` before answering 200.
    SlowFirst(u32, Duration),
    /// 410 Gone to everything.
    Gone,
    /// This status to everything.
    Status(u16),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub timestamp: String,
    pub signature: Option<String>,
    pub body: Vec<u8>,
    pub json: Value,
    /// What the receiver answers (a slow 200 counts as 200, even if the sender gave up).
    pub status: u16,
    pub at: Instant,
}

impl Hit {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

struct Shared {
    mode: Mode,
    attempts: HashMap<String, u32>,
    hits: Vec<Hit>,
    /// Requests to `/lookup` (mid-call webhook nodes), answered with [`LOOKUP_ANSWER`].
    lookups: Vec<Hit>,
}

/// What `/lookup` answers: a CRM's customer record.
pub const LOOKUP_ANSWER: &str = r#"{"customer": {"name": "Ann Lee", "vip": true}}"#;

pub struct Receiver {
    pub addr: SocketAddr,
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    rt: tokio::runtime::Runtime,
}

impl Receiver {
    /// Listening now.
    pub fn start(mode: Mode) -> Receiver {
        let r = Receiver::down(mode);
        r.up();
        r
    }

    /// A receiver whose port is chosen but that does not listen yet (connections are
    /// refused until [`Receiver::up`]).
    pub fn down(mode: Mode) -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("pick a port");
        Receiver {
            addr,
            url: format!("http://{addr}/hooks"),
            shared: Arc::new(Mutex::new(Shared {
                mode,
                attempts: HashMap::new(),
                hits: Vec::new(),
                lookups: Vec::new(),
            })),
            server: Mutex::new(None),
            rt,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().unwrap().mode = mode;
    }

    /// Start listening on the receiver's port.
    pub fn up(&self) {
        use axum::routing::post;
        let shared = self.shared.clone();
        let lookups = self.shared.clone();
        let app = axum::Router::new()
            .route(
                "/hooks",
                post(
                    move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                        let shared = shared.clone();
                        async move { handle(shared, headers, body).await }
                    },
                ),
            )
            .route(
                "/lookup",
                post(
                    move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                        let shared = lookups.clone();
                        async move {
                            let h = |n: &str| {
                                headers
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            let hit = Hit {
                                id: h("webhook-id").unwrap_or_default(),
                                timestamp: h("webhook-timestamp").unwrap_or_default(),
                                signature: h("webhook-signature"),
                                json: serde_json::from_slice(&body).unwrap_or(Value::Null),
                                body: body.to_vec(),
                                status: 200,
                                at: Instant::now(),
                            };
                            shared.lock().unwrap().lookups.push(hit);
                            (
                                [
                                    ("content-type", "application/json"),
                                    ("connection", "close"),
                                ],
                                LOOKUP_ANSWER,
                            )
                        }
                    },
                ),
            );
        let addr = self.addr;
        let listener = self.rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => return l,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("cannot listen on {addr} again: {e}"),
                }
            }
        });
        let task = self.rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// Stop listening (connections are refused from now on).
    pub fn stop(&self) {
        if let Some(t) = self.server.lock().unwrap().take() {
            t.abort();
            let _ = self.rt.block_on(t);
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.lock().unwrap().hits.clone()
    }

    /// Requests to `/lookup` so far.
    pub fn lookups(&self) -> Vec<Hit> {
        self.shared.lock().unwrap().lookups.clone()
    }

    /// The URL of the `/lookup` endpoint.
    pub fn lookup_url(&self) -> String {
        format!("http://{}/lookup", self.addr)
    }

    /// The first accepted hit of each webhook-id, in arrival order.
    pub fn accepted_once(&self) -> Vec<Hit> {
        let mut seen = HashSet::new();
        self.hits()
            .into_iter()
            .filter(|h| h.accepted() && seen.insert(h.id.clone()))
            .collect()
    }

    /// Wait (bounded) until `n` distinct webhook-ids were accepted.
    pub fn wait_accepted(&self, n: usize, limit: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.accepted_once();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait (bounded) until `pred` holds for the hits so far.
    pub fn wait_until(&self, limit: Duration, pred: impl Fn(&[Hit]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if pred(&self.hits()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(
    shared: Arc<Mutex<Shared>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let id = h("webhook-id").unwrap_or_default();
    let (mode, n) = {
        let mut s = shared.lock().unwrap();
        let n = {
            let c = s.attempts.entry(id.clone()).or_insert(0);
            *c += 1;
            *c
        };
        (s.mode, n)
    };
    let (status, delay) = match mode {
        Mode::Ok => (200, None),
        Mode::FailFirst(k) if n <= k => (500, None),
        Mode::FailFirst(_) => (200, None),
        Mode::SlowFirst(k, d) => (200, (n <= k).then_some(d)),
        Mode::Gone => (410, None),
        Mode::Status(c) => (c, None),
    };
    // Recorded on arrival, as a CRM that commits before it answers: a slow answer the
    // sender gave up on still counts as received (that is what makes duplicates).
    let hit = Hit {
        id,
        timestamp: h("webhook-timestamp").unwrap_or_default(),
        signature: h("webhook-signature"),
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        body: body.to_vec(),
        status,
        at: Instant::now(),
    };
    shared.lock().unwrap().hits.push(hit);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let code = axum::http::StatusCode::from_u16(status).unwrap();
    (code, [("connection", "close")], "").into_response()
}

/// A test signing secret (32 random-looking bytes) in `whsec_` form.
pub const SECRET: &str = "whsec_C2FtcGxlLXNlY3JldC1mb3ItaXZyZmxvdy10ZXN0cw==";
/// A test API token.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Verify every hit's signature with Python's hmac (an implementation independent of
/// ivrflow's). Returns the ids that failed.
pub fn python_verify(secret: &str, hits: &[Hit]) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir = std::env::temp_dir().join(format!(
        "ivrflow-verify-{}-{}",
        std::process::id(),
        hits.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("hits.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    for h in hits {
        let line = serde_json::json!({
            "id": h.id,
            "timestamp": h.timestamp,
            "signature": h.signature.clone().unwrap_or_default(),
            "body": b64.encode(&h.body),
        });
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    // The recipe of docs/webhooks.md, in Python.
    let script = r#"
import base64, hashlib, hmac, json, sys
secret = base64.b64decode(sys.argv[1].removeprefix("whsec_"))
bad = []
for line in open(sys.argv[2]):
    h = json.loads(line)
    body = base64.b64decode(h["body"])
    signed = h["id"].encode() + b"." + h["timestamp"].encode() + b"." + body
    expected = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in h["signature"].split(" ") if s.startswith("v1,")]
    if not any(hmac.compare_digest(expected, g) for g in given):
        bad.append(h["id"])
print(json.dumps(bad))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(secret)
        .arg(&input)
        .output()
        .expect("python3 is needed for the independent signature check");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "python verifier failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("verifier output")
}

/// Group accepted-once hits by call and check per-call order: seq 1, 2, 3… in arrival
/// order. Returns call_ref → event types in order.
pub fn check_order(accepted: &[Hit]) -> BTreeMap<String, Vec<String>> {
    let mut by_call: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for h in accepted {
        let call = h.json["call_ref"].as_str().expect("call_ref").to_owned();
        let seq = h.json["seq"].as_i64().expect("seq");
        let kind = h.json["event"].as_str().expect("event").to_owned();
        assert_eq!(
            h.json["event_id"].as_str(),
            Some(h.id.as_str()),
            "webhook-id is the body's event_id"
        );
        by_call.entry(call).or_default().push((seq, kind));
    }
    by_call
        .into_iter()
        .map(|(call, evs)| {
            let seqs: Vec<i64> = evs.iter().map(|e| e.0).collect();
            let want: Vec<i64> = (1..=evs.len() as i64).collect();
            assert_eq!(
                seqs, want,
                "call {call}: events out of order or missing: {evs:?}"
            );
            (call, evs.into_iter().map(|e| e.1).collect())
        })
        .collect()
}

/// A blocking client for the control API.
pub struct Api {
    pub base: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

pub struct ApiResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.client.request(method, &url);
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        self.rt.block_on(async {
            let resp = rb.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            ApiResponse {
                status,
                headers,
                json: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
            }
        })
    }

    pub fn get(&self, path: &str) -> ApiResponse {
        self.request("GET", path, Some(TOKEN), None, &[])
    }

    /// A binary resource (a recording): status, `Content-Type`, body. The URL is absolute
    /// (as the CRM gets it) or a path on this API; `token` as [`Api::request`].
    pub fn get_bytes(&self, url: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        };
        let mut rb = self.client.get(&url);
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        self.rt.block_on(async {
            let resp = rb.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            (status, ctype, body)
        })
    }

    /// The value of the first sample of `name` (a full name with labels, or a prefix) in
    /// `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").text;
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
    }

    pub fn post(&self, path: &str, body: &str) -> ApiResponse {
        self.request("POST", path, Some(TOKEN), Some(body), &[])
    }

    /// Queue an outbound call; returns its id.
    pub fn queue_call(&self, to: &str, key: Option<&str>) -> String {
        let body = match key {
            Some(k) => format!(
                r#"{{"to":"{to}","scenario":"order-confirmation","variables":{{"order_id":"4711"}},"idempotency_key":"{k}","not_before":"2099-01-01T00:00:00Z"}}"#
            ),
            None => format!(
                r#"{{"to":"{to}","scenario":"order-confirmation","variables":{{"order_id":"4711"}},"not_before":"2099-01-01T00:00:00Z"}}"#
            ),
        };
        let r = self.post("/v1/calls", &body);
        assert!(
            r.status == 201 || r.status == 200,
            "{} {}",
            r.status,
            r.text
        );
        r.json["id"].as_str().unwrap().to_owned()
    }
}

/// A fresh directory for one server's data, removed on drop.
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(tag: &str) -> DataDir {
        let p = std::env::temp_dir().join(format!(
            "ivrflow-data-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        DataDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// Write a config file into the directory; returns its path.
    pub fn config(&self, yaml: &str) -> String {
        let p = self.0.join("ivrflow.yaml");
        std::fs::write(&p, yaml).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on loopback.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral TCP port")
}

/// A config for fast tests: short timeout and retries, no jitter.
pub fn fast_config(url: &str, timeout: &str, retry: &str, max_attempts: u32) -> String {
    format!(
        "webhook:\n  url: {url}\n  timeout: {timeout}\n  retry: {retry}\n  max_attempts: {max_attempts}\n  jitter: 0\n"
    )
}

/// Run `n` SIPp calls with a tests/sipp scenario against `sip` (at most 10 at once, 10 new
/// calls a second); each caller listens `pause_ms` before hanging up. Returns SIPp's
/// output; the robot's RTP goes to `rtp_port`.
pub fn sipp_calls(
    sip: SocketAddr,
    scenario: &str,
    n: u32,
    pause_ms: u32,
    rtp_port: u16,
) -> std::process::Output {
    sipp_calls_to(sip, "order-confirmation", scenario, n, pause_ms, rtp_port)
}

/// [`sipp_calls`] dialling `service` (the Request-URI user part that picks the scenario).
pub fn sipp_calls_to(
    sip: SocketAddr,
    service: &str,
    scenario: &str,
    n: u32,
    pause_ms: u32,
    rtp_port: u16,
) -> std::process::Output {
    let path = super::fixture(&format!("sipp/{scenario}"));
    let sip = sip.to_string();
    let port = super::free_udp_port().to_string();
    let (n, pause, rtp) = (n.to_string(), pause_ms.to_string(), rtp_port.to_string());
    super::run_sipp(
        &[
            "-sf",
            path.to_str().unwrap(),
            "-s",
            service,
            &sip,
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "-m",
            &n,
            "-r",
            "10",
            "-l",
            "10",
            "-key",
            "rtp_port",
            &rtp,
            "-key",
            "order_id",
            "4711",
            "-d",
            &pause,
            "-timeout",
            "40",
            "-timeout_error",
        ],
        Duration::from_secs(60),
    )
}

/// A UDP socket that swallows the robot's RTP (held open, never read).
pub fn rtp_sink() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an RTP sink")
}
