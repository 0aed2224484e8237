//! One call's media and dialogue, owned in one place: the dialogue interpreter, the RTP
//! playout of prompts, and the caller's input: keys (RFC 4733 events, SIP INFO, tones in
//! the audio — merged by [`DtmfDedup`] so a press that arrives by several routes counts
//! once) and speech.
//!
//! The caller's audio is decoded on every packet while the call is up (one reused buffer)
//! and goes to the in-band DTMF detector; to the speech listener only while the dialogue
//! listens or records.
//!
//! Answering-machine detection: when the scenario has an `amd:` block, `start` does not
//! start the dialogue; the caller's audio goes to [`Amd`] first. A person (or no decision
//! by `max_wait`) starts the dialogue at its start node; a machine is waited out until its
//! beep or the end of its greeting, then the dialogue enters `amd.on_machine` (or hangs up).
//! A key during detection means a person (the key itself is not an answer to anything).
//! The verdict is the variable `answered_by` and `amd` / `amd_greeting_end` trace entries.
//!
//! `CallCore` is sans-IO like everything below the runtime: the SIP engine and the
//! simulator drive it the same way — `start`, then `poll_packet` on every 20 ms pacing tick,
//! `handle_rtp`/`handle_dtmf` for input, `handle_timeout` at `poll_timeout`. It records a
//! trace (prompts with what was heard, inputs, timings) for the CRM and for tests.
//!
//! It knows nothing of SIP: hang-up requests are a flag the owner reads (`wants_hangup`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use std::collections::BTreeMap;

use crate::dialogue::{Action, Answer, Dialogue, DialogueResult, HangupBy, Input};
use crate::media::Codec;
use crate::media::amd::{Amd, AmdEvent, AmdVerdict, GreetingEnd};
use crate::media::dtmf::DtmfReceiver;
use crate::media::dtmf_dedup::{DtmfDedup, DtmfSource};
use crate::media::goertzel::InbandDtmf;
use crate::media::prompts::PromptCache;
use crate::media::rtp::{Playout, PlayoutEvent, SAMPLES_PER_PACKET};
use crate::scenario::Scenario;

/// What happened in a call, in order, with times relative to the call's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TraceEvent {
    /// A prompt sequence started playing.
    Play {
        at_ms: u64,
        id: u64,
        prompts: Vec<String>,
        duration_ms: u64,
    },
    /// It played to the end (the last packet left at `at_ms`).
    PlayFinished { at_ms: u64, id: u64 },
    /// It was cut short (barge-in, or replaced); `heard_ms` of it were played.
    PlayStopped { at_ms: u64, id: u64, heard_ms: u64 },
    /// A prompt the scenario names has no recording for the call's language.
    MissingPrompt { at_ms: u64, prompt: String },
    Dtmf {
        at_ms: u64,
        digit: char,
        /// The route the press came by first (`rfc4733`, `info`, `inband`, `other`).
        #[serde(skip_serializing_if = "is_other")]
        source: DtmfSource,
    },
    /// A spoken answer was recognised: `at_ms` is the end of the caller's speech (the
    /// metrics' end of speech → next prompt starts here), `started_ms` its onset.
    /// `transcript` follows the PII rules of the logs: `<redacted>` unless personal data
    /// is revealed (`log.pii`); the answer itself is in `answers`. `decode_ms` is the
    /// recogniser's wall time; `constrained`: the answer was chosen by scoring the expected
    /// phrases against the audio rather than read from the free transcript.
    Speech {
        at_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        started_ms: Option<u64>,
        transcript: String,
        confidence: f32,
        decode_ms: u64,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        constrained: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The robot decided to hang up.
    RobotHangup { at_ms: u64 },
    /// The caller hung up.
    CallerHangup { at_ms: u64 },
    /// Answering-machine detection decided who answered, and why.
    Amd {
        at_ms: u64,
        verdict: AmdVerdict,
        reason: String,
        greeting_ms: u64,
        words: u32,
    },
    /// The machine's greeting ended (its beep, silence, or the time limit): the dialogue
    /// starts at `amd.on_machine`.
    AmdGreetingEnd {
        at_ms: u64,
        #[serde(flatten)]
        end: GreetingEnd,
    },
}

/// Per-call media parameters negotiated by SDP (or chosen by the simulator).
#[derive(Debug, Clone, Copy)]
pub struct MediaParams {
    pub codec: Codec,
    pub payload_type: u8,
    pub telephone_event_pt: Option<u8>,
    pub ssrc: u32,
    pub initial_seq: u16,
    pub initial_ts: u32,
}

/// Where each prompt of the current play-out starts, to tell the dialogue when each one is
/// on the wire (per-prompt barge-in).
struct PlayProgress {
    id: u64,
    /// (index in the dialogue's `Play.prompts`, packet number within the play-out).
    starts: Vec<(usize, u64)>,
    next: usize,
    /// `Playout::packets_sent` when the play-out began.
    base: u64,
}

