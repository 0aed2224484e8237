//! The speech side of one call, sans-IO: caller audio in, dialogue inputs and recognition
//! requests out. The call core owns one [`Listener`] and glues it to the dialogue.
//!
//! ```text
//!  audio ──► (listening? prompt interruptible?) ──► Endpointer ──SpeechStarted──► Input::SpeechStarted
//!                                                      │ Utterance
//!                                                      ▼
//!                                     Recognize{id} ──► (worker pool) ──► handle_result(id)
//!                                                      │ transcript names an expected phrase
//!                                                      │ (or open question): deliver now;
//!                                                      │ otherwise hold until the end of
//!                                                      │ speech + incomplete_timeout
//!                                                      ▼
//!                                              Input::Utterance / SpeechUnrecognised
//! ```
//! VoiceXML-like timing: the endpointer ends an utterance after `complete_timeout` of
//! silence; speech resuming within `incomplete_timeout` of its end continues it (the pending
//! recognition is dropped and the longer utterance recognised again), so a caller pausing
//! between the digits of a number is not cut off. A key cancels pending recognition; a
//! result whose id is no longer awaited is ignored.
//!
//! Recording (`Action::Record`) is here too: capture until `final_silence` after speech or
//! `max_length`, then transcribe it if asked.
//!
//! Not here: RTP, G.711 (the call core decodes), threads (the runtime's pool), the words.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Transcript;
use crate::dialogue::{Input, ListenSpec};
use crate::media::vad::{EndpointConfig, EndpointEvent, Endpointer, FRAME, Vad, VadKind};
use crate::pii::Pii;

/// What the listener asks of its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenEvent {
    /// Feed this to the dialogue.
    Input(Input),
    /// Recognise this audio (8 kHz) and answer with [`Listener::handle_result`].
    Recognize {
        id: u64,
        audio: Vec<i16>,
        lang: String,
        phrases: Vec<String>,
    },
    /// Recognition `id` is no longer wanted (the caller spoke on, pressed a key, or the
    /// question ended): stop it if it has not finished. Its result would be ignored anyway;
    /// stopping it frees the worker for the recognition that is wanted.
    Cancel { id: u64 },
    /// A recognition finished (before its input, if any, goes to the dialogue): for the
    /// call's trace and its metrics.
    Recognised(Recognition),
    /// Recording `dialogue_id` ended with the caller's voice in it: keep this audio (8 kHz).
    /// Comes before the recording's [`Input::RecordingDone`].
    Save { dialogue_id: u64, audio: Vec<i16> },
}

/// One finished recognition of an utterance, for the call trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// When the caller started speaking (the endpointer's onset).
    pub speech_start: Option<Instant>,
    /// When the caller stopped speaking (the last voiced frame).
    pub speech_end: Instant,
    /// The transcript (personal data: the trace keeps it redacted unless PII is revealed);
    /// empty when nothing intelligible was heard or recognition failed.
    pub text: String,
    pub confidence: f32,
    /// Wall time of the decode (`Transcript::elapsed`; zero when it failed).
    pub decode: Duration,
    /// The decode chose one of the expected phrases by scoring them (`Transcript::constrained`).
    pub constrained: bool,
    /// Recognition failed (the error, not personal data).
    pub error: Option<String>,
}

#[derive(Debug)]
enum Pending {
    Utterance {
        id: u64,
        speech_end: Instant,
        /// The endpointer has ended the utterance (false: a speculative recognition started
        /// at a pause; its result is kept until the utterance ends or speech resumes).
        ended: bool,
        /// The speculative result, when it came before the end.
        early: Option<Result<Transcript, String>>,
    },
    Recording {
        id: u64,
        dialogue_id: u64,
        duration: Duration,
    },
}

impl Pending {
    fn id(&self) -> u64 {
        match self {
            Pending::Utterance { id, .. } | Pending::Recording { id, .. } => *id,
        }
    }
}

#[derive(Debug)]
struct Recording {
    dialogue_id: u64,
    started: Instant,
    max_length: Duration,
    final_silence: Duration,
    transcribe: bool,
    lang: String,
    audio: Vec<i16>,
    vad: Vad,
    spoke: bool,
    silence: u64,
    /// When a voiced frame last arrived: with no RTP at all after it (a phone that
    /// suppresses silence), the recording still ends `final_silence` later.
    last_voice: Option<Instant>,
}

impl Recording {
    /// When the recording ends if nothing more comes: `final_silence` after the last voice
    /// (measured in time, whether silence packets arrive or not), or at `max_length`. A
    /// little after the packet-counted silence, so that with RTP flowing the audio decides.
    fn deadline(&self) -> Instant {
        let slack = Duration::from_millis(100);
        let cap = self.started + self.max_length + slack;
        match self.last_voice {
            Some(t) if self.spoke => cap.min(t + self.final_silence + slack),
            _ => cap,
        }
    }
}

