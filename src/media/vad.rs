//! Voice-activity detection and endpointing for the caller's audio (8 kHz, 20 ms frames).
//!
//! Two frame classifiers sit behind [`Vad`]:
//! - [`VadKind::Earshot`]: the `earshot` crate's small neural detector (pure Rust, built-in
//!   weights, 16 kHz / 16 ms frames: the 8 kHz line audio is upsampled ×2 for it);
//! - [`VadKind::Energy`]: frame energy against an adaptive noise floor, with the zero-crossing
//!   rate to reject hiss — no model, the fallback and the reference.
//!
//! Both were measured on the real recordings under line noise (tests/asr_vad.rs); the
//! default is the one that scored better there (see `VadKind::default`).
//!
//! [`Endpointer`] turns frames into events with VoiceXML-like timing:
//! ```text
//!            speech ≥ onset                 speech ≥ min_speech
//!   Idle ───────────────────► Onset ─────────────────────────► InSpeech ──► SpeechStarted
//!     ▲   (pre-roll kept)       │ silence: back to Idle (a click)   │
//!     │                         ▼                                   │ silence ≥ end_silence
//!     │                                                             │ or speech ≥ max_speech
//!     │            silence ≥ continue_window                        ▼
//!     └──────────────────────────────────────────────────── Trailing ──► Utterance
//!                              speech again: SpeechResumed, back to InSpeech, the audio
//!                              (gap included) keeps growing; the next Utterance holds it all
//! ```
//! Sans-IO: audio comes in with the instant it arrived; silence is counted in samples, and
//! [`Endpointer::poll_timeout`] covers a caller whose phone stops sending RTP in silence.
//! Not here: what the utterance says (asr), or whether it may interrupt a prompt (call).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
const RATE: u64 = 8000;

fn samples(d: Duration) -> u64 {
    (d.as_micros() as u64 * RATE) / 1_000_000
}

fn duration(n: u64) -> Duration {
    Duration::from_micros(n * 1_000_000 / RATE)
}

/// How far past a silence threshold the timer wakes the endpointer: one frame, so that
/// audio that keeps arriving crosses the threshold itself.
const TIMEOUT_SLACK: Duration = Duration::from_millis(60);

/// Which frame classifier to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VadKind {
    Earshot,
    Energy,
}

impl Default for VadKind {
    /// Earshot. Measured in tests/asr_vad.rs on the 40 human recordings through G.711 in
    /// white noise + hum: both find ~92 % of the speech frames on quiet lines, but at
    /// -35 dBFS of line noise the energy detector delivered 28/40 utterances whole and
    /// earshot 40/40 (false alarms 3.9 % vs 4.1 % of noise frames). Energy stays as the
    /// model-free fallback.
    fn default() -> Self {
        VadKind::Earshot
    }
}

/// A frame classifier: is this 20 ms of 8 kHz audio speech?
pub struct Vad {
    kind: VadKind,
    energy: EnergyVad,
    earshot: Option<Box<earshot::Detector>>,
    up: Vec<f32>,
    last: f32,
    prev_sample: f32,
    /// Earshot score at or above which a frame is speech.
    pub threshold: f32,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad").field("kind", &self.kind).finish()
    }
}

impl Vad {
    pub fn new(kind: VadKind) -> Vad {
        Vad {
            kind,
            energy: EnergyVad::default(),
            earshot: (kind == VadKind::Earshot).then(earshot::Detector::default_boxed),
            up: Vec::with_capacity(512),
            last: 0.0,
            prev_sample: 0.0,
            threshold: 0.5,
        }
    }

    pub fn kind(&self) -> VadKind {
        self.kind
    }

    pub fn reset(&mut self) {
        self.energy = EnergyVad::default();
        if let Some(d) = self.earshot.as_mut() {
            d.reset();
        }
        self.up.clear();
        self.last = 0.0;
        self.prev_sample = 0.0;
    }

