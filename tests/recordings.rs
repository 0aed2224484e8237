//! Recordings end to end (issue 20), over real SIP on loopback with the real Whisper model:
//! a caller speaks into a `record` node (a human recording, Allison Smith's "tomorrow" and
//! "hello"), and the CRM's `call.completed` carries the transcript and a URL from which the
//! WAV downloads with the API token.
//!
//! - The phone suppresses silence: after the words it sends no RTP at all, and the
//!   recording still ends `final_silence` later (not at `max_length`, 60 s).
//! - The caller hangs up while still recording: the audio is kept and transcribed, and the
//!   call completes `hangup_by: caller` with the answer.
//!
//! Needs the speech model (`./scripts/setup.sh`); without it the server refuses to start
//! and these tests fail saying so.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::crm::{Api, DataDir, TOKEN, free_tcp_port};
use common::uac::Uac;
use common::*;

const MEMO: &str = r#"version: 1
name: memo
languages: [en]
variables:
  memo_text: { type: string, default: "" }
start: say
nodes:
  say:
    record:
      prompt: [beep]
      max_length: 60s
      final_silence: 2s
      transcribe: true
      store: memo_text
    next: bye
  bye:
    hangup: { outcome: recorded, play: [goodbye] }
"#;

struct Setup {
    server: Server,
    crm: Crm,
    api: Api,
    _dir: DataDir,
}

fn start(tag: &str) -> Setup {
    let dir = DataDir::new(tag);
    std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
    std::fs::write(dir.path().join("scenarios/memo.yaml"), MEMO).unwrap();
    let crm = Crm::start();
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_API_TOKEN", TOKEN);
    let scenarios = dir.path().join("scenarios");
    let server = Server::start_with(
        cmd,
        sip,
        &[
            "--data-dir",
            dir.arg(),
            "--scenarios",
            scenarios.to_str().unwrap(),
            "--webhook-url",
            &crm.url,
            "--api-listen",
            &addr.to_string(),
        ],
    );
    Setup {
        server,
        crm,
        api: Api::new(addr),
        _dir: dir,
    }
}

/// The caller's words: "tomorrow", a breath, "hello" (8 kHz, human).
fn words() -> Vec<i16> {
    let load = |name: &str| {
        ivrflow::media::prompts::load_file(
            &repo().join(format!("tests/fixtures/speech/human/en/{name}.wav")),
        )
        .unwrap()
    };
    let mut pcm = vec![0i16; 8 * 300];
    pcm.extend(load("tomorrow"));
    pcm.extend(vec![0i16; 8 * 250]);
    pcm.extend(load("hello"));
    pcm
}

