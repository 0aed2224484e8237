//! Issue 12 from outside: a hostile caller against the real server on loopback, with a
//! small test caller (`common::uac`) that sends what a stranger would.
//!
//! - the voice pattern that hung the node (30 × 200 ms of voice, 180 ms pauses, then no
//!   RTP at all) on a question that takes speech: the server keeps answering OPTIONS;
//! - `X-Operator` naming the caller's own address, then key 3 (transfer to the operator):
//!   nothing reaches that address, the trunk is asked only for the operator written in the
//!   scenario, and the trunk's credentials go nowhere else;
//! - an INVITE never ACKed: the robot's RTP stops with its BYE;
//! - SDP naming multicast, broadcast or no address: 488.
//!
//! Needs the speech model (the bundled scenarios take speech): `./scripts/setup.sh`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::uac::{Uac, count_rtp, voice, wait_prompt};
use common::*;

fn server(extra: &[&str]) -> Server {
    let model = repo().join(ivrflow::asr::DEFAULT_MODEL);
    assert!(
        model.exists(),
        "{} is missing: run ./scripts/setup.sh",
        model.display()
    );
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    Server::start(sip, extra)
}

/// Drains whatever the robot sends to our RTP socket, so the pattern's timing is ours.
fn answered_call(server: &Server, headers: &str) -> Uac {
    let mut uac = Uac::new(server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite("order-confirmation", headers, &offer);
    let ok = uac
        .final_response(Duration::from_secs(10))
        .expect("a final response");
    assert_eq!(ok.status(), Some(200), "{ok:?}\n{}", server.log_text());
    uac.ack("order-confirmation");
    uac
}

#[test]
fn the_voice_pattern_that_hung_the_node_leaves_it_answering_sip() {
    let server = server(&[]);
    let mut uac = answered_call(&server, "X-Order-Id: 4711\r\n");
    // The greeting ("hello, your number is 4 7 1 1") plays; the question follows and
    // takes speech from its first packet (barge-in): the pattern starts with it, so the
    // max-speech cut (10 s) falls where it did for the reporter.
    assert!(
        wait_prompt(&uac.rtp, 2, Duration::from_secs(15)),
        "the question never started"
    );
    let voice = voice();
    let mut at = 0usize;
    let silence = [0i16; 160];
    let start = Instant::now();
    let mut n = 0u32;
    let pace = |n: &mut u32| {
        *n += 1;
        let due = start + Duration::from_millis(20 * u64::from(*n));
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    };
    for _ in 0..30 {
        for _ in 0..10 {
            uac.send_audio(&voice[at..at + 160], None);
            at = (at + 160) % (voice.len() - 160);
            pace(&mut n);
        }
        for _ in 0..9 {
            uac.send_audio(&silence, None);
            pace(&mut n);
        }
    }
    // Then the phone sends nothing. Every deadline of the endpointer comes and goes; the
    // node must keep answering.
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let status = options_ping(server.sip, Duration::from_secs(2));
        assert_eq!(
            status,
            Some(200),
            "OPTIONS {i} unanswered after the voice pattern; log:\n{}",
            server.log_text()
        );
    }
    uac.bye("order-confirmation");
    let log = server.log_text();
    assert!(
        !log.contains("a handled deadline came back"),
        "a timer broke the rule:\n{log}"
    );
}

#[test]
fn x_operator_neither_dials_through_the_trunk_nor_sends_the_credentials_anywhere() {
    // The shop's trunk (this test listens and answers nothing but REGISTER), and the
    // attacker's own SIP address.
    let trunk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let trunk_addr = trunk.local_addr().unwrap();
    let attacker_addr = attacker.local_addr().unwrap();
    let trunk_uri = format!("sip:shop:secret@{trunk_addr}");
    let server = server(&["--trunk", &trunk_uri]);

    let headers = format!("X-Order-Id: 4711\r\nX-Operator: sip:+447700900123@{attacker_addr}\r\n");
    let mut uac = answered_call(&server, &headers);
    // After the greeting, in the question (its prompt or the 5 s after it).
    std::thread::sleep(Duration::from_secs(9));
    uac.send_key(3, None);
    // "Please hold while I try that extension", then the transfer.
    let until = Instant::now() + Duration::from_secs(8);
    let mut to_trunk = Vec::new();
    let mut buf = vec![0u8; 65535];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        trunk
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok(n) = trunk.recv(&mut buf) {
            to_trunk.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    attacker
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        attacker.recv(&mut buf).is_err(),
        "the caller's own address was contacted; log:\n{}",
        server.log_text()
    );
    let invites: Vec<&String> = to_trunk
        .iter()
        .filter(|m| m.starts_with("INVITE "))
        .collect();
    assert!(
        !invites.is_empty(),
        "key 3 should reach the operator written in the scenario; log:\n{}",
        server.log_text()
    );
    for inv in &invites {
        assert!(
            inv.starts_with("INVITE sip:orders@pbx.shop.example SIP/2.0"),
            "the trunk was asked for something else:\n{inv}"
        );
        assert!(!inv.contains("447700900123"), "{inv}");
    }
    uac.bye("order-confirmation");
}