    /// Classifies one frame ([`FRAME`] samples; shorter frames are judged as they are).
    pub fn is_speech(&mut self, frame: &[i16]) -> bool {
        let energy = self.energy.is_speech(frame);
        let Some(det) = self.earshot.as_mut() else {
            return energy;
        };
        // ×2 upsampling by linear interpolation: enough for a detector whose features stop
        // well below 4 kHz on telephone audio.
        for &s in frame {
            let s = f32::from(s) / 32768.0;
            self.up.push((self.prev_sample + s) * 0.5);
            self.up.push(s);
            self.prev_sample = s;
        }
        let mut consumed = 0;
        while self.up.len() - consumed >= 256 {
            self.last = det.predict_f32(&self.up[consumed..consumed + 256]);
            consumed += 256;
        }
        self.up.drain(..consumed);
        // The absolute energy gate stops the detector from calling digital near-silence speech.
        self.last >= self.threshold && self.energy.level_db > -55.0
    }
}

/// Energy + zero-crossing-rate detector with an adaptive noise floor.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    /// Estimated background level, dBFS.
    floor_db: f32,
    /// The last frame's level, dBFS.
    pub level_db: f32,
    frames: u64,
}

impl Default for EnergyVad {
    fn default() -> Self {
        EnergyVad {
            floor_db: -60.0,
            level_db: -100.0,
            frames: 0,
        }
    }
}

impl EnergyVad {
    /// Speech when the frame is 12 dB over the floor and over -50 dBFS, unless it looks
    /// like hiss (many zero crossings at a low level).
    pub fn is_speech(&mut self, frame: &[i16]) -> bool {
        if frame.is_empty() {
            return false;
        }
        let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let rms = (sum / frame.len() as f64).sqrt();
        let db = if rms < 1.0 {
            -100.0
        } else {
            (20.0 * (rms / 32768.0).log10()) as f32
        };
        self.level_db = db;
        let crossings = frame
            .windows(2)
            .filter(|w| (w[0] >= 0) != (w[1] >= 0))
            .count();
        let zcr = crossings as f32 / frame.len() as f32;
        self.frames += 1;
        // The floor follows quiet frames quickly and loud ones very slowly.
        if db < self.floor_db {
            self.floor_db += (db - self.floor_db) * 0.3;
        } else {
            self.floor_db += (db - self.floor_db).min(10.0) * 0.005;
        }
        let over = db - self.floor_db.max(-75.0);
        let hiss = zcr > 0.4 && over < 30.0;
        db > -50.0 && over > 12.0 && !hiss
    }
}

/// Endpointer timing.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Speech this long (consecutive frames) leaves `Idle`.
    pub onset: Duration,
    /// Speech this long in a segment makes it an utterance (and allows barge-in).
    pub min_speech: Duration,
    /// Silence this long after speech ends the utterance (the node's complete timeout).
    pub end_silence: Duration,
    /// After an utterance, speech resuming within this long of its end continues it (the
    /// node's incomplete timeout); later speech starts a new one.
    pub continue_window: Duration,
    /// An utterance is cut after this much audio (the node's max speech timeout).
    pub max_speech: Duration,
    /// Audio kept from before the onset, so the first consonant is not lost.
    pub pre_roll: Duration,
    /// Silence after which the utterance so far is offered for speculative recognition
    /// ([`EndpointEvent::Pause`]), so that its transcript is ready when `end_silence` ends
    /// it. Not used when it is not shorter than `end_silence`.
    pub early: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            onset: Duration::from_millis(60),
            min_speech: Duration::from_millis(120),
            end_silence: Duration::from_millis(600),
            continue_window: Duration::from_millis(1200),
            max_speech: Duration::from_secs(10),
            pre_roll: Duration::from_millis(300),
            early: Duration::from_millis(300),
        }
    }
}

/// What the endpointer reports.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointEvent {
    /// The caller has been speaking for `min_speech` (barge-in may stop the prompt).
    SpeechStarted { at: Instant },
    /// The caller spoke again soon after an [`Utterance`](EndpointEvent::Utterance): that
    /// utterance is not over; the next one will include it.
    SpeechResumed { at: Instant },
    /// `early` silence after speech: the utterance so far, for speculative recognition. If
    /// no speech follows, the [`Utterance`](EndpointEvent::Utterance) with the same
    /// `speech_end` comes after `end_silence`; if speech follows, `SpeechResumed` or more
    /// speech makes this audio incomplete.
    Pause {
        audio: Vec<i16>,
        speech_end: Instant,
    },
    /// End of an utterance: all its audio (8 kHz, with pre-roll and inner pauses).
    Utterance {
        audio: Vec<i16>,
        /// When the last speech frame arrived.
        speech_end: Instant,
        /// Cut by `max_speech` rather than ended by silence.
        forced: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Onset,
    InSpeech,
    Trailing,
}