/// Work a call asks its owner to do: everything that takes time or leaves the process.
/// The owner carries it out and feeds the result back with [`CallCore::handle_input`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Effect {
    /// A dialogue action the call core does not perform itself (webhooks, transfers, CRM
    /// notifications, …): media actions (play, stop, hang up) never appear here.
    Dialogue(Action),
    /// Recognise the caller's speech (8 kHz, as received) in `lang`, expecting `phrases`;
    /// answer with [`CallCore::handle_recognition`]. Never run it on the pacing thread.
    Recognize {
        id: u64,
        audio: Vec<i16>,
        lang: String,
        phrases: Vec<String>,
    },
    /// Recognition `id` is no longer wanted: stop it if it still runs (its result, should it
    /// come, is ignored either way).
    CancelRecognition { id: u64 },
    /// Keep the caller's recording (8 kHz mono) as `file` (`<node>.wav`; see
    /// `crate::recordings`) before the call's next event is stored: its answer names it.
    SaveRecording { file: String, audio: Vec<i16> },
}

/// Rounds of [`CallCore::handle_timeout`] before a deadline that keeps coming back is
/// treated as the bug it is.
const MAX_TIMEOUT_ROUNDS: usize = 8;

pub struct CallCore {
    progress: Option<PlayProgress>,
    effects: std::collections::VecDeque<Effect>,
    dialogue: Dialogue,
    playout: Playout,
    dtmf: Option<DtmfReceiver>,
    prompts: Arc<PromptCache>,
    /// The current play-out finished on the wire at this instant; the dialogue hears of it then.
    pending_done: Option<(Instant, u64)>,
    wants_hangup: bool,
    started_at: Instant,
    trace: Vec<TraceEvent>,
    /// Something happened since the owner last looked (see [`CallCore::take_changed`]).
    changed: bool,
    /// The caller's speech: endpointing, recognition requests, recording (`asr::listen`).
    listener: crate::asr::listen::Listener,
    /// The negotiated audio codec and payload type of the caller's RTP.
    audio_in: (crate::media::Codec, u8),
    /// Scratch buffer for decoded caller audio.
    pcm_in: Vec<i16>,
    /// Keys sent as tones in the audio.
    inband: InbandDtmf,
    /// One press, counted once, whatever routes it comes by.
    dedup: DtmfDedup,
    /// Answering-machine detection while it runs.
    amd: AmdPhase,
    /// The recording being saved (its dialogue id, its file name, its length): its result
    /// names the file.
    saved: Option<(u64, String, Duration)>,
    /// The caller hung up during a recording: the call lives on until its transcript is in
    /// (see [`CallCore::hang_up_keeping_recording`]).
    hung_up_at: Option<Instant>,
}

/// Where answering-machine detection stands.
#[derive(Debug)]
enum AmdPhase {
    /// Not asked for, or over.
    Off,
    /// Listening for the verdict (`None`: the verdict comes from outside, see
    /// [`CallCore::handle_amd_event`]).
    Listening(Option<Box<Amd>>),
    /// A machine: waiting for its greeting to end.
    AwaitEnd(Option<Box<Amd>>),
}

fn is_other(s: &DtmfSource) -> bool {
    *s == DtmfSource::Other
}

impl CallCore {
    pub fn new(
        scenario: Arc<Scenario>,
        variables: std::collections::BTreeMap<String, String>,
        prompts: Arc<PromptCache>,
        media: MediaParams,
        now: Instant,
    ) -> CallCore {
        CallCore {
            progress: None,
            effects: std::collections::VecDeque::new(),
            dialogue: Dialogue::new(scenario, variables),
            playout: Playout::new(
                media.codec,
                media.ssrc,
                media.initial_seq,
                media.initial_ts,
                media.payload_type,
            ),
            dtmf: media.telephone_event_pt.map(DtmfReceiver::new),
            prompts,
            pending_done: None,
            wants_hangup: false,
            started_at: now,
            trace: Vec::new(),
            changed: false,
            listener: crate::asr::listen::Listener::default(),
            audio_in: (media.codec, media.payload_type),
            pcm_in: Vec::with_capacity(320),
            inband: InbandDtmf::new(),
            dedup: DtmfDedup::new(),
            amd: AmdPhase::Off,
            saved: None,
            hung_up_at: None,
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started_at).as_millis() as u64
    }

    /// The call is answered: enter the scenario's start node — or, when the scenario has
    /// `amd:`, listen for who answered first (see the module docs).
    pub fn start(&mut self, now: Instant) {
        let amd = self.dialogue.scenario().amd.as_ref().map(|a| a.config());
        match amd {
            Some(cfg) => {
                self.changed = true;
                self.amd = AmdPhase::Listening(Some(Box::new(Amd::new(cfg, now))));
            }
            None => {
                self.dialogue.start(now);
                self.drain(now);
            }
        }
    }

    /// An inbound call was answered: the caller called us, so there is no answering
    /// machine to detect; the dialogue starts at once whatever the scenario's `amd:` says.
    pub fn start_inbound(&mut self, now: Instant) {
        self.dialogue.start(now);
        self.drain(now);
    }

    /// Whether answering-machine detection is still deciding (or waiting out a machine's
    /// greeting); the dialogue has not started yet.
    pub fn amd_pending(&self) -> bool {
        !matches!(self.amd, AmdPhase::Off)
    }

