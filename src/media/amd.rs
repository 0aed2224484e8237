//! Answering-machine detection (AMD) on an answered outbound call, from the cadence of
//! the greeting, and then the end of the machine's greeting (its beep).
//!
//! People answer with a short word and wait ("Hello?" … silence); a machine plays a long
//! greeting without waiting for anyone ("Hi, you've reached Anna, I can't take your call
//! right now, please leave a message after the tone." *beep*). The detector follows the
//! caller's audio frame by frame (20 ms, speech or not by [`Vad`]) and decides:
//!
//! - **human**: speech began, then [`AmdConfig::human_silence`] of silence after a
//!   greeting shorter than [`AmdConfig::machine_speech`] with fewer than
//!   [`AmdConfig::max_words`] words; or a key was pressed (a machine does not press keys);
//! - **machine**: the greeting, counted from its first word and across gaps shorter than
//!   `human_silence`, goes on for `machine_speech`; or it has `max_words` words; or a beep
//!   is heard before anything was decided;
//! - **unknown**: nothing decisive by [`AmdConfig::max_wait`] (silence, or a greeting still
//!   going on that is neither short nor long yet). Callers treat it as human: wrongly
//!   treating a person as a machine costs more than the reverse.
//!
//! After **machine** it waits for the greeting to end: a **beep** — one steady tone between
//! 350 and 2100 Hz lasting at least [`MIN_BEEP`]: one dominant frequency (estimated from zero
//! crossings and confirmed by a Goertzel filter that must hold most of the frame's energy,
//! which speech and two-tone DTMF never do) that stays within ±4 % from frame to frame —
//! reported when the tone stops; failing that, [`AmdConfig::end_silence`] of silence after the
//! last speech; at the latest [`AmdConfig::max_greeting`] after the verdict.
//!
//! ```text
//!   Listening ──short greeting + silence / key──► Human ─┐
//!       │ ├──────── nothing decisive by max_wait ──► Unknown ─┴─► (done)
//!       │ └─ long greeting / many words / beep ──► Machine
//!       │                                            │ beep ends / end_silence / max_greeting
//!       ▼                                            ▼
//!                                              GreetingEnded ─► (done)
//! ```
//!
//! Sans-IO: decoded 8 kHz audio in with the instant it arrived, events out,
//! [`Amd::poll_timeout`] for a caller whose RTP stops. The cadence is measured in audio
//! time (samples), so jitter in packet arrival does not change the verdict. Nothing is
//! allocated per packet. Not here: what to do with the verdict (the call core and the
//! scenario's `amd:` block), or decoding G.711.

use std::f32::consts::PI;
use std::time::{Duration, Instant};

use super::vad::{FRAME, Vad, VadKind};

/// Who answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AmdVerdict {
    Human,
    Machine,
    Unknown,
}

impl AmdVerdict {
    /// `human`, `machine`, `unknown` (the value of the `answered_by` variable).
    pub fn name(self) -> &'static str {
        match self {
            AmdVerdict::Human => "human",
            AmdVerdict::Machine => "machine",
            AmdVerdict::Unknown => "unknown",
        }
    }
}

/// How the machine's greeting was found to have ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum GreetingEnd {
    /// A beep of about `hz` that lasted `ms`.
    Beep { hz: u32, ms: u32 },
    /// Silence after the greeting, no beep.
    Silence,
    /// The greeting went on past `max_greeting`.
    Timeout,
}

use serde::Serialize;

/// What the detector found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AmdEvent {
    /// The verdict, why (`short greeting`, `long greeting`, `many words`, `beep`, `key`,
    /// `no decision`), and the greeting's length and word count so far.
    Verdict {
        verdict: AmdVerdict,
        reason: &'static str,
        greeting: Duration,
        words: u32,
    },
    /// After `Machine`: the greeting is over; a message may play now.
    GreetingEnded(GreetingEnd),
}

/// Detector settings. The defaults are the ones measured in `tests/amd_recordings.rs`.
#[derive(Clone, Debug, PartialEq)]
pub struct AmdConfig {
    /// A verdict by then at the latest (`unknown` when nothing decided it).
    pub max_wait: Duration,
    /// Silence after a short greeting that makes it a person waiting for an answer.
    pub human_silence: Duration,
    /// A greeting this long (first word to last, gaps under `human_silence` included) is a
    /// machine.
    pub machine_speech: Duration,
    /// This many words (speech runs ≥ `min_word` between pauses ≥ `word_gap`) is a machine.
    pub max_words: u32,
    pub min_word: Duration,
    pub word_gap: Duration,
    /// After `machine`: silence that ends a greeting which has no beep.
    pub end_silence: Duration,
    /// After `machine`: stop waiting for the end of the greeting after this long.
    pub max_greeting: Duration,
    pub vad: VadKind,
}

