//! The web console in a real headless browser (Debian's `chromium`, driven by
//! `chromedriver` over the W3C WebDriver protocol) against the real server: sign-in, a
//! live SIP call appearing with its scenario and current graph node, the recent-calls list,
//! the call's timeline and its path drawn on the scenario graph, scenarios, dead letters
//! and replay, campaigns — with no console error on any page (console messages, failed
//! loads and CSP violations are all SEVERE entries in the browser log). Screenshots of each
//! page go to `target/console-screenshots/`.
//!
//! The WebDriver client is the small one below (a dozen endpoints over reqwest, which the
//! crate already has) rather than fantoccini or thirtyfour: it needs nothing new from
//! crates.io, and every request it makes is visible here.
//!
//! `chromium` and `chromium-driver` are installed by scripts/setup.sh; without them these
//! tests fail, naming the package.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use common::crm::*;
use common::uac::Uac;
use common::*;

// ---- a minimal WebDriver client --------------------------------------------------------

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The element id key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn chromium_binary() -> PathBuf {
    // The real binary, not Debian's /usr/bin/chromium wrapper script.
    for p in ["/usr/lib/chromium/chromium", "/usr/bin/chromium"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "chromium is not installed: run `apt-get install -y chromium` (./scripts/setup.sh does)"
    );
}

impl Driver {
    fn start() -> Driver {
        require_tool("chromedriver", "chromium-driver");
        let port = free_tcp_port();
        let log = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let d = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(v) = d.call("GET", "/status", None)
                && v["ready"] == true
            {
                return d;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One WebDriver command; its `value`, or the error it reported.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.url);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.client.request(m, &url);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.rt.block_on(async {
            let resp = rb.send().await.map_err(|e| format!("{url}: {e}"))?;
            let ok = resp.status().is_success();
            let v: Value = resp.json().await.map_err(|e| format!("{url}: {e}"))?;
            if ok {
                Ok(v["value"].clone())
            } else {
                Err(format!("{method} {path}: {}", v["value"]))
            }
        })
    }

    fn session(&self, profile: &Path) -> Browser<'_> {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once(format!(
            "--user-data-dir={}",
            profile.display()
        )))
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium_binary(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = self
            .call("POST", "/session", Some(caps))
            .expect("a browser session");
        Browser {
            d: self,
            id: v["sessionId"].as_str().unwrap().to_owned(),
        }
    }
}

/// One browser session (closed on drop).
struct Browser<'a> {
    d: &'a Driver,
    id: String,
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self
            .d
            .call("DELETE", &format!("/session/{}", self.id), None);
    }
}

impl Browser<'_> {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.d
            .call(method, &format!("/session/{}{path}", self.id), body)
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .unwrap();
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("not an element reference: {e}"))
                .to_owned()
        })
        .collect()
    }

    /// Wait (bounded) for an element matching `css`.
    fn wait_for(&self, css: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.find_all(css).into_iter().next() {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no {css} within {limit:?} on {}; page text:\n{}",
                self.url(),
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait (bounded) until the text of the first `css` element satisfies `pred`.
    fn wait_text(&self, css: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.find_all(css).into_iter().next()
                && let Ok(t) = self.cmd("GET", &format!("/element/{e}/text"), None)
                && pred(t.as_str().unwrap_or(""))
            {
                return t.as_str().unwrap_or("").to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{css} never had the expected text within {limit:?}; page text:\n{}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn text(&self, el: &str) -> String {
        self.cmd("GET", &format!("/element/{el}/text"), None)
            .unwrap()
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn click(&self, el: &str) {
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})))
            .unwrap();
    }

    fn type_into(&self, el: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap();
    }

    fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .unwrap()
    }

    fn page_text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn screenshot(&self, dir: &Path, name: &str) {
        let b64 = self.cmd("GET", "/screenshot", None).unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The browser log since the last call (console messages, failed loads, CSP reports).
    fn log(&self) -> Vec<Value> {
        self.cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Fail when the browser logged an error (or a warning) since the last check.
    fn assert_clean(&self, page: &str) {
        let bad: Vec<Value> = self
            .log()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .collect();
        assert!(
            bad.is_empty(),
            "browser errors on the {page} page: {bad:#?}"
        );
    }
}

// ---- the server --------------------------------------------------------------------------

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Rig {
    server: Server,
    api: Api,
    base: String,
    _dir: DataDir,
}

fn start(config: &str) -> Rig {
    let dir = DataDir::new("console");
    let cfg = dir.config(config);
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
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
            &api.to_string(),
        ],
    );
    Rig {
        server,
        api: Api::new(api),
        base: format!("http://{api}"),
        _dir: dir,
    }
}

