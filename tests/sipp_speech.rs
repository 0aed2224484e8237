//! A spoken answer over a real SIP call: SIPp calls `ivrflow serve` on loopback and, in the
//! middle of the order-confirmation question, says "yes" as RTP (PCMU) — a pcap this test
//! builds from `tests/fixtures/speech/synth/en/yes.wav`. The robot's media path (G.711
//! decode → VAD/endpointer → Whisper on the recognition threads → intent) must confirm the
//! order, and the CRM must receive `call.completed` with a speech answer.
//!
//! Also over real SIP, the cases of issue 16: a caller who says the key ("one", a human
//! recording) instead of pressing it, a key typed during the greeting (type-ahead), a
//! negation ("I haven't paid yet" is not "paid") and an ordinal ("fifteenth" answers a
//! day-of-the-month question).
//! Each speech answer must be in the trace with its transcript redacted.
//!
//! Needs the speech model (`./scripts/setup.sh`); without it the server refuses to start
//! and this test fails saying so.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use ivrflow::media::Codec;

/// A classic pcap (Ethernet / IPv4 / UDP / RTP) of `pcm` (8 kHz) as 20 ms PCMU packets,
/// paced by the capture timestamps, the way SIPp's `play_pcap_audio` wants it.
fn write_rtp_pcap(path: &Path, pcm: &[i16]) {
    let mut out = Vec::new();
    // Global header: magic, v2.4, tz 0, sigfigs 0, snaplen, LINKTYPE_ETHERNET.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut payload = Vec::new();
    for (i, chunk) in pcm.chunks(160).enumerate() {
        let mut frame = chunk.to_vec();
        frame.resize(160, 0);
        payload.clear();
        ivrflow::media::g711::encode(Codec::Pcmu, &frame, &mut payload);
        let mut rtp = vec![0x80, if i == 0 { 0x80 } else { 0x00 }];
        rtp.extend_from_slice(&(1000u16.wrapping_add(i as u16)).to_be_bytes());
        rtp.extend_from_slice(&((i as u32) * 160).to_be_bytes());
        rtp.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
        rtp.extend_from_slice(&payload);
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut pkt = vec![0u8; 12];
        pkt.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        pkt.extend_from_slice(&ip);
        pkt.extend_from_slice(&6000u16.to_be_bytes());
        pkt.extend_from_slice(&6002u16.to_be_bytes());
        pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pkt.extend_from_slice(&0u16.to_be_bytes());
        pkt.extend_from_slice(&rtp);
        let t_us = i as u64 * 20_000;
        out.extend_from_slice(&((t_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((t_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&pkt);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// One SIPp call to `order-confirmation` (order 4711) that listens `delay_ms`, then plays
/// `pcap` (the uac_speech scenario; `pcap` may be SIPp's own RFC 4733 key pcap); returns
/// the CRM's `call.completed` and a log for failure messages.
fn call_order_confirmation(tag: &str, pcap: &Path, delay_ms: u64) -> (serde_json::Value, String) {
    call_scenario(tag, "order-confirmation", None, pcap, delay_ms)
}

/// One SIPp call to the scenario `service` (from `scenarios`, else the bundled ones) that
/// listens `delay_ms`, then plays `pcap`.
fn call_scenario(
    tag: &str,
    service: &str,
    scenarios: Option<&Path>,
    pcap: &Path,
    delay_ms: u64,
) -> (serde_json::Value, String) {
    let model = repo().join(ivrflow::asr::DEFAULT_MODEL);
    assert!(
        model.exists(),
        "{} is missing: run ./scripts/setup.sh (it fetches and converts the Whisper models)",
        model.display()
    );
    let dir =
        std::env::temp_dir().join(format!("ivrflow-sipp-speech-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let xml = std::fs::read_to_string(fixture("sipp/uac_speech.xml"))
        .unwrap()
        .replace("@PCAP@", pcap.to_str().unwrap());
    let scenario = dir.join("uac_speech.xml");
    std::fs::write(&scenario, xml).unwrap();

    let crm = Crm::start();
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let mut args = vec![
        "--webhook-url",
        &crm.url,
        "--rtp-ports",
        "32000-32999",
        "--model",
        model.to_str().unwrap(),
    ];
    if let Some(dir) = scenarios {
        args.extend(["--scenarios", dir.to_str().unwrap()]);
    }
    let server = Server::start(sip, &args);
    let delay = delay_ms.to_string();
    let out = run_sipp(
        &[
            "-sf",
            scenario.to_str().unwrap(),
            "-s",
            service,
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
            &free_udp_port().to_string(),
            "-key",
            "order_id",
            "4711",
            "-d",
            &delay,
            "-timeout",
            "60",
            "-timeout_error",
        ],
        Duration::from_secs(75),
    );
    let log = format!(
        "sipp stdout:\n{}\nsipp stderr:\n{}\nserver log (tail):\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        {
            let t = server.log_text();
            let lines: Vec<&str> = t.lines().filter(|l| !l.contains("whisper_rs")).collect();
            lines[lines.len().saturating_sub(80)..].join("\n")
        }
    );
    assert!(
        out.status.success(),
        "SIPp call failed ({:?})\n{log}",
        out.status
    );
    let events = crm.wait_for_event("call.completed", 1, Duration::from_secs(10));
    assert_eq!(events.len(), 1, "one call.completed expected\n{log}");
    std::fs::remove_dir_all(&dir).ok();
    (events[0].clone(), log)
}

/// `wav` as a pcap: 300 ms of line silence, the recording, 2 s of silence (the endpointer
/// ends the utterance after the node's complete timeout).
fn answer_pcap(tag: &str, wav: &str) -> std::path::PathBuf {
    let said = ivrflow::media::prompts::load_file(&repo().join(wav)).expect("fixture");
    let mut pcm = vec![0i16; 2400];
    pcm.extend_from_slice(&said);
    pcm.extend(std::iter::repeat_n(0i16, 16000));
    let pcap = std::env::temp_dir().join(format!("ivrflow-{tag}-{}.pcap", std::process::id()));
    write_rtp_pcap(&pcap, &pcm);
    pcap
}

/// The speech trace entries of a `call.completed`: transcript redacted, times and decode.
fn assert_speech_traced(ev: &serde_json::Value) {
    let trace = ev["trace"].as_array().expect("trace");
    let speech: Vec<&serde_json::Value> = trace.iter().filter(|e| e["type"] == "speech").collect();
    assert!(!speech.is_empty(), "no speech in the trace: {ev:#}");
    for s in speech {
        assert_eq!(s["transcript"], "<redacted>", "{s}");
        assert!(s["decode_ms"].as_u64().is_some_and(|d| d > 0), "{s}");
        assert!(
            s["started_ms"].as_u64().unwrap() < s["at_ms"].as_u64().unwrap(),
            "{s}"
        );
        assert!(s["confidence"].as_f64().is_some(), "{s}");
    }
}

#[test]
fn sipp_caller_says_yes_and_crm_receives_a_speech_answer() {
    // Speak 9 s in: in the middle of the question (barge-in by voice), as the DTMF test
    // presses its key.
    let pcap = answer_pcap("yes", "tests/fixtures/speech/synth/en/yes.wav");
    let (ev, log) = call_order_confirmation("yes", &pcap, 9000);
    std::fs::remove_file(&pcap).ok();
    let answer = &ev["answers"]["confirm"];
    assert_eq!(answer["input"], "speech", "{ev:#}\n{log}");
    assert_eq!(answer["intent"], "confirm", "{ev:#}");
    assert!(
        ivrflow::nlu::normalize(answer["value"].as_str().unwrap_or("")).contains("yes"),
        "{ev:#}"
    );
    assert_eq!(ev["outcome"], "confirmed", "{ev:#}");
    // Barge-in by voice: the question was cut, and the trace says how much was heard.
    let trace = ev["trace"].as_array().expect("trace");
    assert!(
        trace
            .iter()
            .any(|e| e["type"] == "play_stopped" && e["heard_ms"].as_u64().is_some()),
        "the question was not interrupted: {ev:#}"
    );
    assert_eq!(ev["hangup_by"], "robot");
    assert_speech_traced(&ev);
}

/// Issue 16: "if correct press 1" — the caller says "one" (a person: Allison's recording
/// of the digit, through G.711 and Whisper) and the order is confirmed, not "invalid
/// option".
#[test]
fn sipp_caller_says_the_key_one_and_the_order_is_confirmed() {
    let pcap = answer_pcap("one", "tests/fixtures/speech/human/en/1.wav");
    let (ev, log) = call_order_confirmation("one", &pcap, 9000);
    std::fs::remove_file(&pcap).ok();
    let answer = &ev["answers"]["confirm"];
    assert_eq!(answer["input"], "speech", "{ev:#}\n{log}");
    assert_eq!(answer["intent"], "confirm", "{ev:#}\n{log}");
    assert_eq!(ev["outcome"], "confirmed", "{ev:#}");
    assert_speech_traced(&ev);
}

/// Type-ahead over SIP: key 1 (RFC 4733) pressed 1.5 s into the greeting stops it and
/// answers the question that follows, which is not played.
#[test]
fn sipp_caller_types_ahead_during_the_greeting() {
    let pcap = std::path::PathBuf::from("/usr/share/sip-tester/dtmf_2833_1.pcap");
    assert!(
        pcap.exists(),
        "{} is missing: install sip-tester (./scripts/setup.sh)",
        pcap.display()
    );
    let (ev, log) = call_order_confirmation("typeahead", &pcap, 1500);
    let answer = &ev["answers"]["confirm"];
    assert_eq!(answer["input"], "dtmf", "{ev:#}\n{log}");
    assert_eq!(answer["value"], "1", "{ev:#}");
    assert_eq!(ev["outcome"], "confirmed", "{ev:#}");
    let trace = ev["trace"].as_array().expect("trace");
    let plays: Vec<&serde_json::Value> = trace.iter().filter(|e| e["type"] == "play").collect();
    assert!(
        plays.iter().all(|p| !p["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "en/shop/to-change-order")),
        "the question was played although the key answered it: {ev:#}"
    );
    assert!(
        trace.iter().any(|e| e["type"] == "play_stopped"),
        "the greeting was not stopped: {ev:#}"
    );
}

/// A one-question scenario in `language` for the cases the bundled ones do not ask.
fn one_question(dir: &Path, name: &str, language: &str, ask: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let yaml = format!(
        "version: 1\nname: {name}\nlanguages: [{language}]\nvariables:\n  language: {{ type: string, default: {language} }}\n  day: {{ type: string, default: \"\" }}\nstart: q\nnodes:\n  q:\n    ask:\n      prompt: [hello]\n      input: [dtmf, speech]\n      noinput: {{ max: 0 }}\n      nomatch: {{ max: 0 }}\n{ask}\n  yes_node:\n    hangup: {{ outcome: yes, play: [goodbye] }}\n  no_node:\n    hangup: {{ outcome: no, play: [goodbye] }}\n  failed:\n    hangup: {{ outcome: failed, play: [goodbye] }}\n"
    );
    std::fs::write(dir.join(format!("{name}.yaml")), yaml).unwrap();
}

/// Negation over SIP: "I haven't paid yet" (synthetic English voice) to a question whose
/// answers are "paid" and "haven't paid" / "not yet" is not `paid`: the "paid" it contains
/// is negated.
#[test]
fn sipp_caller_says_a_negation_and_it_is_not_the_phrase_it_negates() {
    let dir = std::env::temp_dir().join(format!("ivrflow-sipp-neg-{}", std::process::id()));
    one_question(
        &dir,
        "negation",
        "en",
        "      intents:\n        paid: { dtmf: [\"1\"], phrases: { en: [paid, \"i paid\"] } }\n        not_paid: { dtmf: [\"2\"], phrases: { en: [\"not yet\", \"haven't paid\"] } }\n    on: { paid: yes_node, not_paid: no_node, noinput: failed, nomatch: failed }",
    );
    let pcap = answer_pcap("neg", "tests/fixtures/speech/synth/en/havent-paid.wav");
    let (ev, log) = call_scenario("negation", "negation", Some(&dir), &pcap, 2500);
    std::fs::remove_file(&pcap).ok();
    std::fs::remove_dir_all(&dir).ok();
    let answer = &ev["answers"]["q"];
    assert_eq!(answer["input"], "speech", "{ev:#}\n{log}");
    assert_eq!(answer["intent"], "not_paid", "{ev:#}\n{log}");
    assert_eq!(ev["outcome"], "no", "{ev:#}");
    assert_speech_traced(&ev);
}

/// An ordinal over SIP: "fifteenth" (a person: Allison's recording) answers a
/// day-of-the-month question with 15.
#[test]
fn sipp_caller_says_an_ordinal_day_of_the_month() {
    let dir = std::env::temp_dir().join(format!("ivrflow-sipp-day-{}", std::process::id()));
    one_question(
        &dir,
        "day",
        "en",
        "      answer: day_of_month\n      store: day\n    on: { day_of_month: yes_node, noinput: failed, nomatch: failed }",
    );
    let pcap = answer_pcap("day", "audio/en/digits/h-15.wav");
    let (ev, log) = call_scenario("day", "day", Some(&dir), &pcap, 2500);
    std::fs::remove_file(&pcap).ok();
    std::fs::remove_dir_all(&dir).ok();
    let answer = &ev["answers"]["q"];
    assert_eq!(answer["input"], "speech", "{ev:#}\n{log}");
    assert_eq!(answer["value"], "15", "{ev:#}\n{log}");
    assert_eq!(ev["variables"]["day"], "15", "{ev:#}");
    assert_speech_traced(&ev);
}