impl Default for AmdConfig {
    fn default() -> Self {
        AmdConfig {
            max_wait: Duration::from_secs(4),
            human_silence: Duration::from_millis(800),
            machine_speech: Duration::from_millis(2400),
            max_words: 5,
            min_word: Duration::from_millis(100),
            word_gap: Duration::from_millis(200),
            end_silence: Duration::from_millis(2000),
            max_greeting: Duration::from_secs(30),
            vad: VadKind::default(),
        }
    }
}

/// Shortest tone that counts as a beep.
pub const MIN_BEEP: Duration = Duration::from_millis(120);
const BEEP_MIN_HZ: f32 = 350.0;
const BEEP_MAX_HZ: f32 = 2100.0;
/// Share of a frame's energy the tone must hold.
const BEEP_PURITY: f32 = 0.8;
/// Frame-to-frame frequency stability of a beep.
const BEEP_STABILITY: f32 = 0.04;
/// Quietest beep (frame RMS).
const BEEP_MIN_RMS: f32 = 200.0;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Listening,
    AwaitEnd { since: Instant },
    Done,
}

/// One call's answering-machine detector. See the module docs.
pub struct Amd {
    cfg: AmdConfig,
    vad: Vad,
    phase: Phase,
    started: Instant,
    /// Audio time, in samples, since the start.
    t: u64,
    /// Partial frame carried over between packets.
    frame: [i16; FRAME],
    filled: usize,
    /// Sample time of the first and the latest speech frame (end of it).
    first_speech: Option<u64>,
    last_speech: u64,
    /// Current speech run and silence run, in samples.
    run: u64,
    silence: u64,
    words: u32,
    /// Current tone: frequency of its first frame, frames, and the running frequency sum.
    tone_hz: f32,
    tone_frames: u32,
    tone_sum: f32,
    hann: [f32; FRAME],
    tone_gain: f32,
    events: [Option<AmdEvent>; 2],
}

impl std::fmt::Debug for Amd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amd")
            .field("phase", &self.phase)
            .field("t", &self.t)
            .field("words", &self.words)
            .finish()
    }
}

fn samples(d: Duration) -> u64 {
    (d.as_micros() as u64).saturating_mul(8) / 1000
}

fn duration(n: u64) -> Duration {
    Duration::from_micros(n * 125)
}

impl Amd {
    /// A detector for a call answered at `now`.
    pub fn new(cfg: AmdConfig, now: Instant) -> Amd {
        let mut hann = [0f32; FRAME];
        for (i, w) in hann.iter_mut().enumerate() {
            *w = 0.5 - 0.5 * (2.0 * PI * i as f32 / (FRAME as f32 - 1.0)).cos();
        }
        let w2: f32 = hann.iter().map(|w| w * w).sum();
        let w1: f32 = hann.iter().sum();
        Amd {
            vad: Vad::new(cfg.vad),
            cfg,
            phase: Phase::Listening,
            started: now,
            t: 0,
            frame: [0; FRAME],
            filled: 0,
            first_speech: None,
            last_speech: 0,
            run: 0,
            silence: 0,
            words: 0,
            tone_hz: 0.0,
            tone_frames: 0,
            tone_sum: 0.0,
            hann,
            tone_gain: 2.0 * w2 / (w1 * w1),
            events: [None; 2],
        }
    }

    pub fn config(&self) -> &AmdConfig {
        &self.cfg
    }

    /// Whether it still wants audio.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The verdict is in and the greeting is being waited out (machine).
    pub fn awaiting_end(&self) -> bool {
        matches!(self.phase, Phase::AwaitEnd { .. })
    }