fn sign_in(b: &Browser<'_>, base: &str) {
    b.go(&format!("{base}/console/"));
    let token = b.wait_for("#token", Duration::from_secs(10));
    b.type_into(&token, TOKEN);
    let button = b.wait_for("#sign-in", Duration::from_secs(1));
    b.click(&button);
    b.wait_for("#live-calls", Duration::from_secs(10));
}

// ---- the tests ---------------------------------------------------------------------------

#[test]
fn every_page_works_in_a_real_browser_with_a_live_call() {
    let began = Instant::now();
    let shots = screenshots();
    // A CRM that answers 410 Gone: every event is dead at once, for the dead-letter page.
    let crm = Receiver::start(Mode::Gone);
    let rig = start(&fast_config(&crm.url, "2s", "[100ms]", 1));
    let driver = Driver::start();
    let profile = std::env::temp_dir().join(format!("ivrflow-chromium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let b = driver.session(&profile);

    // Not signed in: the console sends the browser to the sign-in page; a wrong token is
    // refused there (401), the right one lets it in.
    b.go(&format!("{}/console/", rig.base));
    let token = b.wait_for("#token", Duration::from_secs(10));
    assert!(b.url().ends_with("/console/login"), "{}", b.url());
    b.screenshot(&shots, "01-login");
    b.assert_clean("sign-in");
    b.type_into(&token, "not-the-token-0000000");
    b.click(&b.wait_for("#sign-in", Duration::from_secs(1)));
    b.wait_text("#login-error", Duration::from_secs(10), |t| {
        t.contains("not the API token")
    });
    // The only entry a wrong token may leave in the log is the 401 itself.
    for e in b
        .log()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
    {
        assert!(
            e["message"].as_str().unwrap_or("").contains("401"),
            "unexpected browser log entry on a wrong token: {e}"
        );
    }
    let token = b.wait_for("#token", Duration::from_secs(1));
    b.type_into(&token, TOKEN);
    b.click(&b.wait_for("#sign-in", Duration::from_secs(1)));
    b.wait_for("#live-calls", Duration::from_secs(10));
    let cookie = b.script("return document.cookie");
    assert_eq!(
        cookie, "",
        "the session cookie is HttpOnly: scripts cannot read it"
    );

    // A live call: the test's SIP caller dials the order confirmation and stays on the line.
    let mut uac = Uac::new(rig.server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite("order-confirmation", "X-Order-Id: 4711\r\n", &offer);
    let ok = uac
        .final_response(Duration::from_secs(10))
        .expect("a final response");
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    uac.ack("order-confirmation");
    let row = b.wait_for("#live-calls tr[data-call-ref]", Duration::from_secs(10));
    let row_text = b.text(&row);
    assert!(row_text.contains("order-confirmation"), "{row_text}");
    assert!(row_text.contains("inbound"), "{row_text}");
    // The current graph node follows the call: the greeting, then the question.
    b.wait_text("#live-calls td.node", Duration::from_secs(20), |t| {
        t == "confirm"
    });
    let call_ref = b
        .script("return document.querySelector('#live-calls tr[data-call-ref]').dataset.callRef")
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        b.text(&b.wait_for("#live-count", Duration::from_secs(1))),
        "(1)"
    );
    b.screenshot(&shots, "02-live-calls");
    b.assert_clean("live calls");

    // The caller presses 1; the robot thanks, says goodbye and hangs up.
    uac.send_key(1, None); // RFC 4733 event 1: the key 1
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no BYE\n{}", rig.server.log_text()));
        if let Some(m) = uac.recv(left)
            && m.method() == Some("BYE")
        {
            uac.ok_to(&m);
            break;
        }
    }
    b.wait_text("#live-count", Duration::from_secs(10), |t| t == "(0)");

    // Recent calls: the call is there, completed; filters narrow the list.
    b.go(&format!("{}/console/#/calls", rig.base));
    let sel = format!("#calls tr[data-call='{call_ref}']");
    b.wait_text(&sel, Duration::from_secs(10), |t| t.contains("completed"));
    b.screenshot(&shots, "03-calls");
    b.assert_clean("calls");
    b.go(&format!("{}/console/#/calls?state=failed", rig.base));
    b.wait_text("#calls tbody", Duration::from_secs(10), |t| {
        t.contains("No call matches")
    });
    b.assert_clean("calls (filtered)");

    // The call: its timeline (prompts with how much was heard, the key), answers, SIP,
    // webhooks, and its path on the scenario graph.
    b.go(&format!("{}/console/#/calls", rig.base));
    let link = b.wait_for(&format!("{sel} a"), Duration::from_secs(10));
    b.click(&link);
    b.wait_for("#timeline", Duration::from_secs(10));
    let facts = b.page_text();
    assert!(
        facts.contains("SIP Call-ID") && !facts.contains("[object"),
        "{facts}"
    );
    let timeline = b.text(&b.wait_for("#timeline", Duration::from_secs(1)));
    assert!(timeline.contains("pressed 1"), "{timeline}");
    assert!(timeline.contains("heard"), "{timeline}");
    let answers = b.text(&b.wait_for("#answers", Duration::from_secs(1)));
    assert!(
        answers.contains("confirm") && answers.contains("dtmf"),
        "{answers}"
    );
    let path = b.text(&b.wait_for("#call-path", Duration::from_secs(1)));
    assert!(path.starts_with("greet → confirm"), "{path}");
    let webhooks = b.text(&b.wait_for("#webhooks", Duration::from_secs(1)));
    assert!(webhooks.contains("call.completed"), "{webhooks}");
    // The graph loaded (an SVG from Graphviz, decoded by the browser).
    let deadline = Instant::now() + Duration::from_secs(10);
    while b
        .script("const i = document.querySelector('#call-graph img'); return i ? i.complete && i.naturalWidth : 0")
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "the call's graph never loaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.screenshot(&shots, "04-call");
    b.assert_clean("call");

    // Scenarios and one scenario's graph with the call's path.
    b.go(&format!("{}/console/#/scenarios", rig.base));
    b.wait_for(
        "#scenarios tr[data-scenario='order-confirmation']",
        Duration::from_secs(10),
    );
    b.screenshot(&shots, "05-scenarios");
    b.assert_clean("scenarios");
    b.go(&format!(
        "{}/console/#/scenarios/order-confirmation?call={call_ref}",
        rig.base
    ));
    b.wait_for("#scenario-graph img", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while b
        .script("const i = document.querySelector('#scenario-graph img'); return i ? i.complete && i.naturalWidth : 0")
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "the scenario graph never loaded");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.screenshot(&shots, "06-scenario-graph");
    b.assert_clean("scenario graph");

    // Dead letters (the CRM said 410 to everything), and replay.
    assert!(
        crm.wait_until(Duration::from_secs(10), |h| h.len() >= 3),
        "the CRM saw {} requests",
        crm.hits().len()
    );
    b.go(&format!("{}/console/#/dead", rig.base));
    let first = b.wait_for("#dead tr[data-event]", Duration::from_secs(10));
    let event_id = b
        .script("return document.querySelector('#dead tr[data-event]').dataset.event")
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!b.text(&first).is_empty());
    b.screenshot(&shots, "07-dead-letters");
    let replay = b.wait_for(
        &format!("#dead button.replay[data-event='{event_id}']"),
        Duration::from_secs(1),
    );
    b.click(&replay);
    b.wait_text(
        &format!("#dead tr[data-event='{event_id}']"),
        Duration::from_secs(10),
        |t| t.contains("pending again"),
    );
    // The replay really happened: the CRM got the same webhook-id a second time.
    assert!(
        crm.wait_until(Duration::from_secs(10), |h| {
            h.iter().filter(|x| x.id == event_id).count() >= 2
        }),
        "the replayed event never reached the CRM again"
    );
    b.assert_clean("dead letters");

    // Campaigns: without the campaign API the page says so; with it, it lists them.
    b.go(&format!("{}/console/#/campaigns", rig.base));
    let has_api = rig.api.get("/v1/campaigns").status == 200;
    if has_api {
        b.wait_for("#campaigns", Duration::from_secs(10));
    } else {
        let empty = b.wait_for("#campaigns-empty", Duration::from_secs(10));
        assert!(b.text(&empty).contains("campaign API"));
    }
    b.screenshot(&shots, "08-campaigns");
    b.assert_clean("campaigns");

    // Signing out ends the session: the console sends the browser back to sign in.
    b.go(&format!("{}/console/", rig.base));
    b.wait_for("#live-calls", Duration::from_secs(10));
    let out = b.wait_for("form.logout button", Duration::from_secs(1));
    b.click(&out);
    b.wait_for("#token", Duration::from_secs(10));
    b.go(&format!("{}/console/", rig.base));
    b.wait_for("#token", Duration::from_secs(10));
    b.assert_clean("sign-out");
    drop(b);
    let _ = std::fs::remove_dir_all(&profile);
    eprintln!(
        "console browser test: {:.1} s; screenshots in {}",
        began.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// Pausing and resuming a campaign from the console (`GET /v1/campaigns`, `POST
/// /v1/campaigns/{name}/pause|resume`).
#[test]
fn a_campaign_pauses_and_resumes_from_the_console() {
    let shots = screenshots();
    // A trunk nobody answers and a campaign whose calls wait for tomorrow's window: the
    // queue stays as queued while the test pauses and resumes it.
    let rig = start(
        "trunks:\n  - { name: main, proxy: \"127.0.0.1:9\", keepalive: 0s }\n\
         campaigns:\n  - { name: cart, trunk: main }\n",
    );
    for i in 0..2 {
        let r = rig.api.post(
            "/v1/calls",
            &format!(
                r#"{{"to":"1555000000{i}","scenario":"order-confirmation","campaign":"cart","not_before":"2099-01-01T00:00:00Z"}}"#
            ),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let driver = Driver::start();
    let profile =
        std::env::temp_dir().join(format!("ivrflow-chromium-pause-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let b = driver.session(&profile);
    sign_in(&b, &rig.base);
    b.go(&format!("{}/console/#/campaigns", rig.base));
    let row = "#campaigns tr[data-campaign='cart']";
    b.wait_text(&format!("{row} td.queued"), Duration::from_secs(10), |t| {
        t == "2"
    });
    b.click(&b.wait_for(&format!("{row} button.pause"), Duration::from_secs(1)));
    b.wait_text(
        &format!("{row} td.campaign-state"),
        Duration::from_secs(10),
        |t| t == "paused",
    );
    let cart = |api: &Api| {
        api.get("/v1/campaigns").json["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "cart")
            .cloned()
            .unwrap()
    };
    assert_eq!(cart(&rig.api)["paused"], true);
    b.screenshot(&shots, "09-campaign-paused");
    b.click(&b.wait_for(&format!("{row} button.resume"), Duration::from_secs(1)));
    b.wait_text(
        &format!("{row} td.campaign-state"),
        Duration::from_secs(10),
        |t| t == "running",
    );
    assert_eq!(cart(&rig.api)["paused"], false);
    b.assert_clean("campaigns");
    drop(b);
    let _ = std::fs::remove_dir_all(&profile);
}
