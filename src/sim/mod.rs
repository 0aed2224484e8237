//! Simulated calls: the real call core (dialogue, prompt playout, RTP packetisation) on a
//! virtual clock, with a scripted caller and scripted effects. No sockets, no sleeps; a
//! minute of call runs in milliseconds and the same way every time.
//!
//! The caller model: keys and utterances come once the robot has said something and has
//! then been silent for a moment (a person waits for the question to end), or at a fixed
//! time for barge-in; silence lets
//! the robot's timers run; hang-up ends the call. After the script the caller stays silent.
//! Speech is fed the way the speech path does it — `SpeechStarted` when the caller starts,
//! the final `Utterance` after the words plus the question's `complete_timeout` — and only
//! while the dialogue listens ([`crate::dialogue::Dialogue::listen_spec`]); words said to a
//! robot that does not listen are lost, as on a real call.
//!
//! Effects (webhooks, transfers, recordings, CRM notifications) are answered from an
//! [`EffectScript`], in the order they are requested; unscripted ones get a default (a
//! webhook answers `{}`, a transfer connects, a recording is empty).
//!
//! The call's parties are filled like the engine fills them ([`call_variables`]): the
//! built-ins `caller`, `dialled`, `customer` and `direction` for an inbound or an outbound
//! call (`direction` given in the variables; by default outbound for a scenario with
//! `amd:`, inbound otherwise), with a made-up customer number unless the variables name
//! one. An inbound call starts the dialogue at once; only an outbound call runs
//! answering-machine detection, as on the wire.
//!
//! The report carries the CRM record, a readable [`Timeline`] (prompts with durations,
//! inputs, transitions, timers, effects) and the nodes and edges the call visited, for
//! coverage ([`coverage`]). Caller scripts in YAML are [`script`].
//!
//! Not here: SIP. Tests of the SIP path run the real server against SIPp on loopback.

pub mod coverage;
pub mod script;
pub mod world;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::call::{CallCore, CallInfo, Effect, MediaParams, TraceEvent};
use crate::crm::CallCompleted;
use crate::dialogue::{
    Action, EdgeId, HangupBy, Input, JournalEvent, TransferOutcome, WebhookRequest,
};
use crate::media::Codec;
use crate::media::prompts::PromptCache;
use crate::scenario::builtins::{
    CALLER, CUSTOMER, CUSTOMER_VERIFIED, CallDirection, DIALLED, DIRECTION, party_variables,
};
use crate::scenario::{NodeId, Scenario, TransferMode};

/// The customer's number in a simulated call, unless the variables give one.
pub const SIM_CUSTOMER: &str = "+15551230000";
/// Our own number (the trunk's caller ID) in a simulated outbound call.
pub const SIM_OWN_NUMBER: &str = "+15550100";

/// The direction a simulated call takes when its variables do not say (`direction`):
/// outbound for a scenario with `amd:` (detection only runs on calls we place), inbound
/// otherwise.
pub fn default_direction(scenario: &Scenario) -> CallDirection {
    if scenario.amd.is_some() {
        CallDirection::Outbound
    } else {
        CallDirection::Inbound
    }
}

/// The call's variables with the built-in parties filled the way the engine fills them.
/// `given` may choose the direction (`direction`), the customer's number (`customer`, or
/// `caller` inbound / `dialled` outbound), our number outbound (`caller`) and the DID
/// inbound (`dialled`, default: the scenario's name, as a Request-URI selects it); the rest
/// is made up ([`SIM_CUSTOMER`], [`SIM_OWN_NUMBER`]). An unknown `direction` is replaced
/// by the default.
pub fn call_variables(
    scenario: &Scenario,
    mut given: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let direction = given
        .get(DIRECTION)
        .and_then(|d| CallDirection::parse(d))
        .unwrap_or_else(|| default_direction(scenario));
    let pick = |keys: &[&str], given: &BTreeMap<String, String>, default: &str| -> String {
        keys.iter()
            .find_map(|k| given.get(*k).filter(|v| !v.is_empty()))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let parties = match direction {
        CallDirection::Inbound => {
            let customer = pick(&[CUSTOMER, CALLER], &given, SIM_CUSTOMER);
            let did = pick(&[DIALLED], &given, &scenario.name);
            {
                // A simulated inbound caller is as verified as the script says.
                let asserted = given.get(CUSTOMER_VERIFIED).is_some_and(|v| v == "true");
                party_variables(direction, &customer, &did, asserted)
            }
        }
        CallDirection::Outbound => {
            let customer = pick(&[CUSTOMER, DIALLED], &given, SIM_CUSTOMER);
            let own = pick(&[CALLER], &given, SIM_OWN_NUMBER);
            party_variables(direction, &own, &customer, true)
        }
    };
    given.extend(parties);
    given
}

/// One thing the simulated caller does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallerStep {
    /// Press `digits` once the robot has been silent for `after_silence`, `gap` apart.
    Keys {
        digits: String,
        after_silence: Duration,
        gap: Duration,
    },
    /// Press `digit` at `at` after the call started, whatever the robot is doing.
    KeyAt { digit: char, at: Duration },
    /// Say nothing for this long.
    Silence(Duration),
    /// Hang up after this long.
    Hangup { after: Duration },
    /// Say `text` once the robot has been silent for `after_silence`.
    Say {
        text: String,
        confidence: f32,
        after_silence: Duration,
    },
    /// Say `text` at `at` after the call started (barge-in).
    SayAt {
        text: String,
        confidence: f32,
        at: Duration,
    },
    /// Make a noise the recogniser cannot use, once the robot has been silent a moment.
    Noise { after_silence: Duration },
    /// Say what the recording at `path` says (transcribed by `asr::transcribe_file` when the
    /// robot listens), once the robot has been silent for `after_silence`.
    SayWav {
        path: PathBuf,
        after_silence: Duration,
    },
    /// Who picks up, for a scenario with `amd:` (first step only; without it a person
    /// answers). The simulator plays the detector's part: see [`Answerer`].
    Answer(Answerer),
}