/// The key of a question: a new one resets the endpointer; `barge_in` flipping when the
/// prompt ends does not.
fn same_question(a: &ListenSpec, b: &ListenSpec) -> bool {
    a.lang == b.lang
        && a.phrases == b.phrases
        && a.complete_timeout == b.complete_timeout
        && a.incomplete_timeout == b.incomplete_timeout
        && a.max_speech_timeout == b.max_speech_timeout
}

/// Silence after which the utterance so far is recognised speculatively: a third of the
/// node's `complete_timeout`, between [`EARLY_MIN`] and [`EARLY_MAX`]. Earlier means the
/// transcript is more often ready when the silence becomes the end of the utterance (a
/// decode takes ~200 ms on 2 cores, so half of a 400 ms timeout left it late on most
/// turns; see `cargo bench --bench asr -- latency`); too early means recognising the pause
/// between two words of one answer, which is then cancelled when the caller goes on.
pub fn speculative_delay(complete_timeout: Duration) -> Duration {
    (complete_timeout / 3).clamp(EARLY_MIN, EARLY_MAX)
}

/// Shortest silence that starts a speculative recognition (pauses inside "that's right"
/// or «всё верно» are shorter).
pub const EARLY_MIN: Duration = Duration::from_millis(100);
/// Longest silence before a speculative recognition starts.
pub const EARLY_MAX: Duration = Duration::from_millis(300);

fn endpoint_config(spec: &ListenSpec) -> EndpointConfig {
    EndpointConfig {
        end_silence: spec.complete_timeout,
        continue_window: spec.incomplete_timeout.max(spec.complete_timeout),
        max_speech: spec.max_speech_timeout,
        early: speculative_delay(spec.complete_timeout),
        ..EndpointConfig::default()
    }
}

pub struct Listener {
    vad: VadKind,
    /// Raises a quiet caller before the endpointer (and so before Whisper): `level::Agc`.
    agc: Option<super::level::Agc>,
    endpointer: Option<Endpointer>,
    spec: Option<ListenSpec>,
    next_id: u64,
    pending: Option<Pending>,
    /// A transcript that names no expected phrase, delivered at this instant unless the
    /// caller speaks again first.
    held: Option<(Instant, Input)>,
    started_reported: bool,
    /// Onset of the speech being listened to (for [`Recognition::speech_start`]).
    speech_start: Option<Instant>,
    recording: Option<Recording>,
    events: VecDeque<ListenEvent>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("listening", &self.spec.is_some())
            .field("pending", &self.pending)
            .finish()
    }
}

impl Default for Listener {
    fn default() -> Self {
        Listener::new(VadKind::default())
    }
}

impl Listener {
    pub fn new(vad: VadKind) -> Listener {
        Listener {
            vad,
            agc: Some(super::level::Agc::default()),
            endpointer: None,
            spec: None,
            next_id: 1,
            pending: None,
            held: None,
            started_reported: false,
            speech_start: None,
            recording: None,
            events: VecDeque::new(),
        }
    }

    /// Turns the caller-level AGC on or off (on by default).
    pub fn set_agc(&mut self, on: bool) {
        self.agc = on.then(super::level::Agc::default);
    }

    /// Whether a recognition is awaited (an utterance or a recording's transcript).
    pub fn is_pending(&self) -> bool {
        self.pending.is_some() || self.held.is_some()
    }

    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Decoded caller audio that arrived at `now`. `spec` is what the dialogue listens for
    /// now (None: not listening); `playing` whether a prompt is on the wire.
    pub fn handle_audio(
        &mut self,
        now: Instant,
        pcm: &[i16],
        spec: Option<&ListenSpec>,
        playing: bool,
    ) {
        if let Some(rec) = self.recording.as_mut() {
            rec.audio.extend_from_slice(pcm);
            for frame in pcm.chunks(FRAME) {
                if rec.vad.is_speech(frame) {
                    rec.spoke = true;
                    rec.silence = 0;
                    rec.last_voice = Some(now);
                } else {
                    rec.silence += frame.len() as u64;
                }
            }
            let silence = Duration::from_micros(rec.silence * 125);
            let length = Duration::from_micros(rec.audio.len() as u64 * 125);
            if (rec.spoke && silence >= rec.final_silence) || length >= rec.max_length {
                self.finish_recording();
            }
        }
        self.update_spec(spec);
        let Some(spec) = self.spec.as_ref() else {
            return;
        };
        // A prompt that may not be interrupted is not listened through (VoiceXML bargein
        // false): what the caller says over it is dropped.
        if playing && !spec.barge_in {
            if let Some(ep) = self.endpointer.as_mut() {
                ep.reset();
            }
            return;
        }
        let ep = self
            .endpointer
            .get_or_insert_with(|| Endpointer::new(endpoint_config(spec), self.vad));
        if let Some(agc) = self.agc.as_mut() {
            let mut raised = pcm.to_vec();
            for frame in raised.chunks_mut(FRAME) {
                agc.process(frame);
            }
            ep.handle_audio(now, &raised);
        } else {
            ep.handle_audio(now, pcm);
        }
        self.drain_endpointer(now);
    }

