//! Answering-machine detection through the whole call core: G.711 RTP of real recordings
//! in, the scenario's `amd:` branch, `answered_by` and the trace out. Virtual clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ivrflow::call::{CallCore, MediaParams, TraceEvent};
use ivrflow::media::Codec;
use ivrflow::media::amd::AmdVerdict;
use ivrflow::media::prompts::{Prompt, PromptCache};
use rtp_rs::{RtpPacketBuilder, Seq};

fn scenario(on_machine: &str) -> String {
    format!(
        r#"
version: 1
name: amd-test
amd:
  on_machine: {on_machine}
  max_wait: 4s
start: greet
nodes:
  greet:
    play: [hello]
    next: bye
  bye:
    hangup: {{ outcome: greeted }}
  leave_message:
    play: [goodbye]
    next: message_left
  message_left:
    hangup: {{ outcome: message_left }}
"#
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn wav(name: &str) -> Vec<i16> {
    ivrflow::media::prompts::load_file(&root().join("audio").join(name)).unwrap()
}

struct Call {
    core: CallCore,
    now: Instant,
    seq: u16,
    out: [u8; 1500],
}

impl Call {
    fn new(yaml: &str) -> Call {
        let sc = match ivrflow::scenario::load_str("amd-test.yaml", yaml) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        let mut prompts = PromptCache::new();
        prompts.insert("en", Prompt::from_pcm("hello", vec![0; 4000]));
        prompts.insert("en", Prompt::from_pcm("goodbye", vec![0; 4000]));
        let t0 = Instant::now();
        let media = MediaParams {
            codec: Codec::Pcma,
            payload_type: 8,
            telephone_event_pt: Some(101),
            ssrc: 7,
            initial_seq: 1,
            initial_ts: 0,
        };
        let mut core = CallCore::new(Arc::new(sc), BTreeMap::new(), Arc::new(prompts), media, t0);
        core.start(t0);
        Call {
            core,
            now: t0,
            seq: 1,
            out: [0; 1500],
        }
    }

    fn tick(&mut self, pcm: Option<&[i16]>) {
        self.now += Duration::from_millis(20);
        let _ = self.core.poll_packet(self.now, &mut self.out);
        if let Some(pcm) = pcm {
            let mut payload = Vec::new();
            ivrflow::media::g711::encode(Codec::Pcma, pcm, &mut payload);
            let p = RtpPacketBuilder::new()
                .payload_type(8)
                .sequence(Seq::from(self.seq))
                .timestamp(u32::from(self.seq) * 160)
                .ssrc(0xCA11)
                .payload(&payload)
                .build()
                .unwrap();
            self.seq = self.seq.wrapping_add(1);
            self.core.handle_rtp(self.now, &p);
        }
        if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now);
        }
    }

    /// Plays `audio`, then silence, until the robot hangs up (at most 30 s).
    fn run(&mut self, audio: &[i16]) {
        let mut chunks = audio.chunks(160);
        let quiet = [0i16; 160];
        for _ in 0..1500 {
            if self.core.wants_hangup() || self.core.is_finished() {
                return;
            }
            let c = chunks.next().unwrap_or(&quiet);
            self.tick(Some(c));
        }
    }

    fn verdict(&self) -> Option<AmdVerdict> {
        self.core.trace().iter().find_map(|e| match e {
            TraceEvent::Amd { verdict, .. } => Some(*verdict),
            _ => None,
        })
    }

    fn var(&self) -> Option<&str> {
        self.core
            .result()
            .variables
            .get("answered_by")
            .map(String::as_str)
    }
}

fn machine_greeting() -> Vec<i16> {
    let beep: Vec<i16> = (0..4000)
        .map(|n| (8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 8000.0).sin()) as i16)
        .collect();
    [
        vec![0; 2400],
        wav("en/hello.wav"),
        vec![0; 2000],
        wav("en/pm-invalid-option.wav"),
        vec![0; 2400],
        wav("en/please-try-call-later.wav"),
        vec![0; 4000],
        beep,
    ]
    .concat()
}