/// Greeting length of a simulated answering machine (`answer: machine`).
pub const DEFAULT_MACHINE_GREETING: Duration = Duration::from_secs(6);

/// Who answers a simulated call, as answering-machine detection would see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answerer {
    /// "Hello?" (0.6 s) and silence: a person, decided 0.8 s after the word.
    Human,
    /// A machine whose greeting lasts `greeting`, then a 1 kHz beep of 500 ms; detected as a
    /// machine 2.4 s into the greeting.
    Machine { greeting: Duration },
    /// Nobody says anything: the call's own detector answers `unknown` at `max_wait`.
    Silent,
}

/// How long a person waits after the robot stopped talking before answering.
pub const DEFAULT_REACTION: Duration = Duration::from_millis(700);

impl CallerStep {
    /// A key press the way a person does it: when the question has ended.
    pub fn key(digits: &str) -> CallerStep {
        CallerStep::Keys {
            digits: digits.to_owned(),
            after_silence: DEFAULT_REACTION,
            gap: Duration::ZERO,
        }
    }

    /// An answer spoken when the question has ended, recognised with full confidence.
    pub fn say(text: &str) -> CallerStep {
        CallerStep::Say {
            text: text.to_owned(),
            confidence: 1.0,
            after_silence: DEFAULT_REACTION,
        }
    }
}

/// How long the caller takes to say `text` (0.3 s a word, at least 0.5 s).
pub fn speaking_time(text: &str) -> Duration {
    let words = text.split_whitespace().count() as u64;
    Duration::from_millis((words * 300).max(500))
}

/// The answer to one webhook request.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookReply {
    Respond {
        body: serde_json::Value,
        after: Duration,
    },
    Fail {
        error: String,
        after: Duration,
    },
    /// Never answer (the node's timeout decides).
    NoReply,
}

/// The result of one transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferReply {
    pub outcome: TransferOutcome,
    pub after: Duration,
}

/// The result of one recording: what the caller says into it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingReply {
    pub transcript: Option<String>,
    /// How long the caller speaks (the recording also has `final_silence` after it).
    pub duration: Duration,
}

/// Scripted effect results, consumed in request order per kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectScript {
    pub webhooks: Vec<WebhookReply>,
    pub transfers: Vec<TransferReply>,
    pub recordings: Vec<RecordingReply>,
}

/// Latency of an unscripted webhook reply (`{}`).
pub const DEFAULT_WEBHOOK_LATENCY: Duration = Duration::from_millis(200);
/// Time an unscripted transfer takes to connect.
pub const DEFAULT_TRANSFER_TIME: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The call is cut after this much virtual time (a scenario that never ends is a bug).
    pub limit: Duration,
    pub codec: Codec,
    /// Wall-clock time the call starts at, for the CRM record.
    pub start_wall: SystemTime,
    /// Answers to the call's effects.
    pub effects: EffectScript,
    /// The caller hangs up at this time into the call, whatever the script says.
    pub hangup_at: Option<Duration>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            limit: Duration::from_secs(600),
            codec: Codec::Pcmu,
            start_wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            effects: EffectScript::default(),
            hangup_at: None,
        }
    }
}