    fn update_spec(&mut self, spec: Option<&ListenSpec>) {
        match (self.spec.as_ref(), spec) {
            (None, None) => {}
            (Some(_), None) => {
                // The dialogue stopped listening (answered, timed out, moved on).
                self.spec = None;
                self.reset_speech();
            }
            (Some(old), Some(new)) if same_question(old, new) => {
                if old.barge_in != new.barge_in {
                    self.spec = Some(new.clone());
                }
            }
            (_, Some(new)) => {
                self.reset_speech();
                self.spec = Some(new.clone());
                if let Some(ep) = self.endpointer.as_mut() {
                    ep.set_config(endpoint_config(new));
                }
            }
        }
    }

    /// Drops the utterance being recognised, if any, and asks for its recognition to stop.
    fn drop_utterance(&mut self) {
        if let Some(Pending::Utterance { id, early, .. }) = &self.pending {
            if early.is_none() {
                self.events.push_back(ListenEvent::Cancel { id: *id });
            }
            self.pending = None;
        }
    }

    fn reset_speech(&mut self) {
        if let Some(ep) = self.endpointer.as_mut() {
            ep.reset();
        }
        self.drop_utterance();
        self.held = None;
        self.started_reported = false;
    }

    fn drain_endpointer(&mut self, now: Instant) {
        let Some(ep) = self.endpointer.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(ev) = ep.poll_event() {
            out.push(ev);
        }
        for ev in out {
            match ev {
                EndpointEvent::SpeechStarted { at } => {
                    if !self.started_reported {
                        self.started_reported = true;
                        self.speech_start = Some(at);
                        self.events
                            .push_back(ListenEvent::Input(Input::SpeechStarted));
                    }
                }
                EndpointEvent::Pause { audio, speech_end } => {
                    // Speculative: recognise now so the transcript is ready when the
                    // silence turns into the end of the utterance.
                    let Some((lang, phrases)) = self
                        .spec
                        .as_ref()
                        .map(|s| (s.lang.clone(), s.phrases.clone()))
                    else {
                        continue;
                    };
                    self.drop_utterance();
                    let id = self.next_id;
                    self.next_id += 1;
                    self.held = None;
                    self.pending = Some(Pending::Utterance {
                        id,
                        speech_end,
                        ended: false,
                        early: None,
                    });
                    self.events.push_back(ListenEvent::Recognize {
                        id,
                        audio,
                        lang,
                        phrases,
                    });
                }
                EndpointEvent::SpeechResumed { .. } => {
                    // The caller is not done: what was sent for recognition is incomplete.
                    self.drop_utterance();
                    self.held = None;
                }
                EndpointEvent::Utterance {
                    audio, speech_end, ..
                } => {
                    let Some((lang, phrases)) = self
                        .spec
                        .as_ref()
                        .map(|s| (s.lang.clone(), s.phrases.clone()))
                    else {
                        continue;
                    };
                    // The speculative recognition of this very utterance is the final one.
                    if let Some(Pending::Utterance {
                        speech_end: at,
                        ended,
                        early,
                        ..
                    }) = self.pending.as_mut()
                        && *at == speech_end
                        && !*ended
                    {
                        *ended = true;
                        if let Some(result) = early.take() {
                            self.finish_utterance(now, speech_end, result);
                        }
                        continue;
                    }
                    self.drop_utterance();
                    let id = self.next_id;
                    self.next_id += 1;
                    self.held = None;
                    self.pending = Some(Pending::Utterance {
                        id,
                        speech_end,
                        ended: true,
                        early: None,
                    });
                    tracing::debug!(
                        id,
                        audio_ms = audio.len() as u64 / 8,
                        end_lag_ms = now.saturating_duration_since(speech_end).as_millis() as u64,
                        "utterance ended; recognising"
                    );
                    self.events.push_back(ListenEvent::Recognize {
                        id,
                        audio,
                        lang,
                        phrases,
                    });
                }
            }
        }
    }