    /// An answering-machine event from outside the call's own detector (the simulator, or
    /// a detector elsewhere): the call's detector stops and this decides instead.
    pub fn handle_amd_event(&mut self, now: Instant, event: AmdEvent) {
        match &mut self.amd {
            AmdPhase::Listening(d) | AmdPhase::AwaitEnd(d) => *d = None,
            AmdPhase::Off => return,
        }
        self.on_amd_event(now, event);
    }

    fn drain_amd(&mut self, now: Instant) {
        loop {
            let ev = match &mut self.amd {
                AmdPhase::Listening(Some(d)) | AmdPhase::AwaitEnd(Some(d)) => d.poll_event(),
                _ => None,
            };
            let Some(ev) = ev else { break };
            self.on_amd_event(now, ev);
        }
    }

    fn on_amd_event(&mut self, now: Instant, event: AmdEvent) {
        self.changed = true;
        let at_ms = self.ms(now);
        match event {
            AmdEvent::Verdict {
                verdict,
                reason,
                greeting,
                words,
            } => {
                if !matches!(self.amd, AmdPhase::Listening(_)) {
                    return;
                }
                tracing::info!(
                    verdict = verdict.name(),
                    reason,
                    greeting_ms = greeting.as_millis() as u64,
                    words,
                    "answering-machine detection"
                );
                self.trace.push(TraceEvent::Amd {
                    at_ms,
                    verdict,
                    reason: reason.to_string(),
                    greeting_ms: greeting.as_millis() as u64,
                    words,
                });
                self.dialogue
                    .set_variable(now, crate::scenario::ANSWERED_BY, verdict.name());
                if verdict == AmdVerdict::Machine {
                    let old = std::mem::replace(&mut self.amd, AmdPhase::Off);
                    if let AmdPhase::Listening(d) = old {
                        self.amd = AmdPhase::AwaitEnd(d);
                    }
                } else {
                    self.amd = AmdPhase::Off;
                    self.dialogue.start(now);
                    self.drain(now);
                }
            }
            AmdEvent::GreetingEnded(end) => {
                if !matches!(self.amd, AmdPhase::AwaitEnd(_)) {
                    return;
                }
                tracing::info!(end = ?end, "answering machine's greeting ended");
                self.trace.push(TraceEvent::AmdGreetingEnd { at_ms, end });
                self.amd = AmdPhase::Off;
                self.dialogue.start_machine(now);
                self.drain(now);
            }
        }
    }

    /// One incoming RTP datagram from the caller.
    pub fn handle_rtp(&mut self, now: Instant, packet: &[u8]) {
        let digit = self.dtmf.as_mut().and_then(|d| d.handle_rtp(now, packet));
        if let Some(d) = digit {
            self.handle_dtmf_from(now, d.digit, DtmfSource::Rfc4733);
        }
        self.handle_audio_rtp(now, packet);
    }

    /// Caller audio: G.711 → PCM → the in-band DTMF detector (always, while the call is
    /// up) and the listener (while the dialogue listens for speech or a recording runs).
    fn handle_audio_rtp(&mut self, now: Instant, packet: &[u8]) {
        if self.dialogue.is_finished() {
            return;
        }
        let (codec, pt) = self.audio_in;
        let Some(h) = crate::media::rtp::parse_rtp(packet) else {
            return;
        };
        if h.payload_type != pt {
            return;
        }
        let Some(payload) = packet.get(h.payload) else {
            return;
        };
        let mut pcm = std::mem::take(&mut self.pcm_in);
        pcm.clear();
        crate::media::g711::decode(codec, payload, &mut pcm);
        self.inband.push(now, &pcm);
        while let Some(d) = self.inband.poll_digit() {
            self.key(now, d.at, d.digit, DtmfSource::Inband);
        }
        if let AmdPhase::Listening(Some(d)) | AmdPhase::AwaitEnd(Some(d)) = &mut self.amd {
            d.handle_audio(now, &pcm);
            self.drain_amd(now);
        }
        if !self.dialogue.is_finished() {
            let spec = self.dialogue.listen_spec();
            if spec.is_none() && !self.listener.is_recording() {
                // Lets the listener drop what it had for the previous question.
                self.listener.handle_audio(now, &[], None, false);
            } else {
                let playing = self.playout.is_playing();
                self.listener
                    .handle_audio(now, &pcm, spec.as_ref(), playing);
            }
        }
        self.pcm_in = pcm;
        self.drain_listener(now);
    }

    /// The result of [`Effect::Recognize`] `id` (a transcript, or why there is none).
    pub fn handle_recognition(
        &mut self,
        now: Instant,
        id: u64,
        result: Result<crate::asr::Transcript, String>,
    ) {
        if self.dialogue.is_finished() {
            return;
        }
        self.listener.handle_result(now, id, result);
        self.drain_listener(now);
    }