/// An effect the call asked for, and what the simulation answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EffectLog {
    Webhook {
        at_ms: u64,
        id: u64,
        request: WebhookRequest,
        /// `ok`, `error: …` or `no reply`.
        reply: String,
    },
    Transfer {
        at_ms: u64,
        id: u64,
        target: String,
        mode: TransferMode,
        announcement: Vec<String>,
        outcome: TransferOutcome,
    },
    Notify {
        at_ms: u64,
        event: String,
        data: serde_json::Value,
    },
    Record {
        at_ms: u64,
        id: u64,
        max_length_ms: u64,
        final_silence_ms: u64,
        transcribe: bool,
        transcript: Option<String>,
    },
}

impl EffectLog {
    /// The CRM event name of a `Notify`.
    pub fn event(&self) -> Option<&str> {
        match self {
            EffectLog::Notify { event, .. } => Some(event),
            _ => None,
        }
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub at_ms: u64,
    pub text: String,
}

/// What happened in a simulated call, in order.
pub type Timeline = Vec<TimelineEntry>;

/// What a simulated call produced.
#[derive(Debug, Clone)]
pub struct SimReport {
    pub record: CallCompleted,
    /// RTP packets the robot sent.
    pub packets: u64,
    /// Virtual duration of the call.
    pub duration: Duration,
    /// The call hit [`SimOptions::limit`] without ending.
    pub timed_out: bool,
    /// Effects requested, in order, with the simulated answers.
    pub effects: Vec<EffectLog>,
    pub timeline: Timeline,
    /// Nodes entered.
    pub nodes: BTreeSet<NodeId>,
    /// Transitions taken.
    pub edges: BTreeSet<EdgeId>,
}

impl SimReport {
    /// Prompt lists of every `Play`, in order (`"en/hello"` …), for exact assertions.
    pub fn plays(&self) -> Vec<Vec<String>> {
        self.record
            .trace
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Play { prompts, .. } => Some(prompts.clone()),
                _ => None,
            })
            .collect()
    }

    /// CRM events the call sent (`sms.requested`, …), in order.
    pub fn events(&self) -> Vec<&str> {
        self.effects.iter().filter_map(EffectLog::event).collect()
    }
}

const PTIME: Duration = Duration::from_millis(20);

/// Something the simulation does at a given instant, besides the caller's script.
#[derive(Debug)]
enum Scheduled {
    Input(Input),
    /// The verdict on what the caller said (`Utterance` / `SpeechUnrecognised`), with the
    /// caller's speech onset and end for the call trace.
    Speech {
        input: Input,
        started: Instant,
        ended: Instant,
    },
    Key(char),
    Amd(crate::media::amd::AmdEvent),
}

/// Sim-side timeline notes: (instant, rank, text).
struct Notes {
    t0: Instant,
    lines: Vec<(u64, u8, String)>,
}

impl Notes {
    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.t0).as_millis()).unwrap_or(u64::MAX)
    }

    fn push(&mut self, at: Instant, rank: u8, text: String) {
        let ms = self.ms(at);
        self.lines.push((ms, rank, text));
    }
}

struct Sim<'a> {
    core: CallCore,
    effects: EffectScript,
    webhooks_used: usize,
    transfers_used: usize,
    recordings_used: usize,
    recordings_seen: BTreeSet<u64>,
    pending: VecDeque<(Instant, Scheduled)>,
    log: Vec<EffectLog>,
    notes: Notes,
    script: &'a [CallerStep],
}

