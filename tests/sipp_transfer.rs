//! Transfers from a scenario node, end to end against SIPp peers on loopback.
//!
//! Bridged: a SIPp caller dials the inbound menu, chooses Russian and sales by RFC 4733
//! keys; ivrflow rings the SIPp agent, plays it the announcement ("the caller speaks
//! Russian", in Russian) and only then relays media. The agent's RTP goes to a socket of this test, so
//! the test hears exactly what the agent hears: the announcement's own G.711 bytes first,
//! then the caller's audio and the caller's key, relayed.
//!
//! Blind: a SIPp caller presses 2 and gets a REFER whose Refer-To is the agent; it reports
//! the transfer by NOTIFY (100, then 200) and ivrflow leaves the call.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::crm::*;
use common::*;

use ivrflow::media::Codec;
use ivrflow::media::prompts::PromptCache;

fn serve(dir: &DataDir, rx: &Receiver, scenarios: Option<&str>) -> Server {
    let cfg = dir.config(&fast_config(&rx.url, "2s", "[200ms]", 5));
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let mut args = vec!["--config", cfg.as_str(), "--data-dir", dir.arg()];
    if let Some(s) = scenarios {
        args.extend(["--scenarios", s]);
    }
    Server::start(sip, &args)
}

/// An RTP packet the agent received.
struct Heard {
    ssrc: u32,
    pt: u8,
    payload: Vec<u8>,
}

/// Collect every datagram on `sock` until `stop` is set.
fn capture(sock: UdpSocket, stop: Arc<Mutex<bool>>) -> std::thread::JoinHandle<Vec<Heard>> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while !*stop.lock().unwrap() {
            if let Ok(n) = sock.recv(&mut buf)
                && n >= 12
            {
                out.push(Heard {
                    ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                    pt: buf[1] & 0x7f,
                    payload: buf[12..n].to_vec(),
                });
            }
        }
        out
    })
}

#[test]
fn inbound_menu_bridges_to_an_agent_who_hears_the_announcement_first() {
    require_tool("sipp", "sip-tester");
    let rx = Receiver::start(Mode::Ok);
    let dir = DataDir::new("bridged");
    let agent_port = free_udp_port();
    // The shop's agent is configured in the scenario file; the caller's X-Sales header
    // (below) names another address, which must be ignored (issue 12).
    let scenarios = dir.0.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    for entry in std::fs::read_dir(repo().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace(
            "sip:sales@pbx.shop.example",
            &format!("sip:agent@127.0.0.1:{agent_port}"),
        );
        std::fs::write(scenarios.join(path.file_name().unwrap()), text).unwrap();
    }
    let server = serve(&dir, &rx, Some(scenarios.to_str().unwrap()));

    let agent_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let agent_rtp_port = agent_rtp.local_addr().unwrap().port();
    let stop = Arc::new(Mutex::new(false));
    let heard = capture(agent_rtp, stop.clone());
    let mut agent = Command::new("sipp")
        .arg("-sf")
        .arg(fixture("sipp/uas_agent.xml"))
        .args(["-timeout", "90"])
        .args(["-i", "127.0.0.1", "-p", &agent_port.to_string(), "-m", "1"])
        .args(["-key", "rtp_port", &agent_rtp_port.to_string()])
        .args(["-set", "hold_ms", "16000", "-nostdin"])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the SIPp agent");

    let sink = rtp_sink();
    let caller_port = free_udp_port().to_string();
    let out = run_sipp(
        &[
            "-sf",
            fixture("sipp/uac_transfer_bridged.xml").to_str().unwrap(),
            "-s",
            "inbound-menu",
            &server.sip.to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &caller_port,
            "-m",
            "1",
            "-key",
            "rtp_port",
            &sink.local_addr().unwrap().port().to_string(),
            "-set",
            "agent",
            "sip:evil@127.0.0.1:9",
            "-timeout",
            "60",
            "-timeout_error",
        ],
        Duration::from_secs(80),
    );
    let agent_status = agent.wait().expect("the SIPp agent");
    *stop.lock().unwrap() = true;
    let heard = heard.join().unwrap();
    let log = server.log_text();
    assert!(
        out.status.success(),
        "caller: {}\n{}\nserver log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        agent_status.success(),
        "the agent's call failed; server log:\n{log}"
    );

    // What the agent heard first: the announcement, byte for byte (PCMU, one stream).
    assert!(!heard.is_empty(), "the agent heard nothing");
    let robot = heard[0].ssrc;
    let announce: Vec<&Heard> = heard.iter().take_while(|h| h.ssrc == robot).collect();
    assert!(announce.iter().all(|h| h.pt == 0));
    let sent: Vec<u8> = announce.iter().flat_map(|h| h.payload.clone()).collect();
    let prompts = PromptCache::load_dir(&repo().join("audio")).unwrap();
    let expected = prompts
        .get("ru", "shop/announce-caller")
        .expect("the Russian announcement")
        .encoded(Codec::Pcmu)
        .clone();
    assert!(
        sent.len() >= expected.len() && sent[..expected.len()] == expected[..],
        "the agent's first {} bytes are not the announcement ({} bytes)",
        sent.len(),
        expected.len()
    );
    // Then the caller, relayed: the A-law recording (payload type 8, the caller's stream),
    // and key 5 renumbered to the agent's telephone-event type (101).
    let after = &heard[announce.len()..];
    let speech = after.iter().filter(|h| h.pt == 8).count();
    assert!(
        speech >= 200,
        "{speech} relayed audio packets (236 sent); types after the announcement: {:?}",
        after
            .iter()
            .map(|h| h.pt)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        after.iter().all(|h| h.ssrc != robot),
        "the robot spoke after the bridge"
    );
    assert!(
        after
            .iter()
            .any(|h| h.pt == 101 && h.payload.first() == Some(&5)),
        "the caller's key 5 did not reach the agent"
    );

    // The CRM: transferred, with the department chosen.
    let ok = rx.wait_until(Duration::from_secs(10), |hits| {
        hits.iter()
            .any(|h| h.accepted() && h.json["event"] == "call.completed")
    });
    assert!(ok, "no call.completed; server log:\n{log}");
    let done = rx
        .accepted_once()
        .into_iter()
        .find(|h| h.json["event"] == "call.completed")
        .unwrap()
        .json;
    assert_eq!(done["outcome"], "transferred", "{done:#}");
    assert_eq!(done["variables"]["department"], "sales");
    assert_eq!(
        done["variables"]["sales"],
        format!("sip:agent@127.0.0.1:{agent_port}"),
        "X-Sales set nothing"
    );
    assert_eq!(done["variables"]["language"], "ru");
}

