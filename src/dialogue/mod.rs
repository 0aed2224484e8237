//! The dialogue interpreter: runs one call through a compiled [`Scenario`].
//!
//! Sans-IO, like the SIP core: it never touches audio, sockets or the clock. The engine
//! feeds [`Input`]s and timer wake-ups with the current instant and drains [`Action`]s;
//! [`Dialogue::poll_timeout`] says when it next wants to be woken. Time is an argument, so
//! tests play a whole call on a virtual clock.
//!
//! Timing follows VoiceXML 2.0 Appendix D: the no-input `timeout` starts when the prompt
//! has finished playing on the wire (the engine's `PlaybackDone`), not when `Play` was
//! requested; once a key has been pressed the no-input timer is gone and
//! `interdigit_timeout` (or, for a full digit string waiting for its terminator,
//! `term_timeout`) decides when the keys are complete; once the caller starts speaking
//! (`SpeechStarted`) the no-input timer is suspended until the recogniser's verdict
//! (`Utterance` / `SpeechUnrecognised`), guarded by `max_speech_timeout` +
//! `incomplete_timeout` + a grace period. DTMF and speech race: the first complete input
//! wins; a key cancels a pending recognition (a late utterance is ignored).
//!
//! An `ask` node, per question round:
//! ```text
//!  enter / reprompt ──Play──► Prompt ──PlaybackDone/Stopped──► NoInput(timeout)
//!                    key / speech, item allows barge-in │        │ key   │ speech  │ expires
//!                    (StopPlayback)                     ▼        ▼       ▼         ▼
//!                                              Keys(interdigit)     Speaking   noinput #k
//!        match ──► answer, jump   ◄── classify keys / utterance ──┘        k ≤ max: reprompt
//!        low confidence ──► Confirming ("did you say …?") yes → match, no → nomatch
//!        nomatch #k: k ≤ max reprompt, k > max on.nomatch; repeat intent: replay question
//! ```
//! A key (or speech) during a prompt item with `barge_in: false` is ignored (not buffered).
//! Keys during `play` and `hangup` nodes are ignored. The engine tells which prompt of a
//! `Play` is on the wire with [`Input::PromptStarted`]; without it the first prompt's flag
//! is assumed.
//!
//! Effects that take time (webhooks, transfers, recordings) leave as actions with an id;
//! the dialogue waits in the node, enforces the node's timeout itself and ignores results
//! that arrive after it. Sub-dialogues run on a call stack of frames that save the
//! variables their parameters shadow.
//!
//! [`Dialogue::journal`] records what happened (transitions with the edge taken, timers,
//! classifications) for the simulator's timeline and the coverage report.
//!
//! Deliberately not here: how prompts are found or played (engine/media), SIP, the CRM
//! payload (the engine builds it from [`DialogueResult`]), audio capture and recognition
//! (the speech path feeds [`Input::SpeechStarted`] / [`Input::Utterance`] and reads
//! [`Dialogue::listen_spec`]), HTTP (the runtime carries out [`Action::Webhook`]).

mod dtmf;
mod prompts;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::scenario::{
    Ask, Assign, IntentAction, Jump, MAX_CALL_DEPTH, MAX_KEYS, MAX_REPEATS, Node, NodeId, NodeKind,
    PromptItem, Scenario, TransferMode,
};
use dtmf::{DigitsState, KeyMatch};

/// Zero-time transitions (`goto`, `set`, `branch`, empty `play`, …) allowed while handling
/// one input before the dialogue gives up with outcome `error`.
pub const MAX_TRANSITIONS_PER_INPUT: u32 = 1000;

/// Outcome set when the caller hangs up before any outcome was recorded.
pub const OUTCOME_CALLER_HANGUP: &str = "caller_hangup";
/// Outcome set when an answering machine answered and the scenario's `amd.on_machine` is
/// `hangup`.
pub const OUTCOME_ANSWERING_MACHINE: &str = "answering_machine";
/// Outcome set when the dialogue stops because of a scenario fault at run time.
pub const OUTCOME_ERROR: &str = "error";

/// How long after the longest possible utterance the dialogue waits for the recogniser's
/// verdict before counting a no-match.
pub const SPEECH_RESULT_GRACE: Duration = Duration::from_secs(5);
/// How long after `max_length + final_silence` the dialogue waits for a recording result.
pub const RECORD_RESULT_GRACE: Duration = Duration::from_secs(10);
/// Journal entries kept per call (a runaway call stops journaling, not working).
pub const MAX_JOURNAL: usize = 10_000;

/// Phrases that answer "did you say …?" with yes, by language.
pub const YES_PHRASES: [(&str, &[&str]); 3] = [
    (
        "en",
        &["yes", "yeah", "yep", "correct", "right", "that's right"],
    ),
    ("ru", &["да", "верно", "правильно", "ага", "да верно"]),
    ("uk", &["так", "вірно", "правильно", "ага", "так вірно"]),
];
/// Phrases that answer "did you say …?" with no, by language.
pub const NO_PHRASES: [(&str, &[&str]); 3] = [
    ("en", &["no", "nope", "wrong", "incorrect", "not right"]),
    ("ru", &["нет", "неверно", "неправильно", "не то"]),
    ("uk", &["ні", "невірно", "неправильно", "не те"]),
];

fn phrases_for(table: &[(&str, &[&str])], lang: &str) -> Vec<String> {
    table
        .iter()
        .find(|(l, _)| *l == lang)
        .map(|(_, p)| p.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

/// One recording to play: `audio/<lang>/<name>.wav` as the engine resolves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PromptRef {
    pub lang: String,
    pub name: String,
    /// Whether a key pressed while this prompt plays interrupts it (and counts as input).
    pub barge_in: bool,
}

/// What the engine tells the dialogue.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// A DTMF key: 0-9, *, #, A-D.
    Dtmf(char),
    /// Play `id` finished: its last packet was sent.
    PlaybackDone { id: u64 },
    /// Play `id` was stopped (after [`Action::StopPlayback`], or by the engine).
    PlaybackStopped { id: u64 },
    /// Prompt `index` (into the `prompts` of Play `id`) started on the wire. Lets barge-in
    /// follow per-item `barge_in`; optional when all prompts of a play share one flag.
    PromptStarted { id: u64, index: usize },
    /// The caller hung up.
    Hangup,
    /// The caller started talking (voice activity while [`Dialogue::listen_spec`] is
    /// `Some`). During a prompt that allows barge-in the dialogue answers with
    /// [`Action::StopPlayback`]; in any case the no-input timer is suspended until the
    /// utterance is decided.
    SpeechStarted,
    /// The final transcript of what the caller said, with the recogniser's confidence in
    /// [0, 1].
    Utterance { text: String, confidence: f32 },
    /// The caller said something, but nothing usable came of it (noise, an empty or
    /// unintelligible transcript). Counts as a no-match.
    SpeechUnrecognised,
    /// The result of [`Action::Webhook`] `id`: the response body (JSON) or why it failed.
    /// A result after the node's timeout is ignored (the dialogue has moved on).
    WebhookResult {
        id: u64,
        result: Result<serde_json::Value, String>,
    },
    /// The result of [`Action::Transfer`] `id`.
    TransferResult { id: u64, outcome: TransferOutcome },
    /// [`Action::Record`] `id` ended: how long the recording is, its transcript when one was
    /// asked for and could be made, and where the audio was stored (if it was).
    RecordingDone {
        id: u64,
        duration: Duration,
        transcript: Option<String>,
        file: Option<String>,
    },
}