impl Sim<'_> {
    fn schedule(&mut self, at: Instant, what: Scheduled) {
        let pos = self
            .pending
            .iter()
            .position(|(t, _)| *t > at)
            .unwrap_or(self.pending.len());
        self.pending.insert(pos, (at, what));
    }

    /// A recording started: the scripted caller speaks into it; its result comes after the
    /// words plus the final silence. Each recording is answered once, whether the request
    /// came out as an effect or was taken by the call core's own audio capture.
    fn record(&mut self, now: Instant, req: crate::dialogue::RecordRequest) {
        if !self.recordings_seen.insert(req.id) {
            return;
        }
        let at_ms = self.notes.ms(now);
        let reply = self
            .effects
            .recordings
            .get(self.recordings_used)
            .cloned()
            .unwrap_or(RecordingReply {
                transcript: None,
                duration: Duration::ZERO,
            });
        self.recordings_used += 1;
        let spoken = reply.duration.min(req.max_length);
        let done = now + spoken + req.final_silence;
        let transcript = if req.transcribe {
            reply.transcript.clone()
        } else {
            None
        };
        self.notes.push(
            now,
            3,
            format!(
                "● recording (max {:.0}s, stops after {:.1}s of silence{})",
                req.max_length.as_secs_f64(),
                req.final_silence.as_secs_f64(),
                if req.transcribe { ", transcribed" } else { "" }
            ),
        );
        self.notes.push(
            done,
            0,
            match &transcript {
                Some(t) => format!("● recorded {:.1}s: \"{t}\"", spoken.as_secs_f64()),
                None => format!("● recorded {:.1}s", spoken.as_secs_f64()),
            },
        );
        self.schedule(
            done,
            Scheduled::Input(Input::RecordingDone {
                id: req.id,
                duration: spoken,
                transcript: transcript.clone(),
                file: (!spoken.is_zero()).then(|| format!("simulated/recording-{}.wav", req.id)),
            }),
        );
        self.log.push(EffectLog::Record {
            at_ms,
            id: req.id,
            max_length_ms: millis(req.max_length),
            final_silence_ms: millis(req.final_silence),
            transcribe: req.transcribe,
            transcript,
        });
    }

    /// Takes the effects the core asks for and schedules their scripted results.
    fn drain_effects(&mut self, now: Instant) {
        if let Some(req) = self.core.dialogue().recording() {
            self.record(now, req);
        }
        while let Some(effect) = self.core.poll_effect() {
            let at_ms = self.notes.ms(now);
            #[allow(irrefutable_let_patterns)]
            let Effect::Dialogue(action) = effect else {
                continue;
            };
            match action {
                Action::Webhook { id, request } => {
                    let reply = self
                        .effects
                        .webhooks
                        .get(self.webhooks_used)
                        .cloned()
                        .unwrap_or(WebhookReply::Respond {
                            body: serde_json::json!({}),
                            after: DEFAULT_WEBHOOK_LATENCY,
                        });
                    self.webhooks_used += 1;
                    self.notes.push(
                        now,
                        3,
                        format!(
                            "⇄ webhook {}{} {} {}",
                            request.name.as_deref().unwrap_or("(unnamed)"),
                            request
                                .url
                                .as_deref()
                                .map_or_else(|| " → CRM".to_string(), |u| format!(" → {u}")),
                            request.method,
                            request.body
                        ),
                    );
                    let summary = match &reply {
                        WebhookReply::Respond { body, after } => {
                            self.schedule(
                                now + *after,
                                Scheduled::Input(Input::WebhookResult {
                                    id,
                                    result: Ok(body.clone()),
                                }),
                            );
                            self.notes
                                .push(now + *after, 0, format!("⇄ webhook reply {body}"));
                            "ok".to_string()
                        }
                        WebhookReply::Fail { error, after } => {
                            self.schedule(
                                now + *after,
                                Scheduled::Input(Input::WebhookResult {
                                    id,
                                    result: Err(error.clone()),
                                }),
                            );
                            self.notes
                                .push(now + *after, 0, format!("⇄ webhook failed: {error}"));
                            format!("error: {error}")
                        }
                        WebhookReply::NoReply => "no reply".to_string(),
                    };
                    self.log.push(EffectLog::Webhook {
                        at_ms,
                        id,
                        request,
                        reply: summary,
                    });
                }
                Action::Transfer {
                    id,
                    target,
                    mode,
                    announcement,
                } => {
                    let reply = self
                        .effects
                        .transfers
                        .get(self.transfers_used)
                        .cloned()
                        .unwrap_or(TransferReply {
                            outcome: TransferOutcome::Connected,
                            after: DEFAULT_TRANSFER_TIME,
                        });
                    self.transfers_used += 1;
                    let ann: Vec<String> = announcement
                        .iter()
                        .map(|p| format!("{}/{}", p.lang, p.name))
                        .collect();
                    self.notes.push(
                        now,
                        3,
                        format!(
                            "⇆ transfer to {target} ({}){}",
                            match mode {
                                TransferMode::Blind => "blind",
                                TransferMode::Bridged => "bridged",
                            },
                            if ann.is_empty() {
                                String::new()
                            } else {
                                format!(", agent hears {}", ann.join(" + "))
                            }
                        ),
                    );
                    self.notes.push(
                        now + reply.after,
                        0,
                        format!("⇆ transfer result: {:?}", reply.outcome),
                    );
                    self.schedule(
                        now + reply.after,
                        Scheduled::Input(Input::TransferResult {
                            id,
                            outcome: reply.outcome.clone(),
                        }),
                    );
                    self.log.push(EffectLog::Transfer {
                        at_ms,
                        id,
                        target,
                        mode,
                        announcement: ann,
                        outcome: reply.outcome,
                    });
                }
                Action::Notify { event, data } => {
                    self.notes
                        .push(now, 3, format!("✉ CRM event {event} {data}"));
                    self.log.push(EffectLog::Notify { at_ms, event, data });
                }
                Action::Record {
                    id,
                    max_length,
                    final_silence,
                    transcribe,
                } => self.record(
                    now,
                    crate::dialogue::RecordRequest {
                        id,
                        max_length,
                        final_silence,
                        transcribe,
                    },
                ),
                other => {
                    self.notes.push(
                        now,
                        3,
                        format!("? effect the simulator does not know: {other:?}"),
                    );
                }
            }
        }
    }

    /// The caller speaks at `now`: `SpeechStarted` now, the verdict after the words.
    /// Returns when the caller is done talking.
    fn speak(
        &mut self,
        now: Instant,
        text: Option<(String, f32)>,
        what: &str,
        length: Option<Duration>,
    ) -> Instant {
        let spec = self.core.dialogue().listen_spec();
        let words = text.as_ref().map_or("", |(t, _)| t.as_str());
        let talk = length.unwrap_or_else(|| speaking_time(words));
        let Some(spec) = spec else {
            self.notes.push(
                now,
                0,
                format!("🗣 caller says {what} (the robot is not listening)"),
            );
            return now + talk;
        };
        self.notes.push(now, 0, format!("🗣 caller says {what}"));
        self.core.handle_input(now, Input::SpeechStarted);
        let verdict_at = now + talk + spec.complete_timeout;
        let input = match text {
            Some((text, confidence)) => Input::Utterance { text, confidence },
            None => Input::SpeechUnrecognised,
        };
        self.schedule(
            verdict_at,
            Scheduled::Speech {
                input,
                started: now,
                ended: now + talk,
            },
        );
        verdict_at
    }

    fn feed(&mut self, now: Instant, what: Scheduled) {
        match what {
            Scheduled::Key(d) => self.core.handle_dtmf(now, d),
            Scheduled::Amd(ev) => self.core.handle_amd_event(now, ev),
            Scheduled::Speech {
                input,
                started,
                ended,
            } => {
                let (text, confidence) = match &input {
                    Input::Utterance { text, confidence } => (text.clone(), *confidence),
                    _ => (String::new(), 0.0),
                };
                // What the speech path reports to the trace (the simulator decodes nothing).
                self.core
                    .handle_recognised(crate::asr::listen::Recognition {
                        speech_start: Some(started),
                        speech_end: ended,
                        text,
                        confidence,
                        decode: Duration::ZERO,
                        constrained: false,
                        error: None,
                    });
                self.feed(now, Scheduled::Input(input));
            }
            Scheduled::Input(input) => {
                if let Input::Utterance { text, confidence } = &input {
                    self.notes.push(
                        now,
                        0,
                        format!("🗣 recognised \"{text}\" (confidence {confidence:.2})"),
                    );
                } else if matches!(input, Input::SpeechUnrecognised) {
                    self.notes
                        .push(now, 0, "🗣 recognised nothing usable".to_string());
                }
                self.core.handle_input(now, input);
            }
        }
    }

    /// Schedules what the answering-machine detector would report for `who`.
    fn answer(&mut self, t0: Instant, who: Answerer) {
        use crate::media::amd::{AmdEvent, AmdVerdict, GreetingEnd};
        let ms = Duration::from_millis;
        match who {
            Answerer::Human => {
                self.notes
                    .push(t0 + ms(200), 0, "🗣 caller says \"Hello?\"".to_string());
                self.schedule(
                    t0 + ms(1600),
                    Scheduled::Amd(AmdEvent::Verdict {
                        verdict: AmdVerdict::Human,
                        reason: "short greeting",
                        greeting: ms(600),
                        words: 1,
                    }),
                );
            }
            Answerer::Machine { greeting } => {
                self.notes.push(
                    t0 + ms(200),
                    0,
                    format!(
                        "📼 an answering machine plays a {} greeting, then a beep",
                        secs(millis(greeting))
                    ),
                );
                let detected = greeting.min(ms(2400));
                self.schedule(
                    t0 + ms(200) + detected,
                    Scheduled::Amd(AmdEvent::Verdict {
                        verdict: AmdVerdict::Machine,
                        reason: "long greeting",
                        greeting: detected,
                        words: 4,
                    }),
                );
                self.schedule(
                    t0 + ms(200) + greeting + ms(300 + 500),
                    Scheduled::Amd(AmdEvent::GreetingEnded(GreetingEnd::Beep {
                        hz: 1000,
                        ms: 500,
                    })),
                );
            }
            Answerer::Silent => {
                self.notes
                    .push(t0, 0, "🗣 the callee picks up and says nothing".to_string());
            }
        }
    }

    /// Performs caller step `step` at `now`; returns when the step is over.
    fn act(&mut self, now: Instant, step: usize) -> Instant {
        match &self.script[step] {
            CallerStep::Keys { digits, gap, .. } => {
                let mut at = now;
                for (i, d) in digits.chars().enumerate() {
                    if i == 0 {
                        self.core.handle_dtmf(now, d);
                    } else {
                        at += *gap;
                        if gap.is_zero() {
                            self.core.handle_dtmf(now, d);
                        } else {
                            self.schedule(at, Scheduled::Key(d));
                        }
                    }
                }
                at
            }
            CallerStep::KeyAt { digit, .. } => {
                self.core.handle_dtmf(now, *digit);
                now
            }
            CallerStep::Silence(_) | CallerStep::Answer(_) => now,
            CallerStep::Hangup { .. } => {
                self.core.handle_hangup(now);
                now
            }
            CallerStep::Say {
                text, confidence, ..
            }
            | CallerStep::SayAt {
                text, confidence, ..
            } => {
                let what = format!("\"{text}\"");
                self.speak(now, Some((text.clone(), *confidence)), &what, None)
            }
            CallerStep::Noise { .. } => self.speak(now, None, "something unintelligible", None),
            CallerStep::SayWav { path, .. } => {
                let path = path.clone();
                let what = format!("the recording {}", path.display());
                // The caller talks as long as the recording lasts.
                let length = crate::media::prompts::load_file(&path)
                    .ok()
                    .map(|pcm| crate::media::prompts::samples_to_duration(pcm.len() as u64));
                match self.core.dialogue().listen_spec() {
                    Some(spec) => {
                        match crate::asr::transcribe_file(&path, &spec.lang, &spec.phrases) {
                            Ok((text, confidence)) => {
                                self.speak(now, Some((text, confidence)), &what, length)
                            }
                            Err(e) => {
                                self.notes.push(
                                    now,
                                    0,
                                    format!("! cannot transcribe {}: {e}", path.display()),
                                );
                                self.speak(now, None, &what, length)
                            }
                        }
                    }
                    None => self.speak(now, None, &what, length),
                }
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Run one call to its end on a virtual clock.
pub fn run_call(
    scenario: Arc<Scenario>,
    variables: BTreeMap<String, String>,
    prompts: Arc<PromptCache>,
    script: &[CallerStep],
    opts: &SimOptions,
) -> SimReport {
    let t0 = Instant::now();
    let media = MediaParams {
        codec: opts.codec,
        payload_type: opts.codec.payload_type(),
        telephone_event_pt: Some(101),
        ssrc: 0x1234_5678,
        initial_seq: 1,
        initial_ts: 0,
    };
    let scenario_name = scenario.name.clone();
    let variables = call_variables(&scenario, variables);
    let outbound = variables.get(DIRECTION).map(String::as_str) == Some("outbound");
    let mut sim = Sim {
        core: CallCore::new(Arc::clone(&scenario), variables, prompts, media, t0),
        effects: opts.effects.clone(),
        webhooks_used: 0,
        transfers_used: 0,
        recordings_used: 0,
        recordings_seen: BTreeSet::new(),
        pending: VecDeque::new(),
        log: Vec::new(),
        notes: Notes {
            t0,
            lines: Vec::new(),
        },
        script,
    };
    let mut buf = [0u8; 1500];
    let mut now = t0;
    let mut next_tick = t0;
    let mut step = 0usize;
    let mut step_started = t0;
    let mut silent_since: Option<Instant> = Some(t0);
    let mut spoken = false;
    let by;
    let mut timed_out = false;
    if outbound {
        sim.core.start(now);
    } else {
        // The caller called us: no answering machine to detect (as the engine does it).
        if scenario.amd.is_some() {
            sim.notes.push(
                now,
                0,
                "· inbound call: no answering-machine detection".to_string(),
            );
        }
        sim.core.start_inbound(now);
    }
    if sim.core.amd_pending() {
        let who = match script.first() {
            Some(CallerStep::Answer(a)) => *a,
            _ => Answerer::Human,
        };
        sim.answer(t0, who);
    }
    sim.drain_effects(now);
    loop {
        if sim.core.wants_hangup() {
            by = HangupBy::Robot;
            break;
        }
        if sim.core.is_finished() {
            by = HangupBy::Caller;
            break;
        }
        if now.duration_since(t0) >= opts.limit {
            timed_out = true;
            sim.core.handle_hangup(now);
            by = HangupBy::Caller;
            break;
        }
        // When does the caller act next?
        // A person waits for the robot to say something before answering.
        let after_silence = |after: &Duration| {
            silent_since
                .filter(|_| spoken)
                .map(|s| s.max(step_started) + *after)
        };
        let caller_due: Option<Instant> = match script.get(step) {
            Some(
                CallerStep::Keys {
                    after_silence: a, ..
                }
                | CallerStep::Say {
                    after_silence: a, ..
                }
                | CallerStep::Noise { after_silence: a }
                | CallerStep::SayWav {
                    after_silence: a, ..
                },
            ) => after_silence(a),
            Some(CallerStep::KeyAt { at, .. } | CallerStep::SayAt { at, .. }) => Some(t0 + *at),
            Some(CallerStep::Silence(d)) => Some(step_started + *d),
            Some(CallerStep::Hangup { after }) => Some(step_started + *after),
            Some(CallerStep::Answer(_)) => Some(step_started),
            None => None,
        };
        let mut next = next_tick;
        if let Some(t) = sim.core.poll_timeout() {
            next = next.min(t);
        }
        if let Some(t) = caller_due {
            next = next.min(t);
        }
        if let Some((t, _)) = sim.pending.front() {
            next = next.min(*t);
        }
        let hangup_at = opts.hangup_at.map(|h| t0 + h);
        if let Some(t) = hangup_at {
            next = next.min(t);
        }
        now = next.max(now);
        if hangup_at.is_some_and(|t| t <= now) {
            sim.core.handle_hangup(now);
            continue;
        }
        sim.core.handle_timeout(now);
        sim.drain_effects(now);
        while sim.pending.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, what)) = sim.pending.pop_front() {
                sim.feed(now, what);
                sim.drain_effects(now);
            }
        }
        if caller_due.is_some_and(|t| t <= now) && !sim.core.is_finished() {
            let done = sim.act(now, step);
            sim.drain_effects(now);
            step += 1;
            step_started = done.max(now);
        }
        if now >= next_tick {
            sim.core.poll_packet(now, &mut buf);
            sim.drain_effects(now);
            next_tick += PTIME;
            if sim.core.is_playing() {
                spoken = true;
                silent_since = None;
            } else if silent_since.is_none() {
                silent_since = Some(now);
            }
        }
    }
    let record = sim.core.completed_record(
        CallInfo {
            call_id: "simulated",
            scenario: &scenario_name,
            direction: if outbound { "outbound" } else { "inbound" },
            started_wall: opts.start_wall,
        },
        now,
        by,
    );
    let (nodes, edges) = visits(sim.core.dialogue().journal());
    let timeline = timeline(&scenario, t0, &sim.core, sim.notes.lines);
    SimReport {
        record,
        packets: sim.core.packets_sent(),
        duration: now.duration_since(t0),
        timed_out,
        effects: sim.log,
        timeline,
        nodes,
        edges,
    }
}

