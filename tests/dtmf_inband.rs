//! Keys through the whole call path: in-band tones in G.711 RTP, RFC 4733 events with the
//! tone left in the audio, SIP INFO — each press reaching the dialogue once — and the
//! ITU-T Q.24 frequency limits measured through `CallCore`, not just the detector.
//!
//! Deterministic: RTP packets on a virtual clock, 20 ms apart, no sleeps.

use std::collections::BTreeMap;
use std::f32::consts::PI;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ivrflow::call::{CallCore, MediaParams, TraceEvent};
use ivrflow::media::Codec;
use ivrflow::media::dtmf_dedup::DtmfSource;
use ivrflow::media::prompts::{Prompt, PromptCache};
use rtp_rs::{RtpPacketBuilder, Seq};

const SCENARIO: &str = r##"
version: 1
name: keys
start: code
nodes:
  code:
    ask:
      prompt: [hello]
      digits: { min: 1, max: 12, terminator: "#" }
      timeout: 3s
      interdigit_timeout: 3s
      noinput: { max: 0 }
      nomatch: { max: 0 }
    on: { digits: done, noinput: silent, nomatch: wrong }
  done:
    hangup: { outcome: done }
  silent:
    hangup: { outcome: no_input }
  wrong:
    hangup: { outcome: no_match }
"##;

const TE_PT: u8 = 101;

fn key_freqs(key: char) -> (f32, f32) {
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let keys = ["123A", "456B", "789C", "*0#D"];
    for (r, row) in keys.iter().enumerate() {
        if let Some(c) = row.find(key) {
            return (rows[r], cols[c]);
        }
    }
    panic!("not a key: {key}")
}

/// One scripted piece of the caller's audio.
enum Piece {
    Silence(u32),
    /// key, tone ms, relative frequency deviation
    Tone(char, u32, f32),
}

fn audio(pieces: &[Piece]) -> Vec<i16> {
    let mut out = Vec::new();
    for p in pieces {
        match *p {
            Piece::Silence(ms) => out.extend(std::iter::repeat_n(0i16, ms as usize * 8)),
            Piece::Tone(k, ms, dev) => {
                let (fr, fc) = key_freqs(k);
                let (fr, fc) = (fr * (1.0 + dev), fc * (1.0 + dev));
                // About −10 dBm0 per tone.
                for n in 0..ms * 8 {
                    let t = n as f32 / 8000.0;
                    let s = 5000.0 * (2.0 * PI * fr * t).sin() + 5000.0 * (2.0 * PI * fc * t).sin();
                    out.push(s as i16);
                }
            }
        }
    }
    out
}

/// Keys typed with `tone_ms` tones and `gap_ms` pauses, after `lead_ms` of silence.
fn typed(keys: &str, tone_ms: u32, gap_ms: u32, dev: f32) -> Vec<Piece> {
    let mut v = vec![Piece::Silence(300)];
    for k in keys.chars() {
        v.push(Piece::Tone(k, tone_ms, dev));
        v.push(Piece::Silence(gap_ms));
    }
    v.push(Piece::Silence(400));
    v
}

struct Caller {
    seq: u16,
    ts: u32,
    codec: Codec,
}

impl Caller {
    fn audio_packet(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut payload = Vec::new();
        ivrflow::media::g711::encode(self.codec, pcm, &mut payload);
        let p = RtpPacketBuilder::new()
            .payload_type(self.codec.payload_type())
            .sequence(Seq::from(self.seq))
            .timestamp(self.ts)
            .ssrc(0xCA11)
            .payload(&payload)
            .build()
            .unwrap();
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        p
    }

    fn event_packet(&mut self, key: char, ts: u32, first: bool, end: bool, dur: u16) -> Vec<u8> {
        let mut payload = [0u8; 4];
        assert!(ivrflow::media::dtmf::encode_event(
            key,
            end,
            10,
            dur,
            &mut payload
        ));
        let p = RtpPacketBuilder::new()
            .payload_type(TE_PT)
            .marked(first)
            .sequence(Seq::from(self.seq))
            .timestamp(ts)
            .ssrc(0xCA11)
            .payload(&payload)
            .build()
            .unwrap();
        self.seq = self.seq.wrapping_add(1);
        p
    }
}