    /// Decoded caller audio (8 kHz) that arrived at `now`.
    pub fn handle_audio(&mut self, now: Instant, pcm: &[i16]) {
        let mut rest = pcm;
        while !rest.is_empty() && self.phase != Phase::Done {
            let take = (FRAME - self.filled).min(rest.len());
            self.frame[self.filled..self.filled + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            if self.filled == FRAME {
                self.filled = 0;
                let frame = self.frame;
                self.on_frame(now, &frame);
            }
        }
        self.handle_timeout(now);
    }

    /// The caller pressed a key: a person.
    pub fn handle_key(&mut self, _now: Instant) {
        if self.phase == Phase::Listening {
            self.verdict(AmdVerdict::Human, "key");
            self.phase = Phase::Done;
        }
    }

    /// Deadlines in wall time, for a caller that sends no audio.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Listening => Some(self.started + self.cfg.max_wait),
            Phase::AwaitEnd { since } => Some(since + self.cfg.max_greeting),
            Phase::Done => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Listening if now >= self.started + self.cfg.max_wait => {
                self.verdict(AmdVerdict::Unknown, "no decision");
                self.phase = Phase::Done;
            }
            Phase::AwaitEnd { since } if now >= since + self.cfg.max_greeting => {
                self.push(AmdEvent::GreetingEnded(GreetingEnd::Timeout));
                self.phase = Phase::Done;
            }
            _ => {}
        }
    }

    pub fn poll_event(&mut self) -> Option<AmdEvent> {
        let e = self.events[0].take();
        self.events[0] = self.events[1].take();
        e
    }

    fn push(&mut self, e: AmdEvent) {
        if self.events[0].is_none() {
            self.events[0] = Some(e);
        } else {
            self.events[1] = Some(e);
        }
    }

    fn greeting_len(&self) -> Duration {
        match self.first_speech {
            Some(first) => duration(self.last_speech.saturating_sub(first)),
            None => Duration::ZERO,
        }
    }

    fn verdict(&mut self, verdict: AmdVerdict, reason: &'static str) {
        let greeting = self.greeting_len();
        self.push(AmdEvent::Verdict {
            verdict,
            reason,
            greeting,
            words: self.words,
        });
    }

    fn on_frame(&mut self, now: Instant, frame: &[i16; FRAME]) {
        self.t += FRAME as u64;
        // Beep first: a steady tone is not speech, whatever the VAD thinks of it.
        if let Some(end) = self.beep(frame) {
            match self.phase {
                Phase::Listening => {
                    self.verdict(AmdVerdict::Machine, "beep");
                    self.push(AmdEvent::GreetingEnded(end));
                    self.phase = Phase::Done;
                }
                Phase::AwaitEnd { .. } => {
                    self.push(AmdEvent::GreetingEnded(end));
                    self.phase = Phase::Done;
                }
                Phase::Done => {}
            }
            return;
        }
        if self.tone_frames > 0 {
            // Inside a tone (maybe a beep still too short to count): neither speech nor
            // the silence that ends a greeting.
            return;
        }
        let speech = self.vad.is_speech(frame);
        if speech {
            if self.first_speech.is_none() {
                self.first_speech = Some(self.t - FRAME as u64);
            }
            // A word is a run of speech of `min_word` or more; a pause of `word_gap` or more
            // ends it (`run` is reset below).
            self.run += FRAME as u64;
            let min_word = samples(self.cfg.min_word).div_ceil(FRAME as u64).max(1) * FRAME as u64;
            if self.run == min_word {
                self.words += 1;
            }
            self.silence = 0;
            self.last_speech = self.t;
        } else {
            self.silence += FRAME as u64;
            if self.silence >= samples(self.cfg.word_gap) {
                self.run = 0;
            }
        }
        match self.phase {
            Phase::Listening => {
                if self.first_speech.is_none() {
                    return;
                }
                if self.words >= self.cfg.max_words {
                    self.verdict(AmdVerdict::Machine, "many words");
                    self.phase = Phase::AwaitEnd { since: now };
                } else if self.greeting_len() >= self.cfg.machine_speech {
                    self.verdict(AmdVerdict::Machine, "long greeting");
                    self.phase = Phase::AwaitEnd { since: now };
                } else if self.silence >= samples(self.cfg.human_silence) {
                    self.verdict(AmdVerdict::Human, "short greeting");
                    self.phase = Phase::Done;
                }
            }
            Phase::AwaitEnd { .. } => {
                if self.silence >= samples(self.cfg.end_silence) {
                    self.push(AmdEvent::GreetingEnded(GreetingEnd::Silence));
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }

    /// Tracks a steady single tone; returns how the greeting ended when a beep long enough
    /// has just stopped.
    fn beep(&mut self, frame: &[i16; FRAME]) -> Option<GreetingEnd> {
        let hz = self.tone_in(frame);
        let steady = match hz {
            Some(f) if self.tone_frames == 0 => {
                self.tone_hz = f;
                self.tone_sum = 0.0;
                true
            }
            Some(f) => (f - self.tone_hz).abs() <= self.tone_hz * BEEP_STABILITY,
            None => false,
        };
        if steady && let Some(f) = hz {
            self.tone_frames += 1;
            self.tone_sum += f;
            // A very long steady tone (a fax, a disconnect tone) still ends the wait.
            if self.tone_frames < 150 {
                return None;
            }
        }
        let frames = std::mem::take(&mut self.tone_frames);
        if frames == 0 {
            return None;
        }
        let ms = frames * (FRAME as u32 / 8);
        let avg = self.tone_sum / frames as f32;
        if hz.is_some() && !steady {
            // Another tone right after: start tracking it.
            if let Some(f) = hz {
                self.tone_hz = f;
                self.tone_sum = f;
                self.tone_frames = 1;
            }
        }
        (Duration::from_millis(u64::from(ms)) >= MIN_BEEP).then_some(GreetingEnd::Beep {
            hz: avg.round() as u32,
            ms,
        })
    }

    /// The frequency of the single tone filling this frame, if there is one.
    fn tone_in(&self, frame: &[i16; FRAME]) -> Option<f32> {
        let mut energy = 0f32;
        let mut crossings = 0u32;
        let mut prev = frame[0];
        for &s in frame.iter() {
            energy += f32::from(s) * f32::from(s);
            if (s >= 0) != (prev >= 0) {
                crossings += 1;
            }
            prev = s;
        }
        if energy < BEEP_MIN_RMS * BEEP_MIN_RMS * FRAME as f32 {
            return None;
        }
        let est = crossings as f32 * 8000.0 / (2.0 * FRAME as f32);
        if !(BEEP_MIN_HZ * 0.9..=BEEP_MAX_HZ * 1.1).contains(&est) {
            return None;
        }
        let mut windowed = [0f32; FRAME];
        let mut wenergy = 0f32;
        for i in 0..FRAME {
            windowed[i] = f32::from(frame[i]) * self.hann[i];
            wenergy += windowed[i] * windowed[i];
        }
        // The zero-crossing estimate is within ±25 Hz; probe around it.
        let (mut best_f, mut best_p) = (est, 0f32);
        for df in [-25.0f32, -12.5, 0.0, 12.5, 25.0] {
            let p = goertzel_power(&windowed, est + df);
            if p > best_p {
                best_p = p;
                best_f = est + df;
            }
        }
        let purity = best_p * self.tone_gain / wenergy.max(1.0);
        (purity >= BEEP_PURITY && (BEEP_MIN_HZ..=BEEP_MAX_HZ).contains(&best_f)).then_some(best_f)
    }
}

fn goertzel_power(x: &[f32], freq: f32) -> f32 {
    let w = 2.0 * PI * freq / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f32, 0f32);
    for &v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, ms: u32, amp: f32) -> Vec<i16> {
        (0..ms * 8)
            .map(|n| (amp * (2.0 * PI * hz * n as f32 / 8000.0).sin()) as i16)
            .collect()
    }

    /// Speech-like bursts for the energy VAD: a buzz at 140 Hz with harmonics.
    fn talk(ms: u32) -> Vec<i16> {
        (0..ms * 8)
            .map(|n| {
                let t = n as f32 / 8000.0;
                let mut s = 0.0;
                for h in 1..12 {
                    s += (2.0 * PI * 140.0 * h as f32 * t).sin() * 3000.0 / h as f32;
                }
                s as i16
            })
            .collect()
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![0; ms as usize * 8]
    }

    fn energy_cfg() -> AmdConfig {
        AmdConfig {
            vad: VadKind::Energy,
            ..AmdConfig::default()
        }
    }

    fn run(cfg: AmdConfig, audio: &[i16]) -> Vec<(u64, AmdEvent)> {
        let t0 = Instant::now();
        let mut amd = Amd::new(cfg, t0);
        let mut out = Vec::new();
        for (i, chunk) in audio.chunks(160).enumerate() {
            let now = t0 + Duration::from_millis(20 * (i as u64 + 1));
            amd.handle_audio(now, chunk);
            while let Some(e) = amd.poll_event() {
                out.push((20 * (i as u64 + 1), e));
            }
        }
        out
    }

    fn verdict(events: &[(u64, AmdEvent)]) -> Option<AmdVerdict> {
        events.iter().find_map(|(_, e)| match e {
            AmdEvent::Verdict { verdict, .. } => Some(*verdict),
            _ => None,
        })
    }

    #[test]
    fn short_hello_then_silence_is_a_person() {
        let ev = run(
            energy_cfg(),
            &[silence(300), talk(600), silence(2000)].concat(),
        );
        assert_eq!(verdict(&ev), Some(AmdVerdict::Human), "{ev:?}");
        // Decided 800 ms after the word.
        assert!((1650..=1800).contains(&ev[0].0), "{ev:?}");
    }

    #[test]
    fn a_long_greeting_is_a_machine_and_the_beep_ends_it() {
        let mut a = silence(200);
        for _ in 0..6 {
            a.extend(talk(700));
            a.extend(silence(150));
        }
        a.extend(silence(400));
        a.extend(sine(1000.0, 400, 8000.0));
        a.extend(silence(1000));
        let ev = run(energy_cfg(), &a);
        assert_eq!(verdict(&ev), Some(AmdVerdict::Machine), "{ev:?}");
        let end = ev
            .iter()
            .find(|(_, e)| matches!(e, AmdEvent::GreetingEnded(_)))
            .unwrap();
        // The beep ends at 200 + 6·850 + 400 + 400 = 6100 ms.
        assert!((6100..=6160).contains(&end.0), "{ev:?}");
        assert!(
            matches!(end.1, AmdEvent::GreetingEnded(GreetingEnd::Beep { hz, .. }) if (990..=1010).contains(&hz)),
            "{end:?}"
        );
    }

    #[test]
    fn without_a_beep_silence_ends_the_greeting() {
        let mut a = silence(200);
        a.extend(talk(3000));
        a.extend(silence(3000));
        let ev = run(energy_cfg(), &a);
        assert_eq!(verdict(&ev), Some(AmdVerdict::Machine));
        assert!(
            ev.iter()
                .any(|(t, e)| *e == AmdEvent::GreetingEnded(GreetingEnd::Silence)
                    && (5200..=5260).contains(t)),
            "{ev:?}"
        );
    }

    #[test]
    fn a_beep_first_is_a_machine_dtmf_is_not_a_beep() {
        let ev = run(
            energy_cfg(),
            &[silence(500), sine(440.0, 300, 6000.0), silence(500)].concat(),
        );
        assert_eq!(verdict(&ev), Some(AmdVerdict::Machine));
        // Two tones at once (a key) are no beep; too short a tone neither.
        let dual: Vec<i16> = sine(770.0, 300, 5000.0)
            .iter()
            .zip(sine(1336.0, 300, 5000.0))
            .map(|(a, b)| a.saturating_add(b))
            .collect();
        let ev = run(energy_cfg(), &[silence(500), dual, silence(500)].concat());
        assert_ne!(verdict(&ev), Some(AmdVerdict::Machine), "{ev:?}");
        let ev = run(
            energy_cfg(),
            &[silence(500), sine(1000.0, 80, 6000.0), silence(500)].concat(),
        );
        assert_ne!(verdict(&ev), Some(AmdVerdict::Machine), "{ev:?}");
    }

    #[test]
    fn silence_is_unknown_at_max_wait_even_without_audio() {
        let ev = run(energy_cfg(), &silence(5000));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, 4000);
        assert_eq!(verdict(&ev), Some(AmdVerdict::Unknown));
        // No RTP at all: the timer decides.
        let t0 = Instant::now();
        let mut amd = Amd::new(energy_cfg(), t0);
        assert_eq!(amd.poll_timeout(), Some(t0 + Duration::from_secs(4)));
        amd.handle_timeout(t0 + Duration::from_secs(4));
        assert!(matches!(
            amd.poll_event(),
            Some(AmdEvent::Verdict {
                verdict: AmdVerdict::Unknown,
                ..
            })
        ));
        assert!(amd.is_done());
        assert_eq!(amd.poll_timeout(), None);
    }

    #[test]
    fn a_key_means_a_person() {
        let t0 = Instant::now();
        let mut amd = Amd::new(energy_cfg(), t0);
        amd.handle_audio(t0 + Duration::from_millis(20), &talk(20));
        amd.handle_key(t0 + Duration::from_millis(40));
        assert!(matches!(
            amd.poll_event(),
            Some(AmdEvent::Verdict {
                verdict: AmdVerdict::Human,
                reason: "key",
                ..
            })
        ));
        assert!(amd.is_done());
    }
}