pub struct Endpointer {
    cfg: EndpointConfig,
    vad: Vad,
    phase: Phase,
    /// Pre-roll ring while idle.
    ring: VecDeque<i16>,
    /// The utterance so far.
    audio: Vec<i16>,
    /// Consecutive speech samples (Onset) / speech samples in the utterance.
    speech_run: u64,
    speech_total: u64,
    /// Samples of silence since the last speech frame (audio received, or time passed
    /// with none: see `handle_timeout`).
    silence: u64,
    /// Samples of silence at the end of `audio` (only what was received).
    tail_silence: u64,
    started_reported: bool,
    /// A `Pause` was reported for the current silence.
    paused: bool,
    last_speech_at: Option<Instant>,
    /// A frame in progress (packets are not always 160 samples).
    partial: Vec<i16>,
    events: VecDeque<EndpointEvent>,
}

impl std::fmt::Debug for Endpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpointer")
            .field("phase", &self.phase)
            .field("audio", &self.audio.len())
            .finish()
    }
}

impl Endpointer {
    pub fn new(cfg: EndpointConfig, vad: VadKind) -> Endpointer {
        Endpointer {
            cfg,
            vad: Vad::new(vad),
            phase: Phase::Idle,
            ring: VecDeque::new(),
            audio: Vec::new(),
            speech_run: 0,
            speech_total: 0,
            silence: 0,
            tail_silence: 0,
            started_reported: false,
            paused: false,
            last_speech_at: None,
            partial: Vec::with_capacity(FRAME),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// New timers (a new question); what is in progress keeps going.
    pub fn set_config(&mut self, cfg: EndpointConfig) {
        self.cfg = cfg;
    }

    /// Forget everything in progress (a key was pressed, the question changed).
    pub fn reset(&mut self) {
        self.phase = Phase::Idle;
        self.ring.clear();
        self.audio.clear();
        self.speech_run = 0;
        self.speech_total = 0;
        self.silence = 0;
        self.tail_silence = 0;
        self.started_reported = false;
        self.paused = false;
        self.last_speech_at = None;
        self.partial.clear();
        self.events.clear();
    }

    /// Whether the caller is speaking now (past onset, not yet in trailing silence).
    pub fn in_speech(&self) -> bool {
        matches!(self.phase, Phase::InSpeech)
    }

    /// Audio that arrived at `now` (any length; framed internally).
    pub fn handle_audio(&mut self, now: Instant, pcm: &[i16]) {
        let mut rest = pcm;
        while !rest.is_empty() {
            let take = (FRAME - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == FRAME {
                let frame = std::mem::take(&mut self.partial);
                self.frame(now, &frame);
                self.partial = frame;
                self.partial.clear();
            }
        }
    }

    fn frame(&mut self, now: Instant, frame: &[i16]) {
        let speech = self.vad.is_speech(frame);
        let n = frame.len() as u64;
        match self.phase {
            Phase::Idle => {
                self.push_ring(frame);
                if speech {
                    self.phase = Phase::Onset;
                    self.speech_run = n;
                    self.silence = 0;
                    self.tail_silence = 0;
                    self.maybe_onset(now);
                }
            }
            Phase::Onset => {
                self.push_ring(frame);
                if speech {
                    self.speech_run += n;
                    self.maybe_onset(now);
                } else {
                    self.phase = Phase::Idle;
                    self.speech_run = 0;
                }
            }
            Phase::InSpeech | Phase::Trailing => {
                self.audio.extend_from_slice(frame);
                if speech {
                    if self.phase == Phase::Trailing || self.paused {
                        self.phase = Phase::InSpeech;
                        self.events
                            .push_back(EndpointEvent::SpeechResumed { at: now });
                    }
                    self.paused = false;
                    self.speech_total += n;
                    self.silence = 0;
                    self.tail_silence = 0;
                    self.last_speech_at = Some(now);
                    if !self.started_reported && self.speech_total >= samples(self.cfg.min_speech) {
                        self.started_reported = true;
                        self.events
                            .push_back(EndpointEvent::SpeechStarted { at: now });
                    }
                    if self.audio.len() as u64 >= samples(self.cfg.max_speech) {
                        self.finish(now, true);
                    }
                } else {
                    self.silence += n;
                    self.tail_silence += n;
                    self.after_silence(now);
                }
            }
        }
    }

    fn push_ring(&mut self, frame: &[i16]) {
        self.ring.extend(frame);
        let keep = samples(self.cfg.pre_roll) as usize + FRAME * 4;
        while self.ring.len() > keep {
            self.ring.pop_front();
        }
    }

    fn maybe_onset(&mut self, now: Instant) {
        if self.speech_run < samples(self.cfg.onset) {
            return;
        }
        // Pre-roll plus the onset frames become the start of the utterance.
        let keep = (samples(self.cfg.pre_roll) + self.speech_run) as usize;
        let skip = self.ring.len().saturating_sub(keep);
        self.audio.clear();
        self.audio.extend(self.ring.iter().skip(skip));
        self.ring.clear();
        self.phase = Phase::InSpeech;
        self.speech_total = self.speech_run;
        self.silence = 0;
        self.tail_silence = 0;
        self.started_reported = false;
        self.paused = false;
        self.last_speech_at = Some(now);
        if self.speech_total >= samples(self.cfg.min_speech) {
            self.started_reported = true;
            self.events
                .push_back(EndpointEvent::SpeechStarted { at: now });
        }
    }

    /// The utterance's audio with at most 300 ms of its trailing silence (the rest carries
    /// nothing for the recogniser).
    fn trimmed_audio(&self) -> Vec<i16> {
        let tail = self.tail_silence.min(self.audio.len() as u64);
        let keep_tail = samples(Duration::from_millis(300)).min(tail);
        let len = self.audio.len() - (tail - keep_tail) as usize;
        self.audio[..len].to_vec()
    }

    /// Whether the speculative `Pause` is still to come for the current silence.
    fn pause_due(&self) -> bool {
        self.phase == Phase::InSpeech
            && !self.paused
            && self.cfg.early < self.cfg.end_silence
            && self.speech_total >= samples(self.cfg.min_speech)
    }

    /// The amount of silence at which [`Endpointer::after_silence`] next does something,
    /// in samples; `None` when silence changes nothing (idle, onset). `poll_timeout` is
    /// derived from this one function, so a deadline it reports is always one that
    /// `handle_timeout` acts on (the node-hang of issue 12 was a deadline for a `Pause`
    /// that `after_silence` would not send: too little speech for one).
    fn next_threshold(&self) -> Option<u64> {
        match self.phase {
            Phase::InSpeech if self.pause_due() => Some(samples(self.cfg.early)),
            Phase::InSpeech => Some(samples(self.cfg.end_silence)),
            Phase::Trailing => Some(samples(self.cfg.continue_window)),
            Phase::Idle | Phase::Onset => None,
        }
    }

    /// Act on the silence counted so far: every threshold it has passed, in order (a long
    /// gap in the audio can pass the pause, the end and the continue window at once).
    fn after_silence(&mut self, now: Instant) {
        // Each step moves to a later threshold or to idle, so this ends within 3 steps.
        while let Some(threshold) = self.next_threshold() {
            if self.silence < threshold {
                break;
            }
            match self.phase {
                Phase::InSpeech if self.pause_due() => {
                    self.paused = true;
                    let speech_end = self.last_speech_at.unwrap_or(now);
                    self.events.push_back(EndpointEvent::Pause {
                        audio: self.trimmed_audio(),
                        speech_end,
                    });
                }
                Phase::InSpeech => {
                    if self.speech_total >= samples(self.cfg.min_speech) {
                        self.finish(now, false);
                    } else {
                        // A click or a cough too short to be an answer.
                        self.go_idle();
                    }
                }
                Phase::Trailing => self.go_idle(),
                Phase::Idle | Phase::Onset => break,
            }
        }
    }

    fn finish(&mut self, now: Instant, forced: bool) {
        let speech_end = self.last_speech_at.unwrap_or(now);
        self.events.push_back(EndpointEvent::Utterance {
            audio: self.trimmed_audio(),
            speech_end,
            forced,
        });
        if forced {
            self.go_idle();
        } else {
            self.phase = Phase::Trailing;
        }
    }

    fn go_idle(&mut self) {
        self.phase = Phase::Idle;
        self.audio.clear();
        self.speech_run = 0;
        self.speech_total = 0;
        self.silence = 0;
        self.tail_silence = 0;
        self.started_reported = false;
        self.paused = false;
        self.last_speech_at = None;
    }

    /// When the endpointer must be told the time even if no audio arrives (a phone that
    /// stops sending RTP in silence): the next silence threshold, plus a frame of slack
    /// (normally the audio itself crosses it). After [`Endpointer::handle_timeout`]`(now)`
    /// this is `None` or later than `now`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let last = self.last_speech_at?;
        let threshold = self.next_threshold()?;
        Some(last + duration(threshold) + TIMEOUT_SLACK)
    }

    /// Time passed with no audio: counts as silence up to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(last) = self.last_speech_at else {
            return;
        };
        if !matches!(self.phase, Phase::InSpeech | Phase::Trailing) {
            return;
        }
        let gap = samples(now.saturating_duration_since(last));
        self.silence = self.silence.max(gap);
        self.after_silence(now);
    }

    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// Length of the utterance in progress.
    pub fn audio_len(&self) -> Duration {
        duration(self.audio.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u64, amp: f32) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / 8000.0;
                // A vowel-like signal: 150 Hz with harmonics.
                let v = (2.0 * std::f32::consts::PI * 150.0 * t).sin()
                    + 0.5 * (2.0 * std::f32::consts::PI * 450.0 * t).sin()
                    + 0.3 * (2.0 * std::f32::consts::PI * 900.0 * t).sin();
                (v * amp) as i16
            })
            .collect()
    }

    fn feed(ep: &mut Endpointer, t0: Instant, at_ms: &mut u64, pcm: &[i16]) -> Vec<EndpointEvent> {
        let mut out = Vec::new();
        for chunk in pcm.chunks(FRAME) {
            *at_ms += 20;
            ep.handle_audio(t0 + Duration::from_millis(*at_ms), chunk);
            while let Some(e) = ep.poll_event() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn energy_utterance_ends_after_end_silence() {
        let t0 = Instant::now();
        let mut ep = Endpointer::new(EndpointConfig::default(), VadKind::Energy);
        let mut at = 0;
        assert!(feed(&mut ep, t0, &mut at, &vec![0; 8000]).is_empty());
        let ev = feed(&mut ep, t0, &mut at, &tone(400, 8000.0));
        assert!(
            matches!(ev[..], [EndpointEvent::SpeechStarted { .. }]),
            "{ev:?}"
        );
        let ev = feed(&mut ep, t0, &mut at, &vec![0; 8 * 580]);
        assert!(matches!(ev[..], [EndpointEvent::Pause { .. }]), "{ev:?}");
        let ev = feed(&mut ep, t0, &mut at, &vec![0; 8 * 40]);
        match &ev[..] {
            [
                EndpointEvent::Utterance {
                    audio,
                    forced: false,
                    speech_end,
                },
            ] => {
                // pre-roll + speech + 300 ms tail
                assert!((5000..=8200).contains(&audio.len()), "{}", audio.len());
                assert_eq!(*speech_end, t0 + Duration::from_millis(1400));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_click_is_not_an_utterance() {
        let t0 = Instant::now();
        let mut ep = Endpointer::new(EndpointConfig::default(), VadKind::Energy);
        let mut at = 0;
        feed(&mut ep, t0, &mut at, &vec![0; 4000]);
        let mut ev = feed(&mut ep, t0, &mut at, &tone(80, 8000.0));
        ev.extend(feed(&mut ep, t0, &mut at, &vec![0; 16000]));
        assert!(ev.is_empty(), "{ev:?}");
    }

    #[test]
    fn speech_resumed_within_the_window_continues_the_utterance() {
        let t0 = Instant::now();
        let mut ep = Endpointer::new(EndpointConfig::default(), VadKind::Energy);
        let mut at = 0;
        feed(&mut ep, t0, &mut at, &vec![0; 4000]);
        feed(&mut ep, t0, &mut at, &tone(300, 8000.0));
        let ev = feed(&mut ep, t0, &mut at, &vec![0; 8 * 700]);
        let first = match &ev[..] {
            [
                EndpointEvent::Pause { audio: early, .. },
                EndpointEvent::Utterance { audio, .. },
            ] => {
                // The speculative audio is the utterance (both keep ≤ 300 ms of silence).
                assert_eq!(early, audio);
                audio.len()
            }
            other => panic!("{other:?}"),
        };
        let ev = feed(&mut ep, t0, &mut at, &tone(300, 8000.0));
        assert!(
            matches!(ev[..], [EndpointEvent::SpeechResumed { .. }]),
            "{ev:?}"
        );
        let ev = feed(&mut ep, t0, &mut at, &vec![0; 8 * 700]);
        match &ev[..] {
            [
                EndpointEvent::Pause { .. },
                EndpointEvent::Utterance { audio, .. },
            ] => {
                assert!(audio.len() > first + 2400 + 3000)
            }
            other => panic!("{other:?}"),
        }
        // Past the continue window, new speech is a new utterance.
        feed(&mut ep, t0, &mut at, &vec![0; 8 * 1500]);
        let ev = feed(&mut ep, t0, &mut at, &tone(300, 8000.0));
        assert!(
            matches!(ev[..], [EndpointEvent::SpeechStarted { .. }]),
            "{ev:?}"
        );
    }

    #[test]
    fn max_speech_cuts_and_silent_rtp_gap_ends_by_timeout() {
        let t0 = Instant::now();
        let cfg = EndpointConfig {
            max_speech: Duration::from_secs(2),
            ..EndpointConfig::default()
        };
        let mut ep = Endpointer::new(cfg, VadKind::Energy);
        let mut at = 0;
        feed(&mut ep, t0, &mut at, &vec![0; 4000]);
        let ev = feed(&mut ep, t0, &mut at, &tone(3000, 8000.0));
        assert!(
            ev.iter()
                .any(|e| matches!(e, EndpointEvent::Utterance { forced: true, .. })),
            "{ev:?}"
        );
        // A new utterance, then the phone stops sending: the timeout ends it.
        feed(&mut ep, t0, &mut at, &vec![0; 8000]);
        ep.reset();
        let ev = feed(&mut ep, t0, &mut at, &tone(500, 8000.0));
        assert!(
            matches!(ev[..], [EndpointEvent::SpeechStarted { .. }]),
            "{ev:?}"
        );
        let deadline = ep.poll_timeout().unwrap();
        ep.handle_timeout(deadline);
        assert!(matches!(ep.poll_event(), Some(EndpointEvent::Pause { .. })));
        assert_eq!(ep.poll_event(), None);
        let deadline = ep.poll_timeout().unwrap();
        ep.handle_timeout(deadline);
        assert!(matches!(
            ep.poll_event(),
            Some(EndpointEvent::Utterance { forced: false, .. })
        ));
    }

    /// Issue 12: onset reached (60 ms) but less than `min_speech` (120 ms) of speech, then
    /// the phone goes quiet. The old timer asked for a wake-up for a `Pause` that
    /// `after_silence` would not send, so the same past deadline came back for ever.
    #[test]
    fn too_little_speech_then_no_rtp_gives_a_deadline_that_is_acted_on() {
        let t0 = Instant::now();
        let mut ep = Endpointer::new(EndpointConfig::default(), VadKind::Energy);
        let mut at = 0;
        feed(&mut ep, t0, &mut at, &vec![0; 4000]);
        feed(&mut ep, t0, &mut at, &tone(80, 8000.0));
        assert!(ep.in_speech());
        let mut wakeups = 0;
        while let Some(deadline) = ep.poll_timeout() {
            ep.handle_timeout(deadline);
            wakeups += 1;
            assert!(ep.poll_timeout().is_none_or(|t| t > deadline));
            assert!(wakeups < 4, "the endpointer keeps asking for {deadline:?}");
        }
        assert!(!ep.in_speech());
        assert_eq!(ep.poll_event(), None, "a click is not an utterance");
    }

    /// A gap longer than every threshold at once: pause, end and continue window are all
    /// passed in one wake-up.
    #[test]
    fn one_long_gap_passes_every_threshold_in_one_wakeup() {
        let t0 = Instant::now();
        let mut ep = Endpointer::new(EndpointConfig::default(), VadKind::Energy);
        let mut at = 0;
        feed(&mut ep, t0, &mut at, &vec![0; 4000]);
        feed(&mut ep, t0, &mut at, &tone(400, 8000.0));
        while ep.poll_event().is_some() {}
        let late = t0 + Duration::from_millis(at + 10_000);
        ep.handle_timeout(late);
        let ev: Vec<_> = std::iter::from_fn(|| ep.poll_event()).collect();
        assert!(
            matches!(
                ev[..],
                [
                    EndpointEvent::Pause { .. },
                    EndpointEvent::Utterance { forced: false, .. }
                ]
            ),
            "{ev:?}"
        );
        assert_eq!(ep.poll_timeout(), None);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// A caller's line: (voice ms, silence ms, whether the phone keeps sending RTP
        /// during the silence) segments, with odd packet sizes.
        fn pattern() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
            proptest::collection::vec((0u64..700, 0u64..2500, any::<bool>()), 1..40)
        }

        fn config() -> impl Strategy<Value = EndpointConfig> {
            (
                60u64..200,
                100u64..1500,
                0u64..2000,
                500u64..12_000,
                0u64..700,
            )
                .prop_map(|(min_speech, end, cont, max, early)| EndpointConfig {
                    min_speech: Duration::from_millis(min_speech),
                    end_silence: Duration::from_millis(end),
                    continue_window: Duration::from_millis(end + cont),
                    max_speech: Duration::from_millis(max),
                    early: Duration::from_millis(early),
                    ..EndpointConfig::default()
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            /// After `handle_timeout(now)` the next deadline is `None` or later than `now`,
            /// whatever the voice/silence pattern and timing; timers fire in between
            /// packets the way the engine fires them.
            #[test]
            fn a_handled_deadline_never_comes_back(cfg in config(), segs in pattern(), packet in 80usize..241) {
                let t0 = Instant::now();
                let mut ep = Endpointer::new(cfg, VadKind::Energy);
                let mut now = t0;
                let step = Duration::from_micros(packet as u64 * 125);
                let fire = |ep: &mut Endpointer, upto: Instant| -> Result<(), TestCaseError> {
                    let mut n = 0;
                    while let Some(d) = ep.poll_timeout() {
                        if d > upto { break; }
                        ep.handle_timeout(d);
                        n += 1;
                        prop_assert!(ep.poll_timeout().is_none_or(|t| t > d), "deadline {d:?} survived its own handling");
                        prop_assert!(n < 8);
                    }
                    while ep.poll_event().is_some() {}
                    Ok(())
                };
                for (voice_ms, silence_ms, sends) in segs {
                    for chunk in tone(voice_ms, 8000.0).chunks(packet) {
                        fire(&mut ep, now)?;
                        ep.handle_audio(now, chunk);
                        now += step;
                    }
                    if sends {
                        for chunk in vec![0i16; silence_ms as usize * 8].chunks(packet) {
                            fire(&mut ep, now)?;
                            ep.handle_audio(now, chunk);
                            now += step;
                        }
                    } else {
                        now += Duration::from_millis(silence_ms);
                        fire(&mut ep, now)?;
                    }
                }
                fire(&mut ep, now + Duration::from_secs(60))?;
                prop_assert_eq!(ep.poll_timeout(), None);
            }
        }
    }

    #[test]
    fn hiss_and_hum_are_not_speech_for_the_energy_detector() {
        let mut v = EnergyVad::default();
        let mut x: u32 = 12345;
        let mut hiss = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((x >> 16) as i16 as i32 / 40) as i16
        };
        let frames: Vec<Vec<i16>> = (0..100)
            .map(|_| (0..160).map(|_| hiss()).collect())
            .collect();
        let speech = frames.iter().filter(|f| v.is_speech(f)).count();
        assert!(speech <= 2, "{speech}");
    }
}
