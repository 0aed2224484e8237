//! A real SIP call end to end: SIPp (Debian `sip-tester`) calls `ivrflow serve` on loopback,
//! presses 1 as RFC 2833 events, and a real HTTP server receives `call.completed`.
//! The robot's RTP goes to a socket this test owns (SIPp advertises its port in the SDP),
//! so every packet is checked: payload type, sequence numbers, timestamps, marker bits, and
//! the count against the prompts the call trace says were played.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

#[derive(Debug, Clone, Copy)]
struct Rtp {
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    len: usize,
}

fn rtp_sink() -> (u16, Arc<Mutex<Vec<Rtp>>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind RTP sink");
    let port = sock.local_addr().unwrap().port();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let got: Arc<Mutex<Vec<Rtp>>> = Arc::default();
    let store = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let stop = Instant::now() + Duration::from_secs(90);
        while Instant::now() < stop {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if n < 12 || buf[0] >> 6 != 2 {
                    continue;
                }
                store.lock().unwrap().push(Rtp {
                    pt: buf[1] & 0x7f,
                    marker: buf[1] & 0x80 != 0,
                    seq: u16::from_be_bytes([buf[2], buf[3]]),
                    ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                    len: n,
                });
            }
        }
    });
    (port, got)
}

#[test]
fn sipp_caller_presses_1_and_crm_receives_confirmed() {
    let crm = Crm::start();
    let (rtp_port, rtp) = rtp_sink();
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    // Packets are counted against the prompts played: no silence between them, no RTCP
    // (tests/sip_tcp_tls.rs checks those).
    let config = std::env::temp_dir().join(format!("ivrflow-sipp-call-{}.yaml", sip.port()));
    std::fs::write(&config, "media:\n  keepalive: false\n  rtcp: false\n").unwrap();
    let server = Server::start(
        sip,
        &[
            "--config",
            config.to_str().unwrap(),
            "--webhook-url",
            &crm.url,
            "--rtp-ports",
            "31000-31999",
        ],
    );

    let scenario = fixture("sipp/uac_dtmf.xml");
    let out = run_sipp(
        &[
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
            "-l",
            "1",
            "-key",
            "rtp_port",
            &rtp_port.to_string(),
            "-key",
            "order_id",
            "4711",
            // Listen 9 s, then press 1: the greeting with the order number takes ~5 s, so
            // the key lands in the middle of the question and cuts it (barge-in).
            "-d",
            "9000",
            "-timeout",
            "60",
            "-timeout_error",
        ],
        Duration::from_secs(75),
    );
    let sipp_log = format!(
        "sipp stdout:\n{}\nsipp stderr:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    assert!(
        out.status.success(),
        "SIPp call failed ({:?})\n{sipp_log}",
        out.status
    );

    // The CRM also hears call.started and call.answered; this test is about the result.
    let events = crm.wait_for_event("call.completed", 1, Duration::from_secs(10));
    assert_eq!(events.len(), 1, "one call.completed expected\n{sipp_log}");
    let ev = &events[0];
    assert_eq!(ev["event"], "call.completed");
    assert_eq!(ev["scenario"], "order-confirmation");
    assert_eq!(ev["outcome"], "confirmed", "{ev:#}");
    assert_eq!(ev["answers"]["confirm"]["input"], "dtmf");
    assert_eq!(ev["answers"]["confirm"]["value"], "1");
    assert_eq!(ev["answers"]["confirm"]["intent"], "confirm");
    assert_eq!(
        ev["variables"]["order_id"], "4711",
        "X-Order-Id fills order_id"
    );
    assert_eq!(ev["hangup_by"], "robot");
    assert!(ev["call_id"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(ev["started_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Exactly one key press was recognised, however many end packets the pcap carried.
    let trace = ev["trace"].as_array().expect("trace");
    let keys: Vec<&serde_json::Value> = trace.iter().filter(|e| e["type"] == "dtmf").collect();
    assert_eq!(
        keys.len(),
        1,
        "one digit from one RFC 2833 event: {trace:#?}"
    );

    // The key came in the middle of the question and cut it (barge-in).
    assert!(
        trace.iter().any(|e| e["type"] == "play_stopped"),
        "the question was interrupted by the key: {trace:#?}"
    );

    // The RTP the robot sent: what the trace says was played, 20 ms a packet.
    std::thread::sleep(Duration::from_millis(300));
    let pkts = rtp.lock().unwrap().clone();
    let mut expected_ms = 0u64;
    for e in trace {
        match e["type"].as_str() {
            Some("play") => expected_ms += e["duration_ms"].as_u64().unwrap(),
            Some("play_stopped") => {
                // A cut prompt plays only part of its duration: take back what was not heard.
                let id = e["id"].as_u64().unwrap();
                let full = trace
                    .iter()
                    .find(|p| p["type"] == "play" && p["id"].as_u64() == Some(id))
                    .and_then(|p| p["duration_ms"].as_u64())
                    .unwrap();
                expected_ms -= full - e["heard_ms"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    let expected = expected_ms as f64 / 20.0;
    let n = pkts.len() as f64;
    assert!(
        (n - expected).abs() <= 3.0 + expected * 0.02,
        "received {n} RTP packets, the trace's prompts make {expected:.1}"
    );
    assert!(
        pkts.iter().all(|p| p.pt == 0),
        "payload type 0 (PCMU) as negotiated"
    );
    assert!(
        pkts.iter().all(|p| p.len == 12 + 160),
        "20 ms of G.711 per packet"
    );
    let ssrc = pkts[0].ssrc;
    assert!(pkts.iter().all(|p| p.ssrc == ssrc), "one SSRC");
    assert!(pkts[0].marker, "marker on the first packet");
    let mut talkspurts = 1;
    for w in pkts.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence steps by one");
        let dts = w[1].ts.wrapping_sub(w[0].ts);
        if w[1].marker {
            talkspurts += 1;
            assert!(
                (160..8000 * 60).contains(&dts),
                "timestamp moves forward across silence: {dts}"
            );
        } else {
            assert_eq!(dts, 160, "timestamp steps by 160 within a prompt");
        }
    }
    let plays = trace.iter().filter(|e| e["type"] == "play").count();
    assert!(
        talkspurts <= plays,
        "{talkspurts} marker bits for {plays} prompts"
    );
    drop(server);
    let _ = std::fs::remove_file(&config);
}
