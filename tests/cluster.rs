//! Several nodes behind Kamailio (issue 15.4), real processes on loopback: Kamailio's
//! dispatcher (deploy/kamailio/kamailio.cfg) spreads SIPp calls over the ivrflow nodes,
//! in-dialog requests follow Record-Route to the node that has the call, and when a node is
//! killed (SIGKILL) new calls go to the survivors — none is lost.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::crm::{DataDir, rtp_sink};
use common::kamailio::Kamailio;
use common::*;

const DESK: &str = r#"version: 1
name: desk
languages: [en]
start: q
nodes:
  q:
    ask:
      prompt: [hello]
      input: [dtmf]
      timeout: 20s
      intents:
        "yes": { dtmf: ["1"] }
    on:
      "yes": done
      noinput: done
      nomatch: done
  done:
    hangup: { outcome: pressed, play: [goodbye] }
"#;

fn node(dir: &DataDir, crm: &Crm, name: &str) -> Server {
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let data = dir.path().join(name);
    let scenarios = dir.path().join("scenarios");
    Server::start(
        sip,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--scenarios",
            scenarios.to_str().unwrap(),
            "--webhook-url",
            &crm.url,
        ],
    )
}

/// `n` SIPp calls through the proxy, each pressing 1 after 1 s; SIPp's exit status.
fn calls_through(proxy: SocketAddr, n: u32, rtp: u16) -> std::process::Output {
    let path = fixture("sipp/uac_proxy.xml");
    let port = free_udp_port().to_string();
    run_sipp(
        &[
            "-sf",
            path.to_str().unwrap(),
            "-s",
            "desk",
            &proxy.to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "-m",
            &n.to_string(),
            "-r",
            "5",
            "-l",
            "10",
            "-key",
            "rtp_port",
            &rtp.to_string(),
            "-key",
            "order_id",
            "1",
            "-d",
            "1000",
            "-timeout",
            "40",
            "-timeout_error",
        ],
        Duration::from_secs(60),
    )
}

fn answered(server: &Server) -> usize {
    server.log_text().matches("incoming call").count()
}

#[test]
fn kamailio_spreads_calls_and_routes_around_a_killed_node() {
    require_tool("sipp", "sip-tester");
    let dir = DataDir::new("cluster");
    std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
    std::fs::write(dir.path().join("scenarios/desk.yaml"), DESK).unwrap();
    let crm = Crm::start();
    let mut a = node(&dir, &crm, "a");
    let b = node(&dir, &crm, "b");
    let proxy = Kamailio::start(&[a.sip, b.sip]);
    let sink = rtp_sink();
    let rtp = sink.local_addr().unwrap().port();

    let out = calls_through(proxy.addr, 6, rtp);
    assert!(
        out.status.success(),
        "sipp: {}\n{}\nkamailio:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        proxy.log_text()
    );
    let done = crm.wait_for_event("call.completed", 6, Duration::from_secs(15));
    assert_eq!(done.len(), 6);
    assert!(done.iter().all(|e| e["outcome"] == "pressed"), "{done:#?}");
    // Round robin: both nodes took calls.
    let (on_a, on_b) = (answered(&a), answered(&b));
    assert_eq!(on_a + on_b, 6);
    assert!(on_a >= 2 && on_b >= 2, "a {on_a}, b {on_b}");

    // Node a dies: every new call is answered by b (the first ones after the kill wait for
    // Kamailio's INVITE timeout, then fail over; the probe takes a out of the set).
    a.child.kill().unwrap();
    let _ = a.child.wait();
    let out = calls_through(proxy.addr, 6, rtp);
    assert!(
        out.status.success(),
        "sipp: {}\n{}\nkamailio:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        proxy.log_text()
    );
    let done = crm.wait_for_event("call.completed", 12, Duration::from_secs(15));
    assert_eq!(done.len(), 12);
    assert_eq!(answered(&b), on_b + 6);
}