    /// Pass the listener's inputs to the dialogue and its recognition requests out.
    fn drain_listener(&mut self, now: Instant) {
        while let Some(ev) = self.listener.poll_event() {
            self.changed = true;
            match ev {
                crate::asr::listen::ListenEvent::Input(mut input) => {
                    if let Input::RecordingDone { id, file, .. } = &mut input
                        && let Some((saved_id, name, _)) = self.saved.take()
                        && saved_id == *id
                    {
                        *file = Some(name);
                    }
                    match input {
                        // The caller is gone: the recording's answer is filed, nothing
                        // after it runs: the dialogue ends as on a hang-up.
                        Input::RecordingDone {
                            id,
                            duration,
                            transcript,
                            file,
                        } if self.hung_up_at.is_some() => {
                            self.dialogue
                                .hangup_with_recording(now, id, duration, transcript, file);
                        }
                        input => {
                            self.dialogue.handle_input(now, input);
                            self.drain(now);
                        }
                    }
                }
                crate::asr::listen::ListenEvent::Save { dialogue_id, audio } => {
                    let key = self
                        .dialogue
                        .recording_answer_key()
                        .unwrap_or_else(|| format!("recording-{dialogue_id}"));
                    let file = crate::recordings::file_name(&key);
                    let length = Duration::from_micros(audio.len() as u64 * 125);
                    self.saved = Some((dialogue_id, file.clone(), length));
                    self.effects
                        .push_back(Effect::SaveRecording { file, audio });
                }
                crate::asr::listen::ListenEvent::Recognize {
                    id,
                    audio,
                    lang,
                    phrases,
                } => self.effects.push_back(Effect::Recognize {
                    id,
                    audio,
                    lang,
                    phrases,
                }),
                crate::asr::listen::ListenEvent::Cancel { id } => {
                    self.effects.push_back(Effect::CancelRecognition { id });
                }
                crate::asr::listen::ListenEvent::Recognised(r) => self.handle_recognised(r),
            }
        }
    }

    /// A finished recognition, for the trace (the call's own listener reports its own; the
    /// simulator, which decodes nothing, reports its scripted ones here). The transcript is
    /// kept as the PII rules of the logs say: `<redacted>` unless revealed.
    pub fn handle_recognised(&mut self, r: crate::asr::listen::Recognition) {
        let transcript = if r.text.is_empty() {
            String::new()
        } else {
            crate::pii::Pii(&r.text).to_string()
        };
        self.trace.push(TraceEvent::Speech {
            at_ms: self.ms(r.speech_end),
            started_ms: r.speech_start.map(|t| self.ms(t)),
            transcript,
            confidence: (r.confidence * 1000.0).round() / 1000.0,
            decode_ms: r.decode.as_millis() as u64,
            constrained: r.constrained,
            error: r.error,
        });
    }

    /// A key from a source that is not one of the call's routes (a simulated caller, a
    /// test): counted as a press of its own. Carrier routes use [`CallCore::handle_dtmf_from`].
    pub fn handle_dtmf(&mut self, now: Instant, digit: char) {
        self.handle_dtmf_from(now, digit, DtmfSource::Other);
    }

    /// A key reported by `source` (RFC 4733 and in-band come from [`CallCore::handle_rtp`]
    /// itself; the engine passes SIP INFO keys here with [`DtmfSource::Info`]). A copy of a
    /// press another route already reported is dropped (see `media::dtmf_dedup`).
    pub fn handle_dtmf_from(&mut self, now: Instant, digit: char, source: DtmfSource) {
        self.key(now, now, digit, source);
    }

    /// A key that started at `at` (the in-band detector dates a tone at its onset; the
    /// de-duplicator compares onsets), handled at `now`.
    fn key(&mut self, now: Instant, at: Instant, digit: char, source: DtmfSource) {
        if self.dialogue.is_finished() {
            return;
        }
        if !self.dedup.accept(at, digit, source) {
            tracing::debug!(
                source = source.name(),
                "key already reported by another route"
            );
            return;
        }
        let digit = digit.to_ascii_uppercase();
        let at_ms = self.ms(now);
        self.trace.push(TraceEvent::Dtmf {
            at_ms,
            digit,
            source,
        });
        match &mut self.amd {
            AmdPhase::Off => {}
            AmdPhase::Listening(_) => {
                // A machine does not press keys: a person, whose key answers nothing yet.
                self.on_amd_event(
                    now,
                    AmdEvent::Verdict {
                        verdict: AmdVerdict::Human,
                        reason: "key",
                        greeting: Duration::ZERO,
                        words: 0,
                    },
                );
                return;
            }
            AmdPhase::AwaitEnd(_) => return,
        }
        // Keys win over speech: pending recognition is dropped; a recording ends.
        self.listener.handle_key();
        self.drain_listener(now);
        self.dialogue.handle_input(now, Input::Dtmf(digit));
        self.drain(now);
    }