/// Sends `pcm` as 20 ms PCMU packets in real time.
fn speak(uac: &mut Uac, pcm: &[i16]) {
    let start = Instant::now();
    for (n, frame) in pcm.chunks(160).enumerate() {
        let mut f = frame.to_vec();
        f.resize(160, 0);
        uac.send_audio(&f, None);
        let due = start + Duration::from_millis(20 * (n as u64 + 1));
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

/// Calls `memo` and waits until the robot records (its node is `say` and the beep is over).
fn call_until_recording(s: &Setup) -> Uac {
    let mut uac = Uac::new(s.server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite("memo", "", &offer);
    let answer = uac.final_response(Duration::from_secs(10)).unwrap();
    assert_eq!(answer.status(), Some(200), "{}", s.server.log_text());
    uac.ack("memo");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.api.get("/v1/status").json["calls"][0]["node"] != "say" {
        assert!(
            Instant::now() < deadline,
            "the record node never started\n{}",
            s.server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The beep (a fraction of a second) plays before the recording starts; bounded.
    std::thread::sleep(Duration::from_millis(800));
    uac
}

/// The recording's answer in `call.completed`, and the WAV behind its URL.
fn answer_and_wav(s: &Setup) -> (serde_json::Value, serde_json::Value, Vec<i16>) {
    let done = s
        .crm
        .wait_for_event("call.completed", 1, Duration::from_secs(60));
    assert_eq!(done.len(), 1, "no call.completed\n{}", s.server.log_text());
    let ev = done[0].clone();
    let answer = ev["answers"]["say"].clone();
    assert_eq!(answer["input"], "recording", "{ev:#}");
    assert_eq!(answer["file"], "say.wav", "{ev:#}");
    let url = answer["url"]
        .as_str()
        .expect("the answer has a URL")
        .to_owned();
    assert_eq!(
        url,
        format!(
            "{}/v1/calls/{}/recordings/say.wav",
            s.api.base,
            ev["call_ref"].as_str().unwrap()
        )
    );
    let (status, ctype, body) = s.api.get_bytes(&url, Some(TOKEN));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ctype, "audio/wav");
    let mut wav = hound::WavReader::new(std::io::Cursor::new(body)).expect("a WAV file");
    assert_eq!(wav.spec().sample_rate, 8000);
    assert_eq!(wav.spec().channels, 1);
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    // Without the token, nothing; names outside the call's folder are not found.
    assert_eq!(s.api.get_bytes(&url, None).0, 401);
    let call = ev["call_ref"].as_str().unwrap();
    for bad in [
        format!("/v1/calls/{call}/recordings/..%2f..%2fivrflow.db"),
        format!("/v1/calls/{call}/recordings/.say.wav.tmp"),
        "/v1/calls/..%2f/recordings/say.wav".to_owned(),
        format!("/v1/calls/{call}/recordings/other.wav"),
    ] {
        assert_eq!(s.api.get_bytes(&bad, Some(TOKEN)).0, 404, "{bad}");
    }
    (ev, answer, samples)
}

fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64).sqrt()
}

#[test]
fn a_recording_ends_on_silence_without_rtp_and_reaches_the_crm_as_wav_and_transcript() {
    let s = start("rec-silent");
    let mut uac = call_until_recording(&s);
    let said = words();
    speak(&mut uac, &said);
    // Silence suppression: not one more packet. The recording must end 2 s after the last
    // word (then the transcript, the goodbye and the BYE) — long before its 60 s maximum.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| {
                panic!(
                    "no BYE: the recording did not end without RTP\n{}",
                    s.server.log_text()
                )
            });
        if let Some(m) = uac.recv(left)
            && m.method() == Some("BYE")
        {
            uac.ok_to(&m);
            break;
        }
    }
    let (ev, answer, samples) = answer_and_wav(&s);
    assert_eq!(ev["outcome"], "recorded", "{ev:#}");
    assert_eq!(ev["hangup_by"], "robot");
    let text = answer["value"].as_str().unwrap().to_lowercase();
    assert!(text.contains("tomorrow"), "transcript {text:?}");
    assert_eq!(ev["variables"]["memo_text"], answer["value"]);
    // The file holds what was said: about as long as the words sent (the recording starts
    // a moment before the first packet) and not silent.
    let sent = said.len();
    assert!(
        samples.len() + 8 * 200 >= sent && samples.len() <= sent + 8 * 1000,
        "{} samples recorded for {sent} sent",
        samples.len()
    );
    assert!(rms(&samples) > 300.0, "the recording is silent");
}

#[test]
fn a_caller_who_hangs_up_while_recording_keeps_the_audio_and_its_transcript() {
    let s = start("rec-hangup");
    let mut uac = call_until_recording(&s);
    let said = words();
    speak(&mut uac, &said);
    // A breath, then the caller hangs up — before the 2 s of final silence.
    speak(&mut uac, &[0; 8 * 300]);
    uac.bye("memo");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no answer to our BYE\n{}", s.server.log_text()));
        if let Some(m) = uac.recv(left)
            && m.status() == Some(200)
            && m.header("CSeq").is_some_and(|c| c.ends_with("BYE"))
        {
            break;
        }
    }
    let (ev, answer, samples) = answer_and_wav(&s);
    assert_eq!(ev["hangup_by"], "caller", "{ev:#}");
    let text = answer["value"].as_str().unwrap().to_lowercase();
    assert!(text.contains("tomorrow"), "transcript {text:?}");
    assert!(
        !ev["path"].as_array().unwrap().iter().any(|p| p == "bye"),
        "nothing after the record node runs once the caller is gone: {ev:#}"
    );
    assert!(samples.len() + 8 * 200 >= said.len(), "{}", samples.len());
    assert!(rms(&samples) > 300.0, "the recording is silent");
    // The call is over on the node too (its live view is refreshed every 2 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.api.get("/v1/status").json["calls"] != serde_json::json!([]) {
        assert!(
            Instant::now() < deadline,
            "the call is still up on the node"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
