//! A trunk named by DNS (RFC 3263) fails over to its second target (issue 19): dnsmasq on
//! loopback serves `trunk.test` as NAPTR → `_sip._udp.trunk.test` SRV → two targets; the
//! first (priority 10) is a SIPp that answers 503, the second (priority 20) a SIPp callee
//! that answers and presses 1. An outbound order confirmation queued through the API
//! reaches the second and ends `confirmed`; the first saw the INVITE first.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::crm::*;
use common::*;

struct Proc(Child, PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

impl Proc {
    fn log(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.1).into_iter().flatten().flatten() {
            out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        out
    }
}

fn wait_udp_bound(port: u16) {
    let hex = format!(":{port:04X} ");
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
        if table.lines().any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| format!("{a} ").ends_with(&hex))
        }) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing bound UDP 127.0.0.1:{port} within 15 s");
}

/// SIPp as a trunk target with a tests/sipp scenario (`{{k}}` filled in).
fn target(scenario: &str, subs: &[(&str, &str)]) -> (Proc, u16) {
    require_tool("sipp", "sip-tester");
    let port = free_udp_port();
    let dir = std::env::temp_dir().join(format!("ivrflow-dns-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut xml = std::fs::read_to_string(fixture(&format!("sipp/{scenario}"))).unwrap();
    for (k, v) in subs {
        xml = xml.replace(&format!("{{{{{k}}}}}"), v);
    }
    let file = dir.join(scenario);
    std::fs::write(&file, xml).unwrap();
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(&file)
        .args(["-timeout", "90", "-m", "1"])
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-nostdin", "-trace_err", "-trace_msg"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");
    wait_udp_bound(port);
    (Proc(child, dir), port)
}

/// dnsmasq answering for trunk.test on 127.0.0.1:`port` only (no upstream, no hosts file).
fn dnsmasq(port: u16, a: u16, b: u16) -> Proc {
    require_tool("dnsmasq", "dnsmasq");
    let dir = std::env::temp_dir().join(format!("ivrflow-dnsmasq-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            &format!("--port={port}"),
            "--naptr-record=trunk.test,10,10,S,SIP+D2U,,_sip._udp.trunk.test",
            &format!("--srv-host=_sip._udp.trunk.test,a.trunk.test,{a},10,10"),
            &format!("--srv-host=_sip._udp.trunk.test,b.trunk.test,{b},20,10"),
            "--host-record=a.trunk.test,127.0.0.1",
            "--host-record=b.trunk.test,127.0.0.1",
            "--log-queries",
            "--log-facility=-",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dnsmasq.log")).unwrap())
        .spawn()
        .expect("start dnsmasq");
    wait_udp_bound(port);
    Proc(child, dir)
}

#[test]
fn a_trunk_named_by_srv_fails_over_to_its_second_target() {
    let (first, a) = target("uas_503.xml", &[]);
    let (second, b) = target(
        "uas_answer.xml",
        &[
            ("pause_ms", "12000"),
            ("dtmf_pcap", "/usr/share/sip-tester/dtmf_2833_1.pcap"),
        ],
    );
    let dns_port = free_udp_port();
    let dns = dnsmasq(dns_port, a, b);
    let rx = Receiver::start(Mode::Ok);
    let dir = DataDir::new("dns-srv");
    let cfg = dir.config(&format!(
        "{}sip:\n  dns: 127.0.0.1:{dns_port}\ntrunks:\n  - name: carrier\n    proxy: trunk.test\n    domain: trunk.test\n    register: false\n    keepalive: 0s\n",
        fast_config(&rx.url, "2s", "[200ms]", 5)
    ));
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
            &cfg,
            "--data-dir",
            dir.arg(),
            "--api-listen",
            &api_s,
        ],
    );
    let api = Api::new(api_addr);
    let r = api.post(
        "/v1/calls",
        r#"{"to":"100","scenario":"order-confirmation","variables":{"order_id":"4711"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let ok = rx.wait_until(Duration::from_secs(60), |hits| {
        hits.iter().any(|h| {
            h.accepted() && h.json["call_ref"] == id.as_str() && h.json["event"] == "call.completed"
        })
    });
    let log = || {
        format!(
            "server log:\n{}\nfirst target:\n{}\nsecond target:\n{}\ndnsmasq:\n{}",
            server.log_text(),
            first.log(),
            second.log(),
            dns.log()
        )
    };
    assert!(ok, "no call.completed\n{}", log());
    let done = rx
        .accepted_once()
        .into_iter()
        .find(|h| h.json["call_ref"] == id.as_str() && h.json["event"] == "call.completed")
        .unwrap()
        .json;
    assert_eq!(done["outcome"], "confirmed", "{done:#}\n{}", log());
    // The lookup went NAPTR → SRV (dnsmasq sends the targets' addresses along as
    // additional records), and the INVITE went to a (503), then to b.
    let d = dns.log();
    assert!(d.contains("query[NAPTR] trunk.test"), "{d}");
    assert!(d.contains("query[SRV] _sip._udp.trunk.test"), "{d}");
    assert!(first.log().contains("503 Service Unavailable"), "{}", log());
    assert!(
        server.log_text().contains("trying the next"),
        "the failover is logged\n{}",
        log()
    );
    drop(server);
}