struct Call {
    core: CallCore,
    now: Instant,
    caller: Caller,
    out: [u8; 1500],
}

impl Call {
    fn new(codec: Codec) -> Call {
        let scenario = Arc::new(ivrflow::scenario::load_str("keys.yaml", SCENARIO).unwrap());
        let mut prompts = PromptCache::new();
        prompts.insert("en", Prompt::from_pcm("hello", vec![0; 800]));
        let t0 = Instant::now();
        let media = MediaParams {
            codec,
            payload_type: codec.payload_type(),
            telephone_event_pt: Some(TE_PT),
            ssrc: 1,
            initial_seq: 1,
            initial_ts: 0,
        };
        let mut core = CallCore::new(scenario, BTreeMap::new(), Arc::new(prompts), media, t0);
        core.start(t0);
        Call {
            core,
            now: t0,
            caller: Caller {
                seq: 100,
                ts: 0,
                codec,
            },
            out: [0; 1500],
        }
    }

    fn tick(&mut self) {
        self.now += Duration::from_millis(20);
        let _ = self.core.poll_packet(self.now, &mut self.out);
        if let Some(t) = self.core.poll_timeout()
            && t <= self.now
        {
            self.core.handle_timeout(self.now);
        }
    }

    /// Plays `pcm` as 20 ms packets; with `rfc4733`, also sends each tone as RFC 4733
    /// events (start packet at the tone's first packet, updates, three end packets).
    fn play(&mut self, pieces: &[Piece], rfc4733: bool) {
        let pcm = audio(pieces);
        // Which packet starts / ends which tone.
        let mut marks: Vec<(usize, usize, char)> = Vec::new();
        let mut at = 0usize;
        for p in pieces {
            match *p {
                Piece::Silence(ms) => at += ms as usize * 8,
                Piece::Tone(k, ms, _) => {
                    marks.push((at / 160, (at + ms as usize * 8).div_ceil(160), k));
                    at += ms as usize * 8;
                }
            }
        }
        for (i, chunk) in pcm.chunks(160).enumerate() {
            self.tick();
            if rfc4733 {
                for &(start, end, k) in &marks {
                    if (start..end).contains(&i) {
                        let ts = (start * 160) as u32;
                        let dur = ((i - start + 1) * 160) as u16;
                        let pkt = self.caller.event_packet(k, ts, i == start, false, dur);
                        self.core.handle_rtp(self.now, &pkt);
                    } else if i == end {
                        let ts = (start * 160) as u32;
                        let dur = ((end - start) * 160) as u16;
                        for _ in 0..3 {
                            let pkt = self.caller.event_packet(k, ts, false, true, dur);
                            self.core.handle_rtp(self.now, &pkt);
                        }
                    }
                }
            }
            let pkt = self.caller.audio_packet(chunk);
            self.core.handle_rtp(self.now, &pkt);
        }
    }

    fn run_out(&mut self, secs: u64) {
        for _ in 0..secs * 50 {
            if self.core.wants_hangup() || self.core.is_finished() {
                break;
            }
            self.tick();
        }
    }

    fn keys(&self) -> Vec<(char, DtmfSource)> {
        self.core
            .trace()
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Dtmf { digit, source, .. } => Some((*digit, *source)),
                _ => None,
            })
            .collect()
    }

    fn answer(&self) -> Option<String> {
        self.core
            .result()
            .answers
            .get("code")
            .map(|a| a.value.clone())
    }
}

#[test]
fn inband_keys_reach_the_dialogue_pcmu_and_pcma() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let mut call = Call::new(codec);
        call.play(&typed("4711#", 60, 60, 0.0), false);
        call.run_out(5);
        assert_eq!(call.answer().as_deref(), Some("4711"), "{codec}");
        assert_eq!(call.core.result().outcome.as_deref(), Some("done"));
        assert!(call.keys().iter().all(|(_, s)| *s == DtmfSource::Inband));
        assert_eq!(call.keys().len(), 5);
    }
}

