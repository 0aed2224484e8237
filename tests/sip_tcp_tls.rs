//! SIP over TCP and TLS with a peer nobody here wrote (issue 19): SIPp (Debian
//! `sip-tester`) calls order-confirmation over TCP, and over TLS through socat (OpenSSL's
//! TLS client verifying ivrflow's certificate against a CA made for the test — the Debian
//! SIPp build has no TLS of its own: `sipp -v` lists no OpenSSL). Each call runs to
//! `confirmed` at a real HTTP CRM. The TCP call also checks the media that keeps paths open:
//! the robot's RTP never pauses, listening phases included, and RTCP reports arrive on the
//! next port. And a TCP call on IPv6 loopback (`[::1]`), signalling and media.

mod common;
mod interop;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use interop::*;

/// Runs SIPp's DTMF caller against `target` over TCP; returns its output for messages.
fn sipp_tcp_call(target: SocketAddr, rtp_port: u16) -> (bool, String) {
    let scenario = fixture("sipp/uac_dtmf.xml");
    let local_ip = target.ip().to_string();
    let out = run_sipp(
        &[
            "-sf",
            scenario.to_str().unwrap(),
            "-s",
            "order-confirmation",
            &target.to_string(),
            "-t",
            "t1",
            "-i",
            &local_ip,
            "-p",
            &free_tcp_port().to_string(),
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
            "-d",
            "9000",
            "-timeout",
            "60",
            "-timeout_error",
        ],
        Duration::from_secs(75),
    );
    (
        out.status.success(),
        format!(
            "sipp stdout:\n{}\nsipp stderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn assert_confirmed(crm: &Crm, log: &str) {
    let events = crm.wait_for_event("call.completed", 1, Duration::from_secs(10));
    assert_eq!(events.len(), 1, "one call.completed expected\n{log}");
    let ev = &events[0];
    assert_eq!(ev["outcome"], "confirmed", "{ev:#}\n{log}");
    assert_eq!(ev["answers"]["confirm"]["value"], "1");
    assert_eq!(ev["hangup_by"], "robot");
}

#[test]
fn sipp_over_tcp_confirms_and_the_robot_never_goes_silent() {
    let crm = Crm::start();
    let sink = RtpSink::start(Duration::from_secs(90));
    let port = free_tcp_port();
    let udp: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tcp = format!("tcp:127.0.0.1:{port}");
    let server = Server::start(
        udp,
        &[
            "--sip-listen",
            &tcp,
            "--webhook-url",
            &crm.url,
            "--rtp-ports",
            "33000-33999",
        ],
    );
    let (ok, sipp_log) = sipp_tcp_call(udp, sink.port);
    let log = format!("{sipp_log}\nserver log:\n{}", server.log_text());
    assert!(ok, "SIPp call over TCP failed\n{log}");
    assert!(
        sipp_log.contains("Successful call")
            && !sipp_log.contains("Failed call            |        0                  |        1"),
        "{log}"
    );
    assert_confirmed(&crm, &log);
    assert!(
        server.log_text().contains("source=127.0.0.1:"),
        "the call arrived\n{log}"
    );

    // The robot's stream: one SSRC, no pause longer than a few packets from the first
    // packet to the BYE, though the caller listened silently for seconds between prompts.
    std::thread::sleep(Duration::from_millis(300));
    let pkts = sink.packets();
    assert!(pkts.len() > 200, "{} RTP packets", pkts.len());
    assert!(
        pkts.iter()
            .all(|p| p.ssrc == pkts[0].ssrc && p.pt == 0 && p.len == 172)
    );
    for w in pkts.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence steps by one");
        assert_eq!(w[1].ts.wrapping_sub(w[0].ts), 160, "timestamp steps by 160");
    }
    let g = gaps(&pkts);
    let max = *g.last().unwrap();
    let p99 = g[g.len() * 99 / 100];
    println!(
        "RTP to the caller: {} packets, gap p50 {:?}, p99 {p99:?}, max {max:?}",
        pkts.len(),
        g[g.len() / 2]
    );
    // Never silent while the robot listens: a listening phase without keep-alive frames
    // would be a gap of seconds. Pacing quality (the p50/p99 above) is the benchmark's to
    // measure, not a pass/fail here: a loaded CI machine delays ticks (one run with the host
    // stealing half the CPU saw p99 42 ms, every packet in order).
    assert!(
        max <= Duration::from_millis(250),
        "max gap {max:?} (p99 {p99:?})"
    );
    // RTCP: at least one sender report and the BYE, on the RTP port + 1.
    let rtcp = sink.rtcp.lock().unwrap().clone();
    assert!(
        rtcp.iter().any(|p| p.len() >= 28 && p[1] == 200),
        "an RTCP sender report: {rtcp:?}"
    );
    assert!(
        rtcp.iter().any(|p| p.windows(2).any(|w| w == [0x81, 203])),
        "an RTCP BYE at the end: {rtcp:?}"
    );
    drop(server);
}

#[test]
fn sipp_over_tls_through_openssl_confirms() {
    let dir = TempDir::new("tls");
    let (ca, cert, key) = pki(&dir.0);
    let crm = Crm::start();
    let port = free_tcp_port();
    let udp: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tls_port = free_tcp_port();
    let tls: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let server = Server::start(
        udp,
        &[
            "--sip-listen",
            &format!("tls:{tls}"),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--webhook-url",
            &crm.url,
            "--rtp-ports",
            "34000-34999",
        ],
    );
    let relay = free_tcp_port();
    let _socat = Socat::start(relay, tls, &ca);
    let sink = RtpSink::start(Duration::from_secs(90));
    let (ok, sipp_log) = sipp_tcp_call(format!("127.0.0.1:{relay}").parse().unwrap(), sink.port);
    let log = format!("{sipp_log}\nserver log:\n{}", server.log_text());
    assert!(ok, "SIPp call over TLS (socat) failed\n{log}");
    assert_confirmed(&crm, &log);
    // Our Contact named the TLS listener.
    assert!(server.log_text().contains("incoming call"), "{log}");
    drop(server);
}

#[test]
fn sipp_over_tcp_on_ipv6_loopback_confirms() {
    let crm = Crm::start();
    let port = free_tcp_port();
    let udp: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let server = Server::start(
        udp,
        &[
            "--sip-listen",
            &format!("tcp:[::1]:{port}"),
            "--webhook-url",
            &crm.url,
            "--rtp-ports",
            "36000-36999",
        ],
    );
    let (ok, sipp_log) = sipp_tcp_call(udp, free_udp_port());
    let log = format!("{sipp_log}\nserver log:\n{}", server.log_text());
    assert!(ok, "SIPp call over TCP on [::1] failed\n{log}");
    assert_confirmed(&crm, &log);
    assert!(
        server.log_text().contains("remote_rtp=[::1]:"),
        "media on IPv6 too\n{log}"
    );
    drop(server);
}