    /// A recognition result. Results for ids no longer awaited are ignored.
    pub fn handle_result(&mut self, now: Instant, id: u64, result: Result<Transcript, String>) {
        if self.pending.as_ref().is_none_or(|p| p.id() != id) {
            tracing::debug!(id, "stale recognition result ignored");
            return;
        }
        if let Some(Pending::Utterance {
            ended: false,
            early,
            ..
        }) = self.pending.as_mut()
        {
            // Speculative and the caller may still go on: keep it for the end.
            *early = Some(result);
            return;
        }
        let Some(pending) = self.pending.take() else {
            return;
        };
        match pending {
            Pending::Recording {
                dialogue_id,
                duration,
                ..
            } => {
                let transcript = match result {
                    Ok(t) if !t.text.is_empty() => Some(t.text),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "recording transcription failed");
                        None
                    }
                };
                self.events
                    .push_back(ListenEvent::Input(Input::RecordingDone {
                        id: dialogue_id,
                        duration,
                        transcript,
                        file: None,
                    }));
            }
            Pending::Utterance { speech_end, .. } => self.finish_utterance(now, speech_end, result),
        }
    }

    /// The final result of an utterance: deliver it, or hold an incomplete one.
    fn finish_utterance(
        &mut self,
        now: Instant,
        speech_end: Instant,
        result: Result<Transcript, String>,
    ) {
        self.pending = None;
        let (text, confidence, decode, constrained, error) = match &result {
            Ok(t) => (t.text.clone(), t.confidence, t.elapsed, t.constrained, None),
            Err(e) => (String::new(), 0.0, Duration::ZERO, false, Some(e.clone())),
        };
        self.events.push_back(ListenEvent::Recognised(Recognition {
            speech_start: self.speech_start,
            speech_end,
            text,
            confidence,
            decode,
            constrained,
            error,
        }));
        let input = match result {
            Ok(t) if !t.text.is_empty() => {
                tracing::debug!(
                    text = %Pii(&t.text),
                    confidence = t.confidence,
                    constrained = t.constrained,
                    decode_ms = t.elapsed.as_millis() as u64,
                    end_to_result_ms = now.saturating_duration_since(speech_end).as_millis() as u64,
                    "recognised"
                );
                Input::Utterance {
                    text: t.text,
                    confidence: t.confidence,
                }
            }
            Ok(_) => Input::SpeechUnrecognised,
            Err(e) => {
                tracing::warn!(error = %e, "recognition failed");
                Input::SpeechUnrecognised
            }
        };
        let complete = match (&input, self.spec.as_ref()) {
            (Input::Utterance { text, .. }, Some(spec)) => {
                spec.phrases.is_empty()
                    || crate::nlu::classify(
                        text,
                        &spec.lang,
                        &[(String::new(), super::split_alternatives(&spec.phrases).0)],
                    )
                    .is_some()
            }
            _ => true,
        };
        let at = self
            .spec
            .as_ref()
            .map_or(now, |s| speech_end + s.incomplete_timeout);
        if complete || at <= now {
            self.deliver(input);
        } else {
            self.held = Some((at, input));
        }
    }

    fn deliver(&mut self, input: Input) {
        if let Some(ep) = self.endpointer.as_mut() {
            ep.reset();
        }
        self.started_reported = false;
        self.events.push_back(ListenEvent::Input(input));
    }

    /// A key was pressed: keys win over speech in progress (pending recognition is
    /// dropped) and end a recording.
    pub fn handle_key(&mut self) {
        self.reset_speech();
        if self.recording.is_some() {
            self.finish_recording();
        }
    }

    /// `Action::Record`: start capturing the caller.
    pub fn start_recording(
        &mut self,
        now: Instant,
        dialogue_id: u64,
        max_length: Duration,
        final_silence: Duration,
        transcribe: bool,
        lang: &str,
    ) {
        self.recording = Some(Recording {
            dialogue_id,
            started: now,
            max_length,
            final_silence,
            transcribe,
            lang: lang.to_owned(),
            audio: Vec::new(),
            vad: Vad::new(self.vad),
            spoke: false,
            silence: 0,
            last_voice: None,
        });
    }

    /// The caller hung up: end a recording under way now (its audio is kept and
    /// transcribed as if it had ended on silence).
    pub fn stop_recording(&mut self) {
        self.finish_recording();
    }

    fn finish_recording(&mut self) {
        let Some(rec) = self.recording.take() else {
            return;
        };
        let duration = Duration::from_micros(rec.audio.len() as u64 * 125);
        if rec.spoke {
            self.events.push_back(ListenEvent::Save {
                dialogue_id: rec.dialogue_id,
                audio: rec.audio.clone(),
            });
        }
        if rec.transcribe && rec.spoke {
            let id = self.next_id;
            self.next_id += 1;
            self.pending = Some(Pending::Recording {
                id,
                dialogue_id: rec.dialogue_id,
                duration,
            });
            self.events.push_back(ListenEvent::Recognize {
                id,
                audio: rec.audio,
                lang: rec.lang,
                phrases: Vec::new(),
            });
        } else {
            self.events
                .push_back(ListenEvent::Input(Input::RecordingDone {
                    id: rec.dialogue_id,
                    duration,
                    transcript: None,
                    file: None,
                }));
        }
    }

    /// The next instant the listener needs [`Listener::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ep = self.endpointer.as_ref().and_then(Endpointer::poll_timeout);
        let held = self.held.as_ref().map(|(t, _)| *t);
        let rec = self.recording.as_ref().map(Recording::deadline);
        [ep, held, rec].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(ep) = self.endpointer.as_mut()
            && ep.poll_timeout().is_some_and(|t| t <= now)
        {
            ep.handle_timeout(now);
            self.drain_endpointer(now);
        }
        if self.held.as_ref().is_some_and(|(t, _)| *t <= now)
            && let Some((_, input)) = self.held.take()
        {
            self.deliver(input);
        }
        if self.recording.as_ref().is_some_and(|r| r.deadline() <= now) {
            self.finish_recording();
        }
        crate::timers::checked("listener", now, self.poll_timeout());
    }

    pub fn poll_event(&mut self) -> Option<ListenEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events these tests look at: everything but the trace's [`ListenEvent::Recognised`]
    /// (its own test below).
    trait NextEvent {
        fn next_event(&mut self) -> Option<ListenEvent>;
    }

    impl NextEvent for Listener {
        fn next_event(&mut self) -> Option<ListenEvent> {
            loop {
                match self.poll_event() {
                    Some(ListenEvent::Recognised(_)) => continue,
                    other => return other,
                }
            }
        }
    }

    fn spec(barge_in: bool) -> ListenSpec {
        ListenSpec {
            lang: "ru".into(),
            phrases: vec!["да".into(), "нет".into()],
            barge_in,
            complete_timeout: Duration::from_millis(600),
            incomplete_timeout: Duration::from_millis(1200),
            max_speech_timeout: Duration::from_secs(10),
        }
    }

    fn voice(ms: u64) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / 8000.0;
                ((2.0 * std::f32::consts::PI * 150.0 * t).sin() * 6000.0
                    + (2.0 * std::f32::consts::PI * 450.0 * t).sin() * 3000.0)
                    as i16
            })
            .collect()
    }

    /// Feeds `pcm` in 20 ms packets from `*at_ms`; returns the events.
    fn feed(
        l: &mut Listener,
        t0: Instant,
        at_ms: &mut u64,
        pcm: &[i16],
        s: Option<&ListenSpec>,
        playing: bool,
    ) -> Vec<ListenEvent> {
        let mut out = Vec::new();
        for chunk in pcm.chunks(FRAME) {
            *at_ms += 20;
            l.handle_audio(t0 + Duration::from_millis(*at_ms), chunk, s, playing);
            while let Some(e) = l.next_event() {
                out.push(e);
            }
        }
        out
    }

    fn transcript(text: &str) -> Result<Transcript, String> {
        Ok(Transcript {
            text: text.into(),
            confidence: 0.9,
            lang: "ru".into(),
            constrained: false,
            audio: Duration::from_millis(500),
            elapsed: Duration::from_millis(100),
        })
    }

    fn recognize_id(ev: &[ListenEvent]) -> u64 {
        ev.iter()
            .find_map(|e| match e {
                ListenEvent::Recognize { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a Recognize event")
    }

    #[test]
    fn speech_starts_then_a_matching_result_is_delivered_at_once() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = spec(true);
        let mut at = 0;
        feed(&mut l, t0, &mut at, &vec![0; 4000], Some(&s), true);
        let ev = feed(&mut l, t0, &mut at, &voice(400), Some(&s), true);
        assert_eq!(ev, [ListenEvent::Input(Input::SpeechStarted)]);
        let ev = feed(&mut l, t0, &mut at, &vec![0; 8 * 700], Some(&s), false);
        // One recognition: started speculatively at the pause, final at the end.
        let n = ev
            .iter()
            .filter(|e| matches!(e, ListenEvent::Recognize { .. }))
            .count();
        assert_eq!(n, 1, "{ev:?}");
        let id = recognize_id(&ev);
        l.handle_result(t0 + Duration::from_millis(at), id, transcript("Да."));
        assert_eq!(
            l.next_event(),
            Some(ListenEvent::Input(Input::Utterance {
                text: "Да.".into(),
                confidence: 0.9
            }))
        );
    }

    #[test]
    fn each_recognition_is_reported_for_the_trace_before_its_input() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = spec(true);
        let mut at = 0;
        feed(&mut l, t0, &mut at, &vec![0; 4000], Some(&s), true);
        let onset = at;
        feed(&mut l, t0, &mut at, &voice(400), Some(&s), true);
        let ev = feed(&mut l, t0, &mut at, &vec![0; 8 * 700], Some(&s), false);
        let id = recognize_id(&ev);
        let mut t = transcript("Да.").unwrap();
        t.elapsed = Duration::from_millis(120);
        l.handle_result(t0 + Duration::from_millis(at), id, Ok(t));
        let Some(ListenEvent::Recognised(r)) = l.poll_event() else {
            panic!("a Recognised event first");
        };
        assert_eq!(r.text, "Да.");
        assert_eq!(r.decode, Duration::from_millis(120));
        assert!((r.confidence - 0.9).abs() < 1e-6);
        let start = r
            .speech_start
            .expect("onset")
            .duration_since(t0)
            .as_millis() as u64;
        let end = r.speech_end.duration_since(t0).as_millis() as u64;
        assert!(start > onset && start < onset + 400, "onset {start} ms");
        assert!(end > start && end <= onset + 500, "end {end} ms");
        assert!(matches!(
            l.poll_event(),
            Some(ListenEvent::Input(Input::Utterance { .. }))
        ));
    }

    #[test]
    fn an_unmatched_result_waits_for_the_incomplete_timeout_and_resumed_speech_supersedes_it() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = spec(false);
        let mut at = 0;
        feed(&mut l, t0, &mut at, &vec![0; 4000], Some(&s), false);
        feed(&mut l, t0, &mut at, &voice(400), Some(&s), false);
        let ev = feed(&mut l, t0, &mut at, &vec![0; 8 * 700], Some(&s), false);
        let first = recognize_id(&ev);
        l.handle_result(
            t0 + Duration::from_millis(at),
            first,
            transcript("четыре семь"),
        );
        assert_eq!(l.next_event(), None, "held: no phrase matched yet");
        let deadline = l.poll_timeout().unwrap();
        // The caller goes on before the deadline: the held result is dropped.
        let ev = feed(&mut l, t0, &mut at, &voice(400), Some(&s), false);
        assert!(ev.is_empty(), "{ev:?}");
        let ev = feed(&mut l, t0, &mut at, &vec![0; 8 * 700], Some(&s), false);
        let second = recognize_id(&ev);
        assert!(second > first);
        l.handle_timeout(deadline);
        assert_eq!(l.next_event(), None);
        // A late result for the first utterance is stale.
        l.handle_result(t0 + Duration::from_millis(at), first, transcript("да"));
        assert_eq!(l.next_event(), None);
        l.handle_result(
            t0 + Duration::from_millis(at),
            second,
            transcript("четыре семь один"),
        );
        let d = l.poll_timeout().unwrap();
        l.handle_timeout(d);
        assert!(matches!(
            l.next_event(),
            Some(ListenEvent::Input(Input::Utterance { .. }))
        ));
    }

    #[test]
    fn a_speculative_result_waits_for_the_end_and_is_dropped_if_the_caller_goes_on() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = spec(false);
        let mut at = 0;
        feed(&mut l, t0, &mut at, &vec![0; 4000], Some(&s), false);
        feed(&mut l, t0, &mut at, &voice(400), Some(&s), false);
        // 400 ms of silence: past the pause (300 ms), before the end (600 ms).
        let ev = feed(&mut l, t0, &mut at, &vec![0; 8 * 400], Some(&s), false);
        let early = recognize_id(&ev);
        l.handle_result(t0 + Duration::from_millis(at), early, transcript("да"));
        assert_eq!(l.next_event(), None, "not before the end of the utterance");
        // The caller goes on: the speculative transcript is incomplete.
        feed(&mut l, t0, &mut at, &voice(400), Some(&s), false);
        let ev = feed(&mut l, t0, &mut at, &vec![0; 8 * 700], Some(&s), false);
        let last = recognize_id(&ev);
        assert!(last > early);
        assert!(
            !ev.iter()
                .any(|e| matches!(e, ListenEvent::Input(Input::Utterance { .. })))
        );
        // A speculative result that is ready when the silence ends is delivered at the end.
        l.handle_result(t0 + Duration::from_millis(at), last, transcript("нет"));
        assert!(matches!(
            l.next_event(),
            Some(ListenEvent::Input(Input::Utterance { .. }))
        ));
    }

    /// A yes/no question with a short `complete_timeout`.
    fn short(complete_ms: u64) -> ListenSpec {
        ListenSpec {
            complete_timeout: Duration::from_millis(complete_ms),
            ..spec(false)
        }
    }

    /// Feeds silence until `until` (a Recognize or an Input appears) or `max_ms`; returns
    /// the events and the virtual time (ms) of the packet that produced them.
    fn silence_until(
        l: &mut Listener,
        t0: Instant,
        at: &mut u64,
        s: &ListenSpec,
        max_ms: u64,
        until: impl Fn(&ListenEvent) -> bool,
    ) -> (Vec<ListenEvent>, u64) {
        let stop = *at + max_ms;
        while *at < stop {
            let ev = feed(l, t0, at, &[0; FRAME], Some(s), false);
            if ev.iter().any(&until) {
                return (ev, *at);
            }
        }
        (Vec::new(), *at)
    }

    fn is_recognize(e: &ListenEvent) -> bool {
        matches!(e, ListenEvent::Recognize { .. })
    }

    fn is_utterance(e: &ListenEvent) -> bool {
        matches!(e, ListenEvent::Input(Input::Utterance { .. }))
    }

    #[test]
    fn speculative_delay_is_a_third_of_the_complete_timeout_within_bounds() {
        let d = |ms| speculative_delay(Duration::from_millis(ms)).as_millis();
        assert_eq!(d(1500), 300);
        assert_eq!(d(600), 200);
        assert_eq!(d(300), 100);
        assert_eq!(d(200), 100);
    }

    #[test]
    fn with_a_short_complete_timeout_a_ready_result_is_delivered_exactly_at_the_end() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = short(300);
        let mut at = 0;
        feed(&mut l, t0, &mut at, &[0; 8 * 200], Some(&s), false);
        feed(&mut l, t0, &mut at, &voice(400), Some(&s), false);
        let voice_end = at;
        // Recognition starts after a third of the complete timeout of silence, not at its end.
        let (ev, started) = silence_until(&mut l, t0, &mut at, &s, 1000, is_recognize);
        let id = recognize_id(&ev);
        let pause = started - voice_end;
        assert!(
            (100..300).contains(&pause),
            "recognition started after {pause} ms"
        );
        // Its result comes back before the end of the utterance: held until the end.
        l.handle_result(t0 + Duration::from_millis(at), id, transcript("да"));
        assert_eq!(l.next_event(), None);
        let (ev, ended) = silence_until(&mut l, t0, &mut at, &s, 1000, is_utterance);
        assert!(ev.iter().any(is_utterance), "{ev:?}");
        assert!(!ev.iter().any(is_recognize), "no second decode: {ev:?}");
        let silence = ended - voice_end;
        assert!(
            (300..360).contains(&silence),
            "delivered after {silence} ms of silence"
        );
    }

    #[test]
    fn a_speculative_result_that_comes_after_the_end_is_delivered_when_it_comes() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = short(300);
        let mut at = 0;
        feed(&mut l, t0, &mut at, &[0; 8 * 200], Some(&s), false);
        feed(&mut l, t0, &mut at, &voice(400), Some(&s), false);
        let (ev, _) = silence_until(&mut l, t0, &mut at, &s, 1000, is_recognize);
        let id = recognize_id(&ev);
        // The silence reaches the complete timeout with the decode still running: nothing
        // yet, and no second recognition of the same audio.
        let ev = feed(&mut l, t0, &mut at, &[0; 8 * 600], Some(&s), false);
        assert!(ev.is_empty(), "{ev:?}");
        assert!(l.is_pending());
        l.handle_result(t0 + Duration::from_millis(at), id, transcript("нет"));
        assert!(matches!(
            l.next_event(),
            Some(ListenEvent::Input(Input::Utterance { ref text, .. })) if text == "нет"
        ));
        assert!(!l.is_pending());
    }

    #[test]
    fn speech_resuming_during_a_barge_in_drops_the_speculative_result() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = ListenSpec {
            barge_in: true,
            ..short(300)
        };
        let mut at = 0;
        // The caller talks over the prompt: barge-in.
        let ev = feed(&mut l, t0, &mut at, &voice(400), Some(&s), true);
        assert_eq!(ev, [ListenEvent::Input(Input::SpeechStarted)]);
        let (ev, _) = silence_until(&mut l, t0, &mut at, &s, 1000, is_recognize);
        let early = recognize_id(&ev);
        // … and goes on before the complete timeout: the first result is stale, even if
        // it comes back now.
        let ev = feed(&mut l, t0, &mut at, &voice(300), Some(&s), false);
        assert!(!ev.iter().any(is_utterance), "{ev:?}");
        assert!(ev.contains(&ListenEvent::Cancel { id: early }), "{ev:?}");
        l.handle_result(t0 + Duration::from_millis(at), early, transcript("да"));
        assert_eq!(l.next_event(), None);
        let (ev, _) = silence_until(&mut l, t0, &mut at, &s, 1000, is_recognize);
        let last = recognize_id(&ev);
        assert!(last > early);
        // The longer utterance's recognition is the one delivered.
        feed(&mut l, t0, &mut at, &[0; 8 * 400], Some(&s), false);
        l.handle_result(
            t0 + Duration::from_millis(at),
            last,
            transcript("да, верно"),
        );
        assert!(matches!(
            l.next_event(),
            Some(ListenEvent::Input(Input::Utterance { ref text, .. })) if text == "да, верно"
        ));
    }

    #[test]
    fn a_key_cancels_a_speculative_recognition_before_the_end() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = short(300);
        let mut at = 0;
        feed(&mut l, t0, &mut at, &voice(400), Some(&s), false);
        let (ev, _) = silence_until(&mut l, t0, &mut at, &s, 1000, is_recognize);
        let id = recognize_id(&ev);
        l.handle_key();
        assert!(!l.is_pending());
        // The worker is told to stop it.
        assert_eq!(l.next_event(), Some(ListenEvent::Cancel { id }));
        // Neither the rest of the silence nor the late result makes an utterance.
        let ev = feed(&mut l, t0, &mut at, &[0; 8 * 1000], Some(&s), false);
        assert!(ev.is_empty(), "{ev:?}");
        l.handle_result(t0 + Duration::from_millis(at), id, transcript("да"));
        assert_eq!(l.next_event(), None);
    }

    #[test]
    fn a_key_cancels_pending_recognition() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = spec(false);
        let mut at = 0;
        feed(&mut l, t0, &mut at, &voice(400), Some(&s), false);
        let ev = feed(&mut l, t0, &mut at, &vec![0; 8 * 700], Some(&s), false);
        let id = recognize_id(&ev);
        l.handle_key();
        assert_eq!(l.next_event(), Some(ListenEvent::Cancel { id }));
        l.handle_result(t0 + Duration::from_millis(at), id, transcript("да"));
        assert_eq!(l.next_event(), None);
        assert!(!l.is_pending());
    }

    #[test]
    fn speech_over_a_prompt_without_barge_in_is_dropped() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        let s = spec(false);
        let mut at = 0;
        let mut ev = feed(&mut l, t0, &mut at, &voice(600), Some(&s), true);
        ev.extend(feed(
            &mut l,
            t0,
            &mut at,
            &vec![0; 8 * 800],
            Some(&s),
            false,
        ));
        assert!(ev.is_empty(), "{ev:?}");
        // Not listening at all: nothing either.
        let mut ev = feed(&mut l, t0, &mut at, &voice(600), None, false);
        ev.extend(feed(&mut l, t0, &mut at, &vec![0; 8 * 800], None, false));
        assert!(ev.is_empty(), "{ev:?}");
    }

    #[test]
    fn recording_ends_on_final_silence_and_is_transcribed() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        l.start_recording(
            t0,
            7,
            Duration::from_secs(30),
            Duration::from_millis(1000),
            true,
            "uk",
        );
        let mut at = 0;
        feed(&mut l, t0, &mut at, &vec![0; 8000], None, false);
        feed(&mut l, t0, &mut at, &voice(1000), None, false);
        let ev = feed(&mut l, t0, &mut at, &vec![0; 8 * 1100], None, false);
        let id = match &ev[..] {
            [
                ListenEvent::Save {
                    dialogue_id: 7,
                    audio: kept,
                },
                ListenEvent::Recognize {
                    id, lang, audio, ..
                },
            ] => {
                assert_eq!(lang, "uk");
                assert!(audio.len() >= 8 * 2900, "{}", audio.len());
                assert_eq!(kept, audio, "the file holds what was transcribed");
                *id
            }
            other => panic!("{other:?}"),
        };
        l.handle_result(t0, id, transcript("все добре"));
        match l.next_event() {
            Some(ListenEvent::Input(Input::RecordingDone {
                id: 7,
                transcript,
                file: None,
                duration,
            })) => {
                assert_eq!(transcript.as_deref(), Some("все добре"));
                assert!(duration >= Duration::from_millis(2900));
            }
            other => panic!("{other:?}"),
        }
        // Without transcription, and at max length when the phone sends nothing.
        l.start_recording(
            t0,
            8,
            Duration::from_secs(2),
            Duration::from_secs(1),
            false,
            "en",
        );
        let d = l.poll_timeout().unwrap();
        l.handle_timeout(d);
        assert!(matches!(
            l.next_event(),
            Some(ListenEvent::Input(Input::RecordingDone {
                id: 8,
                transcript: None,
                ..
            }))
        ));
    }

    /// Issue 20: a phone that suppresses silence sends no RTP once the caller stops
    /// talking; the recording still ends `final_silence` after the last voice, not at
    /// `max_length`.
    #[test]
    fn a_recording_ends_on_final_silence_in_time_when_no_rtp_arrives() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        l.start_recording(
            t0,
            3,
            Duration::from_secs(60),
            Duration::from_secs(3),
            true,
            "en",
        );
        let mut at = 0;
        feed(&mut l, t0, &mut at, &voice(1200), None, false);
        let last = t0 + Duration::from_millis(at);
        // Nothing more arrives. The next wake-up is 3 s after the last voiced packet.
        let d = l.poll_timeout().unwrap();
        assert!(d >= last + Duration::from_secs(3), "{d:?} vs {last:?}");
        assert!(d <= last + Duration::from_millis(3200), "{d:?} vs {last:?}");
        l.handle_timeout(d - Duration::from_millis(1));
        assert!(l.is_recording(), "not before its time");
        l.handle_timeout(d);
        assert!(!l.is_recording());
        assert!(matches!(
            l.next_event(),
            Some(ListenEvent::Save { dialogue_id: 3, .. })
        ));
        assert!(matches!(
            l.next_event(),
            Some(ListenEvent::Recognize { .. })
        ));
        // Before any voice, silence (or no RTP) is not an end: only max_length is.
        l.start_recording(
            t0,
            4,
            Duration::from_secs(60),
            Duration::from_secs(3),
            true,
            "en",
        );
        assert_eq!(
            l.poll_timeout(),
            Some(t0 + Duration::from_secs(60) + Duration::from_millis(100))
        );
    }

    /// A hang-up during a recording keeps what was said: the audio is saved and
    /// transcribed.
    #[test]
    fn stopping_a_recording_keeps_its_audio() {
        let t0 = Instant::now();
        let mut l = Listener::new(VadKind::Energy);
        l.start_recording(
            t0,
            5,
            Duration::from_secs(60),
            Duration::from_secs(3),
            true,
            "en",
        );
        let mut at = 0;
        feed(&mut l, t0, &mut at, &voice(800), None, false);
        l.stop_recording();
        assert!(
            matches!(l.next_event(), Some(ListenEvent::Save { dialogue_id: 5, audio }) if audio.len() >= 8 * 800)
        );
        assert!(matches!(
            l.next_event(),
            Some(ListenEvent::Recognize { .. })
        ));
        assert!(l.is_pending(), "the transcript is awaited");
    }
}