/// Nodes and edges a journal shows visited.
pub fn visits(journal: &[crate::dialogue::JournalEntry]) -> (BTreeSet<NodeId>, BTreeSet<EdgeId>) {
    let mut nodes = BTreeSet::new();
    let mut edges = BTreeSet::new();
    for e in journal {
        if let JournalEvent::Enter { node, edge, .. } = &e.event {
            nodes.insert(*node);
            if let Some(edge) = edge {
                edges.insert(edge.clone());
            }
        }
    }
    (nodes, edges)
}

fn secs(ms: u64) -> String {
    format!("{:.2}s", ms as f64 / 1000.0)
}

/// Merges the media trace, the dialogue journal and the simulator's notes into one
/// readable timeline. Within one millisecond: caller input first, then what the playout
/// reported, then the dialogue's reaction, then what it started.
fn timeline(
    scenario: &Scenario,
    t0: Instant,
    core: &CallCore,
    notes: Vec<(u64, u8, String)>,
) -> Timeline {
    let ms = |at: Instant| {
        u64::try_from(at.saturating_duration_since(t0).as_millis()).unwrap_or(u64::MAX)
    };
    let mut lines: Vec<(u64, u8, String)> = notes;
    for ev in core.trace() {
        #[allow(unreachable_patterns)]
        let (at, rank, text) = match ev {
            TraceEvent::Play {
                at_ms,
                prompts,
                duration_ms,
                ..
            } => (
                *at_ms,
                3,
                format!("▶ play {} ({})", prompts.join(" + "), secs(*duration_ms)),
            ),
            TraceEvent::PlayFinished { at_ms, .. } => (*at_ms, 1, "■ prompt finished".to_string()),
            TraceEvent::PlayStopped {
                at_ms, heard_ms, ..
            } => (
                *at_ms,
                1,
                format!("■ prompt cut after {} (barge-in)", secs(*heard_ms)),
            ),
            TraceEvent::MissingPrompt { at_ms, prompt } => {
                (*at_ms, 3, format!("! missing prompt {prompt}"))
            }
            TraceEvent::Dtmf { at_ms, digit, .. } => {
                (*at_ms, 0, format!("☎ caller presses {digit}"))
            }
            TraceEvent::RobotHangup { at_ms } => (*at_ms, 4, "✆ robot hangs up".to_string()),
            TraceEvent::CallerHangup { at_ms } => (*at_ms, 0, "✆ caller hangs up".to_string()),
            TraceEvent::Amd {
                at_ms,
                verdict,
                reason,
                ..
            } => (
                *at_ms,
                2,
                format!("◎ answered by {} ({reason})", verdict.name()),
            ),
            TraceEvent::Speech {
                at_ms, confidence, ..
            } => (
                *at_ms,
                1,
                format!("🗣 end of speech (recognised, confidence {confidence:.2})"),
            ),
            TraceEvent::AmdGreetingEnd { at_ms, end } => (
                *at_ms,
                2,
                format!("◎ the machine's greeting ended: {end:?}"),
            ),
            other => (0, 5, format!("{other:?}")),
        };
        lines.push((at, rank, text));
    }
    for entry in core.dialogue().journal() {
        let at = ms(entry.at);
        #[allow(unreachable_patterns)]
        let text = match &entry.event {
            JournalEvent::Enter {
                node,
                path_name,
                edge,
            } => {
                let kind = scenario.node(*node).map_or("?", |n| n.kind_name());
                match edge {
                    None => format!("→ {path_name} ({kind})"),
                    Some(e) => {
                        let from = e.from.map_or("any question".to_string(), |f| {
                            scenario.node_name(f).to_string()
                        });
                        format!("→ {path_name} ({kind})  via {from} [{}]", e.key)
                    }
                }
            }
            JournalEvent::Timer { timer, deadline } => format!(
                "⏱ {} timer {} (fires at {})",
                timer.name(),
                secs(ms(*deadline).saturating_sub(at)),
                secs(ms(*deadline))
            ),
            JournalEvent::Fired { timer } => format!("⏱ {} timer fired", timer.name()),
            JournalEvent::Matched {
                intent,
                input,
                value,
                confidence,
            } => format!(
                "✓ {} \"{value}\" → {}{}",
                input,
                intent
                    .as_deref()
                    .map_or("a value (digits, day or date)".to_string(), |i| format!(
                        "intent {i}"
                    )),
                confidence.map_or(String::new(), |c| format!(" (confidence {c:.2})"))
            ),
            JournalEvent::Repeat { count } => format!("↺ repeat requested ({count})"),
            JournalEvent::Confirming { intent, confidence } => {
                format!("? low confidence {confidence:.2} for {intent}: asking to confirm")
            }
            JournalEvent::NoInput { count, max } => format!("✗ no input {count}/{}", max + 1),
            JournalEvent::NoMatch { count, max, reason } => {
                format!("✗ no match {count}/{} ({reason})", max + 1)
            }
            JournalEvent::Ignored { what } => format!("· ignored: {what}"),
            JournalEvent::TypeAhead { key } => format!("⌨ key {key} kept for the next question"),
            JournalEvent::Set { variable, value } => format!("≔ {variable} = \"{value}\""),
            JournalEvent::Result { what } => format!("⇠ {what}"),
            JournalEvent::Finished { outcome, by } => format!(
                "■ end: outcome {}, hung up by {}",
                outcome.as_deref().unwrap_or("-"),
                match by {
                    HangupBy::Caller => "caller",
                    HangupBy::Robot => "robot",
                }
            ),
            other => format!("{other:?}"),
        };
        lines.push((at, 2, text));
    }
    lines.sort_by_key(|(at, rank, _)| (*at, *rank));
    lines
        .into_iter()
        .map(|(at_ms, _, text)| TimelineEntry { at_ms, text })
        .collect()
}

/// The timeline as text, one event a line: `  12.34s  text`.
pub fn format_timeline(timeline: &Timeline) -> String {
    let mut out = String::new();
    for e in timeline {
        out.push_str(&format!("{:>9}  {}\n", secs(e.at_ms), e.text));
    }
    out
}