#[test]
fn an_unacked_invite_stops_its_media_with_the_bye() {
    let server = server(&[]);
    let mut uac = Uac::new(server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite("order-confirmation", "X-Order-Id: 4711\r\n", &offer);
    let ok = uac.final_response(Duration::from_secs(10)).unwrap();
    assert_eq!(ok.status(), Some(200));
    // No ACK. The robot retransmits its 200 OK, then after 64·T1 = 32 s sends BYE.
    let rtp = uac.rtp.try_clone().unwrap();
    let counter =
        std::thread::spawn(move || count_rtp(&rtp, Instant::now() + Duration::from_secs(40)));
    let deadline = Instant::now() + Duration::from_secs(38);
    let bye = loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("no BYE within 38 s");
        if let Some(m) = uac.recv(left)
            && m.method() == Some("BYE")
        {
            break m;
        }
    };
    uac.ok_to(&bye);
    let packets = counter.join().unwrap();
    assert!(
        packets.len() > 100,
        "the robot spoke before the BYE: {}",
        packets.len()
    );
    let late: Vec<_> = packets
        .iter()
        .filter(|t| **t > bye.at + Duration::from_millis(100))
        .collect();
    assert!(
        late.is_empty(),
        "{} RTP packets after the no-ACK BYE; log:\n{}",
        late.len(),
        server.log_text()
    );
}

#[test]
fn multicast_broadcast_or_no_address_in_the_sdp_gets_488() {
    let server = server(&[]);
    for c in ["224.0.0.1", "255.255.255.255", "0.0.0.0"] {
        let mut uac = Uac::new(server.sip);
        let offer = uac.offer(c);
        uac.invite("order-confirmation", "", &offer);
        let r = uac
            .final_response(Duration::from_secs(5))
            .expect("an answer");
        assert_eq!(r.status(), Some(488), "c={c}: {r:?}");
        uac.ack("order-confirmation");
    }
}

/// Issue 12.4 from outside: one caller talks noise without end (a burst of voice every
/// 380 ms: a new utterance to recognise each time) while another caller answers "yes".
/// With a recognition queue of 2, the noisy call can hold at most its own places (one
/// being decoded, one waiting, each newer utterance replacing its waiting one), so the
/// other caller is understood and the order confirmed.
#[test]
fn a_noisy_caller_does_not_starve_another_callers_speech() {
    let crm = Crm::start();
    let dir = std::env::temp_dir().join(format!("ivrflow-fair-speech-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("ivrflow.yaml");
    std::fs::write(&cfg, "asr: { queue: 2 }\n").unwrap();
    let server = server(&["--config", cfg.to_str().unwrap(), "--webhook-url", &crm.url]);

    let mut noisy = answered_call(&server, "X-Order-Id: 1111\r\n");
    let mut polite = answered_call(&server, "X-Order-Id: 2222\r\n");
    assert!(wait_prompt(&noisy.rtp, 2, Duration::from_secs(15)));
    assert!(wait_prompt(&polite.rtp, 2, Duration::from_secs(15)));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_noise = stop.clone();
    let noise = std::thread::spawn(move || {
        let voice = voice();
        let (mut at, mut n) = (0usize, 0u64);
        let start = Instant::now();
        while !stop_noise.load(std::sync::atomic::Ordering::Relaxed) && n < 40 * 19 {
            let pcm = if n % 19 < 10 {
                at = (at + 160) % (voice.len() - 160);
                voice[at..at + 160].to_vec()
            } else {
                vec![0i16; 160]
            };
            noisy.send_audio(&pcm, None);
            n += 1;
            if let Some(d) =
                (start + Duration::from_millis(20 * n)).checked_duration_since(Instant::now())
            {
                std::thread::sleep(d);
            }
        }
        noisy
    });
    // Let the noise fill whatever it can, then answer.
    std::thread::sleep(Duration::from_secs(3));
    let yes =
        ivrflow::media::prompts::load_file(&repo().join("tests/fixtures/speech/synth/en/yes.wav"))
            .expect("fixture");
    let mut pcm = yes.clone();
    pcm.extend(std::iter::repeat_n(0i16, 16000));
    // The question's prompt may not take barge-in: say "yes" (and wait 2 s) until the call
    // completes, bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let polite_completed = |crm: &Crm| {
        crm.bodies
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "call.completed" && e["variables"]["order_id"] == "2222")
    };
    while !polite_completed(&crm) && Instant::now() < deadline {
        let start = Instant::now();
        for (i, chunk) in pcm.chunks(160).enumerate() {
            let mut frame = chunk.to_vec();
            frame.resize(160, 0);
            polite.send_audio(&frame, None);
            if let Some(d) = (start + Duration::from_millis(20 * (i as u64 + 1)))
                .checked_duration_since(Instant::now())
            {
                std::thread::sleep(d);
            }
        }
    }
    let done = crm.wait_for_event("call.completed", 1, Duration::from_secs(15));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut noisy = noise.join().unwrap();
    noisy.bye("order-confirmation");
    let polite_done = done
        .iter()
        .find(|e| e["variables"]["order_id"] == "2222")
        .unwrap_or_else(|| {
            panic!(
                "the polite caller's call did not complete: {done:?}\n{}",
                server.log_text()
            )
        });
    assert_eq!(polite_done["outcome"], "confirmed", "{polite_done:#}");
    assert_eq!(polite_done["answers"]["confirm"]["input"], "speech");
    let log = server.log_text();
    assert!(
        !log.contains("recognition queue full"),
        "the noisy call filled the queue:\n{log}"
    );
}