    /// The next piece of work for the owner (see [`Effect`]).
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// The result of an effect (a webhook response, a transfer outcome, …) or any other
    /// input the owner has for the dialogue.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.dialogue.is_finished() {
            return;
        }
        self.dialogue.handle_input(now, input);
        self.drain(now);
    }

    /// The caller hung up during a recording (issue 20): what was said is kept. The
    /// recording ends now (its audio goes out as [`Effect::SaveRecording`], and to
    /// recognition when the node transcribes); the dialogue files the answer when the
    /// transcript comes (or the node's own recording timer runs out), and then ends as on
    /// any hang-up — nothing after the `record` node runs. Until [`CallCore::is_finished`]
    /// the owner keeps the call (with no media) and its timers. Returns false, doing
    /// nothing, when no recording was under way: call [`CallCore::handle_hangup`].
    pub fn hang_up_keeping_recording(&mut self, now: Instant) -> bool {
        if self.dialogue.is_finished() || !self.listener.is_recording() {
            return false;
        }
        let at_ms = self.ms(now);
        self.trace.push(TraceEvent::CallerHangup { at_ms });
        self.hung_up_at = Some(now);
        self.amd = AmdPhase::Off;
        self.playout.stop(now);
        self.pending_done = None;
        while self.playout.poll_event().is_some() {}
        self.listener.stop_recording();
        self.drain_listener(now);
        self.settle_hangup(now);
        true
    }

    /// After a hang-up during a recording, no transcript is coming (the owner gives up, or
    /// the `record` node's own timer ran out): the answer names the file, without a
    /// transcript, and the dialogue ends.
    fn give_up_transcript(&mut self, now: Instant) {
        if let Some(req) = self.dialogue.recording() {
            let (file, duration) = match self.saved.take() {
                Some((id, file, length)) if id == req.id => (Some(file), length),
                _ => (None, Duration::ZERO),
            };
            self.dialogue
                .hangup_with_recording(now, req.id, duration, None, file);
        }
        self.dialogue.handle_input(now, Input::Hangup);
        while self.dialogue.poll_action().is_some() {}
    }

    /// After a hang-up during a recording: if the dialogue is not waiting for that
    /// recording after all, it hears of the hang-up now (the recording's result, or the
    /// `record` node's timer, ends it otherwise).
    fn settle_hangup(&mut self, now: Instant) {
        if self.hung_up_at.is_none()
            || self.dialogue.is_finished()
            || self.dialogue.recording().is_some()
        {
            return;
        }
        self.changed = true;
        self.playout.stop(now);
        self.pending_done = None;
        self.dialogue.handle_input(now, Input::Hangup);
        while self.playout.poll_event().is_some() {}
        while self.dialogue.poll_action().is_some() {}
    }

    /// The caller hung up.
    pub fn handle_hangup(&mut self, now: Instant) {
        if self.dialogue.is_finished() {
            return;
        }
        if self.hung_up_at.is_some() {
            // Already heard (during a recording) and the owner gives up waiting for the
            // transcript.
            self.give_up_transcript(now);
            return;
        }
        let at_ms = self.ms(now);
        self.trace.push(TraceEvent::CallerHangup { at_ms });
        self.amd = AmdPhase::Off;
        self.playout.stop(now);
        self.pending_done = None;
        self.dialogue.handle_input(now, Input::Hangup);
        while self.playout.poll_event().is_some() {}
        while self.dialogue.poll_action().is_some() {}
    }

    /// The pacing tick: writes the next RTP packet into `buf` if one is due.
    pub fn poll_packet(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.handle_timeout(now);
        let n = self.playout.poll_packet(now, buf);
        if n.is_some() {
            self.report_prompt_starts(now);
        }
        self.drain_playout(now);
        n
    }

    /// Keep the outgoing stream going with silence while no prompt plays (issue 19: no
    /// gaps while the robot listens; see `Playout::set_idle_fill`).
    pub fn set_idle_fill(&mut self, on: bool) {
        self.playout.set_idle_fill(on);
    }

    /// The outgoing stream (SSRC, counters and clock for RTCP sender reports).
    pub fn playout(&self) -> &crate::media::rtp::Playout {
        &self.playout
    }

    /// Whether a prompt is ready to start at `now` without waiting for the pacing tick
    /// (see `Playout::starts_talkspurt`); its first packet comes from [`Self::poll_packet`].
    pub fn starts_talkspurt(&self, now: Instant) -> bool {
        self.playout.starts_talkspurt(now)
    }

    /// The earliest instant this call has work besides the pacing tick.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let d = self.dialogue.poll_timeout();
        let p = self.pending_done.map(|(t, _)| t);
        let l = self.listener.poll_timeout();
        let a = match &self.amd {
            AmdPhase::Listening(Some(d)) | AmdPhase::AwaitEnd(Some(d)) => d.poll_timeout(),
            _ => None,
        };
        [d, p, l, a].into_iter().flatten().min()
    }

    /// Everything due at `now`. What that sets off may itself be due at once (a prompt
    /// with no recording finishes as it starts; a zero timeout), so this goes round until
    /// nothing is due — a few rounds at most; afterwards [`CallCore::poll_timeout`] is
    /// `None` or later than `now` (see `crate::timers`).
    pub fn handle_timeout(&mut self, now: Instant) {
        for _ in 0..MAX_TIMEOUT_ROUNDS {
            if self.poll_timeout().is_none_or(|t| t > now) {
                return;
            }
            self.handle_timeout_once(now);
        }
        crate::timers::checked("call", now, self.poll_timeout());
    }

    fn handle_timeout_once(&mut self, now: Instant) {
        if let AmdPhase::Listening(Some(d)) | AmdPhase::AwaitEnd(Some(d)) = &mut self.amd
            && d.poll_timeout().is_some_and(|t| t <= now)
        {
            d.handle_timeout(now);
            self.drain_amd(now);
        }
        if let Some((at, id)) = self.pending_done
            && at <= now
        {
            self.pending_done = None;
            let at_ms = self.ms(at);
            self.trace.push(TraceEvent::PlayFinished { at_ms, id });
            self.dialogue.handle_input(at, Input::PlaybackDone { id });
            self.drain(at);
        }
        if self.dialogue.poll_timeout().is_some_and(|t| t <= now) {
            if self.hung_up_at.is_some() {
                self.give_up_transcript(now);
            } else {
                self.dialogue.handle_timeout(now);
                self.drain(now);
            }
        }
        if self.listener.poll_timeout().is_some_and(|t| t <= now) {
            self.listener.handle_timeout(now);
            self.drain_listener(now);
        }
    }

    /// Apply the dialogue's actions until it has none.
    fn drain(&mut self, now: Instant) {
        self.changed = true;
        while let Some(action) = self.dialogue.poll_action() {
            match action {
                Action::Play { id, prompts } => {
                    self.pending_done = None;
                    let mut resolved = Vec::with_capacity(prompts.len());
                    let mut names = Vec::with_capacity(prompts.len());
                    let mut starts = Vec::with_capacity(prompts.len());
                    let mut offset = 0u64;
                    for (index, p) in prompts.iter().enumerate() {
                        match self.prompts.get(&p.lang, &p.name) {
                            Some(audio) => {
                                names.push(format!("{}/{}", p.lang, p.name));
                                starts.push((index, offset / SAMPLES_PER_PACKET as u64));
                                offset += audio.samples() as u64;
                                resolved.push(audio);
                            }
                            None => {
                                let at_ms = self.ms(now);
                                tracing::warn!(lang = %p.lang, prompt = %p.name, "prompt has no recording; skipped");
                                self.trace.push(TraceEvent::MissingPrompt {
                                    at_ms,
                                    prompt: format!("{}/{}", p.lang, p.name),
                                });
                            }
                        }
                    }
                    let duration: Duration = resolved.iter().map(|p| p.duration()).sum();
                    let at_ms = self.ms(now);
                    self.trace.push(TraceEvent::Play {
                        at_ms,
                        id,
                        prompts: names,
                        duration_ms: duration.as_millis() as u64,
                    });
                    self.progress = None;
                    if resolved.is_empty() {
                        // Nothing to play: it is over as soon as it began.
                        self.pending_done = Some((now, id));
                    } else {
                        self.playout.play(id, resolved, now);
                        self.progress = Some(PlayProgress {
                            id,
                            starts,
                            next: 0,
                            base: self.playout.packets_sent(),
                        });
                    }
                    self.drain_playout(now);
                }
                Action::StopPlayback => {
                    self.playout.stop(now);
                    self.pending_done = None;
                    self.drain_playout(now);
                }
                Action::Hangup => {
                    if !self.wants_hangup {
                        let at_ms = self.ms(now);
                        self.trace.push(TraceEvent::RobotHangup { at_ms });
                    }
                    self.wants_hangup = true;
                }
                Action::Record {
                    id,
                    max_length,
                    final_silence,
                    transcribe,
                } => {
                    let lang = self.dialogue.language().to_owned();
                    self.listener.start_recording(
                        now,
                        id,
                        max_length,
                        final_silence,
                        transcribe,
                        &lang,
                    );
                }
                #[allow(unreachable_patterns)]
                other => self.effects.push_back(Effect::Dialogue(other)),
            }
        }
    }

    fn report_prompt_starts(&mut self, now: Instant) {
        let sent = self.playout.packets_sent();
        let mut started = Vec::new();
        if let Some(p) = self.progress.as_mut() {
            let in_play = sent - p.base;
            while let Some(&(index, first_packet)) = p.starts.get(p.next) {
                if first_packet >= in_play {
                    break;
                }
                started.push((p.id, index));
                p.next += 1;
            }
        }
        for (id, index) in started {
            self.dialogue
                .handle_input(now, Input::PromptStarted { id, index });
            self.drain(now);
        }
    }

    fn drain_playout(&mut self, now: Instant) {
        while let Some(ev) = self.playout.poll_event() {
            self.changed = true;
            match ev {
                PlayoutEvent::Finished { id, at, .. } => {
                    self.pending_done = Some((at, id));
                }
                PlayoutEvent::Stopped { id, at, heard } => {
                    let at_ms = self.ms(at);
                    self.trace.push(TraceEvent::PlayStopped {
                        at_ms,
                        id,
                        heard_ms: heard.as_millis() as u64,
                    });
                    self.dialogue
                        .handle_input(now, Input::PlaybackStopped { id });
                    self.drain(now);
                }
            }
        }
    }

    /// Whether the call's timers or hang-up wish may have changed since the last call;
    /// resets the flag. Lets the engine skip idle calls on the pacing tick.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The robot wants the call ended (its hang-up prompts have finished).
    pub fn wants_hangup(&self) -> bool {
        self.wants_hangup
    }

    pub fn is_finished(&self) -> bool {
        self.dialogue.is_finished()
    }

    pub fn is_playing(&self) -> bool {
        self.playout.is_playing()
    }

    pub fn result(&self) -> &DialogueResult {
        self.dialogue.result()
    }

    /// The dialogue, read-only: what it listens for ([`Dialogue::listen_spec`]), its
    /// journal of transitions and timers, its result.
    pub fn dialogue(&self) -> &Dialogue {
        &self.dialogue
    }

    pub fn trace(&self) -> &[TraceEvent] {
        &self.trace
    }

    pub fn packets_sent(&self) -> u64 {
        self.playout.packets_sent()
    }

    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// The `call.completed` record for the CRM.
    pub fn completed_record(
        &self,
        call: CallInfo<'_>,
        now: Instant,
        by: HangupBy,
    ) -> CallCompleted {
        let r = self.result();
        // A call kept for its recording's transcript ended when the caller hung up.
        let now = self.hung_up_at.unwrap_or(now);
        let ended_wall = call.started_wall + now.saturating_duration_since(self.started_at);
        CallCompleted {
            event: "call.completed",
            call_id: call.call_id.to_owned(),
            scenario: call.scenario.to_owned(),
            direction: call.direction,
            outcome: r.outcome.clone(),
            answers: r.answers.clone(),
            variables: r.variables.clone(),
            path: r.path.clone(),
            started_at: humantime::format_rfc3339_millis(call.started_wall).to_string(),
            ended_at: humantime::format_rfc3339_millis(ended_wall).to_string(),
            duration_ms: now.saturating_duration_since(self.started_at).as_millis() as u64,
            hangup_by: by,
            trace: self.trace.clone(),
            failure: None,
        }
    }
}