impl Input {
    /// The variant's name, for logs (a key's value or a transcript is not logged: they can
    /// be personal data).
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Dtmf(_) => "dtmf",
            Input::PlaybackDone { .. } => "playback_done",
            Input::PlaybackStopped { .. } => "playback_stopped",
            Input::PromptStarted { .. } => "prompt_started",
            Input::Hangup => "hangup",
            Input::SpeechStarted => "speech_started",
            Input::Utterance { .. } => "utterance",
            Input::SpeechUnrecognised => "speech_unrecognised",
            Input::WebhookResult { .. } => "webhook_result",
            Input::TransferResult { .. } => "transfer_result",
            Input::RecordingDone { .. } => "recording_done",
        }
    }
}

/// What the dialogue asks the engine to do. `Play`, `StopPlayback` and `Hangup` are media
/// actions the call core performs itself; every other variant leaves the call core as
/// `call::Effect::Dialogue` and its result (if it has one) comes back as an [`Input`] with
/// the same `id`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Play the prompts back to back. Ids increase; a new Play replaces the current one.
    Play { id: u64, prompts: Vec<PromptRef> },
    /// Barge-in: stop the current play; the engine then feeds `PlaybackStopped`.
    StopPlayback,
    /// The robot hangs up (after the hangup node's prompts have finished).
    Hangup,
    /// Fetch or send data mid-call; answer with [`Input::WebhookResult`]. The dialogue
    /// enforces `request.timeout` itself.
    Webhook { id: u64, request: WebhookRequest },
    /// Hand the caller to `target`; answer with [`Input::TransferResult`]. `announcement`
    /// is played to the agent before the caller is connected (bridged mode).
    Transfer {
        id: u64,
        target: String,
        mode: TransferMode,
        announcement: Vec<PromptRef>,
    },
    /// A fire-and-forget event for the CRM (`sms.requested`, `dnc.requested`,
    /// `callback.requested`, …). No result comes back.
    Notify {
        event: String,
        data: serde_json::Value,
    },
    /// Record the caller; answer with [`Input::RecordingDone`]. Recording stops after
    /// `max_length`, or after `final_silence` of silence once the caller has spoken.
    Record {
        id: u64,
        max_length: Duration,
        final_silence: Duration,
        transcribe: bool,
    },
}

/// A mid-call HTTP request from a `webhook` node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookRequest {
    /// The node's `name:` (a label for the CRM's routing and for logs).
    pub name: Option<String>,
    /// Where to send it; `None` means the configured CRM webhook URL.
    pub url: Option<String>,
    /// `GET` or `POST`.
    pub method: String,
    /// The JSON body (for `GET`, the runtime may send it as query parameters).
    pub body: serde_json::Value,
    /// The dialogue gives up after this long and takes the node's `error` path.
    #[serde(serialize_with = "serialize_millis")]
    pub timeout: Duration,
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a transfer ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// The caller is connected to the target; the dialogue ends.
    Connected,
    Busy,
    NoAnswer,
    Failed(String),
}

/// What the speech recogniser should listen for now (see [`Dialogue::listen_spec`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ListenSpec {
    /// Language of the expected speech (the call's prompt language).
    pub lang: String,
    /// The phrases the current question expects in `lang` (its intents and the global ones);
    /// a hint for the decoder's initial prompt, not a grammar.
    pub phrases: Vec<String>,
    /// `true` while the question is still playing and speech may interrupt it (send
    /// [`Input::SpeechStarted`] and the dialogue stops the prompt); `false` once the prompt
    /// has finished.
    pub barge_in: bool,
    /// Silence after speech that already matches something before the utterance is final
    /// (VoiceXML `completetimeout`).
    pub complete_timeout: Duration,
    /// Silence after speech that matches nothing yet before the utterance is final
    /// (VoiceXML `incompletetimeout`).
    pub incomplete_timeout: Duration,
    /// Longest utterance; cut (and recognised as it is) after this (VoiceXML
    /// `maxspeechtimeout`).
    pub max_speech_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupBy {
    Caller,
    Robot,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DialogueResult {
    pub outcome: Option<String>,
    /// Answers by node name (`ask` and `record` nodes; inside a sub-dialogue qualified by
    /// the call: `quality/ask`); a node asked twice keeps its last answer.
    pub answers: BTreeMap<String, Answer>,
    /// Declared defaults, overridden by the call's variables and by `set`.
    pub variables: BTreeMap<String, String>,
    /// Node names in visit order (reprompts are not visits), qualified like answers.
    pub path: Vec<String>,
    pub hangup_by: Option<HangupBy>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// `"dtmf"`, `"speech"` or `"recording"`.
    pub input: String,
    /// The keys as pressed (`"1"`), the transcript, or a recording's transcript.
    pub value: String,
    pub intent: Option<String>,
    /// For speech: min(recogniser confidence, intent match score).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// For recordings: where the audio was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The parameters of a pending [`Action::Record`] (see [`Dialogue::recording`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRequest {
    pub id: u64,
    pub max_length: Duration,
    pub final_silence: Duration,
    pub transcribe: bool,
}

/// A transition, as coverage counts it: the node it leaves (`None` for a global handler)
/// and the key that declares it (see [`crate::scenario::Jump`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeId {
    pub from: Option<NodeId>,
    pub key: String,
}

/// The dialogue's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// VoiceXML `timeout`.
    NoInput,
    /// VoiceXML `interdigittimeout`.
    InterDigit,
    /// VoiceXML `termtimeout`.
    TermChar,
    /// Waiting for the recogniser's verdict after `SpeechStarted`.
    Speech,
    Webhook,
    Transfer,
    Recording,
}

impl Timer {
    pub fn name(self) -> &'static str {
        match self {
            Timer::NoInput => "no-input",
            Timer::InterDigit => "inter-digit",
            Timer::TermChar => "terminator",
            Timer::Speech => "speech result",
            Timer::Webhook => "webhook",
            Timer::Transfer => "transfer",
            Timer::Recording => "recording",
        }
    }
}

/// One entry of [`Dialogue::journal`].
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub at: Instant,
    pub event: JournalEvent,
}

/// What the dialogue did, for timelines and coverage. Values here may be personal data:
/// the journal is for tests and the simulator, never for logs.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum JournalEvent {
    /// Entered `node` (`path_name` as in the result's path) through `edge` (`None` for the
    /// start node).
    Enter {
        node: NodeId,
        path_name: String,
        edge: Option<EdgeId>,
    },
    /// A timer was armed for `deadline`.
    Timer {
        timer: Timer,
        deadline: Instant,
    },
    /// A timer fired.
    Fired {
        timer: Timer,
    },
    /// An answer was accepted: an intent (or, for a digit string, none).
    Matched {
        intent: Option<String>,
        input: &'static str,
        value: String,
        confidence: Option<f32>,
    },
    /// The caller asked to hear the question again.
    Repeat {
        count: u32,
    },
    /// Speech with low confidence: asking "did you say …?".
    Confirming {
        intent: String,
        confidence: f32,
    },
    NoInput {
        count: u32,
        max: u32,
    },
    NoMatch {
        count: u32,
        max: u32,
        reason: String,
    },
    /// An input that did not count (a key during a protected prompt, a late result, …).
    Ignored {
        what: String,
    },
    /// A variable was assigned.
    Set {
        variable: String,
        value: String,
    },
    /// The result of an effect, in words (`webhook ok`, `transfer busy`, …).
    Result {
        what: String,
    },
    /// The dialogue ended.
    Finished {
        outcome: Option<String>,
        by: HangupBy,
    },
}