#[test]
fn a_machine_is_waited_out_until_its_beep_then_the_message_plays() {
    let mut call = Call::new(&scenario("leave_message"));
    assert!(call.core.amd_pending());
    let greeting = machine_greeting();
    let beep_end_ms = greeting.len() as u64 / 8;
    call.run(&greeting);
    assert_eq!(call.verdict(), Some(AmdVerdict::Machine));
    assert_eq!(call.var(), Some("machine"));
    let r = call.core.result();
    assert_eq!(r.path, ["leave_message", "message_left"]);
    assert_eq!(r.outcome.as_deref(), Some("message_left"));
    // Nothing was played before the beep ended; the message starts right after it.
    let play_at = call
        .core
        .trace()
        .iter()
        .find_map(|e| match e {
            TraceEvent::Play { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .unwrap();
    assert!(
        play_at >= beep_end_ms && play_at <= beep_end_ms + 100,
        "message at {play_at} ms, beep ended at {beep_end_ms} ms"
    );
    assert!(
        call.core
            .trace()
            .iter()
            .any(|e| matches!(e, TraceEvent::AmdGreetingEnd { .. }))
    );
}

#[test]
fn a_person_saying_hello_gets_the_dialogue() {
    let mut call = Call::new(&scenario("leave_message"));
    let audio = [vec![0; 3200], wav("en/hello.wav")].concat();
    call.run(&audio);
    assert_eq!(call.verdict(), Some(AmdVerdict::Human));
    assert_eq!(call.var(), Some("human"));
    assert_eq!(call.core.result().path, ["greet", "bye"]);
    assert_eq!(call.core.result().outcome.as_deref(), Some("greeted"));
    // The greeting started within a second of the end of "hello".
    let play_at = call
        .core
        .trace()
        .iter()
        .find_map(|e| match e {
            TraceEvent::Play { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .unwrap();
    assert!(play_at < 400 + 800 + 1100, "{play_at}");
}

#[test]
fn a_key_means_a_person_and_silence_is_unknown() {
    let mut call = Call::new(&scenario("hangup"));
    for _ in 0..10 {
        call.tick(Some(&[0; 160]));
    }
    call.core.handle_dtmf(call.now, '5');
    assert_eq!(call.verdict(), Some(AmdVerdict::Human));
    call.run(&[]);
    assert_eq!(call.core.result().path, ["greet", "bye"]);

    // Silence: unknown at max_wait, treated as a person.
    let mut call = Call::new(&scenario("hangup"));
    call.run(&[]);
    assert_eq!(call.var(), Some("unknown"));
    assert_eq!(call.core.result().outcome.as_deref(), Some("greeted"));
    let at = call
        .core
        .trace()
        .iter()
        .find_map(|e| match e {
            TraceEvent::Amd { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .unwrap();
    assert_eq!(at, 4000);
}

#[test]
fn on_machine_hangup_ends_the_call_without_a_word() {
    let mut call = Call::new(&scenario("hangup"));
    call.run(&machine_greeting());
    assert_eq!(call.verdict(), Some(AmdVerdict::Machine));
    assert!(call.core.wants_hangup());
    assert_eq!(
        call.core.result().outcome.as_deref(),
        Some(ivrflow::dialogue::OUTCOME_ANSWERING_MACHINE)
    );
    assert!(call.core.result().path.is_empty());
    assert_eq!(call.core.packets_sent(), 0);
}

#[test]
fn amd_block_errors_point_at_the_file() {
    let bad = scenario("leave_mesage");
    let Err(e) = ivrflow::scenario::load_str("amd-test.yaml", &bad) else {
        panic!("a typo in on_machine must not load");
    };
    let text = e.to_string();
    assert!(text.contains("amd-test.yaml:5:15"), "{text}");
    assert!(text.contains("leave_message"), "{text}");
    let bad = scenario("leave_message").replace("max_wait: 4s", "max_wait: 40s");
    let Err(e) = ivrflow::scenario::load_str("amd-test.yaml", &bad) else {
        panic!("max_wait 40s must not load");
    };
    assert!(e.to_string().contains("amd-test.yaml:6:13"), "{e}");
}