/// `call.completed`: one per answered call, sent when it ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallCompleted {
    /// Always `"call.completed"`.
    pub event: &'static str,
    /// The SIP Call-ID.
    pub call_id: String,
    pub scenario: String,
    pub direction: &'static str,
    pub outcome: Option<String>,
    pub answers: BTreeMap<String, Answer>,
    pub variables: BTreeMap<String, String>,
    /// Nodes visited, in order.
    pub path: Vec<String>,
    /// RFC 3339 UTC timestamps.
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
    pub hangup_by: HangupBy,
    /// Prompts played, inputs and timings.
    pub trace: Vec<TraceEvent>,
    /// Set when the call was answered but ivrflow had to end it (no ACK, the maximum call
    /// duration): the CRM then gets `call.failed` with this reason and detail, and the
    /// rest of this record (answers, path, trace so far), instead of `call.completed`.
    #[serde(skip)]
    pub failure: Option<(FailReason, String)>,
}

/// Why a call did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// 486 Busy Here / 600 Busy Everywhere.
    Busy,
    /// 408, 480, or no answer before the ringing timeout.
    NoAnswer,
    /// 603 Decline, or (inbound) ivrflow refused the call: 503 at capacity, 488 no common
    /// codec.
    Rejected,
    /// Any other failure.
    Error,
    /// ivrflow stopped (crash, kill, restart) while the call was up; reported at the next
    /// start.
    Interrupted,
    /// Never dialled: the number is on the do-not-call list, consent was required and
    /// missing, or the call's time zone or campaign is unknown.
    Blocked,
    /// Answered, then ended by ivrflow at the maximum call duration (`max_call_duration`).
    MaxDuration,
    /// Answered by ivrflow (200 OK), but the caller never confirmed it with ACK: ended
    /// with BYE after 32 s (RFC 3261 §13.3.1.4).
    NoAck,
    /// Still up (or ringing) when ivrflow shut down and its drain deadline passed: ended
    /// with BYE (or CANCEL).
    Shutdown,
    /// Answered, then ended by ivrflow because the peer sent no RTP for the media timeout
    /// (`media.timeout`).
    MediaTimeout,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Busy => "busy",
            FailReason::NoAnswer => "no_answer",
            FailReason::Rejected => "rejected",
            FailReason::Error => "error",
            FailReason::Interrupted => "interrupted",
            FailReason::Blocked => "blocked",
            FailReason::MaxDuration => "max_duration",
            FailReason::NoAck => "no_ack",
            FailReason::Shutdown => "shutdown",
            FailReason::MediaTimeout => "media_timeout",
        }
    }
}

