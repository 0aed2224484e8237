//! Fail closed (issue 13): the data directory's disk fills up under a running server.
//!
//! The data directory is a small tmpfs of the test's own (root, as in CI). With the disk
//! full, the store cannot commit: the call that was being answered gets no 200 OK (its
//! `call.started` is not on disk), new INVITEs get 503 with Retry-After, OPTIONS 503,
//! `/healthz` 503 naming the store, `ivrflow_store_failing` 1. When space is freed the node's
//! retry commits what it held, the held 200 OK goes out, the call runs to its end, and the
//! CRM gets every event of it exactly once, in order.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::crm::*;
use common::uac::Uac;
use common::*;

/// A tmpfs mounted for the test; unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("ivrflow-tmpfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "cannot mount a tmpfs at {} (this test needs root, as in CI)",
            dir.display()
        );
        Tmpfs(dir)
    }

    /// Write zeros until the file system is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial block.
        let small = vec![0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_full_disk_refuses_calls_holds_sip_and_loses_nothing() {
    let fs = Tmpfs::mount("24m");
    let rx = Receiver::start(Mode::Ok);
    let data = fs.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = data.join("ivrflow.yaml");
    std::fs::write(&cfg, fast_config(&rx.url, "2s", "[200ms]", 5)).unwrap();
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let api_addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_API_TOKEN", TOKEN);
    let api_s = api_addr.to_string();
    let server = Server::start_with(
        cmd,
        sip,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--api-listen",
            &api_s,
        ],
    );
    let api = Api::new(api_addr);
    assert_eq!(api.get("/healthz").status, 200);

    let filler = fs.fill();
    // A caller while the disk is full: answered only once its call.started is stored.
    let mut held = Uac::new(sip);
    let offer = held.offer("127.0.0.1");
    held.invite("order-confirmation", "X-Order-Id: 4711\r\n", &offer);
    let early = held.final_response(Duration::from_secs(3));
    assert!(
        early.is_none(),
        "answered while nothing could be stored: {early:?}\n{}",
        server.log_text()
    );
    // The node knows now: new calls are refused, the load balancer's probe says so.
    let mut refused = Uac::new(sip);
    let offer2 = refused.offer("127.0.0.1");
    refused.invite("order-confirmation", "X-Order-Id: 1\r\n", &offer2);
    let r = refused
        .final_response(Duration::from_secs(5))
        .expect("an answer");
    assert_eq!(r.status(), Some(503), "{r:?}");
    assert!(r.header("Retry-After").is_some(), "{r:?}");
    refused.ack("order-confirmation");
    assert_eq!(options_ping(sip, Duration::from_secs(2)), Some(503));
    let h = api.get("/healthz");
    assert_eq!(h.status, 503, "{}", h.text);
    assert!(h.text.contains("store"), "{}", h.text);
    assert_eq!(api.metric("ivrflow_store_failing"), Some(1.0));

    // Space again: the held commit goes through at the next retry (≤ 5 s) and the held
    // 200 OK with it.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let ok = held
        .final_response(Duration::from_secs(15))
        .expect("the held call is answered once the store recovers");
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert!(freed.elapsed() < Duration::from_secs(10));
    held.ack("order-confirmation");
    std::thread::sleep(Duration::from_millis(500));
    held.bye("order-confirmation");
    assert_eq!(options_ping(sip, Duration::from_secs(2)), Some(200));
    assert_eq!(api.get("/healthz").status, 200);
    assert_eq!(api.metric("ivrflow_store_failing"), Some(0.0));

    // Every event of the held call, once each, in order; nothing for the refused one.
    let done = rx.wait_until(Duration::from_secs(20), |hits| {
        hits.iter()
            .any(|h| h.accepted() && h.json["event"] == "call.completed")
    });
    assert!(done, "no call.completed; log:\n{}", server.log_text());
    let events = rx.accepted_once();
    let call_ref = events
        .iter()
        .find(|h| h.json["event"] == "call.started" && h.json["variables"]["order_id"] == "4711")
        .map(|h| h.json["call_ref"].clone())
        .expect("call.started of the held call");
    let of_call: Vec<&Hit> = events
        .iter()
        .filter(|h| h.json["call_ref"] == call_ref)
        .collect();
    let kinds: Vec<&str> = of_call
        .iter()
        .map(|h| h.json["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["call.started", "call.answered", "call.completed"]);
    let seqs: Vec<i64> = of_call
        .iter()
        .map(|h| h.json["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(
        events
            .iter()
            .all(|h| h.json["variables"]["order_id"] != "1"),
        "a refused call reached the CRM"
    );
    drop(server);
}
