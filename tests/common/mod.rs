//! Shared pieces of the real-peer tests: start `ivrflow serve` as a child process, wait
//! until it answers OPTIONS, run SIPp, and a real HTTP server that plays the shop's CRM.
//!
//! Every wait is bounded; a missing tool (sipp, ip) fails the test loudly — `.ci/run`
//! installs them.

#![allow(dead_code)]

pub mod crm;
pub mod kamailio;
pub mod pg;
pub mod uac;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free UDP port on loopback (bound then released; the OS does not hand it out again soon).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral UDP port")
}

/// Ensure a tool is installed; panic with the fix if not.
pub fn require_tool(name: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: run `apt-get install -y {package}` (./scripts/setup.sh does)"
    );
}

/// A running `ivrflow serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub sip: SocketAddr,
    pub log: PathBuf,
    /// A data directory made for this server (when the caller gave none); removed on drop.
    own_data_dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.own_data_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Server {
    /// Start on `sip` with extra flags, and wait (≤ 15 s) until it answers OPTIONS.
    pub fn start(sip: SocketAddr, extra: &[&str]) -> Server {
        Self::start_with(Command::new(env!("CARGO_BIN_EXE_ivrflow")), sip, extra)
    }

    /// Same, with a prepared command (e.g. `ip netns exec NS …`).
    pub fn start_with(mut cmd: Command, sip: SocketAddr, extra: &[&str]) -> Server {
        let log = std::env::temp_dir().join(format!(
            "ivrflow-test-{}-{}.log",
            std::process::id(),
            sip.port()
        ));
        let log_file = std::fs::File::create(&log).expect("create server log");
        // Each server gets its own database unless the test gives one.
        let own_data_dir = (!extra.contains(&"--data-dir")).then(|| {
            std::env::temp_dir().join(format!(
                "ivrflow-test-data-{}-{}",
                std::process::id(),
                sip.port()
            ))
        });
        cmd.arg("serve").arg("--sip-listen").arg(sip.to_string());
        if let Some(d) = &own_data_dir {
            cmd.arg("--data-dir").arg(d);
        }
        let child = cmd
            .args(extra)
            .current_dir(repo())
            .env("IVRFLOW_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start ivrflow serve");
        let server = Server {
            child,
            sip,
            log,
            own_data_dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if options_ping(self.sip, Duration::from_millis(300)) == Some(200) {
                return;
            }
        }
        panic!(
            "ivrflow did not answer OPTIONS within 15 s; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Send one OPTIONS and return the response status, if one arrives within `wait`.
pub fn options_ping(to: SocketAddr, wait: Duration) -> Option<u16> {
    let sock = UdpSocket::bind(SocketAddr::new(to.ip(), 0)).ok()?;
    sock.set_read_timeout(Some(wait)).ok()?;
    let me = sock.local_addr().ok()?;
    let branch = format!("z9hG4bKping{}", me.port());
    let msg = format!(
        "OPTIONS sip:ping@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p{port}\r\nTo: <sip:ping@{to}>\r\nCall-ID: ping-{port}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        port = me.port()
    );
    sock.send_to(msg.as_bytes(), to).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    status_of(&buf[..n])
}

/// Status code of a SIP response datagram.
pub fn status_of(resp: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(resp).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    (parts.next()? == "SIP/2.0").then_some(())?;
    parts.next()?.parse().ok()
}

/// Run SIPp with a hard time limit; returns its output.
pub fn run_sipp(args: &[&str], limit: Duration) -> Output {
    require_tool("sipp", "sip-tester");
    let secs = limit.as_secs().max(1).to_string();
    Command::new("timeout")
        .arg("--kill-after=5")
        .arg(&secs)
        .arg("sipp")
        .args(args)
        .arg("-nostdin")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run sipp")
}

/// A real HTTP server standing in for the shop's CRM: records every POST body.
pub struct Crm {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    _rt: tokio::runtime::Runtime,
}

impl Crm {
    pub fn start() -> Crm {
        use axum::routing::post;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let store = bodies.clone();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind CRM");
        let addr = listener.local_addr().expect("CRM addr");
        let app = axum::Router::new().route(
            "/crm",
            post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Crm {
            url: format!("http://{addr}/crm"),
            bodies,
            _rt: rt,
        }
    }

    /// Wait (bounded) until at least `n` events of type `kind` arrived; returns those.
    pub fn wait_for_event(&self, kind: &str, n: usize, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got: Vec<serde_json::Value> = self
                .bodies
                .lock()
                .unwrap()
                .iter()
                .filter(|b| b["event"] == kind)
                .cloned()
                .collect();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait (bounded) until at least `n` events arrived.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.bodies.lock().unwrap().clone();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn fixture(path: &str) -> PathBuf {
    repo().join("tests").join(path)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