/// Identity of a call for its CRM record.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    pub call_id: &'a str,
    pub scenario: &'a str,
    pub direction: &'static str,
    pub started_wall: std::time::SystemTime,
}

/// Recordings on a virtual clock (issue 20): what the caller said is saved and filed
/// whichever way the recording ends.
#[cfg(test)]
mod recording_tests {
    use super::*;
    use crate::media::prompts::Prompt;

    const MEMO: &str = r#"version: 1
name: memo
languages: [en]
variables:
  memo_text: { type: string, default: "" }
start: say
nodes:
  say:
    record: { max_length: 60s, final_silence: 2s, transcribe: true, store: memo_text }
    next: bye
  bye:
    hangup: { outcome: recorded, play: [goodbye] }
"#;

    fn core(t0: Instant) -> CallCore {
        let scenario = crate::scenario::load_str("memo.yaml", MEMO).unwrap();
        let mut prompts = PromptCache::new();
        prompts.insert("en", Prompt::from_pcm("goodbye", vec![0i16; 800]));
        let mut c = CallCore::new(
            Arc::new(scenario),
            Default::default(),
            Arc::new(prompts),
            MediaParams {
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event_pt: Some(101),
                ssrc: 1,
                initial_seq: 1,
                initial_ts: 0,
            },
            t0,
        );
        c.start_inbound(t0);
        c
    }