/// One call's dialogue state machine.
#[derive(Debug)]
pub struct Dialogue {
    scenario: Arc<Scenario>,
    state: State,
    actions: VecDeque<Action>,
    /// Ids of plays and effects (one counter; ids increase).
    last_id: u64,
    /// Transitions made while handling the current input.
    hops: u32,
    result: DialogueResult,
    frames: Vec<Frame>,
    journal: Vec<JournalEntry>,
}

/// A running sub-dialogue.
#[derive(Debug)]
struct Frame {
    call: NodeId,
    /// Variables its parameters shadow, with their values before the call.
    saved: Vec<(String, Option<String>)>,
    /// Path prefix of its nodes (`quality/`).
    prefix: String,
}

#[derive(Debug)]
enum State {
    NotStarted,
    /// A `play` node's prompts are playing.
    Playing {
        node: NodeId,
        play: u64,
    },
    Asking(Asking),
    /// A `record` node's prompt is playing.
    RecordPrompt {
        node: NodeId,
        play: u64,
    },
    /// A webhook, transfer or recording is under way.
    Waiting {
        node: NodeId,
        wait: Wait,
        id: u64,
        deadline: Instant,
    },
    /// A `hangup` node's prompts are playing.
    HangingUp {
        play: u64,
    },
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Webhook,
    Transfer,
    Record,
}

#[derive(Debug)]
struct Asking {
    node: NodeId,
    listen: Listen,
    keys: String,
    noinput: u32,
    nomatch: u32,
    repeats: u32,
    /// Low-confidence speech waiting for "did you say …?" to be answered.
    confirming: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    intent: usize,
    text: String,
    confidence: f32,
}

#[derive(Debug)]
enum Listen {
    /// The question (with any reprompt) is playing; `barge_in[i]` is prompt i's flag.
    Prompt {
        play: u64,
        index: usize,
        barge_in: Vec<bool>,
    },
    /// Prompt done, no input yet; no-input at `deadline`.
    NoInput { deadline: Instant },
    /// The caller is speaking; the recogniser's verdict is due by `deadline`.
    Speaking { deadline: Instant },
    /// Keys so far are undecided; decide at `deadline`.
    Keys { deadline: Instant, expiry: Expiry },
}

#[derive(Debug, Clone, Copy)]
enum Expiry {
    Match(usize),
    Digits,
    NoMatch,
}

impl Listen {
    fn barge_allowed(&self) -> bool {
        match self {
            Listen::Prompt {
                index, barge_in, ..
            } => barge_in
                .get(*index)
                .or(barge_in.last())
                .copied()
                .unwrap_or(true),
            _ => true,
        }
    }
}

fn ask_of(scenario: &Scenario, node: NodeId) -> Option<&Ask> {
    match &scenario.node(node)?.kind {
        NodeKind::Ask(ask) => Some(ask),
        _ => None,
    }
}