#[test]
fn rfc4733_with_the_tone_left_in_the_audio_counts_once() {
    let mut call = Call::new(Codec::Pcmu);
    call.play(&typed("4711#", 80, 80, 0.0), true);
    call.run_out(5);
    assert_eq!(call.answer().as_deref(), Some("4711"));
    let keys = call.keys();
    assert_eq!(keys.len(), 5, "{keys:?}");
    // The event's first packet comes before the detector has heard 40 ms of tone.
    assert!(
        keys.iter().all(|(_, s)| *s == DtmfSource::Rfc4733),
        "{keys:?}"
    );
}

#[test]
fn quick_repeats_count_twice_on_every_route_mix() {
    // "1155#" with 50 ms tones and 60 ms gaps (110 ms per key), in-band only…
    let mut call = Call::new(Codec::Pcmu);
    call.play(&typed("1155#", 50, 60, 0.0), false);
    call.run_out(5);
    assert_eq!(call.answer().as_deref(), Some("1155"));
    // …and with RFC 4733 as well.
    let mut call = Call::new(Codec::Pcma);
    call.play(&typed("1155#", 50, 60, 0.0), true);
    call.run_out(5);
    assert_eq!(call.answer().as_deref(), Some("1155"));
    assert_eq!(call.keys().len(), 5);
}

#[test]
fn sip_info_and_rfc4733_count_once_info_alone_counts() {
    // RFC 4733 with the tone, and an INFO for each key 200 ms after it.
    let mut call = Call::new(Codec::Pcmu);
    call.play(&typed("42", 80, 300, 0.0), true);
    // The INFO for `2` trails its RFC 4733 event by 780 ms (inside the merge window); `#`
    // came by INFO only.
    call.core.handle_dtmf_from(call.now, '2', DtmfSource::Info);
    call.core.handle_dtmf_from(call.now, '#', DtmfSource::Info);
    call.run_out(5);
    assert_eq!(call.answer().as_deref(), Some("42"));
    let sources: Vec<_> = call.keys();
    assert_eq!(
        sources,
        vec![
            ('4', DtmfSource::Rfc4733),
            ('2', DtmfSource::Rfc4733),
            ('#', DtmfSource::Info)
        ]
    );

    // INFO only, two quick presses of the same key.
    let mut call = Call::new(Codec::Pcmu);
    for _ in 0..10 {
        call.tick();
    }
    for k in "99#".chars() {
        call.core.handle_dtmf_from(call.now, k, DtmfSource::Info);
        for _ in 0..6 {
            call.tick();
        }
    }
    call.run_out(5);
    assert_eq!(call.answer().as_deref(), Some("99"));
}

#[test]
fn q24_through_the_call_accepts_1_5_percent_rejects_3_5_percent() {
    let keys = "0123456789#";
    for dev in [0.015f32, -0.015] {
        let mut call = Call::new(Codec::Pcmu);
        call.play(&typed(keys, 60, 60, dev), false);
        call.run_out(5);
        assert_eq!(
            call.answer().as_deref(),
            Some("0123456789"),
            "deviation {dev:+}"
        );
    }
    for dev in [0.035f32, -0.035] {
        let mut call = Call::new(Codec::Pcmu);
        call.play(&typed(keys, 60, 60, dev), false);
        call.run_out(10);
        assert!(
            call.keys().is_empty(),
            "deviation {dev:+}: {:?}",
            call.keys()
        );
        assert_eq!(call.core.result().outcome.as_deref(), Some("no_input"));
    }
    // `*` and A–D at the limits, through the call too (each one ends this question as a
    // no-match, so one call per key).
    for (dev, expect) in [(0.015f32, 1usize), (-0.015, 1), (0.035, 0), (-0.035, 0)] {
        for k in "*ABCD".chars() {
            let mut call = Call::new(Codec::Pcma);
            call.play(&typed(&k.to_string(), 60, 60, dev), false);
            assert_eq!(
                call.keys().len(),
                expect,
                "{k} at {dev:+}: {:?}",
                call.keys()
            );
        }
    }
}

#[test]
fn a_40_ms_tone_is_a_key() {
    let mut call = Call::new(Codec::Pcmu);
    call.play(&typed("58#", 40, 60, 0.0), false);
    call.run_out(5);
    assert_eq!(call.answer().as_deref(), Some("58"));
}