#[test]
fn a_blind_transfer_refers_the_caller_and_tracks_the_notifies() {
    require_tool("sipp", "sip-tester");
    let agent = format!("sip:agent@127.0.0.1:{}", free_udp_port());
    let rx = Receiver::start(Mode::Ok);
    let dir = DataDir::new("blind");
    let scenarios = dir.0.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("transfer.yaml"),
        format!(
            r#"version: 1
name: transfer
description: Press 2 to be transferred to the agent by REFER.
languages: [en]
variables:
  language: {{ type: string, default: en }}
start: menu
nodes:
  menu:
    ask:
      prompt: [shop/menu-department]
      input: [dtmf]
      intents:
        sales: {{ dtmf: ["2"] }}
    on: {{ sales: to_agent, noinput: bye, nomatch: bye }}
  to_agent:
    transfer: {{ target: "{agent}", mode: blind }}
    on: {{ busy: bye, noanswer: bye, failed: bye }}
  bye:
    hangup: {{ outcome: not_transferred, play: [goodbye] }}
"#
        ),
    )
    .unwrap();
    let server = serve(&dir, &rx, Some(scenarios.to_str().unwrap()));
    let sink = rtp_sink();
    let started = Instant::now();
    let out = run_sipp(
        &[
            "-sf",
            fixture("sipp/uac_transfer_blind.xml").to_str().unwrap(),
            "-s",
            "transfer",
            &server.sip.to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &free_udp_port().to_string(),
            "-m",
            "1",
            "-key",
            "rtp_port",
            &sink.local_addr().unwrap().port().to_string(),
            "-key",
            "digits",
            "2",
            "-set",
            "agent",
            &agent,
            "-d",
            "2000",
            "-timeout",
            "40",
            "-timeout_error",
        ],
        Duration::from_secs(60),
    );
    let log = server.log_text();
    assert!(
        out.status.success(),
        "caller: {}\n{}\nserver log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = rx.wait_until(Duration::from_secs(10), |hits| {
        hits.iter()
            .any(|h| h.accepted() && h.json["event"] == "call.completed")
    });
    assert!(ok, "no call.completed; server log:\n{log}");
    let done = rx
        .accepted_once()
        .into_iter()
        .find(|h| h.json["event"] == "call.completed")
        .unwrap()
        .json;
    assert_eq!(done["outcome"], "transferred", "{done:#}");
    assert_eq!(done["hangup_by"], "robot");
    assert!(started.elapsed() < Duration::from_secs(60));
}