/// A response field by dotted path (`order.status`, `items.0.name`).
fn json_path<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut cur = value;
    for seg in path.split('.') {
        cur = match cur {
            serde_json::Value::Object(map) => map.get(seg)?,
            serde_json::Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

impl Dialogue {
    /// A dialogue for one call. `variables` (from the call request or SIP headers) override
    /// the scenario's declared defaults; undeclared ones are kept and reported in the
    /// result. `language` selects the prompt set; an unsupported value falls back to the
    /// scenario's default language with a warning. A value that does not fit its declared
    /// type is kept and logged (by name, not value).
    pub fn new(scenario: Arc<Scenario>, variables: BTreeMap<String, String>) -> Dialogue {
        let mut vars = scenario.default_variables();
        for (name, value) in &variables {
            if let Some(decl) = scenario.variables.get(name)
                && decl.ty.check(value).is_err()
            {
                tracing::warn!(
                    scenario = %scenario.name,
                    variable = %name,
                    r#type = decl.ty.name(),
                    "call value does not fit the declared type"
                );
            }
        }
        vars.extend(variables);
        let dialogue = Dialogue {
            result: DialogueResult {
                variables: vars,
                ..DialogueResult::default()
            },
            scenario,
            state: State::NotStarted,
            actions: VecDeque::new(),
            last_id: 0,
            hops: 0,
            frames: Vec::new(),
            journal: Vec::new(),
        };
        dialogue.check_language();
        dialogue
    }

    /// Enters the start node. Call once, when the call is answered.
    pub fn start(&mut self, now: Instant) {
        if !matches!(self.state, State::NotStarted) {
            tracing::warn!(scenario = %self.scenario.name, "dialogue started twice; ignored");
            return;
        }
        self.hops = 0;
        self.enter(now, self.scenario.start, None);
    }

    /// An answering machine answered and its greeting is over (the scenario's `amd:`): enters
    /// `amd.on_machine` instead of the start node, or hangs up (outcome
    /// [`OUTCOME_ANSWERING_MACHINE`]). Call instead of [`Dialogue::start`].
    pub fn start_machine(&mut self, now: Instant) {
        if !matches!(self.state, State::NotStarted) {
            tracing::warn!(scenario = %self.scenario.name, "dialogue started twice; ignored");
            return;
        }
        self.hops = 0;
        let Some(amd) = self.scenario.amd.clone() else {
            self.enter(now, self.scenario.start, None);
            return;
        };
        match &amd.on_machine {
            Some(jump) => {
                let edge = EdgeId {
                    from: None,
                    key: jump.key.clone(),
                };
                self.enter(now, jump.target, Some(edge));
            }
            None => {
                self.result.outcome = Some(OUTCOME_ANSWERING_MACHINE.to_string());
                self.robot_hangup(now);
            }
        }
    }

    /// Sets a call variable from outside the scenario (the call core's `answered_by`),
    /// journalled like a `set`. Works before the dialogue starts.
    pub fn set_variable(&mut self, now: Instant, name: &str, value: &str) {
        self.set_var(now, name, value.to_string());
    }

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.hops = 0;
        match input {
            Input::Hangup => self.caller_hangup(now),
            _ if matches!(self.state, State::Finished) => {
                tracing::debug!(
                    input = input.kind(),
                    "input after the dialogue finished; ignored"
                );
            }
            _ if matches!(self.state, State::NotStarted) => {
                tracing::warn!(
                    input = input.kind(),
                    "input before the dialogue started; ignored"
                );
            }
            Input::Dtmf(key) => self.on_key(now, key),
            Input::PlaybackDone { id } | Input::PlaybackStopped { id } => {
                self.on_playback_end(now, id)
            }
            Input::PromptStarted { id, index } => {
                if let State::Asking(Asking {
                    listen:
                        Listen::Prompt {
                            play, index: at, ..
                        },
                    ..
                }) = &mut self.state
                    && *play == id
                {
                    *at = index;
                }
            }
            Input::SpeechStarted => self.on_speech_started(now),
            Input::Utterance { text, confidence } => self.on_utterance(now, text, confidence),
            Input::SpeechUnrecognised => self.on_unrecognised(now),
            Input::WebhookResult { id, result } => self.on_webhook(now, id, result),
            Input::TransferResult { id, outcome } => self.on_transfer(now, id, outcome),
            Input::RecordingDone {
                id,
                duration,
                transcript,
                file,
            } => self.on_recording(now, id, duration, transcript, file),
        }
    }

    /// Fires the timer that is due at `now`, if any; an early or spurious wake-up is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.hops = 0;
        match &self.state {
            State::Asking(asking) => match asking.listen {
                Listen::NoInput { deadline } if now >= deadline => {
                    self.note(
                        now,
                        JournalEvent::Fired {
                            timer: Timer::NoInput,
                        },
                    );
                    self.escalate(now, true, "no input");
                }
                Listen::Keys { deadline, expiry } if now >= deadline => {
                    self.note(
                        now,
                        JournalEvent::Fired {
                            timer: Timer::InterDigit,
                        },
                    );
                    match expiry {
                        Expiry::Match(i) => {
                            let keys = self.take_keys();
                            self.choose(now, i, "dtmf", keys, None);
                        }
                        Expiry::Digits => self.digits_matched(now, "dtmf", None),
                        Expiry::NoMatch => self.escalate(now, false, "incomplete keys"),
                    }
                }
                Listen::Speaking { deadline } if now >= deadline => {
                    self.note(
                        now,
                        JournalEvent::Fired {
                            timer: Timer::Speech,
                        },
                    );
                    self.escalate(now, false, "no recognition result");
                }
                _ => {}
            },
            State::Waiting {
                wait, id, deadline, ..
            } if now >= *deadline => {
                let (wait, id) = (*wait, *id);
                match wait {
                    Wait::Webhook => {
                        self.note(
                            now,
                            JournalEvent::Fired {
                                timer: Timer::Webhook,
                            },
                        );
                        self.on_webhook(now, id, Err("timeout".to_string()));
                    }
                    Wait::Transfer => {
                        self.note(
                            now,
                            JournalEvent::Fired {
                                timer: Timer::Transfer,
                            },
                        );
                        self.on_transfer(now, id, TransferOutcome::Failed("timeout".to_string()));
                    }
                    Wait::Record => {
                        self.note(
                            now,
                            JournalEvent::Fired {
                                timer: Timer::Recording,
                            },
                        );
                        self.on_recording(now, id, Duration::ZERO, None, None);
                    }
                }
            }
            _ => {}
        }
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Asking(Asking {
                listen:
                    Listen::NoInput { deadline }
                    | Listen::Keys { deadline, .. }
                    | Listen::Speaking { deadline },
                ..
            })
            | State::Waiting { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True once the robot or the caller has hung up. Drain [`poll_action`](Self::poll_action)
    /// first: the final `Action::Hangup` is queued when this turns true.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    pub fn result(&self) -> &DialogueResult {
        &self.result
    }

    pub fn scenario(&self) -> &Arc<Scenario> {
        &self.scenario
    }

    /// What happened so far (transitions, timers, classifications).
    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    /// The recording the dialogue is waiting for, if any: what [`Action::Record`] asked.
    /// Lets a driver that captures audio itself (or a simulator) find the request even
    /// when the action was consumed by the call core.
    pub fn recording(&self) -> Option<RecordRequest> {
        let State::Waiting {
            node,
            wait: Wait::Record,
            id,
            ..
        } = &self.state
        else {
            return None;
        };
        match &self.scenario.node(*node)?.kind {
            NodeKind::Record(r) => Some(RecordRequest {
                id: *id,
                max_length: r.max_length,
                final_silence: r.final_silence,
                transcribe: r.transcribe,
            }),
            _ => None,
        }
    }

    /// Qualified name of the node the dialogue is in (None before start and after the end).
    pub fn current_node(&self) -> Option<&str> {
        let id = match &self.state {
            State::Playing { node, .. }
            | State::RecordPrompt { node, .. }
            | State::Waiting { node, .. } => *node,
            State::Asking(asking) => asking.node,
            _ => return None,
        };
        Some(self.scenario.node_name(id))
    }

    /// The language prompts are played in now.
    pub fn language(&self) -> &str {
        match self.result.variables.get("language") {
            Some(lang) if self.scenario.languages.contains(lang) => lang,
            _ => self.scenario.default_language(),
        }
    }

    /// What speech the dialogue accepts now, for the recogniser; `None` while it does not
    /// listen for speech. `Some` while the current `ask` takes speech: during its prompt if
    /// the item playing allows barge-in (`barge_in: true`), and after the prompt until the
    /// question is answered; `None` once keys are being typed (a key cancels speech).
    pub fn listen_spec(&self) -> Option<ListenSpec> {
        let State::Asking(asking) = &self.state else {
            return None;
        };
        let ask = ask_of(&self.scenario, asking.node)?;
        if !ask.inputs.contains(&crate::scenario::InputMode::Speech) {
            return None;
        }
        let barge_in = match &asking.listen {
            Listen::Prompt { .. } if asking.listen.barge_allowed() => true,
            Listen::Prompt { .. } | Listen::Keys { .. } => return None,
            Listen::NoInput { .. } | Listen::Speaking { .. } => false,
        };
        let lang = self.language().to_string();
        let mut phrases: Vec<String> = if asking.confirming.is_some() {
            let mut p = phrases_for(&YES_PHRASES, &lang);
            p.extend(phrases_for(&NO_PHRASES, &lang));
            p
        } else {
            ask.intents
                .iter()
                .filter_map(|i| i.phrases.get(&lang))
                .flatten()
                .cloned()
                .collect()
        };
        let mut seen = std::collections::HashSet::new();
        phrases.retain(|p| seen.insert(p.clone()));
        Some(ListenSpec {
            lang,
            phrases,
            barge_in,
            complete_timeout: ask.complete_timeout,
            incomplete_timeout: ask.incomplete_timeout,
            max_speech_timeout: ask.max_speech_timeout,
        })
    }

    fn check_language(&self) {
        if let Some(lang) = self.result.variables.get("language")
            && !self.scenario.languages.contains(lang)
        {
            tracing::warn!(
                scenario = %self.scenario.name,
                language = %lang,
                fallback = self.scenario.default_language(),
                "language not supported by the scenario; using the default"
            );
        }
    }

    fn note(&mut self, at: Instant, event: JournalEvent) {
        if self.journal.len() < MAX_JOURNAL {
            self.journal.push(JournalEntry { at, event });
        }
    }

    fn arm(&mut self, now: Instant, timer: Timer, d: Duration) -> Instant {
        let at = deadline(now, d);
        self.note(
            now,
            JournalEvent::Timer {
                timer,
                deadline: at,
            },
        );
        at
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    fn next_play(&mut self, prompts: Vec<PromptRef>) -> u64 {
        let id = self.next_id();
        self.actions.push_back(Action::Play { id, prompts });
        id
    }

    fn render(&self, items: &[PromptItem], barge_in: Option<bool>, out: &mut Vec<PromptRef>) {
        prompts::render(
            items,
            self.language(),
            &self.result.variables,
            |item| barge_in.is_some_and(|default| item.barge_in.unwrap_or(default)),
            out,
        );
    }

    /// The node's name in the path and in answers: qualified by the calls it runs in
    /// (`quality/ask` for node `ask` of a sub-dialogue called from node `quality`).
    fn path_name(&self, node: &Node) -> String {
        match self.frames.last() {
            Some(frame) => format!("{}{}", frame.prefix, node.name),
            None => node.qualified.clone(),
        }
    }

    fn set_var(&mut self, now: Instant, name: &str, value: String) {
        self.note(
            now,
            JournalEvent::Set {
                variable: name.to_string(),
                value: value.clone(),
            },
        );
        self.result.variables.insert(name.to_string(), value);
        if name == "language" {
            self.check_language();
        }
    }

    /// Takes `jump` out of `from`.
    fn take(&mut self, now: Instant, from: NodeId, jump: &Jump) {
        if jump.global {
            // A global handler leaves whatever sub-dialogue is running.
            self.unwind();
        }
        let edge = EdgeId {
            from: (!jump.global).then_some(from),
            key: jump.key.clone(),
        };
        self.enter(now, jump.target, Some(edge));
    }

    /// Ends every running sub-dialogue, restoring the variables its parameters shadowed.
    fn unwind(&mut self) {
        while let Some(frame) = self.frames.pop() {
            self.restore(frame);
        }
    }

    fn restore(&mut self, frame: Frame) {
        for (name, old) in frame.saved {
            match old {
                Some(v) => self.result.variables.insert(name, v),
                None => self.result.variables.remove(&name),
            };
        }
    }

    /// Goes to `target` and on through zero-time nodes until something waits for time.
    fn enter(&mut self, now: Instant, target: NodeId, edge: Option<EdgeId>) {
        let scenario = Arc::clone(&self.scenario);
        let mut next = Some((target, edge));
        while let Some((id, edge)) = next.take() {
            self.hops += 1;
            if self.hops > MAX_TRANSITIONS_PER_INPUT {
                self.fail(
                    now,
                    &format!(
                        "more than {MAX_TRANSITIONS_PER_INPUT} transitions without waiting (at node `{}`)",
                        scenario.node_name(id)
                    ),
                );
                return;
            }
            let Some(node) = scenario.node(id) else {
                self.fail(now, &format!("node id {} is not in the scenario", id.0));
                return;
            };
            tracing::debug!(scenario = %scenario.name, node = %node.qualified, kind = node.kind_name(), "enter node");
            let path_name = self.path_name(node);
            self.result.path.push(path_name.clone());
            self.note(
                now,
                JournalEvent::Enter {
                    node: id,
                    path_name,
                    edge,
                },
            );
            if let Some(outcome) = &node.outcome {
                self.result.outcome = Some(outcome.clone());
            }
            let local = |j: &Jump| {
                Some((
                    j.target,
                    Some(EdgeId {
                        from: Some(id),
                        key: j.key.clone(),
                    }),
                ))
            };
            match &node.kind {
                NodeKind::Play {
                    prompts,
                    next: after,
                } => {
                    let mut refs = Vec::new();
                    self.render(prompts, None, &mut refs);
                    if refs.is_empty() {
                        next = local(after);
                    } else {
                        let play = self.next_play(refs);
                        self.state = State::Playing { node: id, play };
                    }
                }
                NodeKind::Set {
                    assign,
                    next: after,
                } => {
                    for (var, value) in assign {
                        let value = match value {
                            Assign::Template(t) => t.render(&self.result.variables),
                            Assign::Expr(e) => e.eval(&self.result.variables).to_string(),
                        };
                        self.set_var(now, var, value);
                    }
                    next = local(after);
                }
                NodeKind::Goto { target } => next = local(target),
                NodeKind::Branch { arms, otherwise } => {
                    let vars = &self.result.variables;
                    let chosen = arms
                        .iter()
                        .find(|(cond, _)| cond.is_true(vars))
                        .map_or(otherwise, |(_, j)| j);
                    next = local(chosen);
                }
                NodeKind::Switch {
                    value,
                    cases,
                    default,
                } => {
                    let v = value.eval(&self.result.variables).to_string();
                    let chosen = cases
                        .iter()
                        .find(|(case, _)| *case == v)
                        .map_or(default, |(_, j)| j);
                    next = local(chosen);
                }
                NodeKind::Notify {
                    event,
                    data,
                    next: after,
                    ..
                } => {
                    self.actions.push_back(Action::Notify {
                        event: event.clone(),
                        data: data.render(&self.result.variables),
                    });
                    next = local(after);
                }
                NodeKind::Hangup { outcome, prompts } => {
                    if let Some(outcome) = outcome {
                        self.result.outcome = Some(outcome.clone());
                    }
                    let mut refs = Vec::new();
                    self.render(prompts, None, &mut refs);
                    if refs.is_empty() {
                        self.robot_hangup(now);
                    } else {
                        let play = self.next_play(refs);
                        self.state = State::HangingUp { play };
                    }
                }
                NodeKind::Ask(ask) => {
                    self.state = State::Asking(Asking {
                        node: id,
                        listen: Listen::NoInput { deadline: now },
                        keys: String::new(),
                        noinput: 0,
                        nomatch: 0,
                        repeats: 0,
                        confirming: None,
                    });
                    self.ask_round(now, ask, &[], true);
                }
                NodeKind::Record(rec) => {
                    let mut refs = Vec::new();
                    self.render(&rec.prompt, None, &mut refs);
                    if refs.is_empty() {
                        self.start_record(now, id);
                    } else {
                        let play = self.next_play(refs);
                        self.state = State::RecordPrompt { node: id, play };
                    }
                }
                NodeKind::Webhook(w) => {
                    let vars = &self.result.variables;
                    let request = WebhookRequest {
                        name: w.name.clone(),
                        url: w.url.as_ref().map(|u| u.render(vars)),
                        method: w.method.clone(),
                        body: w.body.render(vars),
                        timeout: w.timeout,
                    };
                    let wid = self.next_id();
                    self.actions.push_back(Action::Webhook { id: wid, request });
                    let deadline = self.arm(now, Timer::Webhook, w.timeout);
                    self.state = State::Waiting {
                        node: id,
                        wait: Wait::Webhook,
                        id: wid,
                        deadline,
                    };
                }
                NodeKind::Transfer(t) => {
                    let mut announcement = Vec::new();
                    self.render(&t.announcement, None, &mut announcement);
                    let tid = self.next_id();
                    let target = t.target.render(&self.result.variables);
                    let allowed = scenario.transfer_allow.allows(&target);
                    if allowed {
                        self.actions.push_back(Action::Transfer {
                            id: tid,
                            target: target.clone(),
                            mode: t.mode,
                            announcement,
                        });
                    }
                    let deadline = self.arm(now, Timer::Transfer, t.timeout);
                    self.state = State::Waiting {
                        node: id,
                        wait: Wait::Transfer,
                        id: tid,
                        deadline,
                    };
                    if !allowed {
                        // Whoever set the variable does not choose where the robot calls
                        // (issue 12): the node's `failed` route, and nothing is dialled.
                        tracing::warn!(
                            scenario = %scenario.name,
                            node = %scenario.node_name(id),
                            target = %crate::pii::Pii(&target),
                            "transfer target is not allowed by the scenario (targets in the file, `allow.transfer`); not dialled"
                        );
                        self.on_transfer(
                            now,
                            tid,
                            TransferOutcome::Failed(
                                "target not allowed by the scenario".to_owned(),
                            ),
                        );
                    }
                }
                NodeKind::Call { sub, args, .. } => {
                    let Some(def) = scenario.subdialogs.get(*sub) else {
                        self.fail(now, "call of a sub-dialogue that does not exist");
                        return;
                    };
                    if self.frames.len() >= MAX_CALL_DEPTH {
                        self.fail(
                            now,
                            &format!("sub-dialogue calls nested deeper than {MAX_CALL_DEPTH}"),
                        );
                        return;
                    }
                    let values: Vec<(String, String)> = def
                        .params
                        .values()
                        .map(|p| {
                            let v = args.iter().find(|(n, _)| *n == p.name).map_or_else(
                                || p.default.clone(),
                                |(_, t)| t.render(&self.result.variables),
                            );
                            (p.name.clone(), v)
                        })
                        .collect();
                    let saved = values
                        .iter()
                        .map(|(n, _)| (n.clone(), self.result.variables.get(n).cloned()))
                        .collect();
                    let parent = self.frames.last().map_or("", |f| f.prefix.as_str());
                    let prefix = format!("{parent}{}/", node.name);
                    self.frames.push(Frame {
                        call: id,
                        saved,
                        prefix,
                    });
                    for (n, v) in values {
                        self.set_var(now, &n, v);
                    }
                    next = Some((
                        def.start,
                        Some(EdgeId {
                            from: Some(id),
                            key: "call".to_string(),
                        }),
                    ));
                }
                NodeKind::Return { value } => {
                    let Some(frame) = self.frames.pop() else {
                        self.fail(now, "`return` outside a sub-dialogue");
                        return;
                    };
                    let call = frame.call;
                    self.restore(frame);
                    let jump = match scenario.node(call).map(|n| &n.kind) {
                        Some(NodeKind::Call { returns, .. }) => {
                            returns.iter().find(|(v, _)| v == value).map(|(_, j)| j)
                        }
                        _ => None,
                    };
                    let Some(jump) = jump else {
                        self.fail(now, &format!("no target for return value `{value}`"));
                        return;
                    };
                    next = Some((
                        jump.target,
                        Some(EdgeId {
                            from: Some(call),
                            key: jump.key.clone(),
                        }),
                    ));
                }
            }
        }
    }

    /// Plays `extra` (a reprompt) and the question (unless `question` is false and there
    /// is a reprompt), and clears the key buffer.
    fn ask_round(&mut self, now: Instant, ask: &Ask, extra: &[PromptItem], question: bool) {
        let mut refs = Vec::new();
        self.render(extra, Some(ask.barge_in), &mut refs);
        if question || refs.is_empty() {
            self.render(&ask.prompt, Some(ask.barge_in), &mut refs);
        }
        self.listen_after(now, ask, refs);
    }

    /// "Did you say …?": the confirmation prompt, the intent's `say`, the question.
    fn confirm_round(&mut self, now: Instant, ask: &Ask, intent: usize) {
        let mut refs = Vec::new();
        if let Some(confirm) = &ask.confirm {
            self.render(&confirm.prompt, Some(true), &mut refs);
            if let Some(i) = ask.intents.get(intent) {
                self.render(&i.say, Some(true), &mut refs);
            }
            self.render(&confirm.question, Some(true), &mut refs);
        }
        self.listen_after(now, ask, refs);
    }

    fn listen_after(&mut self, now: Instant, ask: &Ask, refs: Vec<PromptRef>) {
        let listen = if refs.is_empty() {
            Listen::NoInput {
                deadline: self.arm(now, Timer::NoInput, ask.timeout),
            }
        } else {
            let barge_in = refs.iter().map(|r| r.barge_in).collect();
            let play = self.next_play(refs);
            Listen::Prompt {
                play,
                index: 0,
                barge_in,
            }
        };
        if let State::Asking(asking) = &mut self.state {
            asking.keys.clear();
            asking.listen = listen;
        }
    }

    fn on_playback_end(&mut self, now: Instant, id: u64) {
        match &self.state {
            State::Playing { node, play } if *play == id => {
                let node = *node;
                if let Some(Node {
                    kind: NodeKind::Play { next, .. },
                    ..
                }) = self.scenario.clone().node(node)
                {
                    self.take(now, node, next);
                }
            }
            State::RecordPrompt { node, play } if *play == id => {
                let node = *node;
                self.start_record(now, node);
            }
            State::HangingUp { play } if *play == id => self.robot_hangup(now),
            State::Asking(asking) => {
                if let Listen::Prompt { play, .. } = asking.listen
                    && play == id
                {
                    let timeout = ask_of(&self.scenario, asking.node)
                        .map_or(crate::scenario::DEFAULT_TIMEOUT, |a| a.timeout);
                    let deadline = self.arm(now, Timer::NoInput, timeout);
                    if let State::Asking(asking) = &mut self.state {
                        asking.listen = Listen::NoInput { deadline };
                    }
                }
            }
            _ => tracing::trace!(id, "playback end of a play that is no longer current"),
        }
    }

    fn start_record(&mut self, now: Instant, node: NodeId) {
        let scenario = Arc::clone(&self.scenario);
        let Some(NodeKind::Record(rec)) = scenario.node(node).map(|n| &n.kind) else {
            return;
        };
        let id = self.next_id();
        self.actions.push_back(Action::Record {
            id,
            max_length: rec.max_length,
            final_silence: rec.final_silence,
            transcribe: rec.transcribe,
        });
        let deadline = self.arm(
            now,
            Timer::Recording,
            rec.max_length + rec.final_silence + RECORD_RESULT_GRACE,
        );
        self.state = State::Waiting {
            node,
            wait: Wait::Record,
            id,
            deadline,
        };
    }

    /// The pending effect of `wait` kind with this id, if it is the current one.
    fn waiting_for(&self, wait: Wait, id: u64) -> Option<NodeId> {
        match &self.state {
            State::Waiting {
                node,
                wait: w,
                id: i,
                ..
            } if *w == wait && *i == id => Some(*node),
            _ => None,
        }
    }

    fn on_webhook(&mut self, now: Instant, id: u64, result: Result<serde_json::Value, String>) {
        let Some(node) = self.waiting_for(Wait::Webhook, id) else {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("webhook result {id} after its node's timeout"),
                },
            );
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let Some(NodeKind::Webhook(w)) = scenario.node(node).map(|n| &n.kind) else {
            return;
        };
        match result {
            Ok(body) => {
                self.note(
                    now,
                    JournalEvent::Result {
                        what: "webhook ok".to_string(),
                    },
                );
                for (var, path) in &w.store {
                    match json_path(&body, path) {
                        Some(v) => self.set_var(now, var, json_text(v)),
                        None => tracing::warn!(
                            node = %scenario.node_name(node),
                            field = %path,
                            "webhook response has no such field; variable unchanged"
                        ),
                    }
                }
                self.take(now, node, &w.next);
            }
            Err(e) => {
                self.note(
                    now,
                    JournalEvent::Result {
                        what: format!("webhook failed: {e}"),
                    },
                );
                self.take(now, node, &w.error);
            }
        }
    }

    fn on_transfer(&mut self, now: Instant, id: u64, outcome: TransferOutcome) {
        let Some(node) = self.waiting_for(Wait::Transfer, id) else {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("transfer result {id} after its node's timeout"),
                },
            );
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let Some(NodeKind::Transfer(t)) = scenario.node(node).map(|n| &n.kind) else {
            return;
        };
        let what = match &outcome {
            TransferOutcome::Connected => "transfer connected".to_string(),
            TransferOutcome::Busy => "transfer busy".to_string(),
            TransferOutcome::NoAnswer => "transfer not answered".to_string(),
            TransferOutcome::Failed(e) => format!("transfer failed: {e}"),
        };
        self.note(now, JournalEvent::Result { what });
        match outcome {
            TransferOutcome::Connected => {
                self.result.outcome = Some(t.outcome.clone());
                self.robot_hangup(now);
            }
            TransferOutcome::Busy => self.take(now, node, &t.busy),
            TransferOutcome::NoAnswer => self.take(now, node, &t.noanswer),
            TransferOutcome::Failed(_) => self.take(now, node, &t.failed),
        }
    }

    fn on_recording(
        &mut self,
        now: Instant,
        id: u64,
        duration: Duration,
        transcript: Option<String>,
        file: Option<String>,
    ) {
        let Some(node) = self.waiting_for(Wait::Record, id) else {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("recording result {id} after its node's timeout"),
                },
            );
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let Some(n) = scenario.node(node) else {
            return;
        };
        let NodeKind::Record(rec) = &n.kind else {
            return;
        };
        let text = transcript.unwrap_or_default();
        let empty = duration.is_zero() || (rec.transcribe && text.trim().is_empty());
        self.note(
            now,
            JournalEvent::Result {
                what: format!(
                    "recording of {:.1}s{}",
                    duration.as_secs_f64(),
                    if empty { " (empty)" } else { "" }
                ),
            },
        );
        let key = self.path_name(n);
        self.result.answers.insert(
            key,
            Answer {
                input: "recording".to_string(),
                value: text.clone(),
                intent: None,
                confidence: None,
                file,
            },
        );
        if let Some(var) = &rec.store {
            self.set_var(now, var, text);
        }
        let jump = if empty {
            rec.empty.as_ref().unwrap_or(&rec.next)
        } else {
            &rec.next
        };
        self.take(now, node, jump);
    }

    fn take_keys(&mut self) -> String {
        match &mut self.state {
            State::Asking(asking) => std::mem::take(&mut asking.keys),
            _ => String::new(),
        }
    }

    fn on_key(&mut self, now: Instant, key: char) {
        let Some(key) = dtmf::normalize_key(key) else {
            tracing::warn!("ignoring a DTMF key that is not 0-9, *, #, A-D");
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            tracing::debug!("key outside an ask; ignored");
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("key {key} outside a question"),
                },
            );
            return;
        };
        let Some(ask) = ask_of(&scenario, asking.node) else {
            return;
        };
        if !ask.inputs.contains(&crate::scenario::InputMode::Dtmf) {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("key {key}: the question takes speech only"),
                },
            );
            return;
        }
        let mut cancelled_speech = false;
        match &asking.listen {
            Listen::Prompt { .. } => {
                if !asking.listen.barge_allowed() {
                    tracing::debug!("key during a prompt without barge-in; ignored");
                    self.note(
                        now,
                        JournalEvent::Ignored {
                            what: format!("key {key} during a protected prompt"),
                        },
                    );
                    return;
                }
                self.actions.push_back(Action::StopPlayback);
            }
            Listen::Speaking { .. } => cancelled_speech = true,
            _ => {}
        }
        if asking.confirming.is_some() {
            self.confirm_answer(now, key == '1');
            return;
        }
        asking.keys.push(key);
        // Until the keys are decided, the no-input timer is off.
        asking.listen = Listen::Keys {
            deadline: now,
            expiry: Expiry::NoMatch,
        };
        if cancelled_speech {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: "speech in progress (a key cancels it)".to_string(),
                },
            );
        }
        self.decide_keys(now, ask);
    }

    fn set_keys_timer(&mut self, now: Instant, timer: Timer, d: Duration, expiry: Expiry) {
        let deadline = self.arm(now, timer, d);
        if let State::Asking(asking) = &mut self.state {
            asking.listen = Listen::Keys { deadline, expiry };
        }
    }

    fn decide_keys(&mut self, now: Instant, ask: &Ask) {
        let State::Asking(asking) = &self.state else {
            return;
        };
        let keys = asking.keys.clone();
        if keys.len() > MAX_KEYS {
            self.escalate(now, false, "too many keys");
            return;
        }
        let digit_mode = ask.digits.as_ref().filter(|spec| {
            keys.starts_with(|c: char| c.is_ascii_digit())
                || spec.terminator.is_some_and(|t| keys.starts_with(t))
        });
        if let Some(spec) = digit_mode {
            match dtmf::digits_state(&keys, spec) {
                DigitsState::Terminated => self.digits_matched(now, "dtmf", None),
                DigitsState::Full if spec.terminator.is_some() && !ask.term_timeout.is_zero() => {
                    self.set_keys_timer(now, Timer::TermChar, ask.term_timeout, Expiry::Digits)
                }
                DigitsState::Full => self.digits_matched(now, "dtmf", None),
                DigitsState::Complete => self.set_keys_timer(
                    now,
                    Timer::InterDigit,
                    ask.interdigit_timeout,
                    Expiry::Digits,
                ),
                DigitsState::Incomplete => self.set_keys_timer(
                    now,
                    Timer::InterDigit,
                    ask.interdigit_timeout,
                    Expiry::NoMatch,
                ),
                DigitsState::NoMatch => self.escalate(now, false, "not a valid digit string"),
            }
            return;
        }
        match dtmf::classify(&keys, &ask.intents) {
            KeyMatch::Match(i) => {
                let keys = self.take_keys();
                self.choose(now, i, "dtmf", keys, None);
            }
            KeyMatch::NoMatch => self.escalate(now, false, "keys match no choice"),
            KeyMatch::Partial => {
                let expiry =
                    dtmf::exact(&keys, &ask.intents).map_or(Expiry::NoMatch, Expiry::Match);
                self.set_keys_timer(now, Timer::InterDigit, ask.interdigit_timeout, expiry);
            }
        }
    }

    /// Accepts intent `index` of the current ask.
    fn choose(
        &mut self,
        now: Instant,
        index: usize,
        input: &'static str,
        value: String,
        confidence: Option<f32>,
    ) {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            return;
        };
        let node_id = asking.node;
        let Some(node) = scenario.node(node_id) else {
            return;
        };
        let NodeKind::Ask(ask) = &node.kind else {
            return;
        };
        let Some(intent) = ask.intents.get(index) else {
            return;
        };
        match &intent.action {
            IntentAction::Repeat => {
                asking.repeats += 1;
                asking.confirming = None;
                let count = asking.repeats;
                self.note(now, JournalEvent::Repeat { count });
                if count > MAX_REPEATS {
                    self.escalate(now, false, "asked to repeat too often");
                } else {
                    self.ask_round(now, ask, &[], true);
                }
            }
            IntentAction::Goto(jump) => {
                tracing::debug!(node = %node.qualified, intent = %intent.name, input, "match");
                self.note(
                    now,
                    JournalEvent::Matched {
                        intent: Some(intent.name.clone()),
                        input,
                        value: value.clone(),
                        confidence,
                    },
                );
                let key = self.path_name(node);
                self.result.answers.insert(
                    key,
                    Answer {
                        input: input.to_string(),
                        value,
                        intent: Some(intent.name.clone()),
                        confidence,
                        file: None,
                    },
                );
                if let Some(var) = &ask.store {
                    self.set_var(now, var, intent.name.clone());
                }
                self.take(now, node_id, jump);
            }
        }
    }

    /// Accepts the digit string in the key buffer (or `spoken` digits).
    fn digits_matched(&mut self, now: Instant, input: &'static str, spoken: Option<(String, f32)>) {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            return;
        };
        let node_id = asking.node;
        let Some(node) = scenario.node(node_id) else {
            return;
        };
        let NodeKind::Ask(ask) = &node.kind else {
            return;
        };
        let Some(spec) = &ask.digits else {
            return;
        };
        let (value, confidence) = match spoken {
            Some((v, c)) => (v, Some(c)),
            None => (
                dtmf::digits_value(&std::mem::take(&mut asking.keys), spec),
                None,
            ),
        };
        self.note(
            now,
            JournalEvent::Matched {
                intent: None,
                input,
                value: value.clone(),
                confidence,
            },
        );
        let key = self.path_name(node);
        self.result.answers.insert(
            key,
            Answer {
                input: input.to_string(),
                value: value.clone(),
                intent: None,
                confidence,
                file: None,
            },
        );
        if let Some(var) = &ask.store {
            self.set_var(now, var, value);
        }
        self.take(now, node_id, &spec.jump);
    }

    /// Whether speech counts now; stops a bargeable prompt when it does.
    fn accept_speech(&mut self, now: Instant, what: &str) -> Option<NodeId> {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("{what} outside a question"),
                },
            );
            return None;
        };
        let speech = ask_of(&scenario, asking.node)
            .is_some_and(|a| a.inputs.contains(&crate::scenario::InputMode::Speech));
        let ignored = if !speech {
            Some("the question takes keys only")
        } else {
            match &asking.listen {
                Listen::Keys { .. } => Some("keys are being typed"),
                Listen::Prompt { .. } if !asking.listen.barge_allowed() => {
                    Some("during a protected prompt")
                }
                Listen::Prompt { .. } => {
                    self.actions.push_back(Action::StopPlayback);
                    None
                }
                _ => None,
            }
        };
        if let Some(why) = ignored {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("{what}: {why}"),
                },
            );
            return None;
        }
        Some(asking.node)
    }

    fn on_speech_started(&mut self, now: Instant) {
        let Some(node) = self.accept_speech(now, "speech") else {
            return;
        };
        if let State::Asking(Asking {
            listen: Listen::Speaking { .. },
            ..
        }) = &self.state
        {
            return;
        }
        let Some(ask) = ask_of(&self.scenario, node) else {
            return;
        };
        let wait = ask.max_speech_timeout + ask.incomplete_timeout + SPEECH_RESULT_GRACE;
        let deadline = self.arm(now, Timer::Speech, wait);
        if let State::Asking(asking) = &mut self.state {
            asking.listen = Listen::Speaking { deadline };
        }
    }

    fn on_utterance(&mut self, now: Instant, text: String, confidence: f32) {
        let Some(node) = self.accept_speech(now, "utterance") else {
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let Some(ask) = ask_of(&scenario, node) else {
            return;
        };
        let confidence = if confidence.is_finite() {
            confidence.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let lang = self.language().to_string();
        let confirming = match &self.state {
            State::Asking(a) => a.confirming.clone(),
            _ => None,
        };
        if confirming.is_some() {
            let answers = [
                ("yes".to_string(), phrases_for(&YES_PHRASES, &lang)),
                ("no".to_string(), phrases_for(&NO_PHRASES, &lang)),
            ];
            let yes =
                crate::nlu::classify(&text, &lang, &answers).is_some_and(|m| m.intent == "yes");
            self.confirm_answer(now, yes);
            return;
        }
        if let Some(spec) = &ask.digits {
            // "four seven one one", «сорок два», "4711": the digits said, in order.
            let words = crate::nlu::numbers_to_digits(&crate::nlu::normalize(&text));
            let spoken: String = words.chars().filter(char::is_ascii_digit).collect();
            let n = spoken.chars().count();
            if n >= spec.min && n <= spec.max {
                self.digits_matched(now, "speech", Some((spoken, confidence)));
                return;
            }
        }
        let candidates: Vec<(String, Vec<String>)> = ask
            .intents
            .iter()
            .filter_map(|i| i.phrases.get(&lang).map(|p| (i.name.clone(), p.clone())))
            .collect();
        let Some(m) = crate::nlu::classify(&text, &lang, &candidates) else {
            self.escalate(now, false, "speech matches no choice");
            return;
        };
        let Some(index) = ask.intents.iter().position(|i| i.name == m.intent) else {
            self.escalate(now, false, "speech matches no choice");
            return;
        };
        let score = confidence.min(m.score);
        if score >= ask.confidence {
            self.choose(now, index, "speech", text, Some(score));
        } else if let Some(confirm) = &ask.confirm
            && score >= confirm.min
        {
            self.note(
                now,
                JournalEvent::Confirming {
                    intent: m.intent.clone(),
                    confidence: score,
                },
            );
            if let State::Asking(asking) = &mut self.state {
                asking.confirming = Some(Pending {
                    intent: index,
                    text,
                    confidence: score,
                });
            }
            self.confirm_round(now, ask, index);
        } else {
            self.escalate(now, false, &format!("confidence {score:.2} too low"));
        }
    }

    fn on_unrecognised(&mut self, now: Instant) {
        if self.accept_speech(now, "unrecognised speech").is_none() {
            return;
        }
        let confirming = matches!(&self.state, State::Asking(a) if a.confirming.is_some());
        if confirming {
            self.confirm_answer(now, false);
        } else {
            self.escalate(now, false, "speech not recognised");
        }
    }

    /// The answer to "did you say …?": yes accepts the pending intent, anything else is a
    /// no-match of the question.
    fn confirm_answer(&mut self, now: Instant, yes: bool) {
        let pending = match &mut self.state {
            State::Asking(a) => a.confirming.take(),
            _ => None,
        };
        match (pending, yes) {
            (Some(p), true) => self.choose(now, p.intent, "speech", p.text, Some(p.confidence)),
            _ => self.escalate(now, false, "not confirmed"),
        }
    }

    /// Counts a no-input or no-match event: reprompt, or leave when the count exceeds max.
    fn escalate(&mut self, now: Instant, noinput: bool, reason: &str) {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            return;
        };
        let node_id = asking.node;
        let Some(ask) = ask_of(&scenario, node_id) else {
            return;
        };
        asking.confirming = None;
        asking.keys.clear();
        let (count, escalation) = if noinput {
            asking.noinput += 1;
            (asking.noinput, &ask.noinput)
        } else {
            asking.nomatch += 1;
            (asking.nomatch, &ask.nomatch)
        };
        tracing::debug!(node = %scenario.node_name(node_id), noinput, count, max = escalation.max, "escalation");
        let event = if noinput {
            JournalEvent::NoInput {
                count,
                max: escalation.max,
            }
        } else {
            JournalEvent::NoMatch {
                count,
                max: escalation.max,
                reason: reason.to_string(),
            }
        };
        self.note(now, event);
        if count > escalation.max {
            self.take(now, node_id, &escalation.target);
        } else {
            self.ask_round(now, ask, escalation.reprompt(count), escalation.question);
        }
    }

    fn finish(&mut self, now: Instant, by: HangupBy) {
        self.unwind();
        self.result.hangup_by = Some(by);
        self.state = State::Finished;
        self.note(
            now,
            JournalEvent::Finished {
                outcome: self.result.outcome.clone(),
                by,
            },
        );
    }

    fn robot_hangup(&mut self, now: Instant) {
        self.actions.push_back(Action::Hangup);
        self.finish(now, HangupBy::Robot);
    }

    fn caller_hangup(&mut self, now: Instant) {
        if matches!(self.state, State::Finished) {
            return;
        }
        // Nothing queued matters any more: the call is gone.
        self.actions.clear();
        self.result
            .outcome
            .get_or_insert_with(|| OUTCOME_CALLER_HANGUP.to_string());
        self.finish(now, HangupBy::Caller);
    }

    fn fail(&mut self, now: Instant, reason: &str) {
        tracing::error!(scenario = %self.scenario.name, reason, "dialogue stopped");
        self.result.outcome = Some(OUTCOME_ERROR.to_string());
        self.robot_hangup(now);
    }
}

/// `now + d`, saturating far in the future instead of panicking on overflow.
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(crate::scenario::MAX_DURATION))
        .unwrap_or(now)
}
