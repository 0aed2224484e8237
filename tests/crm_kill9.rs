//! `kill -9` of `ivrflow serve` while it delivers, then a restart on the same data
//! directory: nothing is lost, and nothing is duplicated beyond at-least-once (only
//! messages whose attempt was under way at the kill may arrive twice). And a call that was
//! up at the kill is reported as `call.failed` (`interrupted`) after the restart.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::crm::*;
use common::*;

const MAX_IN_FLIGHT: usize = 2;

fn start(dir: &DataDir, sip: SocketAddr, api: SocketAddr) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_API_TOKEN", TOKEN)
        .env("IVRFLOW_WEBHOOK_SECRET", SECRET);
    Server::start_with(
        cmd,
        sip,
        &[
            "--config",
            dir.0.join("ivrflow.yaml").to_str().unwrap(),
            "--data-dir",
            dir.arg(),
            "--api-listen",
            &api.to_string(),
            "--rtp-ports",
            "34000-34999",
            "--trunk",
            "sip:127.0.0.1:9",
        ],
    )
}

fn kill9(mut server: Server) -> String {
    // std's Child::kill is SIGKILL on Unix: no shutdown code runs.
    server.child.kill().expect("kill -9");
    let status = server.child.wait().unwrap();
    assert!(!status.success());
    server.log_text()
}

#[test]
fn kill_9_during_delivery_loses_nothing() {
    // Each delivery takes 300 ms on the receiver, two at a time: the 52 events need about
    // 8 s, so the kill lands mid-delivery.
    let rx = Receiver::start(Mode::SlowFirst(u32::MAX, Duration::from_millis(300)));
    let dir = DataDir::new("kill9");
    dir.config(&format!(
        "{}  max_in_flight: {MAX_IN_FLIGHT}\n",
        fast_config(&rx.url, "5s", "[100ms]", 50)
    ));
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let api_addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let server = start(&dir, sip, api_addr);
    let api = Api::new(api_addr);

    // 40 queued calls (one event each, committed before the API answered) and 4 SIP calls
    // (three events each).
    let calls: HashSet<String> = (0..40)
        .map(|i| api.queue_call(&format!("1555{i:07}"), Some(&format!("k9-{i}"))))
        .collect();
    let rtp = rtp_sink();
    let out = sipp_calls(
        sip,
        "uac_hangup.xml",
        4,
        200,
        rtp.local_addr().unwrap().port(),
    );
    assert!(out.status.success(), "{}", server.log_text());
    let want = 40 + 4 * 3;

    // Kill while deliveries are under way: some arrived, most did not.
    assert!(rx.wait_until(Duration::from_secs(20), |h| h.len() >= 10));
    let log1 = kill9(server);
    let before_kill = rx.hits().len();
    assert!(
        before_kill < want,
        "the kill must land mid-delivery ({before_kill} of {want} already arrived)\n{log1}"
    );

    // The receiver stays up; the restarted server delivers the rest.
    rx.set_mode(Mode::Ok);
    let server = start(&dir, sip, api_addr);
    let accepted = rx.wait_accepted(want, Duration::from_secs(30));
    assert_eq!(
        accepted.len(),
        want,
        "every event arrives after the restart\nfirst run:\n{log1}\nsecond run:\n{}",
        server.log_text()
    );
    let by_call = check_order(&accepted);
    let sip_calls: Vec<&Vec<String>> = by_call
        .iter()
        .filter(|(id, _)| !calls.contains(*id))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(sip_calls.len(), 4);
    for v in sip_calls {
        assert_eq!(v, &["call.started", "call.answered", "call.completed"]);
    }
    for id in &calls {
        assert_eq!(by_call[id], vec!["call.queued".to_owned()], "{id}");
    }

    // At-least-once, and no more: a message arrives twice only if its attempt was in
    // flight when the process died (at most max_in_flight of them).
    let mut counts: HashMap<String, usize> = HashMap::new();
    for h in rx.hits() {
        *counts.entry(h.id).or_insert(0) += 1;
    }
    let dups: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "kill -9 after {before_kill} of {want} deliveries had arrived; {} duplicate(s) after the restart",
        dups.len()
    );
    assert!(
        dups.len() <= MAX_IN_FLIGHT && dups.iter().all(|(_, n)| **n == 2),
        "duplicates beyond the attempts in flight at the kill: {dups:?}"
    );

    // The store agrees: everything delivered, nothing pending or dead. (A new client: the
    // old one's pooled connections died with the first process.)
    let api = Api::new(api_addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let all = api.get("/v1/events?limit=1000");
        let evs = all.json["events"].as_array().unwrap().clone();
        let delivered = evs.iter().filter(|e| e["status"] == "delivered").count();
        if delivered == want {
            assert_eq!(evs.len(), want);
            break;
        }
        assert!(Instant::now() < deadline, "store: {evs:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
}

#[test]
fn a_call_cut_by_kill_9_is_reported_interrupted() {
    let rx = Receiver::start(Mode::Ok);
    let dir = DataDir::new("interrupt");
    dir.config(&fast_config(&rx.url, "2s", "[100ms]", 20));
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let api_addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let server = start(&dir, sip, api_addr);

    // A caller that stays on the line for 20 s (SIPp in the background).
    require_tool("sipp", "sip-tester");
    let rtp = rtp_sink();
    let scenario = fixture("sipp/uac_hangup.xml");
    let mut sipp = Command::new("sipp")
        .args([
            "-sf",
            scenario.to_str().unwrap(),
            "-s",
            "order-confirmation",
            &sip.to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &free_udp_port().to_string(),
            "-m",
            "1",
            "-key",
            "rtp_port",
            &rtp.local_addr().unwrap().port().to_string(),
            "-key",
            "order_id",
            "77",
            "-d",
            "20000",
            "-nostdin",
        ])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");

    let accepted = rx.wait_accepted(2, Duration::from_secs(10));
    let kinds: Vec<&str> = accepted
        .iter()
        .map(|h| h.json["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["call.started", "call.answered"],
        "{}",
        server.log_text()
    );
    let call_ref = accepted[0].json["call_ref"].as_str().unwrap().to_owned();
    let log1 = kill9(server);
    let _ = sipp.kill();
    let _ = sipp.wait();

    let server = start(&dir, sip, api_addr);
    let accepted = rx.wait_accepted(3, Duration::from_secs(10));
    assert_eq!(accepted.len(), 3, "{log1}\n{}", server.log_text());
    let failed = &accepted[2].json;
    assert_eq!(failed["event"], "call.failed");
    assert_eq!(failed["call_ref"], call_ref.as_str());
    assert_eq!(failed["seq"], 3);
    assert_eq!(failed["reason"], "interrupted");
    assert_eq!(failed["variables"]["order_id"], "77");
    let by: BTreeMap<String, Vec<String>> = check_order(&accepted);
    assert_eq!(by.len(), 1);
    let call = Api::new(api_addr).get(&format!("/v1/calls/{call_ref}"));
    assert_eq!(call.json["state"], "failed");
    assert_eq!(call.json["failure"]["reason"], "interrupted");
}