    /// A human "tomorrow" (`tests/fixtures/speech`), then `tail_ms` of silence, as PCMU
    /// packets one every 20 ms from `*at` (ms since `t0`); returns the samples sent.
    fn talk(c: &mut CallCore, t0: Instant, at: &mut u64, tail_ms: usize) -> usize {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/speech/human/en/tomorrow.wav");
        let mut pcm = crate::media::prompts::load_file(&path).unwrap();
        pcm.extend(vec![0i16; tail_ms * 8]);
        pcm.resize(pcm.len().div_ceil(160) * 160, 0);
        for frame in pcm.chunks(160) {
            let mut p = vec![0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
            crate::media::g711::encode(Codec::Pcmu, frame, &mut p);
            c.handle_rtp(t0 + Duration::from_millis(*at), &p);
            *at += 20;
        }
        pcm.len()
    }

    fn effects(c: &mut CallCore) -> Vec<Effect> {
        std::iter::from_fn(|| c.poll_effect()).collect()
    }

    #[test]
    fn a_hang_up_mid_recording_files_the_audio_and_its_transcript_then_ends() {
        let t0 = Instant::now();
        let mut c = core(t0);
        let mut at = 0;
        let sent = talk(&mut c, t0, &mut at, 300);
        let hung_up = t0 + Duration::from_millis(at);
        assert!(c.hang_up_keeping_recording(hung_up));
        assert!(!c.is_finished(), "kept until its transcript is in");
        let fx = effects(&mut c);
        let (file, audio) = match &fx[..] {
            [
                Effect::SaveRecording { file, audio },
                Effect::Recognize { .. },
            ] => (file.clone(), audio.len()),
            other => panic!("{other:?}"),
        };
        assert_eq!(file, "say.wav");
        assert_eq!(audio, sent, "every sample the caller sent is kept");
        let Some(Effect::Recognize { id, .. }) = fx.into_iter().nth(1) else {
            unreachable!()
        };
        // The transcript comes three seconds later.
        let later = hung_up + Duration::from_secs(3);
        c.handle_recognition(
            later,
            id,
            Ok(crate::asr::Transcript {
                text: "the box was crushed".into(),
                confidence: 0.9,
                lang: "en".into(),
                constrained: false,
                audio: Duration::from_millis(1200),
                elapsed: Duration::from_millis(300),
            }),
        );
        assert!(c.is_finished());
        let r = c.result();
        assert_eq!(r.answers["say"].value, "the box was crushed");
        assert_eq!(r.answers["say"].file.as_deref(), Some("say.wav"));
        assert_eq!(r.variables["memo_text"], "the box was crushed");
        assert_eq!(
            r.path,
            vec!["say".to_owned()],
            "nothing after the record node ran"
        );
        assert_eq!(r.outcome.as_deref(), Some("caller_hangup"));
        assert!(!c.wants_hangup());
        let rec = c.completed_record(
            CallInfo {
                call_id: "c",
                scenario: "memo",
                direction: "inbound",
                started_wall: std::time::SystemTime::UNIX_EPOCH,
            },
            later,
            HangupBy::Caller,
        );
        assert_eq!(
            rec.duration_ms, at,
            "the call ended when the caller hung up"
        );
    }

    #[test]
    fn a_transcript_that_never_comes_still_files_the_recording_at_the_nodes_timer() {
        let t0 = Instant::now();
        let mut c = core(t0);
        let mut at = 0;
        talk(&mut c, t0, &mut at, 200);
        assert!(c.hang_up_keeping_recording(t0 + Duration::from_millis(at)));
        let _ = effects(&mut c);
        let mut now = t0 + Duration::from_millis(at);
        for _ in 0..10 {
            let Some(t) = c.poll_timeout() else { break };
            now = t;
            c.handle_timeout(now);
            if c.is_finished() {
                break;
            }
        }
        assert!(c.is_finished(), "the record node's own timer ends the wait");
        assert!(now <= t0 + Duration::from_secs(75), "{:?}", now - t0);
        let r = c.result();
        assert_eq!(r.answers["say"].file.as_deref(), Some("say.wav"));
        assert_eq!(r.answers["say"].value, "");
        assert_eq!(r.path, vec!["say".to_owned()]);
    }

    #[test]
    fn no_recording_under_way_means_an_ordinary_hang_up() {
        let t0 = Instant::now();
        let mut c = core(t0);
        // Nothing said yet: the recording is under way, so the hang-up keeps it — and with
        // no voice there is nothing to save or transcribe: it ends at once.
        assert!(c.hang_up_keeping_recording(t0 + Duration::from_millis(500)));
        assert!(effects(&mut c).is_empty());
        assert!(c.is_finished());
        assert!(c.result().answers["say"].file.is_none());
        assert!(!c.hang_up_keeping_recording(t0 + Duration::from_secs(1)));
    }
}
